package header_test

import (
	"net/netip"
	"testing"

	"github.com/edgegw/edge/header"
)

// Router checks on fixed header fields: tables, 0-alloc tests, benchmarks.

func TestIsIPv4Embedded(t *testing.T) {
	for _, c := range []struct {
		addr string
		want bool
	}{
		{"::ffff:10.0.0.2", true},    // IPv4-mapped
		{"::ffff:0.0.0.0", true},     // mapped, any IPv4 address
		{"::203.0.113.2", true},      // IPv4-compatible (deprecated)
		{"::2", true},                // compatible: ::0.0.0.2
		{"::", false},                // unspecified: not an embedded IPv4 address
		{"::1", false},               // loopback
		{"::1:ffff:10.0.0.2", false}, // not ::ffff:0:0/96
		{"::ffff:0:10.0.0.2", false}, // SIIT's ::ffff:0:0:0/96 is another prefix
		{"64:ff9b::203.0.113.2", false},
		{"2001:db8::1", false},
		{"fe80::1", false},
	} {
		a := netip.MustParseAddr(c.addr).As16()
		if got := header.IsIPv4Embedded(&a); got != c.want {
			t.Errorf("IsIPv4Embedded(%s) = %v, want %v", c.addr, got, c.want)
		}
	}
}

func TestRouterChecksZeroAllocs(t *testing.T) {
	a := netip.MustParseAddr("::ffff:10.0.0.2").As16()
	assertNoAllocs(t, "IsIPv4Embedded", func() { sinkBool = header.IsIPv4Embedded(&a) })
}

func BenchmarkIsIPv4Embedded(b *testing.B) {
	addrs := [2][16]byte{netip.MustParseAddr("2001:db8::1").As16(), netip.MustParseAddr("::ffff:10.0.0.2").As16()}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sinkBool = header.IsIPv4Embedded(&addrs[i&1])
	}
}
