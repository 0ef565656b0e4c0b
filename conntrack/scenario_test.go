package conntrack

import (
	"testing"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// step is one packet of a scenario and what must come of it.
type step struct {
	name   string
	p      Packet
	act    Action
	state  State       // state after (StateNone: the packet has no flow)
	reason drop.Reason // for drops
}

func (h *harness) run(natPort uint16, steps []step) {
	h.t.Helper()
	for _, st := range steps {
		v := h.send(st.p, natPort)
		if v.Action != st.act || v.Reason != st.reason || (st.state != StateNone && v.State != st.state) {
			h.t.Fatalf("%s: got %v state %v reason %v; want %v state %v reason %v",
				st.name, v.Action, v.State, v.Reason, st.act, st.state, st.reason)
		}
	}
}

// handshake and close of one connection, returning the ISN-relative steps.
func fullLife(c *conn) []step {
	ci, si := c.cisn, c.sisn
	return []step{
		{"SYN", c.out(SYN, ci, 0, 0), Forward, TCPSynSent, 0},
		{"SYN-ACK", c.in(SYNACK, si, ci+1, 0), Forward, TCPSynRecv, 0},
		{"ACK", c.out(ACK, ci+1, si+1, 0), Forward, TCPEstablished, 0},
		{"request", c.out(ACK|PSH, ci+1, si+1, 100), Forward, TCPEstablished, 0},
		{"response", c.in(ACK|PSH, si+1, ci+101, 1000), Forward, TCPEstablished, 0},
		{"server FIN", c.in(FINACK, si+1001, ci+101, 0), Forward, TCPFinWait, 0},
		{"client ACKs FIN", c.out(ACK, ci+101, si+1002, 0), Forward, TCPCloseWait, 0},
		{"client FIN", c.out(FINACK, ci+101, si+1002, 0), Forward, TCPLastAck, 0},
		{"server ACKs FIN", c.in(ACK, si+1002, ci+102, 0), Forward, TCPTimeWait, 0},
	}
}

// The NSX-T incident (../shared/README.md section 1): under SNAT port reuse,
// a delayed FIN of the old connection and the new connection's SYN-ACK must
// not meet a state that drops the SYN-ACK.
func TestNSXSequence(t *testing.T) { forEachFamily(t, testNSXSequence) }

func testNSXSequence(t *testing.T, fam family) {
	t.Run("delayed FIN while the old entry is in TIME_WAIT", func(t *testing.T) {
		h := newFamilyHarness(t, Policy{Profiles: []Profile{NSXGatewayProfile}}, fam)
		old := h.conn(40000, 1025, 1000, 5000)
		h.run(old.sport, fullLife(old))
		h.clk.Advance(Second)
		nu := h.conn(40000, 1025, 900000, 7000000)
		h.run(nu.sport, []step{
			// The backend re-sends the old connection's FIN: in TIME_WAIT it
			// is a retransmission and changes nothing.
			{"delayed FIN (old)", old.in(FINACK, old.sisn+1001, old.cisn+101, 0), Forward, TCPTimeWait, 0},
			{"new SYN", nu.out(SYN, nu.cisn, 0, 0), Reopened, TCPSynSent, 0},
			{"delayed FIN again, now stale", old.in(FINACK, old.sisn+1001, old.cisn+101, 0), Drop, TCPSynSent, drop.StaleIncarnation},
			{"SYN-ACK of the new connection", nu.in(SYNACK, nu.sisn, nu.cisn+1, 0), Forward, TCPSynRecv, 0},
			{"ACK", nu.out(ACK, nu.cisn+1, nu.sisn+1, 0), Forward, TCPEstablished, 0},
			{"old ACK", old.out(ACK, old.cisn+102, old.sisn+1002, 0), Drop, TCPEstablished, drop.OutOfWindow},
		})
		ex := h.explain(nu.out(SYN, 0, 0, 0).Key)
		if ex.Current == nil || ex.Current.Gen != 1 || ex.Current.ISN != [2]uint32{nu.cisn, nu.sisn} {
			t.Fatalf("current incarnation: %+v", ex.Current)
		}
		if len(ex.History) != 1 || ex.History[0].Gen != 0 || ex.History[0].Reason != CloseSuperseded ||
			ex.History[0].ISN != [2]uint32{old.cisn, old.sisn} || ex.History[0].State != TCPTimeWait {
			t.Fatalf("history: %+v", ex.History)
		}
	})
	t.Run("delayed FIN after the old entry expired creates nothing", func(t *testing.T) {
		h := newFamilyHarness(t, Policy{Profiles: []Profile{NSXGatewayProfile}}, fam)
		old := h.conn(40000, 1025, 1000, 5000)
		h.run(old.sport, fullLife(old))
		h.clk.Advance(NSXGatewayProfile.TimeWait + Second)
		nu := h.conn(40000, 1025, 900000, 7000000)
		h.run(nu.sport, []step{
			{"delayed FIN (old)", old.in(FINACK, old.sisn+1001, old.cisn+101, 0), Drop, StateNone, drop.NoState},
		})
		if h.tb.Len() != 0 {
			t.Fatalf("a FIN without state created an entry: %d flows", h.tb.Len())
		}
		h.run(nu.sport, []step{
			{"new SYN", nu.out(SYN, nu.cisn, 0, 0), Forward, TCPSynSent, 0},
			{"SYN-ACK", nu.in(SYNACK, nu.sisn, nu.cisn+1, 0), Forward, TCPSynRecv, 0},
			{"ACK", nu.out(ACK, nu.cisn+1, nu.sisn+1, 0), Forward, TCPEstablished, 0},
		})
	})
	t.Run("the new SYN-ACK answers our SYN even if the old flow never closed on our side", func(t *testing.T) {
		h := newFamilyHarness(t, Policy{}, fam)
		old := h.conn(40000, 1025, 1000, 5000)
		h.run(old.sport, fullLife(old)[:5]) // ESTABLISHED, FINs lost
		nu := h.conn(40000, 1025, 900000, 7000000)
		h.run(nu.sport, []step{
			{"new SYN on ESTABLISHED: noted", nu.out(SYN, nu.cisn, 0, 0), Forward, TCPEstablished, 0},
			{"its SYN-ACK", nu.in(SYNACK, nu.sisn, nu.cisn+1, 0), Reopened, TCPSynRecv, 0},
			{"ACK", nu.out(ACK, nu.cisn+1, nu.sisn+1, 0), Forward, TCPEstablished, 0},
		})
		if got := h.tb.Stats().Counters[CtrSYNOnOpen]; got != 1 {
			t.Fatalf("syn_on_open = %d", got)
		}
	})
}

func TestStaleSynAckThenRightOne(t *testing.T) { forEachFamily(t, testStaleSynAckThenRightOne) }

func testStaleSynAckThenRightOne(t *testing.T, fam family) {
	h := newFamilyHarness(t, Policy{}, fam)
	c := h.conn(40001, 2000, 1000, 5000)
	h.run(c.sport, []step{
		{"SYN", c.out(SYN, c.cisn, 0, 0), Forward, TCPSynSent, 0},
		{"stale SYN-ACK", c.in(SYNACK, 123456, 777, 0), Drop, TCPSynSent, drop.SynAckBadAck},
		{"right SYN-ACK", c.in(SYNACK, c.sisn, c.cisn+1, 0), Forward, TCPSynRecv, 0},
		{"ACK", c.out(ACK, c.cisn+1, c.sisn+1, 0), Forward, TCPEstablished, 0},
	})
	if n := h.tb.Stats().Drops[drop.SynAckBadAck]; n != 1 {
		t.Fatalf("synack_bad_ack = %d", n)
	}
}

// A client that lost its connection reuses the port; the server still holds
// the old connection and answers the SYN with a challenge ACK (RFC 5961 4),
// the client resets it, then retransmits its SYN.
func TestSynChallengeAckRstSyn(t *testing.T) { forEachFamily(t, testSynChallengeAckRstSyn) }

func testSynChallengeAckRstSyn(t *testing.T, fam family) {
	for _, tc := range []struct {
		name  string
		steps int // how much of the old connection's life to play
	}{
		{"old entry ESTABLISHED", 5},
		{"old entry CLOSE_WAIT", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFamilyHarness(t, Policy{}, fam)
			old := h.conn(40002, 3000, 1000, 5000)
			life := fullLife(old)
			h.run(old.sport, life[:tc.steps])
			nu := h.conn(40002, 3000, 800000, 9000000)
			// The server's view of the old connection: it expects client
			// seq ci+101 and sends seq si+1001 (+1 after its FIN).
			srvSeq := old.sisn + 1001
			if tc.steps > 5 {
				srvSeq++
			}
			cliNext := old.cisn + 101
			steps := []step{
				{"new SYN", nu.out(SYN, nu.cisn, 0, 0), 0, 0, 0},
				{"challenge ACK", old.in(ACK, srvSeq, cliNext, 0), Forward, 0, 0},
				{"client RST to it", nu.out(RST, cliNext, 0, 0), Forward, 0, 0},
				{"SYN retransmitted", nu.out(SYN, nu.cisn, 0, 0), 0, TCPSynSent, 0},
				{"SYN-ACK", nu.in(SYNACK, nu.sisn, nu.cisn+1, 0), 0, TCPSynRecv, 0},
				{"ACK", nu.out(ACK, nu.cisn+1, nu.sisn+1, 0), Forward, TCPEstablished, 0},
			}
			if tc.steps == 5 { // noted on ESTABLISHED; the exact RST closes the old one
				steps[0].act, steps[0].state = Forward, TCPEstablished
				steps[1].state = TCPEstablished
				steps[2].state = TCPClose
				steps[3].act = Reopened
				steps[4].act = Forward
			} else { // closing: the SYN starts the new incarnation at once
				steps[0].act, steps[0].state = Reopened, TCPSynSent
				steps[1].state = TCPSynSent
				steps[2].state = TCPSynSent
				steps[3].act = Forward
				steps[4].act = Forward
			}
			h.run(nu.sport, steps)
		})
	}
}

func TestInexactRSTsAreCountedNotObeyed(t *testing.T) {
	forEachFamily(t, testInexactRSTsAreCountedNotObeyed)
}

func testInexactRSTsAreCountedNotObeyed(t *testing.T, fam family) {
	h := newFamilyHarness(t, Policy{}, fam)
	c := h.conn(40003, 4000, 1000, 5000)
	h.run(c.sport, fullLife(c)[:5])
	h.run(c.sport, []step{
		{"RST inside the window, seq+10", c.in(RST, c.sisn+1001+10, 0, 0), Forward, TCPEstablished, 0},
		{"RST+ACK inside the window, seq+1000", c.out(RSTACK, c.cisn+101+1000, c.sisn+1001, 0), Forward, TCPEstablished, 0},
		{"RST outside the window", c.in(RST, c.sisn+1001+1<<30, 0, 0), Drop, TCPEstablished, drop.RSTOutOfWindow},
		{"data still flows", c.out(ACK|PSH, c.cisn+101, c.sisn+1001, 10), Forward, TCPEstablished, 0},
		{"exact RST closes", c.in(RST, c.sisn+1001, 0, 0), Forward, TCPClose, 0},
	})
	st := h.tb.Stats()
	if st.Counters[CtrRSTInexact] != 2 || st.Drops[drop.RSTOutOfWindow] != 1 {
		t.Fatalf("rst_inexact=%d rst_out_of_window=%d", st.Counters[CtrRSTInexact], st.Drops[drop.RSTOutOfWindow])
	}
}

func TestSimultaneousOpen(t *testing.T) { forEachFamily(t, testSimultaneousOpen) }

func testSimultaneousOpen(t *testing.T, fam family) {
	h := newFamilyHarness(t, Policy{}, fam)
	c := h.conn(40004, 5000, 1000, 5000)
	h.run(c.sport, []step{
		{"SYN out", c.out(SYN, c.cisn, 0, 0), Forward, TCPSynSent, 0},
		{"SYN in", c.in(SYN, c.sisn, 0, 0), Forward, TCPSynSent2, 0},
		{"SYN-ACK out", c.out(SYNACK, c.cisn, c.sisn+1, 0), Forward, TCPSynRecv, 0},
		{"SYN-ACK in", c.in(SYNACK, c.sisn, c.cisn+1, 0), Forward, TCPSynRecv, 0},
		{"ACK in", c.in(ACK, c.sisn+1, c.cisn+1, 0), Forward, TCPEstablished, 0},
		{"ACK out", c.out(ACK, c.cisn+1, c.sisn+1, 0), Forward, TCPEstablished, 0},
	})
}

func TestOnlySYNCreatesTCPState(t *testing.T) { forEachFamily(t, testOnlySYNCreatesTCPState) }

func testOnlySYNCreatesTCPState(t *testing.T, fam family) {
	h := newFamilyHarness(t, Policy{}, fam)
	c := h.conn(40005, 6000, 1000, 5000)
	for _, p := range []Packet{c.out(FINACK, 1, 1, 0), c.out(RST, 1, 0, 0), c.out(ACK, 1, 1, 0),
		c.out(SYNACK, 1, 1, 0), c.in(FINACK, 1, 1, 0), c.in(SYNACK, 1, 1, 0)} {
		if v := h.send(p, c.sport); v.Action != Drop || v.Reason != drop.NoState {
			t.Fatalf("flags %#x: %+v", p.Flags, v)
		}
	}
	if h.tb.Len() != 0 || h.tb.Stats().Drops[drop.NoState] != 6 {
		t.Fatalf("len %d no_state %d", h.tb.Len(), h.tb.Stats().Drops[drop.NoState])
	}
	// With the explicit pick-up policy an ACK may open a (liberal) flow.
	h2 := newFamilyHarness(t, Policy{PickUp: true}, fam)
	if v := h2.send(c.out(ACK, 1, 1, 0), c.sport); v.Action != Forward || v.State != TCPEstablished {
		t.Fatalf("pickup: %+v", v)
	}
}

func TestUDPLifetime(t *testing.T) { forEachFamily(t, testUDPLifetime) }

func testUDPLifetime(t *testing.T, fam family) {
	h := newFamilyHarness(t, Policy{}, fam)
	out := pkt(t, headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoUDP, SrcPort: 5353, DstPort: 53, Payload: []byte("q")})
	in := pkt(t, headertest.Spec{Src: fam.server, Dst: fam.snat, Proto: header.ProtoUDP, SrcPort: 53, DstPort: 1053, Payload: []byte("a")})
	h.run(1053, []step{
		{"first", out, Forward, UDPFirst, 0},
		{"second", out, Forward, UDPSingle, 0},
		{"reply", in, Forward, UDPMultiple, 0},
	})
	h.clk.Advance(DefaultProfile.UDPMultiple - Second)
	h.run(1053, []step{{"still there just before the timeout", in, Forward, UDPMultiple, 0}})
	h.clk.Advance(DefaultProfile.UDPMultiple)
	if st := h.state(in.Key); st != StateNone {
		t.Fatalf("expired flow still found in %v", st)
	}
	if h.tb.Len() != 0 {
		t.Fatalf("expired flow not released")
	}
	// After expiry the reply is a packet without state: a new flow of its
	// own, subject to policy (Open), not part of the old one.
	if v := h.s.Track(&in, h.clk.now); v.Action != Open {
		t.Fatalf("reply after expiry: %+v", v)
	}
}

func TestICMPEchoLifetimeAndRelatedErrors(t *testing.T) {
	forEachFamily(t, testICMPEchoLifetimeAndRelatedErrors)
}

func testICMPEchoLifetimeAndRelatedErrors(t *testing.T, fam family) {
	h := newFamilyHarness(t, Policy{}, fam)
	req := pkt(t, headertest.Spec{Src: fam.client, Dst: fam.server, Proto: fam.icmp, ICMPType: fam.echoRequest, Ident: 77})
	rep := pkt(t, headertest.Spec{Src: fam.server, Dst: fam.snat, Proto: fam.icmp, ICMPType: fam.echoReply, Ident: 1077})
	h.run(1077, []step{
		{"echo reply without state", rep, Drop, StateNone, drop.NoState},
		{"request", req, Forward, ICMPFirst, 0},
		{"reply", rep, Forward, ICMPReplied, 0},
	})
	// An ICMP error quoting the translated request maps to the flow, in the
	// reply direction, and does not refresh it.
	quoted := headertest.Build(headertest.Spec{Src: fam.snat, Dst: fam.server, Proto: fam.icmp, ICMPType: fam.echoRequest, Ident: 1077})
	errPkt := pkt(t, headertest.Spec{Src: fam.router, Dst: fam.snat, Proto: fam.icmp,
		ICMPType: fam.timeExceeded, Quote: quoted[:fam.quoteLen]})
	if errPkt.Kind != KindRelated {
		t.Fatalf("time exceeded not parsed as related: %+v", errPkt)
	}
	h.clk.Advance(DefaultProfile.ICMPReplied - Second)
	v := h.s.Track(&errPkt, h.clk.now)
	if v.Action != Forward || v.Dir != Reply {
		t.Fatalf("related error: %+v", v)
	}
	h.clk.Advance(2 * Second)
	if st := h.state(req.Key); st != StateNone {
		t.Fatalf("an ICMP error refreshed the flow (state %v)", st)
	}
	v = h.s.Track(&errPkt, h.clk.now)
	if v.Action != Drop || v.Reason != drop.ICMPNoFlow {
		t.Fatalf("error without flow: %+v", v)
	}
}

// NSX compatibility mode (off by default) reproduces the NSX-T gateway
// firewall: a stray FIN creates a CLOSING entry, a SYN on it passes without
// a new incarnation, and the SYN-ACK is dropped with nsx_synack_on_closing.
func TestNSXCompatibilityMode(t *testing.T) { forEachFamily(t, testNSXCompatibilityMode) }

func testNSXCompatibilityMode(t *testing.T, fam family) {
	h := newFamilyHarness(t, Policy{NSXCompat: true}, fam)
	c := h.conn(40100, 40100, 900000, 7000000)
	// Untranslated flow: use the reverse of the client's tuple for the server side.
	fin := c.out(FINACK, 5, 6, 0)
	fin.Key = fin.Key.Reverse() // the server's delayed FIN, server -> client
	if v := h.s.Track(&fin, h.clk.now); v.Action != Open {
		t.Fatalf("stray FIN in NSX mode: %+v", v)
	}
	if v := h.s.Create(&fin, NewFlow{}, h.clk.now); v.State != TCPFinWait {
		t.Fatalf("stray FIN entry: %+v", v)
	}
	syn := c.out(SYN, c.cisn, 0, 0)
	if v := h.s.Track(&syn, h.clk.now); v.Action != Forward || v.State != TCPFinWait {
		t.Fatalf("SYN on the CLOSING entry: %+v", v)
	}
	synack := c.out(SYNACK, c.sisn, c.cisn+1, 0)
	synack.Key = syn.Key.Reverse()
	if v := h.s.Track(&synack, h.clk.now); v.Action != Drop || v.Reason != drop.NSXSynAckOnClosing {
		t.Fatalf("SYN-ACK on the CLOSING entry: %+v", v)
	}
	// The same FIN in edge's own mode creates nothing.
	h2 := newFamilyHarness(t, Policy{}, fam)
	if v := h2.s.Track(&fin, h2.clk.now); v.Action != Drop || v.Reason != drop.NoState {
		t.Fatalf("stray FIN in default mode: %+v", v)
	}
}
