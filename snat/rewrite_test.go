package snat

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

var (
	client  = netip.MustParseAddr("10.0.0.2")
	server  = netip.MustParseAddr("192.0.2.80")
	natIP   = netip.MustParseAddr("198.51.100.1")
	client6 = netip.MustParseAddr("fd00::2")
	server6 = netip.MustParseAddr("2001:db8::80")
	natIP6  = netip.MustParseAddr("2001:db8:1::1")
)

// verifyChecksums checks every checksum of the IP packet pkt from scratch.
func verifyChecksums(t testing.TB, pkt []byte) {
	t.Helper()
	var proto uint8
	var l4, src, dst []byte
	v4 := pkt[0]>>4 == 4
	if v4 {
		ip := header.IPv4(pkt)
		if !ip.IsChecksumValid() {
			t.Fatalf("IPv4 header checksum invalid: % x", pkt)
		}
		proto, l4, src, dst = ip.Protocol(), ip.Payload(), pkt[12:16], pkt[16:20]
	} else {
		ip := header.IPv6(pkt)
		p, off, _, ok := ip.Transport()
		if !ok {
			t.Fatalf("bad IPv6 packet")
		}
		proto, l4, src, dst = p, pkt[off:header.IPv6Len+int(ip.PayloadLen())], pkt[8:24], pkt[24:40]
	}
	var sum uint16
	switch proto {
	case header.ProtoTCP:
		sum = header.Checksum(l4, header.PseudoHeaderChecksum(proto, src, dst, uint16(len(l4))))
	case header.ProtoUDP:
		l4 = l4[:header.UDP(l4).Length()]
		if v4 && header.UDP(l4).Checksum() == 0 {
			return // no checksum (RFC 768)
		}
		sum = header.Checksum(l4, header.PseudoHeaderChecksum(proto, src, dst, uint16(len(l4))))
	case header.ProtoICMP:
		sum = header.Checksum(l4, 0)
	case header.ProtoICMPv6:
		sum = header.Checksum(l4, header.PseudoHeaderChecksum(proto, src, dst, uint16(len(l4))))
	default:
		t.Fatalf("proto %d", proto)
	}
	if sum != 0xffff {
		t.Fatalf("proto %d checksum invalid (sum %#04x): % x", proto, sum, pkt)
	}
}

func parse(t testing.TB, pkt []byte) conntrack.Packet {
	t.Helper()
	var p conntrack.Packet
	if r := conntrack.Parse(pkt, 0, &p); r != drop.None {
		t.Fatalf("parse: %v", r)
	}
	return p
}

// flowSpecs returns the packets of one flow through the NAT: out is the
// inside packet (client -> server), outNAT the same after translation to
// nat:natPort, in the server's answer to nat:natPort and inNAT the answer
// translated back to the client.
func flowSpecs(proto uint8, cl, sv, nat netip.Addr, cport, natPort uint16, payload []byte) (out, outNAT, in, inNAT headertest.Spec) {
	out = headertest.Spec{Src: cl, Dst: sv, Proto: proto, SrcPort: cport, DstPort: 443,
		Flags: header.TCPFlagACK | header.TCPFlagPSH, Seq: 0x01020304, Ack: 0xa0b0c0d0, ID: 0x1234, DF: true, Payload: payload}
	in = headertest.Spec{Src: sv, Dst: nat, Proto: proto, SrcPort: 443, DstPort: natPort,
		Flags: header.TCPFlagACK, Seq: 0xa0b0c0d0, Ack: 0x01020304, ID: 0x4321, Payload: payload}
	switch proto {
	case header.ProtoICMP:
		out.ICMPType, in.ICMPType = header.ICMPv4EchoRequest, header.ICMPv4EchoReply
	case header.ProtoICMPv6:
		out.ICMPType, in.ICMPType = header.ICMPv6EchoRequest, header.ICMPv6EchoReply
	}
	if proto == header.ProtoICMP || proto == header.ProtoICMPv6 {
		out.Ident, out.ICMPSeq, out.SrcPort, out.DstPort = cport, 7, 0, 0
		in.Ident, in.ICMPSeq, in.SrcPort, in.DstPort = natPort, 7, 0, 0
	}
	outNAT, inNAT = out, in
	outNAT.Src = nat
	inNAT.Dst = cl
	if proto == header.ProtoICMP || proto == header.ProtoICMPv6 {
		outNAT.Ident, inNAT.Ident = natPort, cport
	} else {
		outNAT.SrcPort, inNAT.DstPort = natPort, cport
	}
	return
}

// Golden packets: every rewrite gives exactly the bytes of the translated
// packet built from scratch (headertest computes every checksum in full),
// and every checksum verifies.
func TestRewriteGolden(t *testing.T) {
	type fam struct {
		name         string
		cl, sv, nat  netip.Addr
		icmp         uint8
		natAddrBytes [16]byte
	}
	fams := []fam{
		{"v4", client, server, natIP, header.ProtoICMP, natIP.As16()},
		{"v6", client6, server6, natIP6, header.ProtoICMPv6, natIP6.As16()},
	}
	payloads := [][]byte{nil, []byte("hello, world!"), bytes.Repeat([]byte{0xff}, 64)}
	for _, f := range fams {
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP, f.icmp} {
			for pi, pl := range payloads {
				for _, ports := range [][2]uint16{{40000, 1024}, {1, 65535}, {65535, 0}, {0x1234, 0x1234}} {
					out, outNAT, in, inNAT := flowSpecs(proto, f.cl, f.sv, f.nat, ports[0], ports[1], pl)
					name := f.name + "/" + protoName(proto)
					pkt := headertest.Build(out)
					p := parse(t, pkt)
					orig := p.Key
					if r := RewriteOriginal(pkt, &p, conntrack.Translation{Addr: 1, Port: ports[1]}, f.natAddrBytes); r != drop.None {
						t.Fatalf("%s: RewriteOriginal: %v", name, r)
					}
					if want := headertest.Build(outNAT); !bytes.Equal(pkt, want) {
						t.Fatalf("%s payload %d ports %v: RewriteOriginal\n got % x\nwant % x", name, pi, ports, pkt, want)
					}
					verifyChecksums(t, pkt)

					rep := headertest.Build(in)
					rp := parse(t, rep)
					if r := RewriteReply(rep, &rp, &orig); r != drop.None {
						t.Fatalf("%s: RewriteReply: %v", name, r)
					}
					if want := headertest.Build(inNAT); !bytes.Equal(rep, want) {
						t.Fatalf("%s payload %d ports %v: RewriteReply\n got % x\nwant % x", name, pi, ports, rep, want)
					}
					verifyChecksums(t, rep)
				}
			}
		}
	}
}

func protoName(p uint8) string {
	switch p {
	case header.ProtoTCP:
		return "tcp"
	case header.ProtoUDP:
		return "udp"
	case header.ProtoICMP:
		return "icmp"
	case header.ProtoICMPv6:
		return "icmpv6"
	}
	return "other"
}

// A UDP datagram without a checksum (0, IPv4 only) keeps none.
func TestRewriteUDPNoChecksum(t *testing.T) {
	out, outNAT, in, inNAT := flowSpecs(header.ProtoUDP, client, server, natIP, 5000, 6000, []byte("abc"))
	for _, c := range []struct {
		spec, want headertest.Spec
		reply      bool
	}{{out, outNAT, false}, {in, inNAT, true}} {
		pkt := headertest.Build(c.spec)
		binary.BigEndian.PutUint16(pkt[header.IPv4MinLen+6:], 0)
		p := parse(t, pkt)
		var r drop.Reason
		if c.reply {
			k := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(client, 5000), netip.AddrPortFrom(server, 443))
			r = RewriteReply(pkt, &p, &k)
		} else {
			r = RewriteOriginal(pkt, &p, conntrack.Translation{Addr: 1, Port: 6000}, natIP.As16())
		}
		if r != drop.None {
			t.Fatal(r)
		}
		want := headertest.Build(c.want)
		binary.BigEndian.PutUint16(want[header.IPv4MinLen+6:], 0)
		if !bytes.Equal(pkt, want) {
			t.Fatalf("got % x\nwant % x", pkt, want)
		}
		verifyChecksums(t, pkt)
	}
}

// A UDP checksum that computes to 0 is sent as 0xFFFF (RFC 768), and a
// stored 0xFFFF is updated correctly.
func TestRewriteUDPChecksumZeroBecomesFFFF(t *testing.T) {
	for _, fam := range []struct{ cl, sv, nat netip.Addr }{{client, server, natIP}, {client6, server6, natIP6}} {
		found := false
		for w := 0; w < 1<<16 && !found; w++ {
			pl := []byte{byte(w >> 8), byte(w)}
			out, outNAT, _, _ := flowSpecs(header.ProtoUDP, fam.cl, fam.sv, fam.nat, 5000, 6000, pl)
			want := headertest.Build(outNAT)
			if header.UDP(want[len(want)-10:]).Checksum() != 0xffff {
				continue
			}
			found = true
			pkt := headertest.Build(out)
			p := parse(t, pkt)
			if r := RewriteOriginal(pkt, &p, conntrack.Translation{Addr: 1, Port: 6000}, fam.nat.As16()); r != drop.None {
				t.Fatal(r)
			}
			if !bytes.Equal(pkt, want) {
				t.Fatalf("got % x\nwant % x", pkt, want)
			}
			verifyChecksums(t, pkt)
			// And back: from a stored 0xFFFF to the original.
			orig := headertest.Build(out)
			if r := RewriteOriginal(pkt, &p, conntrack.Translation{Port: 5000}, fam.cl.As16()); r != drop.None {
				t.Fatal(r)
			}
			if !bytes.Equal(pkt, orig) {
				t.Fatalf("back: got % x\nwant % x", pkt, orig)
			}
		}
		if !found {
			t.Fatal("no payload gives a zero UDP checksum")
		}
	}
}

// An ICMPv4 echo reply that is all zeros has checksum 0xFFFF, which RFC
// 1624 equation 3 alone would give as 0.
func TestRewriteICMPAllZero(t *testing.T) {
	spec := headertest.Spec{Src: server, Dst: natIP, Proto: header.ProtoICMP, ICMPType: header.ICMPv4EchoReply, Ident: 7000, Payload: make([]byte, 8)}
	pkt := headertest.Build(spec)
	p := parse(t, pkt)
	k := conntrack.MakeKey(header.ProtoICMP, netip.AddrPortFrom(client, 0), netip.AddrPortFrom(server, 0))
	if r := RewriteReply(pkt, &p, &k); r != drop.None {
		t.Fatal(r)
	}
	spec.Dst, spec.Ident = client, 0
	want := headertest.Build(spec)
	if header.ICMPv4(want[20:]).Checksum() != 0xffff {
		t.Fatalf("fixture: checksum %#x", header.ICMPv4(want[20:]).Checksum())
	}
	if !bytes.Equal(pkt, want) {
		t.Fatalf("got % x\nwant % x", pkt, want)
	}
	verifyChecksums(t, pkt)
}

func TestRewriteRefusals(t *testing.T) {
	tcp4 := headertest.Build(headertest.Spec{Src: client, Dst: server, Proto: header.ProtoTCP, SrcPort: 1, DstPort: 2, Flags: header.TCPFlagSYN})
	tcp6 := headertest.Build(headertest.Spec{Src: client6, Dst: server6, Proto: header.ProtoTCP, SrcPort: 1, DstPort: 2, Flags: header.TCPFlagSYN})
	unreach := headertest.Build(headertest.Spec{Src: server, Dst: natIP, Proto: header.ProtoICMP,
		ICMPType: header.ICMPv4DestUnreachable, ICMPCode: 3, Quote: headertest.Build(headertest.Spec{Src: natIP, Dst: server, Proto: header.ProtoUDP, SrcPort: 1, DstPort: 2})[:28]})
	p4, p6, pu := parse(t, tcp4), parse(t, tcp6), parse(t, unreach)
	k4, k6 := p4.Key, p6.Key
	cases := []struct {
		name string
		fn   func() drop.Reason
		want drop.Reason
	}{
		{"v4 packet, v6 address", func() drop.Reason {
			return RewriteOriginal(tcp4, &p4, conntrack.Translation{Port: 9}, natIP6.As16())
		}, drop.SNATNoAddress},
		{"v6 packet, v4 address", func() drop.Reason {
			return RewriteOriginal(tcp6, &p6, conntrack.Translation{Port: 9}, natIP.As16())
		}, drop.SNATNoAddress},
		{"v4 reply, v6 flow", func() drop.Reason { return RewriteReply(tcp4, &p4, &k6) }, drop.SNATNoAddress},
		{"v6 reply, v4 flow", func() drop.Reason { return RewriteReply(tcp6, &p6, &k4) }, drop.SNATNoAddress},
		{"ICMP error", func() drop.Reason { return RewriteReply(unreach, &pu, &k4) }, drop.UnsupportedProto},
		{"truncated", func() drop.Reason {
			return RewriteOriginal(tcp4[:30], &p4, conntrack.Translation{Port: 9}, natIP.As16())
		}, drop.Truncated},
		{"empty", func() drop.Reason { return RewriteOriginal(nil, &p4, conntrack.Translation{Port: 9}, natIP.As16()) }, drop.Truncated},
		{"not IP", func() drop.Reason {
			b := append([]byte{0x20}, tcp4[1:]...)
			return RewriteOriginal(b, &p4, conntrack.Translation{Port: 9}, natIP.As16())
		}, drop.BadIPHeader},
	}
	for _, c := range cases {
		before4, before6 := bytes.Clone(tcp4), bytes.Clone(tcp6)
		if got := c.fn(); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
		if !bytes.Equal(before4, tcp4) || !bytes.Equal(before6, tcp6) {
			t.Errorf("%s: refused packet was modified", c.name)
		}
	}
}

// FuzzRewrite: random packets and translations. Translating and
// translating back restores the original bytes exactly, every intermediate
// packet has valid checksums and equals the translated packet built from
// scratch.
func FuzzRewrite(f *testing.F) {
	f.Add(false, uint8(0), uint16(40000), uint16(1024), []byte{198, 51, 100, 1}, []byte("GET /"), false)
	f.Add(true, uint8(1), uint16(53), uint16(65535), []byte{0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, []byte{}, false)
	f.Add(false, uint8(1), uint16(1), uint16(3), []byte{1, 2, 3, 4}, []byte{0xff, 0xff}, true)
	f.Add(false, uint8(2), uint16(0), uint16(0), []byte{0, 0, 0, 0}, make([]byte, 8), false)
	f.Add(true, uint8(2), uint16(9), uint16(1), []byte{0xfe, 0x80}, []byte("ping"), false)
	f.Fuzz(func(t *testing.T, v6 bool, sel uint8, cport, natPort uint16, natB, payload []byte, noUDPSum bool) {
		if len(payload) > 1400 {
			payload = payload[:1400]
		}
		var nb [16]byte
		copy(nb[:], natB)
		cl, sv := client, server
		icmp := header.ProtoICMP
		nat := netip.AddrFrom4([4]byte(nb[:4]))
		if v6 {
			cl, sv, icmp, nat = client6, server6, header.ProtoICMPv6, netip.AddrFrom16(nb)
		}
		proto := []uint8{header.ProtoTCP, header.ProtoUDP, icmp}[sel%3]
		natAddr := nat.As16()
		out, outNAT, in, inNAT := flowSpecs(proto, cl, sv, nat, cport, natPort, payload)
		noSum := noUDPSum && !v6 && proto == header.ProtoUDP
		build := func(s headertest.Spec) []byte {
			b := headertest.Build(s)
			if noSum {
				binary.BigEndian.PutUint16(b[header.IPv4MinLen+6:], 0)
			}
			return b
		}

		pkt := build(out)
		orig := bytes.Clone(pkt)
		p := parse(t, pkt)
		key := p.Key
		r := RewriteOriginal(pkt, &p, conntrack.Translation{Addr: 1, Port: natPort}, natAddr)
		if v6 && nat.Is4In6() {
			if r != drop.SNATNoAddress || !bytes.Equal(pkt, orig) {
				t.Fatalf("mapped address on v6: %v", r)
			}
			return
		}
		if r != drop.None {
			t.Fatalf("RewriteOriginal: %v", r)
		}
		verifyChecksums(t, pkt)
		if want := build(outNAT); !bytes.Equal(pkt, want) {
			t.Fatalf("RewriteOriginal\n got % x\nwant % x", pkt, want)
		}
		if r := RewriteOriginal(pkt, &p, conntrack.Translation{Port: key.SrcPort}, key.Src); r != drop.None {
			t.Fatal(r)
		}
		if !bytes.Equal(pkt, orig) {
			t.Fatalf("round trip\n got % x\nwant % x", pkt, orig)
		}

		rep := build(in)
		rorig := bytes.Clone(rep)
		rp := parse(t, rep)
		if r := RewriteReply(rep, &rp, &key); r != drop.None {
			t.Fatalf("RewriteReply: %v", r)
		}
		verifyChecksums(t, rep)
		if want := build(inNAT); !bytes.Equal(rep, want) {
			t.Fatalf("RewriteReply\n got % x\nwant % x", rep, want)
		}
		back := conntrack.Key{Src: natAddr, SrcPort: natPort}
		if r := RewriteReply(rep, &rp, &back); r != drop.None {
			t.Fatal(r)
		}
		if !bytes.Equal(rep, rorig) {
			t.Fatalf("reply round trip\n got % x\nwant % x", rep, rorig)
		}
	})
}
