package dataplane

import (
	"sync"
	"testing"

	"github.com/edgegw/edge/frag"
)

// Engine.Stats carries the fragment tables' counters as the workers
// published them at their last flush, and the neighbour mirror's.
func TestStatsFragmentsAndNeighbours(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	spec := bigUDP(ipClient, ipServer, 5353, 53)
	frags := fragment(t, eth(spec, macClient, macEdgeIn), 0x77, 1480, 1480)

	// Later fragments first: held.
	tp.sendFrames(0, frags[1], frags[2])
	got := tp.e.Stats()
	if f := got.Workers[0].Fragments; f.Held != 2 || f.Released != 0 || f.Noted != 0 {
		t.Errorf("two later fragments held: fragments %+v", f)
	}
	// The first: noted, the two released, the datagram completed.
	tp.sendFrames(0, frags[0])
	got = tp.e.Stats()
	want := tp.w.frags.Stats
	if want.Noted != 1 || want.Released != 2 || want.Completed != 1 {
		t.Fatalf("the table counted %+v; the test expects a noted, released and completed datagram", want)
	}
	if len(got.Workers) != 1 || got.Workers[0].Fragments != want {
		t.Errorf("Stats workers %+v; the table has fragments %+v", got.Workers, want)
	}
	if n := got.Neighbours; n.Entries != 2 || n != tp.e.NeighbourStats() {
		t.Errorf("Stats neighbours %+v, the mirror's %+v (2 entries)", n, tp.e.NeighbourStats())
	}
}

// A reader never sees more held frames leave (released, expired) than
// entered, whatever publish it reads in the middle of.
func TestFragCountersHeldNeverBelowOut(t *testing.T) {
	var c fragCounters
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		var s frag.Stats
		for {
			select {
			case <-done:
				return
			default:
			}
			s.Held += 3
			s.Released += 2
			s.ExpiredHeld++
			c.publish(&s)
		}
	}()
	for range 200000 {
		if s := c.load(); s.Released+s.ExpiredHeld > s.Held {
			close(done)
			wg.Wait()
			t.Fatalf("read held %d, released %d, expired %d", s.Held, s.Released, s.ExpiredHeld)
		}
	}
	close(done)
	wg.Wait()
}
