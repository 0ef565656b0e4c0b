package main

import (
	"encoding/binary"
	"net/netip"
)

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

const (
	ethLen       = 14
	etherTypeIP4 = 0x0800
	etherTypeIP6 = 0x86dd
	ip6Len       = 40
	protoICMP    = 1
	protoTCP     = 6
	protoICMPv6  = 58
)

// InjectMarkID is the IPv4 identification (IPv6: the flow label) the
// injector puts in every frame it re-sends, so it can tell its own frames
// from the backend's when its socket sees them leave.
const InjectMarkID = 0xAB5E

// Tuple is a TCP connection's addresses and ports, as the backend sends.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

// Segment is what the injector needs of a TCP frame.
type Segment struct {
	Tuple
	Seq, Ack uint32
	Flags    uint8
	Mark     uint32 // IPv4 identification, or IPv6 flow label
}

// ParseTCP parses an Ethernet frame carrying TCP over IPv4 (no fragments)
// or IPv6 (no extension header); ok is false for anything else or a
// truncated frame.
func ParseTCP(frame []byte) (s Segment, ok bool) {
	ip, hl, ok := ipPacket(frame)
	if !ok {
		return s, false
	}
	if hl == ip6Len {
		if ip[6] != protoTCP {
			return s, false
		}
		s.Src = netip.AddrFrom16([16]byte(ip[8:24]))
		s.Dst = netip.AddrFrom16([16]byte(ip[24:40]))
		s.Mark = binary.BigEndian.Uint32(ip[0:]) & 0xfffff
	} else {
		if ip[9] != protoTCP || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 { // MF or offset
			return s, false
		}
		s.Src = netip.AddrFrom4([4]byte(ip[12:16]))
		s.Dst = netip.AddrFrom4([4]byte(ip[16:20]))
		s.Mark = uint32(binary.BigEndian.Uint16(ip[4:]))
	}
	tcp := ip[hl:]
	if len(tcp) < 20 || int(tcp[12]>>4)*4 < 20 || int(tcp[12]>>4)*4 > len(tcp) {
		return s, false
	}
	s.SrcPort = binary.BigEndian.Uint16(tcp[0:])
	s.DstPort = binary.BigEndian.Uint16(tcp[2:])
	s.Seq = binary.BigEndian.Uint32(tcp[4:])
	s.Ack = binary.BigEndian.Uint32(tcp[8:])
	s.Flags = tcp[13]
	return s, true
}

// ipPacket returns the IP packet in an Ethernet frame, cut to its length,
// and its header length (the IPv4 header's, or 40 for IPv6: extension
// headers are not walked).
func ipPacket(frame []byte) (ip []byte, hl int, ok bool) {
	if len(frame) >= ethLen+ip6Len && binary.BigEndian.Uint16(frame[12:]) == etherTypeIP6 {
		ip = frame[ethLen:]
		tot := ip6Len + int(binary.BigEndian.Uint16(ip[4:]))
		if ip[0]>>4 != 6 || tot > len(ip) {
			return nil, 0, false
		}
		return ip[:tot], ip6Len, true
	}
	ip, ok = ipv4(frame)
	if !ok {
		return nil, 0, false
	}
	return ip, int(ip[0]&0xf) * 4, true
}

// ipv4 returns the IPv4 packet in an Ethernet frame, cut to its total
// length, with a sane header.
func ipv4(frame []byte) ([]byte, bool) {
	if len(frame) < ethLen+20 || binary.BigEndian.Uint16(frame[12:]) != etherTypeIP4 {
		return nil, false
	}
	ip := frame[ethLen:]
	ihl := int(ip[0]&0xf) * 4
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	if ip[0]>>4 != 4 || ihl < 20 || tot < ihl || tot > len(ip) {
		return nil, false
	}
	return ip[:tot], true
}

// IsBackendFIN reports whether s is a FIN the backend (addr:port) sends:
// FIN set, SYN and RST clear. A frame the injector re-sent (InjectMarkID)
// is not one.
func IsBackendFIN(s *Segment, backend netip.AddrPort) bool {
	return s.Src == backend.Addr() && s.SrcPort == backend.Port() &&
		s.Flags&tcpFIN != 0 && s.Flags&(tcpSYN|tcpRST) == 0 && s.Mark != InjectMarkID
}

// RewriteForInjection turns a copy of the backend's FIN frame into the
// frame the injector sends: the same segment (addresses, ports, sequence
// and acknowledgment numbers, flags, payload), with the IPv4
// identification (IPv6: the flow label) set to InjectMarkID and the
// checksums computed in full (veth may hand the capture a partial TCP
// checksum). It returns the frame cut to its IP length, or nil if it is
// not a TCP frame ParseTCP reads.
func RewriteForInjection(frame []byte) []byte {
	if _, ok := ParseTCP(frame); !ok {
		return nil
	}
	ip, hl, _ := ipPacket(frame)
	out := append([]byte(nil), frame[:ethLen+len(ip)]...)
	ip = out[ethLen:]
	// Pseudo-header: source, destination, protocol, TCP length.
	var addrs []byte
	if hl == ip6Len {
		binary.BigEndian.PutUint32(ip[0:], binary.BigEndian.Uint32(ip[0:])&^0xfffff|InjectMarkID)
		addrs = ip[8:40]
	} else {
		binary.BigEndian.PutUint16(ip[4:], InjectMarkID)
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], checksum(ip[:hl], 0))
		addrs = ip[12:20]
	}
	tcp := ip[hl:]
	tcp[16], tcp[17] = 0, 0
	var sum uint32
	for i := 0; i < len(addrs); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(addrs[i:]))
	}
	sum += protoTCP + uint32(len(tcp))
	binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, sum))
	return out
}

// checksum is the RFC 1071 Internet checksum of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// ICMPError is an ICMPv4 or ICMPv6 error message and the TCP tuple it
// quotes.
type ICMPError struct {
	V6         bool // ICMPv6
	Type, Code uint8
	From       netip.Addr // the error's sender
	Quoted     Tuple      // the quoted packet's addresses and ports (TCP only)
	QuotedTCP  bool
}

// PortUnreachable reports whether e is a port unreachable: ICMP 3/3, or
// ICMPv6 1/4 (what edge's NSX mode answers a SYN-ACK on a closing entry
// with).
func (e ICMPError) PortUnreachable() bool {
	if e.V6 {
		return e.Type == 1 && e.Code == 4
	}
	return e.Type == 3 && e.Code == 3
}

// ParseICMPError parses an Ethernet frame carrying an ICMPv4 error (types
// 3, 4, 5, 11, 12) or an ICMPv6 error (types 1 to 4); ok is false for
// anything else.
func ParseICMPError(frame []byte) (e ICMPError, ok bool) {
	ip, hl, ok := ipPacket(frame)
	if !ok {
		return e, false
	}
	e.V6 = hl == ip6Len
	if e.V6 && ip[6] != protoICMPv6 || !e.V6 && ip[9] != protoICMP {
		return e, false
	}
	m := ip[hl:]
	if len(m) < 8 {
		return e, false
	}
	switch {
	case e.V6 && m[0] >= 1 && m[0] <= 4:
	case !e.V6 && (m[0] == 3 || m[0] == 4 || m[0] == 5 || m[0] == 11 || m[0] == 12):
	default:
		return e, false
	}
	e.Type, e.Code = m[0], m[1]
	q := m[8:]
	if e.V6 {
		e.From = netip.AddrFrom16([16]byte(ip[8:24]))
		if len(q) >= ip6Len+4 && q[0]>>4 == 6 && q[6] == protoTCP {
			e.QuotedTCP = true
			e.Quoted = Tuple{Src: netip.AddrFrom16([16]byte(q[8:24])), Dst: netip.AddrFrom16([16]byte(q[24:40])),
				SrcPort: binary.BigEndian.Uint16(q[ip6Len:]), DstPort: binary.BigEndian.Uint16(q[ip6Len+2:])}
		}
		return e, true
	}
	e.From = netip.AddrFrom4([4]byte(ip[12:16]))
	if len(q) >= 20 && q[0]>>4 == 4 {
		qihl := int(q[0]&0xf) * 4
		if q[9] == protoTCP && len(q) >= qihl+4 {
			e.QuotedTCP = true
			e.Quoted = Tuple{Src: netip.AddrFrom4([4]byte(q[12:16])), Dst: netip.AddrFrom4([4]byte(q[16:20])),
				SrcPort: binary.BigEndian.Uint16(q[qihl:]), DstPort: binary.BigEndian.Uint16(q[qihl+2:])}
		}
	}
	return e, true
}
