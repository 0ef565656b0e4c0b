package dataplane

import (
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
)

// twoWorkers returns a kernel-free engine with two workers (rings only).
func twoWorkers(t *testing.T) *Engine {
	t.Helper()
	table, err := conntrack.New(conntrack.Config{MaxFlows: 1024, Shards: 2, HistorySize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(table.Close)
	e := &Engine{table: table, start: time.Now(), stop: make(chan struct{})}
	e.workers = []*worker{newWorker(e, 0), newWorker(e, 1)}
	for _, w := range e.workers {
		w.tr.ring.Init(traceRingSize)
	}
	return e
}

// A flooded worker 0 must not starve worker 1: each round worker 0 fills
// its ring and worker 1 queues perRound records, and the reader takes one
// buffer of 512 (a fair share, 256, exceeds perRound). Worker 1 must lose
// nothing and be read in full. A reader that drains worker 0 first reads
// worker 0 alone, and worker 1's ring (1,024 or 4,096 records) overflows
// within the 40 rounds.
func TestFanInFloodedWorkerDoesNotStarveOthers(t *testing.T) {
	const rounds, perRound, bufLen = 40, 200, 512
	for _, tc := range []struct {
		name string
		// put queues (and publishes) one record from worker w; false: lost.
		put func(e *Engine, w int) bool
		// read reads up to n records and returns how many came from worker 1.
		read func(e *Engine, tr *Trace, n int) int
	}{
		{"events", func(e *Engine, w int) bool {
			ev := Event{Kind: EvDropped, Reason: drop.NoRoute, Worker: uint8(w)}
			ok := e.workers[w].events.Stage(&ev)
			e.workers[w].events.Publish()
			return ok
		}, func(e *Engine, _ *Trace, n int) int {
			out := make([]Event, n)
			from1 := 0
			for _, ev := range out[:e.ReadEvents(out)] {
				from1 += int(ev.Worker)
			}
			return from1
		}},
		{"rule logs", func(e *Engine, w int) bool {
			return e.workers[w].ruleLog.Put(&RuleLog{Rule: int32(w)})
		}, func(e *Engine, _ *Trace, n int) int {
			out := make([]RuleLog, n)
			from1 := 0
			for _, l := range out[:e.ReadRuleLogs(out)] {
				from1 += int(l.Rule)
			}
			return from1
		}},
		{"trace records", func(e *Engine, w int) bool {
			return e.workers[w].tr.ring.Put(&TraceRecord{Session: 1, Worker: uint8(w)})
		}, func(e *Engine, tr *Trace, n int) int {
			out := make([]TraceRecord, n)
			from1 := 0
			for _, r := range out[:tr.Read(out)] {
				from1 += int(r.Worker)
			}
			return from1
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := twoWorkers(t)
			tr := &Trace{e: e, s: &traceSession{id: 1}}
			lost1, read1 := 0, 0
			for r := 0; r < rounds; r++ {
				for tc.put(e, 0) {
				}
				for i := 0; i < perRound; i++ {
					if !tc.put(e, 1) {
						lost1++
					}
				}
				read1 += tc.read(e, tr, bufLen)
			}
			for n := -1; n != 0; read1 += n {
				n = tc.read(e, tr, 1<<16)
			}
			if lost1 != 0 || read1 != rounds*perRound {
				t.Fatalf("worker 1: %d of %d lost to its full ring, %d read", lost1, rounds*perRound, read1)
			}
		})
	}
}
