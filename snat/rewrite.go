package snat

import (
	"encoding/binary"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// Field offsets (see the header diagrams in package header).
const (
	ipv4Checksum = 10
	ipv4Src      = 12
	ipv4Dst      = 16
	ipv6Src      = 8
	ipv6Dst      = 24

	l4SrcPort   = 0 // TCP and UDP
	l4DstPort   = 2
	tcpChecksum = 16
	udpChecksum = 6
	icmpCheck   = 2
	icmpIdent   = 4 // echo request and reply
)

// RewriteOriginal translates a packet of a flow's original direction (from
// inside): its source address becomes natAddr (16 bytes, IPv4-mapped for
// IPv4, as NAT.Addr returns it) and its source port, or ICMP echo
// identifier, tr.Port. ip is the IP packet (no link header) that
// conntrack.Parse filled p from; p supplies the protocol and the transport
// offset (p.L4Off).
//
// Checksums are updated incrementally, RFC 1624 equation 3, "HC' = ~(~HC +
// ~m + m')": the IPv4 header checksum for the address; the TCP and UDP
// checksums for the address (pseudo-header) and the port; the ICMPv6
// checksum for the address (pseudo-header, RFC 4443 section 2.3) and the
// identifier; the ICMPv4 checksum for the identifier only (RFC 792: it
// covers the ICMP message, no pseudo-header). A UDP checksum of 0 over IPv4
// means "no checksum" and stays 0, and a result of 0 is sent as 0xFFFF (RFC
// 768: "If the computed checksum is zero, it is transmitted as all ones").
// The result is bit for bit what a full recomputation gives.
//
// It returns drop.SNATNoAddress if natAddr and the packet are of different
// IP versions (NAT46/NAT64 is not supported), drop.UnsupportedProto for an
// ICMP error (KindRelated: translated by package icmp) or a message that is
// not an echo, and drop.Truncated if the packet is too short for the
// fields to rewrite; the packet is then unchanged. It never allocates.
func RewriteOriginal(ip []byte, p *conntrack.Packet, tr conntrack.Translation, natAddr [16]byte) drop.Reason {
	return rewrite(ip, p, &natAddr, tr.Port, false)
}

// RewriteReply translates a packet of a flow's reply direction (from
// outside, addressed to the translated address and port) back: its
// destination address becomes orig.Src and its destination port, or ICMP
// echo identifier, orig.SrcPort, where orig is the flow's original key.
// Checksums and drop reasons are as for RewriteOriginal. It never
// allocates.
func RewriteReply(ip []byte, p *conntrack.Packet, orig *conntrack.Key) drop.Reason {
	return rewrite(ip, p, &orig.Src, orig.SrcPort, true)
}

// RFC 1624 equation 3, HC' = ~(~HC + ~m + m'), applied once per checksum
// for all the fields that change: acc accumulates ~m + m' over the changed
// words, in one's complement arithmetic modulo 0xFFFF. 32-bit words may be
// added whole (2^16 = 1 modulo 0xFFFF, so a 32-bit word and its complement
// count as the sum of their two halves), and the accumulator is folded once
// at the end. Like header.ChecksumUpdate16 this gives exactly the value a
// full recomputation gives whenever the data does not sum to zero: the
// folded sum of a non-zero accumulator is never 0, so the result is never
// 0xFFFF (RFC 1624 section 3).

// delta32 returns ~m + m' for a 32-bit field changing from old to new.
func delta32(old, new uint32) uint64 { return uint64(^old) + uint64(new) }

// delta16 returns ~m + m' for a 16-bit field changing from old to new.
func delta16(old, new uint16) uint64 { return uint64(^old) + uint64(new) }

// update returns the stored checksum check after changes summing to acc.
func update(check uint16, acc uint64) uint16 {
	acc += uint64(^check)
	acc = acc>>32 + acc&0xffffffff
	acc = acc>>32 + acc&0xffffffff
	acc = acc>>16 + acc&0xffff
	acc = acc>>16 + acc&0xffff
	return ^uint16(acc)
}

// rewrite sets the source (dst false) or destination (dst true) address of
// ip to addr and its port or echo identifier to port.
func rewrite(ip []byte, p *conntrack.Packet, addr *[16]byte, port uint16, dst bool) drop.Reason {
	if p.Kind != conntrack.KindFlow {
		return drop.UnsupportedProto
	}
	if len(ip) == 0 {
		return drop.Truncated
	}
	off := int(p.L4Off)
	proto := p.Key.Proto
	// Where the port or identifier is and where the L4 checksum is.
	var portAt, sumAt int
	switch proto {
	case header.ProtoTCP:
		portAt, sumAt = l4SrcPort, tcpChecksum
	case header.ProtoUDP:
		portAt, sumAt = l4SrcPort, udpChecksum
	case header.ProtoICMP, header.ProtoICMPv6:
		portAt, sumAt = icmpIdent, icmpCheck
	default:
		return drop.UnsupportedProto
	}
	if dst && portAt == l4SrcPort {
		portAt = l4DstPort
	}
	need := max(portAt, sumAt) + 2
	var acc uint64 // the L4 checksum's changes
	switch ip[0] >> 4 {
	case 4:
		if !header.IsV4Mapped(addr) {
			return drop.SNATNoAddress
		}
		if len(ip) < header.IPv4MinLen || off < header.IPv4MinLen || len(ip) < off+need {
			return drop.Truncated
		}
		if proto == header.ProtoICMPv6 || !echo(ip[off], proto) {
			return drop.UnsupportedProto
		}
		at := ipv4Src
		if dst {
			at = ipv4Dst
		}
		newA := binary.BigEndian.Uint32(addr[12:])
		da := delta32(binary.BigEndian.Uint32(ip[at:]), newA)
		binary.BigEndian.PutUint16(ip[ipv4Checksum:], update(binary.BigEndian.Uint16(ip[ipv4Checksum:]), da))
		binary.BigEndian.PutUint32(ip[at:], newA)
		if proto != header.ProtoICMP {
			// TCP and UDP checksums cover a pseudo-header with the
			// addresses (RFC 9293 section 3.1, RFC 768); the ICMPv4
			// checksum covers the message only (RFC 792).
			acc = da
		}
	case 6:
		if header.IsV4Mapped(addr) {
			return drop.SNATNoAddress
		}
		if len(ip) < header.IPv6Len || off < header.IPv6Len || len(ip) < off+need {
			return drop.Truncated
		}
		if proto == header.ProtoICMP || !echo(ip[off], proto) {
			return drop.UnsupportedProto
		}
		at := ipv6Src
		if dst {
			at = ipv6Dst
		}
		// TCP, UDP and ICMPv6 checksums cover the addresses (RFC 8200
		// section 8.1, RFC 4443 section 2.3).
		a := ip[at : at+16]
		acc = delta32(binary.BigEndian.Uint32(a[0:]), binary.BigEndian.Uint32(addr[0:])) +
			delta32(binary.BigEndian.Uint32(a[4:]), binary.BigEndian.Uint32(addr[4:])) +
			delta32(binary.BigEndian.Uint32(a[8:]), binary.BigEndian.Uint32(addr[8:])) +
			delta32(binary.BigEndian.Uint32(a[12:]), binary.BigEndian.Uint32(addr[12:]))
		copy(a, addr[:])
	default:
		return drop.BadIPHeader
	}
	l4 := ip[off:]
	c := binary.BigEndian.Uint16(l4[sumAt:])
	acc += delta16(binary.BigEndian.Uint16(l4[portAt:]), port)
	switch {
	case proto != header.ProtoUDP:
		c = update(c, acc)
		if c == 0 && proto == header.ProtoICMP && port == 0 && allZero4(ip, off) {
			// An all-zero message sums to +0 and its checksum is
			// 0xFFFF, which equation 3 cannot tell from a message
			// summing to -0 (checksum 0). Only ICMPv4 can be all
			// zeros: a pseudo-header always holds the protocol.
			c = 0xffff
		}
	case c != 0:
		// RFC 768: "If the computed checksum is zero, it is
		// transmitted as all ones".
		if c = update(c, acc); c == 0 {
			c = 0xffff
		}
	default:
		// A UDP checksum of 0 means "no checksum" over IPv4 (RFC 768)
		// and stays 0. Over IPv6 it is invalid (RFC 8200 section
		// 8.1); such a datagram is left as it is.
	}
	binary.BigEndian.PutUint16(l4[sumAt:], c)
	binary.BigEndian.PutUint16(l4[portAt:], port)
	return drop.None
}

// allZero4 reports whether the ICMPv4 message at off in the IPv4 packet ip
// is all zeros apart from its checksum and identifier (not yet rewritten:
// the caller is setting it to 0): an echo reply with sequence number and
// data all 0. Rare: called only when the updated checksum is 0.
func allZero4(ip []byte, off int) bool {
	end := int(binary.BigEndian.Uint16(ip[2:]))
	if end > len(ip) || end < off+header.ICMPv4MinLen {
		end = len(ip)
	}
	m := ip[off:end]
	if m[0]|m[1] != 0 {
		return false
	}
	for _, b := range m[icmpIdent+2:] {
		if b != 0 {
			return false
		}
	}
	return true
}

// echo reports whether an ICMP message of type typ may be translated: an
// echo request or reply. Other protocols pass.
func echo(typ, proto uint8) bool {
	switch proto {
	case header.ProtoICMP:
		return header.ICMPv4IsQuery(typ)
	case header.ProtoICMPv6:
		return header.ICMPv6IsQuery(typ)
	}
	return true
}
