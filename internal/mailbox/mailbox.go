// Package mailbox hands requests from control-plane goroutines to the single
// goroutine that owns some state (a conntrack shard, a SNAT allocator), so
// that the owner never blocks and never shares its state.
//
// A Mailbox holds at most one pending request. A caller leaves it with Call
// and waits. The owner calls Take once per loop iteration (one atomic load
// when nothing is pending), serves the request it gets, a bounded chunk of
// work, and calls Done.
//
// Take claims the request with a compare-and-swap before the owner reads it,
// and a caller whose context ends (or whose timeout passes) withdraws it
// with the same compare-and-swap, so exactly one of the two wins: either the
// owner never sees the request and Call reports it not served, or the owner
// serves it and Call waits for that bounded chunk to finish. A request is
// never served after its caller gave up, and a late owner can never clear
// the next caller's request: the next Call always finds the mailbox empty.
//
// Call serializes its callers; a caller that needs several chunks in a row
// without another caller's request between them holds its own lock around
// its calls.
package mailbox

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Mailbox passes requests of type T to one owner goroutine. The zero value
// is an empty mailbox. It must not be copied after first use.
type Mailbox[T any] struct {
	mu      sync.Mutex // callers: one request in flight at a time
	pending atomic.Pointer[T]
	done    chan struct{} // owner -> caller: the claimed request was served (capacity 1)
}

// Call leaves r in the mailbox and waits until the owner has served it
// (true), or until ctx ends or timeout passes (timeout <= 0: no limit)
// without the owner having claimed it (false: the owner never reads r).
// Once the owner has claimed r, Call waits for Done whatever ctx says: the
// owner serves one bounded chunk. Safe from any goroutine.
func (m *Mailbox[T]) Call(ctx context.Context, r *T, timeout time.Duration) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		m.done = make(chan struct{}, 1)
	}
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	m.pending.Store(r)
	select {
	case <-m.done:
		return true
	case <-ctx.Done():
	case <-expired:
	}
	if m.pending.CompareAndSwap(r, nil) {
		return false
	}
	<-m.done // the owner claimed r first
	return true
}

// Take claims the pending request, if any, for the owner to serve; the
// owner must call Done when it has. Owner only; it never allocates.
func (m *Mailbox[T]) Take() *T {
	r := m.pending.Load()
	if r == nil || !m.pending.CompareAndSwap(r, nil) {
		return nil // empty, or withdrawn by its caller
	}
	return r
}

// Done tells the caller that the request Take returned has been served;
// the owner must not touch it afterwards. Owner only.
func (m *Mailbox[T]) Done() { m.done <- struct{}{} }
