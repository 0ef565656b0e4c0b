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
	protoICMP    = 1
	protoTCP     = 6
)

// InjectMarkID is the IPv4 identification the injector puts in every
// frame it re-sends, so it can tell its own frames from the backend's when
// its socket sees them leave.
const InjectMarkID = 0xAB5E

// Tuple is a TCP connection's addresses and ports, as the backend sends.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
}

// Segment is what the injector needs of an IPv4 TCP frame.
type Segment struct {
	Tuple
	Seq, Ack uint32
	Flags    uint8
	ID       uint16 // IPv4 identification
}

// ParseTCP4 parses an Ethernet frame carrying IPv4 TCP (no fragments); ok
// is false for anything else or a truncated frame.
func ParseTCP4(frame []byte) (s Segment, ok bool) {
	ip, ok := ipv4(frame)
	if !ok || ip[9] != protoTCP {
		return s, false
	}
	if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 { // MF or offset
		return s, false
	}
	ihl := int(ip[0]&0xf) * 4
	tcp := ip[ihl:]
	if len(tcp) < 20 || int(tcp[12]>>4)*4 < 20 || int(tcp[12]>>4)*4 > len(tcp) {
		return s, false
	}
	s.Src = netip.AddrFrom4([4]byte(ip[12:16]))
	s.Dst = netip.AddrFrom4([4]byte(ip[16:20]))
	s.SrcPort = binary.BigEndian.Uint16(tcp[0:])
	s.DstPort = binary.BigEndian.Uint16(tcp[2:])
	s.Seq = binary.BigEndian.Uint32(tcp[4:])
	s.Ack = binary.BigEndian.Uint32(tcp[8:])
	s.Flags = tcp[13]
	s.ID = binary.BigEndian.Uint16(ip[4:])
	return s, true
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
		s.Flags&tcpFIN != 0 && s.Flags&(tcpSYN|tcpRST) == 0 && s.ID != InjectMarkID
}

// RewriteForInjection turns a copy of the backend's FIN frame into the
// frame the injector sends: the same segment (addresses, ports, sequence
// and acknowledgment numbers, flags, payload), with the IPv4
// identification set to InjectMarkID and both checksums computed in full
// (veth may hand the capture a partial TCP checksum). It returns the frame
// cut to its IP length, or nil if it is not an IPv4 TCP frame.
func RewriteForInjection(frame []byte) []byte {
	if _, ok := ParseTCP4(frame); !ok {
		return nil
	}
	ip, _ := ipv4(frame)
	out := append([]byte(nil), frame[:ethLen+len(ip)]...)
	ip = out[ethLen:]
	binary.BigEndian.PutUint16(ip[4:], InjectMarkID)
	ihl := int(ip[0]&0xf) * 4
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], checksum(ip[:ihl], 0))
	tcp := ip[ihl:]
	tcp[16], tcp[17] = 0, 0
	// Pseudo-header: source, destination, protocol, TCP length.
	var sum uint32
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
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

// ICMPError is an ICMPv4 destination-unreachable (or other error) message
// and the TCP tuple it quotes.
type ICMPError struct {
	Type, Code uint8
	From       netip.Addr // the error's sender
	Quoted     Tuple      // the quoted packet's addresses and ports (TCP only)
	QuotedTCP  bool
}

// ParseICMPError parses an Ethernet frame carrying an ICMPv4 error (types
// 3, 4, 5, 11, 12); ok is false for anything else.
func ParseICMPError(frame []byte) (e ICMPError, ok bool) {
	ip, ok := ipv4(frame)
	if !ok || ip[9] != protoICMP {
		return e, false
	}
	ihl := int(ip[0]&0xf) * 4
	m := ip[ihl:]
	if len(m) < 8 {
		return e, false
	}
	switch m[0] {
	case 3, 4, 5, 11, 12:
	default:
		return e, false
	}
	e.Type, e.Code = m[0], m[1]
	e.From = netip.AddrFrom4([4]byte(ip[12:16]))
	q := m[8:]
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
