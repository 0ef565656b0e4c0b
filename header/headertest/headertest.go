// Package headertest builds well-formed packets for tests. Unlike package
// header it allocates freely and panics on misuse; it must only be used from
// _test.go files. It depends on nothing but the standard library and package
// header, so any package's tests can use it.
package headertest

import (
	"encoding/binary"
	"net/netip"

	"github.com/edgegw/edge/header"
)

// Spec describes a packet for [Build]. Zero values give sensible defaults.
type Spec struct {
	Src, Dst netip.Addr // both IPv4 or both IPv6; decides the IP version
	Proto    uint8      // header.ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6, or any other (Payload follows the IP header)

	SrcPort, DstPort uint16 // TCP and UDP

	TTL uint8  // IPv4 TTL / IPv6 hop limit; 0 means 64
	ID  uint16 // IPv4 identification
	DF  bool   // IPv4 don't fragment

	// TCP.
	Flags           uint8  // header.TCPFlag* bits
	Seq, Ack        uint32 // sequence and acknowledgment numbers
	Window          uint16 // 0 means 65535 unless NoWindowDefault
	NoWindowDefault bool   // send Window as is, even if 0
	HasWScale       bool   // add a window scale option with shift WScale
	WScale          uint8
	MSS             uint16 // add an MSS option if not 0
	SACKPerm        bool   // add a SACK-permitted option

	// ICMP and ICMPv6.
	ICMPType, ICMPCode uint8
	Ident, ICMPSeq     uint16 // echo identifier and sequence number
	MTU                uint32 // ICMPv4 frag needed (low 16 bits) or ICMPv6 packet too big
	Quote              []byte // for ICMP errors: the embedded packet, put after the 8-byte ICMP header

	Payload []byte // transport payload (after Quote for ICMP)
}

// MustAddr parses s as an IP address and panics on error.
func MustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// MustMAC parses a MAC address such as "02:00:00:00:00:01" and panics on
// error.
func MustMAC(s string) [6]byte {
	var m [6]byte
	if len(s) != 17 {
		panic("headertest: bad MAC " + s)
	}
	for i := range m {
		hi, lo := unhex(s[3*i]), unhex(s[3*i+1])
		if hi < 0 || lo < 0 || (i < 5 && s[3*i+2] != ':') {
			panic("headertest: bad MAC " + s)
		}
		m[i] = byte(hi<<4 | lo)
	}
	return m
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// Build returns the IP packet described by s with every checksum valid.
// It panics if the addresses are invalid or of different families.
func Build(s Spec) []byte {
	if !s.Src.IsValid() || !s.Dst.IsValid() || s.Src.Is4() != s.Dst.Is4() {
		panic("headertest: Src and Dst must be valid addresses of the same family")
	}
	v4 := s.Src.Is4()
	l4 := buildL4(s, v4)
	var pkt []byte
	if v4 {
		pkt = make([]byte, header.IPv4MinLen+len(l4))
		ip := header.IPv4(pkt)
		ip[0] = 0x45
		ip.SetTotalLen(uint16(len(pkt)))
		ip.SetID(s.ID)
		ip.SetFlagsFragment(s.DF, false, 0)
		ip.SetTTL(ttl(s.TTL))
		ip.SetProtocol(s.Proto)
		ip.SetSrc(s.Src.As4())
		ip.SetDst(s.Dst.As4())
		copy(ip[header.IPv4MinLen:], l4)
	} else {
		pkt = make([]byte, header.IPv6Len+len(l4))
		ip := header.IPv6(pkt)
		ip[0] = 0x60
		ip.SetPayloadLen(uint16(len(l4)))
		ip.SetNextHeader(s.Proto)
		ip.SetHopLimit(ttl(s.TTL))
		ip.SetSrc(s.Src.As16())
		ip.SetDst(s.Dst.As16())
		copy(ip[header.IPv6Len:], l4)
	}
	FixChecksums(pkt)
	return pkt
}

// BuildEth returns Build(s) behind an Ethernet header from src to dst.
func BuildEth(s Spec, src, dst [6]byte) []byte {
	ip := Build(s)
	f := make([]byte, header.EthernetLen+len(ip))
	eth := header.Ethernet(f)
	eth.SetDst(dst)
	eth.SetSrc(src)
	if s.Src.Is4() {
		eth.SetEtherType(header.EtherTypeIPv4)
	} else {
		eth.SetEtherType(header.EtherTypeIPv6)
	}
	copy(f[header.EthernetLen:], ip)
	return f
}

func ttl(t uint8) uint8 {
	if t == 0 {
		return 64
	}
	return t
}

func buildL4(s Spec, v4 bool) []byte {
	switch s.Proto {
	case header.ProtoTCP:
		var opts []byte
		if s.MSS != 0 {
			opts = append(opts, header.TCPOptMSS, 4, byte(s.MSS>>8), byte(s.MSS))
		}
		if s.SACKPerm {
			opts = append(opts, header.TCPOptNOP, header.TCPOptNOP, header.TCPOptSACKPermitted, 2)
		}
		if s.HasWScale {
			opts = append(opts, header.TCPOptNOP, header.TCPOptWindowScale, 3, s.WScale)
		}
		hl := header.TCPMinLen + len(opts)
		b := make([]byte, hl+len(s.Payload))
		t := header.TCP(b)
		t.SetSrcPort(s.SrcPort)
		t.SetDstPort(s.DstPort)
		t.SetSeq(s.Seq)
		t.SetAck(s.Ack)
		b[12] = byte(hl/4) << 4
		t.SetFlags(s.Flags)
		w := s.Window
		if w == 0 && !s.NoWindowDefault {
			w = 65535
		}
		t.SetWindow(w)
		copy(b[header.TCPMinLen:], opts)
		copy(b[hl:], s.Payload)
		return b
	case header.ProtoUDP:
		b := make([]byte, header.UDPLen+len(s.Payload))
		u := header.UDP(b)
		u.SetSrcPort(s.SrcPort)
		u.SetDstPort(s.DstPort)
		u.SetLength(uint16(len(b)))
		copy(b[header.UDPLen:], s.Payload)
		return b
	case header.ProtoICMP, header.ProtoICMPv6:
		b := make([]byte, 8, 8+len(s.Quote)+len(s.Payload))
		b[0], b[1] = s.ICMPType, s.ICMPCode
		switch {
		case s.Proto == header.ProtoICMP && header.ICMPv4IsQuery(s.ICMPType),
			s.Proto == header.ProtoICMPv6 && header.ICMPv6IsQuery(s.ICMPType):
			binary.BigEndian.PutUint16(b[4:], s.Ident)
			binary.BigEndian.PutUint16(b[6:], s.ICMPSeq)
		case s.Proto == header.ProtoICMP:
			binary.BigEndian.PutUint16(b[6:], uint16(s.MTU))
		default:
			binary.BigEndian.PutUint32(b[4:], s.MTU)
		}
		b = append(b, s.Quote...)
		return append(b, s.Payload...)
	default:
		return append([]byte(nil), s.Payload...)
	}
}

// FixChecksums recomputes the IPv4 header checksum (if pkt is IPv4) and the
// TCP, UDP, ICMP or ICMPv6 checksum of the IP packet pkt in place, after a
// test modified it. For IPv6 only packets without extension headers, or whose
// extension headers IPv6.Transport can walk, are handled. Fragments and
// truncated transport headers are left alone (only the IPv4 header checksum
// is fixed).
func FixChecksums(pkt []byte) {
	var (
		proto    uint8
		l4       []byte
		src, dst []byte
	)
	switch {
	case len(pkt) >= header.IPv4MinLen && pkt[0]>>4 == 4:
		ip := header.IPv4(pkt)
		if !ip.IsValid(len(pkt)) {
			panic("headertest: FixChecksums: invalid IPv4 header")
		}
		ip.SetChecksum(ip.CalculateChecksum())
		if ip.IsFragment() {
			return
		}
		proto, l4 = ip.Protocol(), ip.Payload()
		src, dst = pkt[12:16], pkt[16:20]
	case len(pkt) >= header.IPv6Len && pkt[0]>>4 == 6:
		ip := header.IPv6(pkt)
		if !ip.IsValid(len(pkt)) {
			panic("headertest: FixChecksums: invalid IPv6 header")
		}
		p, off, frag, ok := ip.Transport()
		if !ok || frag.IsFragment() {
			return
		}
		proto, l4 = p, pkt[off:header.IPv6Len+int(ip.PayloadLen())]
		src, dst = pkt[8:24], pkt[24:40]
	default:
		panic("headertest: FixChecksums: not an IP packet")
	}
	switch proto {
	case header.ProtoTCP:
		if len(l4) >= header.TCPMinLen {
			header.TCP(l4).SetChecksum(header.TCPChecksum(src, dst, l4))
		}
	case header.ProtoUDP:
		if len(l4) >= header.UDPLen {
			u := header.UDP(l4)
			if int(u.Length()) <= len(l4) && u.Length() >= header.UDPLen {
				l4 = l4[:u.Length()]
			}
			u.SetChecksum(header.UDPChecksum(src, dst, l4))
		}
	case header.ProtoICMP:
		if len(l4) >= header.ICMPv4MinLen {
			header.ICMPv4(l4).SetChecksum(header.ICMPv4Checksum(l4))
		}
	case header.ProtoICMPv6:
		if len(l4) >= header.ICMPv6MinLen {
			header.ICMPv6(l4).SetChecksum(header.ICMPv6Checksum(src, dst, l4))
		}
	}
}
