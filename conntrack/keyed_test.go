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
			t.Fatalf("create %+v (drop %v), want forward", v, drop.Reason(v.Reason))
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
