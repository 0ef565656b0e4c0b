package gen

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edge/internal/netnstest"
)

// TestGenSinkVeth sends a bounded number of packets from a generator in one
// namespace to a sink in another over a veth pair, with each engine, and
// checks counts, loss and latency. Needs root (skips otherwise).
func TestGenSinkVeth(t *testing.T) {
	netnstest.Require(t)
	for _, eng := range []string{EngineAFXDP, EngineAFPacket} {
		t.Run(eng, func(t *testing.T) {
			a := netnstest.New(t, "gen")
			b := netnstest.New(t, "sink")
			netnstest.Veth(t, a, "g0", "", b, "s0", "")
			var mac net.HardwareAddr
			if err := b.Do(func() error {
				ifi, err := net.InterfaceByName("s0")
				mac = ifi.HardwareAddr
				return err
			}); err != nil {
				t.Fatal(err)
			}
			var stop atomic.Bool
			ready := make(chan string, 1)
			type result struct {
				r   *Recorder
				err error
			}
			done := make(chan result, 1)
			go func() {
				var res result
				res.err = b.Do(func() error {
					var err error
					res.r, _, err = Sink(SinkConfig{Dev: "s0", Engine: eng, Stop: &stop, MaxSeq: 1 << 16,
						Ready: func(e string) { ready <- e }})
					return err
				})
				done <- res
			}()
			select {
			case <-ready:
			case res := <-done:
				t.Fatalf("sink: %v", res.err)
			case <-time.After(10 * time.Second):
				t.Fatal("sink did not start")
			}
			fc := FrameConfig{Src: netip.MustParseAddr("10.0.0.2"), Dst: netip.MustParseAddr("203.0.113.2"),
				Sizes: IMIX, Flows: 100, Seed: 1}
			copy(fc.DstMAC[:], mac)
			const count = 20000
			var st TxStats
			if err := a.Do(func() error {
				var err error
				st, err = Transmit(TxConfig{Dev: "g0", Engine: eng, Frame: fc, Rate: 100000, Count: count,
					Duration: 5 * time.Second})
				return err
			}); err != nil {
				t.Fatalf("transmit: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
			stop.Store(true)
			res := <-done
			if res.err != nil {
				t.Fatalf("sink: %v", res.err)
			}
			s := res.r.Stats(st.Sent)
			t.Logf("%s: sent %d (%.0f pps), sink %+v", eng, st.Sent, st.PPS, s)
			if st.Sent != count || st.Engine != eng {
				t.Fatalf("sent %d with %s, want %d with %s", st.Sent, st.Engine, count, eng)
			}
			if s.Dup != 0 || s.Lost < 0 || s.LossPct > 1 || s.Unique < count*99/100 {
				t.Fatalf("sink: %+v", s)
			}
			if s.LatP50Ns == 0 || s.LatP99Ns > uint64(time.Second) {
				t.Fatalf("latency p50 %d p99 %d ns", s.LatP50Ns, s.LatP99Ns)
			}
		})
	}
}
