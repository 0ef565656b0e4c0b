package conntrack

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"strconv"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"github.com/edgegw/edge/header"
)

// Key identifies one direction of a flow. It is a comparable value with no
// padding (38 bytes, every byte meaningful), so it can be hashed as raw bytes
// and compared with ==.
//
// Addresses are 16 bytes: IPv4 addresses are stored IPv4-mapped
// (::ffff:a.b.c.d), as netip.Addr.As16 does. For ICMP echo flows the
// identifier takes the place of a port: a request has SrcPort = identifier and
// DstPort = 0, its reply SrcPort = 0 and DstPort = identifier, so the reply's
// Key is the request's reversed. Zone is the conntrack zone (a routing or
// tenant domain with its own address space), not the interface side: both
// directions of a flow share it.
type Key struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
	Proto            uint8
	Zone             uint8
}

// KeySize is the size of Key in bytes; a test asserts it has no padding.
const KeySize = 38

var _ [KeySize - unsafe.Sizeof(Key{})]struct{}
var _ [unsafe.Sizeof(Key{}) - KeySize]struct{}

// Reverse returns the key of the opposite direction (endpoints swapped).
func (k Key) Reverse() Key {
	return Key{Src: k.Dst, Dst: k.Src, SrcPort: k.DstPort, DstPort: k.SrcPort, Proto: k.Proto, Zone: k.Zone}
}

// IsIPv4 reports whether the key's addresses are IPv4-mapped.
func (k *Key) IsIPv4() bool { return header.IsV4Mapped(&k.Src) }

// SrcAddr returns the source address (IPv4 addresses unmapped).
func (k *Key) SrcAddr() netip.Addr { return netip.AddrFrom16(k.Src).Unmap() }

// DstAddr returns the destination address (IPv4 addresses unmapped).
func (k *Key) DstAddr() netip.Addr { return netip.AddrFrom16(k.Dst).Unmap() }

// String formats the key as "proto src:port -> dst:port [zone N]". It
// allocates: control plane and tests only.
func (k Key) String() string {
	s := protoName(k.Proto) + " " + netip.AddrPortFrom(k.SrcAddr(), k.SrcPort).String() +
		" -> " + netip.AddrPortFrom(k.DstAddr(), k.DstPort).String()
	if k.Zone != 0 {
		s += " zone " + strconv.Itoa(int(k.Zone))
	}
	return s
}

// MakeKey builds a key from netip addresses (control plane and tests).
func MakeKey(proto uint8, src netip.AddrPort, dst netip.AddrPort) Key {
	return Key{Src: src.Addr().As16(), Dst: dst.Addr().As16(), SrcPort: src.Port(), DstPort: dst.Port(), Proto: proto}
}

func (k *Key) bytes() []byte { return unsafe.Slice((*byte)(unsafe.Pointer(k)), KeySize) }

// words returns the key as four 8-byte words, a 4-byte and a 2-byte one
// (its exact layout: Src, Dst, ports, proto and zone).
func (k *Key) words() (w0, w1, w2, w3 uint64, w4 uint32, w5 uint16) {
	p := unsafe.Pointer(k)
	return *(*uint64)(p), *(*uint64)(unsafe.Add(p, 8)), *(*uint64)(unsafe.Add(p, 16)), *(*uint64)(unsafe.Add(p, 24)),
		*(*uint32)(unsafe.Add(p, 32)), *(*uint16)(unsafe.Add(p, 36))
}

// hashKey returns the flow-index hash of k: hash/maphash (the runtime's
// AES-based hash, wyhash where the CPU lacks AES) of all 38 bytes under the
// table's random seed. Every byte counts and the seed is secret, so an
// outsider can neither find keys that collide nor make a set of keys that
// collide under every seed (see "Hashing" in doc.go).
func hashKey(k *Key, seed maphash.Seed) uint64 { return maphash.Bytes(seed, k.bytes()) }

// equal reports whether a and b are the same key, comparing words.
func (a *Key) equal(b *Key) bool {
	a0, a1, a2, a3, a4, a5 := a.words()
	b0, b1, b2, b3, b4, b5 := b.words()
	return (a0^b0)|(a1^b1)|(a2^b2)|(a3^b3)|uint64(a4^b4)|uint64(a5^b5) == 0
}

// endpointHash returns XXH64 under seed of one endpoint of a flow: address,
// port (an ICMP echo identifier), protocol and zone. Table.ShardOfEndpoint reduces
// it to a shard.
func endpointHash(addr *[16]byte, port uint16, proto, zone uint8, seed uint64) uint64 {
	var b [20]byte
	copy(b[:16], addr[:])
	binary.BigEndian.PutUint16(b[16:], port)
	b[18], b[19] = proto, zone
	var d xxhash.Digest
	d.ResetWithSeed(seed)
	_, _ = d.Write(b[:])
	return d.Sum64()
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	}
	return "proto" + strconv.Itoa(int(p))
}
