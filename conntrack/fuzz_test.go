package conntrack

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// FuzzTCPSequences feeds sequences of TCP segments over three tuples through
// Parse, Track and Create, the way the data plane does, and checks the
// tracker's invariants after every packet.
//
// Input layout: byte 0 chooses the policy (bit 0 PickUp, bit 1 Liberal,
// bit 2 the short NSX gateway timers); then up to fzMaxEvents events of
// fzEventSize bytes:
//
//	b0  bits 0-1 tuple (mod 3), bit 2 direction, bits 3-4 seq mode,
//	    bits 5-6 ack mode, bit 7 window scale option
//	b1  TCP flags, any of the 256 values
//	b2  seq delta (int8, mode 0), low byte (modes 1, 2, 3)
//	b3  high byte of the seq delta (modes 1, 2, 3)
//	b4  ack delta (int8, modes 0 and 1), random bytes (mode 3)
//	b5  random ack byte (mode 3)
//	b6  payload: < 128 none, else (b6-128)*8 bytes
//	b7  window: b7<<8 | b7
//	b8  clock advance before the packet: < 160 none, 160..239 0-79 s,
//	    240..255 0-300 s in 20 s steps
//	b9  bit 0: after a clock advance, sweep with Expire too; bits 4-7 the
//	    window scale shift
//
// Seq modes: 0 the sender's next sequence number + delta, 1 its ISN + int16
// delta, 2 its ISN + a jump (a new ISN), 3 random. Ack modes: 0 the
// receiver's next + delta, 1 its ISN+1 + delta, 2 ISN+1 of the last SYN
// forwarded in the original direction (the ack of its SYN-ACK), 3 random.
// "Next" and ISN are read from the flow while it lives and remembered after.
func FuzzTCPSequences(f *testing.F) {
	for _, s := range fzSeeds() {
		f.Add(s)
	}
	f.Fuzz(fzRun)
}

const (
	fzEventSize = 10
	fzMaxEvents = 64
)

// fzTuple is the model of one tuple: what the test knows independently of
// the table (whether a flow lives, its slot and deadline, the last SYN we
// saw forwarded) and the sequence numbers last read from the flow.
type fzTuple struct {
	c       conn
	live    bool
	ref     Ref
	expires Time
	isn     [2]uint32
	next    [2]uint32
	lastSyn uint32 // ISN of the last original-direction SYN forwarded while the flow lives
	synData bool   // that SYN carried data (TCP Fast Open)
	synDone bool   // its handshake is over: the flow left SYN_SENT/SYN_SENT2/SYN_RECV since
	hasSyn  bool
}

func (tu *fzTuple) key(d Dir) Key {
	if d == Original {
		return MakeKey(header.ProtoTCP, netip.AddrPortFrom(client, tu.c.cport), netip.AddrPortFrom(server, 80))
	}
	return MakeKey(header.ProtoTCP, netip.AddrPortFrom(server, 80), netip.AddrPortFrom(snatAddr, tu.c.sport))
}

func fzRun(t *testing.T, data []byte) {
	if len(data) == 0 {
		return
	}
	pol := Policy{PickUp: data[0]&1 != 0, Liberal: data[0]&2 != 0}
	if data[0]&4 != 0 {
		pol.Profiles = []Profile{NSXGatewayProfile}
	}
	h := newHarness(t, pol)
	tuples := []*fzTuple{
		{c: conn{cport: 40001, sport: 1025, cisn: 0xffffff00, sisn: 5000}},
		{c: conn{cport: 40002, sport: 1026, cisn: 1000, sisn: 0xfffffff0}},
		{c: conn{cport: 40003, sport: 1027, cisn: 0x7ffffff0, sisn: 123456}},
	}
	for _, tu := range tuples {
		tu.c.t = t
		tu.isn = [2]uint32{tu.c.cisn, tu.c.sisn}
		tu.next = [2]uint32{tu.c.cisn + 1, tu.c.sisn + 1}
	}
	data = data[1:]
	for n := 0; n < fzMaxEvents && len(data) >= fzEventSize; n++ {
		fzStep(t, h, pol, tuples, n, data[:fzEventSize])
		data = data[fzEventSize:]
	}
}

func fzAdvance(b uint8) Time {
	switch {
	case b < 160:
		return 0
	case b < 240:
		return Time(b-160) * Second
	}
	return Time(b-240) * 20 * Second
}

func fzStep(t *testing.T, h *harness, pol Policy, tuples []*fzTuple, n int, b []byte) {
	tu := tuples[int(b[0]&3)%len(tuples)]
	d := Dir(b[0] >> 2 & 1)
	r := d ^ 1
	seqMode, ackMode := b[0]>>3&3, b[0]>>5&3
	flags := b[1]

	// Time passes: flows past their deadline are gone for every lookup.
	if adv := fzAdvance(b[8]); adv > 0 {
		now := h.clk.Advance(adv)
		expiring := 0
		for _, x := range tuples {
			if x.live && now >= x.expires {
				x.live, x.hasSyn = false, false
				expiring++
			}
		}
		if b[9]&1 != 0 {
			if got := h.s.Expire(now, 4*len(tuples)); got != expiring {
				t.Fatalf("event %d: Expire released %d flows, %d had run out", n, got, expiring)
			}
		}
		for i, x := range tuples {
			k := x.key(Original)
			ref, _, ok := h.s.Lookup(&k, now)
			if ok != x.live || ok && ref != x.ref {
				t.Fatalf("event %d: tuple %d after %v: found %v (ref %d), model says live %v (ref %d, expires %v, now %v)",
					n, i, adv, ok, ref, x.live, x.ref, x.expires, now)
			}
		}
		fzCheckCount(t, h, tuples, n)
	}
	now := h.clk.now

	// What the flow knows, refreshed while it lives.
	if tu.live {
		fl := &h.s.flows[tu.ref]
		for _, x := range []Dir{Original, Reply} {
			if fl.isn[x] != 0 {
				tu.isn[x] = fl.isn[x]
			}
			if fl.end[x] != 0 {
				tu.next[x] = fl.end[x]
			}
		}
	}
	var seq, ack uint32
	switch seqMode {
	case 0:
		seq = tu.next[d] + uint32(int8(b[2]))
	case 1:
		seq = tu.isn[d] + uint32(int16(binary.LittleEndian.Uint16(b[2:])))
	case 2:
		seq = tu.isn[d] + uint32(b[3])<<24 + uint32(b[2])<<8
	default:
		seq = binary.LittleEndian.Uint32(b[2:])
	}
	switch ackMode {
	case 0:
		ack = tu.next[r] + uint32(int8(b[4]))
	case 1:
		ack = tu.isn[r] + 1 + uint32(int8(b[4]))
	case 2:
		ack = tu.next[r]
		if d == Reply && tu.hasSyn {
			ack = tu.lastSyn + 1
		}
	default:
		ack = uint32(b[4]) | uint32(b[5])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	}
	payload := 0
	if b[6] >= 128 {
		payload = int(b[6]-128) * 8
	}
	spec := headertest.Spec{Src: client, Dst: server, Proto: header.ProtoTCP, SrcPort: tu.c.cport, DstPort: 80,
		Flags: flags, Seq: seq, Ack: ack, Window: uint16(b[7])<<8 | uint16(b[7]), NoWindowDefault: true,
		Payload: make([]byte, payload)}
	if d == Reply {
		spec.Src, spec.Dst, spec.SrcPort, spec.DstPort = server, snatAddr, 80, tu.c.sport
	}
	if b[0]&0x80 != 0 {
		spec.HasWScale, spec.WScale = true, b[9]>>4
	}

	// Parse: impossible flags never get past it.
	var p Packet
	pr := Parse(headertest.Build(spec), 0, &p)
	if ttImpossibleFlags(flags) && pr != drop.TCPBadFlags {
		t.Fatalf("event %d: flags %#x: Parse = %v, want %v", n, flags, pr, drop.TCPBadFlags)
	}
	if !ValidTCPFlags(flags) {
		if pr != drop.TCPBadFlags {
			t.Fatalf("event %d: flags %#x invalid but Parse = %v", n, flags, pr)
		}
		return // nothing reaches the table
	}
	if pr != drop.None || p.Flags != flags || p.Seq != seq || p.Ack != ack || int(p.Payload) != payload ||
		p.Key != tu.key(d) {
		t.Fatalf("event %d: Parse = %v, packet %+v", n, pr, p)
	}

	base := flags & (SYN | ACK | RST | FIN)
	live := tu.live
	st0, len0 := h.tb.Stats(), h.tb.Len()
	var before flow
	var info0 FlowInfo
	if live {
		before = h.s.flows[tu.ref]
		info0 = h.s.Info(tu.ref, now)
	}
	// The SYN-ACK that answers the last SYN we forwarded (N2): "the new
	// flow's answer", so only while that SYN's handshake is not over. (A
	// late duplicate answering a SYN whose handshake completed is left to
	// the transition table.)
	answersSyn := d == Reply && base == SYN|ACK && live && tu.hasSyn && !tu.synDone && ack == tu.lastSyn+1

	v := h.s.Track(&p, now)
	what := func() string {
		return fmt.Sprintf("event %d: %v flags %#x seq %d ack %d len %d on %v (live %v): %v %v (%v)",
			n, d, flags, seq, ack, payload, info0.State, live, v.Action, v.State, v.Reason)
	}
	if (v.Action == Drop) != (v.Reason != drop.None) {
		t.Fatalf("%s: action and reason disagree", what())
	}
	if v.Action > Reopened {
		t.Fatalf("%s: unknown action", what())
	}
	created := false
	create := func() {
		cv := h.s.Create(&p, NewFlow{NAT: Translation{Addr: h.nat, Port: tu.c.sport}}, now)
		want := TCPSynSent
		if base != SYN {
			want = TCPEstablished
		}
		if cv.Action != Forward || cv.State != want {
			t.Fatalf("%s: Create = %v %v (%v)", what(), cv.Action, cv.State, cv.Reason)
		}
		created = true
		tu.live, tu.ref, tu.hasSyn = true, cv.Flow, base == SYN
		tu.lastSyn, tu.synData, tu.synDone = seq, payload > 0, false
	}

	mayOpen := base == SYN || pol.PickUp && (base == ACK || base == SYN|ACK)
	if !live {
		switch {
		case v.Action == Open && !mayOpen:
			t.Fatalf("%s: a packet that may not create state got Open (N1)", what())
		case v.Action == Drop && mayOpen:
			t.Fatalf("%s: a packet that may open a flow was dropped", what())
		case v.Action == Drop && (v.Reason != drop.NoState || h.tb.Len() != len0):
			t.Fatalf("%s: without state: want a no_state drop and no entry (flows %d -> %d)", what(), len0, h.tb.Len())
		case v.Action != Drop && v.Action != Open:
			t.Fatalf("%s: a packet without state was let through", what())
		}
		if v.Action == Open && d == Original {
			create()
		}
	} else {
		switch v.Action {
		case Drop:
			// A dropped packet changes nothing: not the flow, not the table.
			ref, _, ok := h.s.Lookup(&p.Key, now)
			if !ok || ref != tu.ref {
				t.Fatalf("%s: a dropped packet removed its flow", what())
			}
			if after := h.s.flows[tu.ref]; after != before {
				t.Fatalf("%s: a dropped packet changed the flow:\nbefore %+v\nafter  %+v", what(), before, after)
			}
			if info := h.s.Info(tu.ref, now); info != info0 || h.tb.Len() != len0 {
				t.Fatalf("%s: a dropped packet changed the flow's info", what())
			}
			if answersSyn {
				t.Fatalf("%s: the SYN-ACK answering the last SYN forwarded (ISN %d) was dropped (N2)", what(), tu.lastSyn)
			}
		case Forward, Reopened:
			info := h.s.Info(tu.ref, now)
			if v.Flow != tu.ref || v.Dir != d || v.State != info.State {
				t.Fatalf("%s: verdict flow %d dir %v state %v, flow is %d %v in %v", what(), v.Flow, v.Dir, v.State, tu.ref, d, info.State)
			}
			after := h.s.flows[tu.ref]
			if base&RST != 0 && v.Action == Forward && info0.State != TCPClose {
				// S2: only an exact RST closes; any other RST let through
				// changes nothing but the counters.
				exact := seq == before.end[d]
				if info0.State == TCPSynSent && d == Reply {
					exact = flags&ACK != 0 && before.acksSYN(ack)
				}
				switch {
				case v.State == TCPClose && !exact:
					t.Fatalf("%s: an inexact RST closed the flow (sender's next %d)", what(), before.end[d])
				case v.State != TCPClose && v.State != TCPTimeWait && exact && info0.State != TCPSynSent:
					t.Fatalf("%s: an exact RST did not close the flow", what())
				case v.State != TCPClose && (after.end != before.end || after.maxEnd != before.maxEnd ||
					after.maxWin != before.maxWin || after.state != before.state):
					t.Fatalf("%s: an RST that was not obeyed moved the flow:\nbefore %+v\nafter  %+v", what(), before, after)
				}
			}
			if v.Action == Forward {
				if info.Gen != info0.Gen {
					t.Fatalf("%s: forward changed the generation %d -> %d", what(), info0.Gen, info.Gen)
				}
				if info.Packets[d] != info0.Packets[d]+1 || info.Packets[r] != info0.Packets[r] {
					t.Fatalf("%s: packets %v -> %v", what(), info0.Packets, info.Packets)
				}
				break
			}
			if info.Gen != info0.Gen+1 {
				t.Fatalf("%s: reopened: generation %d -> %d", what(), info0.Gen, info.Gen)
			}
			if !(d == Original && base == SYN || d == Reply && base == SYN|ACK) {
				t.Fatalf("%s: reopened by a packet that is not a SYN or SYN-ACK", what())
			}
			if info.Packets[d] != 1 || info.Packets[r] != 0 {
				t.Fatalf("%s: reopened: packets %v", what(), info.Packets)
			}
		case Open:
			// The entry was released; the packet is judged as new.
			if _, _, ok := h.s.Lookup(&p.Key, now); ok {
				t.Fatalf("%s: Open but the flow still exists", what())
			}
			if !mayOpen {
				t.Fatalf("%s: Open for a packet that may not create state", what())
			}
			tu.live, tu.hasSyn = false, false
			if d == Original {
				create()
			}
		}
	}
	if v.Action != Drop && tu.live && d == Original && base == SYN {
		// A new SYN, unless it repeats the SYN of the current incarnation.
		if !created && (v.Action == Reopened || seq != info0.ISN[Original]) {
			tu.lastSyn, tu.synData, tu.synDone, tu.hasSyn = seq, payload > 0, false, true
		}
	} else if v.Action != Drop && tu.live && !tu.synDone && !fzOpening(v.State) && (fzOpening(info0.State) || v.Action == Reopened) {
		tu.synDone = true
	}

	// Drop counters move only for the verdict's reason.
	st := h.tb.Stats()
	for i := range st.Drops {
		want := st0.Drops[i]
		if v.Action == Drop && drop.Reason(i) == v.Reason {
			want++
		}
		if st.Drops[i] != want {
			t.Fatalf("%s: drop counter %v %d -> %d", what(), drop.Reason(i), st0.Drops[i], st.Drops[i])
		}
	}
	if created && st.Counters[CtrCreated] != st0.Counters[CtrCreated]+1 {
		t.Fatalf("%s: created flow not counted", what())
	}
	if got := st.Counters[CtrReopened] - st0.Counters[CtrReopened]; got != 0 && v.Action != Reopened || got != 1 && v.Action == Reopened {
		t.Fatalf("%s: reopened counter moved by %d", what(), got)
	}

	if tu.live {
		info := h.s.Info(tu.ref, now)
		tu.expires = info.Expires
		if v.Action != Drop && info.Expires != now+Time(fzProfile(pol).timeouts()[info.State])*Millisecond {
			t.Fatalf("%s: deadline %v after the packet, want now %v + the %v timeout", what(), info.Expires, now, info.State)
		}
	}
	k := tu.key(Original)
	if ref, _, ok := h.s.Lookup(&k, now); ok != tu.live || ok && ref != tu.ref {
		t.Fatalf("%s: flow found %v, model says %v", what(), ok, tu.live)
	}
	fzCheckCount(t, h, tuples, n)
}

// fzProfile is the profile every fuzzed flow runs under.
func fzProfile(pol Policy) *Profile {
	if len(pol.Profiles) > 0 {
		return &pol.Profiles[0]
	}
	return &DefaultProfile
}

// fzOpening reports whether st is a handshake state.
func fzOpening(st State) bool { return st == TCPSynSent || st == TCPSynSent2 || st == TCPSynRecv }

// fzCheckCount: the table holds exactly the tuples the model knows to live.
func fzCheckCount(t *testing.T, h *harness, tuples []*fzTuple, n int) {
	want := 0
	for _, x := range tuples {
		if x.live {
			want++
		}
	}
	if st := h.tb.Stats(); st.Flows != int64(want) || h.tb.Len() != want {
		t.Fatalf("event %d: table has %d flows (Len %d), model %d", n, st.Flows, h.tb.Len(), want)
	}
}

// fzEv is a readable event for the seed corpus; bytes encodes it.
type fzEv struct {
	tuple            int
	dir              Dir
	seqMode, ackMode uint8
	flags            uint8
	seqD, ackD       int // mode 0: int8; mode 1 seq: int16; mode 2 seq: the jump's two bytes
	payload          int // multiple of 8, at most 1016
	adv              Time
	sweep            bool
}

func (e fzEv) bytes() []byte {
	b := make([]byte, fzEventSize)
	b[0] = uint8(e.tuple) | uint8(e.dir)<<2 | e.seqMode<<3 | e.ackMode<<5
	b[1] = e.flags
	binary.LittleEndian.PutUint16(b[2:], uint16(int16(e.seqD)))
	b[4] = uint8(int8(e.ackD))
	if e.payload > 0 {
		b[6] = 128 + uint8(e.payload/8)
	}
	b[7] = 0xff
	switch s := int(e.adv / Second); {
	case s == 0:
	case s < 80:
		b[8] = 160 + uint8(s)
	default:
		b[8] = 240 + uint8(min(s/20, 15))
	}
	if e.sweep {
		b[9] = 1
	}
	return b
}

func fzInput(policy byte, evs ...fzEv) []byte {
	out := []byte{policy}
	for _, e := range evs {
		out = append(out, e.bytes()...)
	}
	return out
}

// fzSeeds: meaningful sequences to start from.
func fzSeeds() [][]byte {
	const O, R = Original, Reply
	// Next/next unless said otherwise.
	seg := func(tu int, d Dir, flags uint8, payload int) fzEv {
		return fzEv{tuple: tu, dir: d, flags: flags, payload: payload}
	}
	syn := func(tu int) fzEv { return fzEv{tuple: tu, dir: O, seqMode: 1, flags: SYN} }
	newSyn := func(tu int) fzEv { return fzEv{tuple: tu, dir: O, seqMode: 2, seqD: 0x5a3c, flags: SYN} }
	synAck := func(tu int) fzEv { return fzEv{tuple: tu, dir: R, seqMode: 1, ackMode: 1, flags: SYNACK} }
	synAckLast := func(tu int) fzEv { return fzEv{tuple: tu, dir: R, seqMode: 2, seqD: 0x1177, ackMode: 2, flags: SYNACK} }
	handshake := func(tu int) []fzEv { return []fzEv{syn(tu), synAck(tu), seg(tu, O, ACK, 0)} }
	closeClient := func(tu int) []fzEv {
		return []fzEv{seg(tu, O, FINACK, 0), seg(tu, R, ACK, 0), seg(tu, R, FINACK, 0), seg(tu, O, ACK, 0)}
	}
	cat := func(parts ...[]fzEv) []fzEv {
		var out []fzEv
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	delayedFIN := fzEv{tuple: 0, dir: R, seqMode: 1, seqD: 1, ackMode: 1, ackD: 1, flags: FINACK}
	life := cat(handshake(0), []fzEv{seg(0, O, ACK|PSH, 104), seg(0, R, ACK|PSH, 504)}, closeClient(0))
	wait := func(d Time, sweep bool) fzEv { e := seg(0, O, ACK, 0); e.adv, e.sweep = d, sweep; return e }
	return [][]byte{
		// Full handshake, data, close.
		fzInput(0, life...),
		// NSX: close, delayed FIN, new SYN, SYN-ACK, ACK; then the delayed
		// FIN after the new SYN.
		fzInput(0, cat(handshake(0), closeClient(0),
			[]fzEv{delayedFIN, newSyn(0), synAckLast(0), seg(0, O, ACK, 0)})...),
		fzInput(4, cat(handshake(0), closeClient(0),
			[]fzEv{newSyn(0), delayedFIN, synAckLast(0), seg(0, O, ACK, 0)})...),
		// Port reuse while the old flow is still ESTABLISHED here.
		fzInput(0, cat(handshake(0), []fzEv{newSyn(0), synAckLast(0), seg(0, O, ACK, 0)})...),
		// Simultaneous open.
		fzInput(0, syn(0), fzEv{tuple: 0, dir: R, seqMode: 1, flags: SYN}, synAck(0),
			fzEv{tuple: 0, dir: O, seqMode: 1, ackMode: 1, flags: SYNACK}, seg(0, O, ACK, 0)),
		// Three tuples interleaved, expiry and reuse of the same tuple.
		fzInput(0, cat(handshake(0), handshake(1), []fzEv{syn(2)}, closeClient(1),
			[]fzEv{wait(300*Second, true), wait(300*Second, false), syn(1), synAckLast(1), seg(1, O, ACK, 0)})...),
		// Short timers: TIME_WAIT expires, the tuple is reused from scratch.
		fzInput(4, cat(handshake(0), closeClient(0), []fzEv{wait(5*Second, true), syn(0), synAck(0)})...),
		// Mid-stream pick-up, then the flow closes and a SYN-ACK meets it.
		fzInput(1, seg(0, O, ACK, 0), seg(0, O, FINACK, 0), seg(0, R, ACK, 0), synAck(0)),
		// RSTs: inexact, then exact.
		fzInput(0, cat(handshake(0), []fzEv{{tuple: 0, dir: R, flags: RST, seqD: 100}, seg(0, R, RST, 0), newSyn(0)})...),
		// Impossible flags on a live flow.
		fzInput(2, cat(handshake(0), []fzEv{seg(0, O, SYN|FIN, 0), seg(0, R, 0, 0), seg(0, O, FIN, 0)})...),
	}
}

// FuzzParse: arbitrary bytes never make Parse panic, and what it accepts is
// consistent with the bytes it read.
func FuzzParse(f *testing.F) {
	for _, b := range fzParseSeeds() {
		f.Add(b, uint8(0))
	}
	f.Fuzz(func(t *testing.T, b []byte, zone uint8) {
		var p Packet
		r := Parse(b, zone, &p)
		if r >= drop.NumReasons {
			t.Fatalf("Parse returned unknown reason %d", r)
		}
		if p.Frag == FragLater {
			// A later fragment: what the data plane needs to follow it.
			if r != drop.Fragment || p.FragOff == 0 || !fragmentable(p.Key.Proto) || p.Key.Zone != zone ||
				int(p.L4Off)+int(p.FragLen) > len(b) {
				t.Fatalf("later fragment: reason %v, %+v (len %d)", r, p, len(b))
			}
			return
		}
		if r != drop.None {
			return
		}
		if p.Frag == FragFirst && (!p.FragMore || p.Kind == KindFlow && !fragmentable(p.Key.Proto)) {
			t.Fatalf("first fragment without MF or of protocol %d: %+v", p.Key.Proto, p)
		}
		if p.Key.Zone != zone {
			t.Fatalf("zone %d, want %d", p.Key.Zone, zone)
		}
		l4 := int(p.L4Off)
		minL4 := header.IPv4MinLen
		if b[0]>>4 == 6 {
			minL4 = header.IPv6Len
		}
		if l4 < minL4 || l4+8 > len(b) {
			t.Fatalf("L4Off %d outside the packet (len %d)", l4, len(b))
		}
		if p.Kind == KindRelated {
			if int(p.InnerOff) <= l4 || p.InnerL4 <= p.InnerOff || int(p.InnerL4)+8 > len(b) {
				t.Fatalf("ICMP error: L4Off %d InnerOff %d InnerL4 %d, len %d", l4, p.InnerOff, p.InnerL4, len(b))
			}
			return
		}
		switch p.Key.Proto {
		case header.ProtoTCP:
			if l4+header.TCPMinLen > len(b) {
				t.Fatalf("TCP header at %d past the end (len %d)", l4, len(b))
			}
			tcp := b[l4:]
			hl := int(tcp[12]>>4) * 4
			if !ValidTCPFlags(p.Flags) {
				t.Fatalf("accepted impossible TCP flags %#x", p.Flags)
			}
			if p.Flags != tcp[13] || p.Seq != binary.BigEndian.Uint32(tcp[4:]) || p.Ack != binary.BigEndian.Uint32(tcp[8:]) ||
				p.Key.SrcPort != binary.BigEndian.Uint16(tcp) || p.Key.DstPort != binary.BigEndian.Uint16(tcp[2:]) {
				t.Fatalf("TCP fields do not match the header bytes: %+v", p)
			}
			if hl < header.TCPMinLen || l4+hl+int(p.Payload) > len(b) {
				t.Fatalf("TCP header %d + payload %d at %d past the end (len %d)", hl, p.Payload, l4, len(b))
			}
			if p.WScale > header.TCPMaxWindowScale+1 || p.WScale < -1 {
				t.Fatalf("window scale %d", p.WScale)
			}
		case header.ProtoUDP:
			if p.Frag == FragFirst {
				// The UDP length is the datagram's: more than this fragment holds.
				ipEnd := int(binary.BigEndian.Uint16(b[2:])) // IPv4 total length
				if b[0]>>4 == 6 {
					ipEnd = header.IPv6Len + int(binary.BigEndian.Uint16(b[4:]))
				}
				if int(p.Payload)+header.UDPLen <= ipEnd-l4 {
					t.Fatalf("first fragment: UDP payload %d fits in its %d bytes", p.Payload, ipEnd-l4)
				}
			} else if int(p.Payload)+header.UDPLen+l4 > len(b) {
				t.Fatalf("UDP payload %d at %d past the end (len %d)", p.Payload, l4, len(b))
			}
		case header.ProtoICMP, header.ProtoICMPv6:
		default:
			t.Fatalf("accepted protocol %d", p.Key.Proto)
		}
	})
}

func fzParseSeeds() [][]byte {
	var out [][]byte
	for _, ends := range [][2]netip.Addr{{client, server}, {client6, server6}} {
		src, dst := ends[0], ends[1]
		icmp, echo := header.ProtoICMP, header.ICMPv4EchoRequest
		errType := header.ICMPv4DestUnreachable
		if src.Is6() && !src.Is4In6() {
			icmp, echo, errType = header.ProtoICMPv6, header.ICMPv6EchoRequest, header.ICMPv6DestUnreachable
		}
		tcp := headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 80, Flags: SYN,
			Seq: 1, MSS: 1460, SACKPerm: true, HasWScale: true, WScale: 7}
		quoted := headertest.Build(tcp)
		data := tcp
		data.Flags, data.MSS, data.SACKPerm, data.HasWScale, data.Payload = ACK|PSH, 0, false, false, []byte("hello")
		out = append(out,
			headertest.Build(tcp),
			headertest.Build(data),
			headertest.Build(headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoUDP, SrcPort: 53, DstPort: 53, Payload: []byte("q")}),
			headertest.Build(headertest.Spec{Src: src, Dst: dst, Proto: icmp, ICMPType: echo, Ident: 7}),
			headertest.Build(headertest.Spec{Src: dst, Dst: src, Proto: icmp, ICMPType: errType, Quote: quoted[:min(len(quoted), 68)]}),
		)
	}
	frag := headertest.Build(headertest.Spec{Src: client, Dst: server, Proto: header.ProtoUDP, SrcPort: 1, DstPort: 2})
	frag[6] |= 0x20 // more fragments
	return append(out, frag, nil, []byte{0x45}, []byte{0x60, 0, 0, 0})
}
