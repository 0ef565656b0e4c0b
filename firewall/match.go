package firewall

import (
	"encoding/binary"
	"math/bits"
	"sync/atomic"
	"unsafe"

	"github.com/edgegw/edge/conntrack"
)

// Protocol classes of the zone x protocol dimension.
const (
	pcOther = iota // a protocol no rule can name: only ProtoAny rules match
	pcTCP
	pcUDP
	pcICMP
	pcICMPv6

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
// constrains the dimension: it is skipped.
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

// Compiled is an immutable, validated rule set with its classifier. It is
// safe for concurrent use by any number of goroutines; build one with
// Compile and publish it through Active.
type Compiled struct {
	n       int // rules
	w, a, b int // bitmap words, aggregate words, block words (a + w)

	// arena holds every distinct rule bitmap once, as a block of a
	// aggregate words (bit j: bitmap word j is not zero) then w bitmap
	// words (bit r: rule r matches). The dimensions point into it.
	arena []uint64

	zp         [int(numZones) * numProtoClasses]uint32 // zone x protocol class
	src4, dst4 dim32
	src6, dst6 dim128
	sport      dim32        // TCP and UDP keys only
	dport      dim32        // TCP and UDP keys only
	icmp       *[256]uint32 // ICMP and ICMPv6 keys only; nil: unconstrained

	verdicts []Verdict // per rule
	def      Verdict   // no rule matched
	names    []string
	mem      int
}

// maxDims is the most dimensions one lookup intersects: zone x protocol,
// source and destination address, then both ports or the ICMP type.
const maxDims = 5

// Match classifies the first packet of a new flow: zone is the interface
// side it arrived on, k its key (as conntrack.Parse filled it) and icmpType
// its ICMP or ICMPv6 type (ignored for other protocols). It returns the
// verdict of the first rule that matches, or the default action with Rule
// -1. Ports are consulted only for TCP and UDP keys, the ICMP type only for
// ICMP and ICMPv6 keys.
//
// A nil Compiled (the zero Active's) matches nothing and answers Drop, rule
// -1. Match never allocates and takes no lock.
func (c *Compiled) Match(zone Zone, k *conntrack.Key, icmpType uint8) Verdict {
	if c == nil {
		return Verdict{Rule: -1, Action: Drop}
	}
	if c.n == 0 {
		return c.def
	}
	var offs [maxDims]uint32
	zi := int(zone)
	if zi >= int(numZones) {
		zi = 0 // an unknown side matches only AnyZone rules
	}
	offs[0] = c.zp[zi*numProtoClasses+protoClass(k.Proto)]
	d := 1
	if isMapped(&k.Src) {
		if c.src4.starts != nil {
			offs[d] = c.src4.find(binary.BigEndian.Uint32(k.Src[12:]))
			d++
		}
	} else if c.src6.starts != nil {
		offs[d] = c.src6.find(binary.BigEndian.Uint64(k.Src[:8]), binary.BigEndian.Uint64(k.Src[8:]))
		d++
	}
	if isMapped(&k.Dst) {
		if c.dst4.starts != nil {
			offs[d] = c.dst4.find(binary.BigEndian.Uint32(k.Dst[12:]))
			d++
		}
	} else if c.dst6.starts != nil {
		offs[d] = c.dst6.find(binary.BigEndian.Uint64(k.Dst[:8]), binary.BigEndian.Uint64(k.Dst[8:]))
		d++
	}
	// A rule with ports has proto TCP or UDP and one with ICMP types proto
	// ICMP or ICMPv6 (Compile checks it), so for other protocols the zone x
	// protocol bitmap has already cleared them.
	switch k.Proto {
	case ProtoTCP, ProtoUDP:
		if c.sport.starts != nil {
			offs[d] = c.sport.find(uint32(k.SrcPort))
			d++
		}
		if c.dport.starts != nil {
			offs[d] = c.dport.find(uint32(k.DstPort))
			d++
		}
	case ProtoICMP, ProtoICMPv6:
		if c.icmp != nil {
			offs[d] = c.icmp[icmpType]
			d++
		}
	}
	return c.first(&offs, d)
}

// first intersects the d bitmaps at offs and returns the verdict of the
// lowest rule in the intersection. It ANDs the aggregate words first and
// visits only the bitmap words all d aggregates mark as non-zero, lowest
// first, stopping at the first non-zero AND.
//
// Offsets come from Compile, which checked that every block lies inside the
// arena; the loads are unchecked.
func (c *Compiled) first(offs *[maxDims]uint32, d int) Verdict {
	base := unsafe.Pointer(unsafe.SliceData(c.arena))
	var p [maxDims]unsafe.Pointer
	for i := 0; i < d; i++ {
		p[i] = unsafe.Add(base, uintptr(offs[i])*8)
	}
	for i := d; i < maxDims; i++ {
		p[i] = p[0] // ANDing a bitmap with itself changes nothing
	}
	word := func(j int) uint64 {
		o := uintptr(j) * 8
		return *(*uint64)(unsafe.Add(p[0], o)) & *(*uint64)(unsafe.Add(p[1], o)) &
			*(*uint64)(unsafe.Add(p[2], o)) & *(*uint64)(unsafe.Add(p[3], o)) &
			*(*uint64)(unsafe.Add(p[4], o))
	}
	for ai := 0; ai < c.a; ai++ {
		for agg := word(ai); agg != 0; agg &= agg - 1 {
			j := ai*64 + bits.TrailingZeros64(agg)
			if w := word(c.a + j); w != 0 {
				return c.verdicts[j*64+bits.TrailingZeros64(w)]
			}
		}
	}
	return c.def
}

func isMapped(a *[16]byte) bool {
	return a[0]|a[1]|a[2]|a[3]|a[4]|a[5]|a[6]|a[7]|a[8]|a[9] == 0 && a[10] == 0xff && a[11] == 0xff
}

// Len returns the number of rules.
func (c *Compiled) Len() int {
	if c == nil {
		return 0
	}
	return c.n
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
// arena, the interval tables, the per-rule verdicts and the rule names.
func (c *Compiled) MemoryBytes() int {
	if c == nil {
		return 0
	}
	return c.mem
}

func (c *Compiled) memory() int {
	m := int(unsafe.Sizeof(*c)) + 8*cap(c.arena) + 8*len(c.verdicts) + 16*len(c.names)
	for _, name := range c.names {
		m += len(name)
	}
	for _, d := range [...]*dim32{&c.src4, &c.dst4, &c.sport, &c.dport} {
		m += 4*len(d.starts) + 4*len(d.offs)
	}
	for _, d := range [...]*dim128{&c.src6, &c.dst6} {
		m += 16*len(d.starts) + 4*len(d.offs)
	}
	if c.icmp != nil {
		m += len(c.icmp) * 4
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
