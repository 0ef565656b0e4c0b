package icmp_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/icmp"
)

// offending packets: a TCP SYN with options (small: quoted whole) and a
// 1400-byte UDP datagram with DF (quoted up to the size limit).
func synPkt(src, dst netip.Addr, ttl uint8) []byte {
	return headertest.Build(headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 443,
		TTL: ttl, DF: true, ID: 0x1234, Flags: header.TCPFlagSYN, Seq: 1000, MSS: 1460, SACKPerm: true, HasWScale: true, WScale: 7})
}

func bigUDP(src, dst netip.Addr) []byte {
	pay := make([]byte, 1400)
	for i := range pay {
		pay[i] = byte(i * 7)
	}
	return headertest.Build(headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoUDP, SrcPort: 5353, DstPort: 53,
		DF: true, ID: 7, Payload: pay})
}

// expected builds, with headertest, the error RFC 1812 / RFC 4443 describe:
// from box to the offending source, quoting as much as fits.
func expected(k icmp.Kind, box netip.Addr, off []byte, mtu uint32) []byte {
	v4 := box.Is4()
	typ, code := k.TypeCode(!v4)
	s := headertest.Spec{Src: box, DF: v4, TTL: icmp.TTL, ICMPType: typ, ICMPCode: code}
	if k == icmp.FragNeeded {
		s.MTU = mtu
	}
	if v4 {
		s.Proto = header.ProtoICMP
		s.Dst = header.IPv4(off).SrcAddr()
		s.Quote = off[:min(len(off), icmp.MaxLen4-28)]
	} else {
		s.Proto = header.ProtoICMPv6
		s.Dst = header.IPv6(off).SrcAddr()
		s.Quote = off[:min(len(off), icmp.MaxLen6-48)]
	}
	pkt := headertest.Build(s)
	if v4 {
		pkt[1] = icmp.TOS4
		headertest.FixChecksums(pkt)
	}
	return pkt
}

func TestBuildGolden(t *testing.T) {
	kinds := []struct {
		k          icmp.Kind
		t4, c4     uint8
		t6, c6     uint8
		mtu        uint32
		word4, w6  uint32 // second ICMP word expected
		mtuIgnored bool
	}{
		{k: icmp.TimeExceeded, t4: 11, c4: 0, t6: 3, c6: 0, mtu: 1280},
		{k: icmp.FragNeeded, t4: 3, c4: 4, t6: 2, c6: 0, mtu: 1280, word4: 1280, w6: 1280},
		{k: icmp.AdminProhibited, t4: 3, c4: 13, t6: 1, c6: 1, mtu: 9000},
		{k: icmp.PortUnreachable, t4: 3, c4: 3, t6: 1, c6: 4},
	}
	for _, kc := range kinds {
		for _, fam := range []struct {
			name     string
			box, src netip.Addr
			dst      netip.Addr
		}{{"v4", r4, c4, s4}, {"v6", r6, c6, s6}} {
			for _, off := range []struct {
				name string
				pkt  []byte
			}{{"syn", synPkt(fam.src, fam.dst, 1)}, {"big-udp", bigUDP(fam.src, fam.dst)}} {
				t.Run(kc.k.String()+"/"+fam.name+"/"+off.name, func(t *testing.T) {
					v4 := fam.box.Is4()
					typ, code := kc.k.TypeCode(!v4)
					if v4 && (typ != kc.t4 || code != kc.c4) || !v4 && (typ != kc.t6 || code != kc.c6) {
						t.Fatalf("TypeCode = %d/%d", typ, code)
					}
					if r := icmp.MaySend(off.pkt, kc.k); r != drop.None {
						t.Fatalf("MaySend = %v", r)
					}
					got := build(t, kc.k, fam.box, off.pkt, kc.mtu)
					want := expected(kc.k, fam.box, off.pkt, kc.mtu)
					if !bytes.Equal(got, want) {
						t.Fatalf("Build:\n got %x\nwant %x", got, want)
					}
					max := icmp.MaxLen4
					if !v4 {
						max = icmp.MaxLen6
					}
					if len(off.pkt) > max && len(got) != max {
						t.Errorf("length %d, want %d (quote as much as fits)", len(got), max)
					}
					if e := sumErrors(got); e != "" {
						t.Errorf("checksum: %s", e)
					}
					word := kc.word4
					if !v4 {
						word = kc.w6
					}
					gopacketCheck(t, got, fam.box, fam.src, typ, code, word)
				})
			}
		}
	}
}

// TestBuildGoldenBytes pins one error byte for byte: a time exceeded from
// 192.0.2.254 about a 12-byte UDP datagram 10.0.0.5:5353 -> 198.51.100.7:53
// with TTL 1.
func TestBuildGoldenBytes(t *testing.T) {
	off := headertest.Build(headertest.Spec{Src: c4, Dst: s4, Proto: header.ProtoUDP, SrcPort: 5353, DstPort: 53,
		TTL: 1, ID: 0xabcd, Payload: []byte("ping")})
	const want = "" +
		"45c0003c 00004000 4001 6cfe c00002fe 0a000005" + // IPv4: TOS c0, length 60, ID 0, DF, TTL 64, ICMP
		"0b00 295d 00000000" + // time exceeded, code 0, checksum, unused
		"45000020 abcd0000 0111 d9c0 0a000005 c6336407" + // quoted IPv4 header as received: TTL 1
		"14e9 0035 000c d7a7 70696e67" // quoted UDP header and "ping"
	w, err := hex.DecodeString(stripSpaces(want))
	if err != nil {
		t.Fatal(err)
	}
	got := build(t, icmp.TimeExceeded, r4, off, 0)
	if !bytes.Equal(got, w) {
		t.Fatalf("Build:\n got %x\nwant %x", got, w)
	}
	if e := sumErrors(got); e != "" {
		t.Errorf("checksum: %s", e)
	}
}

func stripSpaces(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' {
			b = append(b, s[i])
		}
	}
	return string(b)
}

func TestBuildQuoteLimits(t *testing.T) {
	for _, tc := range []struct {
		name      string
		box       netip.Addr
		off       []byte
		outLen    int
		wantLen   int
		wantDrop  drop.Reason
		wantQuote int
	}{
		{"v4 small buffer quotes less", r4, bigUDP(c4, s4), 100, 100, 0, 72},
		{"v4 buffer for header+8 only", r4, bigUDP(c4, s4), 28 + 28, 56, 0, 28},
		{"v4 buffer too small", r4, bigUDP(c4, s4), 28 + 27, 0, drop.ICMPBuildFailed, 0},
		{"v4 tiny packet quoted whole", r4, headertest.Build(headertest.Spec{Src: c4, Dst: s4, Proto: 253}), 28 + 20, 48, 0, 20},
		{"v6 small buffer", r6, bigUDP(c6, s6), 200, 200, 0, 152},
		{"v6 buffer for header+8 only", r6, bigUDP(c6, s6), 48 + 48, 96, 0, 48},
		{"v6 buffer too small", r6, bigUDP(c6, s6), 48 + 47, 0, drop.ICMPBuildFailed, 0},
		{"v4 padding not quoted", r4, append(synPkt(c4, s4, 1), 0, 0, 0, 0, 0, 0), 1500, 28 + 52, 0, 52},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, tc.outLen)
			n, r := icmp.Build(out, icmp.AdminProhibited, tc.box.As16(), tc.off, 0)
			if n != tc.wantLen || r != tc.wantDrop {
				t.Fatalf("Build = %d, %v; want %d, %v", n, r, tc.wantLen, tc.wantDrop)
			}
			if r != drop.None {
				return
			}
			hl := 28
			if !tc.box.Is4() {
				hl = 48
			}
			if !bytes.Equal(out[hl:n], tc.off[:tc.wantQuote]) {
				t.Errorf("quote is not the packet's first %d bytes", tc.wantQuote)
			}
			if e := sumErrors(out[:n]); e != "" {
				t.Errorf("checksum: %s", e)
			}
		})
	}
}

func TestBuildRefuses(t *testing.T) {
	syn4, syn6 := synPkt(c4, s4, 1), synPkt(c6, s6, 1)
	badVer := bytes.Clone(syn4)
	badVer[0] = 0x55
	badLen := bytes.Clone(syn4)
	binary.BigEndian.PutUint16(badLen[2:], 10)
	for _, tc := range []struct {
		name string
		k    icmp.Kind
		src  [16]byte
		off  []byte
		mtu  uint32
		want drop.Reason
	}{
		{"no kind", icmp.NoError, as16(r4), syn4, 0, drop.ICMPBuildFailed},
		{"unknown kind", icmp.Kind(99), as16(r4), syn4, 0, drop.ICMPBuildFailed},
		{"v6 source for v4", icmp.TimeExceeded, as16(r6), syn4, 0, drop.ICMPBuildFailed},
		{"v4 source for v6", icmp.TimeExceeded, as16(r4), syn6, 0, drop.ICMPBuildFailed},
		{"v4 mtu below 68", icmp.FragNeeded, as16(r4), syn4, 67, drop.ICMPBuildFailed},
		{"v4 mtu above 65535", icmp.FragNeeded, as16(r4), syn4, 65536, drop.ICMPBuildFailed},
		{"v6 mtu below 1280", icmp.FragNeeded, as16(r6), syn6, 1279, drop.ICMPBuildFailed},
		{"empty", icmp.TimeExceeded, as16(r4), nil, 0, drop.Truncated},
		{"v4 truncated", icmp.TimeExceeded, as16(r4), syn4[:19], 0, drop.Truncated},
		{"v6 truncated", icmp.TimeExceeded, as16(r6), syn6[:39], 0, drop.Truncated},
		{"v4 total length beyond packet", icmp.TimeExceeded, as16(r4), syn4[:30], 0, drop.BadIPHeader},
		{"v4 total length below header", icmp.TimeExceeded, as16(r4), badLen, 0, drop.BadIPHeader},
		{"v6 payload beyond packet", icmp.TimeExceeded, as16(r6), syn6[:50], 0, drop.BadIPHeader},
		{"not IP", icmp.TimeExceeded, as16(r4), badVer, 0, drop.BadIPHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, 1500)
			if n, r := icmp.Build(out, tc.k, tc.src, tc.off, tc.mtu); n != 0 || r != tc.want {
				t.Errorf("Build = %d, %v; want 0, %v", n, r, tc.want)
			}
		})
	}
	// The limits themselves are accepted.
	for _, tc := range []struct {
		src [16]byte
		off []byte
		mtu uint32
	}{{as16(r4), syn4, 68}, {as16(r4), syn4, 65535}, {as16(r6), syn6, 1280}, {as16(r6), syn6, 65536}} {
		if _, r := icmp.Build(make([]byte, 1500), icmp.FragNeeded, tc.src, tc.off, tc.mtu); r != drop.None {
			t.Errorf("FragNeeded mtu %d: %v", tc.mtu, r)
		}
	}
}

// TestBuildInPlace builds the error over the packet it is about, as the data
// plane may do with the received frame.
func TestBuildInPlace(t *testing.T) {
	for _, off := range [][]byte{synPkt(c4, s4, 1), bigUDP(c4, s4), synPkt(c6, s6, 1), bigUDP(c6, s6)} {
		box := r4
		if off[0]>>4 == 6 {
			box = r6
		}
		want := build(t, icmp.TimeExceeded, box, off, 0)
		frame := make([]byte, 2048)
		copy(frame, off)
		n, r := icmp.Build(frame, icmp.TimeExceeded, box.As16(), frame[:len(off)], 0)
		if r != drop.None || !bytes.Equal(frame[:n], want) {
			t.Errorf("in place: %v\n got %x\nwant %x", r, frame[:n], want)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[icmp.Kind]string{icmp.NoError: "none", icmp.TimeExceeded: "time_exceeded",
		icmp.FragNeeded: "frag_needed", icmp.AdminProhibited: "admin_prohibited",
		icmp.PortUnreachable: "port_unreachable", icmp.PacketTooBig: "packet_too_big", icmp.Kind(200): "unknown"} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), want)
		}
	}
	if typ, code := icmp.Kind(200).TypeCode(false); typ != 0 || code != 0 {
		t.Errorf("unknown kind TypeCode = %d/%d", typ, code)
	}
}

func TestCheck(t *testing.T) {
	big4 := bigUDP(c4, s4) // 1428 bytes, DF
	noDF := bytes.Clone(big4)
	header.IPv4(noDF).SetFlagsFragment(false, false, 0)
	big6 := bigUDP(c6, s6) // 1448 bytes
	for _, tc := range []struct {
		name string
		pkt  []byte
		mtu  uint32
		k    icmp.Kind
		fwd  bool
	}{
		{"v4 ttl 2", synPkt(c4, s4, 2), 1500, icmp.NoError, true},
		{"v4 ttl 1", synPkt(c4, s4, 1), 1500, icmp.TimeExceeded, false},
		{"v4 ttl 0", withTTL(synPkt(c4, s4, 1), 0), 1500, icmp.TimeExceeded, false},
		{"v4 ttl 1 and too big", withTTL(big4, 1), 1280, icmp.TimeExceeded, false},
		{"v4 fits exactly", big4, 1428, icmp.NoError, true},
		{"v4 too big DF", big4, 1427, icmp.FragNeeded, false},
		{"v4 too big no DF", noDF, 1280, icmp.NoError, false},
		{"v6 hop limit 2", synPkt(c6, s6, 2), 1500, icmp.NoError, true},
		{"v6 hop limit 1", synPkt(c6, s6, 1), 1500, icmp.TimeExceeded, false},
		{"v6 hop limit 0", withTTL(synPkt(c6, s6, 1), 0), 1500, icmp.TimeExceeded, false},
		{"v6 fits exactly", big6, 1448, icmp.NoError, true},
		{"v6 too big", big6, 1447, icmp.PacketTooBig, false},
		{"empty", nil, 1500, icmp.NoError, false},
		{"v4 short", synPkt(c4, s4, 2)[:19], 1500, icmp.NoError, false},
		{"v6 short", synPkt(c6, s6, 2)[:39], 1500, icmp.NoError, false},
		{"not IP", []byte{0x10, 0, 0, 0}, 1500, icmp.NoError, false},
	} {
		if k, fwd := icmp.Check(tc.pkt, tc.mtu); k != tc.k || fwd != tc.fwd {
			t.Errorf("%s: Check = %v, %v; want %v, %v", tc.name, k, fwd, tc.k, tc.fwd)
		}
	}
}

// withTTL returns pkt with its TTL / hop limit set to ttl (IPv4 checksum fixed).
func withTTL(pkt []byte, ttl uint8) []byte {
	out := bytes.Clone(pkt)
	if out[0]>>4 == 4 {
		header.IPv4(out).SetTTL(ttl)
		headertest.FixChecksums(out)
	} else {
		header.IPv6(out).SetHopLimit(ttl)
	}
	return out
}
