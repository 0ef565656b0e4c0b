package conntrack

import (
	"testing"

	"github.com/edgegw/edge/drop"
)

// nsxTrio runs the same packets through three tables: edge's default
// policy, the same with the NSX shadow, and NSX compatibility mode. The
// shadow must give every packet the default's verdict and leave the same
// flows, counters and events (but its own), and count nsx_would_drop on
// exactly the packets NSX compatibility mode drops as nsx_synack_on_closing.
type nsxTrio struct {
	t                 *testing.T
	def, shadow, nsx  *harness
	translated        bool // flows from the inside get the SNAT port
	wouldDrop, failed int  // the shadow's counts so far, checked at each step
	nsxDrops          int
}

func newNSXTrio(t *testing.T, fam family, profiles []Profile, translated bool) *nsxTrio {
	return &nsxTrio{t: t, translated: translated,
		def:    newFamilyHarness(t, Policy{Profiles: profiles}, fam),
		shadow: newFamilyHarness(t, Policy{Profiles: profiles, NSXShadow: true}, fam),
		nsx:    newFamilyHarness(t, Policy{Profiles: profiles, NSXCompat: true}, fam),
	}
}

func (x *nsxTrio) advance(d Time) {
	x.def.clk.Advance(d)
	x.shadow.clk.Advance(d)
	if x.nsx != nil {
		x.nsx.clk.Advance(d)
	}
}

// send is harness.send as the data plane does it: a packet from the
// outside (d Reply) that opens a flow gets no translation.
func nsxSend(h *harness, p Packet, d Dir, natPort uint16, translated bool) Verdict {
	v := h.s.Track(&p, h.clk.now)
	if v.Action == Open {
		nf := NewFlow{}
		if d == Original && translated {
			nf.NAT = Translation{Addr: h.nat, Port: natPort}
		}
		v = h.s.Create(&p, nf, h.clk.now)
	}
	return v
}

// step sends p (direction d relative to the connection) to the three tables
// and checks the shadow against the other two (against the default only
// when there is no NSX table: the fuzzer's sequences).
func (x *nsxTrio) step(what string, p Packet, d Dir, natPort uint16) {
	x.t.Helper()
	vd := nsxSend(x.def, p, d, natPort, x.translated)
	vs := nsxSend(x.shadow, p, d, natPort, x.translated)
	if vs != vd {
		x.t.Fatalf("%s: shadow verdict %+v, default %+v", what, vs, vd)
	}
	if x.nsx == nil {
		x.sameAsDefault(what)
		return
	}
	vn := nsxSend(x.nsx, p, d, natPort, x.translated)
	if vn.Action == Drop && vn.Reason == drop.NSXSynAckOnClosing {
		x.nsxDrops++
	}
	st := x.shadow.tb.Stats()
	if got := int(st.Counters[CtrNSXWouldDrop]); got != x.nsxDrops {
		x.t.Fatalf("%s: nsx_would_drop %d, NSX mode dropped %d SYN-ACKs as nsx_synack_on_closing (this one: %v %v)",
			what, got, x.nsxDrops, vn.Action, vn.Reason)
	}
	x.wouldDrop = x.nsxDrops
	x.failed = int(st.Counters[CtrNSXWouldFail])
	x.sameAsDefault(what)
}

// sameAsDefault checks that the shadow's table holds what the default's
// does: flow records, drop counters, counters but the shadow's, events but
// EvNSXWouldDrop.
func (x *nsxTrio) sameAsDefault(what string) {
	x.t.Helper()
	a, b := x.def.s, x.shadow.s
	for i := range a.flows {
		if a.flows[i] != b.flows[i] {
			x.t.Fatalf("%s: flow slot %d differs:\ndefault %+v\nshadow  %+v", what, i, a.flows[i], b.flows[i])
		}
	}
	sa, sb := x.def.tb.Stats(), x.shadow.tb.Stats()
	sb.Counters[CtrNSXWouldDrop], sb.Counters[CtrNSXWouldFail] = 0, 0
	sa.Counters[CtrEventsLost], sb.Counters[CtrEventsLost] = 0, 0
	if sa != sb {
		x.t.Fatalf("%s: stats differ:\ndefault %+v\nshadow  %+v", what, sa, sb)
	}
	var ea, eb [256]Event
	na := x.def.tb.ReadEvents(ea[:])
	nb := x.shadow.tb.ReadEvents(eb[:])
	j := 0
	for i := 0; i < nb; i++ {
		if eb[i].Kind == EvNSXWouldDrop {
			continue
		}
		if j >= na || eb[i] != ea[j] {
			x.t.Fatalf("%s: shadow event %d %+v not the default's", what, i, eb[i])
		}
		j++
	}
	if j != na {
		x.t.Fatalf("%s: %d default events, %d in the shadow", what, na, j)
	}
}

// untranslated builds segment (d, flags, seq, ack) of c without SNAT: the
// reply direction is the client's tuple reversed.
func untranslated(c *conn, d Dir, flags uint8, seq, ack int64, payload int) Packet {
	p := ttPacket(c, d, flags, seq, ack, payload)
	if d == Reply {
		p.Key = ttPacket(c, Original, flags, 0, 0, 0).Key.Reverse()
	}
	return p
}

// TestNSXShadowValidSequences replays every valid sequence of the
// transition tests (among them the incident's: port reuse on TIME_WAIT,
// after an RST, a SYN noted before the old connection closed) through the
// three tables, in both families and with both ISN sets: the shadow counts
// exactly the SYN-ACKs NSX compatibility mode drops and changes nothing.
func TestNSXShadowValidSequences(t *testing.T) {
	forEachFamily(t, func(t *testing.T, fam family) {
		for _, isn := range ttISNs {
			for _, sq := range ttValidSequences {
				t.Run(isn.name+"/"+sq.name, func(t *testing.T) {
					x := newNSXTrio(t, fam, nil, true)
					c := x.def.conn(40000, 1025, isn.cisn, isn.sisn)
					for i, s := range sq.steps {
						p := ttPacket(c, s.dir, s.flags, s.seq, s.ack, s.payload)
						// ttValidSequences' flows are all opened from the inside.
						x.step("step "+itoa(i), p, Original, c.sport)
					}
				})
			}
		}
	})
	// The rows where NSX drops: the shadow must have counted there (a
	// shadow that never counts would pass the loop above on the others).
	for _, name := range []string{
		"port reuse after TIME_WAIT, delayed FIN before and after the new SYN (NSX)",
		"port reuse: SYN noted, the old connection closes, then the new SYN-ACK (the incident)",
		"port reuse after RST",
	} {
		var sq ttSeq
		for _, s := range ttValidSequences {
			if s.name == name {
				sq = s
			}
		}
		if sq.steps == nil {
			t.Fatalf("no sequence %q", name)
		}
		x := newNSXTrio(t, families[0], nil, true)
		c := x.def.conn(40000, 1025, ttISNs[0].cisn, ttISNs[0].sisn)
		for i, s := range sq.steps {
			x.step(name+" step "+itoa(i), ttPacket(c, s.dir, s.flags, s.seq, s.ack, s.payload), Original, c.sport)
		}
		if x.wouldDrop != 1 || x.failed != 1 {
			t.Errorf("%s: nsx_would_drop %d, nsx_would_fail %d; want 1, 1", name, x.wouldDrop, x.failed)
		}
	}
}

// TestNSXShadowStrayFIN: a delayed FIN after the old flow expired (edge: no
// state, nothing created; NSX: a closing entry), then a new connection on
// the same tuple, with the timers that decide whether NSX's entry still
// lives when the SYN-ACK comes.
func TestNSXShadowStrayFIN(t *testing.T) { forEachFamily(t, testNSXShadowStrayFIN) }

func testNSXShadowStrayFIN(t *testing.T, fam family) {
	const O, R = Original, Reply
	const N = ttNewISN
	type st struct {
		adv     Time
		d       Dir
		flags   uint8
		seq     int64
		ack     int64
		payload int
	}
	old := []st{
		{0, O, SYN, 0, 0, 0}, {0, R, SYNACK, 0, 1, 0}, {0, O, ACK, 1, 1, 0},
		{0, O, FINACK, 1, 1, 0}, {0, R, FINACK, 1, 2, 0}, {0, O, ACK, 2, 2, 0},
	}
	cases := []struct {
		name       string
		profile    Profile
		translated bool
		steps      []st // after the old connection and its expiry
		wouldDrop  int
		failed     int
	}{
		{"server's delayed FIN, untranslated", DefaultProfile, false, []st{
			{Second, R, FINACK, 1, 2, 0}, // the delayed FIN: NSX makes a CLOSING entry
			{Second, O, SYN, N, 0, 0},
			{0, R, SYNACK, N, N + 1, 0},
			{0, O, ACK, N + 1, N + 1, 0},
			{0, O, ACK | PSH, N + 1, N + 1, 100},
		}, 1, 1},
		{"client's delayed FIN, translated, SYN-ACK retransmitted", DefaultProfile, true, []st{
			{Second, O, FINACK, 1, 1, 0},
			{Second, O, SYN, N, 0, 0},
			{0, R, SYNACK, N, N + 1, 0},
			{Second, R, SYNACK, N, N + 1, 0},
		}, 2, 1},
		{"the client retries with a new ISN while NSX's entry lives", DefaultProfile, true, []st{
			{Second, O, FINACK, 1, 1, 0},
			{Second, O, SYN, N, 0, 0},
			{0, R, SYNACK, N, N + 1, 0},
			{3 * Second, O, SYN, 2 * N, 0, 0}, // a new connection (edge notes it on SYN_RECV)
			{0, R, SYNACK, 2 * N, 2*N + 1, 0},
		}, 2, 2},
		{"two new connections on the tuple while NSX's entry lives", DefaultProfile, true, []st{
			{Second, O, FINACK, 1, 1, 0},
			{Second, O, SYN, N, 0, 0},
			{0, R, SYNACK, N, N + 1, 0},
			{0, O, RST, N + 1, 0, 0}, // the client gives up
			{Second, O, SYN, 2 * N, 0, 0},
			{0, R, SYNACK, 2 * N, 2*N + 1, 0},
		}, 2, 2},
		{"NSX's entry expired before the SYN", DefaultProfile, false, []st{
			{Second, R, FINACK, 1, 2, 0},
			{DefaultProfile.FinWait + Second, O, SYN, N, 0, 0},
			{0, R, SYNACK, N, N + 1, 0},
		}, 0, 0},
		{"the SYN restarts NSX's timer", DefaultProfile, false, []st{
			{Second, R, FINACK, 1, 2, 0},
			{DefaultProfile.FinWait - Second, O, SYN, N, 0, 0},
			{2 * Second, R, SYNACK, N, N + 1, 0}, // past the FIN's timer, within the SYN's
		}, 1, 1},
		{"a SYN retransmission restarts it too", nsxShortFinWait, false, []st{
			{Second, R, FINACK, 1, 2, 0},
			{Second, O, SYN, N, 0, 0},
			{4 * Second, O, SYN, N, 0, 0},
			{4 * Second, R, SYNACK, N, N + 1, 0}, // 8 s after the first SYN, 4 after the second
		}, 1, 1},
		{"no retransmission: NSX's entry is gone", nsxShortFinWait, false, []st{
			{Second, R, FINACK, 1, 2, 0},
			{Second, O, SYN, N, 0, 0},
			{6 * Second, R, SYNACK, N, N + 1, 0},
		}, 0, 0},
		{"a FIN without ACK is no stray FIN", DefaultProfile, false, []st{
			{Second, R, RST, 1, 0, 0},
			{Second, O, SYN, N, 0, 0},
			{0, R, SYNACK, N, N + 1, 0},
		}, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x := newNSXTrio(t, fam, []Profile{tc.profile}, tc.translated)
			c := x.def.conn(40000, 1025, 1000, 5000)
			pk := func(s st) Packet {
				if tc.translated {
					return ttPacket(c, s.d, s.flags, s.seq, s.ack, s.payload)
				}
				return untranslated(c, s.d, s.flags, s.seq, s.ack, s.payload)
			}
			for i, s := range old {
				x.step("old "+itoa(i), pk(s), Original, c.sport)
			}
			// The old connection's TIME_WAIT entry expires (and is swept).
			x.advance(tc.profile.TimeWait + Second)
			for _, h := range []*harness{x.def, x.shadow, x.nsx} {
				h.s.Expire(h.clk.now, 1024)
			}
			x.sameAsDefault("expiry")
			for i, s := range tc.steps {
				x.advance(s.adv)
				x.step("step "+itoa(i), pk(s), s.d, c.sport)
			}
			if x.wouldDrop != tc.wouldDrop || x.failed != tc.failed {
				t.Fatalf("nsx_would_drop %d, nsx_would_fail %d; want %d, %d", x.wouldDrop, x.failed, tc.wouldDrop, tc.failed)
			}
		})
	}
}

// nsxShortFinWait closes in 5 s, so SYN retransmissions matter.
var nsxShortFinWait = func() Profile {
	p := DefaultProfile
	p.Name, p.FinWait = "short-fin-wait", 5*Second
	return p
}()

// TestNSXShadowSignals: the connection NSX would have failed is an
// nsx_would_drop event (tuple, destination, what NSX drops) and a count
// for its destination.
func TestNSXShadowSignals(t *testing.T) {
	forEachFamily(t, func(t *testing.T, fam family) {
		h := newFamilyHarness(t, Policy{NSXShadow: true}, fam)
		c := h.conn(40000, 1025, 1000, 5000)
		h.run(c.sport, fullLife(c))
		h.tb.SkipEvents()
		nu := h.conn(40000, 1025, 900000, 7000000)
		h.run(nu.sport, []step{
			{"new SYN", nu.out(SYN, nu.cisn, 0, 0), Reopened, TCPSynSent, 0},
			{"SYN-ACK", nu.in(SYNACK, nu.sisn, nu.cisn+1, 0), Forward, TCPSynRecv, 0},
		})
		var evs [16]Event
		n := h.tb.ReadEvents(evs[:])
		var got *Event
		for i := range evs[:n] {
			if evs[i].Kind == EvNSXWouldDrop {
				if got != nil {
					t.Fatalf("two nsx_would_drop events")
				}
				got = &evs[i]
			}
		}
		key := nu.out(SYN, 0, 0, 0).Key
		if got == nil || got.Key != key || got.Reason != drop.NSXSynAckOnClosing || got.Dir != Reply || got.Gen != 1 ||
			got.NATPort != nu.sport {
			t.Fatalf("event %+v, want nsx_would_drop for %v", got, key)
		}
		d := destOf(&key)
		if e := h.s.dests.get(&d); e == nil || e.ctr[DestNSXWouldFail] != 1 {
			t.Fatalf("destination %v: %+v", d, e)
		}
	})
}

// TestNSXShadowIgnoredInNSXMode: with NSXCompat on, the verdicts are NSX's
// and the shadow counts nothing.
func TestNSXShadowIgnoredInNSXMode(t *testing.T) {
	h := newHarness(t, Policy{NSXCompat: true, NSXShadow: true})
	c := h.conn(40000, 1025, 1000, 5000)
	h.run(c.sport, fullLife(c))
	nu := h.conn(40000, 1025, 900000, 7000000)
	h.run(nu.sport, []step{
		{"new SYN", nu.out(SYN, nu.cisn, 0, 0), Forward, TCPTimeWait, 0},
		{"SYN-ACK", nu.in(SYNACK, nu.sisn, nu.cisn+1, 0), Drop, TCPTimeWait, drop.NSXSynAckOnClosing},
	})
	if st := h.tb.Stats(); st.Counters[CtrNSXWouldDrop] != 0 || st.Counters[CtrNSXWouldFail] != 0 {
		t.Fatalf("shadow counted in NSX mode: %v", st.Counters)
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// nsxShadowRound is a new connection on a tuple whose old flow expired
// after a delayed FIN: the shadow's whole path (the stray FIN's note, the
// SYN's Create and refresh, the SYN-ACK's judgement).
type nsxShadowRound struct{ fin, syn, synack Packet }

func newNSXShadowRound(c *conn) *nsxShadowRound {
	return &nsxShadowRound{untranslated(c, Reply, FINACK, 1, 2, 0), untranslated(c, Original, SYN, 0, 0, 0),
		untranslated(c, Reply, SYNACK, 0, 1, 0)}
}

// run plays round i (a new ISN each time) and releases the flow so the
// next round starts alike.
func (r *nsxShadowRound) run(h *harness, i uint32) {
	isn := r.syn.Seq + i<<20
	syn, synack := r.syn, r.synack
	syn.Seq, synack.Ack = isn, isn+1
	h.clk.Advance(Second)
	h.s.Track(&r.fin, h.clk.now)
	nsxSend(h, syn, Original, 0, false)
	v := h.s.Track(&synack, h.clk.now)
	h.s.Delete(v.Flow, h.clk.now)
}

func TestNSXShadowZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	h := newHarness(t, Policy{NSXShadow: true})
	c := h.conn(40000, 1025, 1000, 5000)
	r, i := newNSXShadowRound(c), uint32(0)
	if n := testing.AllocsPerRun(100, func() { i++; r.run(h, i) }); n != 0 {
		t.Fatalf("%v allocations per handshake", n)
	}
	if got := h.tb.Stats().Counters[CtrNSXWouldFail]; got < 100 {
		t.Fatalf("the handshakes were not judged: nsx_would_fail %d", got)
	}
}

// BenchmarkNSXShadowHandshake: the cost of a new connection on a reused
// tuple with the shadow on (stray FIN, SYN, SYN-ACK, delete), and off.
func BenchmarkNSXShadowHandshake(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			h := newHarness(b, Policy{NSXShadow: on})
			r := newNSXShadowRound(h.conn(40000, 1025, 1000, 5000))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.run(h, uint32(i))
			}
		})
	}
}

// FuzzNSXShadowChangesNothing: on any sequence of TCP segments over three
// tuples (either direction, any valid flags, sequence numbers near each
// side's ISNs or a new ISN, time passing, sweeps), the shadow's verdicts,
// flows, counters and events are the default policy's (its own counters and
// events aside).
//
// Input: byte 0 bit 0 PickUp, bit 1 Liberal, bit 2 translated, bit 3 the
// short NSX gateway timers; then events of 6 bytes: b0 bits 0-1 tuple (mod
// 3), bit 2 direction, bits 3-7 the flags (an index into the valid ones);
// b1 seq: < 0xf0 the sender's ISN + int8 offset, else a new ISN (b1-0xf0)
// << 28; b2 ack: the receiver's ISN + 1 + int8 offset; b3 payload (< 128
// none, else 100 bytes); b4 clock advance (< 128 none, else (b4-128) s);
// b5 bit 0 sweep after the advance.
func FuzzNSXShadowChangesNothing(f *testing.F) {
	// The incident: handshake, close, TIME_WAIT expires, the server's
	// delayed FIN, a new SYN with a new ISN, its SYN-ACK.
	ev := func(tu, d int, fl uint8, seq, ack int8, adv, sweep byte) []byte {
		return []byte{byte(tu) | byte(d)<<2 | nsxFuzzFlagIndex(fl)<<3, byte(seq), byte(ack), 0, adv, sweep}
	}
	seed := [][]byte{
		ev(0, 0, SYN, 0, 0, 0, 0), ev(0, 1, SYNACK, 0, 0, 0, 0), ev(0, 0, ACK, 1, 0, 0, 0),
		ev(0, 0, FINACK, 1, 0, 0, 0), ev(0, 1, FINACK, 1, 1, 0, 0), ev(0, 0, ACK, 2, 1, 0, 0),
		ev(0, 1, FINACK, 1, 1, 128+10, 1), ev(0, 0, SYN, 0, 0, 129, 0), ev(0, 1, SYNACK, 0, 0, 0, 0),
	}
	seed[7][1] = 0xf1                   // the new connection's ISN
	seed[8][1], seed[8][2] = 0xf2, 0xf1 // its SYN-ACK
	in := []byte{8}                     // the NSX gateway's 4 s TIME_WAIT
	for _, e := range seed {
		in = append(in, e...)
	}
	f.Add(in)
	f.Add(append([]byte{8 | 4}, in[1:]...)) // translated
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		var profiles []Profile
		if data[0]&8 != 0 {
			profiles = []Profile{NSXGatewayProfile}
		}
		pol := Policy{Profiles: profiles, PickUp: data[0]&1 != 0, Liberal: data[0]&2 != 0}
		shadow := pol
		shadow.NSXShadow = true
		x := &nsxTrio{t: t, translated: data[0]&4 != 0,
			def: newFamilyHarness(t, pol, families[0]), shadow: newFamilyHarness(t, shadow, families[0])}
		conns := []*conn{
			x.def.conn(40001, 1025, 0xffffff00, 5000),
			x.def.conn(40002, 1026, 1000, 0xfffffff0),
			x.def.conn(40003, 1027, 0x7ffffff0, 123456),
		}
		data = data[1:]
		for n := 0; n < 64 && len(data) >= 6; n, data = n+1, data[6:] {
			b := data[:6]
			c := conns[int(b[0]&3)%len(conns)]
			d := Dir(b[0] >> 2 & 1)
			flags := nsxFuzzFlags[int(b[0]>>3)%len(nsxFuzzFlags)]
			seq := int64(int8(b[1]))
			if b[1] >= 0xf0 {
				seq = int64(b[1]-0xf0) << 28
			}
			ack := 1 + int64(int8(b[2]))
			if b[2] >= 0xf0 {
				ack = int64(b[2]-0xf0)<<28 + 1
			}
			payload := 0
			if b[3] >= 128 {
				payload = 100
			}
			if b[4] >= 128 {
				x.advance(Time(b[4]-128) * Second)
				if b[5]&1 != 0 {
					for _, h := range []*harness{x.def, x.shadow} {
						h.s.Expire(h.clk.now, 1024)
					}
				}
			}
			var p Packet
			if x.translated {
				p = ttPacket(c, d, flags, seq, ack, payload)
			} else {
				p = untranslated(c, d, flags, seq, ack, payload)
			}
			x.step("event "+itoa(n), p, d, c.sport)
		}
	})
}

// nsxFuzzFlags are the valid TCP flag combinations the fuzzer sends.
var nsxFuzzFlags = []uint8{SYN, SYNACK, ACK, ACK | PSH, FINACK, FINACK | PSH, RST, RSTACK, SYN | ACK | PSH}

func nsxFuzzFlagIndex(fl uint8) byte {
	for i, f := range nsxFuzzFlags {
		if f == fl {
			return byte(i)
		}
	}
	panic("flags")
}
