package dataplane

// How a worker waits for packets. An iteration of the worker's loop (run)
// that found nothing to do either yields the CPU (sched_yield: cheap, the
// worker stays runnable, and the NAPI kthread that fills its RX ring, which
// often shares its CPU, runs at once) or sleeps in poll() until a socket or
// the wake eventfd is readable (a sleep and a wake-up cost a few
// microseconds of CPU, and the first packet after it waits for the
// wake-up).
//
// Yielding pays when the next packet is near: under load the RX ring is
// empty only while the kthread that fills it waits for the CPU, and the
// first yield or two hand it over. It is waste when packets are sparse: at
// 50 kpps (one packet every 20 us) a fixed 16 yields took most of the gap,
// per packet, so the worker used most of a CPU to forward 50,000 packets a
// second. idlePolicy adapts how many yields an idle stretch may take from
// what the last stretches found:
//
//   - a stretch that ended with work after some yields: yielding paid, the
//     next stretch may take twice as many (up to spinYields);
//   - a stretch that used all its yields and slept: yielding was waste,
//     the next may take half as many (down to none: sleep at once);
//   - a sleep that ended with a dense batch waiting (denseWake frames or
//     more): the traffic came back while the worker slept, so it yields
//     fully again.
//
// Busy polling (Config.BusyPoll, for a dedicated core): the worker's
// receive calls recvfrom on each socket every iteration, which with
// SO_BUSY_POLL set runs the queue's NAPI poll in the worker's own thread
// (up to SO_BUSY_POLL_BUDGET packets) instead of waiting for the kthread,
// and an idle worker keeps polling (yielding in between) until no packet
// came for BusyPoll.Usec, then sleeps as usual. Whether it helps depends on
// the driver: the socket must carry the NAPI ID of its queue
// (SO_INCOMING_NAPI_ID), which Engine logs at start.

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/conntrack"
)

// BusyPoll configures busy polling of the AF_XDP sockets (xdp.busy_poll).
// The zero value is off.
type BusyPoll struct {
	On bool
	// Usec: SO_BUSY_POLL on each socket, and how long an idle worker keeps
	// polling after the last packet before it sleeps (0: DefaultBusyPollUsec).
	Usec int
	// Budget: SO_BUSY_POLL_BUDGET, packets per busy poll of the NAPI
	// context (0: DefaultBusyPollBudget).
	Budget int
}

// Busy polling defaults and bounds (config checks against the bounds).
const (
	DefaultBusyPollUsec   = 1000
	DefaultBusyPollBudget = batchSize
	MaxBusyPollUsec       = 1_000_000
	MaxBusyPollBudget     = 1024
)

func (b BusyPoll) usec() int {
	if b.Usec > 0 {
		return b.Usec
	}
	return DefaultBusyPollUsec
}

func (b BusyPoll) budget() int {
	if b.Budget > 0 {
		return b.Budget
	}
	return DefaultBusyPollBudget
}

// setBusyPoll applies b to socket fd: SO_PREFER_BUSY_POLL (the queue's
// NAPI context defers to the busy poller while it polls), SO_BUSY_POLL and
// SO_BUSY_POLL_BUDGET. Off, it sets nothing. The error names the option.
func setBusyPoll(fd int, b BusyPoll) error {
	if !b.On {
		return nil
	}
	for _, o := range []struct {
		name string
		opt  int
		val  int
	}{
		{"SO_PREFER_BUSY_POLL", unix.SO_PREFER_BUSY_POLL, 1},
		{"SO_BUSY_POLL", unix.SO_BUSY_POLL, b.usec()},
		{"SO_BUSY_POLL_BUDGET", unix.SO_BUSY_POLL_BUDGET, b.budget()},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o.opt, o.val); err != nil {
			return fmt.Errorf("%s %d: %w", o.name, o.val, err)
		}
	}
	return nil
}

// napiID returns the NAPI ID the kernel recorded for socket fd (the queue
// busy polling drives), 0 if none (yet).
func napiID(fd int) uint32 {
	id, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_INCOMING_NAPI_ID)
	if err != nil {
		return 0
	}
	return uint32(id)
}

// Idle policy constants (see idlePolicy).
const (
	// spinYields: the most sched_yield calls one idle stretch may take
	// before sleeping. sched_yield returns at once when nothing else is
	// runnable (well under a microsecond) and hands the CPU to the NAPI
	// kthread when it is; 16 of them (some 10-20 us) cover the gap between
	// two NAPI batches under load.
	spinYields = 16
	// denseWake: frames found by the first iteration after a sleep that
	// mean the traffic is dense again (a quarter of a batch).
	denseWake = batchSize / 4
)

// idlePolicy decides, for one worker, between yielding and sleeping when an
// iteration found nothing to do (see the top of this file). It is the
// worker's own; the zero value is not usable (newIdlePolicy).
type idlePolicy struct {
	budget int // yields the current idle stretch may take, 0..spinYields
	yields int // yields taken in the current idle stretch
	slept  bool
	// busy polling: an idle worker polls (and yields) for busyFor after
	// the last work, then sleeps; the budget is not used.
	busyFor  conntrack.Time
	lastWork conntrack.Time
	stats    idleStats
}

// idleStats counts the policy's decisions (tests and figures).
type idleStats struct {
	yields, sleeps, denseWakes uint64
}

func newIdlePolicy(b BusyPoll) idlePolicy {
	p := idlePolicy{budget: spinYields}
	if b.On {
		p.busyFor = conntrack.Time(b.usec()) * 1000
	}
	return p
}

// work is told that an iteration found work: got frames (received or
// handed over), at time now.
func (p *idlePolicy) work(got int, now conntrack.Time) {
	p.lastWork = now
	switch {
	case p.slept:
		if got >= denseWake {
			p.budget = spinYields
			p.stats.denseWakes++
		}
	case p.yields > 0:
		p.budget = min(2*p.budget, spinYields)
	}
	p.yields, p.slept = 0, false
}

// idle is told that an iteration found nothing at time now, and reports
// whether to yield the CPU (true) or sleep in poll() (false).
func (p *idlePolicy) idle(now conntrack.Time) bool {
	if p.busyFor > 0 {
		if now-p.lastWork < p.busyFor {
			p.stats.yields++
			return true
		}
	} else if p.yields < p.budget {
		p.yields++
		p.stats.yields++
		return true
	}
	if p.yields > 0 {
		p.budget /= 2
	}
	p.yields, p.slept = 0, true
	p.stats.sleeps++
	return false
}

// setSocketOptions applies the configured socket options to port p's
// socket of queue q (New, after the socket is made).
func (p *port) setSocketOptions(b BusyPoll, q int) error {
	if err := setBusyPoll(p.sock.FD(), b); err != nil {
		return fmt.Errorf("xdp.busy_poll: %s queue %d: %w", p.name, q, err)
	}
	return nil
}

// checkNAPI logs, once a port's socket has received, whether the kernel
// recorded the NAPI context busy polling drives: without one (a driver
// that does not register its queues' NAPI with the core) recvfrom polls
// nothing and busy polling only costs CPU.
func (w *worker) checkNAPI(pi int) {
	p := w.ports[pi]
	if id := napiID(p.sock.FD()); id != 0 {
		w.env.cfg.Logf("dataplane: %s queue %d: busy polling NAPI %d", p.name, w.id, id)
	} else {
		w.env.cfg.Logf("dataplane: %s queue %d: busy polling: the socket has no NAPI ID (the driver does not expose the queue's NAPI): recvfrom polls nothing", p.name, w.id)
	}
}

// sleepPoll is poll(2) for the worker's sleep: ppoll on fds for at most
// timeoutMs milliseconds. It is a raw system call, so the Go runtime does
// not see the worker enter a system call: the worker keeps its P (it owns
// one: Engine.Run sizes GOMAXPROCS for that), and sysmon does not take the
// P back after 20 us and hand it to another thread (a thread wake-up, then
// sysmon polling every 20 us for the next millisecond: thousands of
// wake-ups a second beside a worker that sleeps once per packet). A
// preemption signal (GC, sysmon after 10 ms) interrupts the sleep (EINTR),
// so the world can still stop at once.
func sleepPoll(fds []unix.PollFd, timeoutMs int) int {
	ts := unix.NsecToTimespec(int64(timeoutMs) * 1e6)
	n, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
		uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if errno != 0 {
		return 0
	}
	return int(n)
}
