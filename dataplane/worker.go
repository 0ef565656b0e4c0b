package dataplane

// The packet pipeline of one worker. A worker is one goroutine, locked to
// an OS thread, that owns the AF_XDP sockets of one queue on each port
// (inside and outside), one conntrack shard and one SNAT allocator; nothing
// it touches per packet is shared, so nothing is locked. Per batch:
//
//	RX ring (port p) ── up to batchSize frames (then frames other workers handed over)
//	  parse        conntrack.Parse over header views; a bad packet is a drop reason;
//	               a frame the XDP program cut (oversize) is answered as over the MTU
//	  check        IP version = EtherType, IPv4 checksum and options, no IPv4 in IPv6
//	               addresses (checkIP), routable addresses, source address: uRPF per
//	               interface (reversePath)
//	  fragments    a later fragment of a UDP/ICMP datagram follows its first fragment's
//	               verdict and addresses, or waits for it (fragment.go)
//	  steer        a flow another worker owns goes to its hand-off ring: a flow is owned
//	               by the shard of its inside endpoint (Table.ShardOfSrc from the inside,
//	               ShardOfDst from the outside), where that endpoint's NAT mapping lives
//	  prefetch     Shard.Prefetch: the batch's lookups, misses overlapped; then one
//	               packet at a time, each acted on before the next is tracked:
//	  track        Shard.TrackPrefetched: the packet's verdict (a drop is counted,
//	               trackDropped)
//	  admit        from the outside, no flow, toward a NAT mapping: the mapping's filter
//	               (snat.Allocator.Admit) -> firewall as the inside endpoint's flow ->
//	               Shard.CreateInbound
//	  hairpin      from the inside toward a NAT mapping: (opened,) translated, then looped
//	               back as if it arrived on the outside, to the worker that owns the mapping
//	  route        Routes.Lookup on the destination after translation (routeDst: a reply
//	               goes to the original source)
//	  check        TTL/hop limit and egress MTU (icmp.Check): an ICMP error quoting the
//	               packet as it arrived (overLimit)
//	  open         first packet of a flow: firewall (zone of p) -> SNAT port ->
//	               Shard.Create; reject -> TCP reset or ICMP (answerRefused)
//	  translate    SNAT rewrite of the original or reply direction (incremental
//	               checksums), RFC 5508 translation of ICMP errors
//	  forward      TTL/hop limit, neighbour MAC, Ethernet rewrite
//	  TX ring      sent from the frame it arrived in (both ports share the worker's UMEM;
//	               hand-offs and generated packets are copied, xsk.go), once per batch
//
// then, per loop: received frames straight back to the fill ring,
// completions taken, TX rings kicked until the kernel has taken everything
// it can (never a drop while a kick would make room); when there is nothing
// to do, sched_yield calls while they find work soon (the NAPI kthread
// that feeds the RX ring often shares the CPU) and then poll() on the
// sockets and a wake eventfd (poll.go explains the policy).
//
// Counters are kept in the worker's own array and published with one atomic
// add per non-zero counter per batch; the control plane sums workers on read.
// Every drop the worker decides (and every ICMP error or reset it sends) is
// also an Event in its lossy event ring (events.go), written only on those
// paths and published with the counters.

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/frag"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/internal/spsc"
	"github.com/edgegw/edge/snat"
)

// RuleLog records a flow's first packet that matched a rule with log set.
type RuleLog struct {
	Time   conntrack.Time
	Key    conntrack.Key
	Rule   int32 // index in the rule set
	Action firewall.Action
	Zone   firewall.Zone
}

const batchSize = 64

// port is one interface as a worker sees it.
type port struct {
	name    string
	ifindex int
	mac     [6]byte
	mtu     int
	zone    firewall.Zone
	sock    *xdp.Socket
	addr4   [16]byte // the box's IPv4 address on this interface (ICMP errors' source)
	addr6   [16]byte // and IPv6 (zero if none)
	// zeroCopy: the sockets of queue 0 are bound in zero-copy mode (Status)
	zeroCopy bool
}

// Counters of one worker, published per batch.
type workerCounters struct {
	_           [64]byte
	rx, tx      [2]atomic.Uint64
	drops       [drop.NumReasons]atomic.Uint64
	created     atomic.Uint64
	icmp        [icmp.NumKinds]atomic.Uint64 // ICMP errors sent, by icmp.Kind
	rst         atomic.Uint64                // TCP resets sent (reject rules)
	ruleLogLost atomic.Uint64                // rule log records lost to a full ring
	handoff     atomic.Uint64                // frames handed to the worker owning their flow
	eventsLost  atomic.Uint64                // events lost to a full event ring
	frags       fragCounters                 // w.frags.Stats as of the last flush
	_           [64]byte
}

func (w *worker) sentICMP(k icmp.Kind) { w.icmpSent[k]++ }

// workerEnv is what a worker uses beyond its own state, handed to it when
// it is made (newWorker): shared, read-only references. The configuration,
// the routes and the rule set sit behind atomic pointers that Apply (and
// the kernel-route refresh) replace whole; the worker loads each once per
// batch or per packet and never reaches back into the Engine. How many
// workers there are is len(worker.outbox).
type workerEnv struct {
	cfg     *Config                 // the fields fixed while running (Logf, BusyPoll)
	cur     *atomic.Pointer[Config] // the configuration in force
	table   *conntrack.Table        // steering (ShardOfSrc, ShardOfDst), interned NAT addresses
	routes  *atomic.Pointer[Routes]
	fw      *firewall.Active
	neigh   *Neighbours
	trace   *traceControl         // edge trace (trace.go)
	capture *captureControl       // edge capture (capture.go)
	clock   func() conntrack.Time // the engine's monotonic clock
}

type worker struct {
	env    workerEnv
	id     int
	cpu    int          // CPU to pin to, -1 for none
	pinned atomic.Int32 // the CPU the thread was pinned to, -1 for none (Status)
	ports  [2]*port
	shard  *conntrack.Shard
	nat    *snat.Allocator // nil without SNAT

	pkts     [batchSize]conntrack.Packet
	frames   [batchSize][]byte
	rxFrames [batchSize][]byte
	txq      [2][batchSize][]byte
	ntx      [2]int

	// per-batch tallies, published by flush
	icmpSent [icmp.NumKinds]uint32
	rstSent  uint32
	drops    [drop.NumReasons]uint32
	rx       [2]uint32
	tx       [2]uint32
	evLost   uint32
	now      conntrack.Time // the batch's time (events)

	limiter icmp.Limiter
	frags   *frag.Table[fragVerdict] // datagrams whose later fragments follow their first (fragment.go)
	fragPkt conntrack.Packet         // a held fragment being released (noteFirst)
	errPkt  conntrack.Packet         // a generated reset's own tuple, for its drop accounting (idlereset.go)
	// fragExpired: frags.Stats.ExpiredHeld already counted as drops
	fragExpired uint64
	lastHop     [2]hopCache  // per port: the last next hop resolved
	resolves    resolveLimit // neighbour resolution requests
	held        neighHold    // packets waiting for their next hop's address (neighhold.go)

	// Hand-off between workers (several queues): outbox[k] carries frames
	// of flows worker k owns; inbox[j] brings frames from worker j.
	outbox     []*handoff // outbox[w.id] is the worker's own loop ring (hairpinned packets)
	inbox      []*handoff
	peers      []*worker // peers[k] is worker k, woken after a hand-off (wakeOwners)
	looped     bool      // the frames in the pipeline were hairpinned (drainInbox)
	taken      [64]int   // slots taken from each inbox this loop, released after transmit
	handedOff  uint32
	woken      uint32                // bit k: frames were handed to worker k this loop (wakeOwners)
	kickAt     [2]conntrack.Time     // per port: no TX kick before this time (kick: device-drop backoff)
	expiredAt  conntrack.Time        // the last conntrack expiry pass (run)
	kickWait   [2]conntrack.Time     // per port: the current backoff, 0 when the last kick saw no drop
	kickFailed [2]bool               // per port: transmit failing (logged once per change)
	wakeFD     int                   // eventfd other workers write to wake this one from poll(); -1: none
	sleeping   atomic.Bool           // in (or about to enter) poll(): producers must write wakeFD
	ruleLog    spsc.Ring[RuleLog]    // first packets of flows that met a rule with log set
	tr         traceState            // edge trace (trace.go)
	cap        captureState          // edge capture (capture.go)
	events     spsc.Ring[Event]      // drops and generated packets (events.go)
	errBufs    [batchSize][2048]byte // ICMP errors generated in this batch
	quote      [1280]byte            // the start of an oversize packet, as an ICMP error quotes it (oversize)
	nerr       int

	ledger frameLedger // where each frame of the worker's UMEM is (xsk.go)

	ctr workerCounters

	testTX func(port int, frame []byte) // golden tests: receives what would be sent
}

// Idle policy (see run and poll.go). The worker shares its vCPU with the
// NAPI kthread that feeds its RX ring (veth, threaded NAPI pinned beside
// it): every microsecond the worker spins is a microsecond the kernel
// cannot spend producing its packets.
const (
	// pollTimeoutMs bounds a sleep: control-plane requests (Shard.Serve)
	// and expiry run between sleeps. Packets and hand-offs wake the worker
	// at once (the sockets' POLLIN, the wake eventfd), so it is not a
	// latency.
	pollTimeoutMs = 10
	// workerSliceNs: the worker thread's scheduler slice request (run).
	workerSliceNs = 100_000
	// Expiry: expireSlots flow slots visited every expireEvery, at most
	// (2.56 million slots a second: a 1M-flow table every 0.4 s; lookups
	// treat expired flows as absent meanwhile). Once per loop iteration,
	// idle ones included, it took 12-18% of a lightly loaded worker's CPU.
	// The NAT's Serve (mapping sweep, quarantine trim) runs with it.
	expireEvery = conntrack.Time(100 * time.Microsecond)
	expireSlots = 256
	// TX kick backoff while the device drops (kick), in conntrack.Time
	// (nanoseconds).
	kickBackoffMin = conntrack.Time(8 * time.Microsecond)
	kickBackoffMax = conntrack.Time(time.Millisecond)
)

// run is the worker's loop until stop is closed.
//
// Each iteration: receive up to batchSize frames per port (and what other
// workers handed over), run them through the pipeline, transmit, give the
// received frames back to the fill ring, take completions, kick the TX
// rings, publish counters. The loop does not sleep while any RX ring or
// inbox has work; when all are empty it yields the CPU as many times as
// the idle policy allows (poll.go: up to 16 while yielding finds work, none
// at low rates; with busy polling, until no packet came for a while) and
// then sleeps in poll() on the sockets and its wake eventfd (at most 1 ms
// while a TX ring still holds frames the kernel would not take).
func (w *worker) run(stop <-chan struct{}) {
	// The thread stays locked to this goroutine; once pinned it is never
	// handed back to the scheduler (it ends with the goroutine).
	runtime.LockOSThread()
	if w.cpu >= 0 {
		var set unix.CPUSet
		set.Set(w.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			w.env.cfg.Logf("dataplane: worker %d: pinning to CPU %d: %v", w.id, w.cpu, err)
		} else {
			w.pinned.Store(int32(w.cpu))
		}
	}
	// A short scheduler slice (EEVDF custom slice, Linux 6.12+; ignored
	// before): on veth with threaded NAPI the kthread that fills our RX
	// ring shares our CPU, and under the default slice (1.4 ms here: 0.7 ms
	// x (1 + log2 CPUs)) it may run that long before our wake-up preempts
	// it: about 2,800 frames at 0.5 us each, more than the 2,048 the RX
	// side holds, the rest dropped (fill_ring_empty). With a 100 us slice
	// the worker, woken by the kernel's flush, preempts it at once
	// (PREEMPT_SHORT) and drains the ring; the CPU share is unchanged
	// (same weight), only the turns are shorter. Measured: fill_ring_empty
	// drops at saturation roughly halved.
	// Policy, nice value and the rest are kept as found (an operator's
	// chrt or renice still applies); only a SCHED_NORMAL thread is changed.
	if a, err := unix.SchedGetAttr(0, 0); err == nil && a.Policy == unix.SCHED_NORMAL {
		a.Runtime = workerSliceNs
		if err := unix.SchedSetAttr(0, a, 0); err != nil {
			w.env.cfg.Logf("dataplane: worker %d: short scheduler slice: %v (keeping the default)", w.id, err)
		}
	}
	var pfds [3]unix.PollFd
	for i, p := range w.ports {
		pfds[i] = unix.PollFd{Fd: int32(p.sock.FD()), Events: unix.POLLIN}
	}
	npfd := 2
	if w.wakeFD >= 0 {
		// Hand-offs from other workers wake us through the eventfd
		// (wakeIfSleeping) instead of a 1 ms poll timeout: the old timeout
		// let a sleeping owner leave its 128-slot inbox full (handoff_full)
		// and added up to 1 ms per hand-off.
		pfds[2] = unix.PollFd{Fd: int32(w.wakeFD), Events: unix.POLLIN}
		npfd = 3
	}
	idle := newIdlePolicy(w.env.cfg.BusyPoll)
	busyPoll := w.env.cfg.BusyPoll.On
	var napiChecked [2]bool
	for {
		select {
		case <-stop:
			return
		default:
		}
		now := w.env.clock()
		got := 0
		var rx [2][]xdp.Desc
		for pi, p := range w.ports {
			if busyPoll {
				// recvfrom busy-polls the queue's NAPI context in this
				// thread (SO_BUSY_POLL), filling the RX ring now.
				p.sock.Wakeup()
			}
			rx[pi] = w.receive(pi)
			if busyPoll && !napiChecked[pi] && len(rx[pi]) > 0 {
				napiChecked[pi] = true
				w.checkNAPI(pi)
			}
			if len(rx[pi]) > 0 {
				got += len(rx[pi])
				w.process(pi, rx[pi], now)
			}
		}
		got += w.drainInbox(now)
		// Send everything first: queued frames are received frames
		// (sent in place), hand-off slots and held packets (copied out by
		// transmit), which must not be released before.
		for pi := range w.ports {
			w.transmit(pi)
		}
		for j, r := range w.inbox {
			if r != nil && w.taken[j] > 0 {
				r.release(w.taken[j])
				w.taken[j] = 0
			}
		}
		w.wakeOwners()
		pending := 0
		for pi, p := range w.ports {
			// Received frames not transmitted are freed, completions
			// taken (a full completion ring stops the kernel's copy-mode
			// send), the fill ring topped up, in the iteration that
			// received them, so it never runs short while the RX ring is
			// drained (xsk.go).
			w.recycle(pi, rx[pi])
			if !busyPoll && len(rx[pi]) == 0 && p.sock.FillNeedsWakeup() {
				p.sock.Wakeup()
			}
			// Frames still in the TX ring (one sendto takes 32, and a
			// receiver's full ring stops it) are kicked again every
			// iteration until the kernel has taken them all.
			pending += w.kick(pi, now)
		}
		w.flush()
		w.shard.Serve(now)
		if now-w.expiredAt >= expireEvery {
			w.shard.Expire(now, expireSlots)
			w.sendExpiredResets(now) // idle_expiry: reset (idlereset.go)
			// The NAT's housekeeping (and its control requests) on the
			// same cadence: each call sweeps 256 mapping slots, which
			// once per iteration cost a worker at 50 kpps 7% of its CPU.
			if w.nat != nil {
				w.nat.Serve(now)
			}
			w.expiredAt = now
		}
		if got > 0 {
			idle.work(got, now)
			continue
		}
		// Nothing received: yield for as long as the idle policy expects
		// work soon (poll.go: fewer yields when they did not pay, none at
		// low rates), then sleep. Frames still pending in a TX ring (the
		// receiver's ring was full: EBUSY) are kicked again on every one
		// of these iterations; yielding gives the receiving end time to
		// drain.
		if idle.idle(now) {
			schedYield()
			continue
		}
		timeout := pollTimeoutMs
		if pending > 0 {
			// Frames wait in a TX ring that the kernel would not take
			// (receiver full, device down): retry within a millisecond
			// (poll() itself also drives the copy-mode send), without
			// spinning on a link that stays congested.
			timeout = 1
		}
		w.sleeping.Store(true)
		// Re-check the inboxes after announcing the sleep: a producer
		// that put a frame before seeing sleeping set would not wake us
		// (wakeIfSleeping); sequentially consistent atomics order the two
		// sides (store sleeping, load tail / store tail, load sleeping).
		if w.inboxPending() {
			w.sleeping.Store(false)
			continue
		}
		n := sleepPoll(pfds[:npfd], timeout)
		w.sleeping.Store(false)
		if n > 0 && npfd == 3 && pfds[2].Revents&unix.POLLIN != 0 {
			var b [8]byte
			_, _ = unix.Read(w.wakeFD, b[:])
		}
	}
}

// schedYield gives the CPU to another runnable thread of the same CPU (the
// NAPI kthread that fills our RX ring), or returns at once when there is
// none. runtime.Gosched would not: it yields the goroutine, not the thread.
func schedYield() { _, _, _ = unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// inboxPending reports whether another worker has handed over frames not
// taken yet.
func (w *worker) inboxPending() bool {
	for _, r := range w.inbox {
		if r != nil && r.peek(1) > 0 {
			return true
		}
	}
	return false
}

// wakeOwners wakes the workers this loop handed frames to, if they sleep
// in poll(): one eventfd write per sleeping owner per loop, nothing when
// they are awake.
func (w *worker) wakeOwners() {
	if w.woken == 0 {
		return
	}
	for k, o := range w.peers {
		if w.woken&(1<<k) != 0 {
			o.wakeIfSleeping()
		}
	}
	w.woken = 0
}

// wakeIfSleeping writes w's wake eventfd when w sleeps (or is about to) in
// poll(). Any goroutine.
func (w *worker) wakeIfSleeping() {
	if w.wakeFD >= 0 && w.sleeping.Load() && w.sleeping.CompareAndSwap(true, false) {
		one := [8]byte{1}
		_, _ = unix.Write(w.wakeFD, one[:])
	}
}

// drainInbox runs the frames other workers handed over through the
// pipeline, in order, grouped by ingress port; their slots are released
// after transmit. It returns how many it took.
func (w *worker) drainInbox(now conntrack.Time) int {
	total := 0
	for j, r := range w.inbox {
		if r == nil {
			continue
		}
		n := r.peek(batchSize)
		for i := 0; i < n; {
			port := int(r.slot(i).port)
			frames := w.rxFrames[:0]
			for ; i < n && int(r.slot(i).port) == port; i++ {
				sl := r.slot(i)
				frames = append(frames, sl.buf[:sl.n])
			}
			w.looped = port&handoffLooped != 0
			w.pipeline(port&^handoffLooped, frames, now)
			w.looped = false
		}
		w.taken[j] = n
		total += n
	}
	return total
}

// process runs one RX batch from port in through the pipeline.
func (w *worker) process(in int, descs []xdp.Desc, now conntrack.Time) {
	src := w.ports[in]
	w.rx[in] += uint32(len(descs)) // counted here, once: handed-over frames are not RX again
	frames := w.rxFrames[:0]
	for i := range descs {
		frames = append(frames, src.sock.GetFrame(descs[i]))
	}
	w.pipeline(in, frames, now)
}

// pipeline is the kernel-free part of the worker: frames received on port
// in go through the stages of the picture above, in its order, one call
// per stage (its drop and answer paths in functions of their own), and
// what is forwarded is queued for transmission (w.txq). Golden tests
// drive it directly.
func (w *worker) pipeline(in int, frames [][]byte, now conntrack.Time) {
	w.now = now
	cfg := w.env.cur.Load()
	w.expireFragments()
	w.traceBatch(now)   // trace hook
	w.captureBatch(now) // capture hook
	w.releaseHeld()
	n := 0
	for _, frame := range frames {
		p := &w.pkts[n]
		later, ok := w.parse(in, n, frame, cfg, now)
		if !ok || !w.check(in, p, frame[header.EthernetLen:], cfg) {
			continue
		}
		if later { // fragments
			w.laterFragment(in, frame, p)
			continue
		}
		if len(w.outbox) > 1 && !w.steer(in, p, frame) {
			continue
		}
		w.frames[n] = frame
		n++
	}
	if w.tr.on { // trace hook
		w.traceKept(n)
	}
	// Each packet is tracked and acted on before the next is tracked, so a
	// verdict never outlives a change it did not see (a flow created or
	// evicted by an earlier packet of the batch).
	w.shard.Prefetch(w.pkts[:n])
	for i := 0; i < n; i++ {
		p := &w.pkts[i]
		ip := w.frames[i][header.EthernetLen:]
		var v conntrack.Verdict
		if w.tr.on { // trace hook: tracked, and traced, in traceTrack
			v = w.traceTrack(in, i, p, now)
		} else {
			v = w.shard.TrackPrefetched(i, p, now)
		}
		if w.cap.on { // capture hook
			w.captureTrack(in, i, p, v)
		}
		if v.Action == conntrack.Drop {
			w.trackDropped(in, p, v.Reason, ip, now)
			continue
		}
		// The flow's translation, which route and translate go by; a new
		// flow has none until open.
		var natAddr, natPort uint16
		if v.Action != conntrack.Open {
			natAddr, natPort = w.shard.NAT(v.Flow)
		} else if w.nat != nil && w.ports[in].zone != firewall.Inside {
			// admit: from the outside, no flow, maybe toward a NAT mapping.
			var ok bool
			if v, ok = w.admit(in, p, v, now); !ok {
				continue
			}
			if v.Action != conntrack.Open {
				natAddr, natPort = w.shard.NAT(v.Flow)
			}
		}
		// hairpin: from the inside toward a NAT mapping.
		if w.nat != nil && p.Kind == conntrack.KindFlow && w.ports[in].zone == firewall.Inside &&
			(v.Action == conntrack.Open || v.Dir == conntrack.Original) && w.nat.NAT().IsAddr(&p.Key.Dst) {
			w.hairpin(in, p, v, w.frames[i], now)
			continue
		}
		out, hop, ok := w.env.routes.Load().Lookup(w.routeDst(p, v, natAddr))
		if !ok {
			w.dropPkt(drop.NoRoute, in, p)
			continue
		}
		// TTL and MTU are judged on the packet as it arrived, so an ICMP
		// error quotes what its sender sent (RFC 1812 4.3.2.3).
		if k, fwd := icmp.Check(ip, uint32(w.ports[out].mtu)); !fwd {
			w.overLimit(in, p, k, ip, out, now)
			continue
		}
		if v.Action == conntrack.Open {
			if v = w.open(in, p, now); v.Action == conntrack.Drop {
				w.answerRefused(in, p, v.Reason, ip, now)
				continue
			}
			natAddr, natPort = w.shard.NAT(v.Flow)
		}
		if natAddr != 0 && !w.translate(in, p, v, ip, conntrack.Translation{Addr: natAddr, Port: natPort}) {
			continue
		}
		if w.forward(in, p, w.frames[i], out, hop) {
			w.noteFirstForwarded(in, p, ip)
			if w.tr.cur != nil { // trace hook
				w.traceForwarded(v, out, hop, now)
			}
		}
	}
	if w.tr.on { // trace hook
		w.traceEnd()
	}
	if w.cap.on { // capture hook
		w.captureEnd()
	}
}

// parse reads the headers of frame (received on port in) into w.pkts[n]
// with conntrack.Parse over header views. A frame edge does not route
// (short, link-layer broadcast or multicast, IP version not its
// EtherType's) or a bad packet is a counted drop (ok false), and a frame
// the XDP program cut (oversize) is answered as over the MTU. later
// reports a later fragment: its transport header is in the first one.
func (w *worker) parse(in, n int, frame []byte, cfg *Config, now conntrack.Time) (later, ok bool) {
	if len(frame) < header.EthernetLen {
		w.drop(drop.Truncated)
		return false, false
	}
	// Link-layer broadcast and multicast are not routed (RFC 1812
	// 5.3.4); the kernel gets what it needs (ARP, ND) from the XDP
	// program.
	if frame[0]&1 != 0 {
		w.drop(drop.NotForwardable)
		return false, false
	}
	if !ipVersionMatches(frame) {
		w.drop(drop.EtherTypeMismatch)
		return false, false
	}
	r := conntrack.Parse(frame[header.EthernetLen:], 0, &w.pkts[n])
	if w.tr.on { // trace hook
		w.traceParsed(in, n, r)
	}
	later = r == drop.Fragment && w.pkts[n].Frag == conntrack.FragLater
	if r != drop.None && !later {
		if r == drop.Truncated && isCutOversize(frame) {
			w.oversize(in, frame[header.EthernetLen:], &w.pkts[n], cfg, now)
			return false, false
		}
		if r == drop.Fragment {
			// A fragment of a protocol edge does not reassemble
			// (TCP): Parse filled its addresses and protocol, which
			// the event carries.
			w.dropPkt(r, in, &w.pkts[n])
			return false, false
		}
		w.drop(r)
		return false, false
	}
	return later, true
}

// check applies the router's checks to packet p (IP packet ip, received on
// port in): the IP header (checkIP), routable addresses (forwardable) and
// the source's reverse path (reversePath). A failure is a counted drop.
func (w *worker) check(in int, p *conntrack.Packet, ip []byte, cfg *Config) bool {
	if r := checkIP(ip, p, cfg); r != drop.None {
		w.dropPkt(r, in, p)
		return false
	}
	if !forwardable(&p.Key) {
		w.dropPkt(drop.NotForwardable, in, p)
		return false
	}
	// A hairpinned packet (looped) has one of edge's own addresses as
	// its source: it was checked when it arrived on the inside.
	if r := w.reversePath(in, cfg.urpfMode(in), ip); r != drop.None && !w.looped {
		w.dropPkt(r, in, p)
		return false
	}
	return true
}

// steer hands packet p (frame, received on port in) to the worker that
// owns its flow when that is another one, and reports whether p stays
// here. The flow's shard is that of its inside endpoint, the same for both
// directions (SNAT chose its port so), whatever queue the NIC put the
// packet on. Only with several workers.
func (w *worker) steer(in int, p *conntrack.Packet, frame []byte) bool {
	owner := w.env.table.ShardOfDst(&p.Key)
	if w.ports[in].zone == firewall.Inside {
		owner = w.env.table.ShardOfSrc(&p.Key)
	}
	if owner == w.id {
		return true
	}
	if w.outbox[owner].put(in, frame) {
		w.handedOff++
		w.woken |= 1 << owner
		if w.tr.cur != nil { // trace hook
			w.traceHandOff(owner)
		}
		if p.Frag == conntrack.FragFirst {
			w.noteFirst(in, p, fragVerdict{owner: int8(owner)})
		}
	} else {
		w.dropPkt(drop.HandoffFull, in, p)
	}
	return false
}

// trackDropped counts packet p (IP packet ip, received on port in), which
// conntrack dropped for reason r (conntrack recorded the event).
func (w *worker) trackDropped(in int, p *conntrack.Packet, r drop.Reason, ip []byte, now conntrack.Time) {
	w.count(r)
	w.noteFirstDrop(in, p, r)
	if r == drop.NSXSynAckOnClosing {
		// NSX compatibility mode only: reproduce the gateway
		// firewall's answer, ICMP port unreachable to the SYN-ACK's
		// sender (deliberately against rule N3).
		w.sendErrorForced(in, p, icmp.PortUnreachable, r, ip, now)
	}
}

// routeDst returns the address packet p (verdict v, its flow translated
// to natAddr, 0 for none) is routed on: its destination once translated. A
// reply (or an error about the flow travelling like one) goes to the
// original source. A new flow is routed (and its TTL and size checked)
// before it is created: a traceroute probe or a packet with no route takes
// no flow and no SNAT port.
func (w *worker) routeDst(p *conntrack.Packet, v conntrack.Verdict, natAddr uint16) *[16]byte {
	if natAddr != 0 && v.Dir == conntrack.Reply {
		return &w.shard.Key(v.Flow).Src
	}
	// For an ICMP error the key is the quoted tuple reversed: its
	// destination is the quoted packet's sender, the error's destination.
	return &p.Key.Dst
}

// overLimit drops packet p (IP packet ip, received on port in), which
// icmp.Check found expiring (TTL, hop limit) or over egress port out's MTU
// and not to be fragmented, and answers it with error k (none: not
// answered, RFC 1812).
func (w *worker) overLimit(in int, p *conntrack.Packet, k icmp.Kind, ip []byte, out int, now conntrack.Time) {
	r := drop.MTUExceeded
	if k == icmp.TimeExceeded {
		r = drop.TTLExceeded
	}
	w.dropPkt(r, in, p)
	if k != icmp.NoError {
		w.sendError(in, p, k, r, ip, uint32(w.ports[out].mtu), now)
	}
}

// answerRefused answers the first packet of a flow open refused for
// reason r (packet p, IP packet ip, received on port in), when the refusal
// is one the sender is told of.
func (w *worker) answerRefused(in int, p *conntrack.Packet, r drop.Reason, ip []byte, now conntrack.Time) {
	switch r {
	case drop.FirewallReject:
		// Reject: TCP gets the reset a closed port would send,
		// everything else ICMP administratively prohibited.
		if p.Key.Proto == header.ProtoTCP {
			w.sendRST(in, p, ip, now)
		} else {
			w.sendError(in, p, icmp.AdminProhibited, r, ip, 0, now)
		}
	case drop.SNATNoAddress:
		// No translated address of the flow's family (an IPv6
		// flow through an IPv4-only pool): refused the way a
		// policy refuses, so the sender gives up at once
		// instead of retrying into silence (rate limited).
		w.sendError(in, p, icmp.AdminProhibited, r, ip, 0, now)
	}
}

// translate rewrites packet p (IP packet ip, received on port in, verdict
// v) for its flow's translation tr: the SNAT rewrite of the original or
// reply direction (incremental checksums), or for an ICMP error about the
// flow the RFC 5508 translation of its outer and quoted headers, both
// directions. A packet that cannot be rewritten is a counted drop.
func (w *worker) translate(in int, p *conntrack.Packet, v conntrack.Verdict, ip []byte, tr conntrack.Translation) bool {
	var r drop.Reason
	switch {
	case p.Kind == conntrack.KindRelated:
		r = icmp.TranslateRelated(ip, p, v.Dir, *w.shard.Key(v.Flow), tr, w.env.table.NATAddr16(tr.Addr))
	case v.Dir == conntrack.Original:
		r = snat.RewriteOriginal(ip, p, tr, w.env.table.NATAddr16(tr.Addr))
	default:
		r = snat.RewriteReply(ip, p, w.shard.Key(v.Flow))
	}
	if r != drop.None {
		w.dropPkt(r, in, p)
		return false
	}
	return true
}

// ipVersionMatches reports whether the IP packet in frame (at least an
// Ethernet header) has the version its EtherType announces: conntrack.Parse
// goes by the version nibble alone, and an IPv4 packet in an IPv6 frame
// must not be forwarded as IPv4. A frame with nothing after the Ethernet
// header passes (Parse counts it truncated).
func ipVersionMatches(frame []byte) bool {
	v := uint8(0)
	if len(frame) > header.EthernetLen {
		v = frame[header.EthernetLen] >> 4
	}
	switch header.Ethernet(frame).EtherType() {
	case header.EtherTypeIPv4:
		return v == 4 || len(frame) == header.EthernetLen
	case header.EtherTypeIPv6:
		return v == 6 || len(frame) == header.EthernetLen
	}
	return false
}

// rxFrameMax is the largest frame an AF_XDP frame receives (MaxMTU plus
// the Ethernet header); the XDP program cuts a longer one to this length.
const rxFrameMax = MaxMTU + header.EthernetLen

// isCutOversize reports whether frame, which conntrack.Parse found
// truncated, is one the XDP program cut to rxFrameMax: an IP header whose
// length field says the packet is longer than the frame holds.
func isCutOversize(frame []byte) bool {
	if len(frame) != rxFrameMax {
		return false
	}
	ip := frame[header.EthernetLen:]
	switch ip[0] >> 4 {
	case 4:
		return int(header.IPv4(ip).TotalLen()) > len(ip) && header.IPv4(ip).HeaderLen() >= header.IPv4MinLen
	case 6:
		return header.IPv6Len+int(header.IPv6(ip).PayloadLen()) > len(ip)
	}
	return false
}

// oversize drops the start ip of a packet larger than an AF_XDP frame holds
// (received on port in; the XDP program cut it, see isCutOversize) and
// answers it as a packet over the MTU: fragmentation needed when DF is set,
// packet too big for IPv6, with the ingress interface's MTU (at most
// MaxMTU), so the sender's path MTU comes down to what edge receives. The
// error quotes the packet's start with its length field (and IPv4 header
// checksum) made to describe the quoted bytes, the original's not fitting:
// what an ICMP error's receiver matches on (addresses, protocol, ports) is
// unchanged. The quote goes through the same checks as any packet
// (checkIP, forwardable, reversePath) before anything is sent; p is
// scratch. Nothing is tracked: the packet is not forwarded.
func (w *worker) oversize(in int, ip []byte, p *conntrack.Packet, cfg *Config, now conntrack.Time) {
	if ip[0]>>4 == 4 && !header.IPv4(ip).IsChecksumValid() {
		w.drop(drop.BadIPChecksum)
		return
	}
	mtu := uint32(min(w.ports[in].mtu, MaxMTU))
	k, _ := icmp.Check(ip, mtu)
	q := w.quote[:copy(w.quote[:], ip)]
	if q[0]>>4 == 4 {
		h := header.IPv4(q)
		h.SetTotalLen(uint16(len(q)))
		h.SetChecksum(h.CalculateChecksum())
	} else {
		header.IPv6(q).SetPayloadLen(uint16(len(q) - header.IPv6Len))
	}
	cutKey(q, p)
	if checkIP(q, p, cfg) != drop.None || !forwardable(&p.Key) || w.reversePath(in, cfg.urpfMode(in), q) != drop.None {
		w.drop(drop.Oversize)
		return
	}
	w.dropPkt(drop.Oversize, in, p)
	if k != icmp.NoError {
		w.sendError(in, p, k, drop.Oversize, q, mtu, now)
	}
}

// cutKey sets p to a packet with the addresses, protocol and (TCP, UDP)
// ports of q, the start of an oversize packet with its length field fixed
// (oversize): conntrack.Parse would refuse its transport header, whose own
// length still says more than is there.
func cutKey(q []byte, p *conntrack.Packet) {
	*p = conntrack.Packet{Kind: conntrack.KindFlow}
	off := 0
	if q[0]>>4 == 4 {
		h := header.IPv4(q)
		p.Key.Src, p.Key.Dst = mapped4(h.Src()), mapped4(h.Dst())
		p.Key.Proto, off = h.Protocol(), h.HeaderLen()
		if h.FragmentOffset() != 0 {
			off = len(q) // no transport header
		}
	} else {
		p.Key.Src, p.Key.Dst = [16]byte(q[8:24]), [16]byte(q[24:40])
		proto, o, frag, ok := header.IPv6(q).Transport()
		p.Key.Proto, off = proto, o
		if !ok || frag.Offset != 0 {
			off = len(q)
		}
	}
	if (p.Key.Proto == header.ProtoTCP || p.Key.Proto == header.ProtoUDP) && off+4 <= len(q) {
		p.Key.SrcPort = binary.BigEndian.Uint16(q[off:])
		p.Key.DstPort = binary.BigEndian.Uint16(q[off+2:])
	}
}

// checkIP applies the router's checks on the IP header of ip, which
// conntrack.Parse accepted as p (lengths valid, IPv4 not a fragment):
// fixed offsets, no allocation.
//
//   - IPv4: the header checksum must be right (RFC 1812 5.2.2): a packet
//     with a wrong one is dropped, never forwarded with the wrong checksum
//     incrementally "updated". Options are walked only when present (IHL
//     above 5): malformed ones are dropped, and so are source routes (LSRR,
//     SSRR; RFC 7126 4.3, 4.4) unless cfg.ForwardSourceRouted. Other
//     options are forwarded as they are.
//   - IPv6: no IPv4-mapped or -compatible address, in the header or in the
//     packet an ICMPv6 error quotes (p.Key): flow keys hold IPv4 in mapped
//     form, so such a packet would open (or match) an IPv4 flow and take
//     an IPv4 SNAT port.
func checkIP(ip []byte, p *conntrack.Packet, cfg *Config) drop.Reason {
	if ip[0]>>4 == 4 {
		h := header.IPv4(ip)
		if !h.IsChecksumValid() {
			return drop.BadIPChecksum
		}
		if h.HeaderLen() > header.IPv4MinLen {
			routed, valid := h.SourceRouted()
			switch {
			case !valid:
				return drop.BadIPOptions
			case routed && !cfg.ForwardSourceRouted:
				return drop.SourceRouted
			}
		}
		return drop.None
	}
	if header.IsIPv4Embedded((*[16]byte)(ip[8:24])) || header.IsIPv4Embedded((*[16]byte)(ip[24:40])) {
		return drop.BadIPv6Address
	}
	// An ICMPv6 error's key is the quoted packet's (a flow's key is the
	// header's addresses, checked above).
	if p.Kind == conntrack.KindRelated && (header.IsIPv4Embedded(&p.Key.Src) || header.IsIPv4Embedded(&p.Key.Dst)) {
		return drop.BadIPv6Address
	}
	return drop.None
}

// URPFMode is the reverse-path check (unicast RPF, RFC 3704) applied to
// the source address of every packet arriving on an interface.
type URPFMode uint8

const (
	// URPFDefault is strict on the inside and loose on the outside: on
	// the inside edge knows every network that may send (RFC 3704 2.4,
	// BCP 38 for an edge); behind the outside lies the rest of the world.
	URPFDefault URPFMode = iota
	// URPFStrict: the route to the source must leave through the
	// interface the packet arrived on (a connected inside network passes).
	URPFStrict
	// URPFLoose: some route to the source must exist (with a default route
	// only edge's own addresses are refused).
	URPFLoose
	// URPFOff: no check.
	URPFOff
)

var urpfNames = [...]string{URPFDefault: "", URPFStrict: "strict", URPFLoose: "loose", URPFOff: "off"}

// String returns the mode's configuration name ("" for URPFDefault).
func (m URPFMode) String() string {
	if int(m) < len(urpfNames) {
		return urpfNames[m]
	}
	return "unknown"
}

// ParseURPFMode returns the mode named s ("" is URPFDefault).
func ParseURPFMode(s string) (URPFMode, bool) {
	for i, n := range urpfNames {
		if n == s {
			return URPFMode(i), true
		}
	}
	return URPFDefault, false
}

// urpfMode returns the reverse-path mode in force on port (0 inside, 1
// outside), its default resolved.
func (c *Config) urpfMode(port int) URPFMode {
	m := c.Inside.URPF
	if port == 1 {
		m = c.Outside.URPF
	}
	if m != URPFDefault {
		return m
	}
	if port == 0 {
		return URPFStrict
	}
	return URPFLoose
}

// reversePath checks the source of the IP packet ip, received on port in,
// under mode: with any mode but off, a source that is one of the box's own
// interface addresses is refused (it cannot come from the wire), then
// strict wants the route back to the source to leave through port in and
// loose wants a route. The outer header's source is checked (for an ICMP
// error it is the reporting router, not the flow's key). One route lookup,
// no allocation.
func (w *worker) reversePath(in int, mode URPFMode, ip []byte) drop.Reason {
	if mode == URPFOff {
		return drop.None
	}
	var src [16]byte
	if ip[0]>>4 == 4 {
		// IPv4-mapped, the last 8 bytes in one store: byte stores
		// (mapped4) read back at once by the 8-byte loads of the
		// comparisons below cannot be forwarded, a stall per packet.
		binary.LittleEndian.PutUint64(src[8:], uint64(binary.LittleEndian.Uint32(ip[12:16]))<<32|0xffff<<16)
	} else {
		src = [16]byte(ip[8:24])
	}
	for _, p := range w.ports {
		if src == p.addr4 || src == p.addr6 {
			return drop.OwnAddressSource
		}
	}
	out, _, ok := w.env.routes.Load().Lookup(&src)
	if !ok || mode == URPFStrict && out != in {
		return drop.URPF
	}
	return drop.None
}

// forwardable reports whether a key's addresses may be routed: never
// unspecified, loopback, multicast, limited broadcast or link-local
// (RFC 1812 5.3.7, RFC 4291 2.5.6), as source or destination.
func forwardable(k *conntrack.Key) bool {
	return unicastRoutable(&k.Src) && unicastRoutable(&k.Dst)
}

func unicastRoutable(a *[16]byte) bool {
	if header.IsV4Mapped(a) {
		switch {
		case a[12] == 0, a[12] == 127, a[12] >= 224, // this network, loopback, multicast, class E + broadcast
			a[12] == 169 && a[13] == 254: // link-local
			return false
		}
		return true
	}
	switch {
	case a[0] == 0xff, // multicast
		a[0] == 0xfe && a[1]&0xc0 == 0x80: // link-local
		return false
	}
	var zero [15]byte
	return [15]byte(a[:15]) != zero || a[15] > 1 // not :: or ::1
}

// sendError answers the packet ip (parsed as p), received on port in, with
// an ICMP error of kind k caused by drop reason cause, unless RFC 1812
// 4.3.2.7 (icmp.MaySend) or the rate limit forbids it; refusals are
// counted, and each outcome is an event.
func (w *worker) sendError(in int, p *conntrack.Packet, k icmp.Kind, cause drop.Reason, ip []byte, mtu uint32, now conntrack.Time) {
	if r := icmp.MaySend(ip, k); r != drop.None {
		w.dropPkt(r, in, p)
		return
	}
	w.buildError(in, p, k, cause, ip, mtu, now)
}

// sendErrorForced is sendError without icmp.MaySend's rules: only the NSX
// compatibility mode uses it, to answer a SYN-ACK as NSX-T does.
func (w *worker) sendErrorForced(in int, p *conntrack.Packet, k icmp.Kind, cause drop.Reason, ip []byte, now conntrack.Time) {
	w.buildError(in, p, k, cause, ip, 0, now)
}

func (w *worker) buildError(in int, p *conntrack.Packet, k icmp.Kind, cause drop.Reason, ip []byte, mtu uint32, now conntrack.Time) {
	buf := w.errBuf(in, p, now)
	if buf == nil {
		return
	}
	src := w.ports[in].addr4
	if ip[0]>>4 == 6 {
		src = w.ports[in].addr6
	}
	n, r := icmp.Build(buf[header.EthernetLen:], k, src, ip, mtu)
	if r != drop.None {
		w.dropPkt(r, in, p)
		return
	}
	if w.sendBack(in, p, buf, n, ip) {
		w.sentICMP(k)
		w.event(EvICMPSent, cause, k, in, p)
	}
}

// sendRST answers the TCP segment ip (parsed as p, received on port in)
// with a reset (reject rules), under the same rate limit as ICMP errors.
func (w *worker) sendRST(in int, p *conntrack.Packet, ip []byte, now conntrack.Time) {
	buf := w.errBuf(in, p, now)
	if buf == nil {
		return
	}
	n, r := icmp.BuildRST(buf[header.EthernetLen:], ip)
	if r != drop.None {
		w.dropPkt(r, in, p)
		return
	}
	if w.sendBack(in, p, buf, n, ip) {
		w.rstSent++
		w.event(EvRSTSent, drop.FirewallReject, icmp.NoError, in, p)
		w.shard.NoteRSTSent(&p.Key) // per-destination signal (conntrack/dest.go)
	}
}

// errBuf returns a buffer for one generated packet (Ethernet header room
// first), or nil when the rate limit or the batch's buffers are used up
// (counted against packet p).
func (w *worker) errBuf(in int, p *conntrack.Packet, now conntrack.Time) []byte {
	if !w.limiter.Allow(now) {
		w.dropPkt(drop.ICMPRateLimited, in, p)
		return nil
	}
	if w.nerr == len(w.errBufs) {
		w.dropPkt(drop.TxFull, in, p)
		return nil
	}
	w.nerr++
	return w.errBufs[w.nerr-1][:]
}

// sendBack queues the generated IP packet of length n in buf (after its
// Ethernet header room) toward the source of ip (packet p, from port in).
func (w *worker) sendBack(in int, p *conntrack.Packet, buf []byte, n int, ip []byte) bool {
	var dst [16]byte
	if ip[0]>>4 == 4 {
		dst = [16]byte{10: 0xff, 11: 0xff}
		copy(dst[12:], ip[12:16])
		binary.BigEndian.PutUint16(buf[12:], header.EtherTypeIPv4)
	} else {
		copy(dst[:], ip[8:24])
		binary.BigEndian.PutUint16(buf[12:], header.EtherTypeIPv6)
	}
	out, hop, ok := w.env.routes.Load().Lookup(&dst)
	if !ok {
		w.dropPkt(drop.NoRoute, in, p)
		return false
	}
	return w.queue(in, p, buf[:header.EthernetLen+n], out, hop)
}

// open decides a flow's first packet, received on port in: firewall by the
// zone it arrived from, then SNAT for flows from the inside, then Create.
// Drops are counted: the firewall's and SNAT's with an event here,
// Create's refusals with conntrack's.
func (w *worker) open(in int, p *conntrack.Packet, now conntrack.Time) conntrack.Verdict {
	src := w.ports[in]
	fw := w.env.fw.Load()
	fv := fw.Match(src.zone, &p.Key, p.ICMPType)
	if w.tr.cur != nil { // trace hook
		w.traceRule(fv, fw.FlowRule(fv.Rule))
	}
	if fv.Log {
		// A rule with log set: record the decision (lossy ring, counted
		// when full; read by Engine.ReadRuleLogs).
		e := RuleLog{Time: now, Key: p.Key, Rule: fv.Rule, Action: fv.Action, Zone: src.zone}
		if !w.ruleLog.Put(&e) {
			w.ctr.ruleLogLost.Add(1)
		}
	}
	switch fv.Action {
	case firewall.Allow:
	case firewall.Reject:
		w.dropPkt(drop.FirewallReject, in, p)
		return conntrack.Verdict{Action: conntrack.Drop, Reason: drop.FirewallReject}
	default:
		w.dropPkt(drop.FirewallDrop, in, p)
		return conntrack.Verdict{Action: conntrack.Drop, Reason: drop.FirewallDrop}
	}
	// The rule set's epoch rides with the index, so the flow's rule is
	// named after the rule set it was created under (Engine.FlowRuleName).
	nf := conntrack.NewFlow{Profile: fv.Profile, Rule: fw.FlowRule(fv.Rule)}
	if w.nat != nil && src.zone == firewall.Inside {
		tr, r := w.nat.Allocate(&p.Key, now)
		if r != drop.None {
			w.dropPkt(r, in, p)
			return conntrack.Verdict{Action: conntrack.Drop, Reason: r}
		}
		nf.NAT = tr
	}
	v := w.shard.Create(p, nf, now)
	if v.Action == conntrack.Drop {
		w.count(v.Reason)
		w.noteFirstDrop(in, p, v.Reason)
		if nf.NAT.Addr != 0 {
			w.nat.Abandon(&p.Key, nf.NAT) // the port was never used
		}
		return v
	}
	w.ctr.created.Add(1)
	if w.tr.cur != nil { // trace hook
		w.traceFlow(v, now)
	}
	return v
}

// admit decides a packet p from the outside (port in, tracked as v: Open)
// that opens no flow and may be toward a NAT mapping (snat.Allocator.
// Admit), as the mapping's filter decides (RFC 4787 section 5). When it
// is not toward one, v is returned as it is (the packet goes on as any
// new flow); otherwise the verdict is the flow made through the mapping
// (Reply direction: the flow is the inside endpoint's), or ok is false
// for a counted drop: refused by the mapping's filter (drop.SNATFiltered;
// a hairpinned packet is not filtered), by the firewall (which judges it
// as the inside endpoint's flow, from the inside zone), or by conntrack.
func (w *worker) admit(in int, p *conntrack.Packet, v conntrack.Verdict, now conntrack.Time) (_ conntrack.Verdict, ok bool) {
	orig, tr, toward, r := w.nat.Admit(&p.Key, w.looped, now)
	if !toward {
		return v, true
	}
	if w.tr.on { // trace hook
		w.traceAdmit(in, p, &orig, r)
	}
	if r != drop.None {
		w.dropPkt(r, in, p)
		return conntrack.Verdict{Action: conntrack.Drop, Reason: r}, false
	}
	fw := w.env.fw.Load()
	fv := fw.Match(firewall.Inside, &orig, 0)
	if w.tr.cur != nil { // trace hook
		w.traceRule(fv, fw.FlowRule(fv.Rule))
	}
	if fv.Action != firewall.Allow {
		w.nat.Abandon(&orig, tr)
		w.dropPkt(drop.FirewallDrop, in, p)
		return conntrack.Verdict{Action: conntrack.Drop, Reason: drop.FirewallDrop}, false
	}
	v = w.shard.CreateInbound(p, &orig, conntrack.NewFlow{NAT: tr, Profile: fv.Profile, Rule: fw.FlowRule(fv.Rule)}, now)
	if v.Action == conntrack.Drop {
		w.nat.Abandon(&orig, tr)
		w.count(v.Reason)
		w.noteFirstDrop(in, p, v.Reason)
		return v, false
	}
	w.ctr.created.Add(1)
	if w.tr.cur != nil { // trace hook
		w.traceFlow(v, now)
	}
	return v, true
}

// hairpin handles packet p from the inside (port in, in frame) toward a NAT
// mapping (RFC 4787 REQ-9, RFC 5382 REQ-8): its flow (opened here if v is
// Open) translates its source to the sender's own mapping, and the packet
// is handed, as if it had arrived on the outside, to the worker that owns
// the destination mapping, which translates it back to the inside
// endpoint (or filters it) like any packet from the outside. The receiver
// thus sees the sender's external address and port.
func (w *worker) hairpin(in int, p *conntrack.Packet, v conntrack.Verdict, frame []byte, now conntrack.Time) {
	if v.Action == conntrack.Open {
		if v = w.open(in, p, now); v.Action == conntrack.Drop {
			return
		}
	}
	natAddr, natPort := w.shard.NAT(v.Flow)
	if natAddr == 0 {
		w.dropPkt(drop.SNATNoAddress, in, p)
		return
	}
	ip := frame[header.EthernetLen:]
	if r := snat.RewriteOriginal(ip, p, conntrack.Translation{Addr: natAddr, Port: natPort}, w.env.table.NATAddr16(natAddr)); r != drop.None {
		w.dropPkt(r, in, p)
		return
	}
	out := w.outsidePort()
	owner := w.env.table.ShardOfDst(&p.Key) // the destination is not translated: still the mapping's
	if !w.outbox[owner].put(out|handoffLooped, frame) {
		w.dropPkt(drop.HairpinFull, in, p)
		return
	}
	w.nat.CountHairpin()
	if w.tr.cur != nil { // trace hook
		w.traceHairpin(v, now)
	}
	if owner != w.id {
		w.woken |= 1 << owner
	}
}

// outsidePort returns the index of the outside port.
func (w *worker) outsidePort() int {
	for i, p := range w.ports {
		if p.zone != firewall.Inside {
			return i
		}
	}
	return 1
}

// forward decrements the TTL (hop limit) of the translated IP packet in
// frame (packet p, received on port in) and queues it on port out toward
// next hop hop. It reports whether the frame was queued.
func (w *worker) forward(in int, p *conntrack.Packet, frame []byte, out int, hop [16]byte) bool {
	ip := frame[header.EthernetLen:]
	if ip[0]>>4 == 4 {
		h := header.IPv4(ip)
		// TTL is the high byte of the TTL/protocol word (RFC 1624 update).
		old := uint16(h.TTL())<<8 | uint16(h.Protocol())
		h.SetTTL(h.TTL() - 1)
		h.SetChecksum(header.ChecksumUpdate16(h.Checksum(), old, old-0x100))
	} else {
		h := header.IPv6(ip)
		h.SetHopLimit(h.HopLimit() - 1)
	}
	return w.queue(in, p, frame, out, hop)
}

// queue sets the Ethernet addresses of frame for next hop hop on port out
// and queues it for transmission. Without the next hop's MAC address it asks
// for resolution, within the worker's budget, and drops the frame (counted
// against packet p, received on port in): never a guessed address (the
// mirror's, which may outlive the kernel's entry for a bounded time: see
// Neighbours).
func (w *worker) queue(in int, p *conntrack.Packet, frame []byte, out int, hop [16]byte) bool {
	egress := w.ports[out]
	w.held.justHeld = false
	mac, ok := w.lastHop[out].nextHop(w.env.neigh.cur.Load(), int32(egress.ifindex), &hop)
	if !ok {
		if w.hold(in, p, frame, out, hop) {
			return true // sent once the next hop is resolved (neighhold.go)
		}
		r := drop.NeighbourResolveLimited
		if w.resolves.allow(w.now) && w.env.neigh.Resolve(egress.ifindex, hop) {
			r = drop.NoNeighbour
		}
		w.dropPkt(r, in, p)
		return false
	}
	w.enqueue(out, frame, mac)
	return true
}

// enqueue addresses frame to mac from port out's own address and queues
// it on out's TX queue (transmitting the queue first when it is full).
func (w *worker) enqueue(out int, frame []byte, mac [6]byte) {
	eth := header.Ethernet(frame)
	eth.SetDst(mac)
	eth.SetSrc(w.ports[out].mac)
	if w.ntx[out] == batchSize {
		w.transmit(out)
	}
	w.txq[out][w.ntx[out]] = frame
	w.ntx[out]++
}

// kick asks the kernel to send what port pi's TX ring holds and returns
// how many frames are still pending, unless it is backing off.
//
// In copy mode a device that drops (veth: the peer's 256-frame ring is
// full because its NAPI thread has not run) costs exactly one frame per
// sendto (the kernel answers EBUSY after handing the first frame over):
// kicking on every loop iteration while the receiver is stalled lost one
// frame per iteration, the bulk of edge's loss at 50 kpps on a shared CPU
// (tx_device_drops). After a kick whose only progress was the dropped
// frame (receiver stalled), the next waits 8 us, doubling up to 1 ms;
// after one that sent frames before the drop (receiver draining, slower
// than us), 8 us; a kick without a drop resets it. The frames wait in the
// TX ring meanwhile (2,048 of them: milliseconds at full rate, tens at
// moderate rates), and when the ring is full transmit counts tx_full.
func (w *worker) kick(pi int, now conntrack.Time) int {
	s := w.ports[pi].sock
	if now < w.kickAt[pi] {
		return s.TxPending()
	}
	busy, before := s.TxBusy(), s.TxPending()
	pending := s.Kick()
	var failed error
	if s.TxBusy() == busy && pending > 0 && pending >= before {
		failed = s.Err() // nil: completion ring full, retried next loop
	}
	switch {
	case failed != nil:
		// sendto failed without a drop (ENETDOWN: the link is down, ENXIO):
		// nothing leaves, so back off as for a stalled receiver instead of
		// a futile sendto per loop; the frames wait (tx_full counts the
		// rest) and leave when the link is back.
		if !w.kickFailed[pi] {
			w.env.cfg.Logf("dataplane: %s queue %d: transmit failing: %v (backing off)", w.ports[pi].name, w.id, failed)
			w.kickFailed[pi] = true
		}
		w.kickWait[pi] = min(max(2*w.kickWait[pi], kickBackoffMin), kickBackoffMax)
		w.kickAt[pi] = now + w.kickWait[pi]
	case s.TxBusy() == busy:
		if w.kickFailed[pi] && pending < before {
			w.env.cfg.Logf("dataplane: %s queue %d: transmitting again", w.ports[pi].name, w.id)
			w.kickFailed[pi] = false
		}
		w.kickWait[pi] = 0
	case before-pending > 1:
		// Frames went out before the drop: the receiver drains, only
		// slower than we send. Pause briefly, do not escalate (a long
		// pause here would cap the rate at one ring's worth per pause).
		w.kickWait[pi] = kickBackoffMin
		w.kickAt[pi] = now + w.kickWait[pi]
	default:
		// Only the dropped frame left: the receiver is stalled.
		w.kickWait[pi] = min(max(2*w.kickWait[pi], kickBackoffMin), kickBackoffMax)
		w.kickAt[pi] = now + w.kickWait[pi]
	}
	return pending
}

// transmit sends the frames queued for port pi: a frame this worker
// received (held, in its UMEM, which both ports share) from the frame it
// arrived in, any other (handed over by another worker, generated) copied
// into a free frame (xsk.go). When the TX ring lacks room, it first takes
// the completions and kicks the kernel, which frees slots, and only then
// drops what still does not fit (counted tx_full); a dropped received frame
// stays held and is freed by recycle. Without a socket (golden tests), the
// frames go to w.testTX.
func (w *worker) transmit(pi int) {
	n := w.ntx[pi]
	if n == 0 {
		return
	}
	p := w.ports[pi]
	if p.sock == nil {
		for _, f := range w.txq[pi][:n] {
			w.testTX(pi, f)
		}
		w.tx[pi] += uint32(n)
		w.ntx[pi] = 0
		w.held.transmitted(pi)
		return
	}
	s, l := p.sock, &w.ledger
	room := s.NumFreeTxSlots()
	if room < n {
		w.complete(pi)
		w.kick(pi, w.now)
		w.complete(pi)
		room = s.NumFreeTxSlots()
	}
	ncopy := 0
	for _, f := range w.txq[pi][:n] {
		if a, ok := s.Addr(f); !ok || l.state[a>>l.shift] != frameHeld {
			ncopy++
		}
	}
	var copies []xdp.Desc
	if ncopy > 0 {
		copies = s.GetDescs(min(ncopy, room))
	}
	descs, c := l.txDesc[:0], 0
	for _, f := range w.txq[pi][:n] {
		if len(descs) == room {
			break
		}
		// In place only while held: a frame queued twice is copied the
		// second time, never put on two rings.
		if a, ok := s.Addr(f); ok && l.state[a>>l.shift] == frameHeld {
			l.move(a, frameHeld, frameTx+frameState(pi))
			descs = append(descs, xdp.Desc{Addr: a, Len: uint32(len(f))})
			continue
		}
		if c == len(copies) {
			continue // no free frame: dropped below (tx_full)
		}
		d := copies[c]
		c++
		l.move(d.Addr, frameFree, frameTx+frameState(pi))
		d.Len = uint32(copy(s.GetFrame(d), f))
		descs = append(descs, d)
	}
	s.Release(copies[c:])
	done := s.Submit(descs) // all of them (room); kicked by the loop (kick), after all ports are queued
	for _, d := range descs[done:] {
		l.move(d.Addr, frameTx+frameState(pi), frameFree) // Submit freed them
	}
	w.tx[pi] += uint32(done)
	for i := done; i < n; i++ {
		w.drop(drop.TxFull)
	}
	w.ntx[pi] = 0
	w.held.transmitted(pi)
}

// flush publishes the batch's tallies.
func (w *worker) flush() {
	for i := range w.rx {
		if w.rx[i] != 0 {
			w.ctr.rx[i].Add(uint64(w.rx[i]))
			w.rx[i] = 0
		}
		if w.tx[i] != 0 {
			w.ctr.tx[i].Add(uint64(w.tx[i]))
			w.tx[i] = 0
		}
	}
	for r := range w.drops {
		if w.drops[r] != 0 {
			w.ctr.drops[r].Add(uint64(w.drops[r]))
			w.drops[r] = 0
		}
	}
	for k := range w.icmpSent {
		if w.icmpSent[k] != 0 {
			w.ctr.icmp[k].Add(uint64(w.icmpSent[k]))
			w.icmpSent[k] = 0
		}
	}
	if w.rstSent != 0 {
		w.ctr.rst.Add(uint64(w.rstSent))
		w.rstSent = 0
	}
	if w.handedOff != 0 {
		w.ctr.handoff.Add(uint64(w.handedOff))
		w.handedOff = 0
	}
	w.events.Publish()
	if w.evLost != 0 {
		w.ctr.eventsLost.Add(uint64(w.evLost))
		w.evLost = 0
	}
	w.ctr.frags.publish(&w.frags.Stats)
	w.nerr = 0
}
