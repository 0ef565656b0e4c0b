package dataplane

import (
	"bytes"
	"encoding/hex"
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

// TestPipelineIPv6Golden: a TCP connection from the inside through NAT66
// (SYN, SYN-ACK, ACK, data both ways, FIN), and a UDP datagram; every
// packet leaves with the hop limit one lower, translated, with valid
// checksums.
func TestPipelineIPv6Golden(t *testing.T) {
	tp := newTestPipeline6(t)
	const SYN, ACK, FIN, PSH = header.TCPFlagSYN, header.TCPFlagACK, header.TCPFlagFIN, header.TCPFlagPSH
	tcp := func(src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32, hop uint8, data string) headertest.Spec {
		return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoTCP, SrcPort: sport, DstPort: dport,
			Flags: flags, Seq: seq, Ack: ack, Window: 64240, TTL: hop, Payload: []byte(data)}
	}
	orig := conntrack.MakeKey(header.ProtoTCP, netip.AddrPortFrom(ip6Client, 40000), netip.AddrPortFrom(ip6Server, 443))

	// The SYN opens the flow and leaves from 2001:db8::1.
	syn := eth(tcp(ip6Client, ip6Server, 40000, 443, SYN, 1000, 0, 64, ""), macClient, macEdgeIn)
	out, r := tp.send(0, syn)
	if out == nil || r != drop.None {
		t.Fatalf("IPv6 SYN: dropped (%v)", r)
	}
	port := tp.natPort(orig)
	if addr, _ := tp.w.shard.NAT(mustLookup(t, tp, orig)); tp.e.table.NATAddr(addr) != ip6SNAT {
		t.Fatalf("IPv6 flow translated to %v, want %v", tp.e.table.NATAddr(addr), ip6SNAT)
	}
	if want := eth(tcp(ip6SNAT, ip6Server, port, 443, SYN, 1000, 0, 63, ""), macEdgeOut, macServer); out.port != 1 || !bytes.Equal(out.frame, want) {
		t.Fatalf("IPv6 SYN out on port %d:\n got %s\nwant %s", out.port, hex.EncodeToString(out.frame), hex.EncodeToString(want))
	}
	checkGopacket(t, "IPv6 SYN", out.frame)

	cases := []struct {
		name  string
		in    int
		frame []byte
		port  int
		want  []byte
	}{
		{"SYN-ACK back to the client, untranslated", 1,
			eth(tcp(ip6Server, ip6SNAT, 443, port, SYN|ACK, 5000, 1001, 64, ""), macServer, macEdgeOut), 0,
			eth(tcp(ip6Server, ip6Client, 443, 40000, SYN|ACK, 5000, 1001, 63, ""), macEdgeIn, macClient)},
		{"final ACK", 0,
			eth(tcp(ip6Client, ip6Server, 40000, 443, ACK, 1001, 5001, 64, ""), macClient, macEdgeIn), 1,
			eth(tcp(ip6SNAT, ip6Server, port, 443, ACK, 1001, 5001, 63, ""), macEdgeOut, macServer)},
		{"established: data from the client, hop limit 2 leaves as 1", 0,
			eth(tcp(ip6Client, ip6Server, 40000, 443, PSH|ACK, 1001, 5001, 2, "GET / HTTP/1.1\r\n\r\n"), macClient, macEdgeIn), 1,
			eth(tcp(ip6SNAT, ip6Server, port, 443, PSH|ACK, 1001, 5001, 1, "GET / HTTP/1.1\r\n\r\n"), macEdgeOut, macServer)},
		{"established: data from the server, hop limit 255", 1,
			eth(tcp(ip6Server, ip6SNAT, 443, port, PSH|ACK, 5001, 1019, 255, "HTTP/1.1 200 OK\r\n"), macServer, macEdgeOut), 0,
			eth(tcp(ip6Server, ip6Client, 443, 40000, PSH|ACK, 5001, 1019, 254, "HTTP/1.1 200 OK\r\n"), macEdgeIn, macClient)},
		{"established: FIN from the client", 0,
			eth(tcp(ip6Client, ip6Server, 40000, 443, FIN|ACK, 1019, 5018, 64, ""), macClient, macEdgeIn), 1,
			eth(tcp(ip6SNAT, ip6Server, port, 443, FIN|ACK, 1019, 5018, 63, ""), macEdgeOut, macServer)},
	}
	for _, c := range cases {
		out, r := tp.send(c.in, c.frame)
		switch {
		case out == nil:
			t.Errorf("%s: dropped (%v)", c.name, r)
		case out.port != c.port || !bytes.Equal(out.frame, c.want):
			t.Errorf("%s: port %d\n got %s\nwant %s", c.name, out.port, hex.EncodeToString(out.frame), hex.EncodeToString(c.want))
		default:
			checkGopacket(t, c.name, out.frame)
		}
	}

	// UDP over IPv6 through NAT66, and its answer.
	udp := func(src, dst netip.Addr, sport, dport uint16, hop uint8) headertest.Spec {
		return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoUDP, SrcPort: sport, DstPort: dport, TTL: hop, Payload: []byte("query")}
	}
	out, r = tp.send(0, eth(udp(ip6Client, ip6Server, 5353, 53, 64), macClient, macEdgeIn))
	if out == nil {
		t.Fatalf("IPv6 UDP dropped: %v", r)
	}
	uport := tp.natPort(conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ip6Client, 5353), netip.AddrPortFrom(ip6Server, 53)))
	if want := eth(udp(ip6SNAT, ip6Server, uport, 53, 63), macEdgeOut, macServer); out.port != 1 || !bytes.Equal(out.frame, want) {
		t.Fatalf("IPv6 UDP out\n got %x\nwant %x", out.frame, want)
	}
	checkGopacket(t, "IPv6 UDP", out.frame)
	out, r = tp.send(1, eth(udp(ip6Server, ip6SNAT, 53, uport, 64), macServer, macEdgeOut))
	if out == nil {
		t.Fatalf("IPv6 UDP answer dropped: %v", r)
	}
	if want := eth(udp(ip6Server, ip6Client, 53, 5353, 63), macEdgeIn, macClient); out.port != 0 || !bytes.Equal(out.frame, want) {
		t.Fatalf("IPv6 UDP answer\n got %x\nwant %x", out.frame, want)
	}
	checkGopacket(t, "IPv6 UDP answer", out.frame)
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

// An IPv6 packet with hop limit 1 is not forwarded and is answered with
// Time Exceeded (hop limit exceeded in transit, RFC 4443 3.3) from the
// inside interface's IPv6 address, quoting it as received; no flow and no
// NAT port are taken.
func TestPipelineIPv6TimeExceeded(t *testing.T) {
	tp := newTestPipeline6(t)
	for _, c := range []struct {
		name string
		spec headertest.Spec
	}{
		{"UDP", headertest.Spec{Src: ip6Client, Dst: ip6Server, Proto: header.ProtoUDP, SrcPort: 33434, DstPort: 33435,
			TTL: 1, Payload: []byte("traceroute")}},
		{"TCP SYN", headertest.Spec{Src: ip6Client, Dst: ip6Server, Proto: header.ProtoTCP, SrcPort: 40001, DstPort: 443,
			Flags: header.TCPFlagSYN, Seq: 77, TTL: 1}},
	} {
		frame := eth(c.spec, macClient, macEdgeIn)
		orig := append([]byte(nil), frame[header.EthernetLen:]...)
		out, r := tp.send(0, frame)
		if out == nil || out.port != 0 || r != drop.TTLExceeded {
			t.Errorf("%s, hop limit 1: out %v reason %v; want time exceeded back on port 0, drop ttl_exceeded", c.name, out != nil, r)
			continue
		}
		if want := icmp6Error(header.ICMPv6TimeExceeded, 0, orig); !bytes.Equal(out.frame, want) {
			t.Errorf("%s: time exceeded\n got %x\nwant %x", c.name, out.frame, want)
		}
		checkGopacket(t, c.name+" time exceeded", out.frame)
	}
	if tp.e.table.Len() != 0 {
		t.Errorf("%d flows created by expired packets", tp.e.table.Len())
	}
	if got := tp.w.ctr.icmp[icmp.TimeExceeded].Load(); got != 2 {
		t.Errorf("time exceeded sent %d times, want 2", got)
	}

	// Rule N3 holds for IPv6 too: no error about a TCP segment that is
	// not a SYN (here on an open flow).
	seg := func(flags uint8, seq, ack uint32, hop uint8) []byte {
		return eth(headertest.Spec{Src: ip6Client, Dst: ip6Server, Proto: header.ProtoTCP, SrcPort: 40002, DstPort: 443,
			Flags: flags, Seq: seq, Ack: ack, TTL: hop}, macClient, macEdgeIn)
	}
	if out, r := tp.send(0, seg(header.TCPFlagSYN, 5, 0, 64)); out == nil {
		t.Fatalf("SYN dropped: %v", r)
	}
	nport := tp.natPort(conntrack.MakeKey(header.ProtoTCP, netip.AddrPortFrom(ip6Client, 40002), netip.AddrPortFrom(ip6Server, 443)))
	if out, r := tp.send(1, eth(headertest.Spec{Src: ip6Server, Dst: ip6SNAT, Proto: header.ProtoTCP, SrcPort: 443, DstPort: nport,
		Flags: header.TCPFlagSYN | header.TCPFlagACK, Seq: 100, Ack: 6}, macServer, macEdgeOut)); out == nil {
		t.Fatalf("SYN-ACK dropped: %v", r)
	}
	if out, rs := tp.sendAll(0, seg(header.TCPFlagACK, 6, 101, 1)); out != nil || !rs[drop.TTLExceeded] || !rs[drop.ICMPNotSentTCPNotSYN] {
		t.Errorf("TCP ACK, hop limit 1: out %v reasons %v; want no output, ttl_exceeded and icmp_not_sent_tcp_not_syn", out != nil, rs)
	}
}

// An IPv6 packet larger than the egress link's MTU is never fragmented by
// a router: it is dropped and answered with Packet Too Big carrying the
// MTU (RFC 8200 5, RFC 4443 3.2), quoting as much of it as fits in 1280
// bytes. One that fits leaves.
func TestPipelineIPv6PacketTooBig(t *testing.T) {
	tp := newTestPipeline6(t)
	tp.w.ports[1].mtu = 1400
	spec := headertest.Spec{Src: ip6Client, Dst: ip6Server, Proto: header.ProtoUDP, SrcPort: 4500, DstPort: 4500,
		Payload: make([]byte, 1400-header.IPv6Len-header.UDPLen+1)} // one byte over
	for i := range spec.Payload {
		spec.Payload[i] = byte(i)
	}
	big := eth(spec, macClient, macEdgeIn)
	orig := append([]byte(nil), big[header.EthernetLen:]...)
	out, r := tp.send(0, big)
	if out == nil || out.port != 0 || r != drop.MTUExceeded {
		t.Fatalf("IPv6 packet over the MTU: out %v reason %v; want packet too big back on port 0, drop mtu_exceeded", out != nil, r)
	}
	if want := icmp6Error(header.ICMPv6PacketTooBig, 1400, orig); !bytes.Equal(out.frame, want) {
		t.Fatalf("packet too big\n got %x\nwant %x", out.frame, want)
	}
	checkGopacket(t, "packet too big", out.frame)
	if tp.e.table.Len() != 0 {
		t.Errorf("%d flows created by a packet too big", tp.e.table.Len())
	}
	// Counted under ICMPv6's name for it.
	if st := tp.e.Stats(); st.ICMP[icmp.PacketTooBig] != 1 || st.ICMP[icmp.FragNeeded] != 0 {
		t.Errorf("ICMP sent %v: want one packet_too_big and no frag_needed", st.ICMP)
	}

	// Exactly the MTU: forwarded, translated, hop limit one lower.
	spec.Payload = spec.Payload[:len(spec.Payload)-1]
	out, r = tp.send(0, eth(spec, macClient, macEdgeIn))
	if out == nil || out.port != 1 {
		t.Fatalf("IPv6 packet of exactly the MTU: dropped (%v)", r)
	}
	uport := tp.natPort(conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ip6Client, 4500), netip.AddrPortFrom(ip6Server, 4500)))
	fwd := spec
	fwd.Src, fwd.SrcPort, fwd.TTL = ip6SNAT, uport, 63
	if want := eth(fwd, macEdgeOut, macServer); !bytes.Equal(out.frame, want) {
		t.Fatalf("IPv6 packet of exactly the MTU\n got %x\nwant %x", out.frame, want)
	}
	checkGopacket(t, "IPv6 at the MTU", out.frame)
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
