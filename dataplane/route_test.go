package dataplane

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
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

// randomRoutes returns n distinct-looking routes (duplicates possible), a
// quarter of them IPv6, on-link or via a next hop, seeded.
func randomRoutes(n int, seed uint64) []Route {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]Route, 0, n)
	for range n {
		var rt Route
		if r.IntN(4) == 0 {
			var a [16]byte
			a[0], a[1] = 0x20, 0x01
			for i := 2; i < 16; i++ {
				a[i] = byte(r.Uint32())
			}
			rt.Dst = netip.PrefixFrom(netip.AddrFrom16(a), 16+r.IntN(113)).Masked()
			if r.IntN(2) == 0 {
				rt.Via = netip.AddrFrom16([16]byte{0xfe, 0x80, 15: byte(r.Uint32())})
			}
		} else {
			var a [4]byte
			for i := range a {
				a[i] = byte(r.Uint32())
			}
			rt.Dst = netip.PrefixFrom(netip.AddrFrom4(a), 8+r.IntN(25)).Masked()
			if r.IntN(2) == 0 {
				rt.Via = netip.AddrFrom4([4]byte{10, 255, 0, byte(r.Uint32())})
			}
		}
		rt.Port = r.IntN(2)
		out = append(out, rt)
	}
	return out
}

// TestRoutesMatchLinearScan checks the table against the obvious answer
// (every route scanned, the longest containing prefix, the first of equal
// ones) for random routes and destinations near them.
// Sizes: both families scanned, IPv4 in the trie and IPv6 scanned, both in
// the trie.
func TestRoutesMatchLinearScan(t *testing.T) {
	for _, n := range []int{40, 150, 3000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) { testRoutesMatchLinearScan(t, n) })
	}
}

func testRoutesMatchLinearScan(t *testing.T, n int) {
	routes := randomRoutes(n, 7)
	routes = append(routes, Route{Dst: routes[10].Dst, Via: netip.MustParseAddr("10.255.1.1"), Port: 1}) // a duplicate: the first wins
	routes = append(routes, Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("10.255.9.9"), Port: 1})
	rt, err := NewRoutes(routes, 2)
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[netip.Prefix]bool{}
	for _, x := range routes {
		distinct[x.Dst] = true
	}
	if rt.Len() != len(distinct) {
		t.Errorf("Len %d, want %d distinct prefixes", rt.Len(), len(distinct))
	}
	r := rand.New(rand.NewPCG(8, 1))
	for i := range 50000 {
		base := routes[r.IntN(len(routes))].Dst.Addr().AsSlice()
		for j := len(base) - 1 - r.IntN(3); j < len(base); j++ {
			base[j] = byte(r.Uint32()) // near a route: inside it or just beside it
		}
		a, _ := netip.AddrFromSlice(base)
		best := -1
		for k, x := range routes {
			if x.Dst.Contains(a) && (best < 0 || x.Dst.Bits() > routes[best].Dst.Bits()) {
				best = k
			}
		}
		d := a.As16()
		port, hop, ok := rt.Lookup(&d)
		var want bool
		switch b := routes[max(best, 0)]; {
		case best < 0:
			want = !ok
		case b.Via.IsValid():
			want = ok && port == b.Port && hop == b.Via.As16()
		case a.Is4() && b.Dst.Bits() > 0 && b.Dst.Bits() <= 30 && isBroadcast(a, b.Dst):
			want = !ok // a directed broadcast has no route
		default:
			want = ok && port == b.Port && hop == d
		}
		if !want {
			t.Fatalf("%d: %v: port %d hop %v ok %v, want route %d (%+v)", i, a, port, netip.AddrFrom16(hop), ok, best, routes[max(best, 0)])
		}
	}
}

// isBroadcast reports whether a is the last address of p.
func isBroadcast(a netip.Addr, p netip.Prefix) bool {
	b := a.As4()
	v := be32(b[:])
	return v|^uint32(0)>>p.Bits() == v
}

// The per-packet lookup allocates nothing, hit or miss, either family, with
// a large table.
func TestRoutesLookupAllocs(t *testing.T) {
	for _, size := range []int{10, 100000} { // scanned, trie
		rt, err := NewRoutes(randomRoutes(size, 3), 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"10.1.2.3", "203.0.113.9", "2001:db8::1", "ff02::1", "::"} {
			d := netip.MustParseAddr(s).As16() // IPv4-mapped for IPv4
			if n := testing.AllocsPerRun(1000, func() { rt.Lookup(&d) }); n != 0 {
				t.Errorf("%d routes: Lookup(%s) allocates %v", size, s, n)
			}
		}
	}
}

// BenchmarkRoutesLookup looks destinations up in tables of 10 to 1,000,000
// random routes (a quarter IPv6).
func BenchmarkRoutesLookup(b *testing.B) {
	for _, n := range []int{10, 1000, 1000000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			routes := randomRoutes(n, 1)
			rt, err := NewRoutes(routes, 2)
			if err != nil {
				b.Fatal(err)
			}
			dsts := make([][16]byte, 4096)
			r := rand.New(rand.NewPCG(2, 1))
			for i := range dsts {
				a := routes[r.IntN(len(routes))].Dst.Addr().AsSlice()
				a[len(a)-1] = byte(r.Uint32())
				ad, _ := netip.AddrFromSlice(a)
				dsts[i] = ad.As16()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				rt.Lookup(&dsts[i&4095])
			}
		})
	}
}

// BenchmarkRoutesBuild compiles a table of a million random routes (what a
// kernel-route refresh of that size costs, off the packet path).
func BenchmarkRoutesBuild(b *testing.B) {
	n := 1000000
	if testing.Short() {
		n = 10000 // the test script's smoke run: 1M routes take a second per op
	}
	routes := randomRoutes(n, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewRoutes(routes, 2); err != nil {
			b.Fatal(err)
		}
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
