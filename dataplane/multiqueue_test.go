package dataplane

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/internal/netnstest"
	"github.com/edgegw/edge/snat"
)

// TestTwoQueues runs two workers on two-queue veths: flows land on either
// queue by the kernel's hash, SNAT ports are chosen so replies belong to
// the same worker, and packets that arrive on the other worker's queue are
// handed over. Every one of 64 UDP flows must get its echo back. In each
// family (IPv6 keys hash and shard like IPv4's).
func TestTwoQueues(t *testing.T) { forEachLabFamily(t, testTwoQueues) }

func testTwoQueues(t *testing.T, fam labFamily) {
	client, eng := twoQueueEcho(t, fam, 1)
	const flows = 64
	answered := echoFlows(t, fam, client, flows, []byte("q"))
	st := eng.Stats()
	if answered != flows {
		t.Fatalf("%d of %d flows answered through two workers; stats %+v", answered, flows, st)
	}
	if st.Handoff == 0 {
		t.Fatalf("no packet was handed between workers: the test did not exercise the hand-off (stats %+v)", st)
	}
	t.Logf("handed off %d frames; per-shard flows %d/%d", st.Handoff, eng.table.ShardStats(0).Counters[conntrack.CtrCreated], eng.table.ShardStats(1).Counters[conntrack.CtrCreated])
}

// TestTwoQueuesFragments: fragmented datagrams (3,000 bytes, three
// fragments each way) cross two workers. A later fragment carries no ports,
// so the worker that receives a datagram steers its later fragments to the
// worker it handed the first one to (dataplane/fragment.go). In each family.
func TestTwoQueuesFragments(t *testing.T) { forEachLabFamily(t, testTwoQueuesFragments) }

func testTwoQueuesFragments(t *testing.T, fam labFamily) {
	client, eng := twoQueueEcho(t, fam, 8192)
	msg := make([]byte, 3000)
	for i := range msg {
		msg[i] = byte(i)
	}
	const flows = 32
	answered := echoFlows(t, fam, client, flows, msg)
	st := eng.Stats()
	if answered != flows {
		t.Fatalf("%d of %d fragmented flows answered through two workers; drops %v", answered, flows, st.Drops)
	}
	for _, r := range []drop.Reason{drop.Fragment, drop.FragmentNoRoom, drop.FragmentExpired, drop.HandoffFull} {
		if st.Drops[r] != 0 {
			t.Errorf("%d packets dropped as %v", st.Drops[r], r)
		}
	}
	t.Logf("handed off %d frames", st.Handoff)
}

// twoQueueEcho makes client -- edge (two queues, two workers, SNAT) --
// server on two-queue veths (dual-stack for IPv6), with a UDP echo server on
// the family's server address, port 7009, reading datagrams of up to
// bufSize bytes.
func twoQueueEcho(t *testing.T, fam labFamily, bufSize int) (*netnstest.NS, *Engine) {
	netnstest.Require(t)
	client, edge, server := netnstest.New(t, "mqc"), netnstest.New(t, "mqe"), netnstest.New(t, "mqs")
	netnstest.VethQueues(t, 2, client, "c0", "10.0.0.2/24", edge, "in", "10.0.0.1/24")
	netnstest.VethQueues(t, 2, edge, "out", "203.0.113.1/24", server, "s0", "203.0.113.2/24")
	client.Run(t, "ip", "route", "add", "default", "via", "10.0.0.1")
	netnstest.NoTxChecksumOffload(t, client, "c0")
	netnstest.NoTxChecksumOffload(t, server, "s0")
	cfg := labConfig(allowOutbound)
	if fam.dualStack {
		netnstest.DualStack(t, client, edge, server)
		cfg.Routes = append(cfg.Routes, Route{Dst: fam.inside, Port: 0}, Route{Dst: fam.outside, Port: 1})
	}
	cfg.Queues, cfg.SNAT = 2, &snat.Config{Mode: snat.Automap}
	eng := startEngine(t, edge, cfg)

	var udp *net.UDPConn
	if err := server.Do(func() (err error) {
		udp, err = net.ListenUDP(fam.udp, net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.server, 7009)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	go func() {
		buf := make([]byte, bufSize)
		for {
			n, from, err := udp.ReadFromUDP(buf)
			if err != nil {
				return
			}
			udp.WriteToUDP(buf[:n], from)
		}
	}()
	return client, eng
}

// echoFlows sends msg from flows new client sockets (one flow each) and
// returns how many got msg back, retrying each up to 10 times.
func echoFlows(t *testing.T, fam labFamily, client *netnstest.NS, flows int, msg []byte) int {
	answered := 0
	err := client.Do(func() error {
		buf := make([]byte, len(msg)+64)
		for f := 0; f < flows; f++ {
			c, err := net.DialUDP(fam.udp, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.server, 7009)))
			if err != nil {
				return err
			}
			for try := 0; try < 10; try++ {
				c.Write(msg)
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if n, err := c.Read(buf); err == nil {
					if bytes.Equal(buf[:n], msg) {
						answered++
					}
					break
				}
			}
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return answered
}
