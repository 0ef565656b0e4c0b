package firewall

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"
	"unsafe"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/header"
)

// Protocol classes: a rule with ProtoAny belongs to all of them.
const (
	pcOther  = iota // a protocol no rule can name: only ProtoAny rules match
	pcTCP           // 6
	pcUDP           // 17
	pcICMP          // 1
	pcICMPv6        // 58

	numProtoClasses
)

func protoClass(p uint8) int {
	switch p {
	case ProtoTCP:
		return pcTCP
	case ProtoUDP:
		return pcUDP
	case ProtoICMP:
		return pcICMP
	case ProtoICMPv6:
		return pcICMPv6
	}
	return pcOther
}

// dim32 is a dimension of 32-bit points (IPv4 addresses, ports) cut into
// elementary intervals: interval i starts at starts[i] (starts[0] = 0) and
// its rule bitmap is the arena block at offs[i]. A nil starts means no rule
// of the class constrains the dimension: it is skipped.
type dim32 struct {
	starts []uint32
	offs   []uint32
}

// find returns the block offset of the interval holding x: a branch-free
// binary search for the last start <= x.
func (d *dim32) find(x uint32) uint32 {
	s := d.starts
	base := 0
	for n := len(s); n > 1; {
		half := n >> 1
		if s[base+half] <= x {
			base += half
		}
		n -= half
	}
	return d.offs[base]
}

// dim128 is dim32 for IPv6 addresses, compared as two uint64 halves.
type dim128 struct {
	starts []u128
	offs   []uint32
}

func (d *dim128) find(hi, lo uint64) uint32 {
	s := d.starts
	base := 0
	for n := len(s); n > 1; {
		half := n >> 1
		p := &s[base+half]
		if p.hi < hi || p.hi == hi && p.lo <= lo {
			base += half
		}
		n -= half
	}
	return d.offs[base]
}

// class is the classifier of the rules that can match one zone and
// protocol class (their Zone is AnyZone or the zone, their Proto ProtoAny
// or the class's protocol), renumbered 0..n-1 in rule order.
type class struct {
	n int // rules
	a int // aggregate words per block; a block is a + ceil(n/64) words

	// arena holds every distinct rule bitmap of the class once, as a
	// block of a aggregate words (bit j: bitmap word j is not zero) then
	// the bitmap words (bit r: rule r matches). Dimensions point into it.
	arena []uint64

	dport dim32        // TCP, UDP
	sport dim32        // TCP, UDP
	icmp  *[256]uint32 // ICMP, ICMPv6: type -> block; nil: unconstrained
	src4  dim32
	dst4  dim32
	src6  dim128
	dst6  dim128

	verdicts []Verdict // per class rule
}

// Compiled is an immutable, validated rule set with its classifier. It is
// safe for concurrent use by any number of goroutines; build one with
// Compile and publish it through Active.
type Compiled struct {
	n       int // rules
	classes [numZones][numProtoClasses]class
	def     Verdict // no rule matched
	names   []string
	mem     int
	epoch   uint16 // the rule set's number (SetEpoch), carried by FlowRule
}

// maxDims is the most dimensions one lookup intersects: both ports and
// addresses.
const maxDims = 4

// Match classifies the first packet of a new flow: zone is the interface
// side it arrived on, k its key (as conntrack.Parse filled it) and icmpType
// its ICMP or ICMPv6 type (ignored for other protocols). It returns the
// verdict of the first rule that matches, or the default action with Rule
// -1. Ports are consulted only for TCP and UDP keys, the ICMP type only for
// ICMP and ICMPv6 keys; k.Zone (the conntrack zone) is not consulted.
//
// A nil Compiled (the zero Active's) matches nothing and answers Drop, rule
// -1. Match never allocates and takes no lock.
func (c *Compiled) Match(zone Zone, k *conntrack.Key, icmpType uint8) Verdict {
	if c == nil {
		return Verdict{Rule: -1, Action: Drop}
	}
	z := zone
	if z >= numZones {
		z = AnyZone // an unknown side matches only AnyZone rules
	}
	cl := &c.classes[z][protoClass(k.Proto)]
	if cl.n == 0 {
		return c.def
	}
	var offs [maxDims]uint32
	d := 0
	switch k.Proto {
	case ProtoTCP, ProtoUDP:
		if cl.dport.starts != nil {
			offs[d] = cl.dport.find(uint32(k.DstPort))
			d++
		}
		if cl.sport.starts != nil {
			offs[d] = cl.sport.find(uint32(k.SrcPort))
			d++
		}
	case ProtoICMP, ProtoICMPv6:
		if cl.icmp != nil {
			offs[d] = cl.icmp[icmpType]
			d++
		}
	}
	if header.IsV4Mapped(&k.Src) {
		if cl.src4.starts != nil {
			offs[d] = cl.src4.find(binary.BigEndian.Uint32(k.Src[12:]))
			d++
		}
	} else if cl.src6.starts != nil {
		offs[d] = cl.src6.find(binary.BigEndian.Uint64(k.Src[:8]), binary.BigEndian.Uint64(k.Src[8:]))
		d++
	}
	if header.IsV4Mapped(&k.Dst) {
		if cl.dst4.starts != nil {
			offs[d] = cl.dst4.find(binary.BigEndian.Uint32(k.Dst[12:]))
			d++
		}
	} else if cl.dst6.starts != nil {
		offs[d] = cl.dst6.find(binary.BigEndian.Uint64(k.Dst[:8]), binary.BigEndian.Uint64(k.Dst[8:]))
		d++
	}
	if d == 0 { // nothing constrains the class's rules: the first one matches
		return cl.verdicts[0]
	}
	if r := cl.first(&offs, d); r >= 0 {
		return cl.verdicts[r]
	}
	return c.def
}

// first intersects the d bitmaps at offs and returns the lowest rule in the
// intersection, or -1. It ANDs the aggregate words first and visits only
// the bitmap words that all d aggregates mark as non-zero, lowest first,
// stopping at the first non-zero AND.
//
// The offsets come from the class's own tables, whose blocks all lie whole
// inside its arena: the loads are unchecked.
func (cl *class) first(offs *[maxDims]uint32, d int) int {
	base := unsafe.Pointer(unsafe.SliceData(cl.arena))
	var p [maxDims]unsafe.Pointer
	for i := 0; i < d; i++ {
		p[i] = unsafe.Add(base, uintptr(offs[i])*8)
	}
	for i := d; i < maxDims; i++ {
		p[i] = p[0] // ANDing a bitmap with itself changes nothing
	}
	p0, p1, p2, p3 := p[0], p[1], p[2], p[3]
	word := func(j int) uint64 {
		o := uintptr(j) * 8
		return *(*uint64)(unsafe.Add(p0, o)) & *(*uint64)(unsafe.Add(p1, o)) &
			*(*uint64)(unsafe.Add(p2, o)) & *(*uint64)(unsafe.Add(p3, o))
	}
	a := cl.a
	for ai := 0; ai < a; ai++ {
		for agg := word(ai); agg != 0; agg &= agg - 1 {
			j := ai*64 + bits.TrailingZeros64(agg)
			if w := word(a + j); w != 0 {
				return j*64 + bits.TrailingZeros64(w)
			}
		}
	}
	return -1
}

// Len returns the number of rules.
func (c *Compiled) Len() int {
	if c == nil {
		return 0
	}
	return c.n
}

// SetEpoch numbers this rule set, so that a flow's rule (FlowRule) names
// the rule of the rule set it was created under even after the rules
// change. Call it before the Compiled is published (Active.Store).
func (c *Compiled) SetEpoch(e uint16) { c.epoch = e }

// Epoch returns the number SetEpoch gave.
func (c *Compiled) Epoch() uint16 { return c.epoch }

// FlowRule is what a flow records of the rule that admitted it (a
// Verdict's Rule): the rule set's epoch in the high 16 bits and the rule's
// index plus one in the low 16 (0: the default action; MaxRules fits).
// Resolve it with the names of that epoch's rule set. Never allocates.
func (c *Compiled) FlowRule(rule int32) uint32 {
	if c == nil {
		return uint32(rule + 1)
	}
	return uint32(c.epoch)<<16 | uint32(rule+1)
}

// Names returns the rule names in order (a copy; control plane).
func (c *Compiled) Names() []string {
	if c == nil {
		return nil
	}
	return append([]string(nil), c.names[:c.n]...)
}

// RuleName returns the Name of rule i (a Verdict's Rule), "" for -1 or an
// index out of range.
func (c *Compiled) RuleName(i int32) string {
	if c == nil || i < 0 || int(i) >= c.n {
		return ""
	}
	return c.names[i]
}

// Default returns the verdict for flows no rule matches.
func (c *Compiled) Default() Verdict {
	if c == nil {
		return Verdict{Rule: -1, Action: Drop}
	}
	return c.def
}

// MemoryBytes returns the memory the compiled rule set holds: the bitmap
// arenas, the interval tables, the per-rule verdicts and the rule names.
func (c *Compiled) MemoryBytes() int {
	if c == nil {
		return 0
	}
	return c.mem
}

func (c *Compiled) memory() int {
	m := int(unsafe.Sizeof(*c)) + 16*len(c.names)
	for _, name := range c.names {
		m += len(name)
	}
	for z := range c.classes {
		for pc := range c.classes[z] {
			cl := &c.classes[z][pc]
			m += 8*cap(cl.arena) + 8*len(cl.verdicts)
			for _, d := range [...]*dim32{&cl.dport, &cl.sport, &cl.src4, &cl.dst4} {
				m += 4*len(d.starts) + 4*len(d.offs)
			}
			for _, d := range [...]*dim128{&cl.src6, &cl.dst6} {
				m += 16*len(d.starts) + 4*len(d.offs)
			}
			if cl.icmp != nil {
				m += 4 * len(cl.icmp)
			}
		}
	}
	return m
}

// Active holds the rule set in force. The control plane Stores a new
// Compiled; workers Load it (once per batch is enough) and Match against it.
// The zero Active holds none: Load returns nil, whose Match answers Drop.
type Active struct {
	p atomic.Pointer[Compiled]
}

// Load returns the current rule set (nil before the first Store).
func (a *Active) Load() *Compiled { return a.p.Load() }

// Store makes c the current rule set. Matches already running finish
// against the previous one.
func (a *Active) Store(c *Compiled) { a.p.Store(c) }
