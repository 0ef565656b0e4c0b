package dataplane

import (
	"bytes"
	"sync"
	"testing"
)

func TestHandoffRing(t *testing.T) {
	h := newHandoff(3) // rounds to 4
	for i := 0; i < 5; i++ {
		if ok := h.put(i%2, []byte{byte(i), 1, 2}); ok != (i < 4) {
			t.Fatalf("put %d = %v", i, ok)
		}
	}
	if n := h.peek(8); n != 4 {
		t.Fatalf("peek %d", n)
	}
	if s := h.slot(2); s.port != 0 || !bytes.Equal(s.buf[:s.n], []byte{2, 1, 2}) {
		t.Fatalf("slot 2: port %d %x", s.port, s.buf[:s.n])
	}
	if h.put(0, []byte{9}) {
		t.Fatal("put into a full ring before release")
	}
	h.release(2)
	if n := h.peek(8); n != 2 || h.slot(0).buf[0] != 2 {
		t.Fatalf("after release: peek %d first %d", n, h.slot(0).buf[0])
	}
	if !h.put(1, make([]byte, 2048)) || h.put(1, make([]byte, 2049)) {
		t.Fatal("frame size limits")
	}
}

// One producer and one consumer concurrently (run with -race): frames come
// out whole and in order.
func TestHandoffConcurrent(t *testing.T) {
	h := newHandoff(16)
	const n = 20000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			f := []byte{byte(i), byte(i >> 8), byte(i >> 16)}
			for !h.put(i%2, f) {
			}
		}
	}()
	for next := 0; next < n; {
		k := h.peek(8)
		for i := 0; i < k; i++ {
			s := h.slot(i)
			got := int(s.buf[0]) | int(s.buf[1])<<8 | int(s.buf[2])<<16
			if got != next || int(s.port) != next%2 {
				t.Fatalf("got frame %d port %d, want %d", got, s.port, next)
			}
			next++
		}
		h.release(k)
	}
	wg.Wait()
}
