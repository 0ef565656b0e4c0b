// Package spsc is a lossy single-producer single-consumer ring of fixed-size
// values: the shape of every event ring on edge's packet path (conntrack,
// snat). The producer (a data-plane worker) never waits: when the ring is
// full, Put reports false and the caller counts the loss. The consumer (one
// control-plane reader) drains with Read.
//
// Indices are free-running counters: the slots between head and tail belong
// to the consumer, the rest to the producer, so neither ever touches a slot
// the other may be using (race-free under the Go memory model: the atomic
// store of tail publishes the slot it covers). The zero Ring is unusable:
// call Init.
//
// A producer that records several values per batch may Stage them (a copy
// into the slot, no atomic store) and Publish once per batch; Put is Stage
// then Publish. The producer reads the consumer's head only when its cached
// view of the free space runs out.
package spsc

import "sync/atomic"

// Ring holds values of type T. Put must be called by one goroutine at a
// time and Read/Skip by one (other) goroutine at a time.
type Ring[T any] struct {
	buf   []T
	mask  uint64
	ptail uint64 // producer: next slot to write (published or not)
	phead uint64 // producer: the consumer's head when last read
	_     [64]byte
	head  atomic.Uint64 // next slot to read (consumer)
	_     [56]byte
	tail  atomic.Uint64 // next slot to write (producer)
	_     [56]byte
}

// Init allocates room for size values, rounded up to a power of two.
func (r *Ring[T]) Init(size int) {
	n := 1
	for n < size {
		n <<= 1
	}
	r.buf = make([]T, n)
	r.mask = uint64(n - 1)
}

// Put appends *v and publishes it; it reports false (and drops v) when
// the ring is full.
func (r *Ring[T]) Put(v *T) bool {
	ok := r.Stage(v)
	r.Publish()
	return ok
}

// Stage appends *v without publishing it (Publish does); it reports false
// (and drops v) when the ring is full. Producer only.
func (r *Ring[T]) Stage(v *T) bool {
	if r.ptail-r.phead >= uint64(len(r.buf)) {
		r.phead = r.head.Load()
		if r.ptail-r.phead >= uint64(len(r.buf)) {
			return false
		}
	}
	r.buf[r.ptail&r.mask] = *v
	r.ptail++
	return true
}

// Publish makes the values staged so far visible to the reader. Producer
// only.
func (r *Ring[T]) Publish() {
	if r.tail.Load() != r.ptail {
		r.tail.Store(r.ptail)
	}
}

// Read moves up to len(out) values into out and returns how many.
func (r *Ring[T]) Read(out []T) int {
	h, t := r.head.Load(), r.tail.Load()
	n := 0
	for h != t && n < len(out) {
		out[n] = r.buf[h&r.mask]
		h++
		n++
	}
	r.head.Store(h)
	return n
}

// Skip discards everything queued so far (a new reader starts from now).
func (r *Ring[T]) Skip() { r.head.Store(r.tail.Load()) }
