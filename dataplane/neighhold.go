package dataplane

import (
	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/icmp"
)

// Packets toward a next hop whose link-layer address is not known yet are
// held, a few per next hop, while the kernel resolves it, and sent as soon
// as the worker sees its address (as Linux's neighbour queue does,
// unres_qlen): the first SYN toward a new next hop is not lost to the
// resolution (a 1 s retransmit for the client). The hold is per worker and
// bounded: holdPerHop packets per next hop, holdSlots in all, each kept at
// most holdTimeout; beyond that a packet is dropped as before
// (drop.NoNeighbour), and so is a held packet whose time runs out.
//
// A held packet is a copy (the received frame goes back to the fill ring
// in the same loop, and holds are rare). Once queued for transmission it
// keeps its slot until that port's transmit has copied it out.
const (
	holdSlots   = 64
	holdPerHop  = 3
	holdTimeout = conntrack.Second
)

type heldState uint8

const (
	holdFree heldState = iota
	holdWaiting
	holdQueued // queued on its port's TX queue: free after transmit
)

// heldFrame is one held packet.
type heldFrame struct {
	at    conntrack.Time
	key   conntrack.Key // for the drop event if it is never sent
	hop   [16]byte
	n     uint16
	out   uint8 // egress port
	in    uint8 // ingress port
	state heldState
	buf   [rxFrameMax]byte
}

// neighHold is a worker's held packets. Owned by the worker.
type neighHold struct {
	frames   []heldFrame // holdSlots, allocated with the worker
	waiting  int         // slots holdWaiting
	queued   [2]int      // slots holdQueued, per port
	justHeld bool        // the packet being forwarded was held (for edge trace)
}

// hold keeps a copy of frame (packet p, received on port in, for port out
// toward next hop hop, whose address is unknown) and reports whether it
// did. The first packet held for a hop asks for its resolution (within the
// worker's budget); when that is refused, or the hop already has
// holdPerHop packets, or every slot is taken, it holds nothing.
func (w *worker) hold(in int, p *conntrack.Packet, frame []byte, out int, hop [16]byte) bool {
	h := &w.held
	h.justHeld = false
	if h.frames == nil || len(frame) > rxFrameMax {
		return false
	}
	free, forHop := -1, 0
	for i := range h.frames {
		f := &h.frames[i]
		switch {
		case f.state == holdFree:
			if free < 0 {
				free = i
			}
		case f.state == holdWaiting && f.hop == hop && int(f.out) == out:
			forHop++
		}
	}
	if free < 0 || forHop >= holdPerHop {
		return false
	}
	if forHop == 0 {
		egress := w.ports[out]
		if !w.resolves.allow(w.now) || !w.env.neigh.Resolve(egress.ifindex, hop) {
			return false
		}
	}
	f := &h.frames[free]
	f.at, f.key, f.hop, f.out, f.in, f.state = w.now, p.Key, hop, uint8(out), uint8(in), holdWaiting
	f.n = uint16(copy(f.buf[:], frame))
	h.waiting++
	h.justHeld = true
	w.env.neigh.stats.held.Add(1)
	return true
}

// releaseHeld queues the held packets whose next hop is now known and drops
// those held longer than holdTimeout. It costs nothing while none waits.
func (w *worker) releaseHeld() {
	h := &w.held
	if h.waiting == 0 {
		return
	}
	t := w.env.neigh.cur.Load()
	for i := range h.frames {
		f := &h.frames[i]
		if f.state != holdWaiting {
			continue
		}
		out := int(f.out)
		egress := w.ports[out]
		mac, ok := w.lastHop[out].nextHop(t, int32(egress.ifindex), &f.hop)
		if !ok {
			if w.now-f.at >= holdTimeout {
				f.state = holdFree
				h.waiting--
				w.drops[drop.NoNeighbour]++
				pkt := conntrack.Packet{Key: f.key}
				w.event(EvDropped, drop.NoNeighbour, icmp.NoError, int(f.in), &pkt)
				w.env.neigh.stats.heldDropped.Add(1)
			}
			continue
		}
		w.enqueue(out, f.buf[:f.n], mac)
		f.state = holdQueued
		h.waiting--
		h.queued[out]++
		w.env.neigh.stats.heldSent.Add(1)
	}
}

// transmitted frees the slots of held packets port pi's transmit has
// copied out.
func (h *neighHold) transmitted(pi int) {
	if h.queued[pi] == 0 {
		return
	}
	for i := range h.frames {
		if f := &h.frames[i]; f.state == holdQueued && int(f.out) == pi {
			f.state = holdFree
		}
	}
	h.queued[pi] = 0
}
