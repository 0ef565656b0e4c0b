package dataplane

import (
	"net/netip"
	"strings"
	"testing"
)

func TestRoutesLongestPrefix(t *testing.T) {
	rt, err := NewRoutes([]Route{
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("203.0.113.254"), Port: 1},
		{Dst: netip.MustParsePrefix("10.0.0.0/24"), Port: 0},
		{Dst: netip.MustParsePrefix("10.0.0.128/25"), Via: netip.MustParseAddr("10.0.0.2"), Port: 0},
		{Dst: netip.MustParsePrefix("2001:db8::/32"), Via: netip.MustParseAddr("fe80::1"), Port: 1},
		{Dst: netip.MustParsePrefix("192.168.50.0/24"), Port: 0},
	}, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dst, hop string
		port     int
		ok       bool
	}{
		{"8.8.8.8", "203.0.113.254", 1, true},
		{"10.0.0.5", "10.0.0.5", 0, true},
		{"10.0.0.200", "10.0.0.2", 0, true},
		{"2001:db8::1", "fe80::1", 1, true},
		{"2001:db9::1", "", 0, false},
		{"192.168.50.255", "", 0, false}, // directed broadcast of a connected subnet (RFC 2644)
		{"192.168.50.254", "192.168.50.254", 0, true},
	} {
		d := netip.MustParseAddr(tc.dst).As16()
		port, hop, ok := rt.Lookup(&d)
		if ok != tc.ok || (ok && (port != tc.port || netip.AddrFrom16(hop).Unmap().String() != tc.hop)) {
			t.Errorf("%s: port %d hop %v ok %v", tc.dst, port, netip.AddrFrom16(hop).Unmap(), ok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { d := netip.MustParseAddr("10.0.0.5").As16(); rt.Lookup(&d) }); n != 0 {
		t.Errorf("Lookup allocates %v", n)
	}
}

func TestRoutesValidation(t *testing.T) {
	for _, tc := range []struct {
		r    Route
		want string
	}{
		{Route{Port: 0}, "routes[0].dst"},
		{Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Port: 5}, "routes[0].interface"},
		{Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("::1")}, "routes[0].via"},
	} {
		if _, err := NewRoutes([]Route{tc.r}, 2); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %s...", tc.r, err, tc.want)
		}
	}
}

func TestNeighbourTable(t *testing.T) {
	m := map[neighKey][6]byte{}
	for i := 0; i < 1000; i++ {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).As16()
		m[neighKey{int32(1 + i%2), a}] = [6]byte{2, 0, 0, 0, byte(i >> 8), byte(i)}
	}
	n := NewNeighbours(1, 2)
	n.store(m)
	for k, mac := range m {
		if got, ok := n.Lookup(int(k.ifindex), k.addr); !ok || got != mac {
			t.Fatalf("%v: %v %v", k, got, ok)
		}
		if _, ok := n.Lookup(int(3-k.ifindex), k.addr); ok {
			t.Fatalf("%v found on the wrong interface", k)
		}
	}
	// IPv4 addresses differ only in their last bytes: the hash must still
	// spread them (a weak one made every lookup walk hundreds of slots).
	tb := n.cur.Load()
	worst := 0
	for i, sl := range tb.slots {
		if !sl.used {
			continue
		}
		home := int(neighHash(sl.ifindex, &sl.addr) & tb.mask)
		if d := (i - home + len(tb.slots)) % len(tb.slots); d > worst {
			worst = d
		}
	}
	if worst > 32 {
		t.Fatalf("longest probe %d slots for 1,000 addresses", worst)
	}
	a := netip.MustParseAddr("10.9.9.9").As16()
	if _, ok := n.Lookup(1, a); ok {
		t.Fatal("unknown address found")
	}
	if allocs := testing.AllocsPerRun(100, func() { n.Lookup(1, a) }); allocs != 0 {
		t.Fatalf("Lookup allocates %v", allocs)
	}
}
