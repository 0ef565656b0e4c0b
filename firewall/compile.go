package firewall

import (
	"net/netip"
	"slices"
	"strconv"
)

// MaxRules is the largest number of rules a RuleSet may hold.
const MaxRules = 65535

// MaxMemory bounds the classifier tables of one Compiled, in bytes. A rule
// set that would need more is refused by Compile (the tables grow roughly as
// distinct prefixes and ports times the number of rules / 8 bytes; see the
// package doc).
const MaxMemory = 256 << 20

// Error is the error Compile returns: Field is the path of the offending
// field, e.g. "rules[3].dst[1]", and Msg says what is wrong with it.
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string { return e.Field + ": " + e.Msg }

func ruleField(i int, field string) string {
	return "rules[" + strconv.Itoa(i) + "]." + field
}

func elemField(i int, field string, j int) string {
	return ruleField(i, field) + "[" + strconv.Itoa(j) + "]"
}

// Compile validates rs whole and builds its classifier. profileIndex resolves
// a rule's timer profile name to its conntrack index (pass
// conntrack.Table.ProfileIndex); a rule with Profile "" gets index 0 without
// asking. A nil profileIndex knows no names. On error Compile returns nil and
// an *Error naming the first offending field.
//
// Profile indices are resolved now: after a conntrack policy change that
// renumbers profiles, compile the rule set again.
func Compile(rs RuleSet, profileIndex func(name string) (uint8, bool)) (*Compiled, error) {
	if len(rs.Rules) > MaxRules {
		return nil, &Error{"rules", strconv.Itoa(len(rs.Rules)) + " rules, more than " + strconv.Itoa(MaxRules)}
	}
	if rs.Default >= numActions {
		return nil, &Error{"default", "invalid action " + strconv.Itoa(int(rs.Default))}
	}
	verdicts := make([]Verdict, len(rs.Rules))
	for i := range rs.Rules {
		v, err := validate(i, &rs.Rules[i], profileIndex)
		if err != nil {
			return nil, err
		}
		verdicts[i] = v
	}
	return build(rs, verdicts)
}

func validate(i int, r *Rule, profileIndex func(string) (uint8, bool)) (Verdict, error) {
	if r.Zone >= numZones {
		return Verdict{}, &Error{ruleField(i, "zone"), "invalid zone " + strconv.Itoa(int(r.Zone)) +
			" (want 0 any, 1 inside or 2 outside)"}
	}
	for _, f := range [2]struct {
		name string
		ps   []netip.Prefix
	}{{"src", r.Src}, {"dst", r.Dst}} {
		for j, p := range f.ps {
			if msg := checkPrefix(p); msg != "" {
				return Verdict{}, &Error{elemField(i, f.name, j), msg}
			}
		}
	}
	switch r.Proto {
	case ProtoAny, ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6:
	default:
		return Verdict{}, &Error{ruleField(i, "proto"), "unsupported protocol " + strconv.Itoa(int(r.Proto)) +
			" (want 0 any, 6 tcp, 17 udp, 1 icmp or 58 icmpv6)"}
	}
	for _, f := range [2]struct {
		name string
		rs   []PortRange
	}{{"src_ports", r.SrcPorts}, {"dst_ports", r.DstPorts}} {
		if len(f.rs) > 0 && r.Proto != ProtoTCP && r.Proto != ProtoUDP {
			return Verdict{}, &Error{ruleField(i, f.name), "ports need proto tcp or udp"}
		}
		for j, pr := range f.rs {
			if pr.Lo > pr.Hi {
				return Verdict{}, &Error{elemField(i, f.name, j), strconv.Itoa(int(pr.Lo)) + "-" +
					strconv.Itoa(int(pr.Hi)) + ": low above high"}
			}
		}
	}
	if len(r.ICMPTypes) > 0 && r.Proto != ProtoICMP && r.Proto != ProtoICMPv6 {
		return Verdict{}, &Error{ruleField(i, "icmp_types"), "types need proto icmp or icmpv6"}
	}
	if r.Action >= numActions {
		return Verdict{}, &Error{ruleField(i, "action"), "invalid action " + strconv.Itoa(int(r.Action))}
	}
	v := Verdict{Rule: int32(i), Action: r.Action, Log: r.Log}
	if r.Profile != "" {
		idx, ok := uint8(0), false
		if profileIndex != nil {
			idx, ok = profileIndex(r.Profile)
		}
		if !ok {
			return Verdict{}, &Error{ruleField(i, "profile"), "unknown timer profile " + strconv.Quote(r.Profile)}
		}
		v.Profile = idx
	}
	return v, nil
}

// checkPrefix returns what is wrong with p, or "".
func checkPrefix(p netip.Prefix) string {
	a := p.Addr()
	switch {
	case !a.IsValid():
		return "the zero netip.Prefix is not a valid prefix"
	case !p.IsValid():
		return strconv.Quote(a.String()+"/?") + " is not a valid prefix (length out of range)"
	case a.Is4In6() && p.Bits() >= 96:
		return strconv.Quote(p.String()) + " is IPv4-mapped: write it as IPv4 " +
			netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked().String()
	case p.Masked() != p:
		return strconv.Quote(p.String()) + " has host bits set (the prefix is " + p.Masked().String() + ")"
	}
	return ""
}

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

// builder owns the arena of bitmap blocks while a Compiled is built. Every
// distinct rule bitmap is stored once (interned), wherever it is used.
type builder struct {
	n, w, a, b int // rules, bitmap words, aggregate words, block words (a+w)
	arena      []uint64
	seen       map[uint64][]uint32 // bitmap hash -> block offsets
	z          []uint64            // per-rule Zobrist keys: a bitmap's hash is the XOR of its rules' keys
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
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

var errTooBig = &Error{"rules", "the classifier would need more than " + strconv.Itoa(MaxMemory>>20) +
	" MiB: too many distinct prefixes or port ranges for this many rules"}

// intern returns the arena offset of bitmap bm (whose hash is h), adding it
// if it is new.
func (bd *builder) intern(bm []uint64, h uint64) (uint32, error) {
	for _, off := range bd.seen[h] {
		if slices.Equal(bd.arena[int(off)+bd.a:int(off)+bd.b], bm) {
			return off, nil
		}
	}
	if (len(bd.arena)+bd.b)*8 > MaxMemory { // only if hashes collided in the estimate
		return 0, errTooBig
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
	return off, nil
}

// bitmapOf returns the bitmap of the rules for which match is true, and its
// hash.
func (bd *builder) bitmapOf(match func(r int) bool) ([]uint64, uint64) {
	bm := make([]uint64, bd.w)
	var h uint64
	for r := 0; r < bd.n; r++ {
		if match(r) {
			bm[r/64] |= 1 << (r % 64)
			h ^= bd.z[r]
		}
	}
	return bm, h
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
// reaches zero. Consecutive intervals may have the same bitmap (fn merges).
func (bd *builder) sweep(d *dimension, fn func(at u128, bm []uint64, h uint64) error) error {
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
		if err := fn(at, cur, h); err != nil {
			return err
		}
		if i == len(ev) {
			return nil
		}
		at = ev[i].at
	}
}

// intervals sweeps d and interns its bitmaps, returning the first point and
// block offset of each maximal run of points with one bitmap.
func (bd *builder) intervals(d *dimension) ([]u128, []uint32, error) {
	var starts []u128
	var offs []uint32
	err := bd.sweep(d, func(at u128, bm []uint64, h uint64) error {
		off, err := bd.intern(bm, h)
		if err != nil {
			return err
		}
		if len(offs) == 0 || offs[len(offs)-1] != off {
			starts = append(starts, at)
			offs = append(offs, off)
		}
		return nil
	})
	return starts, offs, err
}

// build makes the classifier of a validated rule set, in two passes: the
// first counts the distinct bitmaps by their hashes alone and refuses the
// rule set if their blocks would pass MaxMemory; the second builds the
// tables into an arena of that size.
func build(rs RuleSet, verdicts []Verdict) (*Compiled, error) {
	n := len(rs.Rules)
	c := &Compiled{n: n, verdicts: verdicts, def: Verdict{Rule: -1, Action: rs.Default}}
	c.names = make([]string, n)
	for i := range rs.Rules {
		c.names[i] = rs.Rules[i].Name
	}
	if n == 0 {
		c.mem = c.memory()
		return c, nil
	}
	bd := newBuilder(n)
	rules := rs.Rules

	// The bitmaps: all rules, zone x protocol class, then one interval
	// dimension per family and side, the ports and the ICMP type.
	all, allH := bd.bitmapOf(func(int) bool { return true })
	var zp [len(c.zp)][]uint64
	var zpH [len(c.zp)]uint64
	for z := range numZones {
		for pc := range numProtoClasses {
			i := int(z)*numProtoClasses + pc
			zp[i], zpH[i] = bd.bitmapOf(func(r int) bool {
				rz, rp := rules[r].Zone, rules[r].Proto
				return (rz == AnyZone || rz == z) && (rp == ProtoAny || protoClass(rp) == pc)
			})
		}
	}
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
	var in [numDims][]ruleSpans
	for i := range in {
		in[i] = make([]ruleSpans, n)
	}
	addrs := func(r int, ps []netip.Prefix, d4, d6 int) {
		if len(ps) == 0 {
			in[d4][r].any, in[d6][r].any = true, true
		}
		for _, p := range ps {
			if p.Addr().Is4() {
				in[d4][r].spans = append(in[d4][r].spans, prefixSpan4(p))
			} else {
				in[d6][r].spans = append(in[d6][r].spans, prefixSpan6(p))
			}
		}
	}
	ports := func(r int, prs []PortRange, d int) {
		in[d][r].any = len(prs) == 0
		for _, pr := range prs {
			in[d][r].spans = append(in[d][r].spans, span{u128{0, uint64(pr.Lo)}, u128{0, uint64(pr.Hi)}})
		}
	}
	for r := range rules {
		rule := &rules[r]
		addrs(r, rule.Src, dSrc4, dSrc6)
		addrs(r, rule.Dst, dDst4, dDst6)
		ports(r, rule.SrcPorts, dSport)
		ports(r, rule.DstPorts, dDport)
		in[dICMP][r].any = len(rule.ICMPTypes) == 0
		for _, t := range rule.ICMPTypes {
			in[dICMP][r].spans = append(in[dICMP][r].spans, span{u128{0, uint64(t)}, u128{0, uint64(t)}})
		}
	}
	maxOf := [numDims]u128{
		dSrc4: {0, 1<<32 - 1}, dDst4: {0, 1<<32 - 1},
		dSrc6: {^uint64(0), ^uint64(0)}, dDst6: {^uint64(0), ^uint64(0)},
		dSport: {0, 65535}, dDport: {0, 65535}, dICMP: {0, 255},
	}
	var dims [numDims]*dimension
	for i := range dims {
		dims[i] = bd.dimension(in[i], maxOf[i])
	}

	// Pass 1: how many distinct bitmaps, how many intervals.
	distinct := map[uint64]struct{}{allH: {}}
	for _, h := range zpH {
		distinct[h] = struct{}{}
	}
	intervals := 0
	for _, d := range dims {
		err := bd.sweep(d, func(_ u128, _ []uint64, h uint64) error {
			distinct[h] = struct{}{}
			intervals++
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if 8*len(distinct)*bd.b+20*intervals > MaxMemory {
		return nil, errTooBig
	}

	// Pass 2: the tables.
	bd.arena = make([]uint64, 0, len(distinct)*bd.b)
	allOff, err := bd.intern(all, allH)
	if err != nil {
		return nil, err
	}
	for i := range zp {
		if c.zp[i], err = bd.intern(zp[i], zpH[i]); err != nil {
			return nil, err
		}
	}
	// A dimension whose only interval holds every rule constrains nothing:
	// Match skips it.
	unconstrained := func(offs []uint32) bool { return len(offs) == 1 && offs[0] == allOff }
	for _, d := range [...]struct {
		dim int
		out *dim32
	}{{dSrc4, &c.src4}, {dDst4, &c.dst4}, {dSport, &c.sport}, {dDport, &c.dport}} {
		starts, offs, err := bd.intervals(dims[d.dim])
		if err != nil {
			return nil, err
		}
		if !unconstrained(offs) {
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
	}{{dSrc6, &c.src6}, {dDst6, &c.dst6}} {
		starts, offs, err := bd.intervals(dims[d.dim])
		if err != nil {
			return nil, err
		}
		if !unconstrained(offs) {
			d.out.starts, d.out.offs = starts, offs
		}
	}
	// ICMP types: 256 values, a direct index.
	starts, offs, err := bd.intervals(dims[dICMP])
	if err != nil {
		return nil, err
	}
	if !unconstrained(offs) {
		c.icmp = new([256]uint32)
		for i := range starts {
			end := 256
			if i+1 < len(starts) {
				end = int(starts[i+1].lo)
			}
			for t := int(starts[i].lo); t < end; t++ {
				c.icmp[t] = offs[i]
			}
		}
	}

	c.w, c.a, c.b = bd.w, bd.a, bd.b
	c.arena = slices.Clip(bd.arena)
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
