package icmp

import (
	"encoding/binary"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// MaySend says whether an ICMP error of kind k may be sent about the IP
// packet offending (starting at its IP header, as received): drop.None if
// it may, else the reason it must not, for the caller to count. The packet
// is dropped either way; only the error is in question.
//
// The rules, checked in this order (the first that applies is the reason):
//
//   - the header is truncated or invalid (an IPv4 header checksum included,
//     RFC 1812 4.3.2.7: not about "a datagram that fails the IP header
//     validation tests"): drop.Truncated, drop.BadIPHeader,
//     drop.BadIPv6ExtHeader;
//   - a non-first fragment: drop.ICMPNotSentFragment;
//   - a source that is not one unicast host: drop.ICMPNotSentSource;
//   - a multicast or limited-broadcast destination (not for an IPv6
//     Packet Too Big): drop.ICMPNotSentMulticast;
//   - an ICMP error or redirect: drop.ICMPNotSentError (echo requests and
//     other queries may get errors);
//   - a TCP segment that is not a SYN (edge rule N3), except for
//     FragNeeded: drop.ICMPNotSentTCPNotSYN.
//
// What MaySend cannot see from the IP packet, the caller must check: a
// packet that arrived as a link-layer broadcast or multicast (RFC 1812
// 4.3.2.7, RFC 4443 2.4(e.4, e.5): test the I/G bit of the Ethernet
// destination) and a packet sent to a directed (subnet) broadcast address,
// which only the routing table knows. Anycast sources (RFC 4443 2.4(e.6))
// are not known here either. It never allocates.
func MaySend(offending []byte, k Kind) drop.Reason {
	if k == NoError || k >= NumKinds {
		return drop.ICMPBuildFailed
	}
	if len(offending) < 1 {
		return drop.Truncated
	}
	switch offending[0] >> 4 {
	case 4:
		return maySend4(offending, k)
	case 6:
		return maySend6(offending, k)
	}
	return drop.BadIPHeader
}

func maySend4(b []byte, k Kind) drop.Reason {
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
	// RFC 1812 4.3.2.7: not about "A datagram that fails the IP header
	// validation tests described in Section [5.2.2]" (the checksum is one).
	if !ip.IsChecksumValid() {
		return drop.BadIPHeader
	}
	// RFC 1812 4.3.2.7: not about "Any fragment of a datagram other then
	// the first fragment."
	if ip.FragmentOffset() != 0 {
		return drop.ICMPNotSentFragment
	}
	// RFC 1812 4.3.2.7: not about "A datagram whose source address does not
	// define a single host -- e.g., a zero address, a loopback address, a
	// broadcast address, a multicast address, or a Class E address."
	// 0.0.0.0/8 ("this network", RFC 1812 5.3.7), 127/8, 224/4 and 240/4
	// (which holds 255.255.255.255).
	if s := b[12]; s == 0 || s == 127 || s >= 224 {
		return drop.ICMPNotSentSource
	}
	// RFC 1812 4.3.2.7: not about "A datagram destined to an IP broadcast or
	// IP multicast address". Only the limited broadcast is known here.
	if d := binary.BigEndian.Uint32(b[16:20]); d>>28 == 0xe || d == 0xffffffff {
		return drop.ICMPNotSentMulticast
	}
	return mayL4(b[ip.HeaderLen():ip.TotalLen()], ip.Protocol(), header.ProtoICMP, k)
}

func maySend6(b []byte, k Kind) drop.Reason {
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
		return drop.BadIPv6ExtHeader
	}
	// Not about a non-first fragment: RFC 4443 does not say it, but its
	// rules (e.1, e.2) and N3 need the upper-layer header, which only the
	// first fragment carries (edge policy, as RFC 1812 4.3.2.7 for IPv4).
	if frag.Offset != 0 {
		return drop.ICMPNotSentFragment
	}
	// RFC 4443 2.4(e.6): not about "A packet whose source address does not
	// uniquely identify a single node -- e.g., the IPv6 Unspecified Address,
	// an IPv6 multicast address"; and not the loopback ::1, which no packet
	// on a link may carry (RFC 4291 2.5.3).
	hi, lo := binary.BigEndian.Uint64(b[8:16]), binary.BigEndian.Uint64(b[16:24])
	if b[8] == 0xff || (hi == 0 && lo <= 1) {
		return drop.ICMPNotSentSource
	}
	// RFC 4443 2.4(e.3): not about "A packet destined to an IPv6 multicast
	// address. (There are two exceptions to this rule: (1) the Packet Too
	// Big Message (Section 3.2) to allow Path MTU discovery to work for IPv6
	// multicast, ...)". (The other exception, Parameter Problem code 2, is
	// not a kind edge sends.)
	if b[24] == 0xff && !k.tooBig() {
		return drop.ICMPNotSentMulticast
	}
	return mayL4(b[off:header.IPv6Len+int(ip.PayloadLen())], proto, header.ProtoICMPv6, k)
}

// mayL4 applies the upper-layer rules to the transport bytes l4 of protocol
// proto; icmpProto is the ICMP of the packet's IP version.
func mayL4(l4 []byte, proto, icmpProto uint8, k Kind) drop.Reason {
	switch proto {
	case icmpProto:
		if len(l4) < 1 {
			return drop.Truncated
		}
		t := l4[0]
		// RFC 1812 4.3.2.7: not about "An ICMP error message"; RFC 4443
		// 2.4(e.1, e.2): not about "An ICMPv6 error message" nor "An ICMPv6
		// redirect message". Queries (echo request ...) may get errors.
		if icmpProto == header.ProtoICMP && header.ICMPv4IsError(t) ||
			icmpProto == header.ProtoICMPv6 && (header.ICMPv6IsError(t) || t == header.ICMPv6Redirect) {
			return drop.ICMPNotSentError
		}
	case header.ProtoTCP:
		// Edge rule N3: never an ICMP error about a TCP segment that is not
		// a SYN (a state mismatch is dropped silently and counted). A SYN is
		// SYN without ACK, RST or FIN; ECE and CWR may be set (the ECN-setup
		// SYN, RFC 3168 6.1.1); PSH and URG may not.
		//
		// FragNeeded is exempt: the segments too big for the next hop are
		// data segments (ACK set), and without Packet Too Big path MTU
		// discovery fails and the connection hangs (a black hole, RFC 2923
		// 2.1). RFC 1191 4: "the router is required to return an ICMP
		// Destination Unreachable message"; RFC 4443 3.2: "A Packet Too Big
		// MUST be sent by a router". It is not an answer to a state
		// mismatch, which is what N3 forbids.
		if k.tooBig() {
			return drop.None
		}
		if len(l4) < 14 {
			return drop.Truncated
		}
		if l4[13]&^(header.TCPFlagECE|header.TCPFlagCWR) != header.TCPFlagSYN {
			return drop.ICMPNotSentTCPNotSYN
		}
	}
	return drop.None
}
