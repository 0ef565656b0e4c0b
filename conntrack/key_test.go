package conntrack

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// The inlined hash must be XXH64 exactly.
func TestHashIsXXH64(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var b [24]byte
	for i := 0; i < 10000; i++ {
		x, y, z := r.Uint64(), r.Uint64(), r.Uint64()
		binary.LittleEndian.PutUint64(b[0:], x)
		binary.LittleEndian.PutUint64(b[8:], y)
		binary.LittleEndian.PutUint64(b[16:], z)
		if got, want := xxh64x3(x, y, z), xxhash.Sum64(b[:]); got != want {
			t.Fatalf("xxh64x3(%#x,%#x,%#x) = %#x, xxhash says %#x", x, y, z, got, want)
		}
	}
}

// Distinct IPv4 keys never fold to the same hash input.
func TestHashFoldLosslessForIPv4(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	seen := map[[3]uint64]Key{}
	for i := 0; i < 200000; i++ {
		var a, c [4]byte
		binary.BigEndian.PutUint32(a[:], r.Uint32())
		binary.BigEndian.PutUint32(c[:], r.Uint32()&0xff) // few destinations: stress the fold
		k := MakeKey(uint8([]int{6, 17, 1}[r.IntN(3)]),
			netip.AddrPortFrom(netip.AddrFrom4(a), uint16(r.IntN(4))),
			netip.AddrPortFrom(netip.AddrFrom4(c), uint16(r.IntN(65536))))
		k.Zone = uint8(r.IntN(2))
		w0, w1, w2, w3, w4, w5 := k.words()
		in := [3]uint64{w0 ^ w2<<31 ^ w2>>33, w1 ^ uint64(w4), w3 ^ uint64(w5)}
		if prev, dup := seen[in]; dup && prev != k {
			t.Fatalf("%v and %v fold to the same input", prev, k)
		}
		seen[in] = k
	}
}

func TestKeyReverseAndSymmetricHash(t *testing.T) {
	k := MakeKey(6, netip.MustParseAddrPort("10.0.0.1:1234"), netip.MustParseAddrPort("192.0.2.1:80"))
	if k.Reverse().Reverse() != k {
		t.Fatal("Reverse is not an involution")
	}
	r := k.Reverse()
	if k.SymmetricHash() != r.SymmetricHash() {
		t.Fatal("SymmetricHash differs between directions")
	}
	if !k.IsIPv4() || k.String() != "tcp 10.0.0.1:1234 -> 192.0.2.1:80" {
		t.Fatalf("%v %v", k.IsIPv4(), k)
	}
	var a, b Key = k, k
	b.Zone = 1
	if !a.equal(&k) || a.equal(&b) {
		t.Fatal("equal")
	}
}
