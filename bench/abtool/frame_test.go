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

// tcpFrame builds an Ethernet + IPv4 + TCP frame with valid checksums (or a
// zero TCP checksum, as veth hands over a partial one, when partial).
func tcpFrame(src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32, id uint16, partial bool) []byte {
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

// valid reports whether the IPv4 header and TCP checksums of f verify.
func valid(f []byte) bool {
	ip := f[ethLen:]
	if checksum(ip[:20], 0) != 0 {
		return false
	}
	tcp := ip[20:]
	sum := uint32(binary.BigEndian.Uint16(ip[12:])) + uint32(binary.BigEndian.Uint16(ip[14:])) +
		uint32(binary.BigEndian.Uint16(ip[16:])) + uint32(binary.BigEndian.Uint16(ip[18:])) + protoTCP + uint32(len(tcp))
	return checksum(tcp, sum) == 0
}

func TestIsBackendFIN(t *testing.T) {
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
		s, ok := ParseTCP4(c.frame)
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
	if _, ok := ParseTCP4(f[:ethLen+30]); ok {
		t.Error("truncated frame parsed")
	}
	frag := append([]byte(nil), f...)
	frag[ethLen+6] = 0x20 // MF
	if _, ok := ParseTCP4(frag); ok {
		t.Error("fragment parsed")
	}
	arp := append([]byte(nil), f...)
	arp[12], arp[13] = 0x08, 0x06
	if _, ok := ParseTCP4(arp); ok {
		t.Error("ARP parsed")
	}
}

func TestRewriteForInjection(t *testing.T) {
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
		s, _ := ParseTCP4(out)
		o, _ := ParseTCP4(orig)
		if s.ID != InjectMarkID {
			t.Errorf("IP ID %#x, want the mark", s.ID)
		}
		o.ID = InjectMarkID
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

func TestSchedulerDelaysEachFINOnce(t *testing.T) {
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
	if seg, _ := ParseTCP4(d[0]); seg.DstPort != 20001 || seg.Seq != 500 || seg.ID != InjectMarkID {
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

// icmpFrame builds an ICMP error from the middle box quoting the backend's
// segment q (a frame from tcpFrame).
func icmpFrame(typ, code uint8, q []byte) []byte {
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

func TestClassify(t *testing.T) {
	var c injectCounters
	synack := tcpFrame(backend.Addr(), snatIP, 8080, 20001, tcpSYN|tcpACK, 1, 2, 1, false)
	c.classify(synack, true, backend)
	c.classify(icmpFrame(3, 3, synack), false, backend)
	c.classify(icmpFrame(3, 1, synack), false, backend)
	c.classify(icmpFrame(3, 3, synack), true, backend) // sent by the backend: not counted
	c.classify(tcpFrame(snatIP, backend.Addr(), 20001, 8080, tcpRST, 1, 0, 1, false), false, backend)
	c.classify(tcpFrame(snatIP, backend.Addr(), 20001, 8080, tcpSYN, 1, 0, 1, false), false, backend)
	c.classify(tcpFrame(backend.Addr(), snatIP, 8080, 20001, tcpRST|tcpACK, 1, 0, 1, false), true, backend)
	want := injectCounters{icmp33: 1, icmp33TCP: 1, icmpOther: 1, rstIn: 1, synIn: 1, rstOut: 1, synAckOut: 1}
	if c != want {
		t.Errorf("counters %+v, want %+v", c, want)
	}
	if e, ok := ParseICMPError(icmpFrame(3, 3, synack)); !ok || e.Quoted.DstPort != 20001 || e.Quoted.Src != backend.Addr() {
		t.Errorf("quoted tuple %+v", e)
	}
	if _, ok := ParseICMPError(icmpFrame(8, 0, synack)); ok {
		t.Error("echo request taken for an error")
	}
}
