package dataplane

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/conntrack"
)

// stretch drives p through one idle stretch: empty iterations until the
// policy sleeps or yields reaches stopAfter (work found after that many
// yields: -1 never). It returns the yields taken and whether it slept.
func stretch(p *idlePolicy, stopAfter int, now conntrack.Time) (yields int, slept bool) {
	for {
		if yields == stopAfter {
			return yields, false
		}
		if !p.idle(now) {
			return yields, true
		}
		yields++
	}
}

// The idle policy as a transition table: each row is one idle stretch
// (found work after `after` yields, or never: -1) and the work that ended
// it; the budget after the row and whether the stretch slept.
func TestIdlePolicyTransitions(t *testing.T) {
	p := newIdlePolicy(BusyPoll{})
	if p.budget != spinYields {
		t.Fatalf("starts with budget %d, want %d (a fresh worker yields fully)", p.budget, spinYields)
	}
	for i, row := range []struct {
		name       string
		after, got int // yields before work (-1: none came, the worker slept), frames then
		wantYields int
		wantSlept  bool
		wantBudget int
	}{
		{"dense: work on the first yield", 1, 64, 1, false, 16},
		{"sparse: all 16 yields wasted", -1, 1, 16, true, 8},
		{"wasted again", -1, 1, 8, true, 4},
		{"and again", -1, 1, 4, true, 2},
		{"and again", -1, 1, 2, true, 1},
		{"and again: sleeps at once from now on", -1, 1, 1, true, 0},
		{"low rate: a sleep per packet", -1, 1, 0, true, 0},
		{"a wake finding a few frames is still sparse", -1, denseWake - 1, 0, true, 0},
		{"a wake finding a dense batch: yield fully again", -1, denseWake, 0, true, 16},
		{"work within the budget keeps it", 3, 10, 3, false, 16},
		{"wasted", -1, 1, 16, true, 8},
		{"work found while yielding doubles it", 5, 2, 5, false, 16},
		{"wasted", -1, 1, 16, true, 8},
		{"wasted", -1, 1, 8, true, 4},
		{"paid once: doubled, not reset", 2, 1, 2, false, 8},
		{"work with no idle iteration between changes nothing", 0, 64, 0, false, 8},
	} {
		y, slept := stretch(&p, row.after, 0)
		p.work(row.got, 0)
		if y != row.wantYields || slept != row.wantSlept || p.budget != row.wantBudget {
			t.Fatalf("row %d (%s): yields %d slept %v budget %d, want %d %v %d",
				i, row.name, y, slept, p.budget, row.wantYields, row.wantSlept, row.wantBudget)
		}
	}
}

// A timeout (poll() returned with nothing) continues the idle stretch: the
// worker sleeps again at once when its budget is spent, without yielding
// anew.
func TestIdlePolicyTimeoutSleepsAgain(t *testing.T) {
	p := newIdlePolicy(BusyPoll{})
	p.budget = 0
	for i := 0; i < 3; i++ {
		if p.idle(0) {
			t.Fatalf("sleep %d: yielded with a zero budget", i)
		}
	}
	if p.stats.sleeps != 3 || p.stats.yields != 0 {
		t.Fatalf("stats %+v", p.stats)
	}
}

// With busy polling the worker keeps polling for BusyPoll.Usec after the
// last work, whatever the budget, then sleeps.
func TestIdlePolicyBusyPoll(t *testing.T) {
	const us = conntrack.Time(1000)
	p := newIdlePolicy(BusyPoll{On: true, Usec: 50})
	p.work(1, 100*us)
	for _, tc := range []struct {
		at   conntrack.Time
		want bool
	}{
		{100 * us, true},
		{120 * us, true},
		{150*us - 1, true},
		{150 * us, false}, // 50 us without work: sleep
		{151 * us, false},
	} {
		if got := p.idle(tc.at); got != tc.want {
			t.Fatalf("idle at %d us after work: %v, want %v", (tc.at-100*us)/us, got, tc.want)
		}
	}
	p.work(3, 200*us) // a packet after the sleep: polling again
	if !p.idle(249 * us) {
		t.Fatal("not polling 49 us after work")
	}
	if d := newIdlePolicy(BusyPoll{On: true}); d.busyFor != DefaultBusyPollUsec*us {
		t.Fatalf("default window %d ns", d.busyFor)
	}
}

// setBusyPoll sets the options (checked on a UDP socket: they are
// socket-level options), and nothing when off. SO_BUSY_POLL_BUDGET cannot
// be read back (getsockopt does not know it): the error of an out-of-range
// budget shows it is set, and named.
func TestSetBusyPoll(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SO_BUSY_POLL above net.core.busy_read needs CAP_NET_ADMIN: run as root")
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	get := func() [2]int {
		var v [2]int
		for i, opt := range []int{unix.SO_PREFER_BUSY_POLL, unix.SO_BUSY_POLL} {
			if v[i], err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt); err != nil {
				t.Fatal(err)
			}
		}
		return v
	}
	before := get()
	if err := setBusyPoll(fd, BusyPoll{Usec: 77, Budget: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if now := get(); now != before {
		t.Fatalf("off changed the options: %v -> %v", before, now)
	}
	if err := setBusyPoll(fd, BusyPoll{On: true, Usec: 77, Budget: 33}); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != [2]int{1, 77} {
		t.Fatalf("prefer, usec = %v, want [1 77]", got)
	}
	if err := setBusyPoll(fd, BusyPoll{On: true}); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != [2]int{1, DefaultBusyPollUsec} {
		t.Fatalf("default usec: %v", got)
	}
	err = setBusyPoll(fd, BusyPoll{On: true, Budget: 1 << 20}) // above U16_MAX
	if err == nil || !strings.Contains(err.Error(), "SO_BUSY_POLL_BUDGET 1048576") {
		t.Fatalf("an out-of-range budget: %v", err)
	}
}

// The policy's decisions allocate nothing (they run every idle iteration).
func TestIdlePolicyZeroAlloc(t *testing.T) {
	p := newIdlePolicy(BusyPoll{})
	if n := testing.AllocsPerRun(1000, func() {
		for p.idle(0) {
		}
		p.work(1, 0)
	}); n != 0 {
		t.Fatalf("%v allocations per stretch", n)
	}
}

func BenchmarkIdlePolicy(b *testing.B) {
	p := newIdlePolicy(BusyPoll{})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !p.idle(conntrack.Time(i)) {
			p.work(1, conntrack.Time(i))
		}
	}
}
