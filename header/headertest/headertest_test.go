package headertest_test

import (
	"bytes"
	"testing"

	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

var (
	a4 = headertest.MustAddr("192.0.2.1")
	b4 = headertest.MustAddr("198.51.100.2")
	a6 = headertest.MustAddr("2001:db8::1")
	b6 = headertest.MustAddr("2001:db8::2")
)

// l4 validates the IP header of pkt and returns the transport bytes and the
// pseudo-header addresses.
func l4(t *testing.T, pkt []byte) (proto uint8, seg, src, dst []byte) {
	t.Helper()
	if pkt[0]>>4 == 4 {
		ip := header.IPv4(pkt)
		if !ip.IsValid(len(pkt)) || !ip.IsChecksumValid() || int(ip.TotalLen()) != len(pkt) {
			t.Fatal("bad IPv4 header")
		}
		return ip.Protocol(), ip.Payload(), pkt[12:16], pkt[16:20]
	}
	ip := header.IPv6(pkt)
	if !ip.IsValid(len(pkt)) || 40+int(ip.PayloadLen()) != len(pkt) {
		t.Fatal("bad IPv6 header")
	}
	p, off, _, ok := ip.Transport()
	if !ok {
		t.Fatal("Transport failed")
	}
	return p, pkt[off:], pkt[8:24], pkt[24:40]
}

func TestBuildTCP(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		s := headertest.Spec{Src: a4, Dst: b4, Proto: header.ProtoTCP, SrcPort: 1111, DstPort: 22,
			Flags: header.TCPFlagSYN, Seq: 42, MSS: 1400, SACKPerm: true, HasWScale: true, WScale: 8,
			TTL: 9, ID: 7, DF: true, Payload: []byte("data")}
		if v6 {
			s.Src, s.Dst = a6, b6
		}
		pkt := headertest.Build(s)
		proto, seg, src, dst := l4(t, pkt)
		tcp := header.TCP(seg)
		if proto != header.ProtoTCP || !tcp.IsValid(len(seg)) {
			t.Fatal("bad TCP")
		}
		if tcp.SrcPort() != 1111 || tcp.DstPort() != 22 || tcp.Flags() != header.TCPFlagSYN || tcp.Seq() != 42 ||
			tcp.Window() != 65535 || string(tcp.Payload(len(seg))) != "data" {
			t.Errorf("TCP fields wrong: % x", seg[:20])
		}
		if tcp.Checksum() != header.TCPChecksum(src, dst, seg) {
			t.Error("TCP checksum wrong")
		}
		o, ok := header.ParseTCPOptions(tcp.Options())
		if want := (header.TCPSynOptions{MSS: 1400, WindowScale: 8, SACKPermitted: true}); !ok || o != want {
			t.Errorf("options %+v %v", o, ok)
		}
		if !v6 {
			ip := header.IPv4(pkt)
			if ip.TTL() != 9 || ip.ID() != 7 || !ip.DontFragment() || ip.SrcAddr() != a4 || ip.DstAddr() != b4 {
				t.Error("IPv4 fields wrong")
			}
		} else {
			ip := header.IPv6(pkt)
			if ip.HopLimit() != 9 || ip.SrcAddr() != a6 || ip.DstAddr() != b6 {
				t.Error("IPv6 fields wrong")
			}
		}
	}
	// Defaults and NoWindowDefault.
	pkt := headertest.Build(headertest.Spec{Src: a4, Dst: b4, Proto: header.ProtoTCP, NoWindowDefault: true})
	if ip := header.IPv4(pkt); ip.TTL() != 64 || header.TCP(ip.Payload()).Window() != 0 || header.TCP(ip.Payload()).HeaderLen() != 20 {
		t.Error("defaults wrong")
	}
}

func TestBuildUDPAndICMP(t *testing.T) {
	specs := []headertest.Spec{
		{Src: a4, Dst: b4, Proto: header.ProtoUDP, SrcPort: 5, DstPort: 6, Payload: []byte("x")},
		{Src: a6, Dst: b6, Proto: header.ProtoUDP, SrcPort: 5, DstPort: 6},
		{Src: a4, Dst: b4, Proto: header.ProtoICMP, ICMPType: header.ICMPv4EchoRequest, Ident: 3, ICMPSeq: 4, Payload: []byte("p")},
		{Src: a4, Dst: b4, Proto: header.ProtoICMP, ICMPType: header.ICMPv4DestUnreachable, ICMPCode: header.ICMPv4FragNeeded, MTU: 1492, Quote: []byte("quote")},
		{Src: a6, Dst: b6, Proto: header.ProtoICMPv6, ICMPType: header.ICMPv6EchoRequest, Ident: 3, ICMPSeq: 4},
		{Src: a6, Dst: b6, Proto: header.ProtoICMPv6, ICMPType: header.ICMPv6PacketTooBig, MTU: 1280, Quote: []byte("quote"), Payload: []byte("!")},
		{Src: a6, Dst: b6, Proto: 47, Payload: []byte("gre")},
	}
	for i, s := range specs {
		pkt := headertest.Build(s)
		proto, seg, src, dst := l4(t, pkt)
		if proto != s.Proto {
			t.Fatalf("spec %d: proto %d", i, proto)
		}
		switch proto {
		case header.ProtoUDP:
			u := header.UDP(seg)
			if !u.IsValid(len(seg)) || u.SrcPort() != 5 || u.DstPort() != 6 || !bytes.Equal(u.Payload(), s.Payload) ||
				u.Checksum() != header.UDPChecksum(src, dst, seg) || u.Checksum() == 0 {
				t.Errorf("spec %d: bad UDP", i)
			}
		case header.ProtoICMP:
			m := header.ICMPv4(seg)
			if !m.IsValid(len(seg)) || m.Type() != s.ICMPType || m.Code() != s.ICMPCode || m.Checksum() != header.ICMPv4Checksum(seg) ||
				!bytes.Equal(m.Payload(), append(append([]byte(nil), s.Quote...), s.Payload...)) {
				t.Errorf("spec %d: bad ICMPv4", i)
			}
			if header.ICMPv4IsQuery(s.ICMPType) && (m.Ident() != 3 || m.Seq() != 4) {
				t.Errorf("spec %d: echo fields", i)
			}
			if s.MTU != 0 && uint32(m.MTU()) != s.MTU {
				t.Errorf("spec %d: MTU %d", i, m.MTU())
			}
		case header.ProtoICMPv6:
			m := header.ICMPv6(seg)
			if !m.IsValid(len(seg)) || m.Type() != s.ICMPType || m.Checksum() != header.ICMPv6Checksum(src, dst, seg) ||
				!bytes.Equal(m.Payload(), append(append([]byte(nil), s.Quote...), s.Payload...)) {
				t.Errorf("spec %d: bad ICMPv6", i)
			}
			if header.ICMPv6IsQuery(s.ICMPType) && (m.Ident() != 3 || m.Seq() != 4) {
				t.Errorf("spec %d: echo fields", i)
			}
			if s.MTU != 0 && m.MTU() != s.MTU {
				t.Errorf("spec %d: MTU %d", i, m.MTU())
			}
		default:
			if !bytes.Equal(seg, s.Payload) {
				t.Errorf("spec %d: payload", i)
			}
		}
	}
}

func TestBuildEth(t *testing.T) {
	src, dst := headertest.MustMAC("02:00:00:00:00:01"), headertest.MustMAC("02:00:00:AB:cd:02")
	if dst != [6]byte{2, 0, 0, 0xab, 0xcd, 2} {
		t.Fatalf("MustMAC = %x", dst)
	}
	for _, s := range []headertest.Spec{{Src: a4, Dst: b4, Proto: header.ProtoUDP}, {Src: a6, Dst: b6, Proto: header.ProtoUDP}} {
		f := headertest.BuildEth(s, src, dst)
		e := header.Ethernet(f)
		want := header.EtherTypeIPv4
		if s.Src.Is6() {
			want = header.EtherTypeIPv6
		}
		if !e.IsValid() || e.Src() != src || e.Dst() != dst || e.EtherType() != want || !bytes.Equal(e.Payload(), headertest.Build(s)) {
			t.Errorf("BuildEth(%v) wrong", s.Src)
		}
	}
}

func TestFixChecksums(t *testing.T) {
	for _, s := range []headertest.Spec{
		{Src: a4, Dst: b4, Proto: header.ProtoTCP},
		{Src: a6, Dst: b6, Proto: header.ProtoUDP},
		{Src: a4, Dst: b4, Proto: header.ProtoICMP},
		{Src: a6, Dst: b6, Proto: header.ProtoICMPv6},
	} {
		want := headertest.Build(s)
		pkt := headertest.Build(headertest.Spec{Src: s.Src, Dst: s.Dst, Proto: s.Proto, TTL: 1})
		if s.Src.Is4() {
			header.IPv4(pkt).SetTTL(64)
		} else {
			header.IPv6(pkt).SetHopLimit(64)
		}
		// Scramble the L4 checksum too.
		off := header.IPv4MinLen
		if s.Src.Is6() {
			off = header.IPv6Len
		}
		switch s.Proto {
		case header.ProtoTCP:
			off += 16
		case header.ProtoUDP:
			off += 6
		default:
			off += 2
		}
		pkt[off] ^= 0x5a
		headertest.FixChecksums(pkt)
		if !bytes.Equal(pkt, want) {
			t.Errorf("proto %d: FixChecksums:\n got % x\nwant % x", s.Proto, pkt, want)
		}
	}
}

func TestPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"mixed families": func() { headertest.Build(headertest.Spec{Src: a4, Dst: b6}) },
		"zero addr":      func() { headertest.Build(headertest.Spec{Dst: b6}) },
		"bad MAC":        func() { headertest.MustMAC("02:00:00:00:00") },
		"bad MAC hex":    func() { headertest.MustMAC("02:00:00:00:00:zz") },
		"bad addr":       func() { headertest.MustAddr("nope") },
		"fix non-IP":     func() { headertest.FixChecksums([]byte{0}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
