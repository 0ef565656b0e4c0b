package dataplane

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/internal/netnstest"
	"github.com/edgegw/edge/snat"
)

// TestICMPOnTheWire injects packets from the client side of a real engine
// and captures what comes back: ping through SNAT (the server's kernel
// answers), TTL 1 (time exceeded from edge), a rejected UDP datagram (ICMP
// administratively prohibited), a rejected TCP SYN (a reset), and a
// datagram (IPv4: with DF) larger than the outside link's MTU (fragmentation
// needed / packet too big with the MTU); in each family.
func TestICMPOnTheWire(t *testing.T) { forEachLabFamily(t, testICMPOnTheWire) }

func testICMPOnTheWire(t *testing.T, fam labFamily) {
	netnstest.Require(t)
	client, edge, server := netnstest.New(t, "wc"), netnstest.New(t, "we"), netnstest.New(t, "ws")
	netnstest.Veth(t, client, "c0", "", edge, "in", "10.0.0.1/24")
	netnstest.Veth(t, edge, "out", "203.0.113.1/24", server, "s0", "203.0.113.2/24")
	rules := firewall.RuleSet{Rules: []firewall.Rule{
		{Name: "no-tftp", Zone: firewall.Inside, Proto: header.ProtoUDP, DstPorts: []firewall.PortRange{{Lo: 69, Hi: 69}}, Action: firewall.Reject},
		{Name: "no-telnet", Zone: firewall.Inside, Proto: header.ProtoTCP, DstPorts: []firewall.PortRange{{Lo: 23, Hi: 23}}, Action: firewall.Reject},
		{Name: "outbound", Zone: firewall.Inside, Action: firewall.Allow},
	}}
	cfg := labConfig(rules)
	cfg.Outside.MTU, cfg.SNAT = 1280, &snat.Config{Mode: snat.Automap}
	edgeIn := netip.MustParseAddr("10.0.0.1")
	if fam.dualStack {
		netnstest.AddIPv6(t, edge, "in", netnstest.EdgeInsideIPv6+"/64")
		netnstest.AddIPv6(t, edge, "out", netnstest.EdgeOutsideIPv6+"/64")
		netnstest.AddIPv6(t, server, "s0", netnstest.ServerIPv6+"/64")
		cfg.Routes = append(cfg.Routes, Route{Dst: fam.inside, Port: 0}, Route{Dst: fam.outside, Port: 1})
		edgeIn = netip.MustParseAddr(netnstest.EdgeInsideIPv6)
	}
	cli := openRaw(t, client, "c0")
	cliIP, srvIP := fam.wireClient, fam.server
	edge.Run(t, "ip", "neigh", "replace", cliIP.String(), "lladdr", net.HardwareAddr(cli.mac[:]).String(), "dev", "in", "nud", "permanent")
	eng := startEngine(t, edge, cfg)
	inMAC := ifaceMAC(t, edge, "in")
	toClient := func(p wirePacket) bool { return p.dst == cliIP }
	// exchange sends frame until something addressed to the client comes
	// back (the first tries may be lost while edge resolves the server).
	exchange := func(name string, spec headertest.Spec) wirePacket {
		t.Helper()
		for try := 0; try < 10; try++ {
			cli.send(t, headertest.BuildEth(spec, cli.mac, inMAC))
			if got := cli.captureIP(200*time.Millisecond, toClient); len(got) > 0 {
				p, _ := parseWire(got[0])
				return p
			}
		}
		t.Fatalf("%s: nothing came back; stats %+v", name, eng.Stats())
		return wirePacket{}
	}
	// icmpMsg returns p's ICMP type and code, or fails the test.
	icmpMsg := func(name string, p wirePacket) (typ, code uint8) {
		t.Helper()
		if p.proto != fam.icmp || len(p.payload) < 8 {
			t.Fatalf("%s: protocol %d, %d bytes: not ICMP of the family", name, p.proto, len(p.payload))
		}
		return p.payload[0], p.payload[1]
	}

	// Ping through SNAT: the server's kernel answers, edge translates back.
	p := exchange("ping", headertest.Spec{Src: cliIP, Dst: srvIP, Proto: fam.icmp, ICMPType: fam.echoRequest,
		Ident: 4242, ICMPSeq: 1, Payload: []byte("ping")})
	if typ, _ := icmpMsg("ping", p); p.src != srvIP || typ != fam.echoReply || binary.BigEndian.Uint16(p.payload[4:]) != 4242 {
		t.Fatalf("ping: got %v type %d id %d", p.src, typ, binary.BigEndian.Uint16(p.payload[4:]))
	}
	// TTL 1: time exceeded from edge's inside address.
	p = exchange("ttl 1", headertest.Spec{Src: cliIP, Dst: srvIP, Proto: header.ProtoUDP, SrcPort: 33434, DstPort: 33435, TTL: 1})
	if typ, _ := icmpMsg("ttl 1", p); p.src != edgeIn || typ != fam.timeExceeded {
		t.Fatalf("ttl 1: got %v type %d", p.src, typ)
	}
	// Reject, UDP: ICMP administratively prohibited.
	p = exchange("reject udp", headertest.Spec{Src: cliIP, Dst: srvIP, Proto: header.ProtoUDP, SrcPort: 5000, DstPort: 69})
	if typ, code := icmpMsg("reject udp", p); typ != fam.unreachable || code != fam.adminProhibited {
		t.Fatalf("reject udp: ICMP %d/%d, want %d/%d", typ, code, fam.unreachable, fam.adminProhibited)
	}
	// Reject, TCP SYN: a reset from the server's address.
	p = exchange("reject tcp", headertest.Spec{Src: cliIP, Dst: srvIP, Proto: header.ProtoTCP, SrcPort: 5001, DstPort: 23,
		Flags: header.TCPFlagSYN, Seq: 7})
	if tcp := header.TCP(p.payload); p.proto != header.ProtoTCP || p.src != srvIP || tcp.Flags()&header.TCPFlagRST == 0 || tcp.Ack() != 8 {
		t.Fatalf("reject tcp: proto %d from %v flags %#x ack %d", p.proto, p.src, tcp.Flags(), tcp.Ack())
	}
	// Larger than the outside MTU (1280), DF for IPv4: fragmentation needed
	// or packet too big, MTU 1280.
	p = exchange("too big", headertest.Spec{Src: cliIP, Dst: srvIP, Proto: header.ProtoUDP, SrcPort: 5002, DstPort: 9,
		DF: true, Payload: make([]byte, 1400)})
	typ, code := icmpMsg("too big", p)
	mtu := uint32(binary.BigEndian.Uint16(p.payload[6:])) // RFC 1191
	if fam.icmp == header.ProtoICMPv6 {
		mtu = binary.BigEndian.Uint32(p.payload[4:]) // RFC 4443 3.2
	}
	if typ != fam.tooBigType || code != fam.tooBigCode || mtu != 1280 {
		t.Fatalf("too big: ICMP %d/%d mtu %d, want %d/%d mtu 1280", typ, code, mtu, fam.tooBigType, fam.tooBigCode)
	}
	if st := eng.Stats(); st.RST == 0 || st.Created == 0 {
		t.Fatalf("stats %+v", st)
	}
}
