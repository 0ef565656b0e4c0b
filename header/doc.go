// Package header provides zero-copy views over the wire formats handled by
// the edge data plane: Ethernet II, IPv4, IPv6 (with an extension-header
// walker), TCP (with SYN option parsing), UDP, ICMPv4 and ICMPv6, plus the
// Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// # Model
//
// Every header type is a named byte slice (type IPv4 []byte, ...) that aliases
// the packet buffer: reading a field decodes it from the buffer, setting a field
// writes it into the buffer. Nothing is copied and nothing allocates.
//
// Each view has an IsValid method that performs every bounds and sanity check
// the fixed-offset accessors rely on. The intended use is:
//
//	ip := header.IPv4(frame[header.EthernetLen:])
//	if !ip.IsValid(len(ip)) {
//		// drop
//	}
//	ttl, proto := ip.TTL(), ip.Protocol() // unchecked, fixed offsets
//
// Accessors do not check anything themselves; calling one on a view that has
// not passed IsValid may return garbage or panic with an index out of range.
// There are no error values, no fmt and no allocation anywhere in the package
// outside of tests: all of it is meant to run once per packet.
//
// The zero value of every view (a nil slice) is invalid: IsValid reports false
// for it and no other method may be called on it.
//
// # Concurrency
//
// Views are plain slice values and the package holds no shared or global
// mutable state. All functions and methods are safe for concurrent use as long
// as goroutines do not write the same underlying buffer concurrently (setters
// write into the buffer; readers racing with writers on the same bytes need
// external synchronisation, exactly as for any []byte).
//
// # Checksums
//
// [Checksum] returns the folded 16-bit one's complement sum (not inverted),
// like gVisor's header.Checksum; the value stored in a header is its
// complement. The TCPChecksum, UDPChecksum, ICMPv4Checksum and ICMPv6Checksum
// helpers return the value to store and treat the checksum field of the
// message as zero whatever it currently holds. The ChecksumUpdate* helpers
// implement RFC 1624 equation 3 on the stored (inverted) field value; see
// [ChecksumUpdate16] for the -0/+0 corner case and [UDPChecksumUpdateBytes]
// for the UDP "no checksum" rule.
package header
