package conntrack

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// serveLoop serves s's mailbox from its own goroutine, as the owning
// worker does between batches, until the test ends.
func serveLoop(t *testing.T, s *Shard, now Time) {
	t.Helper()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			s.Serve(now)
			time.Sleep(50 * time.Microsecond)
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// A dump whose callback blocks (a client reading slowly) must not hold the
// shard's control lock: Flush, Explain and another dump of the same shard
// go through meanwhile.
func TestDumpCallbackDoesNotBlockControl(t *testing.T) {
	tb, s := newTestTable(t, Policy{})
	const n = 600 // more than one dump chunk (512)
	now := Second
	establish(t, tb, s, n, false, now)
	serveLoop(t, s, now)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	blocked, release := make(chan struct{}), make(chan struct{})
	var seen atomic.Int64
	dumped := make(chan error, 1)
	go func() {
		dumped <- tb.Dump(ctx, Filter{}, now, func(*FlowInfo) bool {
			if seen.Add(1) == 1 {
				close(blocked)
				<-release
			}
			return true
		})
	}()
	<-blocked

	// While the dump's callback is blocked: explain, another dump, flush.
	done := make(chan struct{})
	go func() {
		defer close(done)
		k, _, _ := synthKey(3, false)
		ex, err := tb.Explain(ctx, k, 4, now)
		if err != nil || ex.Current == nil {
			t.Errorf("explain during a blocked dump: %+v %v", ex.Current, err)
		}
		other := 0
		if err := tb.Dump(ctx, Filter{}, now, func(*FlowInfo) bool { other++; return true }); err != nil || other != n {
			t.Errorf("second dump during a blocked dump: %d flows, %v", other, err)
		}
		k5, _, _ := synthKey(5, false)
		p := k5.SrcAddr()
		if got, err := tb.Flush(ctx, Filter{Prefix: netip.PrefixFrom(p, p.BitLen())}, now); err != nil || got != 1 {
			t.Errorf("flush during a blocked dump: %d, %v", got, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Explain/Dump/Flush blocked behind a dump whose callback blocks")
	}
	close(release)
	if err := <-dumped; err != nil {
		t.Fatal(err)
	}
	// One flow was flushed while the dump was paused: it saw n or n-1.
	if got := seen.Load(); got != n && got != n-1 {
		t.Fatalf("the blocked dump saw %d flows, want %d or %d", got, n, n-1)
	}
}

// A shard whose owner never serves fails a request after ServeTimeout even
// when the caller's context has no deadline.
func TestControlServeTimeout(t *testing.T) {
	tb, _ := newTestTable(t, Policy{})
	old := ServeTimeout
	ServeTimeout = 30 * time.Millisecond
	defer func() { ServeTimeout = old }()
	start := time.Now()
	err := tb.Dump(context.Background(), Filter{}, Second, func(*FlowInfo) bool { return true })
	if !errors.Is(err, ErrNotServed) {
		t.Fatalf("dump: %v", err)
	}
	if _, err := tb.Flush(context.Background(), Filter{}, Second); !errors.Is(err, ErrNotServed) {
		t.Fatalf("flush: %v", err)
	}
	if _, err := tb.Explain(context.Background(), Key{}, 1, Second); !errors.Is(err, ErrNotServed) {
		t.Fatalf("explain: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	if s := tb.Shard(0); s.mbox.Take() != nil {
		t.Fatal("a request was left in the mailbox")
	}
}
