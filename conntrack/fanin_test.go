package conntrack

import "testing"

// A flooded shard must not starve another: each round shard 0 fills its
// event ring and shard 1 queues 200 events, and the reader takes one
// buffer of 512 (a fair share, 256, exceeds 200). Shard 1 must lose
// nothing and be read in full; a reader that drains shard 0 first reads
// shard 0 alone, and shard 1's ring overflows within the 40 rounds.
func TestReadEventsFloodedShardDoesNotStarveOthers(t *testing.T) {
	tb, err := New(Config{MaxFlows: 1024, Shards: 2, HistorySize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	const rounds, perRound = 40, 200
	lost1, read1 := 0, 0
	out := make([]Event, 512)
	for r := 0; r < rounds; r++ {
		for tb.Shard(0).events.Put(&Event{Shard: 0}) {
		}
		for i := 0; i < perRound; i++ {
			if !tb.Shard(1).events.Put(&Event{Shard: 1}) {
				lost1++
			}
		}
		for _, e := range out[:tb.ReadEvents(out)] {
			read1 += int(e.Shard)
		}
	}
	for n := -1; n != 0; {
		n = tb.ReadEvents(out)
		for _, e := range out[:n] {
			read1 += int(e.Shard)
		}
	}
	if lost1 != 0 || read1 != rounds*perRound {
		t.Fatalf("shard 1: %d of %d events lost to its full ring, %d read", lost1, rounds*perRound, read1)
	}
}
