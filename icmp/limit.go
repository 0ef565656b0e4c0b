package icmp

import "github.com/edgegw/edge/conntrack"

const (
	// DefaultRate is the Limiter's rate when none is set: errors per second.
	DefaultRate = 100
	// DefaultBurst is the Limiter's burst when none is set.
	DefaultBurst = 50
)

// Limiter is a token bucket that bounds the ICMP errors one worker sends:
// at most burst at once, refilled at rate per second. RFC 1812 4.3.2.8: "A
// router SHOULD also be able to limit the rate at which it sends other sorts
// of ICMP error messages (Destination Unreachable, Redirect, Time Exceeded,
// Parameter Problem)"; RFC 4443 2.4(f): "an IPv6 node MUST limit the rate of
// ICMPv6 error messages it originates", a token bucket being the method it
// recommends.
//
// It is the generic cell rate algorithm (a token bucket kept as one
// timestamp, the theoretical arrival time of the next error): exact integer
// arithmetic, no division per call. Time is passed in (conntrack.Time,
// nanoseconds on the worker's monotonic clock). A clock that steps back
// refills nothing; a full bucket is available at the first call.
//
// A Limiter belongs to one worker: no method may be called concurrently.
// Its zero value is ready to use with DefaultRate and DefaultBurst.
// Refusals are counted by Refused; the caller counts them as
// drop.ICMPRateLimited in its drop counters as well.
type Limiter struct {
	interval conntrack.Time // time per token; 0: the defaults
	window   conntrack.Time // burst * interval
	tat      conntrack.Time // theoretical arrival time
	started  bool
	refused  uint64
}

// NewLimiter returns a Limiter that allows burst errors at once and rate per
// second after that; 0 for either means its default. A rate above 1e9 per
// second is treated as 1e9 (one per nanosecond).
func NewLimiter(rate, burst uint32) Limiter {
	if rate == 0 {
		rate = DefaultRate
	}
	if burst == 0 {
		burst = DefaultBurst
	}
	iv := conntrack.Second / conntrack.Time(rate)
	if iv == 0 {
		iv = 1
	}
	return Limiter{interval: iv, window: iv * conntrack.Time(burst)}
}

// Allow reports whether an error may be sent at time now, taking a token if
// so. It never allocates.
func (l *Limiter) Allow(now conntrack.Time) bool {
	iv, w := l.interval, l.window
	if iv == 0 {
		iv = conntrack.Second / DefaultRate
		w = iv * DefaultBurst
	}
	if !l.started {
		l.started, l.tat = true, now
	}
	t := max(l.tat, now) + iv
	if t-now > w {
		l.refused++
		return false
	}
	l.tat = t
	return true
}

// Refused returns how many times Allow said no.
func (l *Limiter) Refused() uint64 { return l.refused }
