package ctl

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/frag"
	"github.com/edgegw/edge/snat"
)

// wantInvalid checks that err is INVALID_ARGUMENT with a message starting
// with msg.
func wantInvalid(t *testing.T, err error, msg string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Fatalf("error %v, want INVALID_ARGUMENT %q", err, msg)
	}
	if !strings.HasPrefix(st.Message(), msg) {
		t.Fatalf("message %q, want it to start with %q", st.Message(), msg)
	}
}

func TestFilterFromPB(t *testing.T) {
	v4 := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	ok := []struct {
		in   *edgepb.FlowFilter
		want conntrack.Filter
	}{
		{nil, conntrack.Filter{}},
		{&edgepb.FlowFilter{}, conntrack.Filter{}},
		{&edgepb.FlowFilter{Address: "10.0.0.2"}, conntrack.Filter{Prefix: v4("10.0.0.2/32")}},
		{&edgepb.FlowFilter{Address: "10.0.0.7/24"}, conntrack.Filter{Prefix: v4("10.0.0.0/24")}},
		{&edgepb.FlowFilter{Address: "::ffff:10.0.0.2"}, conntrack.Filter{Prefix: v4("10.0.0.2/32")}},
		{&edgepb.FlowFilter{Address: "::ffff:10.0.0.0/104"}, conntrack.Filter{Prefix: v4("10.0.0.0/8")}},
		{&edgepb.FlowFilter{Address: "2001:db8::/32"}, conntrack.Filter{Prefix: v4("2001:db8::/32")}},
		{&edgepb.FlowFilter{Address: "0.0.0.0/0"}, conntrack.Filter{Prefix: v4("0.0.0.0/0")}},
		{&edgepb.FlowFilter{Port: 443}, conntrack.Filter{Port: 443}},
		{&edgepb.FlowFilter{Port: 65535}, conntrack.Filter{Port: 65535}},
		{&edgepb.FlowFilter{Protocol: "tcp"}, conntrack.Filter{Proto: 6}},
		{&edgepb.FlowFilter{Protocol: "UDP"}, conntrack.Filter{Proto: 17}},
		{&edgepb.FlowFilter{Protocol: "icmpv6"}, conntrack.Filter{Proto: 58}},
		{&edgepb.FlowFilter{Protocol: "132"}, conntrack.Filter{Proto: 132}},
		{&edgepb.FlowFilter{State: "established"}, conntrack.Filter{State: conntrack.TCPEstablished}},
		{&edgepb.FlowFilter{State: "TIME_WAIT"}, conntrack.Filter{State: conntrack.TCPTimeWait}},
		{&edgepb.FlowFilter{State: "udp_multiple"}, conntrack.Filter{State: conntrack.UDPMultiple}},
		{&edgepb.FlowFilter{Zone: 255}, conntrack.Filter{Zone: 255}},
		{&edgepb.FlowFilter{Address: "192.0.2.0/24", Port: 80, Protocol: "tcp", State: "syn_sent", Zone: 2},
			conntrack.Filter{Prefix: v4("192.0.2.0/24"), Port: 80, Proto: 6, State: conntrack.TCPSynSent, Zone: 2}},
	}
	for _, c := range ok {
		got, err := filterFromPB("filter", c.in)
		if err != nil {
			t.Errorf("%v: %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("%v: got %+v, want %+v", c.in, got, c.want)
		}
	}
	bad := []struct {
		in  *edgepb.FlowFilter
		msg string
	}{
		{&edgepb.FlowFilter{Address: "10.0.0.0/33"}, `filter.address: "10.0.0.0/33" is not an address or prefix`},
		{&edgepb.FlowFilter{Address: "10.0.0"}, `filter.address: "10.0.0" is not an address or prefix`},
		{&edgepb.FlowFilter{Address: "fe80::1%eth0"}, `filter.address: "fe80::1%eth0" is not an address or prefix`},
		{&edgepb.FlowFilter{Address: "host.example"}, `filter.address: "host.example" is not an address or prefix`},
		{&edgepb.FlowFilter{Address: "::ffff:0:0/64"}, `filter.address: "::ffff:0:0/64" mixes IPv4-mapped and IPv6`},
		{&edgepb.FlowFilter{Port: 65536}, `filter.port: 65536 is out of range`},
		{&edgepb.FlowFilter{Protocol: "sctp"}, `filter.protocol: "sctp" is not a protocol (tcp, udp, icmp, icmpv6 or a number 1-255)`},
		{&edgepb.FlowFilter{Protocol: "256"}, `filter.protocol: "256" is not a protocol`},
		{&edgepb.FlowFilter{Protocol: "0"}, `filter.protocol: "0" is not a protocol`},
		{&edgepb.FlowFilter{Protocol: "-6"}, `filter.protocol: "-6" is not a protocol`},
		{&edgepb.FlowFilter{State: "open"}, `filter.state: "open" is not a flow state (syn_sent, syn_sent2, syn_recv, established,`},
		{&edgepb.FlowFilter{State: "none"}, `filter.state: "none" is not a flow state`},
		{&edgepb.FlowFilter{Zone: 256}, `filter.zone: 256 is out of range`},
	}
	for _, c := range bad {
		_, err := filterFromPB("filter", c.in)
		wantInvalid(t, err, c.msg)
	}
}

func TestFilterToPB(t *testing.T) {
	f := conntrack.Filter{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Port: 80, Proto: 6, State: conntrack.TCPEstablished, Zone: 3}
	want := &edgepb.FlowFilter{Address: "10.0.0.0/8", Port: 80, Protocol: "tcp", State: "established", Zone: 3}
	if got := filterToPB(f); !proto.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := filterToPB(conntrack.Filter{Prefix: netip.MustParsePrefix("2001:db8::1/128")}); got.Address != "2001:db8::1" {
		t.Fatalf("single address: %q", got.Address)
	}
}

func TestKeyFromPB(t *testing.T) {
	k := func(proto uint8, src, dst string, zone uint8) conntrack.Key {
		k := conntrack.MakeKey(proto, netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst))
		k.Zone = zone
		return k
	}
	ok := []struct {
		in   *edgepb.Tuple
		want conntrack.Key
	}{
		{&edgepb.Tuple{Protocol: "tcp", Src: "10.0.0.2", SrcPort: 40000, Dst: "203.0.113.5", DstPort: 80},
			k(6, "10.0.0.2:40000", "203.0.113.5:80", 0)},
		{&edgepb.Tuple{Protocol: "udp", Src: "::ffff:10.0.0.2", SrcPort: 53, Dst: "10.0.0.1", DstPort: 53, Zone: 4},
			k(17, "10.0.0.2:53", "10.0.0.1:53", 4)},
		{&edgepb.Tuple{Protocol: "icmp", Src: "10.0.0.2", SrcPort: 77, Dst: "10.0.0.1"},
			k(1, "10.0.0.2:77", "10.0.0.1:0", 0)},
		{&edgepb.Tuple{Protocol: "icmpv6", Src: "2001:db8::1", Dst: "2001:db8::2", DstPort: 9},
			k(58, "[2001:db8::1]:0", "[2001:db8::2]:9", 0)},
		{&edgepb.Tuple{Protocol: "47", Src: "10.0.0.2", Dst: "10.0.0.1"}, k(47, "10.0.0.2:0", "10.0.0.1:0", 0)},
	}
	for _, c := range ok {
		got, err := keyFromPB("tuple", c.in)
		if err != nil {
			t.Errorf("%v: %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("%v: got %v, want %v", c.in, got, c.want)
		}
	}
	good := edgepb.Tuple{Protocol: "tcp", Src: "10.0.0.2", SrcPort: 1, Dst: "10.0.0.1", DstPort: 2}
	with := func(f func(*edgepb.Tuple)) *edgepb.Tuple { t := proto.Clone(&good).(*edgepb.Tuple); f(t); return t }
	bad := []struct {
		in  *edgepb.Tuple
		msg string
	}{
		{nil, "tuple: required"},
		{with(func(t *edgepb.Tuple) { t.Protocol = "" }), "tuple.protocol: required"},
		{with(func(t *edgepb.Tuple) { t.Protocol = "gre" }), `tuple.protocol: "gre" is not a protocol`},
		{with(func(t *edgepb.Tuple) { t.Src = "" }), "tuple.src: required"},
		{with(func(t *edgepb.Tuple) { t.Src = "10.0.0.0/8" }), `tuple.src: "10.0.0.0/8" is not an IP address`},
		{with(func(t *edgepb.Tuple) { t.Dst = "x" }), `tuple.dst: "x" is not an IP address`},
		{with(func(t *edgepb.Tuple) { t.Dst = "2001:db8::1" }), "tuple: src 10.0.0.2 and dst 2001:db8::1 are of different address families"},
		{with(func(t *edgepb.Tuple) { t.SrcPort = 65536 }), "tuple.src_port: 65536 is out of range (0-65535)"},
		{with(func(t *edgepb.Tuple) { t.DstPort = 1 << 20 }), "tuple.dst_port: 1048576 is out of range (0-65535)"},
		{with(func(t *edgepb.Tuple) { t.Zone = 256 }), "tuple.zone: 256 is out of range (0-255)"},
		{with(func(t *edgepb.Tuple) { t.Protocol = "icmpv6" }), "tuple.protocol: icmpv6 with IPv4 addresses (use icmp)"},
		{&edgepb.Tuple{Protocol: "icmp", Src: "::1", Dst: "::2"}, "tuple.protocol: icmp with IPv6 addresses (use icmpv6)"},
	}
	for _, c := range bad {
		_, err := keyFromPB("tuple", c.in)
		wantInvalid(t, err, c.msg)
	}
}

func TestEventFilter(t *testing.T) {
	_, err := eventFilterFromPB("filter", &edgepb.EventFilter{Kinds: []string{"opened", "bogus"}})
	wantInvalid(t, err, `filter.kinds[1]: "bogus" is not an event kind (opened, reopened,`)
	_, err = eventFilterFromPB("filter", &edgepb.EventFilter{Kinds: []string{"none"}})
	wantInvalid(t, err, `filter.kinds[0]: "none" is not an event kind`)
	_, err = eventFilterFromPB("filter", &edgepb.EventFilter{Reasons: []string{"no_state", "why"}})
	wantInvalid(t, err, `filter.reasons[1]: "why" is not a drop reason`)
	_, err = eventFilterFromPB("filter", &edgepb.EventFilter{Flow: &edgepb.FlowFilter{Address: "1.2.3.4/40"}})
	wantInvalid(t, err, `filter.flow.address: "1.2.3.4/40" is not an address or prefix`)
	_, err = eventFilterFromPB("filter", &edgepb.EventFilter{Flow: &edgepb.FlowFilter{Port: 70000}})
	wantInvalid(t, err, `filter.flow.port: 70000 is out of range`)
	// State and zone would be silently ignored: refused.
	_, err = eventFilterFromPB("filter", &edgepb.EventFilter{Flow: &edgepb.FlowFilter{State: "established"}})
	wantInvalid(t, err, "filter.flow.state: events cannot be filtered by state")
	_, err = eventFilterFromPB("filter", &edgepb.EventFilter{Flow: &edgepb.FlowFilter{Zone: 2}})
	wantInvalid(t, err, "filter.flow.zone: events cannot be filtered by zone")

	f, err := eventFilterFromPB("filter", &edgepb.EventFilter{
		Kinds:   []string{"dropped", "REFUSED"},
		Reasons: []string{"no_state", "table_full"},
		Flow:    &edgepb.FlowFilter{Address: "10.0.0.0/24", Port: 80, Protocol: "tcp"},
	})
	if err != nil {
		t.Fatal(err)
	}
	key := conntrack.MakeKey(6, netip.MustParseAddrPort("10.0.0.2:40000"), netip.MustParseAddrPort("203.0.113.5:80"))
	ev := Event{Kind: EvDropped, Reason: drop.NoState, Key: key}
	if !f.match(&ev) {
		t.Fatal("matching event refused")
	}
	for name, mod := range map[string]func(*Event){
		"kind":   func(e *Event) { e.Kind = EvOpened },
		"reason": func(e *Event) { e.Reason = drop.NoRoute },
		"none":   func(e *Event) { e.Reason = drop.None },
		"proto":  func(e *Event) { e.Key.Proto = 17 },
		"port":   func(e *Event) { e.Key.DstPort = 81 },
		"addr":   func(e *Event) { e.Key.Src = netip.MustParseAddr("10.9.0.2").As16() },
	} {
		e := ev
		mod(&e)
		if f.match(&e) {
			t.Errorf("%s: mismatching event accepted", name)
		}
	}
	// The translated address and port count as the flow's.
	e := ev
	e.Key.Src = netip.MustParseAddr("192.0.2.1").As16()
	e.NAT = netip.MustParseAddrPort("10.0.0.9:1024")
	if !f.match(&e) {
		t.Error("event matching by its NAT address refused")
	}
	all, _ := eventFilterFromPB("filter", nil)
	if e := (Event{Kind: EvOpened}); !all.match(&e) {
		t.Error("empty filter refused an event")
	}
}

func TestFlowConversion(t *testing.T) {
	fb := newFake()
	c := clock{epoch: fb.epoch, now: fakeNow}
	n := newNames(fb)
	f := flowToPB(&fb.flows[0], c, n)
	want := &edgepb.Flow{
		Original:        &edgepb.Tuple{Protocol: "tcp", Src: "10.0.0.2", SrcPort: 40000, Dst: "203.0.113.5", DstPort: 80},
		Reply:           &edgepb.Tuple{Protocol: "tcp", Src: "203.0.113.5", SrcPort: 80, Dst: "198.51.100.1", DstPort: 1024},
		State:           "established",
		Generation:      2,
		Creator:         "syn",
		NatAddress:      "198.51.100.1",
		NatPort:         1024,
		PacketsOriginal: 5,
		PacketsReply:    4,
		Rule:            "rule1",
		Profile:         "default",
		IsnOriginal:     1000,
		IsnReply:        2000,
	}
	if got := f.Opened.AsTime(); !got.Equal(fb.epoch.Add(time.Hour - 10*time.Second)) {
		t.Errorf("opened %v", got)
	}
	if got := f.ExpiresIn.AsDuration(); got != 300*time.Second {
		t.Errorf("expires_in %v", got)
	}
	if f.Closed != nil || f.CloseReason != "" {
		t.Errorf("live flow closed: %v %q", f.Closed, f.CloseReason)
	}
	f.Opened, f.ExpiresIn = nil, nil
	if !proto.Equal(f, want) {
		t.Errorf("got %v\nwant %v", f, want)
	}
	// An untranslated flow has no NAT address; an expired one expires in 0.
	u := fb.flows[1]
	u.Expires = fakeNow - conntrack.Second
	g := flowToPB(&u, c, n)
	if g.NatAddress != "" || g.NatPort != 0 || g.ExpiresIn.AsDuration() != 0 || g.Creator != "first" || g.State != "udp_multiple" {
		t.Errorf("untranslated flow: %v", g)
	}
	// History: closed time and reason, NAT read off the reply key.
	h := incarnationToPB(&fb.history[fb.flows[0].Orig][0], c, n)
	if h.CloseReason != "superseded" || !h.Closed.AsTime().Equal(fb.epoch.Add(time.Hour-20*time.Second)) ||
		h.NatAddress != "198.51.100.1" || h.NatPort != 1024 || h.ExpiresIn != nil || h.State != "fin_wait" {
		t.Errorf("history entry: %v", h)
	}
	h = incarnationToPB(&fb.history[fb.flows[0].Orig][1], c, n)
	if h.NatAddress != "" || h.Rule != "default" || h.CloseReason != "expired" {
		t.Errorf("untranslated history entry: %v", h)
	}
}

func TestStatsConversion(t *testing.T) {
	fb := newFake()
	r := statsToPB(&fb.stats, 0)
	wantMap := func(name string, got, want map[string]uint64) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
			return
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: got %v, want %v", name, got, want)
			}
		}
	}
	wantMap("drops", r.Drops, map[string]uint64{"no_state": 5, "ttl_exceeded": 2})
	wantMap("conntrack", r.Conntrack, map[string]uint64{"created": 3})
	wantMap("snat", r.Snat, map[string]uint64{"allocated": 1})
	wantMap("icmp_sent", r.IcmpSent, map[string]uint64{"time_exceeded": 2})
	wantMap("worker 0 drops", r.Workers[0].Drops, map[string]uint64{"no_state": 4})
	if r.RstSent != 2 || r.Flows != 3 || r.Capacity != 1024 || r.EventsLost != 7 || len(r.Workers) != 2 ||
		r.Workers[0].RxOutside != 20 || r.Workers[0].TxInside != 19 || r.Workers[0].Created != 3 || r.Workers[0].Handoff != 1 {
		t.Errorf("stats: %v", r)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].XdpRedirected != 11 || r.Interfaces[0].Zone != "inside" {
		t.Errorf("interfaces: %v", r.Interfaces)
	}
	wantMap("worker 0 icmp_sent", r.Workers[0].IcmpSent, map[string]uint64{"time_exceeded": 2})
	wantMap("worker 1 icmp_sent", r.Workers[1].IcmpSent, nil)
	if r.Workers[0].RstSent != 2 || r.Workers[1].RstSent != 0 {
		t.Errorf("workers' rst_sent: %d %d", r.Workers[0].RstSent, r.Workers[1].RstSent)
	}
	if len(r.SnatDestinations) != 0 || r.SnatDestinationsTotal != 0 {
		t.Errorf("destinations not asked for: %v", r.SnatDestinations)
	}
	checkNewStats(t, r)
	r = statsToPB(&fb.stats, 1000)
	want := &edgepb.SNATDestination{Address: "198.51.100.1", Destination: "203.0.113.5", Port: 80, Protocol: "tcp",
		InUse: 1, Free: 64510, Range: 64511, Exhausted: 2}
	if len(r.SnatDestinations) != 1 || !proto.Equal(r.SnatDestinations[0], want) || r.SnatDestinationsTotal != 1 {
		t.Errorf("destinations: %v", r.SnatDestinations)
	}

	// The busiest max destinations, busiest first; the total before.
	s := fb.stats
	s.SNATDestinations = nil
	for i := range 10 {
		s.SNATDestinations = append(s.SNATDestinations, snat.DestStat{Addr: netip.MustParseAddr("198.51.100.1"),
			Dst: netip.AddrPortFrom(netip.MustParseAddr("203.0.113.5"), uint16(i)), Proto: 17, InUse: i, Zone: uint8(i % 2)})
	}
	s.Warnings = []string{"w"}
	r = statsToPB(&s, 3)
	if r.SnatDestinationsTotal != 10 || len(r.SnatDestinations) != 3 || r.SnatDestinations[0].InUse != 9 ||
		r.SnatDestinations[2].InUse != 7 || r.SnatDestinations[0].Zone != 1 || len(r.Warnings) != 1 {
		t.Errorf("busiest 3 of 10: total %d, %v, warnings %v", r.SnatDestinationsTotal, r.SnatDestinations, r.Warnings)
	}
}

// checkNewStats checks the neighbour, fragment and kernel-route counters of
// r, the fake backend's stats as GetStats answers them.
func checkNewStats(t *testing.T, r *edgepb.GetStatsResponse) {
	t.Helper()
	wantNeigh := &edgepb.NeighbourStats{Entries: 21, Kept: 22, Unanswered: 23, KeptTotal: 24, KeptRecovered: 25,
		KeptExpired: 26, KeptFailed: 27, ResolutionsRequested: 28, ResolutionsRefused: 29, ResolutionsGivenUp: 30,
		KernelEntriesDeleted: 31, Held: 32, HeldSent: 33, HeldDropped: 34}
	if !proto.Equal(r.Neighbours, wantNeigh) {
		t.Errorf("neighbours: %v, want %v", r.Neighbours, wantNeigh)
	}
	if r.KernelRoutesRefused != 32 {
		t.Errorf("kernel_routes_refused %d, want 32", r.KernelRoutesRefused)
	}
	// Worker 0, worker 1 and their sum; held_now is held - released - expired_held.
	wantFrags := []*edgepb.FragmentStats{
		{FirstNoted: 41, Followed: 42, Held: 43, Released: 14, ExpiredHeld: 15, Completed: 46, Refused: 47, ExpiredState: 48, HeldNow: 14},
		{FirstNoted: 1, Followed: 2, Held: 3, Released: 1, ExpiredHeld: 1, Completed: 6, Refused: 7, ExpiredState: 8, HeldNow: 1},
		{FirstNoted: 42, Followed: 44, Held: 46, Released: 15, ExpiredHeld: 16, Completed: 52, Refused: 54, ExpiredState: 56, HeldNow: 15},
	}
	if len(r.Workers) != 2 {
		t.Fatalf("%d workers", len(r.Workers))
	}
	for i, got := range []*edgepb.FragmentStats{r.Workers[0].Fragments, r.Workers[1].Fragments, r.Fragments} {
		if !proto.Equal(got, wantFrags[i]) {
			t.Errorf("fragments %d: %v, want %v", i, got, wantFrags[i])
		}
	}
}

// The frames held now, derived from the counters, are never negative: a
// read between two of a worker's stores can see more leave than entered.
func TestFragFramesHeld(t *testing.T) {
	for _, c := range []struct {
		s    frag.Stats
		want uint64
	}{
		{frag.Stats{Held: 5, Released: 2, ExpiredHeld: 1}, 2},
		{frag.Stats{Held: 3, Released: 2, ExpiredHeld: 1}, 0},
		{frag.Stats{Held: 3, Released: 3, ExpiredHeld: 1}, 0},
		{frag.Stats{Held: 1 << 63, Released: 1 << 63, ExpiredHeld: 1 << 63}, 0},
	} {
		if got := fragFramesHeld(&c.s); got != c.want {
			t.Errorf("%+v: %d held, want %d", c.s, got, c.want)
		}
	}
}

func TestStatusConversion(t *testing.T) {
	fb := newFake()
	now := fb.status.Started.Add(90 * time.Second)
	r := statusToPB(&fb.status, now)
	if r.Version != "edge test-1.2.3" || r.Uptime.AsDuration() != 90*time.Second || !r.Started.AsTime().Equal(fb.status.Started) ||
		r.Flows != 3 || r.Capacity != 1024 || r.MemoryBytes != 1024*128 || r.ConfigGeneration != 1 {
		t.Errorf("status: %v", r)
	}
	if len(r.Interfaces) != 1 || r.Interfaces[0].Addresses[0] != "10.0.0.1" || r.Interfaces[0].Mtu != 1500 || r.Interfaces[0].XdpMode != "copy" {
		t.Errorf("interfaces: %v", r.Interfaces)
	}
	if len(r.Workers) != 2 || r.Workers[0].Cpu != -1 || r.Workers[1].Queue != 1 {
		t.Errorf("workers: %v", r.Workers)
	}
	if r.Snat == nil || r.Snat.Mode != "pools" || r.Snat.PortFirst != 1024 || r.Snat.Quarantine.AsDuration() != 4*time.Minute ||
		r.Snat.Pools[0].Addresses[0] != "198.51.100.1" || r.Snat.Pools[0].Ranges[0] != "198.51.100.1-198.51.100.1" {
		t.Errorf("snat: %v", r.Snat)
	}
	fb.status.SNAT = nil
	fb.status.Started = time.Time{}
	if r := statusToPB(&fb.status, now); r.Snat != nil || r.Started != nil || r.Uptime != nil {
		t.Errorf("no SNAT, no start time: %v", r)
	}
	if r.NsxShadow || r.NsxCompat {
		t.Errorf("nsx modes on: %v", r)
	}
	fb.status.NSXShadow = true
	if r := statusToPB(&fb.status, now); !r.NsxShadow || r.NsxCompat {
		t.Errorf("nsx_shadow not reported: %v", r)
	}
}

// Expired events say what edge did to the flow's ends; others say nothing.
func TestEventIdleExpiry(t *testing.T) {
	var c clock
	for _, tc := range []struct {
		ev   Event
		want string
	}{
		{Event{Kind: EvExpired, Expiry: conntrack.IdleReset}, "reset"},
		{Event{Kind: EvExpired}, "silent"},
		{Event{Kind: EvEvicted}, ""},
		{Event{Kind: EvNSXWouldDrop, Reason: drop.NSXSynAckOnClosing}, ""},
	} {
		if got := eventToPB(&tc.ev, c).GetIdleExpiry(); got != tc.want {
			t.Errorf("%v: idle_expiry %q, want %q", tc.ev.Kind, got, tc.want)
		}
	}
	if EvNSXWouldDrop.String() != "nsx_would_drop" {
		t.Errorf("kind name %q", EvNSXWouldDrop)
	}
	// From conntrack's events.
	if e := conntrackEvent(nil, &conntrack.Event{Kind: conntrack.EvNSXWouldDrop, State: conntrack.TCPSynRecv}); e.Kind != EvNSXWouldDrop {
		t.Errorf("conntrack nsx_would_drop became %v", e.Kind)
	}
	if e := conntrackEvent(nil, &conntrack.Event{Kind: conntrack.EvExpired, Expiry: conntrack.IdleReset}); e.Kind != EvExpired || e.Expiry != conntrack.IdleReset {
		t.Errorf("conntrack expired with reset became %v %v", e.Kind, e.Expiry)
	}
}

func FuzzFlowFilter(f *testing.F) {
	f.Add("10.0.0.0/8", uint32(80), "tcp", "established", uint32(1))
	f.Add("", uint32(0), "", "", uint32(0))
	f.Add("::ffff:1.2.3.4/120", uint32(70000), "UDP", "TIME_WAIT", uint32(300))
	f.Add("2001:db8::1", uint32(65535), "58", "none", uint32(255))
	f.Add("fe80::1%eth0/64", uint32(1), "0", "syn_sent2", uint32(0))
	f.Fuzz(func(t *testing.T, addr string, port uint32, protocol, state string, zone uint32) {
		in := &edgepb.FlowFilter{Address: addr, Port: port, Protocol: protocol, State: state, Zone: zone}
		got, err := filterFromPB("filter", in)
		if err != nil {
			if st, ok := status.FromError(err); !ok || st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "filter.") {
				t.Fatalf("%v: error %v", in, err)
			}
			return
		}
		// Accepted filters round-trip.
		back, err := filterFromPB("filter", filterToPB(got))
		if err != nil {
			t.Fatalf("%v -> %+v -> %v: %v", in, got, filterToPB(got), err)
		}
		if back != got {
			t.Fatalf("%v: %+v round-trips to %+v", in, got, back)
		}
		if got.Prefix.IsValid() && (got.Prefix != got.Prefix.Masked() || got.Prefix.Addr().Is4In6()) {
			t.Fatalf("%v: prefix %v not canonical", in, got.Prefix)
		}
	})
}

func FuzzTuple(f *testing.F) {
	f.Add("tcp", "10.0.0.2", uint32(40000), "203.0.113.5", uint32(80), uint32(0))
	f.Add("icmpv6", "2001:db8::1", uint32(0), "2001:db8::2", uint32(7), uint32(3))
	f.Add("icmp", "::ffff:10.0.0.1", uint32(1), "10.0.0.2", uint32(0), uint32(256))
	f.Add("255", "1.2.3.4", uint32(1<<16), "::1", uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, protocol, src string, sport uint32, dst string, dport, zone uint32) {
		in := &edgepb.Tuple{Protocol: protocol, Src: src, SrcPort: sport, Dst: dst, DstPort: dport, Zone: zone}
		k, err := keyFromPB("tuple", in)
		if err != nil {
			if st, ok := status.FromError(err); !ok || st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "tuple") {
				t.Fatalf("%v: error %v", in, err)
			}
			return
		}
		back, err := keyFromPB("tuple", tupleToPB(&k))
		if err != nil || back != k {
			t.Fatalf("%v: key %v round-trips to %v, %v", in, k, back, err)
		}
		// The key is the reverse of its reverse's, and converts both ways.
		r := k.Reverse()
		if rb, err := keyFromPB("tuple", tupleToPB(&r)); err != nil || rb != r {
			t.Fatalf("%v: reverse %v round-trips to %v, %v", in, r, rb, err)
		}
	})
}

func TestEventConversion(t *testing.T) {
	c := clock{epoch: time.Unix(1000, 0), now: fakeNow}
	ev := testEvent(EvDropped, drop.NoState, "10.0.0.2:40000", 1)
	ev.Zone = 2
	e := eventToPB(&ev, c)
	if e.Tuple.GetSrc() != "10.0.0.2" || e.Zone != "outside" || e.Reason != "no_state" ||
		!e.Time.AsTime().Equal(time.Unix(1000, 0).Add(time.Duration(ev.Time))) {
		t.Errorf("event: %v", e)
	}
	// A packet that could not be parsed: no tuple; zone 1 is inside, 0 none.
	unparsed := Event{Kind: EvDropped, Reason: drop.NoState, Zone: 1}
	if e := eventToPB(&unparsed, c); e.Tuple != nil || e.Zone != "inside" {
		t.Errorf("unparsed packet's event: %v", e)
	}
	if e := eventToPB(&Event{Kind: EvOpened, Zone: 7}, c); e.Zone != "" || e.Direction != "" {
		t.Errorf("unknown zone and direction: %q %q", e.Zone, e.Direction)
	}
	// A flow's event says which side's packet it was.
	for _, d := range []struct {
		dir  conntrack.Dir
		want string
	}{{conntrack.Original, "original"}, {conntrack.Reply, "reply"}} {
		ev := Event{Kind: EvClosed, State: conntrack.TCPClose, Dir: d.dir, DirKnown: true}
		if e := eventToPB(&ev, c); e.Direction != d.want {
			t.Errorf("direction %v: %q", d.dir, e.Direction)
		}
	}
}

// conntrackEvent passes a flow event's direction on, and none for a packet
// without a flow.
func TestConntrackEventDirection(t *testing.T) {
	tb, err := conntrack.New(conntrack.Config{MaxFlows: 64, Memory: conntrack.MemoryHeap, HistorySize: 1, EventRingSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	if e := conntrackEvent(tb, &conntrack.Event{Kind: conntrack.EvClosed, State: conntrack.TCPClose, Dir: conntrack.Reply}); !e.DirKnown || e.Dir != conntrack.Reply {
		t.Errorf("closed by a reply: %+v", e)
	}
	if e := conntrackEvent(tb, &conntrack.Event{Kind: conntrack.EvDropped, Reason: drop.NoState}); e.DirKnown {
		t.Errorf("a packet without a flow has a direction: %+v", e)
	}
}
