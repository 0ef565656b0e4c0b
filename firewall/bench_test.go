package firewall

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"

	"github.com/edgegw/edge/conntrack"
)

// realistic makes an edge-gateway-like rule set of n rules: mostly inside
// (outbound) rules from internal 10/8 subnets to public destinations, some
// outside (inbound) rules to published addresses, prefixes of /8 to /32,
// TCP/UDP with well-known or high ports and some ranges, a little ICMP,
// a tenth IPv6. Addresses 100.64/10, 198.18/15 and 2001:db8:ffff::/48 are
// left out, for the benchmark keys.
func realistic(n int, seed uint64) RuleSet {
	r := rand.New(rand.NewPCG(seed, 1))
	common := []uint16{22, 25, 53, 80, 110, 123, 143, 443, 465, 587, 993, 995, 1194, 1433, 3306, 3389, 5060, 5432, 8080, 8443}
	prefix := func(v6, internal bool, minBits, maxBits int) netip.Prefix {
		bits := minBits + r.IntN(maxBits-minBits+1)
		if v6 {
			var a [16]byte
			a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
			if !internal {
				a[0], a[1] = 0x2a, byte(r.IntN(16))
			}
			for i := 4; i < 16; i++ {
				a[i] = byte(r.IntN(256))
			}
			if a[0] == 0x20 && a[4] == 0xff && a[5] == 0xff {
				a[5] = 0
			}
			return netip.PrefixFrom(netip.AddrFrom16(a), bits*4).Masked()
		}
		var a [4]byte
		for i := range a {
			a[i] = byte(r.IntN(256))
		}
		if internal {
			a[0] = 10
		} else {
			for a[0] == 10 || a[0] == 100 || a[0] == 198 || a[0] == 0 || a[0] >= 224 {
				a[0] = byte(1 + r.IntN(223))
			}
		}
		return netip.PrefixFrom(netip.AddrFrom4(a), bits).Masked()
	}
	rs := RuleSet{Default: Drop}
	for i := range n {
		rule := Rule{Name: "rule-" + strconv.Itoa(i)}
		v6 := r.IntN(10) == 0
		inside := r.IntN(4) != 0
		switch {
		case r.IntN(20) == 0:
			rule.Zone = AnyZone
		case inside:
			rule.Zone = Inside
		default:
			rule.Zone = Outside
		}
		switch p := r.IntN(10); {
		case p < 5:
			rule.Proto = ProtoTCP
		case p < 8:
			rule.Proto = ProtoUDP
		case p < 9:
			rule.Proto = ProtoICMP
			if v6 {
				rule.Proto = ProtoICMPv6
			}
		}
		if inside {
			if r.IntN(5) != 0 {
				for range 1 + r.IntN(2) {
					rule.Src = append(rule.Src, prefix(v6, true, 16, 32)) // /16-/32 (v6: /64-/128)
				}
			}
			if r.IntN(10) != 0 {
				for range 1 + r.IntN(3) {
					rule.Dst = append(rule.Dst, prefix(v6, false, 8, 32))
				}
			}
		} else {
			if r.IntN(5) < 2 {
				rule.Src = append(rule.Src, prefix(v6, false, 8, 32))
			}
			rule.Dst = append(rule.Dst, prefix(v6, false, 24, 32))
		}
		if len(rule.Src) == 0 && len(rule.Dst) == 0 { // any-to-any belongs at the end, not here
			rule.Dst = append(rule.Dst, prefix(v6, false, 8, 32))
		}
		if v6 {
			for j := range rule.Src {
				if rule.Src[j].Bits() < 64 {
					rule.Src[j] = netip.PrefixFrom(rule.Src[j].Addr(), 64).Masked()
				}
			}
		}
		switch rule.Proto {
		case ProtoTCP, ProtoUDP:
			switch p := r.IntN(10); {
			case p < 6:
				rule.DstPorts = []PortRange{{common[r.IntN(len(common))], 0}}
				rule.DstPorts[0].Hi = rule.DstPorts[0].Lo
			case p < 7:
				for range 2 + r.IntN(3) {
					c := common[r.IntN(len(common))]
					rule.DstPorts = append(rule.DstPorts, PortRange{c, c})
				}
			case p < 9:
				lo := uint16(1024 + r.IntN(60000))
				rule.DstPorts = []PortRange{{lo, lo + uint16(r.IntN(1000))}}
			}
			if r.IntN(20) == 0 {
				rule.SrcPorts = []PortRange{{1024, 65535}}
			}
		case ProtoICMP, ProtoICMPv6:
			if r.IntN(2) == 0 {
				rule.ICMPTypes = []uint8{8, 128}[:1]
				if v6 {
					rule.ICMPTypes = []uint8{128}
				}
			}
		}
		rule.Action = []Action{Allow, Allow, Allow, Allow, Allow, Allow, Allow, Drop, Drop, Reject}[r.IntN(10)]
		rule.Log = r.IntN(10) == 0
		rs.Rules = append(rs.Rules, rule)
	}
	return rs
}

// benchSet is a realistic rule set whose rule n-2 (near the end) is the
// first to match keyNear, and which no rule matches keyNone.
func benchSet(tb testing.TB, n int) (rs RuleSet, keyNear, keyNone conntrack.Key) {
	rs = realistic(n, uint64(n))
	if n >= 2 {
		rs.Rules[n-2] = Rule{Name: "near-end", Zone: Inside, Src: pfx("100.64.0.0/10"), Dst: pfx("198.18.0.0/15"),
			Proto: ProtoTCP, DstPorts: []PortRange{{8000, 8999}}, Action: Allow}
	}
	keyNear = key(ProtoTCP, "100.64.1.2", 40000, "198.18.3.4", 8123)
	keyNone = key(ProtoUDP, "100.64.1.2", 40000, "198.19.3.4", 9)
	if v := refMatch(&rs, Inside, &keyNear, 0); n >= 2 && v.Rule != int32(n-2) {
		tb.Fatalf("%d rules: near-end key matches rule %d", n, v.Rule)
		_ = 0
	}
	if v := refMatch(&rs, Outside, &keyNone, 0); v.Rule != -1 {
		tb.Fatalf("%d rules: no-match key matches rule %d", n, v.Rule)
	}
	return rs, keyNear, keyNone
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		rs, near, none := benchSet(b, n)
		c := mustCompile(b, rs)
		// Varied traffic: 4,096 keys near the rules, cycled (the tables'
		// cache lines are not all hot, unlike with one repeated key).
		g := &gen{r: newRand(5)}
		mixed := make([]probe, 4096)
		for i := range mixed {
			mixed[i] = realisticProbe(g, &rs)
		}
		for _, tc := range []struct {
			name string
			zone Zone
			k    conntrack.Key
			typ  uint8
		}{
			{"near-end", Inside, near, 0},
			{"none", Outside, none, 0},
		} {
			b.Run("rules="+strconv.Itoa(n)+"/"+tc.name, func(b *testing.B) {
				b.ReportAllocs()
				var v Verdict
				for b.Loop() {
					v = c.Match(tc.zone, &tc.k, tc.typ)
				}
				b.ReportMetric(float64(c.MemoryBytes()), "classifier-bytes") // after the loop, which resets metrics
				if want := refMatch(&rs, tc.zone, &tc.k, tc.typ); v != want {
					b.Fatalf("Match = %+v, want %+v", v, want)
				}
			})
		}
		b.Run("rules="+strconv.Itoa(n)+"/mixed", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p := &mixed[i&(len(mixed)-1)]
				c.Match(p.zone, &p.k, p.typ)
				i++
			}
		})
	}
}

// realisticProbe returns a key inside a random rule's prefixes and ports.
func realisticProbe(g *gen, rs *RuleSet) probe {
	r := &rs.Rules[g.r.IntN(len(rs.Rules))]
	p := probe{zone: r.Zone, typ: 8}
	if p.zone == AnyZone {
		p.zone = Inside
	}
	v6 := false
	for _, x := range append(append([]netip.Prefix{}, r.Src...), r.Dst...) {
		v6 = x.Addr().Is6()
	}
	addr := func(ps []netip.Prefix) netip.Addr {
		if len(ps) > 0 {
			return g.inside(ps[g.r.IntN(len(ps))])
		}
		if v6 {
			return netip.MustParseAddr("2a00::1")
		}
		return netip.AddrFrom4([4]byte{byte(1 + g.r.IntN(200)), byte(g.r.IntN(256)), 1, 1})
	}
	proto := r.Proto
	if proto == ProtoAny {
		proto = ProtoTCP
	}
	dport := uint16(g.r.IntN(65536))
	if len(r.DstPorts) > 0 {
		dport = r.DstPorts[0].Lo
	}
	p.k = conntrack.Key{Src: addr(r.Src).As16(), Dst: addr(r.Dst).As16(), SrcPort: uint16(1024 + g.r.IntN(60000)),
		DstPort: dport, Proto: proto}
	return p
}

func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		rs := realistic(n, uint64(n))
		b.Run("rules="+strconv.Itoa(n), func(b *testing.B) {
			if n > 1000 && testing.Short() {
				b.Skip("short")
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(rs, testProfiles); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The benchmark rule sets are also checked against the reference.
func TestRealisticEqualsLinearScan(t *testing.T) {
	n, keys := 1000, 5000
	if raceEnabled || testing.Short() {
		n, keys = 300, 1000
	}
	rs, _, _ := benchSet(t, n)
	c := mustCompile(t, rs)
	g := &gen{r: newRand(3)}
	for range keys {
		p := realisticProbe(g, &rs)
		if got, want := c.Match(p.zone, &p.k, p.typ), refMatch(&rs, p.zone, &p.k, p.typ); got != want {
			t.Fatalf("%v: Match = %+v, reference %+v", p.k, got, want)
		}
	}
}

// linear is a straightforward compiled linear scan (addresses as
// [16]byte ranges, no netip), the baseline the classifier replaces.
type linearRule struct {
	zone               Zone
	proto              uint8
	src, dst           []linearSpan
	sports, dports     []PortRange
	types              []uint8
	anySrc, anyDst     bool
	anySport, anyDport bool
}

type linearSpan struct{ lo, hi [16]byte }

func linearCompile(rs *RuleSet) []linearRule {
	out := make([]linearRule, len(rs.Rules))
	conv := func(ps []netip.Prefix) []linearSpan {
		var ss []linearSpan
		for _, p := range ps {
			lo := p.Addr().As16()
			hi := lo
			bits := p.Bits()
			if p.Addr().Is4() {
				bits += 96
			}
			for i := bits; i < 128; i++ {
				hi[i/8] |= 0x80 >> (i % 8)
			}
			ss = append(ss, linearSpan{lo, hi})
		}
		return ss
	}
	for i, r := range rs.Rules {
		out[i] = linearRule{zone: r.Zone, proto: r.Proto, src: conv(r.Src), dst: conv(r.Dst), sports: r.SrcPorts,
			dports: r.DstPorts, types: r.ICMPTypes, anySrc: len(r.Src) == 0, anyDst: len(r.Dst) == 0,
			anySport: len(r.SrcPorts) == 0, anyDport: len(r.DstPorts) == 0}
	}
	return out
}

func linearIn(ss []linearSpan, a *[16]byte) bool {
	for i := range ss {
		if string(ss[i].lo[:]) <= string(a[:]) && string(a[:]) <= string(ss[i].hi[:]) {
			return true
		}
	}
	return false
}

func linearMatch(rules []linearRule, zone Zone, k *conntrack.Key) int {
	for i := range rules {
		r := &rules[i]
		if (r.zone != AnyZone && r.zone != zone) || (r.proto != 0 && r.proto != k.Proto) {
			continue
		}
		if (!r.anyDport && !refPorts(r.dports, k.DstPort)) || (!r.anySport && !refPorts(r.sports, k.SrcPort)) {
			continue
		}
		if (!r.anySrc && !linearIn(r.src, &k.Src)) || (!r.anyDst && !linearIn(r.dst, &k.Dst)) {
			continue
		}
		return i
	}
	return -1
}

// BenchmarkLinearScan is the baseline: the same rule sets and keys as
// BenchmarkMatch, first match found by scanning.
func BenchmarkLinearScan(b *testing.B) {
	for _, n := range []int{10, 1000} {
		rs, near, _ := benchSet(b, n)
		lr := linearCompile(&rs)
		b.Run("rules="+strconv.Itoa(n)+"/near-end", func(b *testing.B) {
			var r int
			for b.Loop() {
				r = linearMatch(lr, Inside, &near)
			}
			if r != n-2 {
				b.Fatalf("linear scan found rule %d", r)
			}
		})
	}
}
