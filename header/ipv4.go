package header

import (
	"encoding/binary"
	"net/netip"
)

// IPv4 header (RFC 791 §3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Flags (3 bits): bit 0 reserved (must be zero), bit 1 DF, bit 2 MF.
// Fragment Offset is in units of 8 bytes.
const (
	ipv4VerIHL   = 0
	ipv4TOS      = 1
	ipv4TotalLen = 2
	ipv4ID       = 4
	ipv4FlagsOff = 6
	ipv4TTL      = 8
	ipv4Proto    = 9
	ipv4Checksum = 10
	ipv4Src      = 12
	ipv4Dst      = 16

	ipv4FlagDF     = 0x4000
	ipv4FlagMF     = 0x2000
	ipv4OffsetMask = 0x1fff

	// IPv4MinLen is the length of an IPv4 header without options.
	IPv4MinLen = 20
	// IPv4MaxLen is the length of an IPv4 header with 40 bytes of options.
	IPv4MaxLen = 60
)

// IPv4 is a view of an IPv4 header at the start of b, followed by its payload.
type IPv4 []byte

// IsValid reports whether b starts with a well-formed IPv4 header of a packet
// whose length as known from the layer below is pktLen (normally len(b)):
// version 4, IHL >= 5, and HeaderLen <= TotalLen <= pktLen, TotalLen <=
// len(b). Bytes beyond TotalLen (link-layer padding) are allowed. The header
// checksum is not verified; see [IPv4.IsChecksumValid].
func (b IPv4) IsValid(pktLen int) bool {
	if len(b) < IPv4MinLen || b[ipv4VerIHL]>>4 != 4 {
		return false
	}
	hl := int(b[ipv4VerIHL]&0xf) * 4
	tl := int(binary.BigEndian.Uint16(b[ipv4TotalLen:]))
	return hl >= IPv4MinLen && hl <= tl && tl <= pktLen && tl <= len(b)
}

// HeaderLen returns the header length in bytes (IHL*4).
func (b IPv4) HeaderLen() int { return int(b[ipv4VerIHL]&0xf) * 4 }

// TOS returns the Type of Service (DSCP and ECN) byte.
func (b IPv4) TOS() uint8 { return b[ipv4TOS] }

// TotalLen returns the Total Length field (header plus payload).
func (b IPv4) TotalLen() uint16 { return binary.BigEndian.Uint16(b[ipv4TotalLen:]) }

// ID returns the Identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[ipv4ID:]) }

// DontFragment reports whether the DF flag is set.
func (b IPv4) DontFragment() bool {
	return binary.BigEndian.Uint16(b[ipv4FlagsOff:])&ipv4FlagDF != 0
}

// MoreFragments reports whether the MF flag is set.
func (b IPv4) MoreFragments() bool {
	return binary.BigEndian.Uint16(b[ipv4FlagsOff:])&ipv4FlagMF != 0
}

// FragmentOffset returns the fragment offset in bytes (a multiple of 8).
func (b IPv4) FragmentOffset() uint16 {
	return (binary.BigEndian.Uint16(b[ipv4FlagsOff:]) & ipv4OffsetMask) * 8
}

// IsFragment reports whether the packet is a fragment: MF is set or the
// fragment offset is not zero.
func (b IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(b[ipv4FlagsOff:])&(ipv4FlagMF|ipv4OffsetMask) != 0
}

// TTL returns the Time to Live field.
func (b IPv4) TTL() uint8 { return b[ipv4TTL] }

// Protocol returns the Protocol field.
func (b IPv4) Protocol() uint8 { return b[ipv4Proto] }

// Checksum returns the stored Header Checksum field.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[ipv4Checksum:]) }

// Src returns the source address.
func (b IPv4) Src() [4]byte { return [4]byte(b[ipv4Src : ipv4Src+4]) }

// Dst returns the destination address.
func (b IPv4) Dst() [4]byte { return [4]byte(b[ipv4Dst : ipv4Dst+4]) }

// SrcAddr returns the source address as a netip.Addr.
func (b IPv4) SrcAddr() netip.Addr { return netip.AddrFrom4(b.Src()) }

// DstAddr returns the destination address as a netip.Addr.
func (b IPv4) DstAddr() netip.Addr { return netip.AddrFrom4(b.Dst()) }

// Payload returns the bytes from the end of the header to TotalLen.
func (b IPv4) Payload() []byte { return b[b.HeaderLen():b.TotalLen()] }

// SetTOS sets the Type of Service byte.
func (b IPv4) SetTOS(v uint8) { b[ipv4TOS] = v }

// SetTotalLen sets the Total Length field.
func (b IPv4) SetTotalLen(v uint16) { binary.BigEndian.PutUint16(b[ipv4TotalLen:], v) }

// SetID sets the Identification field.
func (b IPv4) SetID(v uint16) { binary.BigEndian.PutUint16(b[ipv4ID:], v) }

// SetFlagsFragment sets the DF and MF flags and the fragment offset off, given
// in bytes (it must be a multiple of 8; the low 3 bits are dropped). The
// reserved flag is cleared.
func (b IPv4) SetFlagsFragment(df, mf bool, off uint16) {
	v := (off >> 3) & ipv4OffsetMask
	if df {
		v |= ipv4FlagDF
	}
	if mf {
		v |= ipv4FlagMF
	}
	binary.BigEndian.PutUint16(b[ipv4FlagsOff:], v)
}

// SetTTL sets the Time to Live field.
func (b IPv4) SetTTL(v uint8) { b[ipv4TTL] = v }

// SetProtocol sets the Protocol field.
func (b IPv4) SetProtocol(v uint8) { b[ipv4Proto] = v }

// SetChecksum sets the Header Checksum field.
func (b IPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[ipv4Checksum:], v) }

// SetSrc sets the source address.
func (b IPv4) SetSrc(a [4]byte) { copy(b[ipv4Src:ipv4Src+4], a[:]) }

// SetDst sets the destination address.
func (b IPv4) SetDst(a [4]byte) { copy(b[ipv4Dst:ipv4Dst+4], a[:]) }

// CalculateChecksum returns the header checksum value to store, computed over
// HeaderLen bytes with the checksum field treated as zero.
func (b IPv4) CalculateChecksum() uint16 {
	return ^Checksum(b[ipv4Checksum+2:b.HeaderLen()], Checksum(b[:ipv4Checksum], 0))
}

// IsChecksumValid reports whether the stored header checksum is correct.
func (b IPv4) IsChecksumValid() bool {
	return Checksum(b[:b.HeaderLen()], 0) == 0xffff
}

// IPv4 option types (RFC 791 §3.1; the type octet includes the copied flag
// and the class).
const (
	IPv4OptEOL  = 0   // End of Option List
	IPv4OptNOP  = 1   // No Operation
	IPv4OptLSRR = 131 // Loose Source and Record Route
	IPv4OptSSRR = 137 // Strict Source and Record Route
)

// SourceRouted walks the options of a header that [IPv4.IsValid] accepted
// and reports whether they hold a source route (LSRR or SSRR) and whether
// they are well formed: every option but EOL and NOP has a length octet of
// at least 2 that does not run past the header. The walk stops at EOL. A
// header without options (IHL 5) is valid and not source-routed. No
// allocation.
func (b IPv4) SourceRouted() (routed, valid bool) {
	end := b.HeaderLen()
	for i := IPv4MinLen; i < end; {
		switch t := b[i]; t {
		case IPv4OptEOL:
			return routed, true
		case IPv4OptNOP:
			i++
		default:
			if i+1 >= end {
				return routed, false
			}
			n := int(b[i+1])
			if n < 2 || i+n > end {
				return routed, false
			}
			if t == IPv4OptLSRR || t == IPv4OptSSRR {
				routed = true
			}
			i += n
		}
	}
	return routed, true
}
