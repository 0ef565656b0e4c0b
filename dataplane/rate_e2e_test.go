package dataplane

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edge/drop"
)

// TestNoLossAtModestRate sends 20,000 UDP datagrams from the client to the
// server through the real engine (XDP program, AF_XDP sockets, worker
// loop) at about 20 kpps, a few percent of what a worker forwards, and
// asserts that every one arrives and that edge dropped none: no tx_full, no
// frame lost between the XDP redirect and the worker (the sockets' kernel
// counters), RX equal to the XDP program's redirects. The lab's rings are
// small (256 descriptors, labConfig), so a worker that stalls for more than
// about 12 ms, or drops on a full TX ring instead of kicking, fails it.
// A guard, not a reproduction of the benchmark's losses: those need the
// receive kthread and the worker on one contended vCPU (bench/pps.sh), and
// the loop before this test passes it too. Bounded: about 1 s of sending.
func TestNoLossAtModestRate(t *testing.T) {
	l := newLab(t, allowOutbound)
	const n, burst = 20000, 20 // 20 datagrams per millisecond

	var srv *net.UDPConn
	if err := l.server.Do(func() (err error) {
		srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(203, 0, 113, 2), Port: 7009})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_ = srv.SetReadBuffer(8 << 20)
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := srv.ReadFromUDP(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()

	var c *net.UDPConn
	if err := l.client.Do(func() (err error) {
		c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(203, 0, 113, 2), Port: 7009})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The first datagram may be lost while edge resolves the server's MAC
	// (no_neighbour): warm up until one gets through, bounded.
	payload := make([]byte, 18) // a 64-byte frame
	for try := 0; got.Load() == 0; try++ {
		if try == 50 {
			t.Fatalf("nothing gets through edge; stats %+v", l.engine.Stats())
		}
		c.Write(payload)
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	before, base := l.engine.Stats(), got.Load()

	start := time.Now()
	for i := 0; i < n; i += burst {
		for j := 0; j < burst; j++ {
			if _, err := c.Write(payload); err != nil {
				t.Fatal(err)
			}
		}
		// Pace against the clock, not per sleep: a late wake-up sends the
		// next bursts at once, as a real sender would.
		if d := time.Until(start.Add(time.Duration(i/burst+1) * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
	}
	waitFor(2*time.Second, func() bool { return got.Load()-base >= n })
	after := l.engine.Stats()
	delivered := got.Load() - base
	rx := after.RX[0] - before.RX[0]
	redirected := after.Ports[0].XDP.Redirected - before.Ports[0].XDP.Redirected
	t.Logf("sent %d in %v: delivered %d, edge rx %d tx %d, xdp redirected %d, xsk %+v",
		n, time.Since(start).Round(time.Millisecond), delivered, rx, after.TX[1]-before.TX[1], redirected, after.Ports[0].XSK)
	for r := drop.Reason(1); r < drop.NumReasons; r++ {
		if d := after.Drops[r] - before.Drops[r]; d != 0 {
			t.Errorf("edge dropped %d packets: %v", d, r)
		}
	}
	if x := after.Ports[0].XSK; x.RxDropped != 0 {
		t.Errorf("frames lost between the XDP redirect and the worker: %+v", x)
	}
	if rx != redirected {
		t.Errorf("worker received %d of the %d frames the XDP program redirected", rx, redirected)
	}
	if delivered != n {
		t.Errorf("server received %d of %d datagrams", delivered, n)
	}
}
