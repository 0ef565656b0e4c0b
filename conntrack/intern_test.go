package conntrack

import (
	"net/netip"
	"slices"
	"testing"
)

// InternAddrs interns a batch all or nothing, one index per distinct
// address, keeping the indices of addresses already interned;
// CheckInternAddrs changes nothing.
func TestInternAddrs(t *testing.T) {
	tb, err := New(Config{MaxFlows: 64, Memory: MemoryHeap})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::1")
	ia, _ := tb.InternAddr(a)
	idx, err := tb.InternAddrs([]netip.Addr{b, a, c, b})
	if err != nil || !slices.Equal(idx, []uint16{ia + 1, ia, ia + 2, ia + 1}) || tb.InternedAddrs() != 3 {
		t.Fatalf("%v %v, %d interned", idx, err, tb.InternedAddrs())
	}
	if tb.NATAddr(ia+2) != c {
		t.Fatal(tb.NATAddr(ia + 2))
	}
	big := make([]netip.Addr, 65533)
	for i := range big {
		big[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	if err := tb.CheckInternAddrs(big); err == nil {
		t.Fatal("65,536 addresses checked fine")
	}
	if _, err := tb.InternAddrs(big); err == nil || tb.InternedAddrs() != 3 {
		t.Fatalf("over the limit: %v, %d interned", err, tb.InternedAddrs())
	}
	if err := tb.CheckInternAddrs(big[1:]); err != nil || tb.InternedAddrs() != 3 {
		t.Fatal(err)
	}
	if _, err := tb.InternAddrs(big[1:]); err != nil || tb.InternedAddrs() != 65535 {
		t.Fatalf("up to the limit: %v, %d", err, tb.InternedAddrs())
	}
}
