package snat

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Destinations calls whose contexts end at random moments, often while an
// owner is copying a chunk for them, must each return (counts or
// ErrNotServed) and must never leave a mailbox stuck: a request withdrawn
// while the owner served it once made the owner clear the next caller's
// request, and that caller waited forever holding the allocator's control
// lock. Run it under -race too.
func TestDestinationsCancelledAtRandomNeverHangs(t *testing.T) {
	cfg := automap(PortRange{})
	cfg.Destinations = 8192
	h := newHarness(t, 1, 1<<14, cfg)
	const dests = 5000 // two chunks of 4,096 slots
	for i := range dests {
		h.mustOpen(tcpKey(client, 1000, netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), 80))
	}
	stop, owned := make(chan struct{}), make(chan struct{})
	go func() { // the allocator's owner, from now on
		defer close(owned)
		for {
			select {
			case <-stop:
				return
			default:
			}
			h.n.allocs[0].Serve(h.now)
			runtime.Gosched()
		}
	}()
	defer func() { close(stop); <-owned }()

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for c := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 78))
			for range 300 {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(time.Duration(rng.IntN(400))*time.Microsecond, cancel)
				ds, err := h.n.Destinations(ctx)
				cancel()
				switch {
				case errors.Is(err, ErrNotServed):
				case err != nil:
					errs <- err
					return
				case len(ds) != dests:
					errs <- errors.New("a served Destinations missed entries")
					return
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		t.Fatal("a Destinations call never returned")
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ds, err := h.n.Destinations(context.Background()); err != nil || len(ds) != dests {
		t.Fatalf("after the storm: %d destinations, %v", len(ds), err)
	}
}
