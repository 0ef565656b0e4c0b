package snat

import "testing"

// A flooded allocator must not starve another: each round allocator 0
// fills its event ring and allocator 1 queues a quarter of a ring, and the
// reader takes one buffer of half a ring (a fair share: what allocator 1
// queues). Allocator 1 must lose nothing and be read in full; a reader
// that drains allocator 0 first reads allocator 0 alone, and allocator 1's
// ring overflows by the fifth round.
func TestReadEventsFloodedAllocatorDoesNotStarveOthers(t *testing.T) {
	h := newHarness(t, 2, 1024, automap(PortRange{}))
	const rounds = 20
	perRound := h.n.sizes.eventRing / 4
	lost1, read1 := 0, 0
	out := make([]Event, h.n.sizes.eventRing/2)
	count := func(n int) {
		for _, e := range out[:n] {
			read1 += int(e.Shard)
		}
	}
	for r := 0; r < rounds; r++ {
		for h.n.allocs[0].ev.Put(&Event{Shard: 0}) {
		}
		for i := 0; i < perRound; i++ {
			if !h.n.allocs[1].ev.Put(&Event{Shard: 1}) {
				lost1++
			}
		}
		count(h.n.ReadEvents(out))
	}
	for n := -1; n != 0; count(n) {
		n = h.n.ReadEvents(out)
	}
	if lost1 != 0 || read1 != rounds*perRound {
		t.Fatalf("allocator 1: %d of %d events lost to its full ring, %d read", lost1, rounds*perRound, read1)
	}
}
