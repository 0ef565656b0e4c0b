package firewall

import (
	"hash/fnv"
	"net/netip"
	"testing"
)

// fuzzReader hands out the fuzz input byte by byte, then zeros.
type fuzzReader struct {
	b []byte
}

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

var (
	fzProtos = [8]uint8{ProtoAny, ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6, ProtoTCP, ProtoUDP, 47}
	fzPorts  = [16]uint16{0, 1, 21, 22, 53, 79, 80, 81, 443, 1023, 1024, 8080, 8443, 32768, 65534, 65535}
	fzTypes  = [8]uint8{0, 3, 8, 11, 128, 129, 133, 255}
)

// fzPrefix decodes 4 bytes: b0 bit 7 family (IPv6), bits 0-6 the length
// (taken modulo bitlen+1 unless bit 6 of b1 asks for an out-of-range one);
// b1 bits 0-1 a base region, bit 7 keeps host bits (not masked); b2, b3 the
// low address bytes.
func fzPrefix(r *fuzzReader) netip.Prefix {
	b0, b1, b2, b3 := r.byte(), r.byte(), r.byte(), r.byte()
	var a netip.Addr
	if b0&0x80 != 0 {
		x := genBases6[int(b1&3)].As16()
		x[14], x[15] = b2, b3
		a = netip.AddrFrom16(x)
	} else {
		x := genBases4[int(b1&3)].As4()
		x[2], x[3] = b2, b3
		a = netip.AddrFrom4(x)
	}
	bits := int(b0&0x7f) % (a.BitLen() + 1)
	if b1&0x40 != 0 && b1&0x20 != 0 {
		bits = a.BitLen() + 1 + int(b0&3) // invalid
	}
	p := netip.PrefixFrom(a, bits)
	if b1&0x80 == 0 {
		p = p.Masked()
	}
	return p
}

func fzPort(b byte) uint16 {
	p := fzPorts[b&15]
	if b&0x10 != 0 {
		p += uint16(b >> 5)
	}
	return p
}

// fzRuleSet decodes a rule set. Byte 0: the default action (bits 0-1, 3 is
// invalid) and, bits 2-7 times 5, how many random valid rules (gen, seeded
// from the whole input) come before the decoded ones, so that small inputs
// still make rule sets of up to 315 rules spanning several bitmap words.
// Then per decoded rule:
//
//	b0  bits 0-1 zone (3 invalid), bits 2-4 protocol, bit 5 log, bits 6-7 action (3 invalid)
//	b1  bits 0-1 src prefixes, 2-3 dst prefixes, 4-5 src port ranges, 6-7 dst port ranges
//	b2  bits 0-1 ICMP types, bits 2-3 profile ("", "fast", "default", "bogus"),
//	    bit 4 keeps list fields the protocol forbids (else they are dropped)
//
// then 4 bytes per prefix, 2 per port range (lo, hi), 1 per ICMP type.
func fzRuleSet(data []byte) RuleSet {
	r := &fuzzReader{data}
	b := r.byte()
	h := fnv.New64a()
	h.Write(data)
	rs := (&gen{r: newRand(h.Sum64())}).ruleSet(int(b>>2) * 5)
	rs.Default = Action(b & 3)
	for len(r.b) > 0 && len(rs.Rules) < 600 {
		b0, b1, b2 := r.byte(), r.byte(), r.byte()
		rule := Rule{Zone: Zone(b0 & 3), Proto: fzProtos[b0>>2&7], Log: b0&0x20 != 0, Action: Action(b0 >> 6)}
		for range b1 & 3 {
			rule.Src = append(rule.Src, fzPrefix(r))
		}
		for range b1 >> 2 & 3 {
			rule.Dst = append(rule.Dst, fzPrefix(r))
		}
		for range b1 >> 4 & 3 {
			rule.SrcPorts = append(rule.SrcPorts, PortRange{fzPort(r.byte()), fzPort(r.byte())})
		}
		for range b1 >> 6 & 3 {
			rule.DstPorts = append(rule.DstPorts, PortRange{fzPort(r.byte()), fzPort(r.byte())})
		}
		for range b2 & 3 {
			rule.ICMPTypes = append(rule.ICMPTypes, fzTypes[r.byte()&7])
		}
		rule.Profile = [4]string{"", "fast", "default", "bogus"}[b2>>2&3]
		if b2&0x10 == 0 {
			if rule.Proto != ProtoTCP && rule.Proto != ProtoUDP {
				rule.SrcPorts, rule.DstPorts = nil, nil
			}
			for i, pr := range rule.SrcPorts {
				rule.SrcPorts[i] = PortRange{min(pr.Lo, pr.Hi), max(pr.Lo, pr.Hi)}
			}
			for i, pr := range rule.DstPorts {
				rule.DstPorts[i] = PortRange{min(pr.Lo, pr.Hi), max(pr.Lo, pr.Hi)}
			}
			if rule.Proto != ProtoICMP && rule.Proto != ProtoICMPv6 {
				rule.ICMPTypes = nil
			}
		}
		rs.Rules = append(rs.Rules, rule)
	}
	return rs
}

// FuzzCompileMatch builds rule sets from the input: Compile must never
// panic, and when it accepts a rule set Match must agree with the linear
// reference on keys drawn near the rules (seeded from the input).
func FuzzCompileMatch(f *testing.F) {
	f.Add([]byte{1})
	f.Add([]byte{0, 0x04 | 0x40, 0xc0, 0, 0, 0x08, 0, 0, 0x50, 0x18})                  // allow tcp dport 80-81
	f.Add([]byte{2, 0x45, 0x05, 0x00, 0x18, 0, 1, 2, 0x88, 1, 0, 0, 0x40, 0x55, 0x10}) // v4 + v6 prefixes
	f.Add([]byte{0, 0x4c, 0x00, 0x02, 2, 3, 0x01, 0x00, 0x00, 0x00})                   // icmp types
	f.Add([]byte{0, 0x47, 0x00, 0x00, 0x4b, 0x00, 0x00, 0x00})                         // invalid zone, invalid action
	f.Add([]byte{3})                                                                   // invalid default
	f.Fuzz(func(t *testing.T, data []byte) {
		rs := fzRuleSet(data)
		c, err := Compile(rs, testProfiles)
		if err != nil {
			if c != nil {
				t.Fatalf("Compile returned both a rule set and %v", err)
			}
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Compile error %T %v is not an *Error", err, err)
			}
			return
		}
		h := fnv.New64a()
		h.Write(data)
		g := &gen{r: newRand(h.Sum64()), rules: rs.Rules}
		for range 300 {
			p := g.probe()
			got := c.Match(p.zone, &p.k, p.typ)
			if want := refMatch(&rs, p.zone, &p.k, p.typ); got != want {
				t.Fatalf("%d rules, zone %v %v icmp type %d: Match = %+v, reference %+v", len(rs.Rules), p.zone, p.k, p.typ, got, want)
			}
		}
	})
}
