package dataplane

// The packet pipeline of one worker. A worker is one goroutine, locked to
// an OS thread, that owns the AF_XDP sockets of one queue on each port
// (inside and outside), one conntrack shard and one SNAT allocator; nothing
// it touches per packet is shared, so nothing is locked. Per batch:
//
//	RX ring (port p) ── up to batchSize frames
//	  parse        conntrack.Parse over header views; a bad packet is a drop reason
//	  track        Shard.TrackBatch: one lookup per packet, misses overlapped
//	  open         first packet of a flow: firewall (zone of p) -> SNAT port -> Shard.Create
//	  translate    SNAT rewrite of the original or reply direction (incremental checksums)
//	  forward      TTL/hop limit, route, MTU, neighbour MAC, Ethernet rewrite
//	  TX ring      copied into a frame of the egress port's UMEM, sent once per batch
//
// Counters are kept in the worker's own array and published with one atomic
// add per non-zero counter per batch; the control plane sums workers on read.

import (
	"runtime"
	"sync/atomic"

	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/snat"
)

const batchSize = 64

// port is one interface as a worker sees it.
type port struct {
	name    string
	ifindex int
	mac     [6]byte
	mtu     int
	zone    firewall.Zone
	sock    *xdp.Socket
}

// Counters of one worker, published per batch.
type workerCounters struct {
	_       [64]byte
	rx, tx  [2]atomic.Uint64
	drops   [drop.NumReasons]atomic.Uint64
	created atomic.Uint64
	_       [64]byte
}

type worker struct {
	e     *Engine
	id    int
	ports [2]*port
	shard *conntrack.Shard
	nat   *snat.Allocator // nil without SNAT

	pkts     [batchSize]conntrack.Packet
	verdicts [batchSize]conntrack.Verdict
	frames   [batchSize][]byte
	rxFrames [batchSize][]byte
	idx      [batchSize]int // position in the RX batch of each tracked packet
	txq      [2][batchSize][]byte
	ntx      [2]int

	// per-batch tallies, published by flush
	drops [drop.NumReasons]uint32
	rx    [2]uint32
	tx    [2]uint32

	ctr workerCounters

	testTX func(port int, frame []byte) // golden tests: receives what would be sent
}

func (w *worker) drop(r drop.Reason) { w.drops[r]++ }

// run is the worker's loop until stop is closed.
func (w *worker) run(stop <-chan struct{}) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var pfds [2]unix.PollFd
	for i, p := range w.ports {
		pfds[i] = unix.PollFd{Fd: int32(p.sock.FD()), Events: unix.POLLIN}
	}
	idle := 0
	for {
		select {
		case <-stop:
			return
		default:
		}
		now := w.e.now()
		got := 0
		for pi, p := range w.ports {
			descs := p.sock.Receive(batchSize)
			if len(descs) > 0 {
				got += len(descs)
				w.process(pi, descs, now)
			}
		}
		// Send everything first: queued frames still point into the RX
		// frames of the other port, which Fill must not hand back to the
		// kernel before they are copied out.
		for pi := range w.ports {
			w.transmit(pi)
		}
		for _, p := range w.ports {
			if n := p.sock.NumCompleted(); n > 0 {
				p.sock.Complete(n)
			}
			p.sock.Fill(p.sock.GetDescs(p.sock.NumFreeFillSlots()))
			if p.sock.FillNeedsWakeup() && got == 0 {
				p.sock.Wakeup()
			}
		}
		w.flush()
		w.shard.Serve(now)
		w.shard.Expire(now, 256)
		if w.nat != nil {
			w.nat.Serve(now)
		}
		if got > 0 {
			idle = 0
			continue
		}
		// Spin a little, then sleep in poll(): on a shared vCPU a busy
		// loop would starve the kernel's receive work that feeds us.
		if idle++; idle > 64 {
			_, _ = unix.Poll(pfds[:], 10)
		}
	}
}

// process runs one RX batch from port in through the pipeline.
func (w *worker) process(in int, descs []xdp.Desc, now conntrack.Time) {
	src := w.ports[in]
	frames := w.rxFrames[:0]
	for i := range descs {
		frames = append(frames, src.sock.GetFrame(descs[i]))
	}
	w.pipeline(in, frames, now)
}

// pipeline is the kernel-free part of the worker: frames received on port
// in are parsed, tracked, decided, translated and queued for transmission
// (w.txq). Golden tests drive it directly.
func (w *worker) pipeline(in int, frames [][]byte, now conntrack.Time) {
	src := w.ports[in]
	w.rx[in] += uint32(len(frames))
	n := 0
	for _, frame := range frames {
		if len(frame) < header.EthernetLen {
			w.drop(drop.Truncated)
			continue
		}
		if r := conntrack.Parse(frame[header.EthernetLen:], 0, &w.pkts[n]); r != drop.None {
			w.drop(r)
			continue
		}
		w.frames[n] = frame
		n++
	}
	w.shard.TrackBatch(w.pkts[:n], w.verdicts[:n], now)
	for i := 0; i < n; i++ {
		p := &w.pkts[i]
		v := w.verdicts[i]
		if v.Action == conntrack.Open {
			v = w.open(src, p, now)
		}
		if v.Action == conntrack.Drop {
			w.drop(v.Reason)
			continue
		}
		ip := w.frames[i][header.EthernetLen:]
		if p.Kind == conntrack.KindRelated {
			// ICMP errors about translated flows are translated by the
			// icmp package (RFC 5508); until it is wired in they are
			// dropped, counted, rather than forwarded untranslated.
			w.drop(drop.UnsupportedProto)
			continue
		}
		if natAddr, natPort := w.shard.NAT(v.Flow); natAddr != 0 {
			var r drop.Reason
			if v.Dir == conntrack.Original {
				r = snat.RewriteOriginal(ip, p, conntrack.Translation{Addr: natAddr, Port: natPort}, w.e.natAddr16(natAddr))
			} else {
				r = snat.RewriteReply(ip, p, w.shard.Key(v.Flow))
			}
			if r != drop.None {
				w.drop(r)
				continue
			}
		}
		w.forward(w.frames[i])
	}
}

// open decides a flow's first packet: firewall by the zone it arrived from,
// then SNAT for flows from the inside, then Create.
func (w *worker) open(src *port, p *conntrack.Packet, now conntrack.Time) conntrack.Verdict {
	fv := w.e.fw.Load().Match(src.zone, &p.Key, p.ICMPType)
	switch fv.Action {
	case firewall.Allow:
	case firewall.Reject:
		return conntrack.Verdict{Action: conntrack.Drop, Reason: drop.FirewallReject}
	default:
		return conntrack.Verdict{Action: conntrack.Drop, Reason: drop.FirewallDrop}
	}
	nf := conntrack.NewFlow{Profile: fv.Profile, Rule: uint32(fv.Rule + 1)}
	if w.nat != nil && src.zone == firewall.Inside {
		tr, r := w.nat.Allocate(&p.Key, now)
		if r != drop.None {
			return conntrack.Verdict{Action: conntrack.Drop, Reason: r}
		}
		nf.NAT = tr
	}
	v := w.shard.Create(p, nf, now)
	if v.Action != conntrack.Drop {
		w.ctr.created.Add(1)
	}
	return v
}

// forward routes the (already translated) IP packet in frame and queues it
// for transmission: TTL, route, MTU, neighbour, Ethernet header.
func (w *worker) forward(frame []byte) {
	ip := frame[header.EthernetLen:]
	var dst [16]byte
	if ip[0]>>4 == 4 {
		h := header.IPv4(ip)
		if h.TTL() <= 1 {
			w.drop(drop.TTLExceeded)
			return
		}
		// TTL is the high byte of the TTL/protocol word (RFC 1624 update).
		old := uint16(h.TTL())<<8 | uint16(h.Protocol())
		h.SetTTL(h.TTL() - 1)
		h.SetChecksum(header.ChecksumUpdate16(h.Checksum(), old, old-0x100))
		dst = [16]byte{10: 0xff, 11: 0xff}
		copy(dst[12:], ip[16:20])
	} else {
		h := header.IPv6(ip)
		if h.HopLimit() <= 1 {
			w.drop(drop.TTLExceeded)
			return
		}
		h.SetHopLimit(h.HopLimit() - 1)
		copy(dst[:], ip[24:40])
	}
	out, hop, ok := w.e.routes.Load().Lookup(&dst)
	if !ok {
		w.drop(drop.NoRoute)
		return
	}
	egress := w.ports[out]
	if len(ip) > egress.mtu {
		w.drop(drop.MTUExceeded)
		return
	}
	mac, ok := w.e.neigh.Lookup(egress.ifindex, hop)
	if !ok {
		w.e.neigh.Resolve(hop)
		w.drop(drop.NoNeighbour)
		return
	}
	eth := header.Ethernet(frame)
	eth.SetDst(mac)
	eth.SetSrc(egress.mac)
	if w.ntx[out] == batchSize {
		w.transmit(out)
	}
	w.txq[out][w.ntx[out]] = frame
	w.ntx[out]++
}

// transmit copies the frames queued for port pi into its UMEM and sends
// them. Frames that find no free TX slot are dropped (counted). Without a
// socket (golden tests), the frames go to w.testTX.
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
		return
	}
	descs := p.sock.GetDescs(min(n, p.sock.NumFreeTxSlots()))
	for i := range descs {
		f := w.txq[pi][i]
		copy(p.sock.GetFrame(descs[i]), f)
		descs[i].Len = uint32(len(f))
	}
	sent := p.sock.Transmit(descs)
	w.tx[pi] += uint32(sent)
	for i := sent; i < n; i++ {
		w.drop(drop.TxFull)
	}
	w.ntx[pi] = 0
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
}
