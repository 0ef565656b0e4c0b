package header_test

import (
	"encoding/binary"
	"testing"

	"github.com/edgegw/edge/header"
)

// ext describes one extension header for buildIPv6Ext.
type ext struct {
	proto uint8 // which header this is
	body  []byte
}

// hbh returns a Hop-by-Hop/Routing/DestOpts header of 8*(n+1) bytes; the
// first two bytes are filled in by buildIPv6Ext.
func generic(proto uint8, n int) ext {
	body := make([]byte, 8*(n+1))
	body[1] = byte(n)
	if proto != header.ProtoRouting {
		body[2], body[3] = 1, byte(len(body)-4) // PadN option filling the rest
	}
	return ext{proto, body}
}

func ah(n int) ext { // AH with Payload Len n => (n+2)*4 bytes
	body := make([]byte, (n+2)*4)
	body[1] = byte(n)
	return ext{header.ProtoAH, body}
}

func fragHdr(off uint16, more bool, id uint32) ext {
	body := make([]byte, 8)
	v := off &^ 7
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(body[2:], v)
	binary.BigEndian.PutUint32(body[4:], id)
	return ext{header.ProtoFragment, body}
}

// buildIPv6Ext returns an IPv6 packet with the given extension headers
// followed by an upper-layer header of protocol up and l4 bytes.
func buildIPv6Ext(exts []ext, up uint8, l4 []byte) []byte {
	b := make([]byte, header.IPv6Len)
	b[0] = 0x60
	b[7] = 64
	b[8], b[23] = 0xfd, 1
	b[24], b[39] = 0xfd, 2
	first := up
	if len(exts) > 0 {
		first = exts[0].proto
	}
	b[6] = first
	for i, e := range exts {
		body := append([]byte(nil), e.body...)
		if i+1 < len(exts) {
			body[0] = exts[i+1].proto
		} else {
			body[0] = up
		}
		b = append(b, body...)
	}
	b = append(b, l4...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-header.IPv6Len))
	return b
}

func TestIPv6Transport(t *testing.T) {
	l4 := make([]byte, 20)
	tests := []struct {
		name      string
		exts      []ext
		up        uint8
		wantProto uint8
		wantOff   int
		wantFrag  header.IPv6Frag
		wantOK    bool
	}{
		{"none", nil, header.ProtoTCP, header.ProtoTCP, 40, header.IPv6Frag{}, true},
		{"hbh", []ext{generic(header.ProtoHopByHop, 0)}, header.ProtoUDP, header.ProtoUDP, 48, header.IPv6Frag{}, true},
		{"hbh+dst+rt+dst", []ext{generic(header.ProtoHopByHop, 1), generic(header.ProtoDestOpts, 0),
			generic(header.ProtoRouting, 2), generic(header.ProtoDestOpts, 0)}, header.ProtoTCP, header.ProtoTCP, 40 + 16 + 8 + 24 + 8, header.IPv6Frag{}, true},
		{"ah", []ext{ah(4)}, header.ProtoTCP, header.ProtoTCP, 40 + 24, header.IPv6Frag{}, true},
		{"first fragment", []ext{fragHdr(0, true, 0xdeadbeef)}, header.ProtoUDP, header.ProtoUDP, 48,
			header.IPv6Frag{Present: true, More: true, ID: 0xdeadbeef}, true},
		{"atomic fragment", []ext{fragHdr(0, false, 7)}, header.ProtoICMPv6, header.ProtoICMPv6, 48,
			header.IPv6Frag{Present: true, ID: 7}, true},
		{"later fragment stops walk", []ext{generic(header.ProtoHopByHop, 0), fragHdr(1448, false, 9), generic(header.ProtoDestOpts, 0)},
			header.ProtoTCP, header.ProtoDestOpts, 56, header.IPv6Frag{Present: true, Offset: 1448, ID: 9}, true},
		{"fragment then dstopts", []ext{fragHdr(0, true, 1), generic(header.ProtoDestOpts, 0)}, header.ProtoTCP, header.ProtoTCP, 56,
			header.IPv6Frag{Present: true, More: true, ID: 1}, true},
		{"esp", []ext{generic(header.ProtoHopByHop, 0)}, header.ProtoESP, header.ProtoESP, 48, header.IPv6Frag{}, true},
		{"nonext", nil, header.ProtoNoNext, header.ProtoNoNext, 40, header.IPv6Frag{}, true},
		{"8 headers", []ext{generic(header.ProtoHopByHop, 0), generic(header.ProtoDestOpts, 0), generic(header.ProtoRouting, 0),
			generic(header.ProtoDestOpts, 0), generic(header.ProtoDestOpts, 0), generic(header.ProtoDestOpts, 0),
			ah(0), generic(header.ProtoDestOpts, 0)}, header.ProtoUDP, header.ProtoUDP, 40 + 8*8, header.IPv6Frag{}, true},
		{"9 headers", []ext{generic(header.ProtoHopByHop, 0), generic(header.ProtoDestOpts, 0), generic(header.ProtoRouting, 0),
			generic(header.ProtoDestOpts, 0), generic(header.ProtoDestOpts, 0), generic(header.ProtoDestOpts, 0),
			generic(header.ProtoDestOpts, 0), generic(header.ProtoDestOpts, 0), generic(header.ProtoDestOpts, 0)},
			header.ProtoUDP, header.ProtoDestOpts, 40 + 8*8, header.IPv6Frag{}, false},
		{"hbh not first", []ext{generic(header.ProtoDestOpts, 0), generic(header.ProtoHopByHop, 0)}, header.ProtoTCP,
			header.ProtoHopByHop, 48, header.IPv6Frag{}, false},
		{"two fragment headers", []ext{fragHdr(0, true, 1), fragHdr(0, true, 2)}, header.ProtoTCP,
			header.ProtoFragment, 48, header.IPv6Frag{Present: true, More: true, ID: 1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := buildIPv6Ext(tc.exts, tc.up, l4)
			ip := header.IPv6(b)
			if !ip.IsValid(len(b)) {
				t.Fatal("IsValid = false")
			}
			proto, off, frag, ok := ip.Transport()
			if proto != tc.wantProto || off != tc.wantOff || frag != tc.wantFrag || ok != tc.wantOK {
				t.Errorf("Transport() = %d, %d, %+v, %v; want %d, %d, %+v, %v",
					proto, off, frag, ok, tc.wantProto, tc.wantOff, tc.wantFrag, tc.wantOK)
			}
		})
	}
}

// routing returns a Routing header of type typ with segsLeft segments left
// and n 8-byte units after the first 8 bytes.
func routing(typ, segsLeft uint8, n int) ext {
	e := generic(header.ProtoRouting, n)
	e.body[2], e.body[3] = typ, segsLeft
	return e
}

// TestIPv6RoutingHeaders: a Routing header of type 0 with segments left is
// refused (RFC 5095), and RoutingType0 says so at the offset Transport
// returns; type 0 with no segment left, and every other type whatever its
// segments left (RFC 8200 4.4: only the destination processes it), are
// walked over.
func TestIPv6RoutingHeaders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		exts   []ext
		wantOK bool
		rh0At  int // RoutingType0's offset when refused
	}{
		{"type 0, segments left 0", []ext{routing(0, 0, 2)}, true, 0},
		{"type 0, segments left 1", []ext{routing(0, 1, 2)}, false, 40},
		{"type 0, segments left 255, after hop-by-hop", []ext{generic(header.ProtoHopByHop, 0), routing(0, 255, 2)}, false, 48},
		{"type 2 (mobile IPv6), segments left 1", []ext{routing(2, 1, 2)}, true, 0},
		{"type 4 (segment routing), segments left 3", []ext{routing(4, 3, 6)}, true, 0},
		{"type 253 (experimental), segments left 1", []ext{routing(253, 1, 0)}, true, 0},
		{"type 1 (Nimrod, unassigned), segments left 1", []ext{routing(1, 1, 0)}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := buildIPv6Ext(tc.exts, header.ProtoUDP, make([]byte, 8))
			ip := header.IPv6(b)
			proto, off, _, ok := ip.Transport()
			if ok != tc.wantOK {
				t.Fatalf("Transport ok = %v, want %v", ok, tc.wantOK)
			}
			if ok {
				if proto != header.ProtoUDP || off != len(b)-8 {
					t.Fatalf("Transport = %d, %d; want UDP at %d", proto, off, len(b)-8)
				}
				return
			}
			if proto != header.ProtoRouting || off != tc.rh0At || !ip.RoutingType0(off) {
				t.Fatalf("refused at %d (proto %d), RoutingType0 %v; want the Routing header at %d", off, proto, ip.RoutingType0(off), tc.rh0At)
			}
		})
	}
	// Offsets inside the fixed header or past the packet: false.
	bad := header.IPv6(buildIPv6Ext([]ext{routing(0, 1, 0)}, header.ProtoUDP, nil))
	for _, off := range []int{-1, 0, 39, len(bad) - 7, len(bad) + 100} {
		if bad.RoutingType0(off) {
			t.Fatalf("RoutingType0(%d) = true", off)
		}
	}
}

func TestIPv6FragIsFragment(t *testing.T) {
	for _, tc := range []struct {
		f    header.IPv6Frag
		want bool
	}{
		{header.IPv6Frag{}, false},
		{header.IPv6Frag{Present: true}, false},
		{header.IPv6Frag{Present: true, More: true}, true},
		{header.IPv6Frag{Present: true, Offset: 8}, true},
	} {
		if got := tc.f.IsFragment(); got != tc.want {
			t.Errorf("%+v.IsFragment() = %v", tc.f, got)
		}
	}
}

// TestIPv6TransportTruncated cuts the payload of packets with extension
// headers at every length: Transport must never read past 40+PayloadLen, and
// must fail whenever an extension header is cut.
func TestIPv6TransportTruncated(t *testing.T) {
	chains := [][]ext{
		{generic(header.ProtoHopByHop, 2)},
		{generic(header.ProtoHopByHop, 0), generic(header.ProtoRouting, 1)},
		{ah(3), generic(header.ProtoDestOpts, 0)},
		{fragHdr(0, true, 5)},
		{generic(header.ProtoDestOpts, 0), fragHdr(0, false, 5), ah(1)},
	}
	for ci, chain := range chains {
		full := buildIPv6Ext(chain, header.ProtoTCP, nil)
		extLen := len(full) - header.IPv6Len
		for pl := 0; pl <= extLen; pl++ {
			// Both: shorten PayloadLen with the bytes still present, and
			// truncate the buffer too.
			b := append([]byte(nil), full[:header.IPv6Len+pl]...)
			binary.BigEndian.PutUint16(b[4:], uint16(pl))
			proto, off, _, ok := header.IPv6(b).Transport()
			if pl < extLen && ok {
				t.Errorf("chain %d payload %d: ok with proto %d off %d", ci, pl, proto, off)
			}
			if pl == extLen && (!ok || proto != header.ProtoTCP || off != len(b)) {
				t.Errorf("chain %d complete: %d %d %v", ci, proto, off, ok)
			}
			// PayloadLen pointing beyond the buffer.
			binary.BigEndian.PutUint16(b[4:], uint16(pl+1))
			if _, _, _, ok := header.IPv6(b).Transport(); ok {
				t.Errorf("chain %d payload %d: PayloadLen beyond buffer accepted", ci, pl)
			}
		}
	}
	// Ext header length overrunning a long enough buffer but not PayloadLen.
	b := buildIPv6Ext([]ext{generic(header.ProtoHopByHop, 0)}, header.ProtoTCP, make([]byte, 40))
	b[header.IPv6Len+1] = 200 // claims 1608 bytes
	if _, _, _, ok := header.IPv6(b).Transport(); ok {
		t.Error("overrunning Hdr Ext Len accepted")
	}
	for n := 0; n < header.IPv6Len; n++ {
		if _, _, _, ok := header.IPv6(b[:n]).Transport(); ok {
			t.Errorf("buffer of %d: ok", n)
		}
	}
}
