package header

import (
	"encoding/binary"
	"math/bits"
)

// Checksum returns the 16-bit one's complement sum (RFC 1071) of b, added to
// initial. The result is the folded sum, not its complement: the value to
// store in a header checksum field is ^Checksum(...). A buffer whose stored
// checksum is correct sums to 0xFFFF.
//
// If len(b) is odd, b is treated as if padded with a trailing zero byte, so
// only the last slice of a multi-part sum may have an odd length.
//
// The sum is accumulated 8 bytes at a time in a 64-bit accumulator with
// end-around carry; because the one's complement sum is byte-order independent
// (RFC 1071 §2(B)) the words are read in little-endian order and the folded
// result is byte-swapped at the end.
//
// Checksum returns 0 only if initial is 0 and every byte of b is 0; any other
// input yields a value in [1, 0xFFFF] (0xFFFF being the "negative zero").
func Checksum(b []byte, initial uint16) uint16 {
	acc := uint64(bits.ReverseBytes16(initial))
	var c uint64
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:16]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:24]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:32]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[0:8]), c)
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, c = bits.Add64(acc, uint64(binary.LittleEndian.Uint32(b[0:4])), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, c = bits.Add64(acc, uint64(binary.LittleEndian.Uint16(b[0:2])), c)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, c = bits.Add64(acc, uint64(b[0]), c)
	}
	acc, c = bits.Add64(acc, c, 0)
	acc += c
	return bits.ReverseBytes16(fold64(acc))
}

// fold64 folds a 64-bit one's complement accumulator to 16 bits with
// end-around carry. A non-zero input yields a non-zero result.
func fold64(acc uint64) uint16 {
	s := (acc >> 32) + (acc & 0xffffffff) // <= 2^33-2
	s = (s >> 32) + (s & 0xffffffff)      // <= 2^32-1
	t := uint32(s)
	t = (t >> 16) + (t & 0xffff) // <= 0x1fffe
	t = (t >> 16) + (t & 0xffff) // <= 0xffff
	return uint16(t)
}

// ChecksumCombine returns the one's complement sum of two partial sums, as
// returned by [Checksum].
func ChecksumCombine(a, b uint16) uint16 {
	v := uint32(a) + uint32(b)
	return uint16(v + v>>16)
}

// PseudoHeaderChecksum returns the one's complement sum (not inverted) of the
// TCP/UDP/ICMPv6 pseudo-header for the given protocol, addresses and
// upper-layer length. src and dst must both be 4-byte (IPv4, RFC 793/768) or
// both 16-byte (IPv6, RFC 8200 §8.1) addresses. For IPv6 the pseudo-header
// carries a 32-bit length and a 24-bit zero pad before the next header; the
// sum is the same as the one computed here for lengths below 65536 (jumbograms
// are not supported).
//
// The result is the initial value to pass to [Checksum] over the segment.
func PseudoHeaderChecksum(proto uint8, src, dst []byte, length uint16) uint16 {
	acc := uint64(proto) + uint64(length)
	acc += uint64(Checksum(src, 0))
	acc += uint64(Checksum(dst, 0))
	return fold64(acc)
}

// ChecksumUpdate16 returns the new value of a stored (inverted) checksum field
// check after one 16-bit word of the covered data changed from old to new,
// using RFC 1624 equation 3:
//
//	HC' = ~(~HC + ~m + m')
//
// Corner case (RFC 1624 §3-§5): a checksum computed from scratch over data
// that is not all zeros is never 0xFFFF ("-0"); it can legitimately be 0x0000.
// Equation 3 keeps that property: if check was produced by a full computation
// (or by these helpers) the result is bit-for-bit equal to a full
// recomputation, including the case where the new checksum is 0x0000. The
// older equation HC' = HC - ~m - m' (RFC 1141) would yield 0xFFFF there, which
// is why it is not used. The only input that can produce 0xFFFF is a check
// field that already holds 0xFFFF (which a correct sender does not emit except
// for UDP, see below) combined with a change from 0xFFFF to 0x0000.
//
// UDP: a stored UDP checksum of 0 means "no checksum" for IPv4 (RFC 768) and
// must be left at 0 rather than updated, and a computed UDP checksum of 0 is
// transmitted as 0xFFFF. Use [UDPChecksumUpdate16] and friends, which apply
// both rules, for UDP.
func ChecksumUpdate16(check, old, new uint16) uint16 {
	return ChecksumDelta16(old, new).Update(check)
}

// ChecksumUpdate32 is [ChecksumUpdate16] for a 32-bit field (an IPv4
// address, a TCP sequence number, or two adjacent 16-bit fields such as the
// TCP/UDP ports) that starts at an even offset of the covered data.
func ChecksumUpdate32(check uint16, old, new uint32) uint16 {
	return ChecksumDelta32(old, new).Update(check)
}

// ChecksumUpdateBytes is [ChecksumUpdate16] for a field of arbitrary even
// length starting at an even offset of the covered data, such as a 4-byte
// IPv4 or 16-byte IPv6 address: old is the previous content and new the
// replacement. The slices must have the same length; ChecksumUpdateBytes
// panics otherwise. An odd final byte is treated as the high byte of a word
// padded with zero, which is only correct if the field ends the covered data.
func ChecksumUpdateBytes(check uint16, old, new []byte) uint16 {
	return ChecksumDeltaBytes(old, new).Update(check)
}

// ChecksumDelta is how the data a checksum covers changed, for RFC 1624
// equation 3, HC' = ~(~HC + ~m + m'): the sum of ~m + m' over the changed
// words, in one's complement arithmetic (modulo 0xFFFF). The deltas of
// several fields add with +, and Update applies them to a stored checksum
// once: the way to change several fields under one checksum (an address
// and a port under a TCP checksum). 32-bit words are added whole (2^16 = 1
// modulo 0xFFFF: a 32-bit word and its complement count as the sum of their
// two halves) and the 64-bit sum is folded once, in Update; a sum of fewer
// than 2^30 deltas cannot overflow. Every ChecksumUpdate function is Update
// of a delta.
type ChecksumDelta uint64

// ChecksumDelta16 returns the delta of a 16-bit word of the covered data
// changing from old to new.
func ChecksumDelta16(old, new uint16) ChecksumDelta {
	return ChecksumDelta(^old) + ChecksumDelta(new)
}

// ChecksumDelta32 returns the delta of a 32-bit field, at an even offset of
// the covered data, changing from old to new.
func ChecksumDelta32(old, new uint32) ChecksumDelta {
	return ChecksumDelta(^old) + ChecksumDelta(new)
}

// ChecksumDeltaAddr16 returns the delta of a 16-byte address (IPv6, or
// IPv4-mapped) changing from old to new: ChecksumDeltaBytes unrolled.
func ChecksumDeltaAddr16(old, new *[16]byte) ChecksumDelta {
	return ChecksumDelta32(binary.BigEndian.Uint32(old[0:]), binary.BigEndian.Uint32(new[0:])) +
		ChecksumDelta32(binary.BigEndian.Uint32(old[4:]), binary.BigEndian.Uint32(new[4:])) +
		ChecksumDelta32(binary.BigEndian.Uint32(old[8:]), binary.BigEndian.Uint32(new[8:])) +
		ChecksumDelta32(binary.BigEndian.Uint32(old[12:]), binary.BigEndian.Uint32(new[12:]))
}

// ChecksumDeltaBytes returns the delta of a field of any length (at an even
// offset of the covered data) changing from old to new, as for
// [ChecksumUpdateBytes]; it panics if the lengths differ.
func ChecksumDeltaBytes(old, new []byte) ChecksumDelta {
	if len(old) != len(new) {
		panic("header: ChecksumDeltaBytes: length mismatch")
	}
	var d ChecksumDelta
	for len(old) >= 4 && len(new) >= 4 {
		d += ChecksumDelta32(binary.BigEndian.Uint32(old), binary.BigEndian.Uint32(new))
		old, new = old[4:], new[4:]
	}
	if len(old) >= 2 && len(new) >= 2 {
		d += ChecksumDelta16(binary.BigEndian.Uint16(old), binary.BigEndian.Uint16(new))
		old, new = old[2:], new[2:]
	}
	if len(old) == 1 && len(new) == 1 {
		d += ChecksumDelta16(uint16(old[0])<<8, uint16(new[0])<<8)
	}
	return d
}

// Update returns the stored (inverted) checksum field check after the
// changes d of the data it covers. When check was right for the old data,
// the result is bit for bit what a full recomputation over the new data
// gives, 0x0000 included (see [ChecksumUpdate16]): the folded sum of a
// non-zero accumulator is never 0, so the result is never 0xFFFF unless
// the data sum to zero.
func (d ChecksumDelta) Update(check uint16) uint16 {
	return ^fold64(uint64(d) + uint64(^check))
}

// PortAndChecksumOffsets returns where, in a transport header of protocol
// proto, are the field a NAT translates and the checksum that covers it:
// for TCP and UDP the source port (the destination port when dst), for
// ICMP and ICMPv6 the echo identifier (whichever dst). ok is false for
// other protocols.
func PortAndChecksumOffsets(proto uint8, dst bool) (portAt, sumAt int, ok bool) {
	switch proto {
	case ProtoTCP:
		if dst {
			return tcpDstPort, tcpChecksum, true
		}
		return tcpSrcPort, tcpChecksum, true
	case ProtoUDP:
		if dst {
			return udpDstPort, udpChecksum, true
		}
		return udpSrcPort, udpChecksum, true
	case ProtoICMP, ProtoICMPv6:
		return icmpIdent, icmpChecksum, true
	}
	return 0, 0, false
}

// UDPChecksumUpdate16 is [ChecksumUpdate16] for a UDP checksum field: a stored
// 0 ("no checksum", IPv4 only) is returned unchanged, and a result of 0 is
// returned as 0xFFFF (RFC 768).
func UDPChecksumUpdate16(check, old, new uint16) uint16 {
	if check == 0 {
		return 0
	}
	return udpNonZero(ChecksumUpdate16(check, old, new))
}

// UDPChecksumUpdate32 is [ChecksumUpdate32] with the UDP rules of
// [UDPChecksumUpdate16].
func UDPChecksumUpdate32(check uint16, old, new uint32) uint16 {
	if check == 0 {
		return 0
	}
	return udpNonZero(ChecksumUpdate32(check, old, new))
}

// UDPChecksumUpdateBytes is [ChecksumUpdateBytes] with the UDP rules of
// [UDPChecksumUpdate16]. Note that for IPv6 a zero UDP checksum is invalid
// (RFC 8200 §8.1) and such datagrams should have been dropped already; this
// function leaves it at 0 either way.
func UDPChecksumUpdateBytes(check uint16, old, new []byte) uint16 {
	if check == 0 {
		return 0
	}
	return udpNonZero(ChecksumUpdateBytes(check, old, new))
}

func udpNonZero(c uint16) uint16 {
	if c == 0 {
		return 0xffff
	}
	return c
}

// sumSkip returns the one's complement sum of b with the 16-bit word at the
// even offset at treated as zero (if b is long enough to contain it).
func sumSkip(b []byte, at int, initial uint16) uint16 {
	if len(b) < at+2 {
		return Checksum(b, initial)
	}
	return Checksum(b[at+2:], Checksum(b[:at], initial))
}

// TCPChecksum returns the value to store in the checksum field of the TCP
// segment seg (header and payload, exactly the segment length) sent from src
// to dst (both 4 or both 16 bytes). The current content of the checksum field
// is ignored (treated as zero), so callers may but need not zero it first.
//
// To verify a received segment, either compare TCPChecksum with the stored
// value or check that Checksum(seg, PseudoHeaderChecksum(...)) == 0xFFFF.
func TCPChecksum(src, dst []byte, seg []byte) uint16 {
	return ^sumSkip(seg, 16, PseudoHeaderChecksum(ProtoTCP, src, dst, uint16(len(seg))))
}

// UDPChecksum returns the value to store in the checksum field of the UDP
// datagram dgram (header and payload, exactly Length bytes) sent from src to
// dst (both 4 or both 16 bytes). The checksum field is treated as zero. A
// computed value of 0 is returned as 0xFFFF (RFC 768), so the result is never
// 0, which on IPv4 would mean "no checksum".
func UDPChecksum(src, dst []byte, dgram []byte) uint16 {
	return udpNonZero(^sumSkip(dgram, 6, PseudoHeaderChecksum(ProtoUDP, src, dst, uint16(len(dgram)))))
}

// ICMPv6Checksum returns the value to store in the checksum field of the
// ICMPv6 message msg sent from src to dst (16-byte addresses; RFC 4443 §2.3).
// The checksum field is treated as zero.
func ICMPv6Checksum(src, dst, msg []byte) uint16 {
	return ^sumSkip(msg, 2, PseudoHeaderChecksum(ProtoICMPv6, src, dst, uint16(len(msg))))
}

// ICMPv4Checksum returns the value to store in the checksum field of the
// ICMPv4 message msg (RFC 792: no pseudo-header). The checksum field is
// treated as zero.
func ICMPv4Checksum(msg []byte) uint16 {
	return ^sumSkip(msg, 2, 0)
}
