package conntrack

import (
	"testing"
)

// BenchmarkServeDump measures one chunk of a dump as a worker serves it
// between batches (serveScan: at most serveBudget slots scanned, at most a
// request's capacity of flows copied, 512 as Table.Dump asks), in a table
// as full as bench/ctl-load.sh's (10k flows in 20k slots) and in a 1M one.
// Reported per chunk (ns/op) and per flow copied; a full dump costs the
// worker (flows / 512) chunks. -short skips 1M.
func BenchmarkServeDump(b *testing.B) {
	for _, sz := range []struct {
		name  string
		flows int
		slots int
	}{{"10k", 10_000, 20_000}, {"1M", 1 << 20, 1<<20 + 1<<18}} {
		if testing.Short() && sz.flows > 10_000 {
			continue
		}
		b.Run(sz.name, func(b *testing.B) {
			t, err := New(Config{MaxFlows: sz.slots, Shards: 1, HistorySize: 64})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(t.Close)
			s := t.Shard(0)
			establish(b, t, s, sz.flows, true, Second)
			buf := make([]FlowInfo, 0, 512)
			r := &request{op: opDump, now: 2 * Second}
			copied := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				r.flows = buf[:0]
				s.serveScan(r, 2*Second)
				copied += len(r.flows)
				if r.done {
					r.cursor = 0
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(max(copied, 1)), "ns/flow")
			b.ReportMetric(float64(copied)/float64(b.N), "flows/op")
		})
	}
}
