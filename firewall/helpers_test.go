package firewall

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/edgegw/edge/conntrack"
)

// testProfiles is the profile index the tests compile against.
func testProfiles(name string) (uint8, bool) {
	switch name {
	case "default":
		return 0, true
	case "fast":
		return 1, true
	case "nsx-gateway":
		return 2, true
	}
	return 0, false
}

// refMatch is the specification: a linear first-match scan written from the
// Rule documentation, with netip doing the prefix arithmetic.
func refMatch(rs *RuleSet, zone Zone, k *conntrack.Key, icmpType uint8) Verdict {
	src, dst := k.SrcAddr(), k.DstAddr()
	for i := range rs.Rules {
		r := &rs.Rules[i]
		if r.Zone != AnyZone && r.Zone != zone {
			continue
		}
		if r.Proto != ProtoAny && r.Proto != k.Proto {
			continue
		}
		if !refPrefixes(r.Src, src) || !refPrefixes(r.Dst, dst) {
			continue
		}
		if !refPorts(r.SrcPorts, k.SrcPort) || !refPorts(r.DstPorts, k.DstPort) {
			continue
		}
		if len(r.ICMPTypes) > 0 && !slices.Contains(r.ICMPTypes, icmpType) {
			continue
		}
		v := Verdict{Rule: int32(i), Action: r.Action, Log: r.Log}
		if r.Profile != "" {
			v.Profile, _ = testProfiles(r.Profile)
		}
		return v
	}
	return Verdict{Rule: -1, Action: rs.Default}
}

func refPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func refPorts(rs []PortRange, p uint16) bool {
	if len(rs) == 0 {
		return true
	}
	for _, r := range rs {
		if r.Lo <= p && p <= r.Hi {
			return true
		}
	}
	return false
}

func mustCompile(t testing.TB, rs RuleSet) *Compiled {
	t.Helper()
	c, err := Compile(rs, testProfiles)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pfx(s ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, x := range s {
		ps = append(ps, netip.MustParsePrefix(x))
	}
	return ps
}

func key(proto uint8, src string, sport uint16, dst string, dport uint16) conntrack.Key {
	return conntrack.MakeKey(proto, netip.AddrPortFrom(netip.MustParseAddr(src), sport),
		netip.AddrPortFrom(netip.MustParseAddr(dst), dport))
}

// gen makes random rule sets and keys that hit them: addresses come from a
// few small regions, ports and ICMP types from short lists of interesting
// values and the edges of the generated ranges, so most keys meet many
// partially matching rules.
type gen struct {
	r     *rand.Rand
	rules []Rule
}

var (
	genBases4 = []netip.Addr{netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("10.1.0.0"),
		netip.MustParseAddr("192.168.0.0"), netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.0")}
	genBases6 = []netip.Addr{netip.MustParseAddr("2001:db8::"), netip.MustParseAddr("2001:db8:1::"),
		netip.MustParseAddr("fe80::"), netip.MustParseAddr("::"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00")}
	genPorts   = []uint16{0, 1, 22, 53, 79, 80, 81, 443, 1023, 1024, 8080, 32768, 65534, 65535}
	genTypes   = []uint8{0, 3, 8, 11, 128, 129, 135, 255}
	genProtos  = []uint8{ProtoAny, ProtoTCP, ProtoTCP, ProtoUDP, ProtoUDP, ProtoICMP, ProtoICMPv6}
	genActions = []Action{Allow, Allow, Drop, Reject}
)

// addr returns a random address of the family near one of the bases.
func (g *gen) addr(v6 bool) netip.Addr {
	if v6 {
		b := genBases6[g.r.IntN(len(genBases6))].As16()
		b[15] ^= byte(g.r.IntN(256))
		if g.r.IntN(2) == 0 {
			b[14] ^= byte(g.r.IntN(4))
			b[5] ^= byte(g.r.IntN(2))
		}
		return netip.AddrFrom16(b)
	}
	b := genBases4[g.r.IntN(len(genBases4))].As4()
	b[3] ^= byte(g.r.IntN(256))
	if g.r.IntN(2) == 0 {
		b[2] ^= byte(g.r.IntN(4))
		b[1] ^= byte(g.r.IntN(2))
	}
	return netip.AddrFrom4(b)
}

func (g *gen) prefix() netip.Prefix {
	v6 := g.r.IntN(3) == 0
	a := g.addr(v6)
	bits := a.BitLen() - g.r.IntN(a.BitLen()/4+1)
	switch g.r.IntN(8) {
	case 0:
		bits = 0
	case 1:
		bits = g.r.IntN(a.BitLen() + 1)
	}
	return netip.PrefixFrom(a, bits).Masked()
}

func (g *gen) port() uint16 {
	if g.r.IntN(4) == 0 {
		return uint16(g.r.IntN(65536))
	}
	return genPorts[g.r.IntN(len(genPorts))]
}

func (g *gen) ports() []PortRange {
	var rs []PortRange
	for range g.r.IntN(4) {
		a, b := g.port(), g.port()
		if g.r.IntN(2) == 0 {
			b = a
		}
		rs = append(rs, PortRange{min(a, b), max(a, b)})
	}
	return rs
}

func (g *gen) ruleSet(n int) RuleSet {
	rs := RuleSet{Default: genActions[g.r.IntN(len(genActions))]}
	for i := range n {
		r := Rule{Name: "r" + string(rune('a'+i%26)), Zone: Zone(g.r.IntN(3)), Proto: genProtos[g.r.IntN(len(genProtos))],
			Action: genActions[g.r.IntN(len(genActions))], Log: g.r.IntN(4) == 0}
		for range g.r.IntN(4) {
			r.Src = append(r.Src, g.prefix())
		}
		for range g.r.IntN(4) {
			r.Dst = append(r.Dst, g.prefix())
		}
		switch r.Proto {
		case ProtoTCP, ProtoUDP:
			if g.r.IntN(3) == 0 {
				r.SrcPorts = g.ports()
			}
			if g.r.IntN(3) != 0 {
				r.DstPorts = g.ports()
			}
		case ProtoICMP, ProtoICMPv6:
			for range g.r.IntN(3) {
				r.ICMPTypes = append(r.ICMPTypes, genTypes[g.r.IntN(len(genTypes))])
			}
		}
		r.Profile = []string{"", "", "default", "fast", "nsx-gateway"}[g.r.IntN(5)]
		rs.Rules = append(rs.Rules, r)
	}
	g.rules = rs.Rules
	return rs
}

// inside returns an address inside p (uniformly random host bits).
func (g *gen) inside(p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	host := p.Addr().BitLen() - p.Bits()
	off := 16 - p.Addr().BitLen()/8
	for i := range host {
		if g.r.IntN(2) == 0 {
			bit := p.Addr().BitLen() - 1 - i
			b[off+bit/8] |= 0x80 >> (bit % 8)
		}
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}

// pick returns an address: inside a prefix of a random rule, near a base, or
// anywhere.
func (g *gen) pick(src bool, v6 bool) netip.Addr {
	if len(g.rules) > 0 && g.r.IntN(2) == 0 {
		r := &g.rules[g.r.IntN(len(g.rules))]
		ps := r.Dst
		if src {
			ps = r.Src
		}
		if len(ps) > 0 {
			p := ps[g.r.IntN(len(ps))]
			if p.Addr().Is6() == v6 {
				return g.inside(p)
			}
		}
	}
	if g.r.IntN(8) == 0 {
		var b [16]byte
		for i := range b {
			b[i] = byte(g.r.IntN(256))
		}
		if v6 {
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return g.addr(v6)
}

// rulePort returns a port at or next to the edge of a random rule's range.
func (g *gen) rulePort(src bool) uint16 {
	if len(g.rules) == 0 || g.r.IntN(3) == 0 {
		return g.port()
	}
	r := &g.rules[g.r.IntN(len(g.rules))]
	rs := r.DstPorts
	if src {
		rs = r.SrcPorts
	}
	if len(rs) == 0 {
		return g.port()
	}
	pr := rs[g.r.IntN(len(rs))]
	p := []uint16{pr.Lo, pr.Hi, pr.Lo - 1, pr.Hi + 1, pr.Lo + uint16(g.r.IntN(int(pr.Hi-pr.Lo)+1))}[g.r.IntN(5)]
	return p
}

type probe struct {
	zone Zone
	k    conntrack.Key
	typ  uint8
}

func (g *gen) probe() probe {
	v6 := g.r.IntN(3) == 0
	srcV6, dstV6 := v6, v6
	if g.r.IntN(50) == 0 { // mixed families: not from Parse, but Match must still agree
		dstV6 = !v6
	}
	s, d := g.pick(true, srcV6), g.pick(false, dstV6)
	proto := []uint8{ProtoTCP, ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6, 47, 0}[g.r.IntN(7)]
	p := probe{zone: Zone(g.r.IntN(4)), typ: genTypes[g.r.IntN(len(genTypes))]}
	if g.r.IntN(20) == 0 {
		p.typ = uint8(g.r.IntN(256))
	}
	p.k = conntrack.Key{Src: s.As16(), Dst: d.As16(), SrcPort: g.rulePort(true), DstPort: g.rulePort(false), Proto: proto}
	p.k.Zone = uint8(g.r.IntN(3))
	return p
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x5eed)) }
