package dataplane

// Fragments. A UDP or ICMP datagram's first fragment goes through the whole
// pipeline like any packet (conntrack.Parse marks it FragFirst); what
// happened to it is noted in the worker's frag.Table, keyed by (port,
// addresses, protocol, identification): dropped for which reason, handed to
// which worker, or forwarded with which addresses. Its later fragments
// (FragLater: no transport header) follow that verdict: the same drop, the
// same hand-off, or the same address rewrite (the datagram's L4 checksum is
// in the first fragment, already updated), then the usual TTL, route, MTU
// and neighbour steps. A later fragment that arrives first is held in the
// table's pool and handed back when its first fragment is decided. TCP
// fragments and fragments of other protocols are dropped (fragment).
//
// Several queues: fragments carry no ports, so the flow's owner cannot be
// computed from a later fragment. The worker that receives a datagram (a
// NIC hashes fragments on addresses only, so it receives all of them)
// steers the first fragment to the owner and notes the hand-off; its later
// fragments follow the first over the same hand-off ring (FIFO), and the
// owner notes and applies the verdict.

import (
	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/frag"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/icmp"
)

// Fragment table sizing, per worker.
const (
	fragDatagrams  = 4096                 // datagrams in flight at once
	fragHeldFrames = 256                  // later fragments waiting for their first (512 KiB)
	fragTimeout    = 2 * conntrack.Second // a datagram's fragments must all arrive within this
	fragExpire     = 4                    // buckets visited per batch for expired datagrams
	fragFrameSize  = 2048                 // an AF_XDP frame
	noOwner        = -1                   // fragVerdict.owner: decided by this worker
)

// fragVerdict is what happened to a datagram's first fragment.
type fragVerdict struct {
	reason   drop.Reason // dropped for this reason (None: forwarded)
	owner    int8        // handed to this worker (noOwner: decided here)
	src, dst [16]byte    // forwarded: the first fragment's addresses as it left (IPv4 mapped)
}

func newFragTable() *frag.Table[fragVerdict] {
	t, err := frag.New[fragVerdict](frag.Config{Datagrams: fragDatagrams, HoldFrames: fragHeldFrames,
		FrameSize: fragFrameSize, Timeout: int64(fragTimeout)})
	if err != nil {
		panic(err) // constant sizes
	}
	return t
}

// fragKey is the datagram of packet p (a FragFirst or FragLater parse),
// received on port in.
func fragKey(in int, p *conntrack.Packet) frag.Key {
	return frag.Key{Src: p.Key.Src, Dst: p.Key.Dst, ID: p.FragID, Proto: p.Key.Proto, Zone: uint8(in)}
}

// noteFirst records the verdict of p, a first fragment received on port
// in, and runs the later fragments that waited for it. p is noted once:
// its Frag becomes FragNone, so a second drop counted for the same packet
// (an ICMP error refused after the drop that called for it) changes
// nothing.
func (w *worker) noteFirst(in int, p *conntrack.Packet, v fragVerdict) {
	k := fragKey(in, p)
	p.Frag = conntrack.FragNone
	held, _ := w.frags.Note(&k, int64(w.now), v, int(p.FragLen), p.FragMore)
	for _, frame := range held {
		lp := &w.fragPkt
		conntrack.Parse(frame[header.EthernetLen:], 0, lp)
		w.applyFragment(in, frame, lp, v)
	}
	if len(held) > 0 {
		// The held frames live in the table's pool, which the next held
		// fragment may overwrite: send them now.
		for pi := range w.ports {
			w.transmit(pi)
		}
	}
}

// noteFirstDrop records that p, if it is a first fragment, was dropped for
// reason r: its later fragments are dropped for the same reason.
func (w *worker) noteFirstDrop(in int, p *conntrack.Packet, r drop.Reason) {
	if p != nil && p.Frag == conntrack.FragFirst {
		w.noteFirst(in, p, fragVerdict{reason: r, owner: noOwner})
	}
}

// noteFirstForwarded records that p, if it is a first fragment, left as
// the IP packet ip (translated).
func (w *worker) noteFirstForwarded(in int, p *conntrack.Packet, ip []byte) {
	if p.Frag != conntrack.FragFirst {
		return
	}
	v := fragVerdict{owner: noOwner}
	if ip[0]>>4 == 4 {
		h := header.IPv4(ip)
		v.src, v.dst = mapped4(h.Src()), mapped4(h.Dst())
	} else {
		h := header.IPv6(ip)
		v.src, v.dst = h.Src(), h.Dst()
	}
	w.noteFirst(in, p, v)
}

// laterFragment handles frame, a later fragment (p, parsed FragLater)
// received on port in.
func (w *worker) laterFragment(in int, frame []byte, p *conntrack.Packet) {
	k := fragKey(in, p)
	v, st := w.frags.Follow(&k, int64(w.now), frame, int(p.FragOff), int(p.FragLen), p.FragMore)
	switch st {
	case frag.Known:
		w.applyFragment(in, frame, p, v)
	case frag.Held:
	default:
		w.dropPkt(drop.FragmentNoRoom, in, p)
	}
}

// applyFragment makes frame, a later fragment (p) received on port in,
// follow its first fragment's verdict v.
func (w *worker) applyFragment(in int, frame []byte, p *conntrack.Packet, v fragVerdict) {
	if v.reason != drop.None {
		w.dropPkt(v.reason, in, p)
		return
	}
	if v.owner != noOwner {
		if w.outbox[v.owner].put(in, frame) {
			w.handedOff++
			w.woken |= 1 << v.owner
		} else {
			w.dropPkt(drop.HandoffFull, in, p)
		}
		return
	}
	ip := frame[header.EthernetLen:]
	if ip[0]>>4 == 4 {
		h := header.IPv4(ip)
		src, dst := h.Src(), h.Dst()
		c := h.Checksum()
		c = header.ChecksumUpdateBytes(c, src[:], v.src[12:])
		c = header.ChecksumUpdateBytes(c, dst[:], v.dst[12:])
		copy(ip[12:16], v.src[12:])
		copy(ip[16:20], v.dst[12:])
		h.SetChecksum(c)
	} else {
		h := header.IPv6(ip)
		h.SetSrc(v.src)
		h.SetDst(v.dst)
	}
	out, hop, ok := w.env.routes.Load().Lookup(&v.dst)
	if !ok {
		w.dropPkt(drop.NoRoute, in, p)
		return
	}
	// No ICMP error about a non-first fragment (RFC 1812 4.3.2.7): the
	// first fragment got one, if one was due.
	if k, fwd := icmp.Check(ip, uint32(w.ports[out].mtu)); !fwd {
		r := drop.MTUExceeded
		if k == icmp.TimeExceeded {
			r = drop.TTLExceeded
		}
		w.dropPkt(r, in, p)
		return
	}
	w.forward(in, p, frame, out, hop)
}

// mapped4 returns the IPv4 address a as IPv4-mapped IPv6.
func mapped4(a [4]byte) [16]byte {
	return [16]byte{10: 0xff, 11: 0xff, 12: a[0], 13: a[1], 14: a[2], 15: a[3]}
}

// expireFragments frees a few buckets' worth of expired datagrams and
// counts the held fragments that waited in vain.
func (w *worker) expireFragments() {
	w.frags.Expire(int64(w.now), fragExpire)
	if e := w.frags.Stats.ExpiredHeld; e != w.fragExpired {
		w.drops[drop.FragmentExpired] += uint32(e - w.fragExpired)
		w.fragExpired = e
	}
}
