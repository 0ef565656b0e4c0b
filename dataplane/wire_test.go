package dataplane

import (
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
// administratively prohibited), a rejected TCP SYN (a reset), and a DF
// datagram larger than the outside link's MTU (fragmentation needed with
// the MTU).
func TestICMPOnTheWire(t *testing.T) {
	netnstest.Require(t)
	client, edge, server := netnstest.New(t, "wc"), netnstest.New(t, "we"), netnstest.New(t, "ws")
	netnstest.Veth(t, client, "c0", "", edge, "in", "10.0.0.1/24")
	netnstest.Veth(t, edge, "out", "203.0.113.1/24", server, "s0", "203.0.113.2/24")
	cli := openRaw(t, client, "c0")
	cliIP, srvIP, edgeIn := netip.MustParseAddr("10.0.0.50"), netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("10.0.0.1")
	edge.Run(t, "ip", "neigh", "replace", cliIP.String(), "lladdr", net.HardwareAddr(cli.mac[:]).String(), "dev", "in", "nud", "permanent")
	rules := firewall.RuleSet{Rules: []firewall.Rule{
		{Name: "no-tftp", Zone: firewall.Inside, Proto: header.ProtoUDP, DstPorts: []firewall.PortRange{{Lo: 69, Hi: 69}}, Action: firewall.Reject},
		{Name: "no-telnet", Zone: firewall.Inside, Proto: header.ProtoTCP, DstPorts: []firewall.PortRange{{Lo: 23, Hi: 23}}, Action: firewall.Reject},
		{Name: "outbound", Zone: firewall.Inside, Action: firewall.Allow},
	}}
	cfg := labConfig(rules)
	cfg.Outside.MTU, cfg.SNAT = 1280, &snat.Config{Mode: snat.Automap}
	eng := startEngine(t, edge, cfg)
	inMAC := ifaceMAC(t, edge, "in")
	toClient := func(ip header.IPv4) bool { return ip.DstAddr() == cliIP }
	// exchange sends frame until something addressed to the client comes
	// back (the first tries may be lost while edge resolves the server).
	exchange := func(name string, spec headertest.Spec) header.IPv4 {
		t.Helper()
		for try := 0; try < 10; try++ {
			cli.send(t, headertest.BuildEth(spec, cli.mac, inMAC))
			if got := cli.capture(200*time.Millisecond, toClient); len(got) > 0 {
				return header.IPv4(got[0][header.EthernetLen:])
			}
		}
		t.Fatalf("%s: nothing came back; stats %+v", name, eng.Stats())
		return nil
	}

	// Ping through SNAT: the server's kernel answers, edge translates back.
	ip := exchange("ping", headertest.Spec{Src: cliIP, Dst: srvIP, Proto: header.ProtoICMP, ICMPType: header.ICMPv4EchoRequest,
		Ident: 4242, ICMPSeq: 1, Payload: []byte("ping")})
	if m := header.ICMPv4(ip.Payload()); ip.SrcAddr() != srvIP || m.Type() != header.ICMPv4EchoReply || m.Ident() != 4242 {
		t.Fatalf("ping: got %v type %d id %d", ip.SrcAddr(), m.Type(), m.Ident())
	}
	// TTL 1: time exceeded from edge's inside address.
	ip = exchange("ttl 1", headertest.Spec{Src: cliIP, Dst: srvIP, Proto: header.ProtoUDP, SrcPort: 33434, DstPort: 33435, TTL: 1})
	if m := header.ICMPv4(ip.Payload()); ip.SrcAddr() != edgeIn || m.Type() != header.ICMPv4TimeExceeded {
		t.Fatalf("ttl 1: got %v type %d", ip.SrcAddr(), m.Type())
	}
	// Reject, UDP: ICMP administratively prohibited.
	ip = exchange("reject udp", headertest.Spec{Src: cliIP, Dst: srvIP, Proto: header.ProtoUDP, SrcPort: 5000, DstPort: 69})
	if m := header.ICMPv4(ip.Payload()); m.Type() != header.ICMPv4DestUnreachable || m.Code() != 13 {
		t.Fatalf("reject udp: ICMP %d/%d", m.Type(), m.Code())
	}
	// Reject, TCP SYN: a reset from the server's address.
	ip = exchange("reject tcp", headertest.Spec{Src: cliIP, Dst: srvIP, Proto: header.ProtoTCP, SrcPort: 5001, DstPort: 23,
		Flags: header.TCPFlagSYN, Seq: 7})
	if tcp := header.TCP(ip.Payload()); ip.SrcAddr() != srvIP || tcp.Flags()&header.TCPFlagRST == 0 || tcp.Ack() != 8 {
		t.Fatalf("reject tcp: from %v flags %#x ack %d", ip.SrcAddr(), tcp.Flags(), tcp.Ack())
	}
	// DF larger than the outside MTU (1280): fragmentation needed, MTU 1280.
	ip = exchange("frag needed", headertest.Spec{Src: cliIP, Dst: srvIP, Proto: header.ProtoUDP, SrcPort: 5002, DstPort: 9,
		DF: true, Payload: make([]byte, 1400)})
	if m := header.ICMPv4(ip.Payload()); m.Type() != header.ICMPv4DestUnreachable || m.Code() != 4 || m.MTU() != 1280 {
		t.Fatalf("frag needed: ICMP %d/%d mtu %d", m.Type(), m.Code(), m.MTU())
	}
	if st := eng.Stats(); st.RST == 0 || st.Created == 0 {
		t.Fatalf("stats %+v", st)
	}
}
