package firewall

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	ok := Rule{Action: Allow}
	at := func(i int, r Rule) []Rule {
		rs := make([]Rule, i+1)
		for j := range rs {
			rs[j] = ok
		}
		rs[i] = r
		return rs
	}
	bad33 := netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 33)
	cases := []struct {
		name  string
		rs    RuleSet
		field string
		msg   string
	}{
		{"too many rules", RuleSet{Rules: make([]Rule, MaxRules+1)},
			"rules", "rules: 65536 rules, more than 65535"},
		{"default action", RuleSet{Default: 3},
			"default", "default: invalid action 3"},
		{"zone", RuleSet{Rules: at(1, Rule{Zone: 3})},
			"rules[1].zone", "rules[1].zone: invalid zone 3 (want 0 any, 1 inside or 2 outside)"},
		{"dst prefix length", RuleSet{Rules: at(3, Rule{Dst: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), bad33}})},
			"rules[3].dst[1]", `rules[3].dst[1]: "10.0.0.0/?" is not a valid prefix (length out of range)`},
		{"zero src prefix", RuleSet{Rules: at(0, Rule{Src: []netip.Prefix{{}}})},
			"rules[0].src[0]", "rules[0].src[0]: the zero netip.Prefix is not a valid prefix"},
		{"v6 prefix length", RuleSet{Rules: at(2, Rule{Src: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("2001:db8::"), 129)}})},
			"rules[2].src[0]", `rules[2].src[0]: "2001:db8::/?" is not a valid prefix (length out of range)`},
		{"host bits", RuleSet{Rules: at(1, Rule{Src: pfx("10.0.0.0/8", "10.1.2.3/8")})},
			"rules[1].src[1]", `rules[1].src[1]: "10.1.2.3/8" has host bits set (the prefix is 10.0.0.0/8)`},
		{"v4-mapped", RuleSet{Rules: at(0, Rule{Dst: pfx("::ffff:10.0.0.0/104")})},
			"rules[0].dst[0]", `rules[0].dst[0]: "::ffff:10.0.0.0/104" is IPv4-mapped: write it as IPv4 10.0.0.0/8`},
		{"proto", RuleSet{Rules: at(2, Rule{Proto: 47})},
			"rules[2].proto", "rules[2].proto: unsupported protocol 47 (want 0 any, 6 tcp, 17 udp, 1 icmp or 58 icmpv6)"},
		{"src ports without proto", RuleSet{Rules: at(4, Rule{SrcPorts: []PortRange{{80, 80}}})},
			"rules[4].src_ports", "rules[4].src_ports: ports need proto tcp or udp"},
		{"dst ports with icmp", RuleSet{Rules: at(1, Rule{Proto: ProtoICMP, DstPorts: []PortRange{{80, 80}}})},
			"rules[1].dst_ports", "rules[1].dst_ports: ports need proto tcp or udp"},
		{"dst port range reversed", RuleSet{Rules: at(2, Rule{Proto: ProtoTCP, DstPorts: []PortRange{{9000, 80}}})},
			"rules[2].dst_ports[0]", "rules[2].dst_ports[0]: 9000-80: low above high"},
		{"src port range reversed", RuleSet{Rules: at(0, Rule{Proto: ProtoUDP, SrcPorts: []PortRange{{1, 1}, {2, 1}}})},
			"rules[0].src_ports[1]", "rules[0].src_ports[1]: 2-1: low above high"},
		{"icmp types with tcp", RuleSet{Rules: at(3, Rule{Proto: ProtoTCP, ICMPTypes: []uint8{8}})},
			"rules[3].icmp_types", "rules[3].icmp_types: types need proto icmp or icmpv6"},
		{"icmp types with any proto", RuleSet{Rules: at(0, Rule{ICMPTypes: []uint8{8}})},
			"rules[0].icmp_types", "rules[0].icmp_types: types need proto icmp or icmpv6"},
		{"action", RuleSet{Rules: at(5, Rule{Action: 9})},
			"rules[5].action", "rules[5].action: invalid action 9"},
		{"profile", RuleSet{Rules: at(1, Rule{Action: Allow, Profile: "foo"})},
			"rules[1].profile", `rules[1].profile: unknown timer profile "foo"`},
	}
	for _, tc := range cases {
		c, err := Compile(tc.rs, testProfiles)
		if err == nil || c != nil {
			t.Errorf("%s: Compile = %v, %v; want an error", tc.name, c, err)
			continue
		}
		var fe *Error
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: error %q does not name field %q", tc.name, err, tc.field)
		}
		if err.Error() != tc.msg {
			t.Errorf("%s: error\n\t%q, want\n\t%q", tc.name, err, tc.msg)
		}
	}
}

// The first offending field is reported, in rule order, whatever follows.
func TestCompileErrorOrder(t *testing.T) {
	_, err := Compile(RuleSet{Rules: []Rule{{Action: Allow}, {Proto: 99, Action: 9}, {Zone: 9}}}, testProfiles)
	if err == nil || !strings.HasPrefix(err.Error(), "rules[1].proto: ") {
		t.Errorf("got %v, want the proto of rule 1", err)
	}
}

func TestCompileProfiles(t *testing.T) {
	// A nil profileIndex knows no names, but "" is always the default.
	if _, err := Compile(RuleSet{Rules: []Rule{{Action: Allow}}}, nil); err != nil {
		t.Errorf("nil profileIndex, no profile: %v", err)
	}
	if _, err := Compile(RuleSet{Rules: []Rule{{Action: Allow, Profile: "default"}}}, nil); err == nil ||
		err.Error() != `rules[0].profile: unknown timer profile "default"` {
		t.Errorf("nil profileIndex, named profile: %v", err)
	}
	c := mustCompile(t, RuleSet{Rules: []Rule{{Action: Allow, Profile: "nsx-gateway"}}})
	k := key(ProtoTCP, "10.0.0.1", 1, "1.1.1.1", 2)
	if v := c.Match(Inside, &k, 0); v.Profile != 2 {
		t.Errorf("profile index %d, want 2", v.Profile)
	}
}

func TestCompileLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	// The most rules there may be.
	rs := RuleSet{Rules: make([]Rule, MaxRules)}
	rs.Rules[MaxRules-1] = Rule{Proto: ProtoUDP, Action: Allow}
	c := mustCompile(t, rs)
	k := key(ProtoUDP, "10.0.0.1", 1, "1.1.1.1", 2)
	if v := c.Match(Inside, &k, 0); v.Rule != 0 || v.Action != Drop {
		t.Errorf("65535 rules: %+v, want rule 0 drop", v)
	}
	// Distinct /32s in every rule: 65,535 distinct bitmaps of 8 KiB each
	// would be 512 MiB; Compile refuses instead of allocating it.
	if raceEnabled {
		return
	}
	rs = RuleSet{Rules: make([]Rule, MaxRules)}
	for i := range rs.Rules {
		rs.Rules[i] = Rule{Src: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32)}}
	}
	if _, err := Compile(rs, nil); err == nil || !strings.HasPrefix(err.Error(), "rules: the classifier would need more than 256 MiB") {
		t.Errorf("huge classifier: %v", err)
	}
}
