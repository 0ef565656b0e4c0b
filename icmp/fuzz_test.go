package icmp_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/icmp"
)

// FuzzICMP feeds arbitrary bytes (seeded with headertest packets and the
// errors Build makes about them) to every function of the package. None
// may panic; whatever Build writes has valid checksums and quotes the
// packet; what TranslateRelated rewrites keeps every checksum valid (the
// quoted transport one included, when the quote holds it all), an inverse
// translation restores the packet byte for byte, and a refusal leaves the
// packet unchanged.
//
// mode: bit 0 direction (Reply/Original), bit 1 a source of the wrong family
// for Build, bits 2-3 the size of Build's buffer; offs perturbs the offsets
// of a parsed error.
func FuzzICMP(f *testing.F) {
	for _, fam := range families {
		for _, pr := range protos {
			proto := pr.proto
			if proto == 0 {
				proto = fam.icmpProto
			}
			out := outbound(fam, proto, false, 1)
			sent := snat(out, fam.n, nport)
			reply := fromServer(fam, proto, false)
			f.Add(out, uint8(icmp.TimeExceeded), uint32(1280), uint8(0), uint16(cport), uint16(0))
			f.Add(build(f, icmp.TimeExceeded, fam.r, sent, 0), uint8(1), uint32(0), uint8(0), uint16(cport), uint16(0))
			f.Add(build(f, icmp.FragNeeded, fam.r, snat(outbound(fam, proto, true, 9), fam.n, nport), 1280),
				uint8(2), uint32(1280), uint8(4), uint16(cport), uint16(0))
			f.Add(build(f, icmp.AdminProhibited, fam.in, dnat(reply, fam.c, cport), 0), uint8(3), uint32(0), uint8(1), uint16(nport), uint16(0))
			f.Add(build(f, icmp.PortUnreachable, fam.in, dnat(reply, fam.c, echoID), 0), uint8(4), uint32(0), uint8(1), uint16(nport), uint16(0x0104))
		}
	}
	f.Add([]byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6}, uint8(1), uint32(0), uint8(8), uint16(0), uint16(0))
	f.Add(make([]byte, 60), uint8(5), uint32(0), uint8(15), uint16(0), uint16(0xffff))

	f.Fuzz(func(t *testing.T, data []byte, kind uint8, mtu uint32, mode uint8, port uint16, offs uint16) {
		k := icmp.Kind(kind % 7) // 6 is not a kind
		data = data[:min(len(data), 2000)]
		orig := bytes.Clone(data)

		// MaySend and Check read only.
		ms := icmp.MaySend(data, k)
		icmp.Check(data, mtu)
		if !bytes.Equal(data, orig) {
			t.Fatal("MaySend or Check wrote to the packet")
		}

		// Build.
		v6 := len(data) > 0 && data[0]>>4 == 6
		src := r4
		if v6 != (mode&2 != 0) {
			src = r6
		}
		outLen := [4]int{1500, 600, 60, 28}[mode>>2&3]
		out := make([]byte, outLen)
		n, r := icmp.Build(out, k, src.As16(), data, mtu)
		if ms == drop.None && mode&2 == 0 && outLen >= 1500 && !tooBig(k) && r != drop.None {
			t.Fatalf("MaySend allowed but Build refused: %v", r)
		}
		if r == drop.None {
			buildChecks(t, out[:n], data, k, mtu)
		} else if n != 0 {
			t.Fatalf("Build refused (%v) but returned %d", r, n)
		}

		// TranslateRelated on a parsed error, checksums repaired so that it
		// gets past the checks.
		pkt := bytes.Clone(data)
		var p conntrack.Packet
		if conntrack.Parse(pkt, 0, &p) != drop.None || p.Kind != conntrack.KindRelated {
			// Still must not panic on a Packet that does not describe pkt.
			p.Kind = conntrack.KindRelated
			p.L4Off, p.InnerOff, p.InnerL4 = offs&0xff, offs&0xff+8, offs>>8
			icmp.TranslateRelated(pkt, &p, conntrack.Dir(mode&1), p.Key, conntrack.Translation{Addr: 1, Port: port}, p.Key.Dst)
			return
		}
		repair(pkt, &p)
		before := bytes.Clone(pkt)
		okBefore := sumErrors(pkt)
		if okBefore != "" && okBefore != "quoted transport checksum" {
			t.Fatalf("repair failed: %s", okBefore)
		}
		dir := conntrack.Dir(mode & 1)
		var ok conntrack.Key
		var tr conntrack.Translation
		var nat [16]byte
		client := c4.As16()
		if p.Key.IsIPv4() {
			nat = mustAddr("100.64.0.1").As16()
		} else {
			client, nat = c6.As16(), mustAddr("2001:db8:ff::99").As16()
		}
		if dir == conntrack.Reply { // the error is about the flow's reply key: N is its destination
			nat, tr = p.Key.Dst, conntrack.Translation{Addr: 1, Port: p.Key.DstPort}
			ok = conntrack.Key{Src: client, Dst: p.Key.Src, SrcPort: port, DstPort: p.Key.SrcPort, Proto: p.Key.Proto}
		} else {
			ok, tr = p.Key, conntrack.Translation{Addr: 1, Port: port}
		}
		r = icmp.TranslateRelated(pkt, &p, dir, ok, tr, nat)
		if r != drop.None {
			if !bytes.Equal(pkt, before) {
				t.Fatalf("TranslateRelated refused (%v) but changed the packet", r)
			}
			return
		}
		if after := sumErrors(pkt); after != okBefore {
			t.Fatalf("checksums after translation: %q (before: %q)\n%x\n%x", after, okBefore, before, pkt)
		}
		// The inverse translation restores the packet.
		var back conntrack.Key
		var btr conntrack.Translation
		var bnat [16]byte
		// The same rewrite with the client and NAT endpoints swapped.
		back = conntrack.Key{Src: nat, Dst: ok.Dst, SrcPort: tr.Port, DstPort: ok.DstPort, Proto: ok.Proto}
		btr, bnat = conntrack.Translation{Addr: 1, Port: ok.SrcPort}, ok.Src
		var p2 conntrack.Packet
		if rr := conntrack.Parse(pkt, 0, &p2); rr != drop.None || p2.Kind != conntrack.KindRelated {
			t.Fatalf("translated error does not parse: %v", rr)
		}
		if rr := icmp.TranslateRelated(pkt, &p2, dir, back, btr, bnat); rr != drop.None {
			t.Fatalf("inverse translation: %v", rr)
		}
		if dir == conntrack.Original {
			// Original rewrites the outer source to the NAT address, which
			// the inverse makes the client's; the inside host's address it
			// replaced is not in the flow: put it back by hand.
			copy(pkt[srcOff(pkt):], before[srcOff(pkt):srcOff(pkt)+addrLen(pkt)])
			fixOuter(pkt)
		}
		// A quoted transport checksum of 0xffff ("-0", which no sender
		// computes; random bytes here) comes back as 0x0000: RFC 1624
		// equation 3 yields what a full computation would (header.
		// ChecksumUpdate16), and a full computation never yields -0.
		if ck := transportCkOff(before, &p); ck >= 0 && binary.BigEndian.Uint16(before[ck:]) == 0xffff &&
			binary.BigEndian.Uint16(pkt[ck:]) == 0 {
			copy(pkt[ck:ck+2], before[ck:ck+2])
			fixOuter(pkt)
		}
		if !bytes.Equal(pkt, before) {
			t.Fatalf("inverse translation differs:\n got %x\nwant %x", pkt, before)
		}
	})
}

func srcOff(pkt []byte) int {
	if pkt[0]>>4 == 4 {
		return 12
	}
	return 8
}

func addrLen(pkt []byte) int {
	if pkt[0]>>4 == 4 {
		return 4
	}
	return 16
}

// fixOuter recomputes the outer IPv4 header and ICMP checksums of pkt.
func fixOuter(pkt []byte) {
	if pkt[0]>>4 == 4 {
		ip := header.IPv4(pkt)
		ip.SetChecksum(ip.CalculateChecksum())
		m := pkt[ip.HeaderLen():ip.TotalLen()]
		header.ICMPv4(m).SetChecksum(header.ICMPv4Checksum(m))
		return
	}
	_, off, _, _ := header.IPv6(pkt).Transport()
	m := pkt[off : header.IPv6Len+int(header.IPv6(pkt).PayloadLen())]
	header.ICMPv6(m).SetChecksum(header.ICMPv6Checksum(pkt[8:24], pkt[24:40], m))
}

// repair makes the outer IPv4 header, quoted IPv4 header and ICMP checksums
// of the parsed error pkt valid.
func repair(pkt []byte, p *conntrack.Packet) {
	if pkt[0]>>4 == 4 {
		q := header.IPv4(pkt[p.InnerOff:p.InnerL4])
		binary.BigEndian.PutUint16(q[10:], 0)
		q.SetChecksum(q.CalculateChecksum())
	}
	fixOuter(pkt)
}

// buildChecks verifies an error Build wrote about off.
func buildChecks(t *testing.T, e, off []byte, k icmp.Kind, mtu uint32) {
	t.Helper()
	v4 := off[0]>>4 == 4
	hl, max := 28, icmp.MaxLen4
	if !v4 {
		hl, max = 48, icmp.MaxLen6
	}
	if len(e) > max || len(e) < hl {
		t.Fatalf("error of %d bytes", len(e))
	}
	if !bytes.Equal(e[hl:], off[:len(e)-hl]) {
		t.Fatal("quote is not a prefix of the packet")
	}
	var msg []byte
	if v4 {
		ip := header.IPv4(e)
		if !ip.IsValid(len(e)) || !ip.IsChecksumValid() || ip.TTL() != icmp.TTL || ip.Dst() != [4]byte(off[12:16]) {
			t.Fatalf("bad outer IPv4 header %x", e[:20])
		}
		msg = ip.Payload()
		if header.Checksum(msg, 0) != 0xffff {
			t.Fatal("ICMP checksum")
		}
	} else {
		ip := header.IPv6(e)
		if !ip.IsValid(len(e)) || ip.HopLimit() != icmp.TTL || ip.Dst() != [16]byte(off[8:24]) {
			t.Fatalf("bad outer IPv6 header %x", e[:40])
		}
		msg = ip.Payload()
		if header.Checksum(msg, header.PseudoHeaderChecksum(header.ProtoICMPv6, e[8:24], e[24:40], uint16(len(msg)))) != 0xffff {
			t.Fatal("ICMPv6 checksum")
		}
	}
	typ, code := k.TypeCode(!v4)
	if msg[0] != typ || msg[1] != code {
		t.Fatalf("type/code %d/%d, want %d/%d", msg[0], msg[1], typ, code)
	}
	w := binary.BigEndian.Uint32(msg[4:])
	if tooBig(k) && w != mtu || !tooBig(k) && w != 0 {
		t.Fatalf("second word %#x (mtu %d)", w, mtu)
	}
}

// transportCkOff returns the offset of the quoted transport checksum that
// TranslateRelated updates without the UDP rules (TCP if quoted, echo), or -1.
func transportCkOff(pkt []byte, p *conntrack.Packet) int {
	var end int
	if pkt[0]>>4 == 4 {
		end = int(header.IPv4(pkt).TotalLen())
	} else {
		end = header.IPv6Len + int(header.IPv6(pkt).PayloadLen())
	}
	switch p.Key.Proto {
	case header.ProtoTCP:
		if int(p.InnerL4)+18 <= end {
			return int(p.InnerL4) + 16
		}
	case header.ProtoICMP, header.ProtoICMPv6:
		return int(p.InnerL4) + 2
	}
	return -1
}

// tooBig reports whether k carries an MTU (IPv4 frag needed, IPv6 packet
// too big: each builds the message of the packet's family).
func tooBig(k icmp.Kind) bool { return k == icmp.FragNeeded || k == icmp.PacketTooBig }
