package dataplane

// The pieces of a worker's AF_XDP loop that another forwarder built the same
// way needs: bench/cmd/nullfwd, the benchmark's floor (the null forwarder:
// edge's sockets, rings and waiting, no packet processing), so that edge's
// CPU per packet against it measures edge's own work and nothing else. They
// are the worker's own (same functions, same constants), not copies.

import (
	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/conntrack"
)

// The worker loop's constants (worker.go, poll.go).
const (
	BatchSize      = batchSize      // frames taken from an RX ring per call
	PollTimeoutMs  = pollTimeoutMs  // a sleep's bound when nothing is pending
	WorkerSliceNs  = workerSliceNs  // the worker thread's scheduler slice request
	KickBackoffMin = kickBackoffMin // TX kick backoff while the device drops
	KickBackoffMax = kickBackoffMax
	DefaultRing    = 2048 // descriptors per ring (Config.Ring's default)
)

// DefaultFrames is the UMEM size per queue for rings of ring descriptors
// (Config.Frames's default): two fill rings and two TX rings, full.
func DefaultFrames(ring int) int { return 4 * ring }

// socketOptions are the options of a worker's two sockets: a UMEM of
// frames 2,048-byte frames (the second socket shares the first's), fill,
// completion and TX rings of ring descriptors, an RX ring of twice that
// (see Engine's New).
func socketOptions(frames, ring int, needWakeup, hugepages bool) xdp.SocketOptions {
	return xdp.SocketOptions{NumFrames: frames, FrameSize: 2048, FillRingNumDescs: ring,
		CompletionRingNumDescs: ring, RxRingNumDescs: 2 * ring, TxRingNumDescs: ring,
		NeedWakeup: needWakeup, Hugepages: hugepages}
}

// SocketOptions are the options a worker opens its sockets with (the first
// with xdp.NewSocket, the second with xdp.NewSharedSocket on its UMEM).
func SocketOptions(frames, ring int, needWakeup bool) xdp.SocketOptions {
	return socketOptions(frames, ring, needWakeup, false)
}

// FillTarget is how many frames a worker keeps in each port's fill ring
// (xsk.go).
func FillTarget(frames, ring int) int { return fillTarget(frames, ring) }

// IdlePolicy is the worker's idle policy (poll.go): after an iteration
// that found nothing, yield or sleep.
type IdlePolicy struct{ p idlePolicy }

// NewIdlePolicy returns the policy a worker starts with (b: busy polling,
// the zero value off).
func NewIdlePolicy(b BusyPoll) *IdlePolicy { return &IdlePolicy{newIdlePolicy(b)} }

// Work: an iteration found got frames at time now.
func (p *IdlePolicy) Work(got int, now conntrack.Time) { p.p.work(got, now) }

// Idle: an iteration found nothing at time now; true: yield (SchedYield),
// false: sleep (SleepPoll).
func (p *IdlePolicy) Idle(now conntrack.Time) bool { return p.p.idle(now) }

// Stats returns the yields, sleeps and dense wake-ups decided so far.
func (p *IdlePolicy) Stats() (yields, sleeps, denseWakes uint64) {
	return p.p.stats.yields, p.p.stats.sleeps, p.p.stats.denseWakes
}

// SleepPoll is the worker's sleep: a raw ppoll on fds (poll.go).
func SleepPoll(fds []unix.PollFd, timeoutMs int) int { return sleepPoll(fds, timeoutMs) }

// SchedYield is the worker's yield (worker.go).
func SchedYield() { schedYield() }
