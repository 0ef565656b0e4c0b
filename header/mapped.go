package header

import "encoding/binary"

// IsV4Mapped reports whether a is an IPv4-mapped IPv6 address
// (::ffff:a.b.c.d), the 16-byte form edge's flow keys use for IPv4. Two
// loads, no branch per byte.
func IsV4Mapped(a *[16]byte) bool {
	return binary.LittleEndian.Uint64(a[0:8]) == 0 && binary.BigEndian.Uint32(a[8:12]) == 0xffff
}

// IsIPv4Embedded reports whether a, read from an IPv6 header, is an IPv4
// address in IPv6 form that no IPv6 packet may carry on the wire: IPv4-mapped
// (::ffff:0:0/96, RFC 4291 2.5.5.2, which edge's flow keys use for IPv4, so
// such a packet would open an IPv4 flow) or IPv4-compatible (::/96 but :: and
// ::1, deprecated by RFC 4291 2.5.5.1). The NAT64 prefix 64:ff9b::/96 is a
// real IPv6 prefix and not reported.
func IsIPv4Embedded(a *[16]byte) bool {
	if binary.LittleEndian.Uint64(a[0:8]) != 0 {
		return false
	}
	switch binary.BigEndian.Uint32(a[8:12]) {
	case 0xffff:
		return true
	case 0:
		return binary.BigEndian.Uint32(a[12:16]) > 1
	}
	return false
}
