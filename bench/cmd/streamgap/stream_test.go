package main

import (
	"math"
	"testing"
	"time"
)

const ms = int64(time.Millisecond)

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// TestRecorderPhases: a steady stream (10,000 bytes every millisecond,
// 80 Mbit/s), then a phase with a 300 ms stall in the middle, then a
// phase that ends in silence.
func TestRecorderPhases(t *testing.T) {
	now := 1000 * ms
	r := NewRecorder(now, 100*time.Millisecond)
	for i := 0; i < 1000; i++ {
		now += ms
		r.Add(now, 10_000)
	}
	r.Mark(now)
	for i := 0; i < 1000; i++ {
		now += ms
		if i >= 500 && i < 800 {
			continue // nothing arrives for 300 ms
		}
		r.Add(now, 10_000)
	}
	r.Mark(now)
	now += 50 * ms
	r.Add(now, 10_000) // the gap from the phase's start: 50 ms
	now += 20 * ms
	ph := r.Phases(now + 120*ms) // then 120 ms of silence to the end
	if len(ph) != 3 {
		t.Fatalf("%d phases, want 3", len(ph))
	}
	p := ph[0]
	if p.Bytes != 10_000_000 || !near(p.Mbps, 80, 0.01) || !near(p.MaxGapMs, 1, 1e-9) || !near(p.MinWindowMbps, 80, 0.01) || p.Reads != 1000 {
		t.Fatalf("steady phase: %+v", p)
	}
	p = ph[1]
	if p.Bytes != 7_000_000 || !near(p.Mbps, 56, 0.01) || !near(p.MaxGapMs, 301, 1e-9) || p.MinWindowMbps != 0 {
		t.Fatalf("stalled phase: %+v", p)
	}
	if !near(p.MaxGapAtS, 0.801, 1e-9) {
		t.Fatalf("stall ended at %v s into the phase, want 0.801", p.MaxGapAtS)
	}
	p = ph[2]
	if p.Bytes != 10_000 || !near(p.MaxGapMs, 140, 1e-9) || !near(p.Seconds, 0.19, 1e-9) {
		t.Fatalf("last phase: %+v", p)
	}
}

// TestRecorderNoArrival: a phase without any arrival reports its whole
// length as the gap and zero throughput.
func TestRecorderNoArrival(t *testing.T) {
	r := NewRecorder(5*ms, 0)
	ph := r.Phases(5*ms + 2500*ms)
	if p := ph[0]; p.Bytes != 0 || p.Mbps != 0 || !near(p.MaxGapMs, 2500, 1e-9) || p.MinWindowMbps != 0 {
		t.Fatalf("%+v", p)
	}
}

func TestRecorderAddZeroAllocs(t *testing.T) {
	r := NewRecorder(ms, 0)
	now := ms
	if a := testing.AllocsPerRun(1000, func() { now += 10_000; r.Add(now, 1448) }); a != 0 {
		t.Fatalf("Add allocates %v", a)
	}
}

type countWriter struct{ n int }

func (w *countWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// TestSendPaced: on a fake clock, 80 Mbit/s for one second writes
// 10 MB (within one chunk), never more than a chunk at once.
func TestSendPaced(t *testing.T) {
	var now int64 = 1
	clock := func() int64 { now += 2000; return now } // each reading 2 us later
	sleep := func(d time.Duration) { now += int64(d) }
	w := &countWriter{}
	end := now + int64(time.Second)
	n, err := send(w, 80e6, 16<<10, func() bool { return now >= end }, clock, sleep)
	if err != nil || int(n) != w.n {
		t.Fatalf("send: %d, %v (writer saw %d)", n, err, w.n)
	}
	if n < 10_000_000-16<<10 || n > 10_000_000+16<<10 {
		t.Fatalf("paced at 80 Mbit/s for 1 s: %d bytes, want 10,000,000 within a chunk", n)
	}
}

// TestSendBulk: unpaced, every write is a full chunk.
func TestSendBulk(t *testing.T) {
	w := &countWriter{}
	calls := 0
	n, err := send(w, 0, 1000, func() bool { calls++; return calls > 50 }, func() int64 { return 1 }, func(time.Duration) {
		t.Fatal("bulk send slept")
	})
	if err != nil || n != 50_000 {
		t.Fatalf("bulk: %d bytes, %v; want 50,000", n, err)
	}
}

// TestRecorderLowestSecond: the 1 s floor of a phase is its slowest full
// second from the phase's start. A 3.5 s phase at 80 Mbit/s with nothing
// for 700 ms of its second second (24 Mbit/s there) and a trailing half
// second nearly empty (not a full second: not counted); then a phase of
// exactly 2 s whose last second carries 100 ms of data (8 Mbit/s): the
// second ending with the phase counts.
func TestRecorderLowestSecond(t *testing.T) {
	now := 10 * ms
	r := NewRecorder(now, 100*time.Millisecond)
	start := now
	for i := 1; i <= 3000; i++ {
		if i > 1200 && i <= 1900 {
			continue
		}
		r.Add(start+int64(i)*ms, 10_000)
	}
	r.Add(start+3200*ms, 1000)
	now = start + 3500*ms
	r.Mark(now)
	start = now
	for i := 1; i <= 1100; i++ {
		r.Add(start+int64(i)*ms, 10_000)
	}
	ph := r.Phases(start + 2000*ms)
	if p := ph[0]; !near(p.MinSecondMbps, 24, 0.01) || p.MinWindowMbps != 0 {
		t.Fatalf("phase with a 700 ms stall: lowest second %v Mbit/s (want 24), lowest 100 ms %v (want 0)", p.MinSecondMbps, p.MinWindowMbps)
	}
	if p := ph[1]; !near(p.MinSecondMbps, 8, 0.01) {
		t.Fatalf("2 s phase, last second 100 ms of data: lowest second %v Mbit/s, want 8", p.MinSecondMbps)
	}
	short := NewRecorder(0, 0)
	short.Add(500*ms, 1000)
	if p := short.Phases(900 * ms)[0]; p.MinSecondMbps != 0 {
		t.Fatalf("a 0.9 s phase has no full second, got a floor of %v", p.MinSecondMbps)
	}
}
