package snat

import (
	"encoding/binary"
	"math/bits"

	"github.com/edgegw/edge/conntrack"
)

// An Allocator's bookkeeping lives in two preallocated, pointer-free
// open-addressing tables (linear probing, backward-shift deletion, no
// tombstones), sized from Config and never grown:
//
//   - dests counts, per (translated address, destination address and port,
//     protocol, zone), the ports in use and in quarantine, the refusals
//     and the quarantine overrides, and holds the head and tail of the
//     destination's quarantine list.
//   - quarantine remembers, per (translated address and port, destination,
//     protocol, zone), when the port was last released toward that
//     destination: a FIFO ring in release order (the oldest entry is at the
//     head, so expiry and "forget the oldest when full" are O(1)) indexed
//     by a hash table of ring slots. The entries of one destination are
//     also chained oldest first (qent.next), so the least recently
//     released port toward a destination is found in O(1) when nothing
//     else is free.
//
// A destination's list holds its counted entries in release order, and
// its head and tail are always entries still in the ring: entries leave the
// ring only from its head, and an entry popped there is the oldest of its
// destination's list too, so it is the list's head (unless the list's head
// already moved past it). Dead entries (superseded or reused ports) stay in
// the ring and in their list until they reach the head of either.

// tuple names a destination as seen from one translated address (nport 0),
// or one translated port toward it. 24 bytes, no padding; proto is never 0
// in a used entry (only TCP, UDP and ICMP echo are translated), so proto 0
// marks a free slot.
type tuple struct {
	dst   [16]byte
	dport uint16
	naddr uint16
	nport uint16
	proto uint8
	zone  uint8
}

// hashKey is a per-allocator random key for tuple hashes, so that inside
// hosts cannot choose destinations that collide.
type hashKey [4]uint64

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func (k *hashKey) hash(t *tuple) uint64 {
	a := binary.LittleEndian.Uint64(t.dst[0:8])
	b := binary.LittleEndian.Uint64(t.dst[8:16])
	c := uint64(t.dport) | uint64(t.naddr)<<16 | uint64(t.nport)<<32 | uint64(t.proto)<<48 | uint64(t.zone)<<56
	return mix(mix(a^k[0], b^k[1])^c^k[2], k[3])
}

// pow2 returns the smallest power of two >= n (and >= 2).
func pow2(n int) int {
	p := 2
	for p < n {
		p <<= 1
	}
	return p
}

// inRun reports whether slot i lies on the cyclic probe run from home h to
// slot j (h <= i < j, cyclically): the entry at j may then move back to i.
func inRun(h, i, j, mask uint32) bool {
	return (i-h)&mask < (j-h)&mask
}

// dent is one destination's counts. inUse and quar count ports of the
// port range [rlo, rlo+rn), the allocator's range when the entry was last
// brought up to date (Allocator.migrate): after a change of range, live
// flows whose ports may lie outside the new range move to other (a full
// pass sorts them again), and quarantine entries outside it leave the
// count and the list (they stay quarantined in the index).
type dent struct {
	k         tuple
	inUse     uint32         // ports of the range allocated toward k whose flows are live (Allocate minus releases and Abandon)
	quar      uint32         // quarantine entries counted here (qent.counted), all of ports in the range
	owned     uint32         // from the last full pass: the range's ports whose replies land on this worker
	qhead     uint32         // ring slot+1 of the oldest entry of this destination's quarantine list, 0 = empty
	qtail     uint32         // ring slot+1 of the newest
	other     uint32         // live flows toward k whose ports are outside the range, or not known to be inside it
	rn        uint32         // the range the counts refer to: rn ports from rlo
	rlo       uint16         //
	passed    bool           // a full pass over the range counted owned and inUse, at passAt
	full      bool           // that pass found no port, and none was allocated since
	passAt    conntrack.Time // when
	exhausted uint64         // flows refused for lack of a port
	overrides uint64         // quarantined ports reused because nothing else was free
	// The pass in progress: Allocate examines at most ScanProbes ports of
	// it, so a pass over the range spreads over many allocations.
	scanNext  uint32 // offset in the range of the next port to examine
	scanLeft  uint32 // ports of the range not examined yet; 0: no pass in progress
	scanOwned uint32 // ports examined so far that land on this worker
	scanLive  uint32 // of those, in use (or allocated by this pass)
	scanQuar  bool   // a quarantined port was seen
	freed     bool   // freedPort holds a port given back without quarantine
	freedPort uint16 // the last such port (Abandon, or a flow that carried no connection)
}

// dests is the per-destination table. At most max entries are used (load
// factor <= 1/2); an entry lives while it counts a port in use (inUse,
// other) or in quarantine.
type dests struct {
	e    []dent
	mask uint32
	n    int
	max  int
	key  hashKey
}

func (d *dests) init(max int, key hashKey) {
	d.e = make([]dent, pow2(2*max))
	d.mask = uint32(len(d.e) - 1)
	d.max = max
	d.key = key
}

// find returns the slot of k, or -1.
func (d *dests) find(k *tuple) int {
	i := uint32(d.key.hash(k)) & d.mask
	for {
		e := &d.e[i]
		if e.k.proto == 0 {
			return -1
		}
		if e.k == *k {
			return int(i)
		}
		i = (i + 1) & d.mask
	}
}

// add returns the slot of k, adding a zero entry if needed; -1 when the
// table is full.
func (d *dests) add(k *tuple) int {
	i := uint32(d.key.hash(k)) & d.mask
	for {
		e := &d.e[i]
		if e.k.proto == 0 {
			if d.n >= d.max {
				return -1
			}
			*e = dent{k: *k}
			d.n++
			return int(i)
		}
		if e.k == *k {
			return int(i)
		}
		i = (i + 1) & d.mask
	}
}

// tidy deletes the entry in slot i if it counts nothing any more. Slots of
// other entries may move: callers must not keep slot numbers across it.
func (d *dests) tidy(i int) {
	e := &d.e[i]
	if e.inUse != 0 || e.quar != 0 || e.other != 0 {
		return
	}
	d.n--
	s := uint32(i)
	for {
		d.e[s] = dent{}
		j := s
		for {
			j = (j + 1) & d.mask
			if d.e[j].k.proto == 0 {
				return
			}
			if h := uint32(d.key.hash(&d.e[j].k)) & d.mask; inRun(h, s, j, d.mask) {
				d.e[s] = d.e[j]
				s = j
				break
			}
		}
	}
}

// unquar removes one counted quarantine entry from destination k.
func (d *dests) unquar(k *tuple) {
	dk := *k
	dk.nport = 0
	if i := d.find(&dk); i >= 0 {
		if d.e[i].quar > 0 {
			d.e[i].quar--
		}
		d.tidy(i)
	}
}

// unlinkHead removes ring slot s (whose next link is next) from the head
// of destination k's quarantine list, if it is the head.
func (d *dests) unlinkHead(k *tuple, s, next uint32) {
	dk := *k
	dk.nport = 0
	if i := d.find(&dk); i >= 0 && d.e[i].qhead == s+1 {
		d.e[i].qhead = next
		if next == 0 {
			d.e[i].qtail = 0
		}
	}
}

// qent is one quarantined port.
type qent struct {
	k       tuple
	t       conntrack.Time // release time
	next    uint32         // ring slot+1 of the next entry of the same destination's list, 0 = none
	counted bool           // counted in its destination's dent.quar and linked in its list
	dead    bool           // superseded by a later release of the port, or the port was reused
}

// quarantine holds released ports. ring holds entries in release order
// between head and tail (free-running counters); ix maps a tuple to its live
// ring slot: each entry is tag<<32 | slot+1, tag being the low 32 bits of
// the tuple's hash (which also give its home index), 0 an empty entry.
type quarantine struct {
	ring  []qent
	rmask uint32
	head  uint32
	tail  uint32
	ix    []uint64
	imask uint32
	key   hashKey
	hold  conntrack.Time
	d     *dests
}

func (q *quarantine) init(n int, hold conntrack.Time, key hashKey, d *dests) {
	q.ring = make([]qent, pow2(n))
	q.rmask = uint32(len(q.ring) - 1)
	q.ix = make([]uint64, 2*len(q.ring))
	q.imask = uint32(len(q.ix) - 1)
	q.key = key
	q.hold = hold
	q.d = d
}

// find returns the index position and ring slot of k's live entry, or pos
// -1.
func (q *quarantine) find(k *tuple, tag uint32) (pos int, slot uint32) {
	i := tag & q.imask
	for {
		x := q.ix[i]
		if x == 0 {
			return -1, 0
		}
		if uint32(x>>32) == tag {
			s := uint32(x) - 1
			if q.ring[s].k == *k {
				return int(i), s
			}
		}
		i = (i + 1) & q.imask
	}
}

// lookup returns when k was released and whether it is still quarantined
// at now.
func (q *quarantine) lookup(k *tuple, now conntrack.Time) (conntrack.Time, bool) {
	pos, s := q.find(k, uint32(q.key.hash(k)))
	if pos < 0 {
		return 0, false
	}
	t := q.ring[s].t
	return t, now-t < q.hold
}

// ixDelete removes index entry pos, shifting later entries of its probe
// run back.
func (q *quarantine) ixDelete(pos int) {
	i := uint32(pos)
	for {
		q.ix[i] = 0
		j := i
		for {
			j = (j + 1) & q.imask
			x := q.ix[j]
			if x == 0 {
				return
			}
			h := uint32(x>>32) & q.imask
			if inRun(h, i, j, q.imask) {
				q.ix[i] = x
				i = j
				break
			}
		}
	}
}

// kill ends the live entry in ring slot s: it leaves the index and its
// destination's count, and stays in the ring and its list, dead.
func (q *quarantine) kill(s uint32) {
	e := &q.ring[s]
	if e.dead {
		return
	}
	if pos, _ := q.find(&e.k, uint32(q.key.hash(&e.k))); pos >= 0 {
		q.ixDelete(pos)
	}
	e.dead = true
	if e.counted {
		q.d.unquar(&e.k)
	}
}

// uncount takes the live entry in ring slot s, already unlinked from its
// destination's list (oldest), out of its destination's count; it stays
// in the index, still quarantining its port.
func (q *quarantine) uncount(s uint32) {
	e := &q.ring[s]
	if e.counted && !e.dead {
		q.d.unquar(&e.k)
	}
	e.counted = false
}

// remove ends k's entry, if any (its port is being reused).
func (q *quarantine) remove(k *tuple) {
	if pos, s := q.find(k, uint32(q.key.hash(k))); pos >= 0 {
		q.kill(s)
	}
}

// popHead removes the oldest entry; it reports whether that entry was live.
func (q *quarantine) popHead() bool {
	s := q.head & q.rmask
	e := &q.ring[s]
	live := !e.dead
	if e.counted {
		q.d.unlinkHead(&e.k, s, e.next)
	}
	q.kill(s)
	q.head++
	return live
}

// trim pops at most budget entries from the head that are dead or whose
// quarantine has ended.
func (q *quarantine) trim(now conntrack.Time, budget int) {
	for ; budget > 0 && q.head != q.tail; budget-- {
		e := &q.ring[q.head&q.rmask]
		if !e.dead && now-e.t < q.hold {
			return
		}
		q.popHead()
	}
}

// insert quarantines k from now; an older entry of k is superseded. If
// counted, the caller has already counted the entry in its destination
// (dent.quar), and insert appends it to the destination's list. When the
// ring is full the oldest entry is dropped: insert reports whether it was
// still live (a port forgotten before its quarantine ended).
func (q *quarantine) insert(k *tuple, now conntrack.Time, counted bool) (forgot bool) {
	tag := uint32(q.key.hash(k))
	if pos, s := q.find(k, tag); pos >= 0 {
		q.kill(s)
	}
	q.trim(now, 2)
	if q.tail-q.head == uint32(len(q.ring)) {
		forgot = q.popHead()
	}
	s := q.tail & q.rmask
	q.ring[s] = qent{k: *k, t: now, counted: counted}
	q.tail++
	i := tag & q.imask
	for q.ix[i] != 0 {
		i = (i + 1) & q.imask
	}
	q.ix[i] = uint64(tag)<<32 | uint64(s+1)
	if counted {
		dk := *k
		dk.nport = 0
		if j := q.d.find(&dk); j >= 0 {
			e := &q.d.e[j]
			if e.qtail != 0 {
				q.ring[e.qtail-1].next = s + 1
			} else {
				e.qhead = s + 1
			}
			e.qtail = s + 1
		}
	}
	return forgot
}

// oldest unlinks and returns the ring slot of the oldest live entry of
// destination k's list (k.nport 0); ok is false if there is none. Every
// entry looked at, dead ones included (they are unlinked on the way),
// costs one unit of *budget, and it stops when the budget is spent.
func (q *quarantine) oldest(k *tuple, budget *int) (slot uint32, ok bool) {
	j := q.d.find(k)
	if j < 0 {
		return 0, false
	}
	e := &q.d.e[j]
	for *budget > 0 && e.qhead != 0 {
		*budget--
		s := e.qhead - 1
		qe := &q.ring[s]
		e.qhead = qe.next
		if e.qhead == 0 {
			e.qtail = 0
		}
		if !qe.dead {
			return s, true
		}
	}
	return 0, false
}

// len returns the number of ring entries between head and tail (dead
// ones included).
func (q *quarantine) len() int { return int(q.tail - q.head) }
