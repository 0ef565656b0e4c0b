package conntrack

import (
	"testing"

	"github.com/edgegw/edge/drop"
)

// Under a SYN flood only unanswered SYN_SENT entries are evicted: a
// handshake the far side answered (SYN_RECV) is kept, and with nothing
// else to take the new flow is refused (table_full).
func TestSynFloodKeepsSynRecv(t *testing.T) {
	const slots = 256
	tb, err := New(Config{MaxFlows: slots, Memory: MemoryHeap, HistorySize: 16, EventRingSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	s := tb.Shard(0)
	for i := 0; i < slots; i++ {
		k, rk, _ := synthKey(i, false)
		cisn, sisn := uint32(i)*7919, uint32(i)*104729
		syn := Packet{Key: k, Flags: SYN, Seq: cisn, Window: 1000, WScale: -1}
		if v := s.Track(&syn, Second); v.Action != Open || s.Create(&syn, NewFlow{}, Second).Action != Forward {
			t.Fatalf("flow %d not opened", i)
		}
		synack := Packet{Key: rk, Flags: SYNACK, Seq: sisn, Ack: cisn + 1, Window: 1000, WScale: -1}
		if v := s.Track(&synack, Second); v.Action != Forward || v.State != TCPSynRecv {
			t.Fatalf("flow %d: SYN-ACK %+v", i, v)
		}
	}
	_, refused := synFlood(s, 10_000, 100, 2*Second)
	st := tb.Stats()
	if refused != 100 || st.Counters[CtrEvictedSynSent] != 0 || st.Drops[drop.TableFull] != 100 {
		t.Fatalf("flood of 100 SYNs: %d refused (table_full %d), %d SYN_SENT evictions; want all refused, none evicted",
			refused, st.Drops[drop.TableFull], st.Counters[CtrEvictedSynSent])
	}
	for i := 0; i < slots; i++ {
		k, _, _ := synthKey(i, false)
		if r, _, ok := s.Lookup(&k, 3*Second); !ok || s.flows[r].state != TCPSynRecv {
			t.Fatalf("SYN_RECV flow %d lost", i)
		}
	}
}
