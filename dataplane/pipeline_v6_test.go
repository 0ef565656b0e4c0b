package dataplane

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/snat"
)

// IPv6 golden packets through the worker pipeline: forwarding (hop limit,
// NAT66 both ways) and the two ICMPv6 errors a router owes (RFC 4443 3.2,
// 3.3). Expected frames are built with headertest, not with the code under
// test, and every frame that leaves is checked with gopacket too.

var (
	ip6Client = netip.MustParseAddr("fd00::2")
	ip6EdgeIn = netip.MustParseAddr("fd00::1")
	ip6Server = netip.MustParseAddr("2001:db8::2")
	ip6SNAT   = netip.MustParseAddr("2001:db8::1")
)

// newTestPipeline6 is newTestPipeline with IPv6 on both ports: inside
// fd00::/64 (edge fd00::1), outside 2001:db8::/32, SNAT to 203.0.113.1 and
// 2001:db8::1 (a flow takes the address of its own family).
func newTestPipeline6(t *testing.T) *testPipeline {
	tp := newTestPipeline(t, allowOutbound, 1024)
	nat, err := snat.New(snat.Config{Mode: snat.Pools, Pools: []snat.Pool{{Name: "out", Addrs: []netip.Addr{ipSNAT, ip6SNAT}}}}, tp.e.table)
	if err != nil {
		t.Fatal(err)
	}
	tp.e.nat, tp.w.nat = nat, nat.Allocator(0)
	rt, err := NewRoutes(append([]Route{{Dst: netip.MustParsePrefix("fd00::/64"), Port: 0}}, testRoutes...), 2)
	if err != nil {
		t.Fatal(err)
	}
	tp.e.routes.Store(rt)
	tp.e.neigh.store(map[neighKey][6]byte{
		{1, ipClient.As16()}:  macClient,
		{2, ipServer.As16()}:  macServer,
		{1, ip6Client.As16()}: macClient,
		{2, ip6Server.As16()}: macServer,
	})
	tp.w.ports[0].addr6 = ip6EdgeIn.As16()
	tp.w.ports[1].addr6 = ip6SNAT.As16()
	return tp
}

// checkGopacket decodes frame with gopacket, re-serializes its layers with
// gopacket's own checksums and lengths, and fails t unless the bytes are
// the same: every checksum and length edge wrote is verified by code that
// is not edge's.
func checkGopacket(t *testing.T, name string, frame []byte) {
	t.Helper()
	// Application layers (DNS on port 53...) may fail to decode: only
	// Ethernet, IP and the transport header matter here.
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	var net gopacket.SerializableLayer
	var netLayer gopacket.NetworkLayer
	switch l := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		net, netLayer = l, l
	case *layers.IPv6:
		net, netLayer = l, l
	default:
		t.Errorf("%s: no IP layer", name)
		return
	}
	var l4 gopacket.SerializableLayer
	var rest []byte
	for _, l := range pkt.Layers() {
		switch x := l.(type) {
		case *layers.TCP:
			x.SetNetworkLayerForChecksum(netLayer)
			l4, rest = x, x.LayerPayload()
		case *layers.UDP:
			x.SetNetworkLayerForChecksum(netLayer)
			l4, rest = x, x.LayerPayload()
		case *layers.ICMPv4:
			l4, rest = x, x.LayerPayload()
		case *layers.ICMPv6:
			x.SetNetworkLayerForChecksum(netLayer)
			l4, rest = x, x.LayerPayload()
		}
		if l4 != nil {
			break
		}
	}
	if l4 == nil {
		t.Errorf("%s: no transport layer gopacket knows (%v)", name, pkt.ErrorLayer())
		return
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, net, l4, gopacket.Payload(rest)); err != nil {
		t.Errorf("%s: gopacket serialize: %v", name, err)
		return
	}
	// gopacket pads Ethernet frames to 60 bytes; the wire (the NIC) does too.
	got := buf.Bytes()
	if len(got) > len(frame) && len(got) == 60 && !bytes.ContainsFunc(got[len(frame):], func(r rune) bool { return r != 0 }) {
		got = got[:len(frame)]
	}
	if !bytes.Equal(got, frame) {
		t.Errorf("%s: gopacket disagrees with edge's checksums or lengths\nedge     %x\ngopacket %x", name, frame, got)
	}
}

// mustLookup returns the flow with original key k.
func mustLookup(t *testing.T, tp *testPipeline, k conntrack.Key) conntrack.Ref {
	t.Helper()
	r, _, ok := tp.w.shard.Lookup(&k, tp.now)
	if !ok {
		t.Fatalf("no flow for %v", k)
	}
	return r
}

// icmp6Error is the frame edge should send back to the client on the
// inside port: an ICMPv6 error of type typ (second word mtu) from the
// inside interface's address, hop limit icmp.TTL, quoting as much of the
// offending IPv6 packet as fits in 1280 bytes (RFC 4443 2.4(c)).
func icmp6Error(typ uint8, mtu uint32, offending []byte) []byte {
	q := offending[:min(len(offending), icmp.MaxLen6-header.IPv6Len-header.ICMPv6MinLen)]
	return eth(headertest.Spec{Src: ip6EdgeIn, Dst: ip6Client, Proto: header.ProtoICMPv6, ICMPType: typ, MTU: mtu,
		Quote: q, TTL: icmp.TTL}, macEdgeIn, macClient)
}

// snat automap on a dual-stack outside interface (Automap and Automap6):
// an IPv6 flow takes the IPv6 address. With an IPv4 address alone, an IPv6
// flow is refused (snat_no_address) and its sender told so with ICMPv6
// administratively prohibited, not left to retry into silence.
func TestPipelineAutomapDualStack(t *testing.T) {
	for _, dual := range []bool{true, false} {
		tp := newTestPipeline6(t)
		cfg := snat.Config{Mode: snat.Automap, Automap: ipSNAT}
		if dual {
			cfg.Automap6 = ip6SNAT
		}
		nat, err := snat.New(cfg, tp.e.table)
		if err != nil {
			t.Fatal(err)
		}
		tp.e.nat, tp.w.nat = nat, nat.Allocator(0)
		in := headertest.Spec{Src: ip6Client, Dst: ip6Server, Proto: header.ProtoUDP, SrcPort: 5000, DstPort: 53, Payload: []byte("q")}
		out, r := tp.send(0, eth(in, macClient, macEdgeIn))
		if dual {
			if out == nil || out.port != 1 {
				t.Fatalf("dual stack: IPv6 flow not forwarded: %v", r)
			}
			if src := netip.AddrFrom16([16]byte(out.frame[header.EthernetLen+8 : header.EthernetLen+24])); src != ip6SNAT {
				t.Fatalf("dual stack: IPv6 flow translated to %v, want %v", src, ip6SNAT)
			}
			continue
		}
		if out == nil || out.port != 0 || r != drop.SNATNoAddress {
			t.Fatalf("IPv4-only automap: out %v, %v; want snat_no_address and an ICMPv6 error back inside", out != nil, r)
		}
		ip := out.frame[header.EthernetLen:]
		if ip[0]>>4 != 6 || ip[6] != header.ProtoICMPv6 || ip[header.IPv6Len] != 1 || ip[header.IPv6Len+1] != 1 {
			t.Fatalf("want ICMPv6 destination unreachable, administratively prohibited (1/1): %x", ip[:header.IPv6Len+2])
		}
		checkGopacket(t, "admin prohibited", out.frame)
	}
}

// snat no_address: forward: with an IPv4-only automap, an IPv6 flow leaves
// untranslated (hop limit one lower, nothing else changed), its answer
// comes back to the client untranslated, the flow is counted
// (untranslated) and tracked: an unsolicited packet from the outside toward
// the client is still refused by the firewall.
func TestPipelineNoAddressForward(t *testing.T) {
	tp := newTestPipeline6(t)
	nat, err := snat.New(snat.Config{Mode: snat.Automap, Automap: ipSNAT, NoAddress: snat.NoAddressForward}, tp.e.table)
	if err != nil {
		t.Fatal(err)
	}
	tp.e.nat, tp.w.nat = nat, nat.Allocator(0)
	udp := func(src, dst netip.Addr, sport, dport uint16, ttl uint8, data string) headertest.Spec {
		return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoUDP, SrcPort: sport, DstPort: dport, TTL: ttl, Payload: []byte(data)}
	}
	runRouterCases(t, tp, []routerCase{
		{name: "IPv6 flow without an IPv6 SNAT address: forwarded untranslated", in: 0,
			frame: eth(udp(ip6Client, ip6Server, 5000, 53, 64, "q"), macClient, macEdgeIn), port: 1,
			want: eth(udp(ip6Client, ip6Server, 5000, 53, 63, "q"), macEdgeOut, macServer)},
		{name: "its answer, to the client's own address", in: 1,
			frame: eth(udp(ip6Server, ip6Client, 53, 5000, 64, "a"), macServer, macEdgeOut), port: 0,
			want: eth(udp(ip6Server, ip6Client, 53, 5000, 63, "a"), macEdgeIn, macClient)},
		{name: "unsolicited from the outside to the client: the firewall refuses it", in: 1,
			frame: eth(udp(ip6Server, ip6Client, 53, 5001, 64, "x"), macServer, macEdgeOut), reason: drop.FirewallDrop},
	})
	if n := nat.Stats().Counters[snat.CtrUntranslated]; n != 1 {
		t.Fatalf("untranslated %d, want 1", n)
	}
	if n := tp.w.ctr.drops[drop.SNATNoAddress].Load(); n != 0 {
		t.Fatalf("snat_no_address counted %d times with no_address: forward", n)
	}
	checkGopacket(t, "untranslated", eth(udp(ip6Client, ip6Server, 5000, 53, 63, "q"), macEdgeOut, macServer))
}

// Routing headers through the pipeline: type 0 with segments left is
// dropped in both directions (RFC 5095; counted ipv6_routing_type0, no
// ICMPv6 error); type 0 with none left, and other types whatever their
// segments left (RFC 8200 4.4: processed by the destination only), are
// forwarded with NAT66 like any packet, the Routing header untouched.
func TestPipelineRoutingHeaders(t *testing.T) {
	tp := newTestPipeline6(t)
	// withRouting is the UDP datagram of u (its checksum over u's
	// addresses) behind a Routing header of type typ, segsLeft segments
	// left and one address.
	withRouting := func(u headertest.Spec, typ, segsLeft uint8) headertest.Spec {
		l4 := headertest.Build(u)[header.IPv6Len:]
		rh := make([]byte, 24)
		rh[0], rh[1], rh[2], rh[3] = header.ProtoUDP, 2, typ, segsLeft
		copy(rh[8:], ip6Server.AsSlice())
		return headertest.Spec{Src: u.Src, Dst: u.Dst, Proto: header.ProtoRouting, TTL: u.TTL, Payload: append(rh, l4...)}
	}
	udp := func(src, dst netip.Addr, sport, dport uint16, ttl uint8) headertest.Spec {
		return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoUDP, SrcPort: sport, DstPort: dport, TTL: ttl, Payload: []byte("rh")}
	}
	for i, tc := range []struct {
		name          string
		typ, segsLeft uint8
		wantForwarded bool
	}{
		{"type 0, segments left 0", 0, 0, true},
		{"type 0, segments left 1", 0, 1, false},
		{"type 4 (segment routing), segments left 2", 4, 2, true},
		{"type 2 (mobile IPv6), segments left 1", 2, 1, true},
	} {
		sport := uint16(7000 + i)
		out, r := tp.send(0, eth(withRouting(udp(ip6Client, ip6Server, sport, 53, 64), tc.typ, tc.segsLeft), macClient, macEdgeIn))
		if !tc.wantForwarded {
			if out != nil || r != drop.RoutingType0 {
				t.Errorf("%s: out %v, %v; want dropped ipv6_routing_type0", tc.name, out != nil, r)
			}
			continue
		}
		if out == nil {
			t.Errorf("%s: dropped (%v)", tc.name, r)
			continue
		}
		port := tp.natPort(conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ip6Client, sport), netip.AddrPortFrom(ip6Server, 53)))
		want := eth(withRouting(udp(ip6SNAT, ip6Server, port, 53, 63), tc.typ, tc.segsLeft), macEdgeOut, macServer)
		if out.port != 1 || !bytes.Equal(out.frame, want) {
			t.Errorf("%s: port %d\n got %x\nwant %x", tc.name, out.port, out.frame, want)
		}
	}
	// From the outside too: refused before any state is looked up.
	if out, r := tp.send(1, eth(withRouting(udp(ip6Server, ip6SNAT, 53, 7000, 64), 0, 1), macServer, macEdgeOut)); out != nil || r != drop.RoutingType0 {
		t.Errorf("inbound type 0: out %v, %v; want dropped ipv6_routing_type0", out != nil, r)
	}
	if n := tp.w.ctr.drops[drop.RoutingType0].Load(); n != 2 {
		t.Errorf("ipv6_routing_type0 counted %d, want 2", n)
	}
}
