package mailbox

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type req struct {
	in, out int
	served  int // times the owner served it
}

// Callers cancel at random moments, some while the owner is serving their
// request. Every Call must return; a served request was served exactly
// once, a withdrawn one never (not even later), and the race detector
// checks that the owner never touches a request after its caller returned.
func TestCallCancelledAtRandomNeverHangs(t *testing.T) {
	var m Mailbox[req]
	stop := make(chan struct{})
	ownerDone := make(chan struct{})
	go func() { // the owner
		defer close(ownerDone)
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := m.Take()
			if r == nil {
				runtime.Gosched()
				continue
			}
			for i := rng.IntN(2000); i > 0; i-- { // a chunk of work of random length
				r.out += 0
			}
			r.out = r.in * 2
			r.served++
			m.Done()
		}
	}()

	const callers, calls = 4, 3000
	var served, withdrawn atomic.Int64
	var mu sync.Mutex
	var gaveUp []*req
	var wg sync.WaitGroup
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 9))
			for i := 0; i < calls; i++ {
				r := &req{in: i}
				ctx, cancel := context.WithCancel(context.Background())
				if rng.IntN(2) == 0 {
					d := time.Duration(rng.IntN(30)) * time.Microsecond
					time.AfterFunc(d, cancel)
				} else if rng.IntN(4) == 0 {
					cancel() // already ended: may still be served if the owner is quick
				}
				ok := m.Call(ctx, r, time.Duration(rng.IntN(3))*time.Millisecond)
				cancel()
				if ok {
					if r.served != 1 || r.out != 2*i {
						t.Errorf("served request: served %d times, out %d, want once and %d", r.served, r.out, 2*i)
					}
					served.Add(1)
					continue
				}
				if r.served != 0 {
					t.Errorf("withdrawn request was served %d times", r.served)
				}
				withdrawn.Add(1)
				mu.Lock()
				gaveUp = append(gaveUp, r)
				mu.Unlock()
			}
		}(c)
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		t.Fatal("a Call never returned")
	}
	close(stop)
	<-ownerDone
	for _, r := range gaveUp {
		if r.served != 0 {
			t.Fatalf("withdrawn request served later (%d times)", r.served)
		}
	}
	if served.Load() == 0 || withdrawn.Load() == 0 {
		t.Fatalf("served %d, withdrawn %d: the test exercised only one outcome", served.Load(), withdrawn.Load())
	}
	t.Logf("served %d, withdrawn %d", served.Load(), withdrawn.Load())
}

// With no owner, Call gives up when the context ends or the timeout passes.
func TestCallWithoutOwner(t *testing.T) {
	var m Mailbox[req]
	if m.Call(context.Background(), &req{}, time.Millisecond) {
		t.Fatal("served without an owner (timeout)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if m.Call(ctx, &req{}, 0) {
		t.Fatal("served without an owner (context)")
	}
	if m.Take() != nil {
		t.Fatal("a withdrawn request is still pending")
	}
}

func TestTakeIdleDoesNotAllocate(t *testing.T) {
	var m Mailbox[req]
	if n := testing.AllocsPerRun(100, func() { _ = m.Take() }); n != 0 {
		t.Fatalf("Take allocates %v times", n)
	}
}
