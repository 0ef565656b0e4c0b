package icmp_test

import (
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/icmp"
)

// allowN calls Allow n times at now and returns how many were allowed.
func allowN(l *icmp.Limiter, now conntrack.Time, n int) int {
	ok := 0
	for range n {
		if l.Allow(now) {
			ok++
		}
	}
	return ok
}

func TestLimiterZeroValueDefaults(t *testing.T) {
	var l icmp.Limiter
	t0 := 1000 * conntrack.Second // an arbitrary epoch
	if got := allowN(&l, t0, 200); got != icmp.DefaultBurst {
		t.Fatalf("burst: %d allowed, want %d", got, icmp.DefaultBurst)
	}
	if l.Refused() != 200-icmp.DefaultBurst {
		t.Errorf("Refused = %d", l.Refused())
	}
	// 100 per second: one token every 10 ms.
	if l.Allow(t0 + 10*conntrack.Millisecond - 1) {
		t.Error("allowed before the first refill")
	}
	if !l.Allow(t0 + 10*conntrack.Millisecond) {
		t.Error("refused after 10 ms")
	}
	if l.Allow(t0 + 10*conntrack.Millisecond) {
		t.Error("two tokens from one refill")
	}
	// Over one second, steady traffic gets the rate.
	now := t0 + conntrack.Second
	ok := 0
	for i := range 1000 { // one attempt per millisecond, for a second
		if l.Allow(now + conntrack.Time(i)*conntrack.Millisecond) {
			ok++
		}
	}
	// The bucket refilled to the burst while idle (~1 s), then 100/s.
	if ok < icmp.DefaultRate+icmp.DefaultBurst-1 || ok > icmp.DefaultRate+icmp.DefaultBurst+1 {
		t.Errorf("%d allowed in a second after a refill, want ~%d", ok, icmp.DefaultRate+icmp.DefaultBurst)
	}
}

func TestLimiterConfigured(t *testing.T) {
	l := icmp.NewLimiter(10, 3) // one per 100 ms, burst 3
	var t0 conntrack.Time
	if got := allowN(&l, t0, 10); got != 3 {
		t.Fatalf("burst %d, want 3", got)
	}
	if got := allowN(&l, t0+250*conntrack.Millisecond, 10); got != 2 {
		t.Errorf("after 250 ms: %d, want 2", got)
	}
	// A long idle time refills to the burst, never more.
	if got := allowN(&l, t0+time(3600), 10); got != 3 {
		t.Errorf("after an hour: %d, want 3", got)
	}
	if l.Refused() != 7+8+7 {
		t.Errorf("Refused = %d, want 22", l.Refused())
	}
}

func time(s int) conntrack.Time { return conntrack.Time(s) * conntrack.Second }

func TestLimiterClockBackwards(t *testing.T) {
	l := icmp.NewLimiter(1, 1)
	t0 := time(100)
	if !l.Allow(t0) {
		t.Fatal("first refused")
	}
	// A clock that steps back refills nothing.
	for _, now := range []conntrack.Time{t0 - time(50), t0 - 1, t0, t0 + time(1) - 1} {
		if l.Allow(now) {
			t.Errorf("allowed at %d", now)
		}
	}
	if !l.Allow(t0 + time(1)) {
		t.Error("refused a second later")
	}
}

func TestLimiterNegativeEpoch(t *testing.T) {
	var l icmp.Limiter
	if got := allowN(&l, -time(5), 100); got != icmp.DefaultBurst {
		t.Errorf("burst at a negative time: %d", got)
	}
}

func TestNewLimiterDefaultsAndExtremes(t *testing.T) {
	l := icmp.NewLimiter(0, 0)
	if got := allowN(&l, 0, 100); got != icmp.DefaultBurst {
		t.Errorf("NewLimiter(0, 0) burst %d", got)
	}
	// A rate above one per nanosecond is one per nanosecond.
	l = icmp.NewLimiter(4e9, 2)
	if got := allowN(&l, 0, 10); got != 2 {
		t.Errorf("burst %d", got)
	}
	if !l.Allow(1) {
		t.Error("refused a nanosecond later")
	}
	// The largest burst does not overflow.
	l = icmp.NewLimiter(1, ^uint32(0))
	if got := allowN(&l, 0, 1000); got != 1000 {
		t.Errorf("huge burst: %d", got)
	}
}
