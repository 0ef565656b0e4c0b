package conntrack

import (
	"testing"

	"github.com/edgegw/edge/drop"
)

// The flow index hash is keyed per table and every byte of the key counts:
// two tables hash the same keys differently, and changing any one byte of
// a key changes its hash.
func TestIndexHashKeyedEveryByte(t *testing.T) {
	_, a := newTestTable(t, Policy{})
	_, b := newTestTable(t, Policy{})
	keys := floodKeys(t, 1000)
	same := 0
	for i := range keys {
		if a.hash(&keys[i]) == b.hash(&keys[i]) {
			same++
		}
	}
	if same != 0 {
		t.Fatalf("two tables hash %d of %d keys alike: the index hash is not keyed by the table's seed", same, len(keys))
	}
	k := keys[0]
	h := a.hash(&k)
	for i := range k.bytes() {
		c := k
		c.bytes()[i] ^= 0x10
		if a.hash(&c) == h {
			t.Errorf("byte %d of the key does not change its hash", i)
		}
	}
}

// An entry may lie up to maxProbe-1 positions past its home (insert's
// bound): a lookup must still find it there.
func TestLookupAtTheProbeBound(t *testing.T) {
	_, s := newTestTable(t, Policy{})
	n := len(s.ix.e)
	keys := floodKeys(t, 64)
	for _, k := range keys {
		home := s.ix.home(uint32(s.hash(&k) >> 32))
		r := k.Reverse()
		if d := (s.ix.home(uint32(s.hash(&r)>>32)) - home + n) % n; d < maxProbe {
			continue // the reply key's run would cross the filled positions
		}
		// Every position of k's run but the last allowed one holds an
		// entry of another tag.
		for i := home; i < home+maxProbe-1; i++ {
			s.ix.e[i%n] = makeEntry(uint64(^uint32(0))<<32, 0, Original)
		}
		p := Packet{Key: k, Flags: SYN, Seq: 1, WScale: -1}
		if v := s.Create(&p, NewFlow{}, Second); v.Action != Forward {
			t.Fatalf("create %+v, want forward", v)
		}
		if _, _, ok := s.Lookup(&k, Second); !ok {
			t.Fatalf("a flow whose entry lies %d positions past its home is not found", maxProbe-1)
		}
		if _, _, ok := s.Lookup(&r, Second); !ok {
			t.Fatalf("the reply key is not found")
		}
		return
	}
	t.Fatal("no key whose reply key's home lies away from its run")
}

// A key whose probe run has no free position within maxProbe of its home
// is refused (drop.ProbeLimit); one position free at the bound's last
// place is enough (TestLookupAtTheProbeBound).
func TestProbeRunFullRefused(t *testing.T) {
	tb, s := newTestTable(t, Policy{})
	n := len(s.ix.e)
	for _, k := range floodKeys(t, 64) {
		home := s.ix.home(uint32(s.hash(&k) >> 32))
		r := k.Reverse()
		if d := (s.ix.home(uint32(s.hash(&r)>>32)) - home + n) % n; d < 2*maxProbe {
			continue
		}
		for i := home; i < home+maxProbe; i++ {
			s.ix.e[i%n] = makeEntry(uint64(^uint32(0))<<32, 0, Original)
		}
		p := Packet{Key: k, Flags: SYN, Seq: 1, WScale: -1}
		if v := s.Create(&p, NewFlow{}, Second); v.Action != Drop || v.Reason != drop.ProbeLimit {
			t.Fatalf("create with maxProbe positions taken: %+v, want drop probe_limit", v)
		}
		if tb.Len() != 0 {
			t.Fatalf("%d flows", tb.Len())
		}
		return
	}
	t.Fatal("no key whose reply key's home lies away from its run")
}

// Create checks both keys' probe runs before it takes a slot: in a full
// table, a flow whose reply key has no room is refused without evicting
// anything (an eviction for a flow refused anyway would lose a flow for
// nothing).
func TestProbeLimitEvictsNothing(t *testing.T) {
	const slots = 1024
	tb, err := New(Config{MaxFlows: slots, Memory: MemoryHeap, HistorySize: 16, EventRingSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	s := tb.Shard(0)
	if _, refused := synFlood(s, 0, slots, Second); refused != 0 || tb.Len() != slots {
		t.Fatalf("filling the table: %d refused, %d flows", refused, tb.Len())
	}
	n := len(s.ix.e)
	for _, k := range floodKeys(t, 256) {
		r := k.Reverse()
		hr := s.ix.home(uint32(s.hash(&r) >> 32))
		// k's own first free position must lie outside the run filled below.
		if at := s.ix.free(s.hash(&k)); at < 0 || (at-hr+n)%n < 2*maxProbe {
			continue
		}
		for i := hr; i < hr+maxProbe; i++ {
			if s.ix.e[i%n] == 0 {
				s.ix.e[i%n] = makeEntry(uint64(^uint32(0))<<32, 0, Original)
			}
		}
		p := Packet{Key: k, Flags: SYN, Seq: 1, WScale: -1}
		if v := s.Track(&p, 2*Second); v.Action != Open {
			t.Fatalf("track %+v", v)
		}
		v := s.Create(&p, NewFlow{}, 2*Second)
		st := tb.Stats()
		if v.Action != Drop || v.Reason != drop.ProbeLimit || st.Counters[CtrEvictedSynSent] != 0 || tb.Len() != slots {
			t.Fatalf("create %+v; %d SYN_SENT evicted, %d flows; want drop probe_limit, none evicted, %d flows",
				v, st.Counters[CtrEvictedSynSent], tb.Len(), slots)
		}
		return
	}
	t.Fatal("no key whose run lies away from its reply key's")
}
