package conntrack

import (
	"encoding/binary"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// Kind says how a parsed packet relates to connection tracking.
type Kind uint8

const (
	// KindFlow is a TCP segment, UDP datagram or ICMP echo message: its Key
	// is its own tuple.
	KindFlow Kind = iota
	// KindRelated is an ICMP error: its Key is the reversed tuple of the
	// packet it quotes, i.e. the key of the flow it is about, in the
	// direction the error travels (RFC 5508 section 4.1).
	KindRelated
)

// Packet is what the tracker needs to know about a packet, filled by Parse
// from header views. It is a plain value: the data plane keeps an array of
// them per batch.
type Packet struct {
	Key      Key
	Kind     Kind
	Flags    uint8  // TCP flags
	WScale   int8   // TCP window scale option of a SYN or SYN-ACK, -1 if absent
	ICMPType uint8  // ICMP/ICMPv6 type
	Seq, Ack uint32 // TCP
	Window   uint16 // TCP, unscaled
	Payload  uint16 // TCP/UDP payload length
	L4Off    uint16 // offset of the transport (or ICMP) header in the IP packet
	InnerOff uint16 // KindRelated: offset of the quoted IP header
	InnerL4  uint16 // KindRelated: offset of the quoted transport header

	// Fragments of UDP and ICMP datagrams (see Parse).
	Frag     FragKind
	FragMore bool   // MF (IPv4) or M (IPv6) flag
	FragID   uint32 // IPv4 Identification or IPv6 Fragment header Identification
	FragOff  uint16 // FragLater: offset of the fragment's data in the datagram, in bytes
	FragLen  uint16 // FragFirst, FragLater: the fragment's data (IP payload) length, in bytes
}

// FragKind says whether a packet is a fragment the gateway can follow.
type FragKind uint8

const (
	FragNone  FragKind = iota // a whole packet (or an IPv6 atomic fragment)
	FragFirst                 // the first fragment of a UDP or ICMP datagram: tracked like a whole packet
	FragLater                 // a later fragment of a UDP or ICMP datagram: Parse returns drop.Fragment
)

// fragmentable reports whether fragments of protocol proto are followed.
// TCP is not: a TCP segment's length, which window tracking needs, is only
// known once every fragment arrived, and today's stacks do not fragment TCP
// (they set DF and discover the path MTU).
func fragmentable(proto uint8) bool {
	return proto == header.ProtoUDP || proto == header.ProtoICMP || proto == header.ProtoICMPv6
}

// Parse fills p from the IP packet b (IPv4 or IPv6, no link header), in zone
// zone. It returns drop.None or the reason the packet cannot be tracked. It
// never allocates or panics, whatever b holds.
//
// The first fragment of a UDP or ICMP datagram parses like a whole packet,
// with p.Frag = FragFirst (its UDP Payload is the datagram's, from the UDP
// length). A later fragment of one returns drop.Fragment with p.Frag =
// FragLater and p's addresses, protocol, fragment fields and L4Off (the
// start of its data) set, so the data plane can
// make it follow its first fragment (package frag). Fragments of other
// protocols return drop.Fragment with p.Frag = FragNone.
func Parse(b []byte, zone uint8, p *Packet) drop.Reason {
	if len(b) < 1 {
		return drop.Truncated
	}
	switch b[0] >> 4 {
	case 4:
		return parse4(b, zone, p)
	case 6:
		return parse6(b, zone, p)
	}
	return drop.BadIPHeader
}

func parse4(b []byte, zone uint8, p *Packet) drop.Reason {
	if len(b) < header.IPv4MinLen {
		return drop.Truncated
	}
	ip := header.IPv4(b)
	if !ip.IsValid(len(b)) {
		if int(ip.TotalLen()) > len(b) && ip.HeaderLen() >= header.IPv4MinLen {
			return drop.Truncated
		}
		return drop.BadIPHeader
	}
	*p = Packet{Kind: KindFlow, WScale: -1}
	p.Key.Zone = zone
	setMapped(&p.Key.Src, b[12:16])
	setMapped(&p.Key.Dst, b[16:20])
	p.Key.Proto = ip.Protocol()
	hl := ip.HeaderLen()
	p.L4Off = uint16(hl)
	l4 := b[hl:ip.TotalLen()]
	if ip.IsFragment() {
		if !fragmentable(p.Key.Proto) {
			return drop.Fragment
		}
		p.FragID, p.FragMore, p.FragLen = uint32(ip.ID()), ip.MoreFragments(), uint16(len(l4))
		if off := ip.FragmentOffset(); off != 0 {
			p.Frag, p.FragOff = FragLater, off
			return drop.Fragment
		}
		p.Frag = FragFirst
	}
	if p.Key.Proto == header.ProtoICMP {
		return parseICMP4(l4, p)
	}
	return parseL4(l4, p)
}

func parse6(b []byte, zone uint8, p *Packet) drop.Reason {
	if len(b) < header.IPv6Len {
		return drop.Truncated
	}
	ip := header.IPv6(b)
	if !ip.IsValid(len(b)) {
		if header.IPv6Len+int(ip.PayloadLen()) > len(b) {
			return drop.Truncated
		}
		return drop.BadIPHeader
	}
	proto, off, frag, ok := ip.Transport()
	if !ok {
		if proto == header.ProtoRouting && ip.RoutingType0(off) {
			return drop.RoutingType0
		}
		return drop.BadIPv6ExtHeader
	}
	*p = Packet{Kind: KindFlow, WScale: -1}
	p.Key.Zone = zone
	copy(p.Key.Src[:], b[8:24])
	copy(p.Key.Dst[:], b[24:40])
	p.Key.Proto = proto
	p.L4Off = uint16(off)
	l4 := b[off : header.IPv6Len+int(ip.PayloadLen())]
	// An atomic fragment (offset 0, M clear: RFC 6946) is a whole packet.
	if frag.IsFragment() {
		if !fragmentable(proto) {
			return drop.Fragment
		}
		p.FragID, p.FragMore, p.FragLen = frag.ID, frag.More, uint16(len(l4))
		if frag.Offset != 0 {
			p.Frag, p.FragOff = FragLater, frag.Offset
			return drop.Fragment
		}
		p.Frag = FragFirst
	}
	if proto == header.ProtoICMPv6 {
		return parseICMP6(l4, p)
	}
	return parseL4(l4, p)
}

// setMapped stores the IPv4 address v4 as IPv4-mapped IPv6 in two 8-byte
// stores, so the hash's 8-byte loads of the key are forwarded from the store
// buffer instead of stalling on a mix of narrower stores.
func setMapped(dst *[16]byte, v4 []byte) {
	binary.LittleEndian.PutUint64(dst[0:8], 0)
	binary.BigEndian.PutUint64(dst[8:16], 0xffff<<32|uint64(binary.BigEndian.Uint32(v4)))
}

// parseL4 fills the TCP or UDP part of p from the transport bytes l4.
func parseL4(l4 []byte, p *Packet) drop.Reason {
	switch p.Key.Proto {
	case header.ProtoTCP:
		if len(l4) < header.TCPMinLen {
			return drop.Truncated
		}
		tcp := header.TCP(l4)
		if !tcp.IsValid(len(l4)) {
			return drop.BadL4Header
		}
		p.Key.SrcPort, p.Key.DstPort = tcp.SrcPort(), tcp.DstPort()
		p.Seq, p.Ack, p.Window = tcp.Seq(), tcp.Ack(), tcp.Window()
		p.Flags = tcp.Flags()
		p.Payload = uint16(len(l4) - tcp.HeaderLen())
		if !ValidTCPFlags(p.Flags) {
			return drop.TCPBadFlags
		}
		if p.Flags&header.TCPFlagSYN != 0 {
			if o, ok := header.ParseTCPOptions(tcp.Options()); ok {
				p.WScale = o.WindowScale
			}
		}
		return drop.None
	case header.ProtoUDP:
		if len(l4) < header.UDPLen {
			return drop.Truncated
		}
		udp := header.UDP(l4)
		if p.Frag == FragFirst {
			// The UDP length covers every fragment: more than this one holds.
			if int(udp.Length()) <= len(l4) {
				return drop.BadL4Header
			}
		} else if !udp.IsValid(len(l4)) {
			return drop.BadL4Header
		}
		p.Key.SrcPort, p.Key.DstPort = udp.SrcPort(), udp.DstPort()
		p.Payload = udp.Length() - header.UDPLen
		return drop.None
	}
	return drop.UnsupportedProto
}

// ValidTCPFlags reports whether a TCP flag byte is a combination a real
// stack sends: SYN, SYN+ACK, RST, RST+ACK, FIN+ACK or ACK, with PSH, ECE,
// CWR and (except beside RST) URG allowed on top. SYN+FIN, SYN+RST, FIN
// without ACK and a segment with no flags are not.
func ValidTCPFlags(f uint8) bool {
	const (
		syn, ack, rst, fin, urg = header.TCPFlagSYN, header.TCPFlagACK, header.TCPFlagRST, header.TCPFlagFIN, header.TCPFlagURG
	)
	f &^= header.TCPFlagPSH | header.TCPFlagECE | header.TCPFlagCWR
	if f&urg != 0 {
		if f&rst != 0 {
			return false
		}
		f &^= urg
	}
	switch f {
	case syn, syn | ack, rst, rst | ack, fin | ack, ack:
		return true
	}
	return false
}

func parseICMP4(l4 []byte, p *Packet) drop.Reason {
	if len(l4) < header.ICMPv4MinLen {
		return drop.Truncated
	}
	m := header.ICMPv4(l4)
	p.ICMPType = m.Type()
	switch m.Type() {
	case header.ICMPv4EchoRequest:
		p.Key.SrcPort = m.Ident()
		return drop.None
	case header.ICMPv4EchoReply:
		p.Key.DstPort = m.Ident()
		return drop.None
	case header.ICMPv4DestUnreachable, header.ICMPv4TimeExceeded, header.ICMPv4ParamProblem:
		return parseQuote4(l4[header.ICMPv4MinLen:], p)
	}
	return drop.UnsupportedProto
}

func parseICMP6(l4 []byte, p *Packet) drop.Reason {
	if len(l4) < header.ICMPv6MinLen {
		return drop.Truncated
	}
	m := header.ICMPv6(l4)
	p.ICMPType = m.Type()
	switch m.Type() {
	case header.ICMPv6EchoRequest:
		p.Key.SrcPort = m.Ident()
		return drop.None
	case header.ICMPv6EchoReply:
		p.Key.DstPort = m.Ident()
		return drop.None
	case header.ICMPv6DestUnreachable, header.ICMPv6PacketTooBig, header.ICMPv6TimeExceeded, header.ICMPv6ParamProblem:
		return parseQuote6(l4[header.ICMPv6MinLen:], p)
	}
	return drop.UnsupportedProto
}

// parseQuote4 reads the IPv4 header and first 8 transport bytes quoted by an
// ICMP error (RFC 792; RFC 1812 4.3.2.3 allows more) and sets p.Key to the
// quoted tuple reversed. The quote is usually truncated, so its total length
// is not checked against what is present.
func parseQuote4(q []byte, p *Packet) drop.Reason {
	if len(q) < header.IPv4MinLen || q[0]>>4 != 4 {
		return drop.BadICMP
	}
	ip := header.IPv4(q)
	hl := ip.HeaderLen()
	if hl < header.IPv4MinLen || len(q) < hl+8 || ip.FragmentOffset() != 0 {
		return drop.BadICMP
	}
	// The error must travel back to the quoted packet's source.
	if [16]byte(p.Key.Dst) != mapped(q[12:16]) {
		return drop.BadICMP
	}
	var qk Key
	setMapped(&qk.Src, q[12:16])
	setMapped(&qk.Dst, q[16:20])
	qk.Proto = ip.Protocol()
	qk.Zone = p.Key.Zone
	if !quotedPorts(q[hl:], &qk) {
		return drop.BadICMP
	}
	p.InnerOff = p.L4Off + header.ICMPv4MinLen
	p.InnerL4 = p.InnerOff + uint16(hl)
	p.Key = qk.Reverse()
	p.Kind = KindRelated
	return drop.None
}

func parseQuote6(q []byte, p *Packet) drop.Reason {
	if len(q) < header.IPv6Len || q[0]>>4 != 6 {
		return drop.BadICMP
	}
	if [16]byte(q[8:24]) != p.Key.Dst {
		return drop.BadICMP
	}
	var qk Key
	copy(qk.Src[:], q[8:24])
	copy(qk.Dst[:], q[24:40])
	qk.Zone = p.Key.Zone
	// Walk extension headers within what was quoted.
	next, off := q[6], header.IPv6Len
	for i := 0; ; i++ {
		switch next {
		case header.ProtoHopByHop, header.ProtoRouting, header.ProtoDestOpts:
			if i == 8 || len(q) < off+8 {
				return drop.BadICMP
			}
			next, off = q[off], off+8*(int(q[off+1])+1)
			continue
		case header.ProtoFragment:
			if i == 8 || len(q) < off+8 || binary.BigEndian.Uint16(q[off+2:])&^7 != 0 {
				return drop.BadICMP
			}
			next, off = q[off], off+8
			continue
		}
		break
	}
	if len(q) < off+8 {
		return drop.BadICMP
	}
	qk.Proto = next
	if !quotedPorts(q[off:], &qk) {
		return drop.BadICMP
	}
	p.InnerOff = p.L4Off + header.ICMPv6MinLen
	p.InnerL4 = p.InnerOff + uint16(off)
	p.Key = qk.Reverse()
	p.Kind = KindRelated
	return drop.None
}

// quotedPorts fills k's ports from the first 8 quoted transport bytes.
func quotedPorts(l4 []byte, k *Key) bool {
	switch k.Proto {
	case header.ProtoTCP, header.ProtoUDP:
		k.SrcPort = binary.BigEndian.Uint16(l4[0:])
		k.DstPort = binary.BigEndian.Uint16(l4[2:])
		return true
	case header.ProtoICMP:
		switch l4[0] {
		case header.ICMPv4EchoRequest:
			k.SrcPort = binary.BigEndian.Uint16(l4[4:])
			return true
		case header.ICMPv4EchoReply:
			k.DstPort = binary.BigEndian.Uint16(l4[4:])
			return true
		}
	case header.ProtoICMPv6:
		switch l4[0] {
		case header.ICMPv6EchoRequest:
			k.SrcPort = binary.BigEndian.Uint16(l4[4:])
			return true
		case header.ICMPv6EchoReply:
			k.DstPort = binary.BigEndian.Uint16(l4[4:])
			return true
		}
	}
	// Never an error about an error (RFC 1812 4.3.2.7), and nothing we track.
	return false
}

func mapped(v4 []byte) (a [16]byte) {
	setMapped(&a, v4)
	return a
}
