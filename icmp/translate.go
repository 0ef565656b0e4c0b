package icmp

import (
	"bytes"
	"encoding/binary"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// TranslateRelated rewrites in place the ICMP error pkt (an IP packet that
// conntrack.Parse filled p from, Kind == KindRelated) about a flow edge
// translates, so that each end sees the error it would see without the NAT
// (RFC 5508 section 4; the package doc has the table of fields):
//
//   - dir == conntrack.Reply (the error came from outside and quotes the
//     packet as edge sent it, natAddr:natPort -> server): the outer
//     destination and the quoted source address become orig.Src, the
//     quoted source port (echo identifier) orig.SrcPort.
//   - dir == conntrack.Original (the error came from inside and quotes a
//     reply as edge delivered it, server -> client): the outer source and
//     the quoted destination address become natAddr, the quoted
//     destination port (echo identifier) tr.Port.
//
// dir is the direction in which Shard.Track matched p.Key; orig is the
// flow's original key (Shard.Key), tr its translation (Shard.NAT) and
// natAddr the address tr.Addr names (Table.NATAddr, as 16 bytes: IPv4-mapped
// for IPv4). A flow without translation (tr.Addr == 0) needs nothing:
// drop.None, pkt untouched.
//
// Every checksum the rewrite touches is updated incrementally (RFC 1624):
// the outer IPv4 header, the ICMP checksum (ICMPv6's pseudo-header
// included), the quoted IPv4 header, and the quoted transport checksum when
// the quote holds it (UDP: always, a zero UDP checksum stays zero; TCP: only
// if bytes 16-17 are quoted; echo: always, ICMPv6's with its pseudo-header).
// A corrupted error thus stays corrupted, but first, RFC 5508 REQ-3: "if
// the ICMP checksum fails to validate, the NAT SHOULD silently drop the
// ICMP Error packet", and REQ-3(a): "If the IP checksum of the embedded
// packet fails to validate, the NAT SHOULD silently drop the Error packet":
// drop.ICMPBadChecksum. The quoted transport checksum is not validated
// (REQ-3(c): "SHOULD NOT").
//
// Other results: drop.BadICMP if p does not describe pkt (offsets, versions,
// protocols disagree), drop.ICMPNoFlow if the quote is not of this flow
// (addresses, ports or families differ from orig, tr and natAddr). On any
// result but drop.None, pkt is unchanged: everything is checked before the
// first byte is written. The error's TTL is left to the forwarding stage.
// TranslateRelated never touches a flow (an error never refreshes or deletes
// one: RFC 5508 REQ-6, RFC 5382 REQ-10) and never allocates.
func TranslateRelated(pkt []byte, p *conntrack.Packet, dir conntrack.Dir, orig conntrack.Key, tr conntrack.Translation, natAddr [16]byte) drop.Reason {
	if p.Kind != conntrack.KindRelated {
		return drop.BadICMP
	}
	if tr.Addr == 0 {
		return drop.None
	}
	if len(pkt) < 1 {
		return drop.Truncated
	}
	l4, in, il4 := int(p.L4Off), int(p.InnerOff), int(p.InnerL4)
	var (
		v4                     bool
		end, alen              int // end of the IP packet; address length
		srcOff, dstOff         int // outer addresses
		innerSrc, innerDst     int // quoted addresses
		icmpProto, echoReq, er uint8
	)
	switch pkt[0] >> 4 {
	case 4:
		ip := header.IPv4(pkt)
		if len(pkt) < header.IPv4MinLen || !ip.IsValid(len(pkt)) {
			return drop.BadIPHeader
		}
		v4, end, alen, srcOff, dstOff = true, int(ip.TotalLen()), 4, 12, 16
		if ip.Protocol() != header.ProtoICMP || ip.IsFragment() || l4 != ip.HeaderLen() ||
			in != l4+header.ICMPv4MinLen || il4 < in+header.IPv4MinLen || il4+8 > end ||
			!header.ICMPv4IsError(pkt[l4]) || pkt[in]>>4 != 4 ||
			in+int(pkt[in]&0xf)*4 != il4 || pkt[in+9] != p.Key.Proto {
			return drop.BadICMP
		}
		innerSrc, innerDst = in+12, in+16
		icmpProto, echoReq, er = header.ProtoICMP, header.ICMPv4EchoRequest, header.ICMPv4EchoReply
	case 6:
		ip := header.IPv6(pkt)
		if len(pkt) < header.IPv6Len || !ip.IsValid(len(pkt)) {
			return drop.BadIPHeader
		}
		end, alen, srcOff, dstOff = header.IPv6Len+int(ip.PayloadLen()), 16, 8, 24
		if l4 < header.IPv6Len || in != l4+header.ICMPv6MinLen || il4 < in+header.IPv6Len || il4+8 > end ||
			!header.ICMPv6IsError(pkt[l4]) || pkt[in]>>4 != 6 {
			return drop.BadICMP
		}
		// The quoted transport header follows the fixed header directly or
		// after extension headers (which Parse walked).
		if nh := pkt[in+6]; il4 == in+header.IPv6Len && nh != p.Key.Proto ||
			il4 > in+header.IPv6Len && nh != header.ProtoHopByHop && nh != header.ProtoRouting &&
				nh != header.ProtoFragment && nh != header.ProtoDestOpts {
			return drop.BadICMP
		}
		innerSrc, innerDst = in+8, in+24
		icmpProto, echoReq, er = header.ProtoICMPv6, header.ICMPv6EchoRequest, header.ICMPv6EchoReply
	default:
		return drop.BadIPHeader
	}
	if header.IsV4Mapped(&orig.Src) != v4 || header.IsV4Mapped(&natAddr) != v4 || orig.Proto != p.Key.Proto {
		return drop.ICMPNoFlow
	}

	// What changes, by direction (the package doc has the diagram).
	var (
		from, to           [16]byte // quoted address, before and after
		fromPort, toPort   uint16   // quoted port or echo identifier
		innerAddr, outAddr int      // offsets of the quoted and outer address rewritten
		outTo              [16]byte // the outer address after
	)
	switch dir {
	case conntrack.Reply:
		// RFC 5508 REQ-4, an error from the external realm: "a) Revert the
		// IP and transport headers of the embedded IP packet to their
		// original form, using the matching mapping; and b) Leave the ICMP
		// Error type and code unchanged; and c) Modify the destination IP
		// address of the outer IP header to be same as the source IP
		// address of the embedded packet after translation."
		from, to, fromPort, toPort = natAddr, orig.Src, tr.Port, orig.SrcPort
		innerAddr, outAddr, outTo = innerSrc, dstOff, orig.Src
	case conntrack.Original:
		// RFC 5508 REQ-5, an error from the private realm: a) and b) as
		// above, and "c) ... In all other cases [than Basic NAT], translate
		// the source IP address of the ICMP Error packet with its own
		// public IP address."
		from, to, fromPort, toPort = orig.Src, natAddr, orig.SrcPort, tr.Port
		innerAddr, outAddr, outTo = innerDst, srcOff, natAddr
	default:
		return drop.BadICMP
	}
	a := 16 - alen // IPv4 addresses are the last 4 bytes of the mapped form

	// Where the quoted port and transport checksum are. ck < 0: the
	// checksum is not in the quote.
	var (
		portOff, ck int
		pseudo, udp bool // checksum covers the addresses; UDP's zero rule
	)
	switch p.Key.Proto {
	case header.ProtoTCP, header.ProtoUDP:
		portOff = il4 // the source port (Reply) ...
		if dir == conntrack.Original {
			portOff = il4 + 2 // ... or the destination port (Original)
		}
		pseudo = true
		if p.Key.Proto == header.ProtoUDP {
			ck, udp = il4+6, true
		} else if ck = il4 + 16; ck+2 > end {
			ck = -1
		}
	case icmpProto:
		// The quoted packet is an echo request going out (Reply) or an echo
		// reply coming in (Original); the identifier is the "port".
		want := echoReq
		if dir == conntrack.Original {
			want = er
		}
		if pkt[il4] != want {
			return drop.ICMPNoFlow
		}
		portOff, ck, pseudo = il4+4, il4+2, !v4
	default:
		return drop.BadICMP
	}

	// The quote must be of this flow, as translated.
	if !bytes.Equal(pkt[innerAddr:innerAddr+alen], from[a:]) ||
		binary.BigEndian.Uint16(pkt[portOff:]) != fromPort ||
		dir == conntrack.Reply && !bytes.Equal(pkt[dstOff:dstOff+alen], natAddr[a:]) {
		return drop.ICMPNoFlow
	}

	// RFC 5508 REQ-3 and REQ-3(a): valid ICMP and quoted IPv4 checksums.
	msg := pkt[l4:end]
	sum := uint16(0)
	if !v4 {
		sum = header.PseudoHeaderChecksum(header.ProtoICMPv6, pkt[8:24], pkt[24:40], uint16(len(msg)))
	}
	if header.Checksum(msg, sum) != 0xffff || v4 && header.Checksum(pkt[in:il4], 0) != 0xffff {
		return drop.ICMPBadChecksum
	}

	// Rewrite. Every field is at an even offset of what its checksums
	// cover, as RFC 1624 updates need.
	icmpCk := binary.BigEndian.Uint16(pkt[l4+2:])
	oldA, newA := from[a:], to[a:]
	copy(pkt[innerAddr:innerAddr+alen], newA)
	icmpCk = header.ChecksumUpdateBytes(icmpCk, oldA, newA)
	if v4 {
		old := binary.BigEndian.Uint16(pkt[in+10:])
		nw := header.ChecksumUpdateBytes(old, oldA, newA)
		binary.BigEndian.PutUint16(pkt[in+10:], nw)
		icmpCk = header.ChecksumUpdate16(icmpCk, old, nw)
	}
	binary.BigEndian.PutUint16(pkt[portOff:], toPort)
	icmpCk = header.ChecksumUpdate16(icmpCk, fromPort, toPort)
	if ck >= 0 {
		old := binary.BigEndian.Uint16(pkt[ck:])
		nw := old
		switch {
		case udp:
			nw = header.UDPChecksumUpdateBytes(nw, oldA, newA)
			nw = header.UDPChecksumUpdate16(nw, fromPort, toPort)
		case pseudo:
			nw = header.ChecksumUpdateBytes(nw, oldA, newA)
			nw = header.ChecksumUpdate16(nw, fromPort, toPort)
		default:
			nw = header.ChecksumUpdate16(nw, fromPort, toPort)
		}
		binary.BigEndian.PutUint16(pkt[ck:], nw)
		icmpCk = header.ChecksumUpdate16(icmpCk, old, nw)
	}
	var outFrom [16]byte
	copy(outFrom[a:], pkt[outAddr:outAddr+alen])
	copy(pkt[outAddr:outAddr+alen], outTo[a:])
	if v4 {
		ip := header.IPv4(pkt)
		ip.SetChecksum(header.ChecksumUpdateBytes(ip.Checksum(), outFrom[a:], outTo[a:]))
	} else {
		// The ICMPv6 checksum covers the outer addresses (RFC 4443 2.3).
		icmpCk = header.ChecksumUpdateBytes(icmpCk, outFrom[a:], outTo[a:])
	}
	binary.BigEndian.PutUint16(pkt[l4+2:], icmpCk)
	return drop.None
}
