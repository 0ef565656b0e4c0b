package firewall

import (
	"sync"
	"sync/atomic"
	"testing"
)

// One goroutine swaps rule sets while two match continuously: each Match
// must be the answer of one whole rule set (the old or the new), never a
// mixture, and the race detector must see no unsynchronized access.
func TestSwapWhileMatching(t *testing.T) {
	// Set A allows 10.0.0.0/8 with rule 0 and drops the rest by default;
	// set B rejects everything with rule 1 (rule 0 never matches).
	a := mustCompile(t, RuleSet{Rules: []Rule{{Src: pfx("10.0.0.0/8"), Action: Allow}}})
	b := mustCompile(t, RuleSet{Rules: []Rule{{Proto: ProtoUDP, Action: Allow}, {Action: Reject}}, Default: Allow})
	wantA := Verdict{Rule: 0, Action: Allow}
	wantB := Verdict{Rule: 1, Action: Reject}
	var act Active
	var stop atomic.Bool
	var wg sync.WaitGroup
	var seen [2]atomic.Int64
	var running atomic.Int32 // workers still matching (one that saw a wrong verdict stops)
	running.Store(2)
	iters := 200000
	if raceEnabled {
		iters = 20000
	}
	for w := range 2 {
		wg.Go(func() {
			defer running.Add(-1)
			k := key(ProtoTCP, "10.1.2.3", uint16(1000+w), "1.1.1.1", 443)
			for !stop.Load() {
				c := act.Load()
				v := c.Match(Inside, &k, 0)
				switch {
				case c == nil && v == (Verdict{Rule: -1, Action: Drop}):
				case c.Len() == 1 && v == wantA:
					seen[0].Add(1)
				case c.Len() == 2 && v == wantB:
					seen[1].Add(1)
				default:
					t.Errorf("rule set %p answered %+v", c, v)
					return
				}
			}
		})
	}
	for i := range iters {
		if i%2 == 0 {
			act.Store(a)
		} else {
			act.Store(b)
		}
		if i%1000 == 0 { // recompile set A now and then: a freshly built value
			a = mustCompile(t, RuleSet{Rules: []Rule{{Src: pfx("10.0.0.0/8"), Action: Allow}}})
		}
	}
	for (seen[0].Load() == 0 || seen[1].Load() == 0) && running.Load() == 2 {
		act.Store(a)
		act.Store(b)
	}
	stop.Store(true)
	wg.Wait()
}
