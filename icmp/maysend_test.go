package icmp_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/icmp"
)

var allKinds = []icmp.Kind{icmp.TimeExceeded, icmp.FragNeeded, icmp.AdminProhibited, icmp.PortUnreachable, icmp.PacketTooBig}

func udp(src, dst string) []byte {
	return headertest.Build(headertest.Spec{Src: mustAddr(src), Dst: mustAddr(dst), Proto: header.ProtoUDP,
		SrcPort: 1000, DstPort: 53, Payload: []byte("x")})
}

func tcp(src, dst netip.Addr, flags uint8) []byte {
	return headertest.Build(headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoTCP,
		SrcPort: 40000, DstPort: 443, Flags: flags, Seq: 1, Ack: 2})
}

func icmpMsg(src, dst netip.Addr, typ, code uint8) []byte {
	proto := header.ProtoICMP
	if src.Is6() {
		proto = header.ProtoICMPv6
	}
	s := headertest.Spec{Src: src, Dst: dst, Proto: proto, ICMPType: typ, ICMPCode: code, Ident: 7, ICMPSeq: 1}
	if typ < 128 && (proto == header.ProtoICMPv6 || header.ICMPv4IsError(typ)) {
		s.Quote = udp(dst.String(), src.String()) // an error quoting something
		if src.Is4() && typ == header.ICMPv4EchoRequest {
			s.Quote = nil
		}
	}
	return headertest.Build(s)
}

// fragment4 returns the IPv4 packet pkt marked as a fragment at byte offset
// off, with MF more.
func fragment4(pkt []byte, off uint16, more bool) []byte {
	out := bytes.Clone(pkt)
	header.IPv4(out).SetFlagsFragment(false, more, off)
	header.IPv4(out).SetChecksum(header.IPv4(out).CalculateChecksum())
	return out
}

func TestMaySend(t *testing.T) {
	a, b := c4, s4
	a6, b6 := c6, s6
	badSum := udp("10.0.0.5", "198.51.100.7")
	badSum[10] ^= 0xff
	// A first fragment holding only 8 bytes of TCP header: the flags are not in it.
	shortTCP := headertest.Build(headertest.Spec{Src: a, Dst: b, Proto: 253, Payload: []byte{0x9c, 0x40, 1, 0xbb, 0, 0, 0, 1}})
	header.IPv4(shortTCP).SetProtocol(header.ProtoTCP)
	shortTCP = fragment4(shortTCP, 0, true)
	type row struct {
		name string
		pkt  []byte
		want drop.Reason // for every kind unless per-kind below
		frag drop.Reason // for FragNeeded, when it differs
		diff bool
	}
	rows := []row{
		// Allowed.
		{name: "v4 udp", pkt: udp("10.0.0.5", "198.51.100.7")},
		{name: "v6 udp", pkt: udp("fd00::5", "2001:db8:1::7")},
		{name: "v4 link-local source", pkt: udp("169.254.1.1", "198.51.100.7")},
		{name: "v6 link-local source", pkt: udp("fe80::1", "2001:db8:1::7")},
		{name: "v4 echo request", pkt: icmpMsg(a, b, header.ICMPv4EchoRequest, 0)},
		{name: "v4 echo reply", pkt: icmpMsg(a, b, header.ICMPv4EchoReply, 0)},
		{name: "v4 timestamp", pkt: icmpMsg(a, b, header.ICMPv4Timestamp, 0)},
		{name: "v6 echo request", pkt: icmpMsg(a6, b6, header.ICMPv6EchoRequest, 0)},
		{name: "v6 neighbor solicitation", pkt: icmpMsg(a6, b6, header.ICMPv6NeighborSolicit, 0)},
		{name: "v4 first fragment", pkt: fragment4(udp("10.0.0.5", "198.51.100.7"), 0, true)},
		{name: "v6 atomic fragment", pkt: withFragHeader(udp("fd00::5", "2001:db8:1::7"), 0, false)},
		{name: "v6 first fragment", pkt: withFragHeader(udp("fd00::5", "2001:db8:1::7"), 0, true)},
		{name: "v4 unknown protocol", pkt: headertest.Build(headertest.Spec{Src: a, Dst: b, Proto: 253})},

		// About an ICMP error (RFC 1812 4.3.2.7, RFC 4443 2.4(e.1, e.2)).
		{name: "v4 dest unreachable", pkt: icmpMsg(a, b, header.ICMPv4DestUnreachable, 3), want: drop.ICMPNotSentError},
		{name: "v4 time exceeded", pkt: icmpMsg(a, b, header.ICMPv4TimeExceeded, 0), want: drop.ICMPNotSentError},
		{name: "v4 parameter problem", pkt: icmpMsg(a, b, header.ICMPv4ParamProblem, 0), want: drop.ICMPNotSentError},
		{name: "v4 source quench", pkt: icmpMsg(a, b, header.ICMPv4SourceQuench, 0), want: drop.ICMPNotSentError},
		{name: "v4 redirect", pkt: icmpMsg(a, b, header.ICMPv4Redirect, 0), want: drop.ICMPNotSentError},
		{name: "v6 dest unreachable", pkt: icmpMsg(a6, b6, header.ICMPv6DestUnreachable, 4), want: drop.ICMPNotSentError},
		{name: "v6 packet too big", pkt: icmpMsg(a6, b6, header.ICMPv6PacketTooBig, 0), want: drop.ICMPNotSentError},
		{name: "v6 time exceeded", pkt: icmpMsg(a6, b6, header.ICMPv6TimeExceeded, 0), want: drop.ICMPNotSentError},
		{name: "v6 unassigned error type 100", pkt: icmpMsg(a6, b6, 100, 0), want: drop.ICMPNotSentError},
		{name: "v6 redirect", pkt: icmpMsg(a6, b6, header.ICMPv6Redirect, 0), want: drop.ICMPNotSentError},
		{name: "v6 error behind a fragment header", pkt: withFragHeader(icmpMsg(a6, b6, header.ICMPv6TimeExceeded, 0), 0, true), want: drop.ICMPNotSentError},

		// Non-first fragments.
		{name: "v4 middle fragment", pkt: fragment4(udp("10.0.0.5", "198.51.100.7"), 1480, true), want: drop.ICMPNotSentFragment},
		{name: "v4 last fragment", pkt: fragment4(udp("10.0.0.5", "198.51.100.7"), 8, false), want: drop.ICMPNotSentFragment},
		{name: "v6 non-first fragment", pkt: withFragHeader(udp("fd00::5", "2001:db8:1::7"), 1232, false), want: drop.ICMPNotSentFragment},

		// Sources that are not one unicast host.
		{name: "v4 source 0.0.0.0", pkt: udp("0.0.0.0", "198.51.100.7"), want: drop.ICMPNotSentSource},
		{name: "v4 source 0/8", pkt: udp("0.1.2.3", "198.51.100.7"), want: drop.ICMPNotSentSource},
		{name: "v4 source loopback", pkt: udp("127.0.0.1", "198.51.100.7"), want: drop.ICMPNotSentSource},
		{name: "v4 source multicast", pkt: udp("224.0.0.1", "198.51.100.7"), want: drop.ICMPNotSentSource},
		{name: "v4 source class E", pkt: udp("240.0.0.1", "198.51.100.7"), want: drop.ICMPNotSentSource},
		{name: "v4 source broadcast", pkt: udp("255.255.255.255", "198.51.100.7"), want: drop.ICMPNotSentSource},
		{name: "v6 source unspecified", pkt: udp("::", "2001:db8:1::7"), want: drop.ICMPNotSentSource},
		{name: "v6 source loopback", pkt: udp("::1", "2001:db8:1::7"), want: drop.ICMPNotSentSource},
		{name: "v6 source multicast", pkt: udp("ff02::1", "2001:db8:1::7"), want: drop.ICMPNotSentSource},

		// Multicast and broadcast destinations; IPv6 Packet Too Big excepted.
		{name: "v4 to multicast", pkt: udp("10.0.0.5", "224.0.0.251"), want: drop.ICMPNotSentMulticast},
		{name: "v4 to 239/8", pkt: udp("10.0.0.5", "239.255.255.250"), want: drop.ICMPNotSentMulticast},
		{name: "v4 to limited broadcast", pkt: udp("10.0.0.5", "255.255.255.255"), want: drop.ICMPNotSentMulticast},
		{name: "v6 to multicast", pkt: udp("fd00::5", "ff02::fb"), want: drop.ICMPNotSentMulticast, diff: true, frag: drop.None},

		// Malformed.
		{name: "v4 bad header checksum", pkt: badSum, want: drop.BadIPHeader},
		{name: "v4 truncated", pkt: udp("10.0.0.5", "198.51.100.7")[:25], want: drop.Truncated},
		{name: "v4 tcp header cut", pkt: shortTCP, want: drop.Truncated, diff: true, frag: drop.None},
		{name: "v6 truncated", pkt: udp("fd00::5", "2001:db8:1::7")[:45], want: drop.Truncated},
		{name: "v6 bad extension header", pkt: withFragHeader(withFragHeader(udp("fd00::5", "2001:db8:1::7"), 0, true), 0, true), want: drop.BadIPv6ExtHeader},
		{name: "empty", pkt: nil, want: drop.Truncated},
		{name: "not IP", pkt: []byte{0x20, 0, 0, 0}, want: drop.BadIPHeader},
	}
	// Rule N3: only a SYN may get an error; FragNeeded is exempt.
	for _, f := range []struct {
		name  string
		flags uint8
		ok    bool
	}{
		{"SYN", header.TCPFlagSYN, true},
		{"SYN ECE CWR (ECN setup)", header.TCPFlagSYN | header.TCPFlagECE | header.TCPFlagCWR, true},
		{"SYN-ACK", header.TCPFlagSYN | header.TCPFlagACK, false},
		{"ACK", header.TCPFlagACK, false},
		{"PSH-ACK", header.TCPFlagPSH | header.TCPFlagACK, false},
		{"FIN-ACK", header.TCPFlagFIN | header.TCPFlagACK, false},
		{"RST", header.TCPFlagRST, false},
		{"RST-ACK", header.TCPFlagRST | header.TCPFlagACK, false},
		{"SYN-PSH", header.TCPFlagSYN | header.TCPFlagPSH, false},
		{"SYN-FIN", header.TCPFlagSYN | header.TCPFlagFIN, false},
		{"no flags", 0, false},
	} {
		want := drop.None
		if !f.ok {
			want = drop.ICMPNotSentTCPNotSYN
		}
		rows = append(rows,
			row{name: "v4 tcp " + f.name, pkt: tcp(a, b, f.flags), want: want, diff: true, frag: drop.None},
			row{name: "v6 tcp " + f.name, pkt: tcp(a6, b6, f.flags), want: want, diff: true, frag: drop.None})
	}
	for _, r := range rows {
		for _, k := range allKinds {
			want := r.want
			if (k == icmp.FragNeeded || k == icmp.PacketTooBig) && r.diff {
				want = r.frag
			}
			if got := icmp.MaySend(r.pkt, k); got != want {
				t.Errorf("%s, %v: MaySend = %v, want %v", r.name, k, got, want)
			}
		}
	}
	if got := icmp.MaySend(udp("10.0.0.5", "198.51.100.7"), icmp.NoError); got != drop.ICMPBuildFailed {
		t.Errorf("MaySend(NoError) = %v", got)
	}
	if got := icmp.MaySend(udp("10.0.0.5", "198.51.100.7"), icmp.Kind(77)); got != drop.ICMPBuildFailed {
		t.Errorf("MaySend(77) = %v", got)
	}
}

// TestMaySendOrder: when several rules apply, the first in the documented
// order is the reason.
func TestMaySendOrder(t *testing.T) {
	// A non-first fragment from a multicast source to a multicast group.
	p := fragment4(udp("224.0.0.1", "224.0.0.2"), 8, false)
	if got := icmp.MaySend(p, icmp.TimeExceeded); got != drop.ICMPNotSentFragment {
		t.Errorf("got %v, want fragment first", got)
	}
	// A TCP ACK from the loopback address: source before N3.
	if got := icmp.MaySend(tcp(mustAddr("127.0.0.1"), s4, header.TCPFlagACK), icmp.TimeExceeded); got != drop.ICMPNotSentSource {
		t.Errorf("got %v, want source first", got)
	}
}
