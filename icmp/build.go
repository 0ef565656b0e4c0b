package icmp

import (
	"encoding/binary"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// Kind is an ICMP error edge generates. The zero Kind, NoError, is not an
// error: it is what Check returns for a packet that needs none, and Build and
// MaySend refuse it.
type Kind uint8

const (
	// NoError: no ICMP error (Check: forward, or drop without one).
	NoError Kind = iota
	// TimeExceeded: ICMPv4 type 11 code 0, ICMPv6 type 3 code 0; the TTL or
	// hop limit ran out (RFC 792, RFC 1812 5.3.1, RFC 4443 3.3).
	TimeExceeded
	// FragNeeded: ICMPv4 type 3 code 4 with the next-hop MTU (RFC 1191),
	// ICMPv6 Packet Too Big, type 2 code 0, with the MTU (RFC 4443 3.2,
	// RFC 8201).
	FragNeeded
	// AdminProhibited: ICMPv4 type 3 code 13 (RFC 1812 5.2.7.1), ICMPv6
	// type 1 code 1; the answer to a reject rule (and RFC 5508 REQ-8).
	AdminProhibited
	// PortUnreachable: ICMPv4 type 3 code 3, ICMPv6 type 1 code 4. Only
	// for the NSX-compatibility mode; edge's own reject is AdminProhibited.
	PortUnreachable
	// PacketTooBig is FragNeeded as ICMPv6 names it (Check returns it for
	// IPv6, so counters and events say packet_too_big); the two build the
	// same message of each family.
	PacketTooBig

	NumKinds // the number of kinds, NoError included
)

var kindNames = [NumKinds]string{
	NoError:         "none",
	TimeExceeded:    "time_exceeded",
	FragNeeded:      "frag_needed",
	AdminProhibited: "admin_prohibited",
	PortUnreachable: "port_unreachable",
	PacketTooBig:    "packet_too_big",
}

// String returns the kind's name, e.g. "frag_needed".
func (k Kind) String() string {
	if k < NumKinds {
		return kindNames[k]
	}
	return "unknown"
}

// typeCode holds the ICMP type and code of each kind: [kind][0 IPv4, 1 IPv6].
var typeCode = [NumKinds][2][2]uint8{
	TimeExceeded: {
		{header.ICMPv4TimeExceeded, header.ICMPv4TTLExceeded},
		{header.ICMPv6TimeExceeded, header.ICMPv6HopLimitExceeded},
	},
	FragNeeded: {
		{header.ICMPv4DestUnreachable, header.ICMPv4FragNeeded},
		{header.ICMPv6PacketTooBig, 0},
	},
	AdminProhibited: {
		{header.ICMPv4DestUnreachable, header.ICMPv4AdminProhibited},
		{header.ICMPv6DestUnreachable, header.ICMPv6AdminProhibited},
	},
	PortUnreachable: {
		{header.ICMPv4DestUnreachable, header.ICMPv4PortUnreachable},
		{header.ICMPv6DestUnreachable, header.ICMPv6PortUnreachable},
	},
	PacketTooBig: {
		{header.ICMPv4DestUnreachable, header.ICMPv4FragNeeded},
		{header.ICMPv6PacketTooBig, 0},
	},
}

// tooBig reports whether k says a packet was too big (FragNeeded or
// PacketTooBig): the message carries an MTU.
func (k Kind) tooBig() bool { return k == FragNeeded || k == PacketTooBig }

// TypeCode returns the ICMP (v6 false) or ICMPv6 (v6 true) type and code of
// kind k; 0, 0 for NoError or an unknown kind.
func (k Kind) TypeCode(v6 bool) (typ, code uint8) {
	if k >= NumKinds {
		return 0, 0
	}
	i := 0
	if v6 {
		i = 1
	}
	return typeCode[k][i][0], typeCode[k][i][1]
}

const (
	// MaxLen4 is the largest ICMPv4 error Build writes, IP header included:
	// "as much of the original datagram as possible without the length of
	// the ICMP datagram exceeding 576 bytes" (RFC 1812 4.3.2.3).
	MaxLen4 = 576
	// MaxLen6 is the largest ICMPv6 error Build writes: "as much of the
	// IPv6 offending (invoking) packet ... as possible without making the
	// error message packet exceed the minimum IPv6 MTU" (RFC 4443 2.4(c)).
	MaxLen6 = 1280
	// TTL is the TTL / hop limit of the errors Build writes.
	TTL = 64
	// TOS4 is the IPv4 TOS byte of the errors Build writes: precedence 6,
	// internetwork control (DSCP CS6). RFC 1812 4.3.2.5: errors other than
	// source quench "SHOULD have their precedence value set to 6
	// (INTERNETWORK CONTROL) or 7 (NETWORK CONTROL)".
	TOS4 = 0xc0

	hdr4 = header.IPv4MinLen + header.ICMPv4MinLen // 28
	hdr6 = header.IPv6Len + header.ICMPv6MinLen    // 48

	minMTU4 = 68   // RFC 791: every internet module forwards 68-byte datagrams
	minMTU6 = 1280 // RFC 8200 5: the IPv6 minimum link MTU
)

// Build writes into out the ICMP error of kind k about the IP packet
// offending (starting at its IP header, as received) and returns its length
// n, or 0 and the reason it wrote nothing. The error is an IP packet (no link
// header: pass the TX frame after its Ethernet header) from src, one of the
// box's addresses (IPv4-mapped for IPv4: RFC 1812 4.3.2.4 wants the address
// of the interface the error leaves by), to the offending packet's source,
// with TTL 64 and every checksum valid.
//
// It quotes as much of the offending packet (up to its IP total length) as
// fits in MaxLen4 / MaxLen6 bytes in all and in out, and at least its IP
// header and first 8 payload bytes (RFC 792) unless the packet is shorter;
// if out cannot hold that, it returns drop.ICMPBuildFailed. mtu is the
// next-hop MTU for FragNeeded (68..65535 for IPv4, at least 1280 for IPv6,
// else drop.ICMPBuildFailed) and is ignored otherwise.
//
// IPv4 errors carry DF with ID 0: an atomic datagram, whose ID has no meaning
// (RFC 6864 4), so Build needs no per-worker ID state; at most 576 bytes
// fits every link in practice.
//
// Build does not decide whether an error may be sent: call MaySend (and the
// Limiter) first. out may be the buffer offending lives in, starting at the
// same byte (the error can be built in place of the packet it is about):
// everything is read from offending before out is written. It never
// allocates.
func Build(out []byte, k Kind, src [16]byte, offending []byte, mtu uint32) (n int, r drop.Reason) {
	if k == NoError || k >= NumKinds {
		return 0, drop.ICMPBuildFailed
	}
	if len(offending) < 1 {
		return 0, drop.Truncated
	}
	switch offending[0] >> 4 {
	case 4:
		return build4(out, k, &src, offending, mtu)
	case 6:
		return build6(out, k, &src, offending, mtu)
	}
	return 0, drop.BadIPHeader
}

func build4(out []byte, k Kind, src *[16]byte, off []byte, mtu uint32) (int, drop.Reason) {
	if len(off) < header.IPv4MinLen {
		return 0, drop.Truncated
	}
	ip := header.IPv4(off)
	if !ip.IsValid(len(off)) {
		return 0, drop.BadIPHeader
	}
	if !header.IsV4Mapped(src) || (k.tooBig() && (mtu < minMTU4 || mtu > 0xffff)) {
		return 0, drop.ICMPBuildFailed
	}
	total := int(ip.TotalLen())
	q := min(total, min(len(out), MaxLen4)-hdr4)
	if q < min(total, ip.HeaderLen()+8) {
		return 0, drop.ICMPBuildFailed
	}
	dst := [4]byte(off[12:16]) // the error goes back to the offending source
	copy(out[hdr4:hdr4+q], off[:q])
	n := hdr4 + q
	o := out[:n:n]
	o[0] = 0x45
	o[1] = TOS4
	binary.BigEndian.PutUint16(o[2:], uint16(n))
	binary.BigEndian.PutUint32(o[4:], 0x4000) // ID 0, DF, offset 0
	o[8] = TTL
	o[9] = header.ProtoICMP
	o[10], o[11] = 0, 0
	copy(o[12:16], src[12:16])
	copy(o[16:20], dst[:])
	m := header.ICMPv4(o[header.IPv4MinLen:])
	m.SetType(typeCode[k][0][0])
	m.SetCode(typeCode[k][0][1])
	// Bytes 4-7 are unused (zero) except for FragNeeded: "the MTU of that
	// next-hop network in the low-order 16 bits of the ICMP header field
	// that is labelled "unused" ... The high-order 16 bits of the field MUST
	// be zero" (RFC 1191 4).
	binary.BigEndian.PutUint32(m[4:], 0)
	if k.tooBig() {
		m.SetMTU(uint16(mtu))
	}
	m.SetChecksum(header.ICMPv4Checksum(m))
	header.IPv4(o).SetChecksum(header.IPv4(o).CalculateChecksum())
	return n, drop.None
}

func build6(out []byte, k Kind, src *[16]byte, off []byte, mtu uint32) (int, drop.Reason) {
	if len(off) < header.IPv6Len {
		return 0, drop.Truncated
	}
	ip := header.IPv6(off)
	if !ip.IsValid(len(off)) {
		return 0, drop.BadIPHeader
	}
	if header.IsV4Mapped(src) || (k.tooBig() && mtu < minMTU6) {
		return 0, drop.ICMPBuildFailed
	}
	total := header.IPv6Len + int(ip.PayloadLen())
	q := min(total, min(len(out), MaxLen6)-hdr6)
	if q < min(total, header.IPv6Len+8) {
		return 0, drop.ICMPBuildFailed
	}
	dst := [16]byte(off[8:24])
	copy(out[hdr6:hdr6+q], off[:q])
	n := hdr6 + q
	o := out[:n:n]
	// Version 6, traffic class 0, flow label 0.
	binary.BigEndian.PutUint32(o[0:], 0x60000000)
	binary.BigEndian.PutUint16(o[4:], uint16(header.ICMPv6MinLen+q))
	o[6] = header.ProtoICMPv6
	o[7] = TTL
	copy(o[8:24], src[:])
	copy(o[24:40], dst[:])
	m := header.ICMPv6(o[header.IPv6Len:])
	m.SetType(typeCode[k][1][0])
	m.SetCode(typeCode[k][1][1])
	// Packet Too Big: "MTU: The Maximum Transmission Unit of the next-hop
	// link" (RFC 4443 3.2); the other errors' second word is unused (zero).
	binary.BigEndian.PutUint32(m[4:], 0)
	if k.tooBig() {
		m.SetMTU(mtu)
	}
	m.SetChecksum(header.ICMPv6Checksum(o[8:24], o[24:40], m))
	return n, drop.None
}

// Check says whether the IP packet ip, about to be forwarded on a link of
// MTU mtu, needs an ICMP error instead:
//
//   - TimeExceeded, false: its TTL / hop limit is 0 or 1, so it would leave
//     with 0. RFC 1812 5.3.1: "If the TTL is reduced to zero (or less), the
//     packet MUST be discarded, and if the destination is not a multicast
//     address the router MUST send an ICMP Time Exceeded message, Code 0";
//     RFC 4443 3.3 likewise for the hop limit.
//   - FragNeeded, false: it is larger than mtu and may not be fragmented:
//     IPv4 with DF set (RFC 1191 4); PacketTooBig, false: any IPv6 packet
//     (routers never fragment: RFC 8200 5, RFC 4443 3.2).
//   - NoError, false: an IPv4 packet larger than mtu without DF (it must be
//     fragmented; this package does not fragment), or a header too short
//     to read.
//   - NoError, true: forward it.
//
// The TTL rule applies to packets edge forwards, not to those addressed to
// the box itself; the caller decides which packets it asks about. The
// header is not validated beyond its length (the packet was parsed
// already); the size compared is the IP total length. It never allocates.
func Check(ip []byte, mtu uint32) (k Kind, forward bool) {
	if len(ip) < 1 {
		return NoError, false
	}
	switch ip[0] >> 4 {
	case 4:
		if len(ip) < header.IPv4MinLen {
			return NoError, false
		}
		h := header.IPv4(ip)
		if h.TTL() <= 1 {
			return TimeExceeded, false
		}
		if uint32(h.TotalLen()) > mtu {
			if h.DontFragment() {
				return FragNeeded, false
			}
			return NoError, false
		}
		return NoError, true
	case 6:
		if len(ip) < header.IPv6Len {
			return NoError, false
		}
		h := header.IPv6(ip)
		if h.HopLimit() <= 1 {
			return TimeExceeded, false
		}
		if header.IPv6Len+uint32(h.PayloadLen()) > mtu {
			return PacketTooBig, false
		}
		return NoError, true
	}
	return NoError, false
}
