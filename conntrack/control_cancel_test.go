package conntrack

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// Control requests whose contexts end at random moments, often while the
// owner is serving them, must each return (served or ErrNotServed) and must
// never leave the mailbox stuck: a request withdrawn while the owner served
// it once made the owner clear the next caller's request, and that caller
// waited forever holding the shard's control lock. Run it under -race too:
// the owner must not write into a request its caller has given up.
func TestControlCancelledAtRandomNeverHangs(t *testing.T) {
	tb, s := newTestTable(t, Policy{})
	const n = 600 // more than one dump chunk (512)
	now := Second
	establish(t, tb, s, n, false, now)
	serveLoop(t, s, now)

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for c := 0; c < 3; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 77))
			for i := 0; i < 300; i++ {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(time.Duration(rng.IntN(300))*time.Microsecond, cancel)
				var err error
				switch rng.IntN(3) {
				case 0:
					err = tb.Dump(ctx, Filter{}, now, func(*FlowInfo) bool { return true })
				case 1:
					k, _, _ := synthKey(rng.IntN(n), false)
					_, err = tb.Explain(ctx, k, 2, now)
				case 2:
					_, err = tb.Flush(ctx, Filter{Port: 1}, now) // matches nothing: flows stay
				}
				cancel()
				if err != nil && !errors.Is(err, ErrNotServed) {
					errs <- err
					return
				}
			}
		}(c)
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		t.Fatal("a control request never returned")
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The mailbox still works: a request without a deadline is served.
	got := 0
	if err := tb.Dump(context.Background(), Filter{}, now, func(*FlowInfo) bool { got++; return true }); err != nil || got != n {
		t.Fatalf("dump after the storm: %d flows, %v", got, err)
	}
}
