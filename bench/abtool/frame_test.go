package main

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

var (
	backend = netip.MustParseAddrPort("203.0.113.2:8080")
	snatIP  = netip.MustParseAddr("203.0.113.1")
)

// forFamilies runs f as a subtest with the backend and SNAT addresses of
// each family (the lab's IPv4 ones, then IPv6's).
func forFamilies(t *testing.T, f func(t *testing.T, backend netip.AddrPort, snatIP netip.Addr)) {
	t.Run("ipv4", func(t *testing.T) { f(t, backend, snatIP) })
	t.Run("ipv6", func(t *testing.T) {
		f(t, netip.MustParseAddrPort("[2001:db8:113::2]:8080"), netip.MustParseAddr("2001:db8:113::1"))
	})
}

// tcpFrame builds an Ethernet + IP + TCP frame with valid checksums (or a
// zero TCP checksum, as veth hands over a partial one, when partial): IPv4
// with identification id, or IPv6 (IPv6 addresses) with flow label id.
func tcpFrame(src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32, id uint16, partial bool) []byte {
	if src.Is6() {
		return tcpFrame6(src, dst, sport, dport, flags, seq, ack, id, partial)
	}
	f := make([]byte, ethLen+20+20)
	copy(f[0:6], []byte{2, 0, 0, 0, 0, 1})
	copy(f[6:12], []byte{2, 0, 0, 0, 0, 2})
	binary.BigEndian.PutUint16(f[12:], etherTypeIP4)
	ip := f[ethLen:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 40)
	binary.BigEndian.PutUint16(ip[4:], id)
	ip[6] = 0x40 // DF
	ip[8] = 64
	ip[9] = protoTCP
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(ip[:20], 0))
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = 5 << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 502)
	if !partial {
		sum := uint32(binary.BigEndian.Uint16(ip[12:])) + uint32(binary.BigEndian.Uint16(ip[14:])) +
			uint32(binary.BigEndian.Uint16(ip[16:])) + uint32(binary.BigEndian.Uint16(ip[18:])) + protoTCP + 20
		binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, sum))
	}
	return f
}

// tcpFrame6 is tcpFrame for IPv6 (hop limit 64, flow label id).
func tcpFrame6(src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32, id uint16, partial bool) []byte {
	f := make([]byte, ethLen+ip6Len+20)
	copy(f[0:6], []byte{2, 0, 0, 0, 0, 1})
	copy(f[6:12], []byte{2, 0, 0, 0, 0, 2})
	binary.BigEndian.PutUint16(f[12:], etherTypeIP6)
	ip := f[ethLen:]
	binary.BigEndian.PutUint32(ip[0:], 6<<28|uint32(id))
	binary.BigEndian.PutUint16(ip[4:], 20)
	ip[6], ip[7] = protoTCP, 64
	s16, d16 := src.As16(), dst.As16()
	copy(ip[8:24], s16[:])
	copy(ip[24:40], d16[:])
	tcp := ip[ip6Len:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = 5 << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 502)
	if !partial {
		binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, sum6(ip, 20)))
	}
	return f
}

// sum6 is the IPv6 pseudo-header's sum for a TCP segment of n bytes.
func sum6(ip []byte, n int) uint32 {
	var sum uint32
	for i := 8; i < 40; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	return sum + protoTCP + uint32(n)
}

// valid reports whether the IPv4 header and TCP checksums of f (IPv6: the
// TCP checksum) verify.
func valid(f []byte) bool {
	ip := f[ethLen:]
	if binary.BigEndian.Uint16(f[12:]) == etherTypeIP6 {
		return checksum(ip[ip6Len:], sum6(ip, len(ip)-ip6Len)) == 0
	}
	if checksum(ip[:20], 0) != 0 {
		return false
	}
	tcp := ip[20:]
	sum := uint32(binary.BigEndian.Uint16(ip[12:])) + uint32(binary.BigEndian.Uint16(ip[14:])) +
		uint32(binary.BigEndian.Uint16(ip[16:])) + uint32(binary.BigEndian.Uint16(ip[18:])) + protoTCP + uint32(len(tcp))
	return checksum(tcp, sum) == 0
}

func TestIsBackendFIN(t *testing.T) { forFamilies(t, testIsBackendFIN) }

func testIsBackendFIN(t *testing.T, backend netip.AddrPort, snatIP netip.Addr) {
	for _, c := range []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"backend FIN|ACK", tcpFrame(backend.Addr(), snatIP, 8080, 20001, tcpFIN|tcpACK, 100, 200, 1, false), true},
		{"backend FIN|PSH|ACK", tcpFrame(backend.Addr(), snatIP, 8080, 20001, tcpFIN|tcpPSH|tcpACK, 100, 200, 1, false), true},
		{"backend data", tcpFrame(backend.Addr(), snatIP, 8080, 20001, tcpPSH|tcpACK, 100, 200, 1, false), false},
		{"backend RST", tcpFrame(backend.Addr(), snatIP, 8080, 20001, tcpRST|tcpACK|tcpFIN, 100, 200, 1, false), false},
		{"client FIN", tcpFrame(snatIP, backend.Addr(), 20001, 8080, tcpFIN|tcpACK, 100, 200, 1, false), false},
		{"other port", tcpFrame(backend.Addr(), snatIP, 22, 20001, tcpFIN|tcpACK, 100, 200, 1, false), false},
		{"our own injection", tcpFrame(backend.Addr(), snatIP, 8080, 20001, tcpFIN|tcpACK, 100, 200, InjectMarkID, false), false},
	} {
		s, ok := ParseTCP(c.frame)
		if !ok {
			t.Fatalf("%s: not parsed", c.name)
		}
		if got := IsBackendFIN(&s, backend); got != c.want {
			t.Errorf("%s: IsBackendFIN %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	f := tcpFrame(backend.Addr(), snatIP, 8080, 20001, tcpFIN|tcpACK, 1, 2, 1, false)
	if _, ok := ParseTCP(f[:ethLen+30]); ok {
		t.Error("truncated frame parsed")
	}
	frag := append([]byte(nil), f...)
	frag[ethLen+6] = 0x20 // MF
	if _, ok := ParseTCP(frag); ok {
		t.Error("fragment parsed")
	}
	arp := append([]byte(nil), f...)
	arp[12], arp[13] = 0x08, 0x06
	if _, ok := ParseTCP(arp); ok {
		t.Error("ARP parsed")
	}
}

func TestRewriteForInjection(t *testing.T) { forFamilies(t, testRewriteForInjection) }

func testRewriteForInjection(t *testing.T, backend netip.AddrPort, snatIP netip.Addr) {
	for _, partial := range []bool{false, true} {
		orig := tcpFrame(backend.Addr(), snatIP, 8080, 20001, tcpFIN|tcpACK, 0xdeadbeef, 0x01020304, 777, partial)
		padded := append(append([]byte(nil), orig...), 0, 0, 0, 0, 0, 0) // Ethernet padding
		out := RewriteForInjection(padded)
		if out == nil {
			t.Fatal("no frame")
		}
		if len(out) != len(orig) {
			t.Fatalf("length %d, want %d (padding cut)", len(out), len(orig))
		}
		if !valid(out) {
			t.Errorf("partial=%v: checksums do not verify", partial)
		}
		s, _ := ParseTCP(out)
		o, _ := ParseTCP(orig)
		if s.Mark != InjectMarkID {
			t.Errorf("mark (IPv4 ID, IPv6 flow label) %#x, want %#x", s.Mark, InjectMarkID)
		}
		o.Mark = InjectMarkID
		if s != o {
			t.Errorf("segment changed: %+v, want %+v", s, o)
		}
		if string(out[:12]) != string(orig[:12]) {
			t.Error("Ethernet addresses changed")
		}
		if IsBackendFIN(&s, backend) {
			t.Error("the injected frame would be taken for a backend FIN")
		}
		if &padded[0] == &out[0] || padded[ethLen+4] != orig[ethLen+4] {
			t.Error("the captured frame was modified in place")
		}
	}
	if RewriteForInjection([]byte{1, 2, 3}) != nil {
		t.Error("garbage rewritten")
	}
}

func TestSchedulerDelaysEachFINOnce(t *testing.T) { forFamilies(t, testSchedulerDelaysEachFINOnce) }

func testSchedulerDelaysEachFINOnce(t *testing.T, backend netip.AddrPort, snatIP netip.Addr) {
	s := &Scheduler{Backend: backend, Delay: time.Second}
	t0 := time.Unix(1000, 0)
	fin := tcpFrame(backend.Addr(), snatIP, 8080, 20001, tcpFIN|tcpACK, 500, 600, 1, false)
	if !s.Observe(fin, t0) {
		t.Fatal("FIN not scheduled")
	}
	if s.Observe(fin, t0.Add(200*time.Millisecond)) { // the backend's retransmission
		t.Error("retransmitted FIN scheduled twice")
	}
	if s.Observe(tcpFrame(backend.Addr(), snatIP, 8080, 20001, tcpACK, 500, 600, 2, false), t0) {
		t.Error("an ACK scheduled")
	}
	other := tcpFrame(backend.Addr(), snatIP, 8080, 20002, tcpFIN|tcpACK, 9, 10, 3, false)
	s.Observe(other, t0.Add(300*time.Millisecond))
	if d := s.Due(t0.Add(999 * time.Millisecond)); len(d) != 0 {
		t.Fatalf("%d due before the delay", len(d))
	}
	d := s.Due(t0.Add(time.Second))
	if len(d) != 1 {
		t.Fatalf("%d due at the delay, want 1", len(d))
	}
	if seg, _ := ParseTCP(d[0]); seg.DstPort != 20001 || seg.Seq != 500 || seg.Mark != InjectMarkID {
		t.Errorf("wrong frame due: %+v", seg)
	}
	if d := s.Due(t0.Add(2 * time.Second)); len(d) != 1 || s.Pending() != 0 {
		t.Fatalf("second FIN: %d due, %d pending", len(d), s.Pending())
	}
	if s.Seen != 2 || s.Scheduled != 2 {
		t.Errorf("seen %d scheduled %d, want 2 2", s.Seen, s.Scheduled)
	}
	// The injected frame seen leaving is not taken again.
	if s.Observe(d[0], t0.Add(3*time.Second)) {
		t.Error("own injection re-scheduled")
	}
}

func TestSchedulerEveryMaxCountOnly(t *testing.T) {
	s := &Scheduler{Backend: backend, Delay: time.Millisecond, Every: 2, Max: 2}
	t0 := time.Unix(1000, 0)
	n := 0
	for i := range 10 {
		if s.Observe(tcpFrame(backend.Addr(), snatIP, 8080, uint16(20000+i), tcpFIN|tcpACK, 1, 1, 1, false), t0) {
			n++
		}
	}
	if n != 2 || s.Skipped != 3 || s.Seen != 10 {
		t.Errorf("scheduled %d skipped %d seen %d, want 2 3 10", n, s.Skipped, s.Seen)
	}
	c := &Scheduler{Backend: backend, Delay: time.Millisecond, CountOnly: true}
	if c.Observe(tcpFrame(backend.Addr(), snatIP, 8080, 20000, tcpFIN|tcpACK, 1, 1, 1, false), t0) || c.Seen != 1 {
		t.Error("CountOnly scheduled or did not count")
	}
}

// icmpFrame builds an ICMP error from the middle box (q's destination)
// quoting the backend's segment q (a frame from tcpFrame): ICMPv6 when q
// is IPv6.
func icmpFrame(typ, code uint8, q []byte) []byte {
	if binary.BigEndian.Uint16(q[12:]) == etherTypeIP6 {
		quoted := q[ethLen : ethLen+ip6Len+8]
		f := make([]byte, ethLen+ip6Len+8+len(quoted))
		binary.BigEndian.PutUint16(f[12:], etherTypeIP6)
		ip := f[ethLen:]
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(8+len(quoted)))
		ip[6], ip[7] = protoICMPv6, 64
		copy(ip[8:24], quoted[24:40])
		copy(ip[24:40], quoted[8:24])
		ip[40], ip[41] = typ, code
		copy(ip[48:], quoted)
		return f
	}
	quoted := q[ethLen : ethLen+28]
	f := make([]byte, ethLen+20+8+len(quoted))
	binary.BigEndian.PutUint16(f[12:], etherTypeIP4)
	ip := f[ethLen:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8], ip[9] = 64, protoICMP
	s4, d4 := snatIP.As4(), backend.Addr().As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	ip[20], ip[21] = typ, code
	copy(ip[28:], quoted)
	return f
}

func TestClassify(t *testing.T) { forFamilies(t, testClassify) }

// testClassify: port unreachable (ICMP 3/3, ICMPv6 1/4) is counted apart
// from other errors.
func testClassify(t *testing.T, backend netip.AddrPort, snatIP netip.Addr) {
	var c injectCounters
	unreach, port, host := uint8(3), uint8(3), uint8(1)
	if backend.Addr().Is6() {
		unreach, port, host = 1, 4, 3
	}
	synack := tcpFrame(backend.Addr(), snatIP, 8080, 20001, tcpSYN|tcpACK, 1, 2, 1, false)
	c.classify(synack, true, backend)
	c.classify(icmpFrame(unreach, port, synack), false, backend)
	c.classify(icmpFrame(unreach, host, synack), false, backend)
	c.classify(icmpFrame(unreach, port, synack), true, backend) // sent by the backend: not counted
	c.classify(tcpFrame(snatIP, backend.Addr(), 20001, 8080, tcpRST, 1, 0, 1, false), false, backend)
	c.classify(tcpFrame(snatIP, backend.Addr(), 20001, 8080, tcpSYN, 1, 0, 1, false), false, backend)
	c.classify(tcpFrame(backend.Addr(), snatIP, 8080, 20001, tcpRST|tcpACK, 1, 0, 1, false), true, backend)
	want := injectCounters{icmp33: 1, icmp33TCP: 1, icmpOther: 1, rstIn: 1, synIn: 1, rstOut: 1, synAckOut: 1}
	if c != want {
		t.Errorf("counters %+v, want %+v", c, want)
	}
	if e, ok := ParseICMPError(icmpFrame(unreach, port, synack)); !ok || e.Quoted.DstPort != 20001 || e.Quoted.Src != backend.Addr() ||
		e.From != snatIP || !e.PortUnreachable() {
		t.Errorf("quoted tuple %+v", e)
	}
	echo := uint8(8)
	if backend.Addr().Is6() {
		echo = 128
	}
	if _, ok := ParseICMPError(icmpFrame(echo, 0, synack)); ok {
		t.Error("echo request taken for an error")
	}
}
