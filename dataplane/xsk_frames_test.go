package dataplane

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asavie/xdp"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/internal/netnstest"
	"github.com/edgegw/edge/snat"
)

// Every test of the package checks each move of a UMEM frame (xsk.go).
func init() { verifyFrames = true }

// TestFrameLedgerRejects: a move from a state the frame is not in (a
// double free, a frame transmitted twice, a completion of a frame never
// sent) panics under verifyFrames; legal moves keep the counts.
func TestFrameLedgerRejects(t *testing.T) {
	var l frameLedger
	l.init(8, 2048, 4, 2)
	l.move(3*2048, frameFree, frameFill+1)
	l.move(3*2048+256, frameFill+1, frameHeld) // an RX address: headroom inside the frame
	l.move(3*2048+256, frameHeld, frameTx)
	if l.count[frameFree] != 7 || l.count[frameTx] != 1 || l.count[frameHeld] != 0 {
		t.Fatalf("counts %v", l.count)
	}
	for _, bad := range []struct {
		name     string
		from, to frameState
	}{
		{"freed while on a TX ring (double free)", frameHeld, frameFree},
		{"transmitted twice", frameHeld, frameTx + 1},
		{"completed on the other port", frameTx + 1, frameFree},
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(r.(string), "is tx 0") {
					t.Errorf("%s: recovered %v, want a panic naming the frame's state", bad.name, r)
				}
			}()
			l.move(3*2048, bad.from, bad.to)
		}()
	}
}

// TestFrameAccountingLossAndLinkDown floods two workers (hand-offs between
// them: copies) through small rings, so that TX rings fill (tx_full) and
// the device drops, takes the server's link down and up, then edge's own
// outside link down and up, all during the flood; forwarding must work
// afterwards, and with the workers stopped and the TX rings drained, every
// frame of each worker's UMEM must be free (once on the free stack) or in
// a fill ring: none leaked, none freed twice (every move was checked).
func TestFrameAccountingLossAndLinkDown(t *testing.T) {
	netnstest.Require(t)
	client, edge, server := netnstest.New(t, "fac"), netnstest.New(t, "fae"), netnstest.New(t, "fas")
	netnstest.VethQueues(t, 2, client, "c0", "10.0.0.2/24", edge, "in", "10.0.0.1/24")
	netnstest.VethQueues(t, 2, edge, "out", "203.0.113.1/24", server, "s0", "203.0.113.2/24")
	client.Run(t, "ip", "route", "add", "default", "via", "10.0.0.1")
	netnstest.NoTxChecksumOffload(t, client, "c0")
	netnstest.NoTxChecksumOffload(t, server, "s0")
	cfg := labConfig(allowOutbound)
	cfg.Queues, cfg.SNAT = 2, &snat.Config{Mode: snat.Automap}
	cfg.Frames, cfg.Ring = 256, 64
	eng := startEngine(t, edge, cfg)
	sink := listenCounting(t, server, net.IPv4(203, 0, 113, 2), 7010)

	stop := make(chan struct{})
	done := make(chan struct{})
	var conns []*net.UDPConn
	for range 16 { // 16 flows: both queues, both owners
		conns = append(conns, dialUDP(t, client, net.IPv4(203, 0, 113, 2), 7010))
	}
	go func() {
		defer close(done)
		msg := make([]byte, 512)
		for {
			for _, c := range conns {
				select {
				case <-stop:
					return
				default:
				}
				c.Write(msg)
			}
		}
	}()
	phase := func(ns *netnstest.NS, args ...string) {
		time.Sleep(300 * time.Millisecond)
		if len(args) > 0 {
			ns.Run(t, args...)
		}
	}
	phase(nil)
	phase(server, "ip", "link", "set", "s0", "down")
	phase(server, "ip", "link", "set", "s0", "up")
	phase(edge, "ip", "link", "set", "out", "down")
	phase(edge, "ip", "link", "set", "out", "up")
	phase(nil)
	close(stop)
	<-done

	// Forwarding works after the flaps (the link's neighbour entry may
	// have to be resolved again).
	before := sink.got.Load()
	c := dialUDP(t, client, net.IPv4(203, 0, 113, 2), 7010)
	if !netnstest.WaitFor(5*time.Second, func() bool {
		c.Write([]byte("after"))
		return sink.got.Load()-before >= 20
	}) {
		t.Fatalf("forwarding did not resume after the links came back: %d datagrams arrived", sink.got.Load()-before)
	}

	st := eng.Stats()
	loss := st.Drops[drop.TxFull] + st.Ports[1].XSK.TxDeviceDrops + st.Ports[0].XSK.FillRingEmpty + st.Drops[drop.HandoffFull]
	t.Logf("received %d; tx_full %d, tx_device_drops %d, fill_ring_empty %d, handoff %d, handoff_full %d",
		sink.got.Load(), st.Drops[drop.TxFull], st.Ports[1].XSK.TxDeviceDrops, st.Ports[0].XSK.FillRingEmpty, st.Handoff, st.Drops[drop.HandoffFull])
	if loss == 0 || st.Handoff == 0 {
		t.Fatalf("the flood lost nothing (%d) or handed nothing over (%d): the test did not exercise what it checks", loss, st.Handoff)
	}
	drainAndCheckFrames(t, eng)
}

// drainAndCheckFrames stops e's workers and, in their place, kicks the TX
// rings and takes the completions until no frame is on a TX ring; then
// checks each worker's ledger against itself and against the UMEM's free
// stack. e is closed by the test's cleanup.
func drainAndCheckFrames(t *testing.T, e *Engine) {
	t.Helper()
	close(e.stop)
	e.wg.Wait()
	for _, w := range e.workers {
		l := &w.ledger
		drained := netnstest.WaitFor(2*time.Second, func() bool {
			for pi, p := range w.ports {
				p.sock.Kick()
				w.complete(pi)
			}
			return l.count[frameTx]+l.count[frameTx+1] == 0
		})
		if !drained {
			t.Errorf("worker %d: %d and %d frames still on the TX rings after 2 s", w.id, l.count[frameTx], l.count[frameTx+1])
		}
		var scanned [numFrameStates]int
		for _, s := range l.state {
			scanned[s]++
		}
		if scanned != l.count {
			t.Errorf("worker %d: states %v, counts %v", w.id, scanned, l.count)
		}
		if l.count[frameHeld] != 0 {
			t.Errorf("worker %d: %d frames held with the worker stopped (leaked)", w.id, l.count[frameHeld])
		}
		s := w.ports[0].sock
		if n := s.FreeFrames(); n != l.count[frameFree] {
			t.Errorf("worker %d: the free stack holds %d frames, the ledger %d free", w.id, n, l.count[frameFree])
		}
		free := s.GetDescs(s.FreeFrames())
		seen := map[uint64]bool{}
		for _, d := range free {
			i := d.Addr >> l.shift
			if seen[i] || l.state[i] != frameFree {
				t.Errorf("worker %d: frame %d on the free stack twice or while %s", w.id, i, frameStateNames[l.state[i]])
			}
			seen[i] = true
		}
		s.Release(free)
		for pi := range w.ports {
			if n := l.count[frameFill+frameState(pi)]; n < l.fill || n > l.fill+2*l.ring {
				t.Errorf("worker %d: %d frames in port %d's fill ring and kernel, want %d to %d", w.id, n, pi, l.fill, l.fill+2*l.ring)
			}
		}
		total := 0
		for _, n := range l.count {
			total += n
		}
		if total != len(l.state) {
			t.Errorf("worker %d: %d frames accounted for, UMEM has %d", w.id, total, len(l.state))
		}
		t.Logf("worker %d: frames %v", w.id, l.count)
	}
}

// BenchmarkTransmit sends one frame per iteration through a real AF_XDP
// socket (copy mode, veth), as the worker loop does (transmit, completions,
// kick): in place, a received frame of the UMEM (shared UMEM: what a
// forwarded frame costs now), or copied from a buffer outside the UMEM (a
// hand-off, a generated packet; what every forwarded frame cost before).
// The difference is the copy saved per forwarded frame.
func BenchmarkTransmit(b *testing.B) {
	netnstest.Require(b)
	_, edgeNS, server := netnstest.Gateway(b, "bt")
	var sock *xdp.Socket
	if err := edgeNS.Do(func() (err error) {
		ifc, err := net.InterfaceByName("out")
		if err != nil {
			return err
		}
		opts := xdp.SocketOptions{NumFrames: 256, FrameSize: 2048, FillRingNumDescs: 64,
			CompletionRingNumDescs: 64, RxRingNumDescs: 64, TxRingNumDescs: 64, NeedWakeup: true}
		sock, err = xdp.NewSocket(ifc.Index, 0, &opts)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sock.Close() })
	var serverMAC [6]byte
	if err := server.Do(func() error {
		ifc, err := net.InterfaceByName("s0")
		if err == nil {
			copy(serverMAC[:], ifc.HardwareAddr)
		}
		return err
	}); err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{64, 1500} {
		frame := udpFrame(ipClient, netip.MustParseAddr("203.0.113.2"), 5000, 9, macEdgeOut, serverMAC)
		frame = append(frame[:len(frame):len(frame)], make([]byte, size-len(frame))...)
		for _, inPlace := range []bool{true, false} {
			name := "copied/" + strconv.Itoa(size)
			if inPlace {
				name = "in-place/" + strconv.Itoa(size)
			}
			b.Run(name, func(b *testing.B) {
				tp := newTestPipeline(b, allowOutbound, 64)
				w := tp.w
				w.ports[1].sock = sock
				w.ledger.init(256, 2048, 64, 64)
				outside := append([]byte(nil), frame...)
				// The NIC wrote the packet into every frame (where RX puts it):
				// the receiver gets the same packets either way.
				all := sock.GetDescs(256)
				for _, d := range all {
					copy(sock.GetFrame(xdp.Desc{Addr: d.Addr + 256, Len: uint32(size)}), frame)
				}
				sock.Release(all)
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					f := outside
					if inPlace {
						d := sock.GetDescs(1)[0]
						w.ledger.move(d.Addr, frameFree, frameFill)
						w.ledger.move(d.Addr, frameFill, frameHeld)
						d.Addr, d.Len = d.Addr+256, uint32(size)
						f = sock.GetFrame(d)
					}
					w.txq[1][0], w.ntx[1] = f, 1
					w.transmit(1)
					w.complete(1)
					w.kick(1, w.env.clock())
				}
				b.StopTimer()
				netnstest.WaitFor(time.Second, func() bool { sock.Kick(); w.complete(1); return w.ledger.count[frameTx+1] == 0 })
				if w.drops[drop.TxFull] != 0 {
					b.Fatalf("%d frames dropped tx_full", w.drops[drop.TxFull])
				}
			})
		}
	}
}
