package icmp_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/icmp"
)

var (
	mustAddr = headertest.MustAddr

	// IPv4 world: client C behind edge, SNAT address N, server S, routers.
	c4, n4, s4 = mustAddr("10.0.0.5"), mustAddr("203.0.113.1"), mustAddr("198.51.100.7")
	r4, in4    = mustAddr("192.0.2.254"), mustAddr("10.0.0.1") // outside router, inside router
	// IPv6 world.
	c6, n6, s6 = mustAddr("fd00::5"), mustAddr("2001:db8:ff::1"), mustAddr("2001:db8:1::7")
	r6, in6    = mustAddr("2001:db8:2::fe"), mustAddr("fd00::1")
)

func as16(a netip.Addr) [16]byte { return a.As16() }

// sumErrors verifies, from scratch, every checksum of the ICMP error pkt: the
// outer IPv4 header, the ICMP (ICMPv6 with its pseudo-header) checksum, the
// quoted IPv4 header, and the quoted transport checksum when the quote holds
// the whole quoted packet. It returns "" when all are valid, else what is
// wrong.
func sumErrors(pkt []byte) string {
	if len(pkt) < 1 {
		return "empty"
	}
	var msg, src, dst []byte
	switch pkt[0] >> 4 {
	case 4:
		ip := header.IPv4(pkt)
		if len(pkt) < header.IPv4MinLen || !ip.IsValid(len(pkt)) {
			return "bad outer IPv4 header"
		}
		if !ip.IsChecksumValid() {
			return "outer IPv4 header checksum"
		}
		if ip.Protocol() != header.ProtoICMP {
			return "not ICMP"
		}
		msg = ip.Payload()
		if header.Checksum(msg, 0) != 0xffff {
			return "ICMP checksum"
		}
	case 6:
		ip := header.IPv6(pkt)
		if len(pkt) < header.IPv6Len || !ip.IsValid(len(pkt)) {
			return "bad outer IPv6 header"
		}
		if ip.NextHeader() != header.ProtoICMPv6 {
			return "not ICMPv6"
		}
		msg, src, dst = ip.Payload(), pkt[8:24], pkt[24:40]
		if header.Checksum(msg, header.PseudoHeaderChecksum(header.ProtoICMPv6, src, dst, uint16(len(msg)))) != 0xffff {
			return "ICMPv6 checksum"
		}
	default:
		return "not IP"
	}
	if len(msg) < 8 {
		return "ICMP header truncated"
	}
	return quoteSumErrors(msg[8:])
}

// quoteSumErrors checks the quoted packet q: its IPv4 header checksum, and
// its transport checksum if q holds all of it.
func quoteSumErrors(q []byte) string {
	if len(q) < 1 {
		return ""
	}
	var (
		proto    uint8
		l4       []byte
		src, dst []byte
	)
	switch q[0] >> 4 {
	case 4:
		if len(q) < header.IPv4MinLen {
			return ""
		}
		ip := header.IPv4(q)
		hl := ip.HeaderLen()
		if hl < header.IPv4MinLen || hl > len(q) {
			return ""
		}
		if !ip.IsChecksumValid() {
			return "quoted IPv4 header checksum"
		}
		if int(ip.TotalLen()) > len(q) || !ip.IsValid(len(q)) || ip.IsFragment() {
			return "" // not all quoted: the transport checksum cannot be checked
		}
		proto, l4, src, dst = ip.Protocol(), ip.Payload(), q[12:16], q[16:20]
	case 6:
		ip := header.IPv6(q)
		if len(q) < header.IPv6Len || !ip.IsValid(len(q)) {
			return ""
		}
		p, off, frag, ok := ip.Transport()
		if !ok || frag.Present {
			return ""
		}
		proto, l4, src, dst = p, q[off:header.IPv6Len+int(ip.PayloadLen())], q[8:24], q[24:40]
	default:
		return ""
	}
	if !l4SumValid(proto, src, dst, l4) {
		return "quoted transport checksum"
	}
	return ""
}

// l4SumValid reports whether the complete transport message l4 has a valid
// checksum (a UDP checksum of 0 means none and counts as valid).
func l4SumValid(proto uint8, src, dst, l4 []byte) bool {
	switch proto {
	case header.ProtoTCP:
		if len(l4) < header.TCPMinLen {
			return true
		}
		return header.Checksum(l4, header.PseudoHeaderChecksum(proto, src, dst, uint16(len(l4)))) == 0xffff
	case header.ProtoUDP:
		if len(l4) < header.UDPLen {
			return true
		}
		// 0 is "no checksum" (RFC 768). On IPv6 it is not allowed (RFC 8200
		// 8.1), but a quote carrying one is left at 0, not "fixed".
		if header.UDP(l4).Checksum() == 0 {
			return true
		}
		if l := int(header.UDP(l4).Length()); l >= header.UDPLen && l <= len(l4) {
			l4 = l4[:l]
		}
		return header.Checksum(l4, header.PseudoHeaderChecksum(proto, src, dst, uint16(len(l4)))) == 0xffff
	case header.ProtoICMP:
		if len(l4) < 8 {
			return true
		}
		return header.Checksum(l4, 0) == 0xffff
	case header.ProtoICMPv6:
		if len(l4) < 8 {
			return true
		}
		return header.Checksum(l4, header.PseudoHeaderChecksum(proto, src, dst, uint16(len(l4)))) == 0xffff
	}
	return true
}

// gopacketCheck decodes the ICMP error pkt with gopacket, checks the fields
// gopacket sees against the expected ones, and re-serializes the layers
// with gopacket computing lengths and checksums: the bytes must be ours.
func gopacketCheck(t *testing.T, pkt []byte, src, dst netip.Addr, typ, code uint8, word2 uint32) {
	t.Helper()
	opts := gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}
	buf := gopacket.NewSerializeBuffer()
	if src.Is4() {
		p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		m, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if ip == nil || m == nil {
			t.Fatalf("gopacket: no IPv4/ICMPv4 layers: %v", p)
		}
		if ip.TTL != icmp.TTL || ip.TOS != icmp.TOS4 || ip.Flags != layers.IPv4DontFragment || ip.Id != 0 ||
			!ip.SrcIP.Equal(src.AsSlice()) || !ip.DstIP.Equal(dst.AsSlice()) || ip.Protocol != layers.IPProtocolICMPv4 {
			t.Errorf("gopacket IPv4 header: %+v", ip)
		}
		if m.TypeCode.Type() != typ || m.TypeCode.Code() != code || uint32(m.Id)<<16|uint32(m.Seq) != word2 {
			t.Errorf("gopacket ICMPv4: type %d code %d id %d seq %d, want %d %d %#x", m.TypeCode.Type(), m.TypeCode.Code(), m.Id, m.Seq, typ, code, word2)
		}
		if err := gopacket.SerializeLayers(buf, opts, ip, m, gopacket.Payload(m.Payload)); err != nil {
			t.Fatal(err)
		}
	} else {
		p := gopacket.NewPacket(pkt, layers.LayerTypeIPv6, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		m, _ := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		if ip == nil || m == nil {
			t.Fatalf("gopacket: no IPv6/ICMPv6 layers: %v", p)
		}
		if ip.HopLimit != icmp.TTL || ip.TrafficClass != 0 || ip.FlowLabel != 0 ||
			!ip.SrcIP.Equal(src.AsSlice()) || !ip.DstIP.Equal(dst.AsSlice()) || ip.NextHeader != layers.IPProtocolICMPv6 {
			t.Errorf("gopacket IPv6 header: %+v", ip)
		}
		if m.TypeCode.Type() != typ || m.TypeCode.Code() != code || len(m.Payload) < 4 || binary.BigEndian.Uint32(m.Payload) != word2 {
			t.Errorf("gopacket ICMPv6: %v, want type %d code %d word %#x", m.TypeCode, typ, code, word2)
		}
		if err := m.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		if err := gopacket.SerializeLayers(buf, opts, ip, m, gopacket.Payload(m.Payload)); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(buf.Bytes(), pkt) {
		t.Errorf("gopacket re-serialization differs:\n got %x\nours %x", buf.Bytes(), pkt)
	}
}

// snat returns a copy of the IP packet pkt as edge's SNAT sends it: source
// address n, and source port (ICMP echo: identifier) np; checksums redone.
func snat(pkt []byte, n netip.Addr, np uint16) []byte {
	out := bytes.Clone(pkt)
	var l4 []byte
	if n.Is4() {
		header.IPv4(out).SetSrc(n.As4())
		l4 = out[header.IPv4(out).HeaderLen():]
	} else {
		header.IPv6(out).SetSrc(n.As16())
		l4 = out[header.IPv6Len:]
	}
	if p := protoOf(out); p == header.ProtoICMP || p == header.ProtoICMPv6 {
		binary.BigEndian.PutUint16(l4[4:], np)
	} else {
		binary.BigEndian.PutUint16(l4[0:], np)
	}
	headertest.FixChecksums(out)
	return out
}

// dnat returns a copy of the reply pkt as it reaches the client: destination
// address c and destination port (echo reply: identifier) cp.
func dnat(pkt []byte, c netip.Addr, cp uint16) []byte {
	out := bytes.Clone(pkt)
	var l4 []byte
	if c.Is4() {
		header.IPv4(out).SetDst(c.As4())
		l4 = out[header.IPv4(out).HeaderLen():]
	} else {
		header.IPv6(out).SetDst(c.As16())
		l4 = out[header.IPv6Len:]
	}
	if p := protoOf(out); p == header.ProtoICMP || p == header.ProtoICMPv6 {
		binary.BigEndian.PutUint16(l4[4:], cp)
	} else {
		binary.BigEndian.PutUint16(l4[2:], cp)
	}
	headertest.FixChecksums(out)
	return out
}

func protoOf(pkt []byte) uint8 {
	if pkt[0]>>4 == 4 {
		return header.IPv4(pkt).Protocol()
	}
	return header.IPv6(pkt).NextHeader()
}

// build calls icmp.Build into a fresh 1500-byte buffer and fails the test
// if it refuses.
func build(t testing.TB, k icmp.Kind, src netip.Addr, off []byte, mtu uint32) []byte {
	t.Helper()
	out := make([]byte, 1500)
	n, r := icmp.Build(out, k, src.As16(), off, mtu)
	if r != 0 {
		t.Fatalf("Build(%v) = %v", k, r)
	}
	return out[:n]
}

// withFragHeader returns the IPv6 packet pkt (no extension headers) with a
// Fragment header of offset off (bytes) and the M flag more inserted.
func withFragHeader(pkt []byte, off uint16, more bool) []byte {
	out := make([]byte, 0, len(pkt)+8)
	out = append(out, pkt[:header.IPv6Len]...)
	fo := off &^ 7
	if more {
		fo |= 1
	}
	out = append(out, pkt[6], 0, byte(fo>>8), byte(fo), 0, 0, 0x12, 0x34)
	out = append(out, pkt[header.IPv6Len:]...)
	out[6] = header.ProtoFragment
	header.IPv6(out).SetPayloadLen(uint16(len(out) - header.IPv6Len))
	return out
}
