package main

import (
	"net/netip"
	"time"
)

// finKey identifies one FIN: its tuple and sequence number (a backend's
// own retransmission of the FIN has the same key).
type finKey struct {
	Tuple
	Seq uint32
}

type pendingFIN struct {
	at    time.Time
	frame []byte
}

// Scheduler decides which captured FINs to re-send and when: each distinct
// FIN of the backend (tuple and sequence number) once, Delay after it was
// first seen, at most Max waiting at a time (more are counted as skipped).
// Every is the fraction of FINs to inject: 1 injects every one, 3 every
// third. Not safe for concurrent use.
type Scheduler struct {
	Backend netip.AddrPort
	Delay   time.Duration
	Every   int
	Max     int
	// CountOnly counts the FINs and schedules none.
	CountOnly bool

	seen    map[finKey]time.Time // FINs already taken (or passed over), forgotten after forget
	pending []pendingFIN         // in time order (same delay for all)
	n       uint64

	Seen, Scheduled, Skipped uint64
}

// Observe looks at a frame the backend sent. It reports whether the frame
// was a backend FIN that was scheduled for re-sending.
func (s *Scheduler) Observe(frame []byte, now time.Time) bool {
	seg, ok := ParseTCP(frame)
	if !ok || !IsBackendFIN(&seg, s.Backend) {
		return false
	}
	if s.seen == nil {
		s.seen = map[finKey]time.Time{}
	}
	k := finKey{seg.Tuple, seg.Seq}
	if _, dup := s.seen[k]; dup {
		return false
	}
	s.seen[k] = now
	s.Seen++
	s.n++
	if s.CountOnly {
		return false
	}
	if s.Every > 1 && s.n%uint64(s.Every) != 0 {
		return false
	}
	if s.Max > 0 && len(s.pending) >= s.Max {
		s.Skipped++
		return false
	}
	f := RewriteForInjection(frame)
	if f == nil {
		return false
	}
	s.pending = append(s.pending, pendingFIN{at: now.Add(s.Delay), frame: f})
	s.Scheduled++
	return true
}

// Due returns the frames whose time has come, oldest first, and forgets
// FINs seen long ago.
func (s *Scheduler) Due(now time.Time) [][]byte {
	i := 0
	for i < len(s.pending) && !s.pending[i].at.After(now) {
		i++
	}
	var out [][]byte
	for _, p := range s.pending[:i] {
		out = append(out, p.frame)
	}
	s.pending = append(s.pending[:0], s.pending[i:]...)
	if len(s.seen) > 4096 {
		forget := 4*s.Delay + 10*time.Second
		for k, t := range s.seen {
			if now.Sub(t) > forget {
				delete(s.seen, k)
			}
		}
	}
	return out
}

// Pending is the number of FINs waiting for their time.
func (s *Scheduler) Pending() int { return len(s.pending) }
