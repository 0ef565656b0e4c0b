package firewall

import (
	"strconv"
	"testing"
	"unsafe"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
)

func TestVerdictSize(t *testing.T) {
	if s := unsafe.Sizeof(Verdict{}); s != 8 {
		t.Errorf("Verdict is %d bytes, want 8", s)
	}
}

func TestMatchSemantics(t *testing.T) {
	const (
		tcp  = ProtoTCP
		udp  = ProtoUDP
		icmp = ProtoICMP
		icm6 = ProtoICMPv6
	)
	type want struct {
		rule   int32
		action Action
	}
	cases := []struct {
		name  string
		rules []Rule
		def   Action
		zone  Zone
		k     conntrack.Key
		typ   uint8
		want  want
	}{
		{name: "empty set: default drop", k: key(tcp, "10.0.0.1", 1000, "1.1.1.1", 443), zone: Inside,
			want: want{-1, Drop}},
		{name: "empty set: default allow", def: Allow, k: key(tcp, "10.0.0.1", 1000, "1.1.1.1", 443), zone: Inside,
			want: want{-1, Allow}},
		{name: "all-any rule matches everything", rules: []Rule{{Action: Allow}},
			k: key(udp, "2001:db8::1", 5, "2001:db8::2", 6), zone: Outside, want: want{0, Allow}},
		{name: "first match wins",
			rules: []Rule{
				{Dst: pfx("1.1.1.0/24"), Action: Reject},
				{Dst: pfx("1.1.1.1/32"), Action: Allow},
			},
			k: key(tcp, "10.0.0.1", 1000, "1.1.1.1", 443), zone: Inside, want: want{0, Reject}},
		{name: "later rule when earlier does not match",
			rules: []Rule{
				{Dst: pfx("1.1.2.0/24"), Action: Reject},
				{Dst: pfx("1.1.1.1/32"), Action: Allow},
			},
			k: key(tcp, "10.0.0.1", 1000, "1.1.1.1", 443), zone: Inside, want: want{1, Allow}},
		{name: "zone: inside rule, outside packet",
			rules: []Rule{{Zone: Inside, Action: Allow}, {Zone: Outside, Action: Reject}},
			k:     key(tcp, "10.0.0.1", 1000, "1.1.1.1", 443), zone: Outside, want: want{1, Reject}},
		{name: "zone: any zone rule matches both",
			rules: []Rule{{Zone: AnyZone, Proto: udp, Action: Allow}},
			k:     key(udp, "10.0.0.1", 1000, "1.1.1.1", 53), zone: Outside, want: want{0, Allow}},
		{name: "zone: unknown side matches only any-zone rules",
			rules: []Rule{{Zone: Inside, Action: Reject}, {Zone: Outside, Action: Reject}, {Action: Allow}},
			k:     key(udp, "10.0.0.1", 1000, "1.1.1.1", 53), zone: 7, want: want{2, Allow}},
		{name: "v4 prefix does not match v6 key",
			rules: []Rule{{Src: pfx("0.0.0.0/0"), Action: Allow}},
			k:     key(tcp, "2001:db8::1", 1000, "2001:db8::2", 443), zone: Inside, want: want{-1, Drop}},
		{name: "v6 ::/0 does not match v4 key (stored IPv4-mapped)",
			rules: []Rule{{Src: pfx("::/0"), Action: Allow}, {Dst: pfx("::/0"), Action: Allow}},
			k:     key(tcp, "10.0.0.1", 1000, "1.1.1.1", 443), zone: Inside, want: want{-1, Drop}},
		{name: "v6 ::/0 matches v6 key",
			rules: []Rule{{Src: pfx("0.0.0.0/0"), Action: Reject}, {Src: pfx("::/0"), Action: Allow}},
			k:     key(tcp, "2001:db8::1", 1000, "2001:db8::2", 443), zone: Inside, want: want{1, Allow}},
		{name: "mixed-family list matches either family",
			rules: []Rule{{Dst: pfx("10.0.0.0/8", "2001:db8::/32"), Action: Allow}},
			k:     key(tcp, "2001:db8:5::1", 1000, "2001:db8::2", 443), zone: Inside, want: want{0, Allow}},
		{name: "v6 prefix boundaries",
			rules: []Rule{{Dst: pfx("2001:db8:0:1::/64"), Action: Allow}},
			k:     key(tcp, "::1", 1, "2001:db8:0:2::", 443), zone: Inside, want: want{-1, Drop}},
		{name: "v6 prefix last address",
			rules: []Rule{{Dst: pfx("2001:db8:0:1::/64"), Action: Allow}},
			k:     key(tcp, "::1", 1, "2001:db8:0:1:ffff:ffff:ffff:ffff", 443), zone: Inside, want: want{0, Allow}},
		{name: "v4 prefix last address",
			rules: []Rule{{Src: pfx("10.0.0.0/8"), Action: Allow}},
			k:     key(tcp, "10.255.255.255", 1, "1.1.1.1", 443), zone: Inside, want: want{0, Allow}},
		{name: "v4 prefix next address",
			rules: []Rule{{Src: pfx("10.0.0.0/8"), Action: Allow}},
			k:     key(tcp, "11.0.0.0", 1, "1.1.1.1", 443), zone: Inside, want: want{-1, Drop}},
		{name: "v4 /32 and 255.255.255.255",
			rules: []Rule{{Dst: pfx("255.255.255.255/32"), Action: Allow}},
			k:     key(udp, "10.0.0.1", 68, "255.255.255.255", 67), zone: Inside, want: want{0, Allow}},
		{name: "port range low edge inclusive",
			rules: []Rule{{Proto: tcp, DstPorts: []PortRange{{1000, 2000}}, Action: Allow}},
			k:     key(tcp, "10.0.0.1", 5, "1.1.1.1", 1000), zone: Inside, want: want{0, Allow}},
		{name: "port range high edge inclusive",
			rules: []Rule{{Proto: tcp, DstPorts: []PortRange{{1000, 2000}}, Action: Allow}},
			k:     key(tcp, "10.0.0.1", 5, "1.1.1.1", 2000), zone: Inside, want: want{0, Allow}},
		{name: "port range outside",
			rules: []Rule{{Proto: tcp, DstPorts: []PortRange{{1000, 2000}}, Action: Allow}},
			k:     key(tcp, "10.0.0.1", 5, "1.1.1.1", 2001), zone: Inside, want: want{-1, Drop}},
		{name: "port 65535 and 0",
			rules: []Rule{{Proto: udp, SrcPorts: []PortRange{{0, 0}}, DstPorts: []PortRange{{65535, 65535}}, Action: Allow}},
			k:     key(udp, "10.0.0.1", 0, "1.1.1.1", 65535), zone: Inside, want: want{0, Allow}},
		{name: "several port ranges",
			rules: []Rule{{Proto: tcp, DstPorts: []PortRange{{22, 22}, {80, 80}, {443, 443}}, Action: Allow}},
			k:     key(tcp, "10.0.0.1", 5, "1.1.1.1", 80), zone: Inside, want: want{0, Allow}},
		{name: "source ports",
			rules: []Rule{{Proto: udp, SrcPorts: []PortRange{{53, 53}}, Action: Reject}, {Action: Allow}},
			k:     key(udp, "10.0.0.1", 53, "1.1.1.1", 5353), zone: Inside, want: want{0, Reject}},
		{name: "tcp rule does not match udp",
			rules: []Rule{{Proto: tcp, DstPorts: []PortRange{{53, 53}}, Action: Allow}},
			k:     key(udp, "10.0.0.1", 5, "1.1.1.1", 53), zone: Inside, want: want{-1, Drop}},
		{name: "proto 0 matches any protocol",
			rules: []Rule{{Dst: pfx("1.1.1.1/32"), Action: Allow}},
			k:     key(icmp, "10.0.0.1", 77, "1.1.1.1", 0), zone: Inside, want: want{0, Allow}},
		{name: "proto 0 matches an unlisted protocol",
			rules: []Rule{{Proto: tcp, Action: Reject}, {Action: Allow}},
			k:     key(47, "10.0.0.1", 0, "1.1.1.1", 0), zone: Inside, want: want{1, Allow}},
		{name: "icmp types: echo request",
			rules: []Rule{{Proto: icmp, ICMPTypes: []uint8{8}, Action: Allow}},
			k:     key(icmp, "10.0.0.1", 77, "1.1.1.1", 0), typ: 8, zone: Inside, want: want{0, Allow}},
		{name: "icmp types: other type",
			rules: []Rule{{Proto: icmp, ICMPTypes: []uint8{8}, Action: Allow}},
			k:     key(icmp, "10.0.0.1", 77, "1.1.1.1", 0), typ: 13, zone: Inside, want: want{-1, Drop}},
		{name: "icmp rule does not match icmpv6",
			rules: []Rule{{Proto: icmp, ICMPTypes: []uint8{128}, Action: Allow}},
			k:     key(icm6, "2001:db8::1", 77, "2001:db8::2", 0), typ: 128, zone: Inside, want: want{-1, Drop}},
		{name: "icmpv6 echo",
			rules: []Rule{{Proto: icm6, ICMPTypes: []uint8{128}, Action: Allow}},
			k:     key(icm6, "2001:db8::1", 77, "2001:db8::2", 0), typ: 128, zone: Inside, want: want{0, Allow}},
		{name: "icmp type ignored for tcp",
			rules: []Rule{{Proto: icmp, ICMPTypes: []uint8{8}, Action: Reject}, {Proto: tcp, Action: Allow}},
			k:     key(tcp, "10.0.0.1", 8, "1.1.1.1", 8), typ: 8, zone: Inside, want: want{1, Allow}},
		{name: "icmp echo identifier is not a port",
			rules: []Rule{{Proto: tcp, SrcPorts: []PortRange{{77, 77}}, Action: Reject}, {Proto: icmp, Action: Allow}},
			k:     key(icmp, "10.0.0.1", 77, "1.1.1.1", 0), typ: 8, zone: Inside, want: want{1, Allow}},
		{name: "every field constrained",
			rules: []Rule{
				{Zone: Inside, Src: pfx("10.0.0.0/8"), Dst: pfx("1.1.1.0/24"), Proto: tcp,
					SrcPorts: []PortRange{{1024, 65535}}, DstPorts: []PortRange{{443, 443}}, Action: Reject},
				{Zone: Inside, Src: pfx("10.0.0.0/8"), Dst: pfx("1.1.1.0/24"), Proto: tcp,
					SrcPorts: []PortRange{{1000, 65535}}, DstPorts: []PortRange{{443, 443}}, Action: Allow},
			},
			k: key(tcp, "10.9.9.9", 1000, "1.1.1.200", 443), zone: Inside, want: want{1, Allow}},
		{name: "default reject",
			rules: []Rule{{Proto: udp, Action: Allow}}, def: Reject,
			k: key(tcp, "10.0.0.1", 1, "1.1.1.1", 2), zone: Inside, want: want{-1, Reject}},
	}
	for _, tc := range cases {
		rs := RuleSet{Rules: tc.rules, Default: tc.def}
		c := mustCompile(t, rs)
		got := c.Match(tc.zone, &tc.k, tc.typ)
		if got.Rule != tc.want.rule || got.Action != tc.want.action {
			t.Errorf("%s: Match = rule %d %v, want rule %d %v", tc.name, got.Rule, got.Action, tc.want.rule, tc.want.action)
		}
		if ref := refMatch(&rs, tc.zone, &tc.k, tc.typ); ref != got {
			t.Errorf("%s: Match = %+v, reference %+v", tc.name, got, ref)
		}
	}
}

func TestVerdictFields(t *testing.T) {
	c := mustCompile(t, RuleSet{Rules: []Rule{
		{Name: "web", Proto: ProtoTCP, DstPorts: []PortRange{{443, 443}}, Action: Allow, Profile: "fast", Log: true},
		{Name: "dns", Proto: ProtoUDP, Action: Allow},
	}, Default: Reject})
	k := key(ProtoTCP, "10.0.0.1", 1, "1.1.1.1", 443)
	if v := c.Match(Inside, &k, 0); v != (Verdict{Rule: 0, Action: Allow, Profile: 1, Log: true}) {
		t.Errorf("web: %+v", v)
	}
	k.Proto = ProtoUDP
	if v := c.Match(Inside, &k, 0); v != (Verdict{Rule: 1, Action: Allow}) {
		t.Errorf("dns: %+v", v)
	}
	k.Proto = ProtoICMP
	if v := c.Match(Inside, &k, 8); v != (Verdict{Rule: -1, Action: Reject}) || v != c.Default() {
		t.Errorf("default: %+v", v)
	}
	if c.Len() != 2 || c.RuleName(0) != "web" || c.RuleName(1) != "dns" || c.RuleName(-1) != "" || c.RuleName(2) != "" {
		t.Errorf("Len/RuleName wrong")
	}
	if c.MemoryBytes() <= 0 {
		t.Errorf("MemoryBytes = %d", c.MemoryBytes())
	}
}

func TestNilAndZeroActive(t *testing.T) {
	var a Active
	if a.Load() != nil {
		t.Fatal("zero Active holds a rule set")
	}
	k := key(ProtoTCP, "10.0.0.1", 1, "1.1.1.1", 443)
	if v := a.Load().Match(Inside, &k, 0); v != (Verdict{Rule: -1, Action: Drop}) {
		t.Errorf("nil Compiled: %+v, want default drop", v)
	}
	var c *Compiled
	if c.Len() != 0 || c.MemoryBytes() != 0 || c.RuleName(0) != "" || c.Default() != (Verdict{Rule: -1, Action: Drop}) {
		t.Errorf("nil Compiled accessors")
	}
	cc := mustCompile(t, RuleSet{Default: Allow})
	a.Store(cc)
	if a.Load() != cc || a.Load().Match(Inside, &k, 0).Action != Allow {
		t.Errorf("Store/Load")
	}
}

func TestVerdictReason(t *testing.T) {
	for _, c := range []struct {
		a Action
		r drop.Reason
	}{{Allow, drop.None}, {Drop, drop.FirewallDrop}, {Reject, drop.FirewallReject}} {
		if got := (Verdict{Action: c.a}).Reason(); got != c.r {
			t.Errorf("%v: reason %v, want %v", c.a, got, c.r)
		}
	}
}

func TestNames(t *testing.T) {
	for a := range numActions {
		if b, ok := ActionByName(a.String()); !ok || b != a {
			t.Errorf("ActionByName(%q)", a.String())
		}
	}
	for z := range numZones {
		if b, ok := ZoneByName(z.String()); !ok || b != z {
			t.Errorf("ZoneByName(%q)", z.String())
		}
	}
	if Action(9).String() != "action(9)" || Zone(9).String() != "zone(9)" || (PortRange{1, 2}).String() != "1-2" {
		t.Errorf("String of out-of-range values")
	}
	if _, ok := ActionByName("accept"); ok {
		t.Errorf("ActionByName accepted an unknown name")
	}
}

// The zero-alloc contract of the per-packet function.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	g := &gen{r: newRand(1)}
	c := mustCompile(t, g.ruleSet(300))
	var a Active
	a.Store(c)
	k4 := key(ProtoTCP, "10.0.0.1", 1000, "192.168.0.7", 443)
	k6 := key(ProtoUDP, "2001:db8::1", 1000, "2001:db8:1::7", 53)
	ki := key(ProtoICMP, "10.0.0.1", 7, "10.1.0.9", 0)
	var nilc *Compiled
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"Match/v4", func() { c.Match(Inside, &k4, 0) }},
		{"Match/v6", func() { c.Match(Outside, &k6, 0) }},
		{"Match/icmp", func() { c.Match(Inside, &ki, 8) }},
		{"Match/nil", func() { nilc.Match(Inside, &k4, 0) }},
		{"Active.Load+Match", func() { a.Load().Match(Inside, &k4, 0) }},
	} {
		if n := testing.AllocsPerRun(1000, tc.fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", tc.name, n)
		}
	}
}

// Dimensions that no rule of a class constrains are skipped, whatever the
// class size (bitmaps of 64 rules fill their last word exactly).
func TestUnconstrainedDimensionsSkipped(t *testing.T) {
	for _, n := range []int{1, 63, 64, 65, 128, 130} {
		rs := RuleSet{}
		for i := range n {
			rs.Rules = append(rs.Rules, Rule{Zone: Inside, Proto: ProtoTCP, Action: Allow, Name: strconv.Itoa(i)})
		}
		rs.Rules[n-1].Dst = pfx("10.0.0.0/8") // the one constrained dimension
		c := mustCompile(t, rs)
		cl := &c.classes[Inside][pcTCP]
		if cl.n != n {
			t.Fatalf("%d rules: class has %d", n, cl.n)
		}
		if cl.dport.starts != nil || cl.sport.starts != nil || cl.src4.starts != nil || cl.src6.starts != nil || cl.icmp != nil {
			t.Errorf("%d rules: an unconstrained dimension is not skipped", n)
		}
		if cl.dst4.starts == nil || cl.dst6.starts == nil {
			t.Errorf("%d rules: the destination dimensions are skipped", n)
		}
		if c.classes[Outside][pcTCP].n != 0 || c.classes[Inside][pcUDP].n != 0 {
			t.Errorf("%d rules: rules in the wrong class", n)
		}
		k := key(ProtoTCP, "2001:db8::2", 1, "2001:db8::1", 2)
		if v, want := c.Match(Inside, &k, 0), int32(min(0, n-2)); v.Rule != want {
			t.Errorf("%d rules: a v6 key matched rule %d, want %d", n, v.Rule, want)
		}
		// Blocks: the two of dst4's intervals (all rules but the last;
		// all), dst6's single one is the first of them.
		if got, want := len(cl.arena), 2*(1+(n+63)/64); got != want {
			t.Errorf("%d rules: arena of %d words, want %d", n, got, want)
		}
	}
}
