package spsc

import (
	"sync"
	"testing"
)

func TestRingOrderAndLoss(t *testing.T) {
	var r Ring[int]
	r.Init(3) // rounds to 4
	for i := 0; i < 6; i++ {
		if ok := r.Put(&i); ok != (i < 4) {
			t.Fatalf("Put(%d) = %v", i, ok)
		}
	}
	out := make([]int, 8)
	if n := r.Read(out); n != 4 || out[0] != 0 || out[3] != 3 {
		t.Fatalf("read %d: %v", n, out[:n])
	}
	v := 9
	r.Put(&v)
	r.Skip()
	if n := r.Read(out); n != 0 {
		t.Fatalf("after Skip read %d", n)
	}
}

// Staged values are invisible until Publish; a full ring refuses Stage
// until the reader frees slots.
func TestRingStagePublish(t *testing.T) {
	var r Ring[int]
	r.Init(4)
	out := make([]int, 8)
	for i := 0; i < 6; i++ {
		if ok := r.Stage(&i); ok != (i < 4) {
			t.Fatalf("Stage(%d) = %v", i, ok)
		}
	}
	if n := r.Read(out); n != 0 {
		t.Fatalf("read %d before Publish", n)
	}
	r.Publish()
	if n := r.Read(out); n != 4 || out[0] != 0 || out[3] != 3 {
		t.Fatalf("read %d: %v", n, out[:n])
	}
	v := 7
	if !r.Stage(&v) {
		t.Fatal("Stage after the reader freed the ring")
	}
	r.Publish()
	if n := r.Read(out); n != 1 || out[0] != 7 {
		t.Fatalf("read %d: %v", n, out[:n])
	}
}

// One producer, one consumer, concurrently (run with -race): every value
// read is one that was put, in order, and nothing is read twice.
func TestRingConcurrent(t *testing.T) {
	var r Ring[uint64]
	r.Init(64)
	const n = 100000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint64(1); i <= n; i++ {
			for !r.Put(&i) {
			}
		}
	}()
	buf := make([]uint64, 16)
	next := uint64(1)
	for next <= n {
		k := r.Read(buf)
		for _, v := range buf[:k] {
			if v != next {
				t.Fatalf("read %d, want %d", v, next)
			}
			next++
		}
	}
	wg.Wait()
}
