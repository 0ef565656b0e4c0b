package dataplane

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"slices"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/icmp"
)

// Golden packets for the router's checks on what arrives (RFC 1812,
// RFC 3704, RFC 4291, RFC 6946): each case is {description, input frame and
// port, expected verdict (egress port or drop reason), expected output}.

type routerCase struct {
	name   string
	in     int         // ingress port
	frame  []byte      // as received
	reason drop.Reason // expected drop reason; drop.None: forwarded
	port   int         // expected egress port when forwarded
	want   []byte      // expected output frame when forwarded
}

func runRouterCases(t *testing.T, tp *testPipeline, cases []routerCase) {
	t.Helper()
	for _, c := range cases {
		out, r := tp.send(c.in, c.frame)
		switch {
		case c.want == nil && (out != nil || r != c.reason):
			t.Errorf("%s: got output %v reason %v; want drop %v", c.name, out != nil, r, c.reason)
		case c.want != nil && out == nil:
			t.Errorf("%s: dropped (%v)", c.name, r)
		case c.want != nil && (out.port != c.port || !bytes.Equal(out.frame, c.want)):
			t.Errorf("%s: port %d\n got %s\nwant %s", c.name, out.port, hex.EncodeToString(out.frame), hex.EncodeToString(c.want))
		}
	}
}

// edit returns a copy of frame with f applied to its IP packet; fix
// recomputes the IPv4 header checksum afterwards.
func edit(frame []byte, fix bool, f func(ip []byte)) []byte {
	c := append([]byte(nil), frame...)
	ip := c[header.EthernetLen:]
	f(ip)
	if fix && ip[0]>>4 == 4 {
		h := header.IPv4(ip)
		h.SetChecksum(h.CalculateChecksum())
	}
	return c
}

// udpSpec is a UDP datagram to port 53 (a fresh flow per source port).
func udpSpec(src, dst netip.Addr, sport uint16) headertest.Spec {
	return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoUDP, SrcPort: sport, DstPort: 53, Payload: []byte("query")}
}

// An IPv4 header with a wrong checksum is dropped (RFC 1812 5.2.2), not
// forwarded with the wrong checksum incrementally updated; the flow it
// would have opened is not created.
func TestRouterIPv4Checksum(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	good := eth(udpSpec(ipClient, ipServer, 7001), macClient, macEdgeIn)
	bad := edit(good, false, func(ip []byte) { ip[10] ^= 0x40 })
	runRouterCases(t, tp, []routerCase{
		{name: "header checksum off by one bit", in: 0, frame: bad, reason: drop.BadIPChecksum},
		{name: "checksum right but header changed after it (TTL)", in: 0,
			frame: edit(good, false, func(ip []byte) { ip[8] = 200 }), reason: drop.BadIPChecksum},
		{name: "from the outside too", in: 1,
			frame:  edit(eth(udpSpec(ipServer, ipSNAT, 53), macServer, macEdgeOut), false, func(ip []byte) { ip[11]++ }),
			reason: drop.BadIPChecksum},
	})
	if n := tp.w.shard.Len(); n != 0 {
		t.Errorf("%d flows created by packets with a bad checksum", n)
	}
	// The same datagram with its checksum right is forwarded.
	if out, r := tp.send(0, good); out == nil || out.port != 1 {
		t.Fatalf("good checksum: dropped (%v)", r)
	} else if !header.IPv4(out.frame[header.EthernetLen:]).IsChecksumValid() {
		t.Fatalf("forwarded with a wrong checksum: %x", out.frame)
	}
}

// The IP version must be the one the EtherType announces: an IPv4 packet
// in an IPv6 frame was translated and forwarded as IPv4.
func TestRouterEtherTypeMismatch(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	v4 := eth(udpSpec(ipClient, ipServer, 7101), macClient, macEdgeIn)
	v6 := eth(udpSpec(netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::1"), 7102), macServer, macEdgeOut)
	retype := func(f []byte, et uint16) []byte {
		c := append([]byte(nil), f...)
		header.Ethernet(c).SetEtherType(et)
		return c
	}
	runRouterCases(t, tp, []routerCase{
		{name: "IPv4 packet in an IPv6 (0x86dd) frame", in: 0, frame: retype(v4, header.EtherTypeIPv6), reason: drop.EtherTypeMismatch},
		{name: "IPv6 packet in an IPv4 (0x0800) frame", in: 1, frame: retype(v6, header.EtherTypeIPv4), reason: drop.EtherTypeMismatch},
		{name: "IPv4 packet in an ARP frame", in: 0, frame: retype(v4, 0x0806), reason: drop.EtherTypeMismatch},
		{name: "Ethernet header alone: truncated", in: 0, frame: v4[:header.EthernetLen], reason: drop.Truncated},
	})
	if n := tp.w.shard.Len(); n != 0 {
		t.Errorf("%d flows created by mistyped frames", n)
	}
	if out, r := tp.send(0, v4); out == nil || out.port != 1 {
		t.Fatalf("IPv4 in an IPv4 frame: dropped (%v)", r)
	}
}

// An IPv6 packet with an IPv4-mapped address has the flow key of an IPv4
// packet: it opened an IPv4 flow (and took an IPv4 SNAT port), or matched
// one. Mapped and compatible addresses are refused before anything is
// created, in the header and in the packet an ICMPv6 error quotes.
func TestRouterIPv6EmbeddedIPv4(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	m := func(a netip.Addr) netip.Addr { return netip.AddrFrom16(a.As16()) } // ::ffff:a.b.c.d
	v6 := netip.MustParseAddr
	// An IPv4 flow whose reply tuple the last cases aim at.
	if out, r := tp.send(0, eth(udpSpec(ipClient, ipServer, 7201), macClient, macEdgeIn)); out == nil {
		t.Fatalf("IPv4 flow: dropped (%v)", r)
	}
	nat := tp.natPort(conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, 7201), netip.AddrPortFrom(ipServer, 53)))
	flows := tp.w.shard.Len()
	toNAT := headertest.Spec{Src: m(ipServer), Dst: m(ipSNAT), Proto: header.ProtoUDP, SrcPort: 53, DstPort: nat, Payload: []byte("answer")}
	icmpErr := headertest.Spec{Src: v6("2001:db8::9"), Dst: v6("2001:db8::1"), Proto: header.ProtoICMPv6,
		ICMPType: header.ICMPv6DestUnreachable, Quote: headertest.Build(udpSpec(v6("2001:db8::1"), m(ipServer), 7202))}
	runRouterCases(t, tp, []routerCase{
		{name: "IPv6 from inside between IPv4-mapped addresses", in: 0,
			frame: eth(udpSpec(m(ipClient), m(ipServer), 7203), macClient, macEdgeIn), reason: drop.BadIPv6Address},
		{name: "IPv6 from outside to an IPv4-compatible address", in: 1,
			frame: eth(udpSpec(v6("2001:db8::5"), v6("::203.0.113.1"), 53), macServer, macEdgeOut), reason: drop.BadIPv6Address},
		{name: "IPv6 from outside aimed at an IPv4 flow's reply tuple", in: 1,
			frame: eth(toNAT, macServer, macEdgeOut), reason: drop.BadIPv6Address},
		{name: "ICMPv6 error quoting a packet to an IPv4-mapped address", in: 1,
			frame: eth(icmpErr, macServer, macEdgeOut), reason: drop.BadIPv6Address},
	})
	if n := tp.w.shard.Len(); n != flows {
		t.Errorf("%d flows created by IPv6 packets with IPv4 addresses", n-flows)
	}
}

// v6Pipeline is the test pipeline with inside IPv6 host fd00::2 known (on
// testRoutes' fd00::/64) and a rule letting the outside open flows to it (no
// SNAT from the outside).
func v6Pipeline(t *testing.T) *testPipeline {
	rules := firewall.RuleSet{Default: firewall.Drop, Rules: []firewall.Rule{
		{Name: "outbound", Zone: firewall.Inside, Action: firewall.Allow},
		{Name: "to-v6-host", Zone: firewall.Outside, Dst: []netip.Prefix{netip.MustParsePrefix("fd00::2/128")}, Action: firewall.Allow},
	}}
	tp := newTestPipeline(t, rules, 1024)
	tp.e.neigh.store(map[neighKey][6]byte{
		{1, ipClient.As16()}:                           macClient,
		{1, netip.MustParseAddr("fd00::2").As16()}:     macClient,
		{2, ipServer.As16()}:                           macServer,
		{2, netip.MustParseAddr("2001:db8::5").As16()}: macServer,
	})
	return tp
}

// withFragHeader returns a copy of the IPv6 frame with a Fragment header
// (offset off, M flag more, identification 0x1234) between the fixed header
// and the upper layer.
func withFragHeader(frame []byte, off uint16, more bool) []byte {
	const at = header.EthernetLen + header.IPv6Len
	ip := header.IPv6(frame[header.EthernetLen:])
	fo := off &^ 7
	if more {
		fo |= 1
	}
	fh := []byte{ip.NextHeader(), 0, byte(fo >> 8), byte(fo), 0, 0, 0x12, 0x34}
	c := append(append(append([]byte(nil), frame[:at]...), fh...), frame[at:]...)
	h := header.IPv6(c[header.EthernetLen:])
	h.SetNextHeader(header.ProtoFragment)
	h.SetPayloadLen(ip.PayloadLen() + 8)
	return c
}

// An IPv6 atomic fragment (Fragment header with offset 0 and M clear,
// RFC 6946) is a whole packet: it is tracked, forwarded and answered like
// one. It was dropped as a fragment.
func TestRouterIPv6AtomicFragment(t *testing.T) {
	tp := v6Pipeline(t)
	src, dst := netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("fd00::2")
	in := udpSpec(src, dst, 7301)
	atomic := withFragHeader(eth(in, macServer, macEdgeOut), 0, false)
	out := in
	out.TTL = 63
	runRouterCases(t, tp, []routerCase{
		{name: "atomic fragment opens a flow and is forwarded whole", in: 1, frame: atomic,
			port: 0, want: withFragHeader(eth(out, macEdgeIn, macClient), 0, false)},
		// A real first fragment (M set) whose UDP length fits in it
		// contradicts itself (fragment_test.go has real trains).
		{name: "first fragment whose UDP length fits in it", in: 1,
			frame: withFragHeader(eth(udpSpec(src, dst, 7302), macServer, macEdgeOut), 0, true), reason: drop.BadL4Header},
		// A later fragment without its first: held for it, not forwarded.
		{name: "later fragment alone: held", in: 1,
			frame: withFragHeader(eth(udpSpec(src, dst, 7303), macServer, macEdgeOut), 8, false), reason: drop.None},
	})
	// The reply from the inside host matches the flow the atomic fragment
	// opened.
	reply := udpSpec(dst, src, 53)
	reply.DstPort = 7301
	back := reply
	back.TTL = 63
	runRouterCases(t, tp, []routerCase{
		{name: "reply to the atomic fragment's flow", in: 0, frame: eth(reply, macClient, macEdgeIn),
			port: 1, want: eth(back, macEdgeOut, macServer)},
	})
}

// withOptions returns a copy of the IPv4 frame with opts (padded with EOL
// to a multiple of 4) after the fixed header, lengths and checksum fixed.
func withOptions(frame []byte, opts []byte) []byte {
	o := append([]byte(nil), opts...)
	for len(o)%4 != 0 {
		o = append(o, header.IPv4OptEOL)
	}
	at := header.EthernetLen + header.IPv4MinLen
	c := append(append(append([]byte(nil), frame[:at]...), o...), frame[at:]...)
	h := header.IPv4(c[header.EthernetLen:])
	h[0] = 0x40 | byte((header.IPv4MinLen+len(o))/4)
	h.SetTotalLen(h.TotalLen() + uint16(len(o)))
	h.SetChecksum(h.CalculateChecksum())
	return c
}

// Source-route options (LSRR, SSRR) are dropped unless the configuration
// forwards them (RFC 7126 4.3, 4.4); malformed options are dropped; other
// options are forwarded as they are.
func TestRouterIPv4Options(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	lsrr := []byte{header.IPv4OptLSRR, 7, 4, 203, 0, 113, 2}
	ssrr := []byte{header.IPv4OptSSRR, 7, 4, 203, 0, 113, 2}
	rr := []byte{7, 7, 4, 0, 0, 0, 0} // record route
	frame := func(sport uint16, opts []byte) []byte {
		return withOptions(eth(udpSpec(ipClient, ipServer, sport), macClient, macEdgeIn), opts)
	}
	runRouterCases(t, tp, []routerCase{
		{name: "loose source route", in: 0, frame: frame(7401, lsrr), reason: drop.SourceRouted},
		{name: "strict source route after a NOP", in: 0, frame: frame(7402, append([]byte{1}, ssrr...)), reason: drop.SourceRouted},
		{name: "loose source route from the outside", in: 1,
			frame: withOptions(eth(udpSpec(ipServer, ipSNAT, 53), macServer, macEdgeOut), lsrr), reason: drop.SourceRouted},
		{name: "option length 1", in: 0, frame: frame(7403, []byte{7, 1}), reason: drop.BadIPOptions},
		{name: "option running past the header", in: 0, frame: frame(7404, []byte{1, 1, 7, 9}), reason: drop.BadIPOptions},
	})
	if n := tp.w.shard.Len(); n != 0 {
		t.Errorf("%d flows created by source-routed or malformed packets", n)
	}
	// Record route is forwarded, translated, options untouched.
	out, r := tp.send(0, frame(7405, rr))
	if out == nil {
		t.Fatalf("record route: dropped (%v)", r)
	}
	nat := tp.natPort(conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, 7405), netip.AddrPortFrom(ipServer, 53)))
	want := udpSpec(ipSNAT, ipServer, nat)
	want.TTL = 63
	if w := withOptions(eth(want, macEdgeOut, macServer), rr); out.port != 1 || !bytes.Equal(out.frame, w) {
		t.Fatalf("record route: port %d\n got %x\nwant %x", out.port, out.frame, w)
	}
	// Configured to forward them, source routes are forwarded like any
	// other option (edge does not act on them: the destination is not
	// rewritten).
	cur := *tp.e.cur.Load()
	cur.ForwardSourceRouted = true
	tp.e.cur.Store(&cur)
	if out, r := tp.send(0, frame(7406, lsrr)); out == nil || out.port != 1 {
		t.Fatalf("source route with forward_source_routed: dropped (%v)", r)
	}
	if _, r := tp.send(0, frame(7407, []byte{7, 1})); r != drop.BadIPOptions {
		t.Fatalf("malformed options with forward_source_routed: %v, want %v", r, drop.BadIPOptions)
	}
}

// setURPF puts the reverse-path modes inside and outside in force.
func (tp *testPipeline) setURPF(inside, outside URPFMode) {
	cur := *tp.e.cur.Load()
	cur.Inside.URPF, cur.Outside.URPF = inside, outside
	tp.e.cur.Store(&cur)
}

// Ingress filtering (RFC 3704, BCP 38): by default strict on the inside (the
// route back to the source must leave through the inside; a connected inside
// network passes) and loose on the outside (some route back must exist);
// edge's own addresses never come from the wire. Before, anything was
// forwarded whatever its source.
func TestRouterURPF(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	a := netip.MustParseAddr
	unrouted := a("192.0.2.77")
	fromIn := func(src netip.Addr, sport uint16) []byte {
		return eth(udpSpec(src, ipServer, sport), macClient, macEdgeIn)
	}
	fromOut := func(src netip.Addr, sport uint16) []byte {
		return eth(udpSpec(src, a("10.0.0.9"), sport), macServer, macEdgeOut)
	}
	// A flow, and ICMP errors about it from a router on the outside.
	if out, r := tp.send(0, fromIn(ipClient, 7501)); out == nil {
		t.Fatalf("flow: dropped (%v)", r)
	}
	nat := tp.natPort(conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, 7501), netip.AddrPortFrom(ipServer, 53)))
	icmpFrom := func(router netip.Addr) []byte {
		return eth(headertest.Spec{Src: router, Dst: ipSNAT, Proto: header.ProtoICMP, ICMPType: header.ICMPv4DestUnreachable,
			ICMPCode: 1, Quote: headertest.Build(udpSpec(ipSNAT, ipServer, nat))}, macServer, macEdgeOut)
	}
	flows := tp.w.shard.Len()
	runRouterCases(t, tp, []routerCase{
		{name: "inside, strict: source in an outside prefix", in: 0, frame: fromIn(a("203.0.113.50"), 7502), reason: drop.URPF},
		{name: "inside, strict: source with no route", in: 0, frame: fromIn(unrouted, 7503), reason: drop.URPF},
		{name: "inside: edge's own inside address (in the connected inside network)", in: 0,
			frame: fromIn(ipEdgeIn, 7504), reason: drop.OwnAddressSource},
		{name: "inside: edge's outside (SNAT) address", in: 0, frame: fromIn(ipSNAT, 7505), reason: drop.OwnAddressSource},
		{name: "outside, loose: source with no route", in: 1, frame: fromOut(unrouted, 53), reason: drop.URPF},
		{name: "outside: edge's own outside address", in: 1, frame: fromOut(ipSNAT, 53), reason: drop.OwnAddressSource},
		{name: "outside: edge's own inside address", in: 1, frame: fromOut(ipEdgeIn, 53), reason: drop.OwnAddressSource},
		{name: "outside, loose: ICMP error from an unrouted router (the outer source is checked)", in: 1,
			frame: icmpFrom(a("192.0.2.1")), reason: drop.URPF},
	})
	if n := tp.w.shard.Len(); n != flows {
		t.Errorf("%d flows created by spoofed sources", n-flows)
	}
	// What passes: any host of the connected inside network, an ICMP error
	// from a routed outside router (translated to the client).
	if out, r := tp.send(0, fromIn(a("10.0.0.77"), 7506)); out == nil || out.port != 1 {
		t.Errorf("inside host 10.0.0.77: dropped (%v)", r)
	}
	if out, r := tp.send(1, icmpFrom(a("203.0.113.9"))); out == nil || out.port != 0 {
		t.Errorf("ICMP error from a routed router: dropped (%v)", r)
	}

	// Strict outside: an inside source arriving from the outside.
	tp.setURPF(URPFDefault, URPFStrict)
	runRouterCases(t, tp, []routerCase{
		{name: "outside, strict: an inside source", in: 1, frame: fromOut(ipClient, 53), reason: drop.URPF},
		{name: "outside, strict: still the own address", in: 1, frame: fromOut(ipSNAT, 53), reason: drop.OwnAddressSource},
	})
	// Loose inside: a routed source passes wherever its route leads, an
	// unrouted one does not.
	tp.setURPF(URPFLoose, URPFDefault)
	if out, r := tp.send(0, fromIn(a("203.0.113.51"), 7507)); out == nil {
		t.Errorf("inside, loose: routed outside source dropped (%v)", r)
	}
	runRouterCases(t, tp, []routerCase{
		{name: "inside, loose: source with no route", in: 0, frame: fromIn(unrouted, 7508), reason: drop.URPF},
	})
	// Off: nothing checked, not even the own address.
	tp.setURPF(URPFOff, URPFOff)
	if out, r := tp.send(0, fromIn(unrouted, 7509)); out == nil {
		t.Errorf("inside, off: dropped (%v)", r)
	}
	if out, r := tp.send(0, fromIn(ipEdgeIn, 7510)); out == nil {
		t.Errorf("inside, off: own address dropped (%v)", r)
	}
}

// The data plane's defaults: strict inside, loose outside; a mode set
// replaces the default.
func TestURPFModeDefaults(t *testing.T) {
	var c Config
	if c.urpfMode(0) != URPFStrict || c.urpfMode(1) != URPFLoose {
		t.Fatalf("defaults: inside %v, outside %v", c.urpfMode(0), c.urpfMode(1))
	}
	c.Inside.URPF, c.Outside.URPF = URPFOff, URPFStrict
	if c.urpfMode(0) != URPFOff || c.urpfMode(1) != URPFStrict {
		t.Fatalf("set: inside %v, outside %v", c.urpfMode(0), c.urpfMode(1))
	}
	for _, m := range []URPFMode{URPFDefault, URPFStrict, URPFLoose, URPFOff} {
		if got, ok := ParseURPFMode(m.String()); !ok || got != m {
			t.Errorf("ParseURPFMode(%q) = %v, %v", m.String(), got, ok)
		}
	}
	if _, ok := ParseURPFMode("lenient"); ok {
		t.Error("ParseURPFMode accepted lenient")
	}
}

// cutOversize returns the frame of spec with a payload making its IP packet
// size bytes long, cut to rxFrameMax as the XDP program cuts it, and the
// quote an ICMP error about it carries (its start, length field and IPv4
// checksum describing the quoted bytes).
func cutOversize(spec headertest.Spec, size int, smac, dmac [6]byte) (frame, quote []byte) {
	hl := header.IPv4MinLen
	if !spec.Src.Is4() {
		hl = header.IPv6Len
	}
	spec.Payload = make([]byte, size-hl-8)
	full := eth(spec, smac, dmac)
	frame = full[:rxFrameMax]
	q := append([]byte(nil), frame[header.EthernetLen:header.EthernetLen+1280]...)
	if spec.Src.Is4() {
		h := header.IPv4(q)
		h.SetTotalLen(uint16(len(q)))
		h.SetChecksum(h.CalculateChecksum())
	} else {
		header.IPv6(q).SetPayloadLen(uint16(len(q) - header.IPv6Len))
	}
	return frame, q
}

// A frame longer than an AF_XDP frame holds (an interface's MTU raised while
// edge runs) vanished uncounted in the kernel. The XDP program now cuts it
// (TestXDPCutsOversize); the worker counts it (oversize) and answers as
// for a packet over the MTU: fragmentation needed with DF, packet too big
// for IPv6, with the ingress MTU; without DF only the count.
func TestRouterOversize(t *testing.T) {
	tp := v6Pipeline(t)
	v6host, v6far := netip.MustParseAddr("fd00::2"), netip.MustParseAddr("2001:db8::5")
	edgeOut6 := netip.MustParseAddr("2001:db8::1")
	tp.w.ports[1].addr6 = edgeOut6.As16()
	icmpFrame := func(in int, k icmp.Kind, src netip.Addr, quote []byte, mtu uint32, dmac [6]byte) []byte {
		buf := make([]byte, 2048)
		n, r := icmp.Build(buf[header.EthernetLen:], k, src.As16(), quote, mtu)
		if r != drop.None {
			t.Fatal(r)
		}
		f := buf[:header.EthernetLen+n]
		e := header.Ethernet(f)
		e.SetDst(dmac)
		e.SetSrc([2][6]byte{macEdgeIn, macEdgeOut}[in])
		e.SetEtherType(header.EtherTypeIPv4)
		if !src.Is4() {
			e.SetEtherType(header.EtherTypeIPv6)
		}
		return f
	}
	df := udpSpec(ipClient, ipServer, 7601)
	df.DF = true
	dfFrame, dfQuote := cutOversize(df, 3000, macClient, macEdgeIn)
	noDF, _ := cutOversize(udpSpec(ipClient, ipServer, 7602), 3000, macClient, macEdgeIn)
	v6Frame, v6Quote := cutOversize(udpSpec(v6far, v6host, 7603), 4000, macServer, macEdgeOut)
	spoofed := df
	spoofed.Src = netip.MustParseAddr("192.0.2.77")
	spoofedFrame, _ := cutOversize(spoofed, 3000, macClient, macEdgeIn)
	cases := []struct {
		name  string
		in    int
		frame []byte
		want  []byte // the ICMP error sent back, nil: none
	}{
		{"IPv4 with DF: fragmentation needed, MTU 1500", 0, dfFrame, icmpFrame(0, icmp.FragNeeded, ipEdgeIn, dfQuote, 1500, macClient)},
		{"IPv4 without DF: counted, nothing sent (edge does not fragment)", 0, noDF, nil},
		{"IPv6: packet too big, MTU 1500", 1, v6Frame, icmpFrame(1, icmp.FragNeeded, edgeOut6, v6Quote, 1500, macServer)},
		{"spoofed source: counted, nothing sent", 0, spoofedFrame, nil},
	}
	for _, c := range cases {
		out, r := tp.send(c.in, c.frame)
		switch {
		case r != drop.Oversize:
			t.Errorf("%s: reason %v, want %v", c.name, r, drop.Oversize)
		case c.want == nil && out != nil:
			t.Errorf("%s: sent %x", c.name, out.frame)
		case c.want != nil && out == nil:
			t.Errorf("%s: nothing sent", c.name)
		case c.want != nil && (out.port != c.in || !bytes.Equal(out.frame, c.want)):
			t.Errorf("%s: port %d\n got %x\nwant %x", c.name, out.port, out.frame, c.want)
		}
	}
	if n := tp.w.shard.Len(); n != 0 {
		t.Errorf("%d flows created by oversize frames", n)
	}
	// A frame of exactly rxFrameMax bytes whose length field agrees is a
	// packet like any other.
	fits := udpSpec(ipClient, ipServer, 7604)
	fits.Payload = make([]byte, rxFrameMax-header.EthernetLen-header.IPv4MinLen-8)
	tp.w.ports[1].mtu = MaxMTU
	if out, r := tp.send(0, eth(fits, macClient, macEdgeIn)); out == nil || out.port != 1 {
		t.Errorf("a full-size frame: dropped (%v)", r)
	}
}

// routerChecks runs the per-packet router checks of the pipeline on frame
// (received on port in, parsed as p): what every packet pays.
func routerChecks(w *worker, cfg *Config, in int, frame []byte, p *conntrack.Packet) drop.Reason {
	if !ipVersionMatches(frame) {
		return drop.EtherTypeMismatch
	}
	ip := frame[header.EthernetLen:]
	if r := checkIP(ip, p, cfg); r != drop.None {
		return r
	}
	return w.reversePath(in, cfg.urpfMode(in), ip)
}

func TestRouterChecksZeroAllocs(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	cfg := tp.e.cur.Load()
	for _, f := range []struct {
		in    int
		frame []byte
	}{
		{0, eth(udpSpec(ipClient, ipServer, 1), macClient, macEdgeIn)},
		{1, eth(udpSpec(ipServer, ipSNAT, 1), macServer, macEdgeOut)},
		{1, eth(udpSpec(netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("fd00::2"), 1), macServer, macEdgeOut)},
	} {
		var p conntrack.Packet
		if r := conntrack.Parse(f.frame[header.EthernetLen:], 0, &p); r != drop.None {
			t.Fatal(r)
		}
		if r := routerChecks(tp.w, cfg, f.in, f.frame, &p); r != drop.None {
			t.Fatalf("checks refused a good packet: %v", r)
		}
		if n := testing.AllocsPerRun(200, func() { routerChecks(tp.w, cfg, f.in, f.frame, &p) }); n != 0 {
			t.Errorf("router checks: %v allocs per packet", n)
		}
	}
}

// BenchmarkRouterChecks: the checks on an IPv4 UDP packet from the inside
// (strict uRPF) and its reply from the outside (loose).
func BenchmarkRouterChecks(b *testing.B) {
	tp := newTestPipeline(b, allowOutbound, 1024)
	cfg := tp.e.cur.Load()
	frames := [2][]byte{eth(udpSpec(ipClient, ipServer, 1), macClient, macEdgeIn), eth(udpSpec(ipServer, ipSNAT, 1), macServer, macEdgeOut)}
	var pkts [2]conntrack.Packet
	for i := range frames {
		conntrack.Parse(frames[i][header.EthernetLen:], 0, &pkts[i])
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if routerChecks(tp.w, cfg, i&1, frames[i&1], &pkts[i&1]) != drop.None {
			b.Fatal("dropped")
		}
	}
}

// The router settings change live (the workers read the configuration in
// force per batch): Apply reports them among what changed.
func TestApplyDiffRouterSettings(t *testing.T) {
	var old Config
	c := old
	c.Inside.URPF, c.ForwardSourceRouted = URPFOff, true
	if got := diff(&old, &c, nil, nil); !slices.Equal(got, []string{"interfaces", "source_route"}) {
		t.Fatalf("changed %v, want [interfaces source_route]", got)
	}
	if got := diff(&old, &old, nil, nil); len(got) != 0 {
		t.Fatalf("changed %v, want nothing", got)
	}
}
