package header

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 fixed header (RFC 8200 §3):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Traffic Class |           Flow Label                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Payload Length        |  Next Header  |   Hop Limit   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+                         Source Address                        +
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+                      Destination Address                      +
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	ipv6VerTCFlow  = 0
	ipv6PayloadLen = 4
	ipv6NextHeader = 6
	ipv6HopLimit   = 7
	ipv6Src        = 8
	ipv6Dst        = 24

	// IPv6Len is the length of the fixed IPv6 header.
	IPv6Len = 40

	// IPv6MaxExtHeaders is the number of extension headers IPv6.Transport
	// walks before giving up.
	IPv6MaxExtHeaders = 8
)

// IPv6 is a view of an IPv6 fixed header at the start of b, followed by its
// extension headers and payload.
type IPv6 []byte

// IsValid reports whether b starts with a well-formed IPv6 header of a packet
// whose length as known from the layer below is pktLen (normally len(b)):
// version 6 and 40+PayloadLen <= pktLen, 40+PayloadLen <= len(b). Jumbograms
// (Payload Length 0 with a Jumbo Payload option) are not supported: they are
// seen as packets with an empty payload.
func (b IPv6) IsValid(pktLen int) bool {
	if len(b) < IPv6Len || b[ipv6VerTCFlow]>>4 != 6 {
		return false
	}
	end := IPv6Len + int(binary.BigEndian.Uint16(b[ipv6PayloadLen:]))
	return end <= pktLen && end <= len(b)
}

// TrafficClass returns the Traffic Class (DSCP and ECN) byte.
func (b IPv6) TrafficClass() uint8 {
	return uint8(binary.BigEndian.Uint16(b[ipv6VerTCFlow:]) >> 4)
}

// FlowLabel returns the 20-bit Flow Label.
func (b IPv6) FlowLabel() uint32 {
	return binary.BigEndian.Uint32(b[ipv6VerTCFlow:]) & 0xfffff
}

// PayloadLen returns the Payload Length field (everything after the fixed
// header, extension headers included).
func (b IPv6) PayloadLen() uint16 { return binary.BigEndian.Uint16(b[ipv6PayloadLen:]) }

// NextHeader returns the Next Header field of the fixed header.
func (b IPv6) NextHeader() uint8 { return b[ipv6NextHeader] }

// HopLimit returns the Hop Limit field.
func (b IPv6) HopLimit() uint8 { return b[ipv6HopLimit] }

// Src returns the source address.
func (b IPv6) Src() [16]byte { return [16]byte(b[ipv6Src : ipv6Src+16]) }

// Dst returns the destination address.
func (b IPv6) Dst() [16]byte { return [16]byte(b[ipv6Dst : ipv6Dst+16]) }

// SrcAddr returns the source address as a netip.Addr.
func (b IPv6) SrcAddr() netip.Addr { return netip.AddrFrom16(b.Src()) }

// DstAddr returns the destination address as a netip.Addr.
func (b IPv6) DstAddr() netip.Addr { return netip.AddrFrom16(b.Dst()) }

// Payload returns the bytes after the fixed header up to 40+PayloadLen,
// extension headers included.
func (b IPv6) Payload() []byte { return b[IPv6Len : IPv6Len+int(b.PayloadLen())] }

// SetTrafficClass sets the Traffic Class byte.
func (b IPv6) SetTrafficClass(v uint8) {
	w := binary.BigEndian.Uint16(b[ipv6VerTCFlow:])
	binary.BigEndian.PutUint16(b[ipv6VerTCFlow:], w&0xf00f|uint16(v)<<4)
}

// SetFlowLabel sets the Flow Label to the low 20 bits of v.
func (b IPv6) SetFlowLabel(v uint32) {
	w := binary.BigEndian.Uint32(b[ipv6VerTCFlow:])
	binary.BigEndian.PutUint32(b[ipv6VerTCFlow:], w&^0xfffff|v&0xfffff)
}

// SetPayloadLen sets the Payload Length field.
func (b IPv6) SetPayloadLen(v uint16) { binary.BigEndian.PutUint16(b[ipv6PayloadLen:], v) }

// SetNextHeader sets the Next Header field of the fixed header.
func (b IPv6) SetNextHeader(v uint8) { b[ipv6NextHeader] = v }

// SetHopLimit sets the Hop Limit field.
func (b IPv6) SetHopLimit(v uint8) { b[ipv6HopLimit] = v }

// SetSrc sets the source address.
func (b IPv6) SetSrc(a [16]byte) { copy(b[ipv6Src:ipv6Src+16], a[:]) }

// SetDst sets the destination address.
func (b IPv6) SetDst(a [16]byte) { copy(b[ipv6Dst:ipv6Dst+16], a[:]) }

// IPv6Frag describes the Fragment header found by [IPv6.Transport].
//
// IPv6 Fragment header (RFC 8200 §4.5):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         Identification                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type IPv6Frag struct {
	Present bool   // a Fragment header was found
	Offset  uint16 // fragment offset in bytes (a multiple of 8)
	More    bool   // M flag: more fragments follow
	ID      uint32 // Identification
}

// IsFragment reports whether the packet is a real fragment (as opposed to an
// atomic fragment, RFC 6946, which has offset 0 and M clear).
func (f IPv6Frag) IsFragment() bool { return f.Present && (f.Offset != 0 || f.More) }

// Generic extension header layout (Hop-by-Hop, Routing, Destination Options;
// RFC 8200 §4.3, §4.4, §4.6): Hdr Ext Len is in 8-byte units, not counting
// the first 8 bytes.
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Next Header  |  Hdr Ext Len  |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	.                  (type-specific data)                         .
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The Authentication Header (RFC 4302 §2) has the same first two bytes, but
// its Payload Len is in 4-byte units minus 2.
const (
	ipv6ExtMinLen = 8
	ipv6FragLen   = 8
)

// Routing header fields (RFC 8200 §4.4): after Next Header and Hdr Ext Len.
const (
	ipv6RoutingType     = 2
	ipv6RoutingSegsLeft = 3
)

// RoutingType0 reports whether b holds, at off, a Routing header of type 0
// with segments left above 0 (RFC 5095), which Transport refuses: the
// caller tells this refusal from a malformed chain with the proto and off
// Transport returned (proto is ProtoRouting).
func (b IPv6) RoutingType0(off int) bool {
	return off >= IPv6Len && off+ipv6ExtMinLen <= len(b) && b[off+ipv6RoutingType] == 0 && b[off+ipv6RoutingSegsLeft] != 0
}

// Transport walks the IPv6 extension-header chain and returns the upper-layer
// protocol number and the offset of its header from the start of b, along
// with the Fragment header, if any. It walks at most [IPv6MaxExtHeaders]
// Hop-by-Hop, Routing, Destination Options, Fragment and AH headers, checking
// every length against 40+PayloadLen (and len(b)).
//
// ok is false if an extension header is truncated or overruns the payload,
// if the chain is longer than IPv6MaxExtHeaders, if a Hop-by-Hop header is
// not the first one (RFC 8200 §4.1), if there are two Fragment headers, or
// if a Routing header of type 0 has segments left (RFC 5095: deprecated,
// its use amplifies traffic between two routers; proto and off are then
// that header's, and RoutingType0 tells it apart). A Routing header of any
// other type is walked over whatever its segments left: only the node its
// destination address names processes it (RFC 8200 §4.4), and a transit
// router is not that node.
//
// ESP and No Next Header end the walk: their number is returned as proto with
// ok = true. A non-first fragment (frag.Offset != 0) also ends the walk right
// after its Fragment header: proto is the Fragment header's Next Header and
// off the start of the fragment data, which does not contain that header.
// Callers must check frag before parsing an upper-layer header at off.
//
// Every other Next Header value is returned as the upper-layer protocol; off
// is then at most 40+PayloadLen (the upper-layer header may be empty or
// truncated, which the caller checks with that header's IsValid).
func (b IPv6) Transport() (proto uint8, off int, frag IPv6Frag, ok bool) {
	if len(b) < IPv6Len {
		return 0, 0, frag, false
	}
	end := IPv6Len + int(binary.BigEndian.Uint16(b[ipv6PayloadLen:]))
	if end > len(b) {
		return 0, 0, frag, false
	}
	nh := b[ipv6NextHeader]
	off = IPv6Len
	for i := 0; ; i++ {
		var hl int
		switch nh {
		case ProtoHopByHop, ProtoRouting, ProtoDestOpts:
			if nh == ProtoHopByHop && i != 0 {
				return nh, off, frag, false
			}
			if off+ipv6ExtMinLen > end {
				return nh, off, frag, false
			}
			if nh == ProtoRouting && b[off+ipv6RoutingType] == 0 && b[off+ipv6RoutingSegsLeft] != 0 {
				return nh, off, frag, false
			}
			hl = (int(b[off+1]) + 1) * 8
		case ProtoAH:
			if off+ipv6ExtMinLen > end {
				return nh, off, frag, false
			}
			hl = (int(b[off+1]) + 2) * 4
		case ProtoFragment:
			if frag.Present || off+ipv6FragLen > end {
				return nh, off, frag, false
			}
			fo := binary.BigEndian.Uint16(b[off+2:])
			frag = IPv6Frag{
				Present: true,
				Offset:  fo &^ 7,
				More:    fo&1 != 0,
				ID:      binary.BigEndian.Uint32(b[off+4:]),
			}
			hl = ipv6FragLen
		default: // upper layer, ESP, No Next Header
			return nh, off, frag, true
		}
		if i == IPv6MaxExtHeaders || off+hl > end {
			return nh, off, frag, false
		}
		nh = b[off]
		off += hl
		if frag.Offset != 0 {
			return nh, off, frag, true
		}
	}
}
