package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/snat"
)

// Tests of Engine.Apply on the kernel-free pipeline: each live field takes
// effect on the next packet, fixed fields and invalid configurations
// change nothing.

// udpOut is a datagram from the client to dst:dport from source port sport.
func udpOut(sport uint16, dst netip.Addr, dport uint16) []byte {
	return eth(headertest.Spec{Src: ipClient, Dst: dst, Proto: header.ProtoUDP, SrcPort: sport, DstPort: dport,
		Payload: []byte("x")}, macClient, macEdgeIn)
}

// withConfig returns the test pipeline's configuration in force changed by
// fn (a deep-enough copy: fn may replace slices and pointers).
func (tp *testPipeline) withConfig(fn func(*Config)) Config {
	c := *tp.e.Config()
	fn(&c)
	return c
}

// apply applies fn's change and fails the test on error.
func (tp *testPipeline) apply(fn func(*Config)) []string {
	tp.t.Helper()
	changed, err := tp.e.Apply(tp.withConfig(fn), false)
	if err != nil {
		tp.t.Fatalf("apply: %v", err)
	}
	return changed
}

// serve runs fn while another goroutine plays the worker's loop
// (conntrack and SNAT control requests), as the control plane needs.
func (tp *testPipeline) serve(fn func()) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			tp.w.shard.Serve(tp.now)
			if tp.w.nat != nil {
				tp.w.nat.Serve(tp.now)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	fn()
	close(stop)
	wg.Wait()
}

var denyDNS = firewall.Rule{Name: "no-dns", Zone: firewall.Inside, Proto: header.ProtoUDP,
	DstPorts: []firewall.PortRange{{Lo: 53, Hi: 53}}, Action: firewall.Drop}

// A rule change judges new flows at once; existing flows keep forwarding
// (they are past the firewall) until flushed; after a flush the flow is
// new again and the new rule drops it.
func TestApplyRulesExistingFlows(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	if out, r := tp.send(0, udpOut(5000, ipServer, 53)); out == nil {
		t.Fatalf("flow before the apply: dropped %v", r)
	}
	changed := tp.apply(func(c *Config) {
		c.Rules = firewall.RuleSet{Rules: append([]firewall.Rule{denyDNS}, allowOutbound.Rules...), Default: firewall.Drop}
	})
	if !slices.Equal(changed, []string{"rules"}) {
		t.Fatalf("changed %v, want [rules]", changed)
	}
	if gen := tp.e.Generation(); gen != 2 {
		t.Fatalf("generation %d after one apply", gen)
	}
	if out, r := tp.send(0, udpOut(5001, ipServer, 53)); out != nil || r != drop.FirewallDrop {
		t.Fatalf("new flow after the deny rule: out %v reason %v", out != nil, r)
	}
	if out, r := tp.send(0, udpOut(5000, ipServer, 53)); out == nil {
		t.Fatalf("existing flow after the deny rule: dropped %v (existing flows are kept)", r)
	}
	tp.serve(func() {
		n, err := tp.e.table.Flush(context.Background(), conntrack.Filter{Port: 53}, tp.now)
		if err != nil || n != 1 {
			t.Fatalf("flush: %d %v", n, err)
		}
	})
	if out, r := tp.send(0, udpOut(5000, ipServer, 53)); out != nil || r != drop.FirewallDrop {
		t.Fatalf("flushed flow: out %v reason %v, want firewall_drop", out != nil, r)
	}
}

// Every live field: applied, listed in changed, effective on the next packet.
func TestApplyLiveFields(t *testing.T) {
	const SYN, ACK = header.TCPFlagSYN, header.TCPFlagACK
	inbound := func(sport uint16) []byte {
		return eth(headertest.Spec{Src: ipServer, Dst: ipClient, Proto: header.ProtoTCP, SrcPort: sport, DstPort: 22,
			Flags: SYN, Seq: 1, Window: 1000}, macServer, macEdgeOut)
	}
	bareACK := func(sport uint16) []byte {
		return eth(headertest.Spec{Src: ipClient, Dst: ipServer, Proto: header.ProtoTCP, SrcPort: sport, DstPort: 80,
			Flags: ACK, Seq: 1, Ack: 1, Window: 1000}, macClient, macEdgeIn)
	}
	cases := []struct {
		name    string
		before  func(tp *testPipeline) // a packet that shows the old behaviour
		change  func(*Config)
		changed []string
		after   func(tp *testPipeline)
	}{
		{
			name: "routes",
			before: func(tp *testPipeline) {
				if out, r := tp.send(0, udpOut(1, ipServer, 9)); out == nil {
					t.Fatalf("dropped %v", r)
				}
			},
			change:  func(c *Config) { c.Routes = testRoutes[:1] },
			changed: []string{"routes"},
			after: func(tp *testPipeline) {
				if out, r := tp.send(0, udpOut(1, ipServer, 9)); out != nil || r != drop.NoRoute {
					t.Fatalf("after removing the route: out %v reason %v", out != nil, r)
				}
			},
		},
		{
			name: "default_action",
			before: func(tp *testPipeline) {
				if _, r := tp.send(1, inbound(1)); r != drop.FirewallDrop {
					t.Fatalf("inbound SYN: %v", r)
				}
			},
			change:  func(c *Config) { c.Rules.Default = firewall.Allow },
			changed: []string{"default_action"},
			after: func(tp *testPipeline) {
				if out, r := tp.send(1, inbound(2)); out == nil || out.port != 0 {
					t.Fatalf("inbound SYN with default allow: %v", r)
				}
			},
		},
		{
			name: "conntrack pickup",
			before: func(tp *testPipeline) {
				if _, r := tp.send(0, bareACK(7000)); r != drop.NoState {
					t.Fatalf("bare ACK: %v", r)
				}
			},
			change:  func(c *Config) { c.Conntrack.Policy.PickUp = true },
			changed: []string{"conntrack"},
			after: func(tp *testPipeline) {
				if out, r := tp.send(0, bareACK(7001)); out == nil {
					t.Fatalf("bare ACK with pickup: %v", r)
				}
			},
		},
		{
			name:    "nsx_compat",
			change:  func(c *Config) { c.Conntrack.Policy.NSXCompat = true },
			changed: []string{"nsx_compat"},
			after: func(tp *testPipeline) {
				if !tp.e.table.Policy().NSXCompat || !tp.e.Status().NSXCompat {
					t.Fatal("nsx_compat not in force")
				}
			},
		},
		{
			name:    "management",
			change:  func(c *Config) { c.Management = []netip.Addr{netip.MustParseAddr("10.0.0.1")} },
			changed: []string{"management"},
			after: func(tp *testPipeline) {
				if m := tp.e.Config().Management; len(m) != 1 {
					t.Fatalf("management in force: %v", m)
				}
			},
		},
		{
			name: "profiles and a rule naming one",
			change: func(c *Config) {
				short := conntrack.DefaultProfile
				short.Name, short.UDPFirst = "short-udp", 5*conntrack.Second
				c.Conntrack.Policy.Profiles = []conntrack.Profile{conntrack.DefaultProfile, short}
				c.Rules = firewall.RuleSet{Rules: []firewall.Rule{{Name: "dns", Zone: firewall.Inside, Proto: header.ProtoUDP,
					DstPorts: []firewall.PortRange{{Lo: 53, Hi: 53}}, Action: firewall.Allow, Profile: "short-udp"},
					allowOutbound.Rules[0]}}
			},
			changed: []string{"profiles", "rules"},
			after: func(tp *testPipeline) {
				if out, r := tp.send(0, udpOut(2, ipServer, 53)); out == nil {
					t.Fatalf("dropped %v", r)
				}
				k := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, 2), netip.AddrPortFrom(ipServer, 53))
				ref, _, ok := tp.w.shard.Lookup(&k, tp.now)
				if !ok {
					t.Fatal("no flow")
				}
				fi := tp.w.shard.Info(ref, tp.now)
				if name := tp.e.table.Policy().Profiles[fi.Profile].Name; name != "short-udp" {
					t.Fatalf("flow's profile %q", name)
				}
				if fi.Expires-tp.now != 5*conntrack.Second {
					t.Fatalf("flow expires in %v, want 5s", fi.Expires-tp.now)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tp := newTestPipeline(t, allowOutbound, 1024)
			if c.before != nil {
				c.before(tp)
			}
			changed := tp.apply(c.change)
			if !slices.Equal(changed, c.changed) {
				t.Fatalf("changed %v, want %v", changed, c.changed)
			}
			c.after(tp)
		})
	}
}

// Profiles keep their index across applies: a flow keeps its profile's
// name (and picks up its new timers); a removed profile's flows keep its
// timers.
func TestApplyProfilesStable(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	mk := func(name string, udp conntrack.Time) conntrack.Profile {
		p := conntrack.DefaultProfile
		p.Name, p.UDPFirst, p.UDPSingle = name, udp, udp
		return p
	}
	rule := func(profile string) firewall.RuleSet {
		return firewall.RuleSet{Rules: []firewall.Rule{{Name: "r", Zone: firewall.Inside, Action: firewall.Allow, Profile: profile}}}
	}
	tp.apply(func(c *Config) {
		c.Conntrack.Policy.Profiles = []conntrack.Profile{conntrack.DefaultProfile, mk("a", 10*conntrack.Second), mk("b", 20*conntrack.Second)}
		c.Rules = rule("b")
	})
	if out, r := tp.send(0, udpOut(3, ipServer, 9)); out == nil {
		t.Fatal(r)
	}
	// "a" goes, "b" changes its timer, "c" comes.
	tp.apply(func(c *Config) {
		c.Conntrack.Policy.Profiles = []conntrack.Profile{conntrack.DefaultProfile, mk("b", 30*conntrack.Second), mk("c", 40*conntrack.Second)}
		c.Rules = rule("c")
	})
	names := func() (out []string) {
		for _, p := range tp.e.table.Policy().Profiles {
			out = append(out, p.Name)
		}
		return out
	}
	if got := names(); !slices.Equal(got, []string{"default", "a", "b", "c"}) {
		t.Fatalf("profile layout %v, want [default a b c] (a retired in place)", got)
	}
	k := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, 3), netip.AddrPortFrom(ipServer, 9))
	if out, r := tp.send(0, udpOut(3, ipServer, 9)); out == nil {
		t.Fatal(r)
	}
	ref, _, _ := tp.w.shard.Lookup(&k, tp.now)
	fi := tp.w.shard.Info(ref, tp.now)
	if fi.Profile != 2 || fi.Expires-tp.now != 30*conntrack.Second {
		t.Fatalf("old flow: profile %d expires in %v; want b (2) with its new 30s", fi.Profile, fi.Expires-tp.now)
	}
	if out, r := tp.send(0, udpOut(4, ipServer, 9)); out == nil {
		t.Fatal(r)
	}
	k.SrcPort = 4
	ref, _, _ = tp.w.shard.Lookup(&k, tp.now)
	if fi := tp.w.shard.Info(ref, tp.now); fi.Profile != 3 {
		t.Fatalf("new flow under rule naming c: profile %d, want 3", fi.Profile)
	}
	// A rule may not name the retired profile.
	if _, err := tp.e.Apply(tp.withConfig(func(c *Config) { c.Rules = rule("a") }), false); err == nil {
		t.Fatal("a rule naming a removed profile was accepted")
	}
}

// Fields fixed while running are refused, naming the field, wrapping
// ErrRestartRequired; invalid configurations are refused; either way
// nothing changes, even the valid parts of the same configuration.
func TestApplyRefused(t *testing.T) {
	cases := []struct {
		field  string // expected at the start of the error
		fixed  bool
		change func(*Config)
	}{
		{"interfaces.inside.name", true, func(c *Config) { c.Inside.Name = "eth9" }},
		{"interfaces.outside.mtu", true, func(c *Config) { c.Outside.MTU = 1400 }},
		{"queues", true, func(c *Config) { c.Queues = 2 }},
		{"cpus", true, func(c *Config) { c.CPUs = []int{1} }},
		{"hugepages", true, func(c *Config) { c.Hugepages = true }},
		{"xdp.frames", true, func(c *Config) { c.Frames = 16384 }},
		{"xdp.ring", true, func(c *Config) { c.Ring = 1024 }},
		{"xdp.need_wakeup", true, func(c *Config) { c.NeedWakeup = !c.NeedWakeup }},
		{"xdp.busy_poll", true, func(c *Config) { c.BusyPoll = BusyPoll{On: true, Budget: 16} }},
		{"conntrack.max_flows", true, func(c *Config) { c.Conntrack.MaxFlows = 4096 }},
		{"conntrack.history", true, func(c *Config) { c.Conntrack.HistorySize = 128 }},
		{"snat: quarantine_ports", true, func(c *Config) {
			c.SNAT = &snat.Config{Mode: snat.Automap, Automap: ipSNAT, QuarantinePorts: 10}
		}},
		{"rules[0].profile", false, func(c *Config) {
			c.Rules.Rules = []firewall.Rule{{Name: "x", Action: firewall.Allow, Profile: "nope"}}
		}},
		{"routes[0].interface", false, func(c *Config) { c.Routes = []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Port: 7}} }},
		{"snat: pools", false, func(c *Config) { c.SNAT = &snat.Config{Mode: snat.Pools} }},
		{"management", false, func(c *Config) { c.Management = []netip.Addr{ipSNAT} }},
		{"management[1]", false, func(c *Config) { c.Management = []netip.Addr{ipEdgeIn, ipEdgeIn} }},
		{"profiles", false, func(c *Config) {
			bad := conntrack.DefaultProfile
			bad.Name, bad.UDPFirst = "bad", 0
			c.Conntrack.Policy.Profiles = []conntrack.Profile{conntrack.DefaultProfile, bad}
		}},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			tp := newTestPipeline(t, allowOutbound, 1024)
			before := tp.e.Config()
			pol := tp.e.table.Policy()
			for _, dry := range []bool{true, false} {
				cfg := tp.withConfig(func(cf *Config) {
					// A valid change beside the bad one: refused with it.
					cf.Rules = firewall.RuleSet{Rules: append([]firewall.Rule{denyDNS}, allowOutbound.Rules...)}
					c.change(cf)
				})
				_, err := tp.e.Apply(cfg, dry)
				if err == nil {
					t.Fatalf("dry run %v: accepted", dry)
				}
				if !strings.HasPrefix(err.Error(), c.field) {
					t.Fatalf("error %q does not start with %q", err, c.field)
				}
				if errors.Is(err, ErrRestartRequired) != c.fixed {
					t.Fatalf("error %q: errors.Is(ErrRestartRequired) = %v", err, !c.fixed)
				}
			}
			if tp.e.Config() != before || tp.e.Generation() != 1 || !slices.Equal(tp.e.table.Policy().Profiles, pol.Profiles) {
				t.Fatal("the configuration in force changed")
			}
			if out, r := tp.send(0, udpOut(5, ipServer, 53)); out == nil {
				t.Fatalf("the rules changed: %v", r)
			}
		})
	}
}

// A dry run reports what would change and changes nothing.
func TestApplyDryRun(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	changed, err := tp.e.Apply(tp.withConfig(func(c *Config) {
		c.Rules.Rules = []firewall.Rule{denyDNS}
		c.SNAT = nil
	}), true)
	if err != nil || !slices.Equal(changed, []string{"snat", "rules"}) {
		t.Fatalf("dry run: %v %v", changed, err)
	}
	if out, r := tp.send(0, udpOut(5, ipServer, 53)); out == nil {
		t.Fatalf("dry run changed the rules: %v", r)
	}
	if tp.e.Generation() != 1 {
		t.Fatal("dry run bumped the generation")
	}
	// Applying the configuration in force changes nothing.
	if changed, err := tp.e.Apply(*tp.e.Config(), false); err != nil || len(changed) != 0 || tp.e.Generation() != 1 {
		t.Fatalf("no-op apply: %v %v gen %d", changed, err, tp.e.Generation())
	}
}

// SNAT reconfigured while flows run: the old flow keeps its translation
// both ways and releases its port (counted out, quarantined) when it ends;
// new flows take the new pool and range; SNAT turned off leaves new flows
// untranslated and old ones translated.
func TestApplySNATWhileFlowsRun(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	out, r := tp.send(0, udpOut(6000, ipServer, 53))
	if out == nil {
		t.Fatal(r)
	}
	k1 := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, 6000), netip.AddrPortFrom(ipServer, 53))
	p1 := tp.natPort(k1)

	ipPool := netip.MustParseAddr("203.0.113.50")
	changed := tp.apply(func(c *Config) {
		c.SNAT = &snat.Config{Mode: snat.Pools, Pools: []snat.Pool{{Name: "p", Addrs: []netip.Addr{ipPool}}},
			Ports: snat.PortRange{Start: 3000, End: 3001}, Quarantine: time.Minute}
	})
	if !slices.Equal(changed, []string{"snat"}) {
		t.Fatalf("changed %v", changed)
	}
	// The old flow, both directions, as before.
	out, r = tp.send(0, udpOut(6000, ipServer, 53))
	if out == nil {
		t.Fatal(r)
	}
	if ip := header.IPv4(out.frame[header.EthernetLen:]); ip.SrcAddr() != ipSNAT || header.UDP(ip.Payload()).SrcPort() != p1 {
		t.Fatalf("old flow now leaves as %v:%d, want %v:%d", ip.SrcAddr(), header.UDP(ip.Payload()).SrcPort(), ipSNAT, p1)
	}
	reply := eth(headertest.Spec{Src: ipServer, Dst: ipSNAT, Proto: header.ProtoUDP, SrcPort: 53, DstPort: p1,
		Payload: []byte("y")}, macServer, macEdgeOut)
	if out, r := tp.send(1, reply); out == nil || out.port != 0 {
		t.Fatalf("reply to the old flow: %v", r)
	}
	// New flows: the pool's address and the new range, two ports only.
	// Each is answered, so that its port is quarantined when it ends
	// (an unanswered flow's is not).
	for _, sport := range []uint16{6001, 6002} {
		out, r := tp.send(0, udpOut(sport, ipServer, 53))
		if out == nil {
			t.Fatal(r)
		}
		ip := header.IPv4(out.frame[header.EthernetLen:])
		port := header.UDP(ip.Payload()).SrcPort()
		if ip.SrcAddr() != ipPool || port < 3000 || port > 3001 {
			t.Fatalf("new flow leaves as %v:%d", ip.SrcAddr(), port)
		}
		reply := eth(headertest.Spec{Src: ipServer, Dst: ipPool, Proto: header.ProtoUDP, SrcPort: 53, DstPort: port,
			Payload: []byte("y")}, macServer, macEdgeOut)
		if out, r := tp.send(1, reply); out == nil || out.port != 0 {
			t.Fatalf("reply to new flow %d: %v", sport, r)
		}
	}
	if out, r := tp.send(0, udpOut(6003, ipServer, 53)); out != nil || r != drop.SNATExhausted {
		t.Fatalf("third new flow: out %v reason %v, want snat_exhausted", out != nil, r)
	}
	if st, on := tp.e.nat.Config(); !on || st.Ports.Start != 3000 || tp.e.Status().SNAT == nil {
		t.Fatalf("SNAT in force: %+v %v", st, on)
	}

	// The old flow ends: its port is counted out of the old address's
	// destination and quarantined there.
	released := tp.e.nat.Stats().Counters[snat.CtrReleased]
	tp.now += 301 * conntrack.Second
	tp.w.shard.Expire(tp.now, 1<<16)
	if got := tp.e.nat.Stats().Counters[snat.CtrReleased]; got != released+3 {
		t.Fatalf("released %d flows, want 3", got-released)
	}
	var dests []snat.DestStat
	tp.serve(func() {
		var err error
		if dests, err = tp.e.nat.Destinations(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	// Counts are of the range in force: the pool address's two ports are
	// quarantined; the old flow's port, outside the range, is counted
	// nowhere (it stays quarantined in case the range comes back).
	if p1 == 3000 || p1 == 3001 { // 2 chances in 64,512: the old port is in the new range
		dests = slices.DeleteFunc(dests, func(d snat.DestStat) bool { return d.Addr == ipSNAT && d.Quarantined == 1 })
	}
	if len(dests) != 1 || dests[0].Addr != ipPool || dests[0].InUse != 0 || dests[0].OutOfRange != 0 || dests[0].Quarantined != 2 {
		t.Fatalf("destinations after every flow ended: %+v; want the pool address's 2 ports quarantined, nothing else", dests)
	}

	// SNAT off: new flows untranslated.
	if changed := tp.apply(func(c *Config) { c.SNAT = nil }); !slices.Equal(changed, []string{"snat"}) {
		t.Fatalf("changed %v", changed)
	}
	out, r = tp.send(0, udpOut(6004, ipServer, 53))
	if out == nil {
		t.Fatal(r)
	}
	if ip := header.IPv4(out.frame[header.EthernetLen:]); ip.SrcAddr() != ipClient {
		t.Fatalf("SNAT off: new flow leaves as %v", ip.SrcAddr())
	}
	if tp.e.Status().SNAT != nil {
		t.Fatal("status shows SNAT while off")
	}
	// And on again.
	tp.apply(func(c *Config) { c.SNAT = &snat.Config{Mode: snat.Automap, Automap: ipSNAT} })
	out, r = tp.send(0, udpOut(6005, ipServer, 53))
	if out == nil {
		t.Fatal(r)
	}
	if ip := header.IPv4(out.frame[header.EthernetLen:]); ip.SrcAddr() != ipSNAT {
		t.Fatalf("SNAT on again: new flow leaves as %v", ip.SrcAddr())
	}
}

// readEvents returns the worker events queued so far.
func (tp *testPipeline) readEvents() []Event {
	buf := make([]Event, 256)
	return buf[:tp.e.ReadEvents(buf)]
}

// Drops and generated packets are events with their reason, ICMP kind,
// key and zone.
func TestEvents(t *testing.T) {
	rules := firewall.RuleSet{Rules: []firewall.Rule{
		{Name: "no-telnet", Zone: firewall.Inside, Proto: header.ProtoTCP, DstPorts: []firewall.PortRange{{Lo: 23, Hi: 23}}, Action: firewall.Reject},
		denyDNS,
		allowOutbound.Rules[0],
	}}
	tp := newTestPipeline(t, rules, 1024)
	tp.now = 42 * conntrack.Second

	tp.send(0, udpOut(7000, ipServer, 53))
	ev := tp.readEvents()
	k := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, 7000), netip.AddrPortFrom(ipServer, 53))
	if len(ev) != 1 || ev[0].Kind != EvDropped || ev[0].Reason != drop.FirewallDrop || ev[0].Key != k ||
		ev[0].Zone != uint8(firewall.Inside) || ev[0].Time != tp.now {
		t.Fatalf("firewall drop: %+v", ev)
	}

	// TTL 1: dropped, and time exceeded sent because of it.
	tp.send(0, eth(headertest.Spec{Src: ipClient, Dst: ipServer, Proto: header.ProtoUDP, SrcPort: 7001, DstPort: 9,
		TTL: 1}, macClient, macEdgeIn))
	ev = tp.readEvents()
	if len(ev) != 2 || ev[0].Kind != EvDropped || ev[0].Reason != drop.TTLExceeded ||
		ev[1].Kind != EvICMPSent || ev[1].Reason != drop.TTLExceeded || ev[1].ICMP != icmp.TimeExceeded {
		t.Fatalf("TTL exceeded: %+v", ev)
	}

	// Reject of a TCP SYN: the drop and the reset.
	tp.send(0, eth(headertest.Spec{Src: ipClient, Dst: ipServer, Proto: header.ProtoTCP, SrcPort: 7002, DstPort: 23,
		Flags: header.TCPFlagSYN, Seq: 1}, macClient, macEdgeIn))
	ev = tp.readEvents()
	if len(ev) != 2 || ev[0].Reason != drop.FirewallReject || ev[1].Kind != EvRSTSent || ev[1].Reason != drop.FirewallReject ||
		ev[1].Flags != header.TCPFlagSYN {
		t.Fatalf("reject: %+v", ev)
	}

	// A drop conntrack decides is conntrack's event, not the worker's.
	tp.send(1, eth(headertest.Spec{Src: ipServer, Dst: ipSNAT, Proto: header.ProtoTCP, SrcPort: 80, DstPort: 9,
		Flags: header.TCPFlagACK}, macServer, macEdgeOut))
	if ev := tp.readEvents(); len(ev) != 0 {
		t.Fatalf("no_state recorded by the worker too: %+v", ev)
	}
	cev := make([]conntrack.Event, 16)
	n := tp.e.table.ReadEvents(cev)
	if n == 0 || cev[n-1].Kind != conntrack.EvDropped || cev[n-1].Reason != drop.NoState {
		t.Fatalf("conntrack events: %+v", cev[:n])
	}

	// A packet that does not parse: an event without a key.
	tp.send(0, []byte{1, 2, 3})
	if ev := tp.readEvents(); len(ev) != 1 || ev[0].Reason != drop.Truncated || ev[0].Key != (conntrack.Key{}) {
		t.Fatalf("truncated: %+v", ev)
	}
	if s := tp.e.Stats(); s.EventsLost != 0 {
		t.Fatalf("events lost: %d", s.EventsLost)
	}
}

// A full ring loses events and counts them; the worker never waits.
func TestEventsLost(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	tp.w.events.Init(4)
	for i := range 10 {
		tp.send(1, eth(headertest.Spec{Src: ipServer, Dst: ipClient, Proto: header.ProtoUDP, SrcPort: uint16(100 + i), DstPort: 9},
			macServer, macEdgeOut))
	}
	if ev := tp.readEvents(); len(ev) != 4 {
		t.Fatalf("%d events read, want the ring's 4", len(ev))
	}
	s := tp.e.Stats()
	if s.EventsLost != 6 || s.Workers[0].EventsLost != 6 || s.Drops[drop.FirewallDrop] != 10 {
		t.Fatalf("lost %d (worker %d), drops %d; want 6 lost of 10", s.EventsLost, s.Workers[0].EventsLost, s.Drops[drop.FirewallDrop])
	}
}

// Recording an event on the drop path allocates nothing.
func TestDropPathZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation test")
	}
	tp := newTestPipeline(t, allowOutbound, 1024)
	frame := eth(headertest.Spec{Src: ipServer, Dst: ipClient, Proto: header.ProtoUDP, SrcPort: 1, DstPort: 9}, macServer, macEdgeOut)
	frames := [][]byte{frame}
	if n := testing.AllocsPerRun(200, func() {
		tp.w.pipeline(1, frames, tp.now)
		tp.w.flush()
		tp.w.events.Skip()
	}); n != 0 {
		t.Fatalf("firewall-drop path: %v allocs per packet", n)
	}
	if tp.w.ctr.drops[drop.FirewallDrop].Load() == 0 {
		t.Fatal("the packet was not dropped")
	}
}

// BenchmarkDropPathEvent: a firewall-denied packet through the pipeline,
// with its event recorded (and the ring drained as a reader would).
func BenchmarkDropPathEvent(b *testing.B) {
	tp := newTestPipeline(b, allowOutbound, 1024)
	frame := eth(headertest.Spec{Src: ipServer, Dst: ipClient, Proto: header.ProtoUDP, SrcPort: 1, DstPort: 9}, macServer, macEdgeOut)
	frames := [][]byte{frame}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tp.w.pipeline(1, frames, tp.now)
		if i&1023 == 0 {
			tp.w.flush()
			tp.w.events.Skip()
		}
	}
}

// BenchmarkEventRecord: one event alone.
func BenchmarkEventRecord(b *testing.B) {
	tp := newTestPipeline(b, allowOutbound, 1024)
	var p conntrack.Packet
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tp.w.dropPkt(drop.FirewallDrop, 0, &p)
		if i&1023 == 0 {
			tp.w.events.Publish()
			tp.w.events.Skip()
		}
	}
}

// Applies from another goroutine while the worker forwards, and the
// control plane reads stats and events meanwhile: run with -race.
func TestApplyConcurrent(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 4096)
	base := *tp.e.Config()
	short := conntrack.DefaultProfile
	short.Name, short.UDPFirst = "short", 7*conntrack.Second
	configs := []Config{base, base, base, base}
	configs[1].Rules = firewall.RuleSet{Rules: append([]firewall.Rule{denyDNS}, allowOutbound.Rules...)}
	configs[2].SNAT = &snat.Config{Mode: snat.Pools, Pools: []snat.Pool{{Name: "p",
		Ranges: []snat.AddrRange{{Start: netip.MustParseAddr("203.0.113.60"), End: netip.MustParseAddr("203.0.113.61")}}}},
		Ports: snat.PortRange{Start: 20000, End: 20999}}
	configs[3].Conntrack.Policy = conntrack.Policy{Profiles: []conntrack.Profile{conntrack.DefaultProfile, short}, PickUp: true}
	configs[3].Rules = firewall.RuleSet{Rules: []firewall.Rule{{Name: "all", Zone: firewall.Inside, Action: firewall.Allow, Profile: "short"}}}
	configs[3].SNAT = nil
	configs[3].Routes = testRoutes[:3]

	var stop atomic.Bool
	var wg sync.WaitGroup
	var applies atomic.Int64
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			if _, err := tp.e.Apply(configs[i%len(configs)], i%5 == 4); err != nil {
				t.Error(err)
				return
			}
			applies.Add(1)
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]Event, 64)
		for !stop.Load() {
			tp.e.ReadEvents(buf)
			_ = tp.e.Stats()
			_ = tp.e.Status()
			_ = tp.e.RuleName(0)
			time.Sleep(100 * time.Microsecond)
		}
	}()
	// Every packet, one at a time: forwarded with a translation some
	// configuration offers, the same for all packets of a flow (a flow
	// keeps its translation until it ends, whatever applies happen), or
	// dropped for a reason some configuration explains: the rule denying
	// DNS (port 53 only), SNAT exhaustion (the pool's 1,000 ports per
	// destination), a full table.
	type nat struct {
		addr netip.Addr
		port uint16
	}
	pool := []netip.Addr{netip.MustParseAddr("203.0.113.60"), netip.MustParseAddr("203.0.113.61")}
	seen := map[uint16]nat{}
	var sent, forwarded, dropped uint64
	var reasons [drop.NumReasons]uint64
	deadline := time.Now().Add(300 * time.Millisecond)
	for i := 0; time.Now().Before(deadline) || applies.Load() < 20; i++ {
		for j := range 16 {
			sport, dport := uint16(1000+(i*16+j)%4000), uint16(53+j%2)
			out, rs := tp.sendAll(0, udpOut(sport, ipServer, dport))
			sent++
			if out == nil {
				if len(rs) != 1 {
					t.Fatalf("packet %d->%d: dropped with reasons %v", sport, dport, rs)
				}
				for r := range rs {
					switch {
					case r == drop.FirewallDrop && dport == 53, r == drop.SNATExhausted, r == drop.SNATProbeLimit, r == drop.TableFull:
					default:
						t.Fatalf("packet %d->%d: dropped as %v, which no configuration explains", sport, dport, r)
					}
					reasons[r]++
				}
				dropped++
				continue
			}
			if len(rs) != 0 || out.port != 1 {
				t.Fatalf("packet %d->%d: forwarded on port %d with drops %v", sport, dport, out.port, rs)
			}
			forwarded++
			ip := header.IPv4(out.frame[header.EthernetLen:])
			got := nat{ip.SrcAddr(), header.UDP(ip.Payload()).SrcPort()}
			switch {
			case got.addr == ipSNAT && got.port >= snat.DefaultPortStart:
			case slices.Contains(pool, got.addr) && got.port >= 20000 && got.port <= 20999:
			case got == nat{ipClient, sport}: // SNAT off
			default:
				t.Fatalf("packet %d->%d left as %v:%d, a translation no configuration offers", sport, dport, got.addr, got.port)
			}
			if was, ok := seen[sport]; ok && was != got {
				t.Fatalf("flow %d->%d changed its translation from %v to %v", sport, dport, was, got)
			}
			seen[sport] = got
		}
		tp.w.shard.Serve(tp.now)
		tp.w.nat.Serve(tp.now)
		tp.now += conntrack.Millisecond
	}
	stop.Store(true)
	wg.Wait()
	st := tp.e.Stats()
	var drops uint64
	for r, n := range st.Drops {
		drops += n
		if n != reasons[r] {
			t.Errorf("drop counter %v: %d, seen %d", drop.Reason(r), n, reasons[r])
		}
	}
	// (RX is counted where frames leave the RX ring, which the test
	// pipeline has not.)
	if st.TX[1] != forwarded || st.TX[0] != 0 || drops != dropped || forwarded+dropped != sent || st.Created == 0 {
		t.Fatalf("counters: tx %v drops %d created %d; sent %d, forwarded %d, dropped %d",
			st.TX, drops, st.Created, sent, forwarded, dropped)
	}
}

// Reordering profiles never moves a live flow onto another profile's
// timers: the order of profiles after the first changes nothing in the
// layout, and a list that puts another profile first (the profile of
// flows that name none) is refused while edge runs, changing nothing.
func TestApplyProfilesReorder(t *testing.T) {
	mk := func(name string, udp conntrack.Time) conntrack.Profile {
		p := conntrack.DefaultProfile
		p.Name, p.UDPFirst, p.UDPSingle = name, udp, udp
		return p
	}
	def := conntrack.DefaultProfile
	a, b := mk("a", 10*conntrack.Second), mk("b", 20*conntrack.Second)
	// Rules by destination port: 9 names no profile, 10 names a, 11 names b.
	// (for the profiles ps has).
	rules := func(ps []conntrack.Profile) firewall.RuleSet {
		rs := firewall.RuleSet{Rules: []firewall.Rule{{Name: "none", Zone: firewall.Inside, Proto: header.ProtoUDP,
			DstPorts: []firewall.PortRange{{Lo: 9, Hi: 9}}, Action: firewall.Allow}}}
		for _, p := range ps {
			if port := map[string]uint16{"a": 10, "b": 11}[p.Name]; port != 0 {
				rs.Rules = append(rs.Rules, firewall.Rule{Name: p.Name, Zone: firewall.Inside, Proto: header.ProtoUDP,
					DstPorts: []firewall.PortRange{{Lo: port, Hi: port}}, Action: firewall.Allow, Profile: p.Name})
			}
		}
		return rs
	}
	for _, tc := range []struct {
		name        string
		from, to    []conntrack.Profile
		refused     bool
		wantLayout  []string
		newFlowPort uint16 // a new flow to this port after the apply...
		newFlowTo   conntrack.Time
	}{
		{name: "[default a] -> [a default]", from: []conntrack.Profile{def, a}, to: []conntrack.Profile{a, def}, refused: true,
			wantLayout: []string{"default", "a"}},
		{name: "[default a b] -> [a b default]", from: []conntrack.Profile{def, a, b}, to: []conntrack.Profile{a, b, def}, refused: true,
			wantLayout: []string{"default", "a", "b"}},
		{name: "[default a b] -> [default b a]", from: []conntrack.Profile{def, a, b}, to: []conntrack.Profile{def, b, a},
			wantLayout: []string{"default", "a", "b"}, newFlowPort: 10, newFlowTo: 10 * conntrack.Second},
		{name: "[default a b] -> [default b]", from: []conntrack.Profile{def, a, b}, to: []conntrack.Profile{def, b},
			wantLayout: []string{"default", "a", "b"}, newFlowPort: 11, newFlowTo: 20 * conntrack.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTestPipeline(t, allowOutbound, 1024)
			tp.apply(func(c *Config) {
				c.Conntrack.Policy.Profiles = tc.from
				c.Rules = rules(tc.from)
			})
			timers := map[uint16]conntrack.Time{9: def.UDPFirst, 10: a.UDPFirst, 11: b.UDPFirst}
			var ports []uint16
			for port := range timers {
				if port == 11 && len(tc.from) < 3 {
					continue
				}
				ports = append(ports, port)
				if out, r := tp.send(0, udpOut(port, ipServer, port)); out == nil {
					t.Fatalf("flow to %d: %v", port, r)
				}
			}
			before := tp.e.Config()
			to := tp.withConfig(func(c *Config) {
				c.Conntrack.Policy.Profiles = tc.to
				c.Rules = rules(tc.to)
			})
			_, err := tp.e.Apply(to, false)
			if tc.refused {
				if err == nil || !errors.Is(err, ErrRestartRequired) || !strings.HasPrefix(err.Error(), "profiles: ") {
					t.Fatalf("apply: %v; want a profiles error wrapping ErrRestartRequired", err)
				}
				if tp.e.Config() != before || tp.e.Generation() != 2 {
					t.Fatal("a refused apply changed the configuration")
				}
			} else if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range tp.e.table.Policy().Profiles {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tc.wantLayout) {
				t.Fatalf("layout %v, want %v", names, tc.wantLayout)
			}
			// Every old flow keeps its profile's timers (from its next packet).
			tp.now += conntrack.Second
			for _, port := range ports {
				if out, r := tp.send(0, udpOut(port, ipServer, port)); out == nil {
					t.Fatalf("old flow to %d: %v", port, r)
				}
				k := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, port), netip.AddrPortFrom(ipServer, port))
				ref, _, ok := tp.w.shard.Lookup(&k, tp.now)
				if !ok {
					t.Fatalf("old flow to %d gone", port)
				}
				if got := tp.w.shard.Info(ref, tp.now).Expires - tp.now; got != timers[port] {
					t.Fatalf("old flow to %d expires in %v, want its profile's %v", port, got, timers[port])
				}
			}
			if tc.newFlowPort != 0 {
				if out, r := tp.send(0, udpOut(tc.newFlowPort+100, ipServer, tc.newFlowPort)); out == nil {
					t.Fatalf("new flow: %v", r)
				}
				k := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, tc.newFlowPort+100), netip.AddrPortFrom(ipServer, tc.newFlowPort))
				ref, _, _ := tp.w.shard.Lookup(&k, tp.now)
				if got := tp.w.shard.Info(ref, tp.now).Expires - tp.now; got != tc.newFlowTo {
					t.Fatalf("new flow to %d expires in %v, want %v", tc.newFlowPort, got, tc.newFlowTo)
				}
			}
		})
	}
}

// bigPool is SNAT over 4,096 addresses (the most a configuration holds)
// starting at 10.base.0.0.
func bigPool(base byte) *snat.Config {
	return &snat.Config{Mode: snat.Pools, Pools: []snat.Pool{{Name: "big", Ranges: []snat.AddrRange{{
		Start: netip.AddrFrom4([4]byte{10, base, 0, 0}), End: netip.AddrFrom4([4]byte{10, base, 15, 255})}}}}}
}

// Dry runs have no side effect: a thousand of a 4,096-address pool leave
// conntrack's table of interned addresses as it was (it holds 65,535 and
// never reuses an index), and the configuration in force too.
func TestApplyDryRunInternsNothing(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	interned := tp.e.table.InternedAddrs()
	before := tp.e.Config()
	n := 1000
	if testing.Short() {
		n = 100
	}
	for i := range n {
		cfg := tp.withConfig(func(c *Config) { c.SNAT = bigPool(byte(1 + i%200)) })
		if changed, err := tp.e.Apply(cfg, true); err != nil || !slices.Equal(changed, []string{"snat"}) {
			t.Fatalf("dry run %d: %v %v", i, changed, err)
		}
	}
	if got := tp.e.table.InternedAddrs(); got != interned {
		t.Fatalf("%d dry runs interned %d addresses", n, got-interned)
	}
	if tp.e.Config() != before || tp.e.Generation() != 1 {
		t.Fatal("dry runs changed the configuration")
	}
	if c, _ := tp.e.nat.Config(); c.Mode != snat.Automap {
		t.Fatalf("dry runs changed SNAT: %+v", c)
	}
	// Committed, the pool is interned once, and applying it again adds nothing.
	tp.apply(func(c *Config) { c.SNAT = bigPool(1) })
	tp.apply(func(c *Config) { c.SNAT = bigPool(1) })
	if got := tp.e.table.InternedAddrs(); got != interned+4096 {
		t.Fatalf("interned %d after applying the pool twice, want %d", got-interned, 4096)
	}
}

// A commit step after the management maps that fails undoes the
// management change: the XDP program's maps are as before, and so is
// everything else. Needs a loadable XDP program (root).
func TestApplyUndoesManagement(t *testing.T) {
	prog, err := NewProgram(1)
	if err != nil {
		t.Skipf("no XDP program: %v", err)
	}
	defer prog.Close()
	tp := newTestPipeline(t, allowOutbound, 1024)
	tp.e.progs[0] = prog
	m1, m2, m3 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("2001:db8::10")
	tp.apply(func(c *Config) { c.Management = []netip.Addr{m1, m3} })
	inMap := func(a netip.Addr) bool {
		var v uint8
		if a.Is4() {
			return prog.mgmt4.Lookup(a.As4(), &v) == nil
		}
		return prog.mgmt6.Lookup(a.As16(), &v) == nil
	}
	if !inMap(m1) || !inMap(m3) || inMap(m2) {
		t.Fatal("management maps after the first apply")
	}
	before, pol, fw, rt := tp.e.Config(), tp.e.table.Policy(), tp.e.fw.Load(), tp.e.routes.Load()
	natCfg, _ := tp.e.nat.Config()
	// Fill the intern table between validation and commit: interning the
	// new SNAT address fails.
	testAfterManagement = func() {
		var fill []netip.Addr
		for i := tp.e.table.InternedAddrs(); i < 65535; i++ {
			fill = append(fill, netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)}))
		}
		if _, err := tp.e.table.InternAddrs(fill); err != nil {
			t.Error(err)
		}
	}
	defer func() { testAfterManagement = nil }()
	_, err = tp.e.Apply(tp.withConfig(func(c *Config) {
		c.Management = []netip.Addr{m2}
		c.Rules = firewall.RuleSet{Rules: []firewall.Rule{denyDNS}}
		c.SNAT = &snat.Config{Mode: snat.Automap, Automap: netip.MustParseAddr("203.0.113.77")}
	}), false)
	if err == nil || !strings.HasPrefix(err.Error(), "snat: ") {
		t.Fatalf("apply with a full intern table: %v", err)
	}
	if !inMap(m1) || !inMap(m3) || inMap(m2) {
		t.Fatalf("management maps not restored: %v %v %v", inMap(m1), inMap(m3), inMap(m2))
	}
	nc, _ := tp.e.nat.Config()
	if tp.e.Config() != before || tp.e.fw.Load() != fw || tp.e.routes.Load() != rt || !slices.Equal(tp.e.table.Policy().Profiles, pol.Profiles) ||
		!reflect.DeepEqual(nc, natCfg) || tp.e.Generation() != 2 {
		t.Fatal("a failed apply changed something")
	}
}

// ApplyHarness exposes the kernel-free test pipeline to FuzzApply, which
// lives in package dataplane_test because it parses documents with package
// config (which imports dataplane). Its configuration in force has the
// interface names "in" and "out", 1024 flows and a history of 64, as
// config.Parse gives them for such a file.
type ApplyHarness struct{ tp *testPipeline }

func NewApplyHarness(t testing.TB) *ApplyHarness {
	tp := newTestPipeline(t, allowOutbound, 1024)
	c := *tp.e.Config()
	c.Inside.Name, c.Outside.Name, c.NeedWakeup = "in", "out", true
	tp.e.cfg = c
	tp.e.cur.Store(&c)
	return &ApplyHarness{tp: tp}
}

// Engine returns the harness's engine.
func (h *ApplyHarness) Engine() *Engine { return h.tp.e }

// Interned returns how many addresses conntrack has interned.
func (h *ApplyHarness) Interned() int { return h.tp.e.table.InternedAddrs() }

// Forward runs a few packets through the worker (a new flow, its reply,
// a flow from outside) and expires flows, with time moving on.
func (h *ApplyHarness) Forward(sport uint16) {
	tp := h.tp
	tp.now += conntrack.Second
	tp.send(0, udpOut(sport, ipServer, 53))
	tp.send(1, eth(headertest.Spec{Src: ipServer, Dst: ipSNAT, Proto: header.ProtoUDP, SrcPort: 53, DstPort: sport,
		Payload: []byte("y")}, macServer, macEdgeOut))
	tp.send(1, eth(headertest.Spec{Src: ipServer, Dst: ipClient, Proto: header.ProtoTCP, SrcPort: sport, DstPort: 22,
		Flags: header.TCPFlagSYN, Seq: 1, Window: 1000}, macServer, macEdgeOut))
	tp.w.shard.Expire(tp.now, 64)
	tp.w.nat.Serve(tp.now)
}

// ApplyState is everything Apply may change.
type ApplyState struct {
	Cfg      *Config
	Policy   conntrack.Policy
	Rules    *firewall.Compiled
	Routes   *Routes
	NAT      snat.Config
	NATOn    bool
	NATCfg   *snat.Config
	Interned int
	Gen      uint64
}

// State returns the state Apply may change.
func (h *ApplyHarness) State() ApplyState {
	e := h.tp.e
	s := ApplyState{Cfg: e.Config(), Policy: e.table.Policy(), Rules: e.fw.Load(), Routes: e.routes.Load(),
		NATCfg: e.natCfg, Interned: e.table.InternedAddrs(), Gen: e.Generation()}
	s.NAT, s.NATOn = e.nat.Config()
	return s
}

// Diff names the first part of s that differs from o, or "".
func (s ApplyState) Diff(o ApplyState) string {
	switch {
	case s.Cfg != o.Cfg:
		return "Config()"
	case !reflect.DeepEqual(s.Policy, o.Policy):
		return "conntrack policy"
	case s.Rules != o.Rules:
		return "compiled rules"
	case s.Routes != o.Routes:
		return "routes"
	case s.NATOn != o.NATOn || !reflect.DeepEqual(s.NAT, o.NAT) || s.NATCfg != o.NATCfg:
		return "SNAT"
	case s.Interned != o.Interned:
		return "interned addresses"
	case s.Gen != o.Gen:
		return "generation"
	}
	return ""
}

// A flow's rule is named after the rule set it was created under, whatever
// rules were applied since (a flow admitted by "outbound" stays admitted by
// "outbound" when a new rule is inserted before it).
func TestApplyRuleNamesStayWithTheirRuleSet(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	ruleOf := func(sport, dport uint16) string {
		t.Helper()
		var name string
		tp.serve(func() {
			k := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, sport), netip.AddrPortFrom(ipServer, dport))
			ex, err := tp.e.table.Explain(context.Background(), k, 0, tp.now)
			if err != nil || ex.Current == nil {
				t.Fatalf("explain %v: %v %+v", k, err, ex)
			}
			name = tp.e.FlowRuleName(ex.Current.Rule)
		})
		return name
	}
	if out, r := tp.send(0, udpOut(5000, ipServer, 9999)); out == nil {
		t.Fatalf("first flow dropped: %v", r)
	}
	web := firewall.Rule{Name: "web", Zone: firewall.Inside, Proto: header.ProtoUDP,
		DstPorts: []firewall.PortRange{{Lo: 80, Hi: 80}}, Action: firewall.Allow}
	tp.apply(func(c *Config) {
		c.Rules = firewall.RuleSet{Rules: append([]firewall.Rule{web}, allowOutbound.Rules...), Default: firewall.Drop}
	})
	for _, p := range []uint16{80, 9998} {
		if out, r := tp.send(0, udpOut(5001, ipServer, p)); out == nil {
			t.Fatalf("flow to %d dropped: %v", p, r)
		}
	}
	for _, c := range []struct {
		sport, dport uint16
		want         string
	}{{5000, 9999, "outbound"}, {5001, 80, "web"}, {5001, 9998, "outbound"}} {
		if got := ruleOf(c.sport, c.dport); got != c.want {
			t.Errorf("flow %d -> %d: rule %q, want %q", c.sport, c.dport, got, c.want)
		}
	}
	if got := tp.e.FlowRuleName(0); got != "default" {
		t.Errorf("FlowRuleName(0) = %q", got)
	}
	if got := tp.e.FlowRuleName(77<<16 | 3); got != "rules[2] (rule set 77)" {
		t.Errorf("a forgotten rule set: %q", got)
	}
}
