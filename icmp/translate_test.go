package icmp_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/icmp"
)

const (
	cport, sport, nport = 40000, 443, 61000
	echoID              = 0x1234 // the client's echo identifier (cport for echo flows)
)

// family is one address world: client C, SNAT address N, server S, an
// outside router R and an inside router In.
type family struct {
	name             string
	c, n, s, r, in   netip.Addr
	icmpProto        uint8
	echoReq, echoRep uint8
}

var families = []family{
	{"v4", c4, n4, s4, r4, in4, header.ProtoICMP, header.ICMPv4EchoRequest, header.ICMPv4EchoReply},
	{"v6", c6, n6, s6, r6, in6, header.ProtoICMPv6, header.ICMPv6EchoRequest, header.ICMPv6EchoReply},
}

var protos = []struct {
	name  string
	proto uint8 // 0: the family's ICMP (echo)
}{{"tcp", header.ProtoTCP}, {"udp", header.ProtoUDP}, {"echo", 0}}

func payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*13 + 5)
	}
	return p
}

// outbound returns a packet from the client to the server: the flow's
// opening packet (TCP SYN, UDP datagram, echo request) with TTL ttl, or, if
// big, a 1400-byte DF packet of the flow (for TCP a data segment: ACK set).
func outbound(f family, proto uint8, big bool, ttl uint8) []byte {
	s := headertest.Spec{Src: f.c, Dst: f.s, TTL: ttl, ID: 0x4242, DF: true, SrcPort: cport, DstPort: sport}
	if big {
		s.Payload = payload(1400)
	} else {
		s.Payload = []byte("hello, server")
	}
	switch proto {
	case header.ProtoTCP:
		s.Proto, s.Seq = proto, 1000
		if big {
			s.Flags, s.Ack = header.TCPFlagACK|header.TCPFlagPSH, 5001
		} else {
			s.Flags, s.MSS, s.Payload = header.TCPFlagSYN, 1460, nil
		}
	case header.ProtoUDP:
		s.Proto = proto
	default:
		s.Proto, s.ICMPType, s.Ident, s.ICMPSeq = f.icmpProto, f.echoReq, echoID, 1
	}
	return headertest.Build(s)
}

// fromServer returns a reply as the server sends it, to N:nport (SYN-ACK or a
// big data segment, UDP datagram, echo reply with the translated identifier).
func fromServer(f family, proto uint8, big bool) []byte {
	s := headertest.Spec{Src: f.s, Dst: f.n, ID: 0x5151, DF: true, SrcPort: sport, DstPort: nport}
	if big {
		s.Payload = payload(1400)
	} else {
		s.Payload = []byte("hello, client")
	}
	switch proto {
	case header.ProtoTCP:
		s.Proto, s.Seq, s.Ack = proto, 5000, 1001
		if big {
			s.Flags = header.TCPFlagACK
		} else {
			s.Flags, s.MSS, s.Payload = header.TCPFlagSYN|header.TCPFlagACK, 1400, nil
		}
	case header.ProtoUDP:
		s.Proto = proto
	default:
		s.Proto, s.ICMPType, s.Ident, s.ICMPSeq = f.icmpProto, f.echoRep, nport, 1
	}
	return headertest.Build(s)
}

// natTable is a conntrack table holding one flow, opened by the client's
// first packet and translated to N:nport, as the data plane would create it.
type natTable struct {
	tbl  *conntrack.Table
	sh   *conntrack.Shard
	orig conntrack.Key
	tr   conntrack.Translation
}

func newNATTable(t *testing.T, f family, proto uint8) *natTable {
	t.Helper()
	tbl, err := conntrack.New(conntrack.Config{MaxFlows: 64, HistorySize: 16, EventRingSize: 16, Memory: conntrack.MemoryHeap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tbl.Close)
	idx, err := tbl.InternAddr(f.n)
	if err != nil {
		t.Fatal(err)
	}
	nt := &natTable{tbl: tbl, sh: tbl.Shard(0), tr: conntrack.Translation{Addr: idx, Port: nport}}
	var p conntrack.Packet
	if r := conntrack.Parse(outbound(f, proto, false, 64), 0, &p); r != drop.None {
		t.Fatalf("Parse opening packet: %v", r)
	}
	if v := nt.sh.Track(&p, conntrack.Second); v.Action != conntrack.Open {
		t.Fatalf("Track opening packet: %+v", v)
	}
	if v := nt.sh.Create(&p, conntrack.NewFlow{NAT: nt.tr}, conntrack.Second); v.Reason != drop.None {
		t.Fatalf("Create: %+v", v)
	}
	nt.orig = p.Key
	return nt
}

// translate does what the data plane does with an ICMP error: Parse, Track
// (which must find the flow in direction want and whose key must be
// wantKey), then TranslateRelated with the flow's key and translation.
func (nt *natTable) translate(t *testing.T, pkt []byte, want conntrack.Dir, wantKey conntrack.Key) drop.Reason {
	t.Helper()
	var p conntrack.Packet
	if r := conntrack.Parse(pkt, 0, &p); r != drop.None || p.Kind != conntrack.KindRelated {
		t.Fatalf("Parse error: %v, kind %v", r, p.Kind)
	}
	if p.Key != wantKey {
		t.Fatalf("error's key %v, want %v", p.Key, wantKey)
	}
	v := nt.sh.Track(&p, 2*conntrack.Second)
	if v.Action != conntrack.Forward || v.Dir != want {
		t.Fatalf("Track error: %+v, want Forward %v", v, want)
	}
	orig := *nt.sh.Key(v.Flow)
	a, port := nt.sh.NAT(v.Flow)
	if orig != nt.orig || a != nt.tr.Addr || port != nt.tr.Port {
		t.Fatalf("flow %v %d:%d, want %v %+v", orig, a, port, nt.orig, nt.tr)
	}
	return icmp.TranslateRelated(pkt, &p, v.Dir, orig, conntrack.Translation{Addr: a, Port: port}, nt.tbl.NATAddr(a).As16())
}

// TestTranslateRoundTrip: a router outside builds an error about the packet
// edge translated; edge translates it back; the client must receive exactly
// the error the router would have sent without NAT. And from inside: an
// error about a reply edge delivered must reach the server as the error the
// server would get had edge's address itself sent it.
func TestTranslateRoundTrip(t *testing.T) {
	for _, f := range families {
		for _, pr := range protos {
			proto := pr.proto
			if proto == 0 {
				proto = f.icmpProto
			}
			for _, tc := range []struct {
				name string
				kind icmp.Kind
				big  bool
				mtu  uint32
			}{
				{"time-exceeded", icmp.TimeExceeded, false, 0},
				{"frag-needed", icmp.FragNeeded, true, 1280},
				{"admin-prohibited", icmp.AdminProhibited, false, 0},
			} {
				t.Run(f.name+"/"+pr.name+"/"+tc.name+"/reply", func(t *testing.T) {
					nt := newNATTable(t, f, proto)
					orig := outbound(f, proto, tc.big, 1)
					sent := snat(orig, f.n, nport) // what edge sent, SNAT applied
					pkt := build(t, tc.kind, f.r, sent, tc.mtu)
					replyKey := nt.sh.ReplyKey(&nt.orig, nt.tr)
					if r := nt.translate(t, pkt, conntrack.Reply, replyKey); r != drop.None {
						t.Fatalf("TranslateRelated: %v", r)
					}
					want := build(t, tc.kind, f.r, orig, tc.mtu) // the error without NAT
					if !bytes.Equal(pkt, want) {
						t.Fatalf("translated:\n got %x\nwant %x", pkt, want)
					}
					if e := sumErrors(pkt); e != "" {
						t.Errorf("checksum: %s", e)
					}
				})
				t.Run(f.name+"/"+pr.name+"/"+tc.name+"/original", func(t *testing.T) {
					nt := newNATTable(t, f, proto)
					sent := fromServer(f, proto, tc.big) // as the server sent it
					delivered := dnat(sent, f.c, cport)  // as edge delivered it
					if proto == header.ProtoICMP || proto == header.ProtoICMPv6 {
						delivered = dnat(sent, f.c, echoID)
					}
					pkt := build(t, tc.kind, f.in, delivered, tc.mtu) // an inside router's error
					if r := nt.translate(t, pkt, conntrack.Original, nt.orig); r != drop.None {
						t.Fatalf("TranslateRelated: %v", r)
					}
					want := build(t, tc.kind, f.n, sent, tc.mtu) // as if N itself sent it
					if !bytes.Equal(pkt, want) {
						t.Fatalf("translated:\n got %x\nwant %x", pkt, want)
					}
					if e := sumErrors(pkt); e != "" {
						t.Errorf("checksum: %s", e)
					}
				})
			}
		}
	}
}

// TestTranslateShortQuotes: routers that quote only the IP header and 8
// bytes (RFC 792), or a little more: the TCP checksum (bytes 16-17) is
// updated exactly when it is quoted.
func TestTranslateShortQuotes(t *testing.T) {
	for _, f := range families {
		for _, pr := range protos {
			proto := pr.proto
			if proto == 0 {
				proto = f.icmpProto
			}
			hl := header.IPv4MinLen
			if f.c.Is6() {
				hl = header.IPv6Len
			}
			for _, extra := range []int{8, 12, 16, 18, 20} {
				t.Run(f.name+"/"+pr.name, func(t *testing.T) {
					nt := newNATTable(t, f, proto)
					orig := outbound(f, proto, false, 1)
					sent := snat(orig, f.n, nport)
					errSpec := func(dst netip.Addr, quote []byte) []byte {
						typ, code := icmp.TimeExceeded.TypeCode(f.c.Is6())
						return headertest.Build(headertest.Spec{Src: f.r, Dst: dst, Proto: f.icmpProto,
							ICMPType: typ, ICMPCode: code, Quote: quote})
					}
					pkt := errSpec(f.n, sent[:hl+extra])
					if r := nt.translate(t, pkt, conntrack.Reply, nt.sh.ReplyKey(&nt.orig, nt.tr)); r != drop.None {
						t.Fatalf("TranslateRelated: %v", r)
					}
					if want := errSpec(f.c, orig[:hl+extra]); !bytes.Equal(pkt, want) {
						t.Fatalf("quote of %d+%d:\n got %x\nwant %x", hl, extra, pkt, want)
					}
					if e := sumErrors(pkt); e != "" {
						t.Errorf("checksum: %s", e)
					}
				})
			}
		}
	}
}

// TestTranslatePortUnreachableFromClient: the client itself answers a UDP
// reply with port unreachable; the server must see it from N about N:nport.
func TestTranslatePortUnreachableFromClient(t *testing.T) {
	for _, f := range families {
		nt := newNATTable(t, f, header.ProtoUDP)
		sent := fromServer(f, header.ProtoUDP, false)
		pkt := build(t, icmp.PortUnreachable, f.c, dnat(sent, f.c, cport), 0)
		if r := nt.translate(t, pkt, conntrack.Original, nt.orig); r != drop.None {
			t.Fatalf("%s: %v", f.name, r)
		}
		if want := build(t, icmp.PortUnreachable, f.n, sent, 0); !bytes.Equal(pkt, want) {
			t.Errorf("%s:\n got %x\nwant %x", f.name, pkt, want)
		}
	}
}

// TestTranslateUDPNoChecksum: a quoted UDP/IPv4 checksum of 0 (none) stays 0.
func TestTranslateUDPNoChecksum(t *testing.T) {
	f := families[0]
	nt := newNATTable(t, f, header.ProtoUDP)
	orig := outbound(f, header.ProtoUDP, false, 1)
	header.UDP(orig[20:]).SetChecksum(0)
	sent := snat(orig, f.n, nport)
	header.UDP(sent[20:]).SetChecksum(0)
	pkt := build(t, icmp.TimeExceeded, f.r, sent, 0)
	if r := nt.translate(t, pkt, conntrack.Reply, nt.sh.ReplyKey(&nt.orig, nt.tr)); r != drop.None {
		t.Fatal(r)
	}
	if want := build(t, icmp.TimeExceeded, f.r, orig, 0); !bytes.Equal(pkt, want) {
		t.Fatalf("\n got %x\nwant %x", pkt, want)
	}
}

// TestTranslateRefuses: every refusal leaves the packet as it was.
func TestTranslateRefuses(t *testing.T) {
	for _, f := range families {
		v4 := f.c.Is4()
		sent := snat(outbound(f, header.ProtoUDP, false, 1), f.n, nport)
		good := build(t, icmp.TimeExceeded, f.r, sent, 0)
		var p conntrack.Packet
		if r := conntrack.Parse(good, 0, &p); r != drop.None || p.Kind != conntrack.KindRelated {
			t.Fatal(r)
		}
		orig := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(f.c, cport), netip.AddrPortFrom(f.s, sport))
		tr := conntrack.Translation{Addr: 1, Port: nport}
		nat := f.n.As16()
		l4 := int(p.L4Off)

		type mod struct {
			name string
			pkt  func([]byte) []byte
			p    func(*conntrack.Packet)
			dir  *conntrack.Dir
			orig func(*conntrack.Key)
			tr   conntrack.Translation
			nat  *[16]byte
			want drop.Reason
		}
		original, invalid := conntrack.Original, conntrack.Dir(7)
		otherFam := families[1].n.As16()
		if !v4 {
			otherFam = families[0].n.As16()
		}
		mods := []mod{
			{name: "bad ICMP checksum", pkt: func(b []byte) []byte { b[l4+2] ^= 1; return b }, want: drop.ICMPBadChecksum},
			{name: "not related", p: func(p *conntrack.Packet) { p.Kind = conntrack.KindFlow }, want: drop.BadICMP},
			{name: "wrong inner offset", p: func(p *conntrack.Packet) { p.InnerOff += 4 }, want: drop.BadICMP},
			{name: "wrong inner L4 offset", p: func(p *conntrack.Packet) { p.InnerL4 += 4 }, want: drop.BadICMP},
			{name: "inner L4 beyond packet", p: func(p *conntrack.Packet) { p.InnerL4 = 2000 }, want: drop.BadICMP},
			{name: "wrong L4 offset", p: func(p *conntrack.Packet) { p.L4Off += 8; p.InnerOff += 8; p.InnerL4 += 8 }, want: drop.BadICMP},
			{name: "wrong protocol", p: func(p *conntrack.Packet) { p.Key.Proto = header.ProtoTCP }, orig: func(k *conntrack.Key) { k.Proto = header.ProtoTCP }, want: drop.BadICMP},
			{name: "unknown protocol", p: func(p *conntrack.Packet) { p.Key.Proto = 253 }, orig: func(k *conntrack.Key) { k.Proto = 253 }, want: drop.BadICMP},
			{name: "flow of another protocol", orig: func(k *conntrack.Key) { k.Proto = header.ProtoTCP }, want: drop.ICMPNoFlow},
			{name: "other NAT port", tr: conntrack.Translation{Addr: 1, Port: nport + 1}, want: drop.ICMPNoFlow},
			{name: "other NAT address", nat: &[16]byte{15: 1}, want: drop.ICMPNoFlow},
			{name: "NAT address of the other family", nat: &otherFam, want: drop.ICMPNoFlow},
			{name: "client of the other family", orig: func(k *conntrack.Key) { k.Src = otherFam }, want: drop.ICMPNoFlow},
			{name: "wrong direction", dir: &original, want: drop.ICMPNoFlow},
			{name: "invalid direction", dir: &invalid, want: drop.BadICMP},
			{name: "truncated", pkt: func(b []byte) []byte { return b[:len(b)-1] }, want: drop.BadIPHeader},
			{name: "empty", pkt: func(b []byte) []byte { return b[:0] }, want: drop.Truncated},
			{name: "not IP", pkt: func(b []byte) []byte { b[0] = 0x15; return b }, want: drop.BadIPHeader},
		}
		if v4 {
			mods = append(mods,
				mod{name: "bad quoted IPv4 checksum", pkt: func(b []byte) []byte {
					b[p.InnerOff+10] ^= 1
					b[l4+2] ^= 1 // keep the ICMP checksum right
					return b
				}, want: drop.ICMPBadChecksum},
				mod{name: "fragment", pkt: func(b []byte) []byte {
					header.IPv4(b).SetFlagsFragment(false, true, 0)
					headertest.FixChecksums(b)
					return b
				}, want: drop.BadICMP})
		}
		for _, m := range mods {
			pkt := bytes.Clone(good)
			if m.pkt != nil {
				pkt = m.pkt(pkt)
			}
			before := bytes.Clone(pkt)
			pp, o, tt, n, d := p, orig, tr, nat, conntrack.Reply
			if m.p != nil {
				m.p(&pp)
			}
			if m.orig != nil {
				m.orig(&o)
			}
			if m.tr != (conntrack.Translation{}) {
				tt = m.tr
			}
			if m.nat != nil {
				n = *m.nat
			}
			if m.dir != nil {
				d = *m.dir
			}
			if r := icmp.TranslateRelated(pkt, &pp, d, o, tt, n); r != m.want {
				t.Errorf("%s %s: %v, want %v", f.name, m.name, r, m.want)
			}
			if !bytes.Equal(pkt, before) {
				t.Errorf("%s %s: packet changed", f.name, m.name)
			}
		}
		// An untranslated flow needs nothing.
		pkt := bytes.Clone(good)
		if r := icmp.TranslateRelated(pkt, &p, conntrack.Reply, orig, conntrack.Translation{}, [16]byte{}); r != drop.None || !bytes.Equal(pkt, good) {
			t.Errorf("%s untranslated: %v, changed %v", f.name, r, !bytes.Equal(pkt, good))
		}
	}
}

// TestTranslateQuotedExtensionHeaders: the quoted IPv6 packet is a first
// fragment, its UDP header behind a Fragment header.
func TestTranslateQuotedExtensionHeaders(t *testing.T) {
	f := families[1]
	nt := newNATTable(t, f, header.ProtoUDP)
	orig := outbound(f, header.ProtoUDP, true, 1)
	sent := withFragHeader(snat(orig, f.n, nport), 0, true)
	orig = withFragHeader(orig, 0, true)
	pkt := build(t, icmp.TimeExceeded, f.r, sent, 0)
	if r := nt.translate(t, pkt, conntrack.Reply, nt.sh.ReplyKey(&nt.orig, nt.tr)); r != drop.None {
		t.Fatal(r)
	}
	if want := build(t, icmp.TimeExceeded, f.r, orig, 0); !bytes.Equal(pkt, want) {
		t.Fatalf("\n got %x\nwant %x", pkt, want)
	}
	if e := sumErrors(pkt); e != "" {
		t.Error(e)
	}
}
