package snat

import (
	"encoding/binary"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
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
	portAt, sumAt, ok := header.PortAndChecksumOffsets(proto, dst)
	if !ok {
		return drop.UnsupportedProto
	}
	need := max(portAt, sumAt) + 2
	// The L4 checksum's changes; each checksum is updated once (RFC 1624
	// equation 3, header.ChecksumDelta).
	var acc header.ChecksumDelta
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
		h := header.IPv4(ip)
		var old [4]byte
		newA := [4]byte(addr[12:])
		if dst {
			old = h.Dst()
			h.SetDst(newA)
		} else {
			old = h.Src()
			h.SetSrc(newA)
		}
		da := header.ChecksumDelta32(binary.BigEndian.Uint32(old[:]), binary.BigEndian.Uint32(newA[:]))
		h.SetChecksum(da.Update(h.Checksum()))
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
		h := header.IPv6(ip)
		var old [16]byte
		if dst {
			old = h.Dst()
			h.SetDst(*addr)
		} else {
			old = h.Src()
			h.SetSrc(*addr)
		}
		// TCP, UDP and ICMPv6 checksums cover the addresses (RFC 8200
		// section 8.1, RFC 4443 section 2.3).
		acc = header.ChecksumDeltaAddr16(&old, addr)
	default:
		return drop.BadIPHeader
	}
	l4 := ip[off:]
	c := binary.BigEndian.Uint16(l4[sumAt:])
	acc += header.ChecksumDelta16(binary.BigEndian.Uint16(l4[portAt:]), port)
	switch {
	case proto != header.ProtoUDP:
		c = acc.Update(c)
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
		if c = acc.Update(c); c == 0 {
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
	m := header.ICMPv4(ip[off:end])
	if m.Type()|m.Code() != 0 || m.Seq() != 0 {
		return false
	}
	for _, b := range m.Payload() {
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
