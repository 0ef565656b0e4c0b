package header_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

func seedPackets() [][]byte {
	a4, b4 := headertest.MustAddr("192.0.2.1"), headertest.MustAddr("198.51.100.2")
	a6, b6 := headertest.MustAddr("2001:db8::1"), headertest.MustAddr("2001:db8::2")
	var out [][]byte
	for _, base := range []headertest.Spec{{Src: a4, Dst: b4}, {Src: a6, Dst: b6}} {
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP, header.ProtoICMP, header.ProtoICMPv6, 47} {
			s := base
			s.Proto = proto
			s.SrcPort, s.DstPort = 1000, 2000
			s.Flags = header.TCPFlagSYN
			s.MSS, s.SACKPerm, s.HasWScale, s.WScale = 1460, true, true, 9
			s.ICMPType = header.ICMPv4EchoRequest
			s.Payload = []byte("payload")
			out = append(out, headertest.Build(s))
		}
	}
	out = append(out, ipv4Sample(), ipv6Sample(),
		buildIPv6Ext([]ext{generic(header.ProtoHopByHop, 0), generic(header.ProtoDestOpts, 1), fragHdr(0, true, 3)}, header.ProtoTCP, make([]byte, 20)),
		buildIPv6Ext([]ext{ah(2), fragHdr(64, false, 3), generic(header.ProtoDestOpts, 0)}, header.ProtoUDP, make([]byte, 8)),
		nil, []byte{0x45}, make([]byte, 20), make([]byte, 40))
	return out
}

// checkL4 parses the transport header at l4 and checks the accessors' bounds.
func checkL4(t *testing.T, proto uint8, l4 []byte) {
	switch proto {
	case header.ProtoTCP:
		tcp := header.TCP(l4)
		if !tcp.IsValid(len(l4)) {
			return
		}
		hl := tcp.HeaderLen()
		if hl < header.TCPMinLen || hl > header.TCPMaxLen || hl > len(l4) {
			t.Fatalf("TCP HeaderLen %d out of range (len %d)", hl, len(l4))
		}
		_, _, _, _ = tcp.SrcPort(), tcp.DstPort(), tcp.Seq(), tcp.Ack()
		_, _, _, _ = tcp.Flags(), tcp.Window(), tcp.Checksum(), tcp.UrgentPtr()
		if len(tcp.Options())+len(tcp.Payload(len(l4)))+header.TCPMinLen != len(l4) {
			t.Fatal("TCP Options+Payload do not add up")
		}
		o, ok := header.ParseTCPOptions(tcp.Options())
		checkOpts(t, tcp.Options(), o, ok)
	case header.ProtoUDP:
		u := header.UDP(l4)
		if !u.IsValid(len(l4)) {
			return
		}
		if int(u.Length()) > len(l4) || len(u.Payload()) != int(u.Length())-header.UDPLen {
			t.Fatal("UDP Payload out of range")
		}
		_, _, _ = u.SrcPort(), u.DstPort(), u.Checksum()
	case header.ProtoICMP:
		m := header.ICMPv4(l4)
		if !m.IsValid(len(l4)) {
			return
		}
		_, _, _, _, _, _ = m.Type(), m.Code(), m.Checksum(), m.Ident(), m.Seq(), m.MTU()
		if len(m.Payload()) != len(l4)-8 {
			t.Fatal("ICMPv4 Payload")
		}
	case header.ProtoICMPv6:
		m := header.ICMPv6(l4)
		if !m.IsValid(len(l4)) {
			return
		}
		_, _, _, _, _, _ = m.Type(), m.Code(), m.Checksum(), m.Ident(), m.Seq(), m.MTU()
		if len(m.Payload()) != len(l4)-8 {
			t.Fatal("ICMPv6 Payload")
		}
	}
}

// refIPv4Valid is an independent statement of IPv4.IsValid's contract.
func refIPv4Valid(b []byte, pktLen int) bool {
	if len(b) < 20 {
		return false
	}
	ver, ihl := int(b[0]>>4), int(b[0]&15)
	tl := int(b[2])<<8 | int(b[3])
	return ver == 4 && ihl >= 5 && ihl*4 <= tl && tl <= pktLen && tl <= len(b)
}

func FuzzIPv4(f *testing.F) {
	for _, p := range seedPackets() {
		f.Add(p, 0)
	}
	f.Fuzz(func(t *testing.T, data []byte, delta int) {
		ip := header.IPv4(data)
		pktLen := len(data) - delta%4
		if got, want := ip.IsValid(pktLen), refIPv4Valid(data, pktLen); got != want {
			t.Fatalf("IsValid(%d) = %v, reference %v", pktLen, got, want)
		}
		if !ip.IsValid(len(data)) {
			return
		}
		hl, tl := ip.HeaderLen(), int(ip.TotalLen())
		if hl < header.IPv4MinLen || hl > header.IPv4MaxLen || hl > tl || tl > len(data) {
			t.Fatalf("HeaderLen %d TotalLen %d len %d", hl, tl, len(data))
		}
		_, _, _, _ = ip.TOS(), ip.ID(), ip.TTL(), ip.Protocol()
		_, _, _, _ = ip.DontFragment(), ip.MoreFragments(), ip.IsFragment(), ip.FragmentOffset()
		if ip.FragmentOffset()%8 != 0 {
			t.Fatal("FragmentOffset not a multiple of 8")
		}
		if ip.SrcAddr().As4() != ip.Src() || ip.DstAddr().As4() != ip.Dst() {
			t.Fatal("SrcAddr/DstAddr disagree with Src/Dst")
		}
		pay := ip.Payload()
		if len(pay) != tl-hl {
			t.Fatalf("Payload length %d, want %d", len(pay), tl-hl)
		}
		// Checksum round trip on a copy.
		c := append([]byte(nil), data...)
		cip := header.IPv4(c)
		cip.SetChecksum(cip.CalculateChecksum())
		if !cip.IsChecksumValid() {
			t.Fatal("IsChecksumValid false after SetChecksum(CalculateChecksum())")
		}
		if ip.IsChecksumValid() != (refChecksum(data[:hl], 0) == 0xffff) {
			t.Fatal("IsChecksumValid disagrees with reference")
		}
		// Incremental TTL update equals recomputation.
		old := binary.BigEndian.Uint16(c[8:])
		cip.SetTTL(cip.TTL() - 1)
		if got, want := header.ChecksumUpdate16(cip.Checksum(), old, binary.BigEndian.Uint16(c[8:])), cip.CalculateChecksum(); got != want {
			t.Fatalf("TTL update: %#x, want %#x", got, want)
		}
		if ip.FragmentOffset() == 0 {
			checkL4(t, ip.Protocol(), pay)
		}
	})
}

// refTransport is a simple independent walker used to cross-check
// IPv6.Transport.
func refTransport(b []byte) (proto uint8, off int, ok bool) {
	if len(b) < 40 {
		return 0, 0, false
	}
	end := 40 + (int(b[4])<<8 | int(b[5]))
	if end > len(b) {
		return 0, 0, false
	}
	nh, off := b[6], 40
	seenFrag := false
	for n := 0; ; n++ {
		if nh != 0 && nh != 43 && nh != 44 && nh != 51 && nh != 60 {
			return nh, off, true
		}
		if n == 8 || (nh == 0 && n > 0) || (nh == 44 && seenFrag) || end-off < 8 {
			return 0, 0, false
		}
		if nh == 43 && b[off+2] == 0 && b[off+3] != 0 {
			return 0, 0, false // RFC 5095: type 0 with segments left
		}
		var l int
		switch nh {
		case 44:
			l = 8
			seenFrag = true
		case 51:
			l = 4 * (int(b[off+1]) + 2)
		default:
			l = 8 * (int(b[off+1]) + 1)
		}
		if end-off < l {
			return 0, 0, false
		}
		later := nh == 44 && (int(b[off+2])<<8|int(b[off+3]))&^7 != 0
		nh, off = b[off], off+l
		if later {
			return nh, off, true
		}
	}
}

func FuzzIPv6(f *testing.F) {
	for _, p := range seedPackets() {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ip := header.IPv6(data)
		proto, off, frag, ok := ip.Transport() // must not panic even if invalid
		rp, ro, rok := refTransport(data)
		if ok != rok || (ok && (proto != rp || off != ro)) {
			t.Fatalf("Transport = %d %d %v, reference %d %d %v", proto, off, ok, rp, ro, rok)
		}
		if !ip.IsValid(len(data)) {
			return
		}
		end := header.IPv6Len + int(ip.PayloadLen())
		if end > len(data) || len(ip.Payload()) != int(ip.PayloadLen()) {
			t.Fatal("Payload out of range")
		}
		_, _, _, _ = ip.TrafficClass(), ip.FlowLabel(), ip.NextHeader(), ip.HopLimit()
		if ip.SrcAddr().As16() != ip.Src() || ip.DstAddr().As16() != ip.Dst() {
			t.Fatal("SrcAddr/DstAddr disagree with Src/Dst")
		}
		if ip.FlowLabel() >= 1<<20 {
			t.Fatal("FlowLabel too large")
		}
		if !ok {
			return
		}
		if off < header.IPv6Len || off > end {
			t.Fatalf("off %d outside [40, %d]", off, end)
		}
		if frag.Offset%8 != 0 {
			t.Fatal("frag offset not a multiple of 8")
		}
		if frag.Offset == 0 {
			switch proto {
			case header.ProtoHopByHop, header.ProtoRouting, header.ProtoFragment, header.ProtoDestOpts, header.ProtoAH:
				t.Fatalf("ok with extension header %d as upper layer", proto)
			}
			checkL4(t, proto, data[off:end])
		}
	})
}

// refTCPOpts is an independent reference for ParseTCPOptions.
func refTCPOpts(b []byte) (header.TCPSynOptions, bool) {
	o := header.TCPSynOptions{WindowScale: -1}
	for len(b) > 0 {
		if b[0] == 0 {
			break
		}
		if b[0] == 1 {
			b = b[1:]
			continue
		}
		if len(b) < 2 || b[1] < 2 || int(b[1]) > len(b) {
			return header.TCPSynOptions{WindowScale: -1}, false
		}
		opt := b[:b[1]]
		switch {
		case opt[0] == 2 && len(opt) == 4:
			o.MSS = uint16(opt[2])<<8 | uint16(opt[3])
		case opt[0] == 3 && len(opt) == 3:
			o.WindowScale = int8(min(opt[2], 14))
		case opt[0] == 4 && len(opt) == 2:
			o.SACKPermitted = true
		case opt[0] == 8 && len(opt) == 10:
			o.Timestamps = true
		}
		b = b[len(opt):]
	}
	return o, true
}

func checkOpts(t *testing.T, opts []byte, o header.TCPSynOptions, ok bool) {
	t.Helper()
	if ro, rok := refTCPOpts(opts); o != ro || ok != rok {
		t.Fatalf("ParseTCPOptions(% x) = %+v %v, reference %+v %v", opts, o, ok, ro, rok)
	}
	if o.WindowScale < -1 || o.WindowScale > 14 {
		t.Fatalf("WindowScale %d", o.WindowScale)
	}
}

func FuzzTCPOptions(f *testing.F) {
	f.Add([]byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7})
	f.Add([]byte{1, 1, 0, 5})
	f.Add([]byte{3, 3, 200})
	f.Add([]byte{30, 1})
	f.Add([]byte{2, 4, 5})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, opts []byte) {
		if len(opts) > 2*(header.TCPMaxLen-header.TCPMinLen) {
			// Real option areas are at most 40 bytes; long inputs only slow
			// down minimization.
			opts = opts[:2*(header.TCPMaxLen-header.TCPMinLen)]
		}
		o, ok := header.ParseTCPOptions(opts)
		checkOpts(t, opts, o, ok)
	})
}

func allZero(b []byte) bool { return !bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }) }

func FuzzChecksumUpdate(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2}, uint16(12), []byte{192, 168, 1, 1}, uint16(0))
	f.Add(make([]byte, 40), uint16(8), bytes.Repeat([]byte{0xff}, 16), uint16(0xffff))
	f.Add([]byte{0x12, 0x34, 0xed, 0xca}, uint16(0), []byte{0xed, 0xcb}, uint16(1))
	f.Add([]byte{0xff, 0xff, 0, 1}, uint16(0), []byte{0, 0}, uint16(0xfffe))
	f.Fuzz(func(t *testing.T, data []byte, at uint16, repl []byte, init uint16) {
		if len(data) > 2048 { // longer inputs add nothing but slow minimization
			data = data[:2048]
		}
		if got, want := header.Checksum(data, init), refChecksum(data, init); got != want {
			t.Fatalf("Checksum = %#x, reference %#x", got, want)
		}
		if len(data) < 2 {
			return
		}
		data = data[:len(data)&^1] // even length: the replaced field is word aligned
		off := int(at) % len(data) &^ 1
		n := min(len(repl), len(data)-off) &^ 1
		if n == 0 {
			return
		}
		newData := append([]byte(nil), data...)
		copy(newData[off:], repl[:n])
		if allZero(data) || allZero(newData) {
			return // -0 corner: full computation yields 0xffff, eqn. 3 cannot know
		}
		check := ^header.Checksum(data, 0)
		want := ^header.Checksum(newData, 0)
		old, nw := data[off:off+n], newData[off:off+n]
		if got := header.ChecksumUpdateBytes(check, old, nw); got != want {
			t.Fatalf("ChecksumUpdateBytes: %#x, want %#x", got, want)
		}
		if n == 2 {
			if got := header.ChecksumUpdate16(check, binary.BigEndian.Uint16(old), binary.BigEndian.Uint16(nw)); got != want {
				t.Fatalf("ChecksumUpdate16: %#x, want %#x", got, want)
			}
		}
		if n == 4 {
			if got := header.ChecksumUpdate32(check, binary.BigEndian.Uint32(old), binary.BigEndian.Uint32(nw)); got != want {
				t.Fatalf("ChecksumUpdate32: %#x, want %#x", got, want)
			}
		}
		// UDP variant: the stored value is never 0 unless "no checksum".
		udpWant := want
		if udpWant == 0 {
			udpWant = 0xffff
		}
		udpCheck := check
		if udpCheck == 0 {
			udpCheck = 0xffff
		}
		if got := header.UDPChecksumUpdateBytes(udpCheck, old, nw); got != udpWant {
			t.Fatalf("UDPChecksumUpdateBytes: %#x, want %#x", got, udpWant)
		}
		if header.UDPChecksumUpdateBytes(0, old, nw) != 0 {
			t.Fatal("UDP no-checksum not preserved")
		}
	})
}
