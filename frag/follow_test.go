package frag

import "testing"

// Every way of a bucket is searched: with one bucket holding Ways
// datagrams, each later fragment finds its own datagram's verdict.
func TestEveryWayFound(t *testing.T) {
	tab := newTable(t, Config{Datagrams: Ways, HoldFrames: 4, FrameSize: 64, Timeout: 100 * ms})
	for i := range Ways {
		k := key(uint32(i))
		v := verdict{forward: true}
		v.newSrc[15] = byte(i)
		if _, ok := tab.Note(&k, 0, v, 8, true); !ok {
			t.Fatalf("datagram %d refused", i)
		}
	}
	for i := range Ways {
		k := key(uint32(i))
		v, st := tab.Follow(&k, 1, nil, 8, 8, true)
		if st != Known || v.newSrc[15] != byte(i) {
			t.Fatalf("datagram %d (way %d of its bucket): %v with verdict %d, want Known with %d", i, i, st, v.newSrc[15], i)
		}
	}
}

// Noting the first fragment restarts the datagram's timer: a later
// fragment held just before its first arrived does not make the verdict
// expire a timeout after it was held.
func TestNoteRestartsTimer(t *testing.T) {
	tab := newTable(t, small)
	k := key(20)
	if _, st := tab.Follow(&k, 0, frame(1, 10), 2960, 8, true); st != Held {
		t.Fatal(st)
	}
	at := small.Timeout - 1
	if held, ok := tab.Note(&k, at, verdict{forward: true}, 1480, true); !ok || len(held) != 1 {
		t.Fatalf("Note: %d held, %v", len(held), ok)
	}
	if _, st := tab.Follow(&k, at+small.Timeout-1, nil, 1480, 1480, true); st != Known {
		t.Fatalf("a timeout after the held fragment, less than one after Note: %v, want Known", st)
	}
}

// The datagram is complete when the bytes seen reach the end of its last
// fragment (offset plus length), not its offset: with the last fragment
// early, a small fragment still on its way must find the verdict.
func TestCompleteAtTheLastFragmentsEnd(t *testing.T) {
	tab := newTable(t, small)
	k := key(21)
	tab.Note(&k, 0, verdict{forward: true}, 1480, true)
	for _, f := range []struct {
		off, n int
		more   bool
	}{{2960, 1000, false}, {1480, 1472, true}, {2952, 8, true}} {
		if _, st := tab.Follow(&k, 1, nil, f.off, f.n, f.more); st != Known {
			t.Fatalf("fragment at %d (%d bytes): %v, want Known", f.off, f.n, st)
		}
	}
	if tab.Stats.Completed != 1 {
		t.Fatalf("Completed = %d after every byte, want 1", tab.Stats.Completed)
	}
}

// Expire visits the buckets round robin: a budget of every bucket frees
// the expired datagrams of all of them, wherever their keys hash.
func TestExpireVisitsEveryBucket(t *testing.T) {
	tab := newTable(t, small)
	for i := range small.HoldFrames {
		k := key(uint32(100 + i))
		if _, st := tab.Follow(&k, 0, frame(1, 10), 8, 8, true); st != Held && st != TableFull {
			t.Fatalf("datagram %d: %v", i, st)
		}
	}
	_, held := tab.Len()
	tab.Expire(small.Timeout, len(tab.slots)/Ways)
	if n, h := tab.Len(); n != 0 || h != 0 || tab.Stats.ExpiredHeld != uint64(held) {
		t.Fatalf("after one sweep at the deadline: %d datagrams, %d of %d frames held (%d counted expired); want none",
			n, h, held, tab.Stats.ExpiredHeld)
	}
	checkPool(t, tab)
}
