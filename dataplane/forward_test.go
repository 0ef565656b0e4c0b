package dataplane

import (
	"net/netip"
	"testing"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/header/headertest"
)

// Golden packets for two forwarding rules the other golden tests left
// open (each killed a named mutant in scripts/mutants/mutants.txt).

// A flow opened from the outside (a published service) is forwarded
// untranslated both ways: SNAT is for flows from the inside
// (dataplane/snat-inside-only).
func TestPipelineInboundNotTranslated(t *testing.T) {
	rules := firewall.RuleSet{Default: firewall.Drop, Rules: []firewall.Rule{
		{Name: "outbound", Zone: firewall.Inside, Action: firewall.Allow},
		{Name: "published", Zone: firewall.Outside, Dst: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}, Action: firewall.Allow},
	}}
	tp := newTestPipeline(t, rules, 1024)
	in := udpSpec(ipServer, ipClient, 4444)
	fwd := in
	fwd.TTL = 63
	reply := udpSpec(ipClient, ipServer, 53)
	reply.DstPort = 4444
	back := reply
	back.TTL = 63
	runRouterCases(t, tp, []routerCase{
		{name: "inbound to a published host: forwarded as it came", in: 1, frame: eth(in, macServer, macEdgeOut),
			port: 0, want: eth(fwd, macEdgeIn, macClient)},
		{name: "its answer: forwarded as it came, from the host's own address", in: 0, frame: eth(reply, macClient, macEdgeIn),
			port: 1, want: eth(back, macEdgeOut, macServer)},
	})
}

// Loopback addresses are never routed (RFC 1812 5.3.7), from either side
// and in either field (dataplane/loopback-forwardable).
func TestPipelineLoopbackNotForwarded(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	lo := netip.MustParseAddr("127.0.0.1")
	spec := func(src, dst netip.Addr) headertest.Spec { return udpSpec(src, dst, 5000) }
	runRouterCases(t, tp, []routerCase{
		{name: "to 127.0.0.1 from the inside", in: 0, frame: eth(spec(ipClient, lo), macClient, macEdgeIn), reason: drop.NotForwardable},
		{name: "to 127.0.0.1 from the outside", in: 1, frame: eth(spec(ipServer, lo), macServer, macEdgeOut), reason: drop.NotForwardable},
		{name: "from 127.0.0.1 on the outside", in: 1, frame: eth(spec(lo, ipSNAT), macServer, macEdgeOut), reason: drop.NotForwardable},
	})
	if n := tp.w.shard.Len(); n != 0 {
		t.Errorf("%d flows created by loopback packets", n)
	}
}
