package header

import "encoding/binary"

// IsV4Mapped reports whether a is an IPv4-mapped IPv6 address
// (::ffff:a.b.c.d), the 16-byte form edge's flow keys use for IPv4. Two
// loads, no branch per byte.
func IsV4Mapped(a *[16]byte) bool {
	return binary.LittleEndian.Uint64(a[0:8]) == 0 && binary.BigEndian.Uint32(a[8:12]) == 0xffff
}
