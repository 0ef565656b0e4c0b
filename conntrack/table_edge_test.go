package conntrack

import (
	"testing"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// udpPkt is a UDP datagram from client port sport to server port 53.
func udpPkt(t testing.TB, sport uint16) Packet {
	return pkt(t, headertest.Spec{Src: client, Dst: server, Proto: header.ProtoUDP, SrcPort: sport, DstPort: 53,
		Payload: []byte("q")})
}

// TestEvictUnansweredAfterHalfTimer: under table pressure an unanswered UDP
// flow is evictable only once half of its timer has run, never when fresh.
func TestEvictUnansweredAfterHalfTimer(t *testing.T) {
	tb, err := New(Config{MaxFlows: 64, Memory: MemoryHeap, HistorySize: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	s := tb.Shard(0)
	start := 10 * Second
	for i := 0; i < 64; i++ {
		p := udpPkt(t, uint16(20000+i))
		if v := s.Create(&p, NewFlow{}, start); v.Action != Forward || v.State != UDPFirst {
			t.Fatalf("flow %d: %+v", i, v)
		}
	}
	extra := udpPkt(t, 30000)
	to := DefaultProfile.UDPFirst
	if v := s.Create(&extra, NewFlow{}, start+to/2-Second); v.Action != Drop || v.Reason != drop.TableFull {
		t.Fatalf("before half the timer: %+v, want table_full", v)
	}
	if v := s.Create(&extra, NewFlow{}, start+to/2+Second); v.Action != Forward {
		t.Fatalf("past half the timer: %+v, want an unanswered flow evicted", v)
	}
	if st := tb.Stats(); st.Counters[CtrEvicted] != 1 || st.Counters[CtrExpired] != 0 {
		t.Fatalf("evicted %d expired %d, want 1 and 0", st.Counters[CtrEvicted], st.Counters[CtrExpired])
	}
}

// TestTimersAcrossTickWrap: flow deadlines are kept in 32-bit milliseconds,
// which wrap every 49.7 days of uptime. A flow created just before the wrap
// lives its full timeout across it, and expires after.
func TestTimersAcrossTickWrap(t *testing.T) {
	h := newHarness(t, Policy{})
	h.clk.now = Time(1<<32-1000) * Millisecond // one second before ticks wrap
	p := udpPkt(t, 20000)
	if v := h.send(p, 0); v.Action != Forward {
		t.Fatalf("create: %+v", v)
	}
	to := DefaultProfile.UDPFirst
	h.clk.Advance(500 * Millisecond)
	if _, _, ok := h.s.Lookup(&p.Key, h.clk.now); !ok {
		t.Fatalf("flow gone 500ms after creation, before the wrap (its deadline is after it)")
	}
	h.clk.Advance(to - Second - 500*Millisecond)
	if _, _, ok := h.s.Lookup(&p.Key, h.clk.now); !ok {
		t.Fatalf("flow gone %v after creation, across the wrap (timeout %v)", to-Second, to)
	}
	h.clk.Advance(2 * Second)
	if _, _, ok := h.s.Lookup(&p.Key, h.clk.now); ok {
		t.Fatalf("flow alive %v after its last packet (timeout %v)", to+Second, to)
	}
}

// TestReplyKeyIsExact: a reply addressed to another SNAT port, or another
// SNAT address, is not the flow's reply; and a flow whose reply key is
// already a live flow's is refused (two flows would answer one tuple).
func TestReplyKeyIsExact(t *testing.T) { forEachFamily(t, testReplyKeyIsExact) }

func testReplyKeyIsExact(t *testing.T, fam family) {
	h := newFamilyHarness(t, Policy{}, fam)
	c := h.conn(40000, 1025, 1000, 5000)
	if v := h.send(c.out(SYN, c.cisn, 0, 0), c.sport); v.Action != Forward {
		t.Fatalf("SYN: %+v", v)
	}
	other := h.conn(40000, 1026, 1000, 5000)
	if v := h.s.Track(ptr(other.in(SYNACK, c.sisn, c.cisn+1, 0)), h.clk.now); v.Action != Drop || v.Reason != drop.NoState {
		t.Fatalf("SYN-ACK to SNAT port 1026 of a flow on 1025: %+v, want no_state", v)
	}
	if v := h.s.Track(ptr(c.in(SYNACK, c.sisn, c.cisn+1, 0)), h.clk.now); v.Action != Forward || v.State != TCPSynRecv {
		t.Fatalf("SYN-ACK to the flow's port: %+v", v)
	}

	// A second client (another source port) translated to the same
	// address and port toward the same server: its reply key is the
	// first flow's.
	second := c.out(SYN, 7, 0, 0)
	second.Key.SrcPort = 40001
	v := h.s.Create(&second, NewFlow{NAT: Translation{Addr: h.nat, Port: c.sport}}, h.clk.now)
	if v.Action != Drop || v.Reason != drop.KeyInUse {
		t.Fatalf("Create with a reply key in use: %+v, want key_in_use", v)
	}
	if h.tb.Len() != 1 {
		t.Fatalf("%d flows, want 1", h.tb.Len())
	}
}

func ptr(p Packet) *Packet { return &p }

// TestMatchesIsExact: the index compares 32-bit tags, so two keys can share
// one; matches must then tell them apart. Every field of a key that differs
// from a flow's original or (translated) reply key makes it another flow's.
func TestMatchesIsExact(t *testing.T) { forEachFamily(t, testMatchesIsExact) }

func testMatchesIsExact(t *testing.T, fam family) {
	h := newFamilyHarness(t, Policy{}, fam)
	c := h.conn(40000, 1025, 1000, 5000)
	for _, nat := range []bool{true, false} {
		port := uint16(0)
		if nat {
			port = c.sport
		}
		syn := c.out(SYN, c.cisn, 0, 0)
		if !nat {
			syn.Key.SrcPort++ // another tuple than the translated flow's
		}
		tr := Translation{}
		if nat {
			tr = Translation{Addr: h.nat, Port: port}
		}
		v := h.s.Create(&syn, NewFlow{NAT: tr}, h.clk.now)
		if v.Action != Forward {
			t.Fatalf("nat=%v: create: %+v", nat, v)
		}
		f := &h.s.flows[v.Flow]
		orig, reply := syn.Key, h.s.ReplyKey(&syn.Key, tr)
		for _, d := range []Dir{Original, Reply} {
			k := orig
			if d == Reply {
				k = reply
			}
			if !h.s.matches(f, d, &k) {
				t.Fatalf("nat=%v %v: the flow's own key does not match", nat, d)
			}
			variants := map[string]func(*Key){
				"src addr":           func(k *Key) { k.Src[15]++ },
				"dst addr":           func(k *Key) { k.Dst[15]++ },
				"src addr high bits": func(k *Key) { k.Src[0] ^= 0x20 },
				"dst addr high bits": func(k *Key) { k.Dst[0] ^= 0x20 },
				"src port":           func(k *Key) { k.SrcPort++ },
				"dst port":           func(k *Key) { k.DstPort++ },
				"proto":              func(k *Key) { k.Proto = header.ProtoUDP },
				"zone":               func(k *Key) { k.Zone++ },
			}
			for name, change := range variants {
				k2 := k
				change(&k2)
				if h.s.matches(f, d, &k2) {
					t.Errorf("nat=%v %v: a key with another %s matches", nat, d, name)
				}
			}
		}
	}
}

// TestParseTCPFlagsAndOptions: URG never goes with RST (as Linux's
// tcp_valid_flags), with SYN or ACK it is fine; the window scale option
// counts only on a SYN or SYN-ACK (RFC 7323 2.2), elsewhere Packet.WScale
// stays -1.
func TestParseTCPFlagsAndOptions(t *testing.T) {
	const URG = header.TCPFlagURG
	for _, fam := range [][2]string{{"10.0.0.2", "192.0.2.80"}, {"fd00::2", "2001:db8::80"}} {
		for _, c := range []struct {
			flags uint8
			want  drop.Reason
		}{
			{RST | URG, drop.TCPBadFlags},
			{RST | ACK | URG, drop.TCPBadFlags},
			{SYN | URG, drop.None},
			{ACK | URG, drop.None},
			{FIN | ACK | URG, drop.None},
		} {
			spec := headertest.Spec{Src: netip4(fam[0]), Dst: netip4(fam[1]), Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 80,
				Flags: c.flags, Seq: 1, Ack: 2}
			var p Packet
			if r := Parse(headertest.Build(spec), 0, &p); r != c.want {
				t.Errorf("%s flags %#x: Parse = %v, want %v", fam[0], c.flags, r, c.want)
			}
		}
		for _, c := range []struct {
			flags uint8
			want  int8
		}{{SYN, 7}, {SYNACK, 7}, {ACK, -1}, {ACK | PSH, -1}, {FINACK, -1}} {
			spec := headertest.Spec{Src: netip4(fam[0]), Dst: netip4(fam[1]), Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 80,
				Flags: c.flags, Seq: 1, Ack: 2, HasWScale: true, WScale: 7}
			if p := pkt(t, spec); p.WScale != c.want {
				t.Errorf("%s flags %#x with the window scale option: WScale = %d, want %d", fam[0], c.flags, p.WScale, c.want)
			}
		}
	}
}
