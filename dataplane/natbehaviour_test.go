package dataplane

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/snat"
)

// Golden tests of edge's NAT behaviour through the pipeline (RFC 4787,
// RFC 5382): endpoint-independent mapping, filtering, hairpinning.

var (
	ipClientB = netip.MustParseAddr("10.0.0.3")
	macHostB  = headertest.MustMAC("02:00:00:00:00:03")
	ipServer2 = netip.MustParseAddr("203.0.113.3")
)

// natPipeline is a test pipeline whose SNAT has the given behaviour, with
// a second inside host (B) and a second server.
func natPipeline(t *testing.T, cfg snat.Config) *testPipeline {
	t.Helper()
	tp := newTestPipeline(t, allowOutbound, 1024)
	cfg.Mode, cfg.Automap = snat.Automap, ipSNAT
	nat, err := snat.New(cfg, tp.e.table)
	if err != nil {
		t.Fatal(err)
	}
	tp.e.nat, tp.w.nat = nat, nat.Allocator(0)
	tp.e.neigh.store(map[neighKey][6]byte{
		{1, ipClient.As16()}: macClient, {1, ipClientB.As16()}: macHostB,
		{2, ipServer.As16()}: macServer, {2, ipServer2.As16()}: macServer,
	})
	return tp
}

func natUDP(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, ttl uint8) headertest.Spec {
	return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoUDP, SrcPort: sport, DstPort: dport, TTL: ttl, ID: 7,
		Payload: []byte("edge nat behaviour")}
}

// mapping sends one datagram from src:sport to dst:dport from the inside
// and returns the external port it left with.
func (tp *testPipeline) mapping(src netip.Addr, mac [6]byte, sport uint16, dst netip.Addr, dport uint16) uint16 {
	tp.t.Helper()
	out, r := tp.send(0, eth(natUDP(src, sport, dst, dport, 64), mac, macEdgeIn))
	if out == nil || out.port != 1 {
		tp.t.Fatalf("%v:%d -> %v:%d not forwarded: %v", src, sport, dst, dport, r)
	}
	return header.UDP(header.IPv4(out.frame[header.EthernetLen:]).Payload()).SrcPort()
}

// RFC 4787 REQ-1: one external endpoint for an inside endpoint toward every
// destination (under endpoint-dependent mapping: one per destination).
func TestPipelineEndpointIndependentMapping(t *testing.T) {
	for _, c := range []struct {
		m    snat.Mapping
		same bool
	}{{snat.MappingDefault, true}, {snat.EndpointIndependent, true}, {snat.EndpointDependent, false}} {
		tp := natPipeline(t, snat.Config{Mapping: c.m})
		ports := []uint16{
			tp.mapping(ipClient, macClient, 40000, ipServer, 3478),
			tp.mapping(ipClient, macClient, 40000, ipServer2, 3478),
			tp.mapping(ipClient, macClient, 40000, ipServer2, 3479),
		}
		same := ports[0] == ports[1] && ports[1] == ports[2]
		if same != c.same {
			t.Fatalf("mapping %q: ports %v toward three destinations", c.m, ports)
		}
		if c.same && ports[0] != 40000 {
			t.Fatalf("mapping %q: inside port 40000 free but mapped to %d", c.m, ports[0])
		}
	}
}

// A third party's datagram toward a mapping passes or not by the filtering
// behaviour; when it passes it reaches the inside endpoint, translated
// byte-exact, and its answer leaves through the mapping.
func TestPipelineFiltering(t *testing.T) {
	cases := []struct {
		f                   snat.Filtering
		otherPort, otherAdr bool
	}{
		{snat.FilteringDefault, false, false},
		{snat.AddressDependent, true, false},
		{snat.EndpointIndependentFiltering, true, true},
	}
	for _, c := range cases {
		tp := natPipeline(t, snat.Config{Filtering: c.f})
		ext := tp.mapping(ipClient, macClient, 40000, ipServer, 3478)
		for _, from := range []struct {
			addr netip.Addr
			port uint16
			want bool
		}{{ipServer, 3479, c.otherPort}, {ipServer2, 3478, c.otherAdr}} {
			in := eth(natUDP(from.addr, from.port, ipSNAT, ext, 64), macServer, macEdgeOut)
			out, r := tp.send(1, in)
			if !from.want {
				if out != nil || r != drop.SNATFiltered {
					t.Fatalf("%q: from %v:%d: out %v, %v; want snat_filtered", c.f, from.addr, from.port, out != nil, r)
				}
				continue
			}
			want := eth(natUDP(from.addr, from.port, ipClient, 40000, 63), macEdgeIn, macClient)
			if out == nil || out.port != 0 || !bytes.Equal(out.frame, want) {
				t.Fatalf("%q: from %v:%d: %v\n got %x\nwant %x", c.f, from.addr, from.port, r, frameOf(out), want)
			}
			// The inside endpoint's answer leaves through its mapping.
			back := eth(natUDP(ipClient, 40000, from.addr, from.port, 64), macClient, macEdgeIn)
			out, r = tp.send(0, back)
			want = eth(natUDP(ipSNAT, ext, from.addr, from.port, 63), macEdgeOut, macServer)
			if out == nil || !bytes.Equal(out.frame, want) {
				t.Fatalf("%q: answer to %v:%d: %v\n got %x\nwant %x", c.f, from.addr, from.port, r, frameOf(out), want)
			}
		}
	}
}

func frameOf(s *sent) []byte {
	if s == nil {
		return nil
	}
	return s.frame
}

// RFC 4787 REQ-9: hosts A and B behind edge reach each other through their
// external mappings; each sees the other's external address and port. A
// hairpinned datagram comes from an inside endpoint: the receiving
// mapping's filter (here the default, address-and-port-dependent) does not
// apply to it, so A's first datagram reaches B, and B's answer reaches A
// through the flow A's datagram made.
func TestPipelineHairpin(t *testing.T) {
	for _, f := range []snat.Filtering{snat.FilteringDefault, snat.AddressDependent, snat.EndpointIndependentFiltering} {
		tp := natPipeline(t, snat.Config{Filtering: f})
		pa := tp.mapping(ipClient, macClient, 5000, ipServer, 3478)
		pb := tp.mapping(ipClientB, macHostB, 6000, ipServer, 3478)
		// The pipeline rewrites frames in place: a fresh one per send.
		out, r := tp.send(0, eth(natUDP(ipClient, 5000, ipSNAT, pb, 64), macClient, macEdgeIn))
		want := eth(natUDP(ipSNAT, pa, ipClientB, 6000, 63), macEdgeIn, macHostB)
		if out == nil || out.port != 0 || !bytes.Equal(out.frame, want) {
			t.Fatalf("%q: A -> B's mapping: %v\n got %x\nwant %x", f, r, frameOf(out), want)
		}
		out, r = tp.send(0, eth(natUDP(ipClientB, 6000, ipSNAT, pa, 64), macHostB, macEdgeIn))
		want = eth(natUDP(ipSNAT, pb, ipClient, 5000, 63), macEdgeIn, macClient)
		if out == nil || out.port != 0 || !bytes.Equal(out.frame, want) {
			t.Fatalf("%q: B -> A's mapping: %v\n got %x\nwant %x", f, r, frameOf(out), want)
		}
		if n := tp.e.nat.Stats().Counters[snat.CtrHairpinned]; n != 2 {
			t.Fatalf("%q: hairpinned %d, want 2", f, n)
		}
		// A's datagram made two flows, each a host's own through its
		// mapping: A's toward B's mapping, and B's (admitted) toward A's.
		for _, k := range []conntrack.Key{
			conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, 5000), netip.AddrPortFrom(ipSNAT, pb)),
			conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClientB, 6000), netip.AddrPortFrom(ipSNAT, pa)),
		} {
			if _, _, ok := tp.w.shard.Lookup(&k, tp.now); !ok {
				t.Fatalf("%q: no flow %v", f, k)
			}
		}
		// An outsider is still filtered by B's mapping.
		if out, r := tp.send(1, eth(natUDP(ipServer2, 3478, ipSNAT, pb, 64), macServer, macEdgeOut)); f != snat.EndpointIndependentFiltering && (out != nil || r != drop.SNATFiltered) {
			t.Fatalf("%q: outsider -> B's mapping: out %v, %v; want snat_filtered", f, out != nil, r)
		}
	}
}

// A hairpinned packet still meets the firewall, as the flow of the inside
// endpoint it reaches: a rule that forbids B to talk to edge's outside
// address drops A's datagram to B's mapping.
func TestPipelineHairpinFirewall(t *testing.T) {
	tp := natPipeline(t, snat.Config{})
	pb := tp.mapping(ipClientB, macHostB, 6000, ipServer, 3478)
	tp.mapping(ipClient, macClient, 5000, ipServer, 3478)
	rules := firewall.RuleSet{Rules: []firewall.Rule{
		{Zone: firewall.Inside, Src: []netip.Prefix{netip.PrefixFrom(ipClientB, 32)}, Dst: []netip.Prefix{netip.PrefixFrom(ipSNAT, 32)}, Action: firewall.Drop},
		{Zone: firewall.Inside, Action: firewall.Allow},
	}, Default: firewall.Drop}
	fw, err := firewall.Compile(rules, tp.e.table.ProfileIndex)
	if err != nil {
		t.Fatal(err)
	}
	tp.e.fw.Store(fw)
	if out, r := tp.send(0, eth(natUDP(ipClient, 5000, ipSNAT, pb, 64), macClient, macEdgeIn)); out != nil || r != drop.FirewallDrop {
		t.Fatalf("A -> B's mapping, B may not talk to %v: out %v, %v; want firewall_drop", ipSNAT, out != nil, r)
	}
}

// Under endpoint-independent filtering an outsider's datagram reaches B too.
func TestPipelineEndpointIndependentFilteringOutsider(t *testing.T) {
	tp := natPipeline(t, snat.Config{Filtering: snat.EndpointIndependentFiltering})
	pb := tp.mapping(ipClientB, macHostB, 6000, ipServer, 3478)
	out, r := tp.send(1, eth(natUDP(ipServer2, 9999, ipSNAT, pb, 64), macServer, macEdgeOut))
	want := eth(natUDP(ipServer2, 9999, ipClientB, 6000, 63), macEdgeIn, macHostB)
	if out == nil || !bytes.Equal(out.frame, want) {
		t.Fatalf("outsider -> B's mapping: %v\n got %x\nwant %x", r, frameOf(out), want)
	}
}

func TestPipelineHairpinZeroAllocs(t *testing.T) {
	tp := natPipeline(t, snat.Config{})
	pa := tp.mapping(ipClient, macClient, 5000, ipServer, 3478)
	pb := tp.mapping(ipClientB, macHostB, 6000, ipServer, 3478)
	toA := eth(natUDP(ipClientB, 6000, ipSNAT, pa, 64), macHostB, macEdgeIn)
	toB := eth(natUDP(ipClient, 5000, ipSNAT, pb, 64), macClient, macEdgeIn)
	tp.send(0, toA)
	delivered := 0
	tp.w.testTX = func(port int, _ []byte) {
		if port == 0 {
			delivered++
		}
	}
	frames := [][]byte{make([]byte, len(toB))}
	n := testing.AllocsPerRun(200, func() {
		copy(frames[0], toB)
		tp.w.pipeline(0, frames, tp.now)
		tp.w.drainInbox(tp.now)
		tp.w.transmit(0)
		tp.w.transmit(1)
		tp.w.inbox[0].release(tp.w.taken[0])
		tp.w.taken[0] = 0
	})
	if n != 0 {
		t.Fatalf("hairpin: %v allocs per packet", n)
	}
	if delivered != 201 {
		t.Fatalf("%d of 201 hairpinned packets delivered to B", delivered)
	}
	for r, d := range tp.w.drops {
		if d != 0 {
			t.Fatalf("%d dropped: %v", d, drop.Reason(r))
		}
	}
}

// TCP hole punching between two inside hosts through their mappings (RFC
// 5382 REQ-8 hairpinning, with a simultaneous open): each host's SYN to
// the other's mapping makes its own flow; B's SYN reaches A's mapping
// before A has a flow toward B and is dropped (an unsolicited inbound SYN
// meets the firewall), then A's SYN meets B's flow at B's mapping and
// passes (simultaneous open), and so does B's SYN-ACK.
func TestPipelineHairpinTCPSimultaneousOpen(t *testing.T) {
	tp := natPipeline(t, snat.Config{})
	tcp := func(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, flags uint8, seq, ack uint32, ttl uint8) headertest.Spec {
		return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoTCP, SrcPort: sport, DstPort: dport, Flags: flags,
			Seq: seq, Ack: ack, TTL: ttl, ID: 9, Window: 65535}
	}
	mapTCP := func(src netip.Addr, mac [6]byte, sport uint16) uint16 {
		out, r := tp.send(0, eth(tcp(src, sport, ipServer, 443, header.TCPFlagSYN, 100, 0, 64), mac, macEdgeIn))
		if out == nil {
			t.Fatalf("%v:%d SYN to the server: %v", src, sport, r)
		}
		return header.TCP(header.IPv4(out.frame[header.EthernetLen:]).Payload()).SrcPort()
	}
	pa, pb := mapTCP(ipClient, macClient, 5000), mapTCP(ipClientB, macHostB, 6000)
	syn := header.TCPFlagSYN
	if out, r := tp.send(0, eth(tcp(ipClientB, 6000, ipSNAT, pa, syn, 7000, 0, 64), macHostB, macEdgeIn)); out != nil || r != drop.FirewallDrop {
		t.Fatalf("B's SYN to A's mapping before A sent: out %v, %v; want firewall_drop", out != nil, r)
	}
	out, r := tp.send(0, eth(tcp(ipClient, 5000, ipSNAT, pb, syn, 9000, 0, 64), macClient, macEdgeIn))
	want := eth(tcp(ipSNAT, pa, ipClientB, 6000, syn, 9000, 0, 63), macEdgeIn, macHostB)
	if out == nil || !bytes.Equal(out.frame, want) {
		t.Fatalf("A's SYN to B's mapping: %v\n got %x\nwant %x", r, frameOf(out), want)
	}
	synAck := header.TCPFlagSYN | header.TCPFlagACK
	out, r = tp.send(0, eth(tcp(ipClientB, 6000, ipSNAT, pa, synAck, 7000, 9001, 64), macHostB, macEdgeIn))
	want = eth(tcp(ipSNAT, pb, ipClient, 5000, synAck, 7000, 9001, 63), macEdgeIn, macClient)
	if out == nil || !bytes.Equal(out.frame, want) {
		t.Fatalf("B's SYN-ACK to A's mapping: %v\n got %x\nwant %x", r, frameOf(out), want)
	}
}
