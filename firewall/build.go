package firewall

import (
	"net/netip"
	"slices"
	"strconv"
)

// u128 is a point of a dimension: an IPv6 address, or (hi = 0) an IPv4
// address, a port or an ICMP type.
type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	switch {
	case a.hi != b.hi:
		if a.hi < b.hi {
			return -1
		}
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func (a u128) inc() u128 {
	a.lo++
	if a.lo == 0 {
		a.hi++
	}
	return a
}

// span is an inclusive range of points.
type span struct{ lo, hi u128 }

// ruleSpans is one rule's constraint in one dimension: any, or the union of
// spans (none at all: the rule matches no point of this dimension).
type ruleSpans struct {
	any   bool
	spans []span
}

var errTooBig = &Error{"rules", "the classifier would need more than " + strconv.Itoa(MaxMemory>>20) +
	" MiB: too many distinct prefixes or port ranges for this many rules"}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// builder builds one class: it owns the arena of bitmap blocks, in which
// every distinct rule bitmap is stored once (interned), wherever it is used.
type builder struct {
	n, w, a, b int // rules, bitmap words, aggregate words, block words (a+w)
	arena      []uint64
	seen       map[uint64][]uint32 // bitmap hash -> block offsets
	z          []uint64            // per-rule Zobrist keys: a bitmap's hash is the XOR of its rules' keys
}

func newBuilder(n int) *builder {
	w := (n + 63) / 64
	a := (w + 63) / 64
	bd := &builder{n: n, w: w, a: a, b: a + w, seen: map[uint64][]uint32{}, z: make([]uint64, n)}
	for i := range bd.z {
		bd.z[i] = splitmix64(uint64(i))
	}
	return bd
}

// intern returns the arena offset of bitmap bm (whose hash is h), adding it
// if it is new.
func (bd *builder) intern(bm []uint64, h uint64) uint32 {
	for _, off := range bd.seen[h] {
		if slices.Equal(bd.arena[int(off)+bd.a:int(off)+bd.b], bm) {
			return off
		}
	}
	off := uint32(len(bd.arena))
	for i := 0; i < bd.a; i++ {
		var agg uint64
		for j := i * 64; j < min(bd.w, i*64+64); j++ {
			if bm[j] != 0 {
				agg |= 1 << (j - i*64)
			}
		}
		bd.arena = append(bd.arena, agg)
	}
	bd.arena = append(bd.arena, bm...)
	bd.seen[h] = append(bd.seen[h], off)
	return off
}

// isAll reports whether the block at off has every rule's bit set.
func (bd *builder) isAll(off uint32) bool {
	bm := bd.arena[int(off)+bd.a : int(off)+bd.b]
	for i, w := range bm {
		want := ^uint64(0)
		if i == len(bm)-1 && bd.n%64 != 0 {
			want = 1<<(bd.n%64) - 1
		}
		if w != want {
			return false
		}
	}
	return true
}

// unintern removes the block at off, the last one interned.
func (bd *builder) unintern(off uint32) {
	var h uint64
	for r := 0; r < bd.n; r++ {
		if bd.arena[int(off)+bd.a+r/64]&(1<<(r%64)) != 0 {
			h ^= bd.z[r]
		}
	}
	bd.seen[h] = slices.DeleteFunc(bd.seen[h], func(o uint32) bool { return o == off })
	bd.arena = bd.arena[:off]
}

// dimension is one dimension prepared for the sweep: the rules that do not
// constrain it (bitmap wild, hash h), and the sorted points where a rule's
// span begins (+1) or ends (-1, the point after its last).
type dimension struct {
	wild []uint64
	h    uint64
	ev   []event
}

type event struct {
	at    u128
	rule  int32
	delta int32
}

func (bd *builder) dimension(in []ruleSpans, max u128) *dimension {
	d := &dimension{wild: make([]uint64, bd.w)}
	for r := range in {
		if in[r].any {
			d.wild[r/64] |= 1 << (r % 64)
			d.h ^= bd.z[r]
			continue
		}
		for _, s := range in[r].spans {
			d.ev = append(d.ev, event{s.lo, int32(r), 1})
			if s.hi != max {
				d.ev = append(d.ev, event{s.hi.inc(), int32(r), -1})
			}
		}
	}
	slices.SortFunc(d.ev, func(x, y event) int { return x.at.cmp(y.at) })
	return d
}

// sweep splits the dimension into elementary intervals, on each of which
// every rule matches at every point or at none, and calls fn with each
// interval's first point (the first is 0), its rule bitmap and the bitmap's
// hash. It keeps a count of each rule's open spans (a rule's spans may
// overlap) and updates the bitmap and hash only where a count leaves or
// reaches zero. Consecutive intervals may have the same bitmap.
func (bd *builder) sweep(d *dimension, fn func(at u128, bm []uint64, h uint64)) {
	cur := slices.Clone(d.wild)
	h := d.h
	count := make([]int32, bd.n)
	ev := d.ev
	at := u128{}
	for i := 0; ; {
		for ; i < len(ev) && ev[i].at == at; i++ {
			r := ev[i].rule
			before := count[r] > 0
			count[r] += ev[i].delta
			if (count[r] > 0) != before {
				cur[r/64] ^= 1 << (r % 64)
				h ^= bd.z[r]
			}
		}
		fn(at, cur, h)
		if i == len(ev) {
			return
		}
		at = ev[i].at
	}
}

// intervals sweeps d and interns its bitmaps, returning the first point and
// block offset of each maximal run of points with one bitmap.
func (bd *builder) intervals(d *dimension) ([]u128, []uint32) {
	var starts []u128
	var offs []uint32
	bd.sweep(d, func(at u128, bm []uint64, h uint64) {
		off := bd.intern(bm, h)
		if len(offs) == 0 || offs[len(offs)-1] != off {
			starts = append(starts, at)
			offs = append(offs, off)
		}
	})
	return starts, offs
}

// Dimensions of a class.
const (
	dSrc4 = iota
	dSrc6
	dDst4
	dDst6
	dSport
	dDport
	dICMP
	numDims
)

var dimMax = [numDims]u128{
	dSrc4: {0, 1<<32 - 1}, dDst4: {0, 1<<32 - 1},
	dSrc6: {^uint64(0), ^uint64(0)}, dDst6: {^uint64(0), ^uint64(0)},
	dSport: {0, 65535}, dDport: {0, 65535}, dICMP: {0, 255},
}

// classBuild is a class being built.
type classBuild struct {
	bd   *builder
	dims [numDims]*dimension // nil: the class's protocol has no such field
}

// prepare lays out the dimensions of the class made of rules idx (global
// indices, in order) for protocol class pc.
func prepare(rules []Rule, idx []int32, pc int) *classBuild {
	cb := &classBuild{bd: newBuilder(len(idx))}
	var in [numDims][]ruleSpans
	use := [numDims]bool{dSrc4: true, dSrc6: true, dDst4: true, dDst6: true,
		dSport: pc == pcTCP || pc == pcUDP, dDport: pc == pcTCP || pc == pcUDP, dICMP: pc == pcICMP || pc == pcICMPv6}
	for d := range in {
		if use[d] {
			in[d] = make([]ruleSpans, len(idx))
		}
	}
	addrs := func(r int, ps []netip.Prefix, d4, d6 []ruleSpans) {
		if len(ps) == 0 {
			d4[r].any, d6[r].any = true, true
		}
		for _, p := range ps {
			if p.Addr().Is4() {
				d4[r].spans = append(d4[r].spans, prefixSpan4(p))
			} else {
				d6[r].spans = append(d6[r].spans, prefixSpan6(p))
			}
		}
	}
	ports := func(prs []PortRange) ruleSpans {
		rs := ruleSpans{any: len(prs) == 0}
		for _, pr := range prs {
			rs.spans = append(rs.spans, span{u128{0, uint64(pr.Lo)}, u128{0, uint64(pr.Hi)}})
		}
		return rs
	}
	for r, g := range idx {
		rule := &rules[g]
		addrs(r, rule.Src, in[dSrc4], in[dSrc6])
		addrs(r, rule.Dst, in[dDst4], in[dDst6])
		if use[dSport] {
			in[dSport][r] = ports(rule.SrcPorts)
			in[dDport][r] = ports(rule.DstPorts)
		}
		if use[dICMP] {
			in[dICMP][r].any = len(rule.ICMPTypes) == 0
			for _, t := range rule.ICMPTypes {
				in[dICMP][r].spans = append(in[dICMP][r].spans, span{u128{0, uint64(t)}, u128{0, uint64(t)}})
			}
		}
	}
	for d := range in {
		if use[d] {
			cb.dims[d] = cb.bd.dimension(in[d], dimMax[d])
		}
	}
	return cb
}

// estimate returns the bytes the class's tables will take at most, from
// the number of distinct bitmap hashes and of intervals (were two distinct
// bitmaps to share a 64-bit hash, build's final check still applies).
func (cb *classBuild) estimate() int {
	bd := cb.bd
	distinct := map[uint64]struct{}{}
	intervals := 0
	for _, d := range cb.dims {
		if d != nil {
			bd.sweep(d, func(_ u128, _ []uint64, h uint64) {
				distinct[h] = struct{}{}
				intervals++
			})
		}
	}
	return 8*len(distinct)*bd.b + 20*intervals
}

// finish builds the class's tables.
func (cb *classBuild) finish(cl *class, verdicts []Verdict, idx []int32) {
	bd := cb.bd
	cl.n, cl.a = bd.n, bd.a
	cl.verdicts = make([]Verdict, len(idx))
	for r, g := range idx {
		cl.verdicts[r] = verdicts[g]
	}
	// A dimension whose only interval holds every rule of the class
	// constrains nothing: Match skips it (and its block is dropped if
	// nothing else uses it).
	intervals := func(d int) ([]u128, []uint32, bool) {
		if cb.dims[d] == nil {
			return nil, nil, false
		}
		arena := len(bd.arena)
		starts, offs := bd.intervals(cb.dims[d])
		if len(offs) == 1 && bd.isAll(offs[0]) {
			if int(offs[0]) == arena {
				bd.unintern(offs[0])
			}
			return nil, nil, false
		}
		return starts, offs, true
	}
	for _, d := range [...]struct {
		dim int
		out *dim32
	}{{dDport, &cl.dport}, {dSport, &cl.sport}, {dSrc4, &cl.src4}, {dDst4, &cl.dst4}} {
		if starts, offs, ok := intervals(d.dim); ok {
			d.out.starts = make([]uint32, len(starts))
			for i, s := range starts {
				d.out.starts[i] = uint32(s.lo)
			}
			d.out.offs = offs
		}
	}
	for _, d := range [...]struct {
		dim int
		out *dim128
	}{{dSrc6, &cl.src6}, {dDst6, &cl.dst6}} {
		if starts, offs, ok := intervals(d.dim); ok {
			d.out.starts, d.out.offs = starts, offs
		}
	}
	if starts, offs, ok := intervals(dICMP); ok {
		cl.icmp = new([256]uint32)
		for i := range starts {
			end := 256
			if i+1 < len(starts) {
				end = int(starts[i+1].lo)
			}
			for t := int(starts[i].lo); t < end; t++ {
				cl.icmp[t] = offs[i]
			}
		}
	}
	cl.arena = slices.Clip(bd.arena)
	cb.bd = nil
}

// build makes the classifier of a validated rule set: one class per zone
// and protocol class, each holding the rules that can match it. It works in
// two passes: the first counts each class's distinct bitmaps by their hashes
// alone and refuses the rule set if the tables would pass MaxMemory; the
// second builds them.
func build(rs RuleSet, verdicts []Verdict) (*Compiled, error) {
	rules := rs.Rules
	c := &Compiled{n: len(rules), def: Verdict{Rule: -1, Action: rs.Default}}
	c.names = make([]string, len(rules))
	for i := range rules {
		c.names[i] = rules[i].Name
	}
	var cbs [numZones][numProtoClasses]*classBuild
	var idxs [numZones][numProtoClasses][]int32
	total := 0
	for z := range numZones {
		for pc := range numProtoClasses {
			var idx []int32
			for r := range rules {
				rz, rp := rules[r].Zone, rules[r].Proto
				if (rz == AnyZone || rz == z) && (rp == ProtoAny || protoClass(rp) == pc) {
					idx = append(idx, int32(r))
				}
			}
			if len(idx) == 0 {
				continue
			}
			idxs[z][pc] = idx
			cbs[z][pc] = prepare(rules, idx, pc)
			total += cbs[z][pc].estimate() + 8*len(idx)
			if total > MaxMemory {
				return nil, errTooBig
			}
		}
	}
	for z := range numZones {
		for pc := range numProtoClasses {
			if cbs[z][pc] != nil {
				cbs[z][pc].finish(&c.classes[z][pc], verdicts, idxs[z][pc])
				cbs[z][pc] = nil
			}
		}
	}
	c.mem = c.memory()
	if c.mem > MaxMemory {
		return nil, errTooBig
	}
	return c, nil
}

func prefixSpan4(p netip.Prefix) span {
	a := p.Addr().As4()
	lo := uint64(a[0])<<24 | uint64(a[1])<<16 | uint64(a[2])<<8 | uint64(a[3])
	host := uint64(1)<<(32-p.Bits()) - 1
	return span{u128{0, lo}, u128{0, lo | host}}
}

func prefixSpan6(p netip.Prefix) span {
	a := p.Addr().As16()
	var lo u128
	for i := 0; i < 8; i++ {
		lo.hi = lo.hi<<8 | uint64(a[i])
		lo.lo = lo.lo<<8 | uint64(a[8+i])
	}
	hi := lo
	switch b := p.Bits(); {
	case b == 0:
		hi = u128{^uint64(0), ^uint64(0)}
	case b <= 64:
		hi.hi |= ^uint64(0) >> b
		hi.lo = ^uint64(0)
	case b < 128:
		hi.lo |= ^uint64(0) >> (b - 64)
	}
	return span{lo, hi}
}
