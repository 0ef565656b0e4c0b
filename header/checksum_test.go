package header_test

import (
	"encoding/binary"
	"math/rand"
	"testing"

	"github.com/edgegw/edge/header"
)

// refChecksum is a straightforward RFC 1071 implementation: 16-bit big-endian
// words summed into a wide accumulator, folded at the end.
func refChecksum(b []byte, initial uint16) uint16 {
	sum := uint64(initial)
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint64(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

func TestChecksumMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	buf := make([]byte, 2048)
	for i := 0; i < 3000; i++ {
		n := rng.Intn(len(buf))
		if i < 200 {
			n = i // every small length, including 0 and odd ones
		}
		b := buf[:n]
		switch i % 4 {
		case 0:
			rng.Read(b)
		case 1: // all 0xff: stresses carries
			for j := range b {
				b[j] = 0xff
			}
		case 2:
			clear(b)
		case 3: // mostly 0xff
			for j := range b {
				b[j] = 0xff - byte(rng.Intn(2))
			}
		}
		// Also checksum at an odd start offset (unaligned memory).
		start := 0
		if n > 0 && i%3 == 0 {
			start = 1
		}
		init := uint16(rng.Intn(0x10000))
		if i%5 == 0 {
			init = 0
		} else if i%5 == 1 {
			init = 0xffff
		}
		got, want := header.Checksum(b[start:], init), refChecksum(b[start:], init)
		if got != want {
			t.Fatalf("len %d start %d init %#x: Checksum = %#x, want %#x", n, start, init, got, want)
		}
	}
}

func TestChecksumKnown(t *testing.T) {
	// RFC 1071 §3 example: sum of 00 01 f2 03 f4 f5 f6 f7 is 0xddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := header.Checksum(b, 0); got != 0xddf2 {
		t.Errorf("Checksum = %#x, want 0xddf2", got)
	}
	if got := header.Checksum(nil, 0); got != 0 {
		t.Errorf("Checksum(nil) = %#x", got)
	}
	if got := header.Checksum(nil, 0x1234); got != 0x1234 {
		t.Errorf("Checksum(nil, 0x1234) = %#x", got)
	}
	if got := header.Checksum([]byte{0xff, 0xff, 0x00, 0x01}, 0); got != 0x0001 {
		t.Errorf("carry: %#x", got)
	}
	if got := header.Checksum([]byte{0xab}, 0); got != 0xab00 {
		t.Errorf("odd: %#x", got)
	}
}

func TestChecksumSplit(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	b := make([]byte, 300)
	rng.Read(b)
	whole := header.Checksum(b, 0)
	for cut := 0; cut <= len(b); cut += 2 {
		if got := header.Checksum(b[cut:], header.Checksum(b[:cut], 0)); got != whole {
			t.Errorf("chained at %d: %#x, want %#x", cut, got, whole)
		}
		if got := header.ChecksumCombine(header.Checksum(b[:cut], 0), header.Checksum(b[cut:], 0)); got != whole {
			t.Errorf("combined at %d: %#x, want %#x", cut, got, whole)
		}
	}
}

func TestChecksumCombine(t *testing.T) {
	for _, tc := range []struct{ a, b, want uint16 }{
		{0, 0, 0},
		{1, 2, 3},
		{0xffff, 0, 0xffff},
		{0xffff, 1, 1},
		{0xffff, 0xffff, 0xffff},
		{0x8000, 0x8000, 1},
		{0xfffe, 1, 0xffff},
	} {
		if got := header.ChecksumCombine(tc.a, tc.b); got != tc.want {
			t.Errorf("ChecksumCombine(%#x, %#x) = %#x, want %#x", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestPseudoHeaderChecksum(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for i := 0; i < 500; i++ {
		for _, n := range []int{4, 16} {
			src, dst := make([]byte, n), make([]byte, n)
			rng.Read(src)
			rng.Read(dst)
			proto := uint8(rng.Intn(256))
			length := uint16(rng.Intn(0x10000))
			// Build the pseudo-header explicitly.
			var ph []byte
			ph = append(ph, src...)
			ph = append(ph, dst...)
			if n == 4 {
				ph = append(ph, 0, proto, byte(length>>8), byte(length))
			} else {
				ph = append(ph, 0, 0, byte(length>>8), byte(length), 0, 0, 0, proto)
			}
			if got, want := header.PseudoHeaderChecksum(proto, src, dst, length), refChecksum(ph, 0); got != want {
				t.Fatalf("n=%d: %#x, want %#x", n, got, want)
			}
		}
	}
}

// fullL4 recomputes a TCP or UDP checksum from scratch.
func fullL4(proto uint8, src, dst, seg []byte) uint16 {
	if proto == header.ProtoUDP {
		return header.UDPChecksum(src, dst, seg)
	}
	return header.TCPChecksum(src, dst, seg)
}

// TestChecksumUpdateRandom rewrites addresses and ports of random TCP and UDP
// segments (IPv4 and IPv6) with the incremental helpers and compares the
// result with a full recomputation.
func TestChecksumUpdateRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	for i := 0; i < 20000; i++ {
		alen := 4
		if i%2 == 1 {
			alen = 16
		}
		proto := header.ProtoTCP
		minLen := header.TCPMinLen
		if i%4 >= 2 {
			proto, minLen = header.ProtoUDP, header.UDPLen
		}
		src, dst := make([]byte, alen), make([]byte, alen)
		rng.Read(src)
		rng.Read(dst)
		seg := make([]byte, minLen+rng.Intn(64))
		rng.Read(seg)
		if proto == header.ProtoTCP {
			seg[12] = 5 << 4
		} else {
			binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
		}
		ck := fullL4(proto, src, dst, seg)
		binary.BigEndian.PutUint16(seg[csumOff(proto):], ck)

		// Rewrite the source address (SNAT) and source port.
		newSrc := make([]byte, alen)
		rng.Read(newSrc)
		newPort := uint16(rng.Intn(0x10000))
		oldPort := binary.BigEndian.Uint16(seg[0:])
		var inc uint16
		if proto == header.ProtoUDP {
			inc = header.UDPChecksumUpdateBytes(ck, src, newSrc)
			inc = header.UDPChecksumUpdate16(inc, oldPort, newPort)
		} else {
			inc = header.ChecksumUpdateBytes(ck, src, newSrc)
			inc = header.ChecksumUpdate16(inc, oldPort, newPort)
		}
		binary.BigEndian.PutUint16(seg[0:], newPort)
		if want := fullL4(proto, newSrc, dst, seg); inc != want {
			t.Fatalf("iter %d proto %d alen %d: incremental %#x, full %#x", i, proto, alen, inc, want)
		}
		binary.BigEndian.PutUint16(seg[csumOff(proto):], inc)

		// Rewrite both ports with one 32-bit update and, for IPv4, the
		// destination address with ChecksumUpdate32.
		oldPorts := binary.BigEndian.Uint32(seg[0:])
		newPorts := rng.Uint32()
		binary.BigEndian.PutUint32(seg[0:], newPorts)
		newDst := make([]byte, alen)
		rng.Read(newDst)
		if proto == header.ProtoUDP {
			inc = header.UDPChecksumUpdate32(inc, oldPorts, newPorts)
		} else {
			inc = header.ChecksumUpdate32(inc, oldPorts, newPorts)
		}
		if alen == 4 {
			o, n := binary.BigEndian.Uint32(dst), binary.BigEndian.Uint32(newDst)
			if proto == header.ProtoUDP {
				inc = header.UDPChecksumUpdate32(inc, o, n)
			} else {
				inc = header.ChecksumUpdate32(inc, o, n)
			}
		} else {
			if proto == header.ProtoUDP {
				inc = header.UDPChecksumUpdateBytes(inc, dst, newDst)
			} else {
				inc = header.ChecksumUpdateBytes(inc, dst, newDst)
			}
		}
		if want := fullL4(proto, newSrc, newDst, seg); inc != want {
			t.Fatalf("iter %d (ports+dst) proto %d alen %d: incremental %#x, full %#x", i, proto, alen, inc, want)
		}
	}
}

func csumOff(proto uint8) int {
	if proto == header.ProtoUDP {
		return 6
	}
	return 16
}

// TestChecksumUpdateIPv4Header updates TTL and addresses of random IPv4
// headers incrementally and compares with CalculateChecksum.
func TestChecksumUpdateIPv4Header(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	b := make([]byte, 20)
	for i := 0; i < 20000; i++ {
		rng.Read(b)
		b[0] = 0x45
		ip := header.IPv4(b)
		ip.SetChecksum(ip.CalculateChecksum())
		ck := ip.Checksum()
		// TTL decrement: the TTL/protocol word.
		oldW := binary.BigEndian.Uint16(b[8:])
		ip.SetTTL(ip.TTL() - 1)
		ck = header.ChecksumUpdate16(ck, oldW, binary.BigEndian.Uint16(b[8:]))
		old := ip.Src()
		var n [4]byte
		rng.Read(n[:])
		ip.SetSrc(n)
		ck = header.ChecksumUpdateBytes(ck, old[:], n[:])
		if want := ip.CalculateChecksum(); ck != want {
			t.Fatalf("iter %d: incremental %#x, full %#x", i, ck, want)
		}
	}
}

// TestChecksumUpdateCorners exercises the RFC 1624 -0/+0 corner: data whose
// sum is 0xFFFF has checksum 0x0000, which eqn. 3 must reproduce.
func TestChecksumUpdateCorners(t *testing.T) {
	// Words: w0 (the field we rewrite), w1, and the checksum word.
	// Full checksum of [w0 w1] = ^(w0 + w1).
	full := func(w0, w1 uint16) uint16 {
		var b [4]byte
		binary.BigEndian.PutUint16(b[0:], w0)
		binary.BigEndian.PutUint16(b[2:], w1)
		return ^header.Checksum(b[:], 0)
	}
	cases := []struct{ w0, w1, n0 uint16 }{
		{0x1234, 0x0001, 0xedca}, // new sum 0xffff -> checksum 0x0000
		{0xedca, 0x1234, 0x0001}, // from checksum 0x0000 to non-zero
		{0xffff, 0x0001, 0x0000}, // old word -0
		{0x0000, 0x0001, 0xffff}, // new word -0
		{0xfffe, 0x0001, 0xfffe}, // unchanged, checksum 0
		{0x0000, 0xffff, 0x0000}, // sum 0xffff both sides
		{0x8000, 0x7fff, 0x7fff}, // 0xffff -> 0xfffe
		{0x0001, 0x0000, 0xffff}, // result word sum -0
		{0x0001, 0x0001, 0xfffd}, // new sum 0xfffe+... = 0xfffe
		{0x00ff, 0xff00, 0x0000}, // checksum 0 -> 0x00ff
	}
	for _, c := range cases {
		old := full(c.w0, c.w1)
		got := header.ChecksumUpdate16(old, c.w0, c.n0)
		want := full(c.n0, c.w1)
		if got != want {
			t.Errorf("w0 %#x w1 %#x -> %#x: ChecksumUpdate16 = %#x, want %#x (old %#x)", c.w0, c.w1, c.n0, got, want, old)
		}
		var ob, nb [2]byte
		binary.BigEndian.PutUint16(ob[:], c.w0)
		binary.BigEndian.PutUint16(nb[:], c.n0)
		if got := header.ChecksumUpdateBytes(old, ob[:], nb[:]); got != want {
			t.Errorf("w0 %#x w1 %#x -> %#x: ChecksumUpdateBytes = %#x, want %#x", c.w0, c.w1, c.n0, got, want)
		}
		if got := header.ChecksumUpdate32(old, uint32(c.w0)<<16|uint32(c.w1), uint32(c.n0)<<16|uint32(c.w1)); got != want {
			t.Errorf("w0 %#x w1 %#x -> %#x: ChecksumUpdate32 = %#x, want %#x", c.w0, c.w1, c.n0, got, want)
		}
	}
	// A checksum of 0x0000 never becomes 0xffff through eqn. 3 unless data
	// is all zero: exhaustive over one word.
	for w := 0; w < 0x10000; w++ {
		w0 := uint16(w)
		old := full(w0, 0x1234)
		for _, n0 := range []uint16{0, 0xffff, ^uint16(0x1234), 1} {
			if got, want := header.ChecksumUpdate16(old, w0, n0), full(n0, 0x1234); got != want {
				t.Fatalf("w0 %#x -> %#x: %#x, want %#x", w0, n0, got, want)
			}
		}
	}
}

// TestUDPChecksumRules checks the RFC 768 rules: a computed 0 is sent as
// 0xFFFF, a stored 0 (no checksum) is left alone by the update helpers, and a
// stored 0xFFFF (computed 0) updates correctly.
func TestUDPChecksumRules(t *testing.T) {
	src := []byte{10, 0, 0, 1}
	dst := []byte{10, 0, 0, 2}
	// Find a payload word that makes the computed checksum 0.
	d := []byte{0x04, 0xd2, 0x16, 0x2e, 0, 10, 0, 0, 0, 0}
	sum := header.Checksum(d, header.PseudoHeaderChecksum(header.ProtoUDP, src, dst, uint16(len(d))))
	// Set the last word so that the total is 0xffff.
	binary.BigEndian.PutUint16(d[8:], ^sum)
	if got := header.Checksum(d, header.PseudoHeaderChecksum(header.ProtoUDP, src, dst, uint16(len(d)))); got != 0xffff {
		t.Fatalf("setup: sum %#x", got)
	}
	if got := header.UDPChecksum(src, dst, d); got != 0xffff {
		t.Errorf("UDPChecksum of zero-checksum datagram = %#x, want 0xffff", got)
	}
	if got := header.TCPChecksum(src, dst, append(d, make([]byte, 10)...)); got == 0xffff {
		t.Errorf("TCPChecksum returned 0xffff")
	}
	// Stored 0xffff (computed zero): rewrite the source address and compare.
	nsrc := []byte{192, 0, 2, 9}
	want := header.UDPChecksum(nsrc, dst, d)
	if got := header.UDPChecksumUpdateBytes(0xffff, src, nsrc); got != want {
		t.Errorf("update from 0xffff: %#x, want %#x", got, want)
	}
	// And back: the update that lands on a computed 0 must yield 0xffff.
	if got := header.UDPChecksumUpdateBytes(want, nsrc, src); got != 0xffff {
		t.Errorf("update to computed zero: %#x, want 0xffff", got)
	}
	if got := header.ChecksumUpdateBytes(want, nsrc, src); got != 0 {
		t.Errorf("generic update to computed zero: %#x, want 0", got)
	}
	// No checksum stays no checksum.
	if got := header.UDPChecksumUpdateBytes(0, src, nsrc); got != 0 {
		t.Errorf("UDPChecksumUpdateBytes(0) = %#x", got)
	}
	if got := header.UDPChecksumUpdate16(0, 1, 2); got != 0 {
		t.Errorf("UDPChecksumUpdate16(0) = %#x", got)
	}
	if got := header.UDPChecksumUpdate32(0, 1, 2); got != 0 {
		t.Errorf("UDPChecksumUpdate32(0) = %#x", got)
	}
}

func TestChecksumUpdateBytesOddAndMismatch(t *testing.T) {
	// Odd-length field at the end of the data.
	b := []byte{0x12, 0x34, 0x56}
	ck := ^header.Checksum(b, 0)
	nb := []byte{0x12, 0x34, 0x99}
	if got, want := header.ChecksumUpdateBytes(ck, b, nb), ^header.Checksum(nb, 0); got != want {
		t.Errorf("odd: %#x, want %#x", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic on length mismatch")
		}
	}()
	header.ChecksumUpdateBytes(0, []byte{1, 2}, []byte{1, 2, 3, 4})
}

func TestL4ChecksumIgnoresField(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	src, dst := make([]byte, 16), make([]byte, 16)
	rng.Read(src)
	rng.Read(dst)
	seg := make([]byte, 41)
	rng.Read(seg)
	for _, tc := range []struct {
		name string
		off  int
		f    func() uint16
	}{
		{"TCP", 16, func() uint16 { return header.TCPChecksum(src, dst, seg) }},
		{"UDP", 6, func() uint16 { return header.UDPChecksum(src, dst, seg) }},
		{"ICMPv6", 2, func() uint16 { return header.ICMPv6Checksum(src, dst, seg) }},
		{"ICMPv4", 2, func() uint16 { return header.ICMPv4Checksum(seg) }},
	} {
		seg[tc.off], seg[tc.off+1] = 0, 0
		want := tc.f()
		seg[tc.off], seg[tc.off+1] = 0xab, 0xcd
		if got := tc.f(); got != want {
			t.Errorf("%s: checksum depends on the field: %#x vs %#x", tc.name, got, want)
		}
		// The stored value verifies.
		binary.BigEndian.PutUint16(seg[tc.off:], want)
		var init uint16
		switch tc.name {
		case "TCP":
			init = header.PseudoHeaderChecksum(header.ProtoTCP, src, dst, uint16(len(seg)))
		case "UDP":
			init = header.PseudoHeaderChecksum(header.ProtoUDP, src, dst, uint16(len(seg)))
		case "ICMPv6":
			init = header.PseudoHeaderChecksum(header.ProtoICMPv6, src, dst, uint16(len(seg)))
		}
		if got := header.Checksum(seg, init); got != 0xffff {
			t.Errorf("%s: stored checksum does not verify: sum %#x", tc.name, got)
		}
	}
	// Messages too short to hold the field are summed whole.
	if got, want := header.ICMPv4Checksum([]byte{8}), ^uint16(0x0800); got != want {
		t.Errorf("short ICMPv4: %#x, want %#x", got, want)
	}
}

// Several fields under one checksum (an address and a port, as SNAT
// rewrites them): their deltas summed and applied once give what a full
// recomputation gives, and what updating field by field gives.
func TestChecksumDeltaSeveralFields(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 20000; i++ {
		alen := 4
		if i%2 == 1 {
			alen = 16
		}
		src, dst := make([]byte, alen), make([]byte, alen)
		rng.Read(src)
		rng.Read(dst)
		seg := make([]byte, header.TCPMinLen+rng.Intn(64))
		rng.Read(seg)
		seg[12] = 5 << 4
		ck := fullL4(header.ProtoTCP, src, dst, seg)

		newSrc := make([]byte, alen)
		rng.Read(newSrc)
		if i%7 == 0 {
			copy(newSrc, src) // an unchanged field adds nothing
		}
		oldPort, newPort := binary.BigEndian.Uint16(seg[0:]), uint16(rng.Intn(0x10000))
		d := header.ChecksumDeltaBytes(src, newSrc) + header.ChecksumDelta16(oldPort, newPort)
		if alen == 4 {
			d4 := header.ChecksumDelta32(binary.BigEndian.Uint32(src), binary.BigEndian.Uint32(newSrc))
			if d4.Update(ck) != header.ChecksumDeltaBytes(src, newSrc).Update(ck) {
				t.Fatalf("iter %d: ChecksumDelta32 and ChecksumDeltaBytes differ", i)
			}
		}
		got := d.Update(ck)
		binary.BigEndian.PutUint16(seg[0:], newPort)
		if want := fullL4(header.ProtoTCP, newSrc, dst, seg); got != want {
			t.Fatalf("iter %d alen %d: one update %#x, full %#x", i, alen, got, want)
		}
		if chained := header.ChecksumUpdate16(header.ChecksumUpdateBytes(ck, src, newSrc), oldPort, newPort); chained != got {
			t.Fatalf("iter %d alen %d: one update %#x, field by field %#x", i, alen, got, chained)
		}
	}
}

// PortAndChecksumOffsets names the fields the header views read and write.
func TestPortAndChecksumOffsets(t *testing.T) {
	b := make([]byte, 64)
	for _, tc := range []struct {
		name     string
		proto    uint8
		dst      bool
		setPort  func(uint16)
		setCheck func(uint16)
	}{
		{"TCP src", header.ProtoTCP, false, header.TCP(b).SetSrcPort, header.TCP(b).SetChecksum},
		{"TCP dst", header.ProtoTCP, true, header.TCP(b).SetDstPort, header.TCP(b).SetChecksum},
		{"UDP src", header.ProtoUDP, false, header.UDP(b).SetSrcPort, header.UDP(b).SetChecksum},
		{"UDP dst", header.ProtoUDP, true, header.UDP(b).SetDstPort, header.UDP(b).SetChecksum},
		{"ICMP", header.ProtoICMP, false, header.ICMPv4(b).SetIdent, header.ICMPv4(b).SetChecksum},
		{"ICMP reply", header.ProtoICMP, true, header.ICMPv4(b).SetIdent, header.ICMPv4(b).SetChecksum},
		{"ICMPv6", header.ProtoICMPv6, false, header.ICMPv6(b).SetIdent, header.ICMPv6(b).SetChecksum},
		{"ICMPv6 reply", header.ProtoICMPv6, true, header.ICMPv6(b).SetIdent, header.ICMPv6(b).SetChecksum},
	} {
		clear(b)
		tc.setPort(0x1234)
		tc.setCheck(0xabcd)
		portAt, sumAt, ok := header.PortAndChecksumOffsets(tc.proto, tc.dst)
		if !ok || binary.BigEndian.Uint16(b[portAt:]) != 0x1234 || binary.BigEndian.Uint16(b[sumAt:]) != 0xabcd {
			t.Errorf("%s: port at %d, checksum at %d, ok %v", tc.name, portAt, sumAt, ok)
		}
	}
	for _, proto := range []uint8{0, 47, 132, header.ProtoHopByHop} {
		if _, _, ok := header.PortAndChecksumOffsets(proto, false); ok {
			t.Errorf("protocol %d: offsets given", proto)
		}
	}
}
