package conntrack

import (
	"testing"

	"github.com/edgegw/edge/drop"
)

// synFlood opens n unanswered SYN_SENT flows (synthetic flows from,
// from+1, ...), one per millisecond from start, and returns the time after
// the last and how many were refused.
func synFlood(s *Shard, from, n int, start Time) (Time, int) {
	refused := 0
	now := start
	for i := from; i < from+n; i++ {
		k, _, _ := synthKey(i, false)
		p := Packet{Key: k, Flags: SYN, Seq: uint32(i), Window: 1000, WScale: -1}
		if v := s.Track(&p, now); v.Action == Open {
			if v := s.Create(&p, NewFlow{}, now); v.Action == Drop {
				refused++
			}
		}
		now += Millisecond
	}
	return now, refused
}

// The case: 5,000 SYNs toward a black-holed port fill a small
// table; every later connection used to be refused for the SYN_SENT
// timeout. Under pressure the oldest unanswered SYN_SENT entries are
// evicted instead, counted and reported, and a real connection opens.
func TestSynFloodEvictsOldestSynSent(t *testing.T) {
	const slots, flood = 1024, 5000
	tb, err := New(Config{MaxFlows: slots, Memory: MemoryHeap, HistorySize: 16, EventRingSize: 16384})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	s := tb.Shard(0)
	now, refused := synFlood(s, 0, flood, Second)
	if refused != 0 {
		t.Fatalf("%d of %d flood SYNs refused", refused, flood)
	}
	// A real connection, 10 s later (the flood entries are far from
	// their timeout), opens and completes its handshake.
	now += 10 * Second
	establishOne(t, s, 1_000_000, now)
	st := tb.Stats()
	if want := uint64(flood + 1 - slots); st.Counters[CtrEvicted] != want || st.Counters[CtrEvictedSynSent] != want ||
		st.Drops[drop.TableFull] != 0 || tb.Len() != slots {
		t.Fatalf("evicted %d (syn_sent %d), want %d; table_full %d; %d flows",
			st.Counters[CtrEvicted], st.Counters[CtrEvictedSynSent], want, st.Drops[drop.TableFull], tb.Len())
	}
	// Oldest first: the survivors are the newest flood entries.
	for i := 0; i < flood; i++ {
		k, _, _ := synthKey(i, false)
		_, _, ok := s.Lookup(&k, now)
		if want := i >= flood-(slots-1); ok != want {
			t.Fatalf("flood flow %d present %v, want %v", i, ok, want)
		}
	}
	// Each eviction is an event naming the evicted SYN_SENT flow, in the
	// order the flows were opened.
	ev := make([]Event, 32768)
	got := tb.ReadEvents(ev)
	next := 0
	for _, e := range ev[:got] {
		if e.Kind != EvEvicted {
			continue
		}
		k, _, _ := synthKey(next, false)
		if e.State != TCPSynSent || e.Key != k {
			t.Fatalf("eviction %d: %v %v, want SYN_SENT %v", next, e.State, e.Key, k)
		}
		next++
	}
	if next != flood+1-slots {
		t.Fatalf("%d eviction events", next)
	}
}

// Established flows are never evicted, however many SYNs arrive; with the
// SYN_SENT entries gone the table refuses (table_full).
func TestSynFloodKeepsEstablished(t *testing.T) {
	const slots = 256
	tb, err := New(Config{MaxFlows: slots, Memory: MemoryHeap, HistorySize: 16, EventRingSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	s := tb.Shard(0)
	// Established and SYN_SENT entries interleaved, as churn leaves them
	// (a pass of 64 slots with no SYN_SENT entry would refuse the flow).
	for i := 0; i < slots/2; i++ {
		establishOne(t, s, i, Second)
		synFlood(s, 10_000+i, 1, Second)
	}
	_, refused := synFlood(s, 20_000, 10*slots, 2*Second)
	st := tb.Stats()
	if refused != 0 || st.Counters[CtrEvictedSynSent] != 10*slots {
		t.Fatalf("refused %d, evicted %d", refused, st.Counters[CtrEvictedSynSent])
	}
	for i := 0; i < slots/2; i++ {
		k, _, _ := synthKey(i, false)
		if r, _, ok := s.Lookup(&k, 3*Second); !ok || s.flows[r].state != TCPEstablished {
			t.Fatalf("established flow %d lost", i)
		}
	}
}

// An unanswered SYN holds its slot for the SYN_SENT timer of the default
// profile, 120 s (Linux's), not the 240 s transitory timer that
// SYN_RECV and the closing states keep.
func TestSynSentTimerIsShorter(t *testing.T) {
	h := newHarness(t, Policy{})
	unanswered := &conn{t: t, cport: 40001, sport: 50001, cisn: 1000}
	opening := &conn{t: t, cport: 40002, sport: 50002, cisn: 2000, sisn: 9000}
	for _, step := range []struct {
		c *conn
		p Packet
	}{
		{unanswered, unanswered.out(SYN, 1000, 0, 0)},
		{opening, opening.out(SYN, 2000, 0, 0)},
		{opening, opening.in(SYNACK, 9000, 2001, 0)},
	} {
		if v := h.send(step.p, step.c.sport); v.Action != Forward {
			t.Fatalf("%+v", v)
		}
	}
	h.clk.Advance(121 * Second)
	if st := h.state(unanswered.out(SYN, 1000, 0, 0).Key); st != StateNone {
		t.Fatalf("unanswered SYN still tracked after 121 s: %v", st)
	}
	if st := h.state(opening.out(SYN, 2000, 0, 0).Key); st != TCPSynRecv {
		t.Fatalf("SYN_RECV flow after 121 s: %v", st)
	}
}

// New flows at a full table: refused (nothing evictable) or opened by
// evicting the oldest SYN_SENT entry never allocate.
func TestFullTableNoAllocs(t *testing.T) {
	for _, synSent := range []bool{false, true} {
		tb, err := New(Config{MaxFlows: 256, Memory: MemoryHeap, HistorySize: 16, EventRingSize: 16})
		if err != nil {
			t.Fatal(err)
		}
		s := tb.Shard(0)
		if synSent {
			synFlood(s, 0, 256, Second)
		} else {
			for i := 0; i < 256; i++ {
				establishOne(t, s, i, Second)
			}
		}
		i := 1000
		allocs := testing.AllocsPerRun(200, func() {
			k, _, _ := synthKey(i, false)
			i++
			p := Packet{Key: k, Flags: SYN, Seq: 1, Window: 1000, WScale: -1}
			if v := s.Track(&p, 2*Second); v.Action == Open {
				s.Create(&p, NewFlow{}, 2*Second)
			}
		})
		st := tb.Stats()
		tb.Close()
		if allocs != 0 {
			t.Fatalf("synSent %v: %v allocations per new flow", synSent, allocs)
		}
		if synSent && st.Counters[CtrEvictedSynSent] == 0 || !synSent && st.Drops[drop.TableFull] == 0 {
			t.Fatalf("synSent %v: the path under test was not taken: %+v", synSent, st.Counters)
		}
	}
}

// BenchmarkFullTable measures a new TCP flow (Track's miss, then Create) at
// a full table of 64k slots: refused because every flow is established
// (table_full, counted, with an event), or opened by evicting the oldest
// unanswered SYN_SENT entry (a SYN flood's steady state).
func BenchmarkFullTable(b *testing.B) {
	const slots = 1 << 16
	for _, synSent := range []bool{false, true} {
		name := "refuse"
		if synSent {
			name = "evict_syn_sent"
		}
		b.Run(name, func(b *testing.B) {
			tb, err := New(Config{MaxFlows: slots, HistorySize: 1024})
			if err != nil {
				b.Fatal(err)
			}
			defer tb.Close()
			s := tb.Shard(0)
			if synSent {
				synFlood(s, 0, slots, Second)
			} else {
				establish(b, tb, s, slots, false, Second)
			}
			pk := make([]Packet, 1<<16)
			for i := range pk {
				k, _, _ := synthKey(slots+i, false)
				pk[i] = Packet{Key: k, Flags: SYN, Seq: uint32(i), Window: 1000, WScale: -1}
			}
			now := 2 * Second
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p := &pk[i&(len(pk)-1)]
				v := s.Track(p, now)
				if v.Action == Open {
					v = s.Create(p, NewFlow{}, now)
				}
				if synSent == (v.Action == Drop) {
					b.Fatalf("%d: %+v", i, v)
				}
			}
		})
	}
}
