package main

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/dataplane"
	"github.com/edgegw/edge/header"
)

// The loop's constants are edge's worker's (dataplane), so the two differ
// only in what they do per packet.
const (
	batchSize      = dataplane.BatchSize
	pollTimeoutMs  = dataplane.PollTimeoutMs
	workerSliceNs  = dataplane.WorkerSliceNs
	kickBackoffMin = time.Duration(dataplane.KickBackoffMin)
	kickBackoffMax = time.Duration(dataplane.KickBackoffMax)
)

// config is what the forwarder is built from.
type config struct {
	ports      [2]string  // interface names: 0 inside, 1 outside
	hops       [2][6]byte // next hop's MAC on each port (the destination of frames sent there)
	cpu        int        // the worker's CPU; -1: not pinned
	frames     int        // frames of the UMEM both sockets share (edge: 4 x ring)
	ring       int        // descriptors per ring, the RX ring twice that (edge: 2048)
	needWakeup bool       // edge: true
}

// port is one interface: its AF_XDP socket on queue 0 and its MAC (the
// source of frames sent there).
type port struct {
	name    string
	ifindex int
	mac     [6]byte
	hop     [6]byte
	sock    *xdp.Socket
	prog    *dataplane.Program

	kickAt   time.Duration // no kick before this (backing off a stalled receiver)
	kickWait time.Duration
}

// counters are the forwarder's tallies, published once per loop iteration.
type counters struct {
	rx, tx, txFull [2]atomic.Uint64
}

// forwarder relays every frame edge's XDP program redirects from one port
// to the other, sent from the frame it arrived in (the two sockets share one
// UMEM, as edge's do), MACs rewritten, nothing parsed.
type forwarder struct {
	cfg   config
	ports [2]*port
	fill  int // frames each fill ring is topped up to (edge's fill target)
	start time.Time
	ctr   counters
	stop  atomic.Bool
}

// newForwarder opens the sockets and attaches edge's XDP program to both
// interfaces, in the calling thread's network namespace.
func newForwarder(cfg config) (f *forwarder, err error) {
	if cfg.frames == 0 {
		cfg.frames = dataplane.DefaultFrames(cfg.ring)
	}
	if cfg.frames < 2*cfg.ring {
		return nil, fmt.Errorf("frames %d: must be at least twice ring %d (edge's rule)", cfg.frames, cfg.ring)
	}
	f = &forwarder{cfg: cfg, start: time.Now()}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	for i, name := range cfg.ports {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return nil, err
		}
		if len(ifc.HardwareAddr) != 6 {
			return nil, fmt.Errorf("%s: not an Ethernet interface", name)
		}
		p := &port{name: name, ifindex: ifc.Index, mac: [6]byte(ifc.HardwareAddr), hop: cfg.hops[i]}
		f.ports[i] = p
		// Edge's program, one per interface as edge has it: it redirects
		// IPv4/IPv6 to the socket and passes ARP to the kernel.
		if p.prog, err = dataplane.NewProgram(1); err != nil {
			return nil, err
		}
		// Edge's sockets: the second shares the first's UMEM.
		opts := dataplane.SocketOptions(cfg.frames, cfg.ring, cfg.needWakeup)
		if i == 0 {
			p.sock, err = xdp.NewSocket(p.ifindex, 0, &opts)
		} else {
			p.sock, err = xdp.NewSharedSocket(p.ifindex, 0, f.ports[0].sock, &opts)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: AF_XDP socket on queue 0: %w", name, err)
		}
	}
	f.fill = dataplane.FillTarget(cfg.frames, cfg.ring)
	for i, p := range f.ports {
		f.topUp(i)
		if err := p.prog.Register(0, p.sock.FD()); err != nil {
			return nil, err
		}
	}
	for _, p := range f.ports {
		if err := p.prog.Attach(p.ifindex); err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return f, nil
}

// close detaches the programs and closes the sockets.
func (f *forwarder) close() error {
	var errs []error
	for _, p := range f.ports {
		if p == nil {
			continue
		}
		if p.prog != nil {
			errs = append(errs, p.prog.Close())
		}
		if p.sock != nil {
			errs = append(errs, p.sock.Close())
		}
	}
	return errors.Join(errs...)
}

// zeroCopy reports whether the sockets run in zero-copy mode.
func (f *forwarder) zeroCopy() bool { return f.ports[0].sock.ZeroCopy() && f.ports[1].sock.ZeroCopy() }

// rewrite sets frame's Ethernet destination to hop and its source to
// egress, in place; nothing else is read or changed. A frame shorter than
// an Ethernet header (edge's program drops those before they reach a
// socket) is left as it is.
func rewrite(frame []byte, hop, egress [6]byte) {
	if len(frame) >= header.EthernetLen {
		eth := header.Ethernet(frame)
		eth.SetDst(hop)
		eth.SetSrc(egress)
	}
}

// run is the worker: edge's loop (batch receive, each frame rewritten and
// queued on the other port's TX ring in place, frames not sent freed,
// completions, fill rings topped up, kick with edge's backoff) and edge's
// waiting (dataplane.IdlePolicy: yield or sleep in a raw ppoll), pinned and
// with edge's scheduler slice. It returns once stop is set.
func (f *forwarder) run(logf func(string, ...any)) {
	runtime.LockOSThread()
	if f.cfg.cpu >= 0 {
		var set unix.CPUSet
		set.Set(f.cfg.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			logf("nullfwd: pinning to CPU %d: %v", f.cfg.cpu, err)
		}
	}
	if a, err := unix.SchedGetAttr(0, 0); err == nil && a.Policy == unix.SCHED_NORMAL {
		a.Runtime = workerSliceNs
		_ = unix.SchedSetAttr(0, a, 0)
	}
	var pfds [2]unix.PollFd
	for i, p := range f.ports {
		pfds[i] = unix.PollFd{Fd: int32(p.sock.FD()), Events: unix.POLLIN}
	}
	var rx, tx, txFull [2]uint64
	idle := dataplane.NewIdlePolicy(dataplane.BusyPoll{})
	for !f.stop.Load() {
		now := time.Since(f.start)
		got := 0
		var nrx [2]int
		for pi, p := range f.ports {
			descs := p.sock.Receive(batchSize)
			if n := len(descs); n > 0 {
				nrx[pi] = n
				got += n
				rx[pi] += uint64(n)
				out := 1 - pi
				sent := f.send(f.ports[out], descs, now)
				tx[out] += uint64(sent)
				txFull[out] += uint64(n - sent)
			}
		}
		pending := 0
		for pi, p := range f.ports {
			f.complete(pi)
			f.topUp(pi)
			if nrx[pi] == 0 && p.sock.FillNeedsWakeup() {
				p.sock.Wakeup()
			}
			pending += kick(p, now)
		}
		for i := range rx {
			publish(&f.ctr.rx[i], &rx[i])
			publish(&f.ctr.tx[i], &tx[i])
			publish(&f.ctr.txFull[i], &txFull[i])
		}
		ct := conntrack.Time(now)
		if got > 0 {
			idle.Work(got, ct)
			continue
		}
		if idle.Idle(ct) {
			dataplane.SchedYield()
			continue
		}
		timeout := pollTimeoutMs
		if pending > 0 {
			timeout = 1
		}
		dataplane.SleepPoll(pfds[:], timeout)
	}
}

func publish(c *atomic.Uint64, n *uint64) {
	if *n != 0 {
		c.Add(*n)
		*n = 0
	}
}

// topUp gives port pi's fill ring free frames of the shared UMEM up to the
// fill target, as edge's worker does.
func (f *forwarder) topUp(pi int) {
	s := f.ports[pi].sock
	want := f.fill - (f.cfg.ring - s.NumFreeFillSlots())
	if want > 0 {
		s.Fill(s.GetDescs(want))
	}
}

// complete frees the frames port pi's completion ring gives back.
func (f *forwarder) complete(pi int) {
	s := f.ports[pi].sock
	if n := s.NumCompleted(); n > 0 {
		s.Complete(n)
	}
}

// send queues the frames of descs (received on the other port, in the
// shared UMEM) on out's TX ring from the frames they arrived in, MACs
// rewritten, as edge's transmit does: when the ring lacks room it takes
// completions and kicks once, then frees what still does not fit (the
// socket's Submit gives those frames back). It returns how many were
// queued.
func (f *forwarder) send(out *port, descs []xdp.Desc, now time.Duration) int {
	s := out.sock
	for _, d := range descs {
		rewrite(s.GetFrame(d), out.hop, out.mac)
	}
	done := s.Submit(descs[:min(len(descs), s.NumFreeTxSlots())])
	if done < len(descs) {
		if c := s.NumCompleted(); c > 0 {
			s.Complete(c)
		}
		kick(out, now)
		if c := s.NumCompleted(); c > 0 {
			s.Complete(c)
		}
		done += s.Submit(descs[done:]) // frees what does not fit
	}
	return done
}

// kick asks the kernel to send what p's TX ring holds, with edge's backoff
// (dataplane worker.kick): after a sendto whose only progress was a frame the
// device dropped (veth: the peer's ring full), wait 8 us doubling to 1 ms;
// after one that sent frames before the drop, 8 us. It returns the frames
// still pending.
func kick(p *port, now time.Duration) int {
	s := p.sock
	if now < p.kickAt {
		return s.TxPending()
	}
	busy, before := s.TxBusy(), s.TxPending()
	pending := s.Kick()
	failing := s.TxBusy() == busy && pending > 0 && pending >= before && s.Err() != nil
	switch {
	case failing: // sendto failing without a drop (link down): back off
		p.kickWait = min(max(2*p.kickWait, kickBackoffMin), kickBackoffMax)
		p.kickAt = now + p.kickWait
	case s.TxBusy() == busy:
		p.kickWait = 0
	case before-pending > 1:
		p.kickWait = kickBackoffMin
		p.kickAt = now + p.kickWait
	default:
		p.kickWait = min(max(2*p.kickWait, kickBackoffMin), kickBackoffMax)
		p.kickAt = now + p.kickWait
	}
	return pending
}

// lossReport says where frames were lost, per port, in the terms of edge's
// stats (xdp: the program's redirects; the socket's kernel counters; tx_busy:
// sendto calls the device answered EBUSY, a dropped frame each).
func (f *forwarder) lossReport() string {
	s := ""
	for _, p := range f.ports {
		ps, _ := p.prog.Stats()
		ks, _ := p.sock.Stats()
		k := ks.KernelStats
		s += fmt.Sprintf(" %s: xdp redirected %d, rx_dropped %d, rx_ring_full %d, fill_ring_empty %d, tx_busy %d;",
			p.name, ps.Redirected, k.Rx_dropped, k.Rx_ring_full, k.Rx_fill_ring_empty_descs, p.sock.TxBusy())
	}
	return s
}
