package main

import (
	"io"
	"time"
)

// Phase is what the receiver saw during one phase of a run (phases are
// started by SIGUSR1, so a lab script can mark "before the flood" and
// "during the flood").
type Phase struct {
	Bytes   uint64  `json:"bytes"`
	Seconds float64 `json:"seconds"`
	Mbps    float64 `json:"mbps"`
	// MinWindowMbps is the lowest throughput of the phase's full windows
	// (Recorder.Window long).
	MinWindowMbps float64 `json:"min_window_mbps"`
	// MinSecondMbps is the lowest throughput of the phase's full seconds
	// (consecutive 1 s windows from the phase's start; 0 when the phase
	// is shorter than a second): the floor a stall or a slow second
	// shows, where Mbps averages it away.
	MinSecondMbps float64 `json:"min_1s_mbps"`
	// MaxGapMs is the longest time between two arrivals (reads that
	// returned data) in the phase, counting from the phase's start to its
	// first arrival and from its last arrival to its end: a phase with no
	// arrival at all reports its whole length.
	MaxGapMs float64 `json:"max_gap_ms"`
	// MaxGapAtS is when that gap ended, in seconds from the phase's start.
	MaxGapAtS float64 `json:"max_gap_at_s"`
	Reads     uint64  `json:"reads"`
}

// Recorder turns arrivals (time, bytes) into phases. Times are
// nanoseconds on any monotonic clock. Not safe for concurrent use; no
// allocation per arrival.
type Recorder struct {
	Window int64 // window for MinWindowMbps, ns; default 100 ms

	phases []Phase
	start  int64 // current phase's start
	last   int64 // last arrival, 0 none yet
	win    windowMin
	second windowMin
}

// windowMin tracks the lowest throughput of consecutive windows of length
// size from a phase's start.
type windowMin struct {
	size  int64
	start int64
	bytes uint64
	min   float64 // lowest full window, -1 none
}

func (w *windowMin) begin(now int64) { w.start, w.bytes, w.min = now, 0, -1 }

// close accounts the full windows that ended before now (at now too if
// atEnd: an arrival at a window's end belongs to that window).
func (w *windowMin) close(now int64, atEnd bool) {
	for now-w.start > w.size || (atEnd && now-w.start == w.size) {
		m := mbps(w.bytes, w.size)
		if w.min < 0 || m < w.min {
			w.min = m
		}
		w.start += w.size
		w.bytes = 0
	}
}

// NewRecorder starts the first phase at now.
func NewRecorder(now int64, window time.Duration) *Recorder {
	r := &Recorder{Window: int64(window)}
	if r.Window <= 0 {
		r.Window = int64(100 * time.Millisecond)
	}
	r.win.size, r.second.size = r.Window, int64(time.Second)
	r.begin(now)
	return r
}

func (r *Recorder) begin(now int64) {
	r.phases = append(r.phases, Phase{})
	r.start = now
	r.win.begin(now)
	r.second.begin(now)
}

func mbps(bytes uint64, ns int64) float64 {
	if ns <= 0 {
		return 0
	}
	return float64(bytes) * 8 / float64(ns) * 1e3
}

// closeWindows accounts the full windows that ended before now (at now
// too if atEnd: the phase ends at now, so a window ending there is full).
func (r *Recorder) closeWindows(now int64, atEnd bool) {
	r.win.close(now, atEnd)
	r.second.close(now, atEnd)
}

// Add records n bytes that arrived at now.
func (r *Recorder) Add(now int64, n int) {
	r.closeWindows(now, false)
	p := &r.phases[len(r.phases)-1]
	from := max(r.last, r.start) // a gap is clipped to the phase it ends in
	if g := now - from; float64(g)/1e6 > p.MaxGapMs {
		p.MaxGapMs = float64(g) / 1e6
		p.MaxGapAtS = float64(now-r.start) / 1e9
	}
	r.last = now
	p.Bytes += uint64(n)
	p.Reads++
	r.win.bytes += uint64(n)
	r.second.bytes += uint64(n)
}

// finish closes the current phase at now.
func (r *Recorder) finish(now int64) {
	r.closeWindows(now, true)
	p := &r.phases[len(r.phases)-1]
	from := max(r.last, r.start)
	if g := now - from; float64(g)/1e6 > p.MaxGapMs {
		p.MaxGapMs = float64(g) / 1e6 // the silence up to the end counts too
		p.MaxGapAtS = float64(now-r.start) / 1e9
	}
	p.Seconds = float64(now-r.start) / 1e9
	p.Mbps = mbps(p.Bytes, now-r.start)
	p.MinWindowMbps = max(r.win.min, 0)
	p.MinSecondMbps = max(r.second.min, 0)
}

// Mark ends the current phase at now and starts the next.
func (r *Recorder) Mark(now int64) {
	r.finish(now)
	r.begin(now)
}

// Phases ends the current phase at now and returns all of them.
func (r *Recorder) Phases(now int64) []Phase {
	r.finish(now)
	return r.phases
}

// pacer paces a sender at rate bytes per second: Allow(now) says how many
// bytes may be written by now (a token bucket holding at most burst bytes).
type pacer struct {
	rate  float64 // bytes/s; 0 unpaced
	burst float64
	avail float64
	at    int64
}

func (p *pacer) allow(now int64) int {
	if p.rate == 0 {
		return int(p.burst)
	}
	if p.at != 0 {
		p.avail = min(p.burst, p.avail+float64(now-p.at)*p.rate/1e9)
	}
	p.at = now
	return int(p.avail)
}

func (p *pacer) took(n int) {
	if p.rate != 0 {
		p.avail -= float64(n)
	}
}

// send writes to w at rateBps bits per second (0: as fast as it can) in
// writes of at most chunk bytes until stop returns true; it returns the
// bytes written. clock and sleep are the time source (tests fake them).
func send(w io.Writer, rateBps float64, chunk int, stop func() bool, clock func() int64, sleep func(time.Duration)) (uint64, error) {
	buf := make([]byte, chunk)
	p := pacer{rate: rateBps / 8, burst: float64(chunk)}
	var total uint64
	for !stop() {
		n := min(p.allow(clock()), chunk)
		if n < chunk/4 && p.rate != 0 {
			// Wait for a quarter chunk of tokens (at least 100 us).
			need := float64(chunk/4-n) / p.rate * 1e9
			sleep(max(time.Duration(need), 100*time.Microsecond))
			continue
		}
		m, err := w.Write(buf[:n])
		total += uint64(m)
		p.took(m)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
