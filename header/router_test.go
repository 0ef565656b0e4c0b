package header_test

import (
	"bytes"
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
	h := v4WithOptions([]byte{1, 7, 7, 4, 0, 0, 0, 0, header.IPv4OptLSRR, 7, 4, 192, 0, 2, 1})
	assertNoAllocs(t, "IPv4.SourceRouted", func() { sinkBool, _ = h.SourceRouted() })
}

func BenchmarkIPv4SourceRouted(b *testing.B) {
	h := v4WithOptions([]byte{1, 7, 7, 4, 0, 0, 0, 0, header.IPv4OptLSRR, 7, 4, 192, 0, 2, 1})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sinkBool, _ = h.SourceRouted()
	}
}

func BenchmarkIsIPv4Embedded(b *testing.B) {
	addrs := [2][16]byte{netip.MustParseAddr("2001:db8::1").As16(), netip.MustParseAddr("::ffff:10.0.0.2").As16()}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sinkBool = header.IsIPv4Embedded(&addrs[i&1])
	}
}

// v4WithOptions returns a minimal IPv4 header followed by opts (padded with
// EOL to a multiple of 4) and 8 bytes of payload.
func v4WithOptions(opts []byte) header.IPv4 {
	o := append([]byte(nil), opts...)
	for len(o)%4 != 0 {
		o = append(o, header.IPv4OptEOL)
	}
	b := make([]byte, header.IPv4MinLen+len(o)+8)
	b[0] = 0x40 | byte((header.IPv4MinLen+len(o))/4)
	header.IPv4(b).SetTotalLen(uint16(len(b)))
	copy(b[header.IPv4MinLen:], o)
	return b
}

func TestIPv4SourceRouted(t *testing.T) {
	lsrr := []byte{header.IPv4OptLSRR, 7, 4, 192, 0, 2, 1}
	ssrr := []byte{header.IPv4OptSSRR, 7, 4, 192, 0, 2, 1}
	rr := []byte{7, 7, 4, 0, 0, 0, 0} // record route: not a source route
	for _, c := range []struct {
		name          string
		opts          []byte
		routed, valid bool
	}{
		{"no options", nil, false, true},
		{"NOPs and EOL", []byte{1, 1, 1, 0}, false, true},
		{"record route", rr, false, true},
		{"LSRR", lsrr, true, true},
		{"SSRR", ssrr, true, true},
		{"NOP then LSRR", append([]byte{1}, lsrr...), true, true},
		{"record route then SSRR", append(append([]byte{}, rr...), ssrr...), true, true},
		{"LSRR after EOL is not read", append([]byte{0, 0, 0, 0}, lsrr...), false, true},
		{"option length 0", []byte{7, 0, 0, 0}, false, false},
		{"option length 1", []byte{7, 1, 0, 0}, false, false},
		{"option past the header", []byte{1, 1, 7, 8}, false, false},
		{"length octet missing", []byte{1, 1, 1, 68}, false, false},
	} {
		h := v4WithOptions(c.opts)
		if !h.IsValid(len(h)) {
			t.Fatalf("%s: test header invalid", c.name)
		}
		routed, valid := h.SourceRouted()
		if routed != c.routed || valid != c.valid {
			t.Errorf("%s: SourceRouted() = %v, %v; want %v, %v", c.name, routed, valid, c.routed, c.valid)
		}
	}
}

// FuzzIPv4SourceRouted: on any header IsValid accepts, the walk does not
// panic, and a source route is reported only if an LSRR or SSRR type octet
// is among the options.
func FuzzIPv4SourceRouted(f *testing.F) {
	f.Add([]byte{header.IPv4OptLSRR, 7, 4, 192, 0, 2, 1, 0})
	f.Add([]byte{1, 7, 0, 0})
	f.Fuzz(func(t *testing.T, opts []byte) {
		if len(opts) > 40 {
			opts = opts[:40]
		}
		h := v4WithOptions(opts)
		routed, _ := h.SourceRouted()
		if routed && !bytes.Contains(h[header.IPv4MinLen:h.HeaderLen()], []byte{header.IPv4OptLSRR}) &&
			!bytes.Contains(h[header.IPv4MinLen:h.HeaderLen()], []byte{header.IPv4OptSSRR}) {
			t.Fatalf("source route reported in %x", h[:h.HeaderLen()])
		}
	})
}
