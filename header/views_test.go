package header_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/edgegw/edge/header"
)

func TestEthernet(t *testing.T) {
	b := []byte{
		0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
		0x86, 0xdd, // type
		0xaa, // payload
	}
	e := header.Ethernet(b)
	if !e.IsValid() {
		t.Fatal("IsValid = false")
	}
	if got, want := e.Dst(), [6]byte{2, 0, 0, 0, 0, 2}; got != want {
		t.Errorf("Dst = %x, want %x", got, want)
	}
	if got, want := e.Src(), [6]byte{2, 0, 0, 0, 0, 1}; got != want {
		t.Errorf("Src = %x, want %x", got, want)
	}
	if got := e.EtherType(); got != header.EtherTypeIPv6 {
		t.Errorf("EtherType = %#x", got)
	}
	if got := e.Payload(); !bytes.Equal(got, []byte{0xaa}) {
		t.Errorf("Payload = %x", got)
	}
	e.SetDst([6]byte{1, 2, 3, 4, 5, 6})
	e.SetSrc([6]byte{7, 8, 9, 10, 11, 12})
	e.SetEtherType(header.EtherTypeVLAN)
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0xaa}
	if !bytes.Equal(b, want) {
		t.Errorf("after setters: %x, want %x", b, want)
	}
	for n := 0; n < header.EthernetLen; n++ {
		if header.Ethernet(b[:n]).IsValid() {
			t.Errorf("IsValid(len %d) = true", n)
		}
	}
	if header.Ethernet(nil).IsValid() {
		t.Error("nil view valid")
	}
}

// ipv4Sample is an IPv4 header with options (IHL 6) and 4 bytes of payload
// followed by 2 bytes of link padding.
func ipv4Sample() []byte {
	return []byte{
		0x46, 0xb8, 0x00, 0x1c, // ver 4, IHL 6, TOS 0xb8, total 28
		0x12, 0x34, 0x5f, 0xff, // ID 0x1234, DF=1, MF=0, reserved=0, offset 0x1fff
		0x40, 0x06, 0x00, 0x00, // TTL 64, TCP, checksum
		192, 0, 2, 1, // src
		198, 51, 100, 7, // dst
		0x01, 0x01, 0x01, 0x00, // options: NOP NOP NOP EOL
		0xde, 0xad, 0xbe, 0xef, // payload
		0x00, 0x00, // padding
	}
}

func TestIPv4Accessors(t *testing.T) {
	b := ipv4Sample()
	ip := header.IPv4(b)
	ip.SetChecksum(ip.CalculateChecksum())
	if !ip.IsValid(len(b)) {
		t.Fatal("IsValid = false")
	}
	if !ip.IsChecksumValid() {
		t.Error("IsChecksumValid = false")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"HeaderLen", ip.HeaderLen(), 24},
		{"TOS", ip.TOS(), uint8(0xb8)},
		{"TotalLen", ip.TotalLen(), uint16(28)},
		{"ID", ip.ID(), uint16(0x1234)},
		{"DontFragment", ip.DontFragment(), true},
		{"MoreFragments", ip.MoreFragments(), false},
		{"FragmentOffset", ip.FragmentOffset(), uint16(0x1fff * 8)},
		{"IsFragment", ip.IsFragment(), true},
		{"TTL", ip.TTL(), uint8(64)},
		{"Protocol", ip.Protocol(), header.ProtoTCP},
		{"Src", ip.Src(), [4]byte{192, 0, 2, 1}},
		{"Dst", ip.Dst(), [4]byte{198, 51, 100, 7}},
		{"SrcAddr", ip.SrcAddr(), netip.MustParseAddr("192.0.2.1")},
		{"DstAddr", ip.DstAddr(), netip.MustParseAddr("198.51.100.7")},
		{"Payload", string(ip.Payload()), "\xde\xad\xbe\xef"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestIPv4Setters(t *testing.T) {
	tests := []struct {
		name  string
		set   func(header.IPv4)
		check func(header.IPv4) bool
		at    []int // byte offsets expected to change (others must not)
	}{
		{"SetTOS", func(ip header.IPv4) { ip.SetTOS(0x11) }, func(ip header.IPv4) bool { return ip.TOS() == 0x11 }, []int{1}},
		{"SetTotalLen", func(ip header.IPv4) { ip.SetTotalLen(0x0102) }, func(ip header.IPv4) bool { return ip.TotalLen() == 0x0102 }, []int{2, 3}},
		{"SetID", func(ip header.IPv4) { ip.SetID(0xabcd) }, func(ip header.IPv4) bool { return ip.ID() == 0xabcd }, []int{4, 5}},
		{"SetFlagsFragment(mf)", func(ip header.IPv4) { ip.SetFlagsFragment(false, true, 1480) }, func(ip header.IPv4) bool {
			return !ip.DontFragment() && ip.MoreFragments() && ip.FragmentOffset() == 1480 && ip.IsFragment()
		}, []int{6, 7}},
		{"SetFlagsFragment(df)", func(ip header.IPv4) { ip.SetFlagsFragment(true, false, 0) }, func(ip header.IPv4) bool {
			return ip.DontFragment() && !ip.MoreFragments() && ip.FragmentOffset() == 0 && !ip.IsFragment()
		}, []int{6, 7}},
		{"SetFlagsFragment(max)", func(ip header.IPv4) { ip.SetFlagsFragment(true, true, 65528) }, func(ip header.IPv4) bool {
			return ip.DontFragment() && ip.MoreFragments() && ip.FragmentOffset() == 65528
		}, []int{6, 7}},
		{"SetFlagsFragment(mfonly)", func(ip header.IPv4) { ip.SetFlagsFragment(false, true, 0) }, func(ip header.IPv4) bool {
			return ip.IsFragment() && ip.FragmentOffset() == 0
		}, []int{6, 7}},
		{"SetTTL", func(ip header.IPv4) { ip.SetTTL(1) }, func(ip header.IPv4) bool { return ip.TTL() == 1 }, []int{8}},
		{"SetProtocol", func(ip header.IPv4) { ip.SetProtocol(header.ProtoUDP) }, func(ip header.IPv4) bool { return ip.Protocol() == header.ProtoUDP }, []int{9}},
		{"SetChecksum", func(ip header.IPv4) { ip.SetChecksum(0xfeed) }, func(ip header.IPv4) bool { return ip.Checksum() == 0xfeed }, []int{10, 11}},
		{"SetSrc", func(ip header.IPv4) { ip.SetSrc([4]byte{10, 1, 2, 3}) }, func(ip header.IPv4) bool {
			return ip.Src() == [4]byte{10, 1, 2, 3} && ip.SrcAddr() == netip.MustParseAddr("10.1.2.3")
		}, []int{12, 13, 14, 15}},
		{"SetDst", func(ip header.IPv4) { ip.SetDst([4]byte{10, 4, 5, 6}) }, func(ip header.IPv4) bool {
			return ip.Dst() == [4]byte{10, 4, 5, 6} && ip.DstAddr() == netip.MustParseAddr("10.4.5.6")
		}, []int{16, 17, 18, 19}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig := ipv4Sample()
			b := ipv4Sample()
			tc.set(header.IPv4(b))
			if !tc.check(header.IPv4(b)) {
				t.Errorf("getter does not return the value set: % x", b)
			}
			assertOnlyChanged(t, orig, b, tc.at)
		})
	}
}

// assertOnlyChanged fails if any byte outside at differs between a and b.
func assertOnlyChanged(t *testing.T, a, b []byte, at []int) {
	t.Helper()
	allowed := map[int]bool{}
	for _, i := range at {
		allowed[i] = true
	}
	for i := range a {
		if a[i] != b[i] && !allowed[i] {
			t.Errorf("byte %d changed: %#x -> %#x", i, a[i], b[i])
		}
	}
}

func TestIPv4Checksum(t *testing.T) {
	// Example from https://en.wikipedia.org/wiki/Internet_checksum.
	b := []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}
	b = append(b, make([]byte, 0x73-20)...)
	ip := header.IPv4(b)
	if !ip.IsValid(len(b)) {
		t.Fatal("invalid")
	}
	if got := ip.CalculateChecksum(); got != 0xb861 {
		t.Errorf("CalculateChecksum = %#x, want 0xb861", got)
	}
	if !ip.IsChecksumValid() {
		t.Error("IsChecksumValid = false")
	}
	ip.SetTTL(63)
	if ip.IsChecksumValid() {
		t.Error("IsChecksumValid = true after changing TTL")
	}
}

func TestIPv4IsValid(t *testing.T) {
	good := ipv4Sample()
	if !header.IPv4(good).IsValid(len(good)) {
		t.Fatal("sample invalid")
	}
	if !header.IPv4(good).IsValid(28) {
		t.Error("pktLen == TotalLen rejected")
	}
	if header.IPv4(good).IsValid(27) {
		t.Error("pktLen < TotalLen accepted")
	}
	// Truncation: every length below TotalLen must be rejected.
	for n := 0; n < 28; n++ {
		if header.IPv4(good[:n]).IsValid(n) {
			t.Errorf("truncated to %d: valid", n)
		}
		if header.IPv4(good[:n]).IsValid(len(good)) {
			t.Errorf("truncated to %d with large pktLen: valid", n)
		}
	}
	if header.IPv4(nil).IsValid(0) {
		t.Error("nil valid")
	}
	mut := []struct {
		name string
		f    func(b []byte)
	}{
		{"version 6", func(b []byte) { b[0] = 0x66 }},
		{"version 0", func(b []byte) { b[0] = 0x06 }},
		{"IHL 0", func(b []byte) { b[0] = 0x40 }},
		{"IHL 4", func(b []byte) { b[0] = 0x44 }},
		{"IHL > TotalLen", func(b []byte) { b[0] = 0x48 }}, // 32 > 28
		{"IHL 15 beyond buffer", func(b []byte) { b[0] = 0x4f }},
		{"TotalLen > buffer", func(b []byte) { b[2], b[3] = 0x00, 31 }},
		{"TotalLen 0xffff", func(b []byte) { b[2], b[3] = 0xff, 0xff }},
		{"TotalLen < HeaderLen", func(b []byte) { b[2], b[3] = 0x00, 20 }},
		{"TotalLen 0", func(b []byte) { b[2], b[3] = 0, 0 }},
	}
	for _, m := range mut {
		b := ipv4Sample()
		m.f(b)
		if header.IPv4(b).IsValid(len(b)) {
			t.Errorf("%s: valid", m.name)
		}
	}
	// Header-only packet is valid with an empty payload.
	b := ipv4Sample()[:24]
	b[2], b[3] = 0, 24
	ip := header.IPv4(b)
	if !ip.IsValid(24) || len(ip.Payload()) != 0 {
		t.Error("header-only packet")
	}
}

func ipv6Sample() []byte {
	return []byte{
		0x6b, 0x8f, 0xed, 0xcb, // ver 6, TC 0xb8, flow 0xfedcb
		0x00, 0x04, 0x11, 0x40, // payload len 4, UDP, hop limit 64
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // src 2001:db8::1
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // dst 2001:db8::2
		1, 2, 3, 4, // payload
		0, 0, // padding
	}
}

func TestIPv6Accessors(t *testing.T) {
	b := ipv6Sample()
	ip := header.IPv6(b)
	if !ip.IsValid(len(b)) {
		t.Fatal("invalid")
	}
	src := [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	dst := [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 2}
	checks := []struct {
		name      string
		got, want any
	}{
		{"TrafficClass", ip.TrafficClass(), uint8(0xb8)},
		{"FlowLabel", ip.FlowLabel(), uint32(0xfedcb)},
		{"PayloadLen", ip.PayloadLen(), uint16(4)},
		{"NextHeader", ip.NextHeader(), header.ProtoUDP},
		{"HopLimit", ip.HopLimit(), uint8(64)},
		{"Src", ip.Src(), src},
		{"Dst", ip.Dst(), dst},
		{"SrcAddr", ip.SrcAddr(), netip.MustParseAddr("2001:db8::1")},
		{"DstAddr", ip.DstAddr(), netip.MustParseAddr("2001:db8::2")},
		{"Payload", string(ip.Payload()), "\x01\x02\x03\x04"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestIPv6Setters(t *testing.T) {
	a := [16]byte{0xfe, 0x80, 15: 0x99}
	tests := []struct {
		name  string
		set   func(header.IPv6)
		check func(header.IPv6) bool
		at    []int
	}{
		{"SetTrafficClass", func(ip header.IPv6) { ip.SetTrafficClass(0x21) }, func(ip header.IPv6) bool {
			return ip.TrafficClass() == 0x21 && ip.FlowLabel() == 0xfedcb && ip[0]>>4 == 6
		}, []int{0, 1}},
		{"SetFlowLabel", func(ip header.IPv6) { ip.SetFlowLabel(0xfff12345) }, func(ip header.IPv6) bool {
			return ip.FlowLabel() == 0x12345 && ip.TrafficClass() == 0xb8 && ip[0]>>4 == 6
		}, []int{1, 2, 3}},
		{"SetPayloadLen", func(ip header.IPv6) { ip.SetPayloadLen(2) }, func(ip header.IPv6) bool { return ip.PayloadLen() == 2 }, []int{4, 5}},
		{"SetNextHeader", func(ip header.IPv6) { ip.SetNextHeader(header.ProtoTCP) }, func(ip header.IPv6) bool { return ip.NextHeader() == header.ProtoTCP }, []int{6}},
		{"SetHopLimit", func(ip header.IPv6) { ip.SetHopLimit(255) }, func(ip header.IPv6) bool { return ip.HopLimit() == 255 }, []int{7}},
		{"SetSrc", func(ip header.IPv6) { ip.SetSrc(a) }, func(ip header.IPv6) bool { return ip.Src() == a }, seq(8, 24)},
		{"SetDst", func(ip header.IPv6) { ip.SetDst(a) }, func(ip header.IPv6) bool { return ip.Dst() == a }, seq(24, 40)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig, b := ipv6Sample(), ipv6Sample()
			tc.set(header.IPv6(b))
			if !tc.check(header.IPv6(b)) {
				t.Errorf("getter does not return the value set: % x", b[:8])
			}
			assertOnlyChanged(t, orig, b, tc.at)
		})
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func TestIPv6IsValid(t *testing.T) {
	good := ipv6Sample()
	if !header.IPv6(good).IsValid(44) {
		t.Error("pktLen == 40+PayloadLen rejected")
	}
	if header.IPv6(good).IsValid(43) {
		t.Error("pktLen < 40+PayloadLen accepted")
	}
	for n := 0; n < 44; n++ {
		if header.IPv6(good[:n]).IsValid(n) || header.IPv6(good[:n]).IsValid(len(good)) {
			t.Errorf("truncated to %d: valid", n)
		}
	}
	if header.IPv6(nil).IsValid(0) {
		t.Error("nil valid")
	}
	for _, v := range []byte{0x00, 0x40, 0x70, 0xf0} {
		b := ipv6Sample()
		b[0] = v | b[0]&0x0f
		if header.IPv6(b).IsValid(len(b)) {
			t.Errorf("version %d: valid", v>>4)
		}
	}
	b := ipv6Sample()
	b[4], b[5] = 0xff, 0xff
	if header.IPv6(b).IsValid(len(b)) {
		t.Error("PayloadLen 0xffff: valid")
	}
}

func tcpSample() []byte {
	return []byte{
		0x30, 0x39, 0x00, 0x50, // 12345 -> 80
		0x01, 0x02, 0x03, 0x04, // seq
		0xa0, 0xb0, 0xc0, 0xd0, // ack
		0x70, 0x12, 0xfa, 0xf0, // data offset 7, SYN|ACK, window 0xfaf0
		0xbe, 0xef, 0x00, 0x07, // checksum, urgent
		0x02, 0x04, 0x05, 0xb4, // MSS 1460
		0x01, 0x03, 0x03, 0x07, // NOP, WS 7
		'h', 'i', // payload
	}
}

func TestTCPAccessors(t *testing.T) {
	b := tcpSample()
	tcp := header.TCP(b)
	if !tcp.IsValid(len(b)) {
		t.Fatal("invalid")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"SrcPort", tcp.SrcPort(), uint16(12345)},
		{"DstPort", tcp.DstPort(), uint16(80)},
		{"Seq", tcp.Seq(), uint32(0x01020304)},
		{"Ack", tcp.Ack(), uint32(0xa0b0c0d0)},
		{"HeaderLen", tcp.HeaderLen(), 28},
		{"Flags", tcp.Flags(), header.TCPFlagSYN | header.TCPFlagACK},
		{"Window", tcp.Window(), uint16(0xfaf0)},
		{"Checksum", tcp.Checksum(), uint16(0xbeef)},
		{"UrgentPtr", tcp.UrgentPtr(), uint16(7)},
		{"Options", string(tcp.Options()), "\x02\x04\x05\xb4\x01\x03\x03\x07"},
		{"Payload", string(tcp.Payload(len(b))), "hi"},
		{"Payload(29)", string(tcp.Payload(29)), "h"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	o, ok := header.ParseTCPOptions(tcp.Options())
	if want := (header.TCPSynOptions{MSS: 1460, WindowScale: 7}); !ok || o != want {
		t.Errorf("ParseTCPOptions = %+v, %v; want %+v", o, ok, want)
	}
}

func TestTCPFlagValues(t *testing.T) {
	flags := []uint8{header.TCPFlagFIN, header.TCPFlagSYN, header.TCPFlagRST, header.TCPFlagPSH,
		header.TCPFlagACK, header.TCPFlagURG, header.TCPFlagECE, header.TCPFlagCWR}
	for i, f := range flags {
		if f != 1<<i {
			t.Errorf("flag %d = %#x", i, f)
		}
	}
}

func TestTCPSetters(t *testing.T) {
	tests := []struct {
		name  string
		set   func(header.TCP)
		check func(header.TCP) bool
		at    []int
	}{
		{"SetSrcPort", func(h header.TCP) { h.SetSrcPort(1) }, func(h header.TCP) bool { return h.SrcPort() == 1 }, []int{0, 1}},
		{"SetDstPort", func(h header.TCP) { h.SetDstPort(65535) }, func(h header.TCP) bool { return h.DstPort() == 65535 }, []int{2, 3}},
		{"SetSeq", func(h header.TCP) { h.SetSeq(0xffffffff) }, func(h header.TCP) bool { return h.Seq() == 0xffffffff }, []int{4, 5, 6, 7}},
		{"SetAck", func(h header.TCP) { h.SetAck(42) }, func(h header.TCP) bool { return h.Ack() == 42 }, []int{8, 9, 10, 11}},
		{"SetFlags", func(h header.TCP) { h.SetFlags(header.TCPFlagRST | header.TCPFlagCWR) }, func(h header.TCP) bool {
			return h.Flags() == 0x84 && h.HeaderLen() == 28
		}, []int{13}},
		{"SetWindow", func(h header.TCP) { h.SetWindow(0) }, func(h header.TCP) bool { return h.Window() == 0 }, []int{14, 15}},
		{"SetChecksum", func(h header.TCP) { h.SetChecksum(0x1234) }, func(h header.TCP) bool { return h.Checksum() == 0x1234 }, []int{16, 17}},
		{"SetUrgentPtr", func(h header.TCP) { h.SetUrgentPtr(9) }, func(h header.TCP) bool { return h.UrgentPtr() == 9 }, []int{18, 19}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			orig, b := tcpSample(), tcpSample()
			tc.set(header.TCP(b))
			if !tc.check(header.TCP(b)) {
				t.Errorf("getter does not return the value set: % x", b[:20])
			}
			assertOnlyChanged(t, orig, b, tc.at)
		})
	}
}

func TestTCPIsValid(t *testing.T) {
	good := tcpSample()
	for n := 0; n < 28; n++ {
		if header.TCP(good[:n]).IsValid(n) {
			t.Errorf("truncated to %d: valid", n)
		}
		if header.TCP(good).IsValid(n) {
			t.Errorf("segLen %d < HeaderLen: valid", n)
		}
	}
	if header.TCP(good).IsValid(len(good) + 1) {
		t.Error("segLen > len(b): valid")
	}
	if !header.TCP(good).IsValid(28) {
		t.Error("segLen == HeaderLen rejected")
	}
	for off := byte(0); off < 16; off++ {
		b := tcpSample()
		b[12] = off<<4 | b[12]&0x0f
		want := off >= 5 && int(off)*4 <= len(b)
		if got := header.TCP(b).IsValid(len(b)); got != want {
			t.Errorf("data offset %d: IsValid = %v, want %v", off, got, want)
		}
	}
	if header.TCP(nil).IsValid(0) {
		t.Error("nil valid")
	}
}

func TestUDP(t *testing.T) {
	sample := func() []byte {
		return []byte{0x00, 0x35, 0xc0, 0x01, 0x00, 0x0b, 0x12, 0x34, 'a', 'b', 'c', 0, 0}
	}
	b := sample()
	u := header.UDP(b)
	if !u.IsValid(11) || !u.IsValid(len(b)) {
		t.Fatal("invalid")
	}
	if u.SrcPort() != 53 || u.DstPort() != 0xc001 || u.Length() != 11 || u.Checksum() != 0x1234 {
		t.Errorf("fields: %d %d %d %#x", u.SrcPort(), u.DstPort(), u.Length(), u.Checksum())
	}
	if string(u.Payload()) != "abc" {
		t.Errorf("Payload = %q", u.Payload())
	}
	setters := []struct {
		name  string
		set   func(header.UDP)
		check func(header.UDP) bool
		at    []int
	}{
		{"SetSrcPort", func(h header.UDP) { h.SetSrcPort(7) }, func(h header.UDP) bool { return h.SrcPort() == 7 }, []int{0, 1}},
		{"SetDstPort", func(h header.UDP) { h.SetDstPort(8) }, func(h header.UDP) bool { return h.DstPort() == 8 }, []int{2, 3}},
		{"SetLength", func(h header.UDP) { h.SetLength(8) }, func(h header.UDP) bool { return h.Length() == 8 && len(h.Payload()) == 0 }, []int{4, 5}},
		{"SetChecksum", func(h header.UDP) { h.SetChecksum(0) }, func(h header.UDP) bool { return h.Checksum() == 0 }, []int{6, 7}},
	}
	for _, tc := range setters {
		orig, b := sample(), sample()
		tc.set(header.UDP(b))
		if !tc.check(header.UDP(b)) {
			t.Errorf("%s: getter does not return the value set", tc.name)
		}
		assertOnlyChanged(t, orig, b, tc.at)
	}
	// Rejections.
	for n := 0; n < 11; n++ {
		if header.UDP(b[:n]).IsValid(n) {
			t.Errorf("truncated to %d: valid", n)
		}
		if n < 11 && header.UDP(b).IsValid(n) {
			t.Errorf("dgramLen %d < Length: valid", n)
		}
	}
	if header.UDP(b).IsValid(len(b) + 1) {
		t.Error("dgramLen > len(b): valid")
	}
	for _, l := range []uint16{0, 7, 14, 0xffff} {
		c := sample()
		header.UDP(c).SetLength(l)
		if header.UDP(c).IsValid(len(c)) {
			t.Errorf("Length %d: valid", l)
		}
	}
	if header.UDP(nil).IsValid(0) {
		t.Error("nil valid")
	}
}

func TestICMPv4(t *testing.T) {
	b := []byte{8, 0, 0xab, 0xcd, 0x12, 0x34, 0x00, 0x07, 'x'}
	m := header.ICMPv4(b)
	if !m.IsValid(len(b)) {
		t.Fatal("invalid")
	}
	if m.Type() != header.ICMPv4EchoRequest || m.Code() != 0 || m.Checksum() != 0xabcd || m.Ident() != 0x1234 || m.Seq() != 7 {
		t.Errorf("fields: %d %d %#x %#x %d", m.Type(), m.Code(), m.Checksum(), m.Ident(), m.Seq())
	}
	if string(m.Payload()) != "x" {
		t.Errorf("Payload = %q", m.Payload())
	}
	m.SetType(header.ICMPv4DestUnreachable)
	m.SetCode(header.ICMPv4FragNeeded)
	m.SetMTU(1400)
	m.SetChecksum(0x1111)
	if want := []byte{3, 4, 0x11, 0x11, 0, 0, 0x05, 0x78, 'x'}; !bytes.Equal(b, want) {
		t.Errorf("after setters % x, want % x", b, want)
	}
	if m.MTU() != 1400 {
		t.Errorf("MTU = %d", m.MTU())
	}
	m.SetIdent(0xa1a2)
	m.SetSeq(0xb1b2)
	if m.Ident() != 0xa1a2 || m.Seq() != 0xb1b2 || b[4] != 0xa1 || b[7] != 0xb2 {
		t.Errorf("SetIdent/SetSeq: % x", b)
	}
	for n := 0; n < 8; n++ {
		if header.ICMPv4(b[:n]).IsValid(n) || m.IsValid(n) {
			t.Errorf("len %d: valid", n)
		}
	}
	if m.IsValid(len(b) + 1) {
		t.Error("msgLen > len: valid")
	}
}

func TestICMPv6(t *testing.T) {
	b := []byte{128, 0, 0xab, 0xcd, 0x12, 0x34, 0x00, 0x07, 'x', 'y'}
	m := header.ICMPv6(b)
	if !m.IsValid(len(b)) {
		t.Fatal("invalid")
	}
	if m.Type() != header.ICMPv6EchoRequest || m.Code() != 0 || m.Checksum() != 0xabcd || m.Ident() != 0x1234 || m.Seq() != 7 {
		t.Errorf("fields: %d %d %#x %#x %d", m.Type(), m.Code(), m.Checksum(), m.Ident(), m.Seq())
	}
	if string(m.Payload()) != "xy" {
		t.Errorf("Payload = %q", m.Payload())
	}
	m.SetType(header.ICMPv6PacketTooBig)
	m.SetCode(0)
	m.SetMTU(1280)
	m.SetChecksum(0x2222)
	if want := []byte{2, 0, 0x22, 0x22, 0, 0, 0x05, 0x00, 'x', 'y'}; !bytes.Equal(b, want) {
		t.Errorf("after setters % x, want % x", b, want)
	}
	if m.MTU() != 1280 {
		t.Errorf("MTU = %d", m.MTU())
	}
	m.SetIdent(0xa1a2)
	m.SetSeq(0xb1b2)
	if m.Ident() != 0xa1a2 || m.Seq() != 0xb1b2 {
		t.Error("SetIdent/SetSeq")
	}
	for n := 0; n < 8; n++ {
		if header.ICMPv6(b[:n]).IsValid(n) || m.IsValid(n) {
			t.Errorf("len %d: valid", n)
		}
	}
}

func TestICMPClassification(t *testing.T) {
	for typ := 0; typ < 256; typ++ {
		ty := uint8(typ)
		wantErr4 := typ == 3 || typ == 4 || typ == 5 || typ == 11 || typ == 12
		if got := header.ICMPv4IsError(ty); got != wantErr4 {
			t.Errorf("ICMPv4IsError(%d) = %v", typ, got)
		}
		if got := header.ICMPv4IsQuery(ty); got != (typ == 0 || typ == 8) {
			t.Errorf("ICMPv4IsQuery(%d) = %v", typ, got)
		}
		if got := header.ICMPv6IsError(ty); got != (typ < 128) {
			t.Errorf("ICMPv6IsError(%d) = %v", typ, got)
		}
		if got := header.ICMPv6IsQuery(ty); got != (typ == 128 || typ == 129) {
			t.Errorf("ICMPv6IsQuery(%d) = %v", typ, got)
		}
	}
}

func TestIsV4Mapped(t *testing.T) {
	for _, tc := range []struct {
		a    string
		want bool
	}{{"::ffff:10.0.0.1", true}, {"::ffff:0.0.0.0", true}, {"::1", false}, {"2001:db8::ffff:0a00:0001", false}, {"::fffe:10.0.0.1", false}} {
		a := netip.MustParseAddr(tc.a).As16()
		if got := header.IsV4Mapped(&a); got != tc.want {
			t.Errorf("IsV4Mapped(%s) = %v", tc.a, got)
		}
	}
}
