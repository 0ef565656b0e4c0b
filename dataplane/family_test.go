package dataplane

import (
	"net/netip"
	"testing"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/snat"
)

// pipeFamily is one address family's addressing of the test pipeline, for
// the golden tests that run once per family (forEachPipeFamily): edge
// forwards, tracks and translates IPv4 and IPv6 alike, and a difference
// between the two runs is a bug.
type pipeFamily struct {
	name                         string
	client, server, snat, edgeIn netip.Addr
	server2                      netip.Addr // another known neighbour outside
	far                          netip.Addr // routed through a gateway whose neighbour is unknown
	unrouted                     netip.Addr // no route
	multicast, linkLocal         netip.Addr
	otherClient, otherServer     netip.Addr // of the other family (no SNAT address for it)
	icmp                         uint8      // header.ProtoICMP or ProtoICMPv6
	echoRequest, echoReply       uint8
	unreachable                  uint8 // destination unreachable's type, and its codes:
	portUnreachable              uint8
	adminProhibited              uint8
	tooBig                       icmp.Kind // what a packet over the MTU is answered with
	etherType                    uint16
	ipHeaderLen                  int
	// icmpError is the frame edge must send back to the client on the
	// inside port: an ICMP error of kind k (mtu for too big) from the
	// inside interface's address about the packet offending.
	icmpError func(k icmp.Kind, mtu uint32, offending []byte) []byte
	// newPipeline is the test pipeline with this family's addresses on
	// both ports (and none of the other family's), its routes and
	// neighbours, SNAT automap to snat.
	newPipeline func(t testing.TB, rules firewall.RuleSet) *testPipeline
}

var (
	ip6Far      = netip.MustParseAddr("2001:db8:ff::7") // routed via ip6Gateway, neighbour unknown
	ip6Gateway  = netip.MustParseAddr("2001:db8::9")
	ip6Unrouted = netip.MustParseAddr("3fff::1")
)

var pipeFamilies = []pipeFamily{
	{name: "ipv4", client: ipClient, server: ipServer, snat: ipSNAT, edgeIn: ipEdgeIn,
		server2: netip.MustParseAddr("203.0.113.3"), far: ipFar, unrouted: netip.MustParseAddr("192.0.2.1"),
		multicast: netip.MustParseAddr("224.0.0.251"), linkLocal: netip.MustParseAddr("169.254.1.1"),
		otherClient: ip6Client, otherServer: ip6Server,
		icmp: header.ProtoICMP, echoRequest: header.ICMPv4EchoRequest, echoReply: header.ICMPv4EchoReply,
		unreachable: header.ICMPv4DestUnreachable, portUnreachable: 3, adminProhibited: 13, tooBig: icmp.FragNeeded,
		etherType: header.EtherTypeIPv4, ipHeaderLen: header.IPv4MinLen, icmpError: icmp4Error,
		newPipeline: func(t testing.TB, rules firewall.RuleSet) *testPipeline {
			return newTestPipeline(t, rules, 1024)
		}},
	{name: "ipv6", client: ip6Client, server: ip6Server, snat: ip6SNAT, edgeIn: ip6EdgeIn,
		server2: netip.MustParseAddr("2001:db8::3"), far: ip6Far, unrouted: ip6Unrouted,
		multicast: netip.MustParseAddr("ff02::fb"), linkLocal: netip.MustParseAddr("fe80::1"),
		otherClient: ipClient, otherServer: ipServer,
		icmp: header.ProtoICMPv6, echoRequest: header.ICMPv6EchoRequest, echoReply: header.ICMPv6EchoReply,
		unreachable: header.ICMPv6DestUnreachable, portUnreachable: 4, adminProhibited: 1, tooBig: icmp.PacketTooBig,
		etherType: header.EtherTypeIPv6, ipHeaderLen: header.IPv6Len,
		icmpError: func(k icmp.Kind, mtu uint32, offending []byte) []byte {
			typ := map[icmp.Kind]uint8{icmp.TimeExceeded: header.ICMPv6TimeExceeded, icmp.PacketTooBig: header.ICMPv6PacketTooBig}[k]
			return icmp6Error(typ, mtu, offending)
		},
		newPipeline: newIPv6OnlyPipeline},
}

// icmp4Error is the IPv4 frame edge must send back to the client on the
// inside port: an ICMP error of kind k from the inside interface's address
// about the packet offending, as package icmp builds it (its own golden
// tests check it against RFC 792 and RFC 1812).
func icmp4Error(k icmp.Kind, mtu uint32, offending []byte) []byte {
	want := make([]byte, 2048)
	n, br := icmp.Build(want[header.EthernetLen:], k, ipEdgeIn.As16(), offending, mtu)
	if br != drop.None {
		panic(br.String())
	}
	want = want[:header.EthernetLen+n]
	header.Ethernet(want).SetDst(macClient)
	header.Ethernet(want).SetSrc(macEdgeIn)
	header.Ethernet(want).SetEtherType(header.EtherTypeIPv4)
	return want
}

// forEachPipeFamily runs f as a subtest per family.
func forEachPipeFamily(t *testing.T, f func(t *testing.T, fam pipeFamily)) {
	t.Helper()
	for _, fam := range pipeFamilies {
		t.Run(fam.name, func(t *testing.T) { f(t, fam) })
	}
}

// newIPv6OnlyPipeline is newTestPipeline's IPv6 twin: inside fd00::/64
// (edge fd00::1), outside 2001:db8::/32 (edge and SNAT automap 2001:db8::1),
// 2001:db8:ff::/48 through a gateway whose neighbour is unknown, and no
// IPv4 address on either port, as newTestPipeline has no IPv6 one.
func newIPv6OnlyPipeline(t testing.TB, rules firewall.RuleSet) *testPipeline {
	tp := newTestPipeline(t, rules, 1024)
	nat, err := snat.New(snat.Config{Mode: snat.Automap, Automap: ip6SNAT}, tp.e.table)
	if err != nil {
		t.Fatal(err)
	}
	tp.e.nat, tp.w.nat = nat, nat.Allocator(0)
	rt, err := NewRoutes(append([]Route{
		{Dst: netip.MustParsePrefix("2001:db8:ff::/48"), Via: ip6Gateway, Port: 1},
	}, testRoutes...), 2)
	if err != nil {
		t.Fatal(err)
	}
	tp.e.routes.Store(rt)
	tp.e.neigh.store(map[neighKey][6]byte{
		{1, ip6Client.As16()}: macClient,
		{2, ip6Server.As16()}: macServer,
	})
	tp.w.ports[0].addr4, tp.w.ports[0].addr6 = [16]byte{}, ip6EdgeIn.As16()
	tp.w.ports[1].addr4, tp.w.ports[1].addr6 = [16]byte{}, ip6SNAT.As16()
	return tp
}
