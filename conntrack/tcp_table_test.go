package conntrack

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// Transition-table tests of the TCP tracker.
//
// Every row starts from a fresh harness, drives a real packet sequence to
// its start state (ttSetups), sends one segment and checks the verdict, the
// state after, the drop reason or counter, and that nothing else changed.
// The expected values come from the behaviour requirements (N1-N3, T1, S2 in
// ../shared/README.md section 2 and the TCP rules of the test brief), not
// from the code: a row that fails is a disagreement to look at.
//
// Sequence and acknowledgement numbers in rows and setups are offsets from
// the connection's base ISNs: seq from the sender's, ack from the receiver's
// (ttNewISN is the offset of a second incarnation's ISNs). The table runs
// once with small ISNs and once with ISNs that wrap 2^32 within a few bytes,
// each over IPv4 and over IPv6.

// ttStart names a start state and the packet sequence that reaches it.
type ttStart uint8

const (
	ttNone               ttStart = iota // no entry
	ttSynSent                           // O SYN
	ttSynSent2                          // O SYN, R SYN (simultaneous open)
	ttSynRecv                           // O SYN, R SYN-ACK
	ttEstablished                       // handshake done
	ttFinWait                           // ESTABLISHED, O FIN
	ttCloseWait                         // FIN_WAIT, R ACKs it
	ttLastAck                           // CLOSE_WAIT, R FIN
	ttTimeWait                          // LAST_ACK, O ACKs it
	ttClose                             // ESTABLISHED, O exact RST
	ttEstPending                        // ESTABLISHED, O SYN with a new ISN (noted)
	ttSynSentGen1                       // TIME_WAIT, O SYN with a new ISN: generation 1 in SYN_SENT
	ttSynRecvGen1                       // ttSynSentGen1, R SYN-ACK answering it
	ttEstAfterInexactRST                // ESTABLISHED, O RST in window with an inexact seq
	ttSynSentData                       // O SYN carrying 100 bytes (TCP Fast Open, RFC 7413)
	ttPendFinWait                       // ttEstPending, then the old connection's O FIN
	ttPendFinWaitRep                    // ttEstPending, then the old connection's R FIN
	ttPendCloseWait                     // ttPendFinWait, R ACKs the FIN
	ttPendLastAck                       // ttPendCloseWait, R FIN
	ttPendTimeWait                      // ttPendLastAck, O ACKs it
	ttPendClose                         // ttEstPending, then R's exact RST closes the old connection
	ttSynSentChallenged                 // SYN_SENT, R pure ACK of an old connection (challenge ACK, ack +500)
	ttPickupEst                         // Policy.PickUp: O bare ACK picked up (ESTABLISHED, liberal)
	ttPickupFinWait                     // ttPickupEst, O FIN
	ttNumStarts
)

var ttStartNames = [ttNumStarts]string{
	"NONE", "SYN_SENT", "SYN_SENT2", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
	"TIME_WAIT", "CLOSE", "ESTABLISHED+noted_SYN", "SYN_SENT(gen1)", "SYN_RECV(gen1)", "ESTABLISHED+inexact_RST",
	"SYN_SENT(SYN+data)", "noted_SYN+FIN_WAIT", "noted_SYN+FIN_WAIT(reply_FIN)", "noted_SYN+CLOSE_WAIT",
	"noted_SYN+LAST_ACK", "noted_SYN+TIME_WAIT", "noted_SYN+CLOSE(RST)", "SYN_SENT+challenge_ACK", "ESTABLISHED(picked_up)",
	"FIN_WAIT(picked_up)",
}

func (s ttStart) String() string { return ttStartNames[s] }

// ttNewISN is the ISN offset of a new incarnation (or a SYN with a new ISN).
const ttNewISN = 1 << 30

// ttStep is one packet of a setup sequence.
type ttStep struct {
	dir      Dir
	flags    uint8
	seq, ack int64
	payload  int
	state    State // state it must leave the flow in
}

var ttHandshake = []ttStep{
	{Original, SYN, 0, 0, 0, TCPSynSent},
	{Reply, SYNACK, 0, 1, 0, TCPSynRecv},
	{Original, ACK, 1, 1, 0, TCPEstablished},
}

func ttCat(parts ...[]ttStep) []ttStep {
	var out []ttStep
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var (
	ttToFinWait   = ttCat(ttHandshake, []ttStep{{Original, FINACK, 1, 1, 0, TCPFinWait}})
	ttToCloseWait = ttCat(ttToFinWait, []ttStep{{Reply, ACK, 1, 2, 0, TCPCloseWait}})
	ttToLastAck   = ttCat(ttToCloseWait, []ttStep{{Reply, FINACK, 1, 2, 0, TCPLastAck}})
	ttToTimeWait  = ttCat(ttToLastAck, []ttStep{{Original, ACK, 2, 2, 0, TCPTimeWait}})
	ttToSynSentG1 = ttCat(ttToTimeWait, []ttStep{{Original, SYN, ttNewISN, 0, 0, TCPSynSent}})

	// The incident: a SYN with a new ISN is noted on an ESTABLISHED flow,
	// then the old connection closes before the SYN-ACK comes back.
	ttToEstPending    = ttCat(ttHandshake, []ttStep{{Original, SYN, ttNewISN, 0, 0, TCPEstablished}})
	ttToPendFinWait   = ttCat(ttToEstPending, []ttStep{{Original, FINACK, 1, 1, 0, TCPFinWait}})
	ttToPendCloseWait = ttCat(ttToPendFinWait, []ttStep{{Reply, ACK, 1, 2, 0, TCPCloseWait}})
	ttToPendLastAck   = ttCat(ttToPendCloseWait, []ttStep{{Reply, FINACK, 1, 2, 0, TCPLastAck}})
)

var ttSetups = [ttNumStarts][]ttStep{
	ttNone:        nil,
	ttSynSent:     ttHandshake[:1],
	ttSynSent2:    {ttHandshake[0], {Reply, SYN, 0, 0, 0, TCPSynSent2}},
	ttSynRecv:     ttHandshake[:2],
	ttEstablished: ttHandshake,
	ttFinWait:     ttToFinWait,
	ttCloseWait:   ttToCloseWait,
	ttLastAck:     ttToLastAck,
	ttTimeWait:    ttToTimeWait,
	ttClose:       ttCat(ttHandshake, []ttStep{{Original, RST, 1, 0, 0, TCPClose}}),
	ttEstPending:  ttToEstPending,
	ttSynSentGen1: ttToSynSentG1,
	ttSynRecvGen1: ttCat(ttToSynSentG1, []ttStep{{Reply, SYNACK, ttNewISN, ttNewISN + 1, 0, TCPSynRecv}}),
	ttEstAfterInexactRST: ttCat(ttHandshake,
		[]ttStep{{Original, RST, 1 + 1000, 0, 0, TCPEstablished}}),
	ttSynSentData: {{Original, SYN, 0, 0, 100, TCPSynSent}},

	ttPendFinWait:    ttToPendFinWait,
	ttPendFinWaitRep: ttCat(ttToEstPending, []ttStep{{Reply, FINACK, 1, 1, 0, TCPFinWait}}),
	ttPendCloseWait:  ttToPendCloseWait,
	ttPendLastAck:    ttToPendLastAck,
	ttPendTimeWait:   ttCat(ttToPendLastAck, []ttStep{{Original, ACK, 2, 2, 0, TCPTimeWait}}),
	ttPendClose:      ttCat(ttToEstPending, []ttStep{{Reply, RST, 1, 0, 0, TCPClose}}),

	ttSynSentChallenged: {ttHandshake[0], {Reply, ACK, 1000, 500, 0, TCPSynSent}},
	ttPickupEst:         {{Original, ACK, 1, 1, 0, TCPEstablished}},
	ttPickupFinWait:     {{Original, ACK, 1, 1, 0, TCPEstablished}, {Original, FINACK, 1, 1, 0, TCPFinWait}},
}

// ttPacket builds the segment of c in direction d with ISN-relative numbers.
// Without ACK the acknowledgement field is 0, as stacks send it.
func ttPacket(c *conn, d Dir, flags uint8, seq, ack int64, payload int) Packet {
	si, ri := c.cisn, c.sisn
	if d == Reply {
		si, ri = ri, si
	}
	s, a := uint32(int64(si)+seq), uint32(int64(ri)+ack)
	if flags&ACK == 0 {
		a = 0
	}
	if d == Original {
		return c.out(flags, s, a, payload)
	}
	return c.in(flags, s, a, payload)
}

// ttSetup drives h to start state st, failing the test if any packet of the
// sequence does not pass as it should.
func ttSetup(t *testing.T, h *harness, c *conn, st ttStart) {
	t.Helper()
	for i, s := range ttSetups[st] {
		v := h.send(ttPacket(c, s.dir, s.flags, s.seq, s.ack, s.payload), c.sport)
		if v.Action == Drop || v.Action == Open || v.State != s.state {
			t.Fatalf("setup of %v, step %d (%v flags %#x seq %+d ack %+d): got %v %v (%v), want state %v",
				st, i, s.dir, s.flags, s.seq, s.ack, v.Action, v.State, v.Reason, s.state)
		}
	}
}

// ttRow is one transition: from a start state, one segment, and what must
// come of it.
type ttRow struct {
	from     ttStart
	dir      Dir
	name     string
	flags    uint8
	seq, ack int64 // relative to the sender's / receiver's base ISN
	payload  int
	liberal  bool // Policy.Liberal (for the setup too)
	pickup   bool // Policy.PickUp

	act    Action
	state  State       // after; for Open from the original side, after Create; StateNone = no entry
	reason drop.Reason // for Drop
	alt    drop.Reason // another reason accepted where the rules do not name one (None: no alternative)
	ctr    Counter     // counter incremented by exactly one (CtrCreated: none in particular)
}

func ttRows() []ttRow {
	const (
		O, R = Original, Reply
		N    = ttNewISN
	)
	return []ttRow{
		// N1: only a SYN creates state.
		{from: ttNone, dir: O, name: "SYN opens", flags: SYN, act: Open, state: TCPSynSent},
		{from: ttNone, dir: O, name: "bare ACK", flags: ACK, seq: 1, ack: 1, act: Drop, reason: drop.NoState},
		{from: ttNone, dir: O, name: "data", flags: ACK | PSH, seq: 1, ack: 1, payload: 100, act: Drop, reason: drop.NoState},
		{from: ttNone, dir: O, name: "FIN", flags: FINACK, seq: 1, ack: 1, act: Drop, reason: drop.NoState},
		{from: ttNone, dir: O, name: "RST", flags: RST, seq: 1, act: Drop, reason: drop.NoState},
		{from: ttNone, dir: O, name: "RST+ACK", flags: RSTACK, seq: 1, ack: 1, act: Drop, reason: drop.NoState},
		{from: ttNone, dir: O, name: "SYN-ACK", flags: SYNACK, ack: 1, act: Drop, reason: drop.NoState},
		{from: ttNone, dir: R, name: "SYN-ACK", flags: SYNACK, ack: 1, act: Drop, reason: drop.NoState},
		{from: ttNone, dir: R, name: "bare ACK", flags: ACK, seq: 1, ack: 1, act: Drop, reason: drop.NoState},
		{from: ttNone, dir: R, name: "data", flags: ACK | PSH, seq: 1, ack: 1, payload: 100, act: Drop, reason: drop.NoState},
		{from: ttNone, dir: R, name: "FIN", flags: FINACK, seq: 1, ack: 1, act: Drop, reason: drop.NoState},
		{from: ttNone, dir: R, name: "RST", flags: RST, seq: 1, act: Drop, reason: drop.NoState},
		{from: ttNone, dir: O, name: "pickup: SYN opens", flags: SYN, pickup: true, act: Open, state: TCPSynSent},
		{from: ttNone, dir: O, name: "pickup: bare ACK opens ESTABLISHED", flags: ACK, seq: 1, ack: 1, pickup: true, act: Open, state: TCPEstablished},
		{from: ttNone, dir: O, name: "pickup: FIN", flags: FINACK, seq: 1, ack: 1, pickup: true, act: Drop, reason: drop.NoState},
		{from: ttNone, dir: O, name: "pickup: RST", flags: RST, seq: 1, pickup: true, act: Drop, reason: drop.NoState},
		{from: ttNone, dir: O, name: "pickup: SYN-ACK opens ESTABLISHED (liberal)", flags: SYNACK, ack: 1, pickup: true, act: Open, state: TCPEstablished},
		{from: ttNone, dir: R, name: "pickup: SYN-ACK", flags: SYNACK, ack: 1, pickup: true, act: Open, state: StateNone},
		{from: ttNone, dir: R, name: "pickup: RST", flags: RSTACK, seq: 1, ack: 1, pickup: true, act: Drop, reason: drop.NoState},

		// SYN_SENT.
		{from: ttSynSent, dir: O, name: "SYN retransmitted", flags: SYN, act: Forward, state: TCPSynSent},
		{from: ttSynSent, dir: O, name: "SYN with a new ISN", flags: SYN, seq: N, act: Forward, state: TCPSynSent, ctr: CtrSYNNewISN},
		{from: ttSynSent, dir: O, name: "SYN-ACK from the originator", flags: SYNACK, ack: 1, act: Drop, reason: drop.InvalidState, alt: drop.SynAckBadAck},
		{from: ttSynSent, dir: O, name: "ACK before any SYN-ACK", flags: ACK, seq: 1, ack: 1, act: Drop, reason: drop.InvalidState, alt: drop.OutOfWindow},
		{from: ttSynSent, dir: O, name: "data before any SYN-ACK", flags: ACK | PSH, seq: 1, ack: 1, payload: 100, act: Drop, reason: drop.InvalidState, alt: drop.OutOfWindow},
		{from: ttSynSent, dir: O, name: "FIN before any SYN-ACK", flags: FINACK, seq: 1, ack: 1, act: Drop, reason: drop.InvalidState, alt: drop.OutOfWindow},
		{from: ttSynSent, dir: O, name: "RST exact", flags: RST, seq: 1, act: Forward, state: TCPClose},
		{from: ttSynSent, dir: O, name: "RST out of window", flags: RST, seq: 1 + 100000, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttSynSent, dir: R, name: "SYN (simultaneous open)", flags: SYN, act: Forward, state: TCPSynSent2},
		{from: ttSynSent, dir: R, name: "SYN-ACK acking ISN+1", flags: SYNACK, ack: 1, act: Forward, state: TCPSynRecv},
		{from: ttSynSent, dir: R, name: "SYN-ACK with a new server ISN acking ISN+1", flags: SYNACK, seq: N, ack: 1, act: Forward, state: TCPSynRecv},
		{from: ttSynSent, dir: R, name: "SYN-ACK acking ISN", flags: SYNACK, ack: 0, act: Drop, reason: drop.SynAckBadAck},
		{from: ttSynSent, dir: R, name: "SYN-ACK acking ISN+2", flags: SYNACK, ack: 2, act: Drop, reason: drop.SynAckBadAck},
		{from: ttSynSent, dir: R, name: "SYN-ACK acking far away", flags: SYNACK, ack: 100000, act: Drop, reason: drop.SynAckBadAck},
		{from: ttSynSent, dir: R, name: "pure ACK (RFC 5961 challenge ACK)", flags: ACK, seq: 1, ack: 1, act: Forward, state: TCPSynSent, ctr: CtrChallengeACK},
		{from: ttSynSent, dir: R, name: "data", flags: ACK | PSH, seq: 1, ack: 1, payload: 100, act: Drop, reason: drop.InvalidState},
		{from: ttSynSent, dir: R, name: "FIN", flags: FINACK, seq: 1, ack: 1, act: Drop, reason: drop.InvalidState},
		{from: ttSynSent, dir: R, name: "RST without ACK", flags: RST, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttSynSent, dir: R, name: "RST+ACK acking ISN+1", flags: RSTACK, ack: 1, act: Forward, state: TCPClose},
		{from: ttSynSent, dir: R, name: "RST+ACK acking ISN", flags: RSTACK, ack: 0, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttSynSent, dir: R, name: "RST+ACK acking ISN+2", flags: RSTACK, ack: 2, act: Drop, reason: drop.RSTOutOfWindow},

		// A flow picked up mid-stream knows no windows: it is tracked
		// liberally for its life, on the fast path too; and once closing it
		// cannot judge a handshake, so a SYN-ACK releases it (the NSX
		// orphan) and is looked at as a packet without state.
		{from: ttPickupEst, dir: O, name: "pickup: data far beyond any window", flags: ACK | PSH, seq: 1 + 1<<20, ack: 1, payload: 100, pickup: true, act: Forward, state: TCPEstablished},
		{from: ttPickupEst, dir: R, name: "pickup: data far beyond any window", flags: ACK | PSH, seq: 1 + 1<<20, ack: 1, payload: 100, pickup: true, act: Forward, state: TCPEstablished},
		{from: ttPickupFinWait, dir: R, name: "pickup: SYN-ACK releases the orphan", flags: SYNACK, seq: N, ack: N + 1, pickup: true, act: Open, state: StateNone, ctr: CtrReplaced},

		// SYN_SENT after one challenge ACK (RFC 5961 4): the client's RST
		// of the old connection, at that ACK's ack, passes; nothing else
		// from the server but the SYN-ACK does.
		{from: ttSynSentChallenged, dir: R, name: "a second pure ACK", flags: ACK, seq: 1000, ack: 500, act: Drop, reason: drop.InvalidState},
		{from: ttSynSentChallenged, dir: O, name: "RST at the challenge ACK's ack", flags: RST, seq: 500, act: Forward, state: TCPSynSent, ctr: CtrRSTToChallenge},
		{from: ttSynSentChallenged, dir: O, name: "RST elsewhere", flags: RST, seq: 700, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttSynSentChallenged, dir: O, name: "SYN retransmitted", flags: SYN, act: Forward, state: TCPSynSent},
		{from: ttSynSentChallenged, dir: R, name: "SYN-ACK acking ISN+1", flags: SYNACK, ack: 1, act: Forward, state: TCPSynRecv},

		// SYN_SENT after a SYN with data (TCP Fast Open): a server that
		// does not take the data acknowledges the SYN only (RFC 7413 4.2).
		{from: ttSynSentData, dir: R, name: "SYN-ACK acking ISN+1 (data not accepted)", flags: SYNACK, ack: 1, act: Forward, state: TCPSynRecv},
		{from: ttSynSentData, dir: R, name: "SYN-ACK acking SYN and data", flags: SYNACK, ack: 1 + 100, act: Forward, state: TCPSynRecv},
		{from: ttSynSentData, dir: R, name: "SYN-ACK acking part of the data", flags: SYNACK, ack: 1 + 50, act: Drop, reason: drop.SynAckBadAck},
		{from: ttSynSentData, dir: R, name: "RST+ACK acking ISN+1", flags: RSTACK, ack: 1, act: Forward, state: TCPClose},

		// SYN_SENT2 (both SYNs seen).
		{from: ttSynSent2, dir: O, name: "SYN retransmitted", flags: SYN, act: Forward, state: TCPSynSent2},
		{from: ttSynSent2, dir: O, name: "SYN-ACK acking the reply SYN", flags: SYNACK, ack: 1, act: Forward, state: TCPSynRecv},
		{from: ttSynSent2, dir: O, name: "SYN-ACK with a bad ack", flags: SYNACK, ack: 2, act: Drop, reason: drop.SynAckBadAck},
		{from: ttSynSent2, dir: O, name: "ACK", flags: ACK, seq: 1, ack: 1, act: Drop, reason: drop.InvalidState},
		{from: ttSynSent2, dir: O, name: "RST exact", flags: RST, seq: 1, act: Forward, state: TCPClose},
		{from: ttSynSent2, dir: O, name: "RST out of window", flags: RST, seq: 1 + 100000, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttSynSent2, dir: R, name: "SYN retransmitted", flags: SYN, act: Forward, state: TCPSynSent2},
		{from: ttSynSent2, dir: R, name: "SYN-ACK acking ISN+1", flags: SYNACK, ack: 1, act: Forward, state: TCPSynRecv},
		{from: ttSynSent2, dir: R, name: "SYN-ACK with a bad ack", flags: SYNACK, ack: 2, act: Drop, reason: drop.SynAckBadAck},
		{from: ttSynSent2, dir: R, name: "data", flags: ACK | PSH, seq: 1, ack: 1, payload: 100, act: Drop, reason: drop.InvalidState},
		{from: ttSynSent2, dir: R, name: "RST exact", flags: RST, seq: 1, act: Forward, state: TCPClose},
		{from: ttSynSent2, dir: R, name: "RST out of window", flags: RST, seq: 1 + 100000, act: Drop, reason: drop.RSTOutOfWindow},

		// SYN_RECV.
		{from: ttSynRecv, dir: O, name: "SYN retransmitted", flags: SYN, act: Forward, state: TCPSynRecv},
		{from: ttSynRecv, dir: O, name: "SYN with a new ISN (noted)", flags: SYN, seq: N, act: Forward, state: TCPSynRecv, ctr: CtrSYNOnOpen},
		{from: ttSynRecv, dir: O, name: "SYN-ACK from the originator", flags: SYNACK, ack: 1, act: Drop, reason: drop.InvalidState, alt: drop.SynAckBadAck},
		{from: ttSynRecv, dir: O, name: "final ACK", flags: ACK, seq: 1, ack: 1, act: Forward, state: TCPEstablished},
		{from: ttSynRecv, dir: O, name: "data with the final ACK", flags: ACK | PSH, seq: 1, ack: 1, payload: 100, act: Forward, state: TCPEstablished},
		{from: ttSynRecv, dir: O, name: "FIN with the final ACK", flags: FINACK, seq: 1, ack: 1, act: Forward, state: TCPFinWait},
		{from: ttSynRecv, dir: O, name: "ACK of unsent data", flags: ACK, seq: 1, ack: 1 + 1000, act: Drop, reason: drop.OutOfWindow},
		{from: ttSynRecv, dir: O, name: "data beyond the window", flags: ACK | PSH, seq: 1 + 70000, ack: 1, payload: 100, act: Drop, reason: drop.OutOfWindow},
		{from: ttSynRecv, dir: O, name: "liberal: data beyond the window", flags: ACK | PSH, seq: 1 + 70000, ack: 1, payload: 100, liberal: true, act: Forward, state: TCPEstablished},
		{from: ttSynRecv, dir: O, name: "RST exact", flags: RST, seq: 1, act: Forward, state: TCPClose},
		{from: ttSynRecv, dir: O, name: "RST in window, inexact", flags: RST, seq: 1 + 1000, act: Forward, state: TCPSynRecv, ctr: CtrRSTInexact},
		{from: ttSynRecv, dir: O, name: "RST out of window", flags: RST, seq: 1 + 100000, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttSynRecv, dir: R, name: "SYN-ACK retransmitted", flags: SYNACK, ack: 1, act: Forward, state: TCPSynRecv},
		{from: ttSynRecv, dir: R, name: "SYN-ACK with a bad ack", flags: SYNACK, ack: 2, act: Drop, reason: drop.SynAckBadAck},
		{from: ttSynRecv, dir: R, name: "SYN", flags: SYN, act: Drop, reason: drop.InvalidState},
		{from: ttSynRecv, dir: R, name: "ACK", flags: ACK, seq: 1, ack: 1, act: Forward, state: TCPSynRecv},
		{from: ttSynRecv, dir: R, name: "data", flags: ACK | PSH, seq: 1, ack: 1, payload: 100, act: Forward, state: TCPSynRecv},
		{from: ttSynRecv, dir: R, name: "data past ISN+1 inside the originator's SYN window", flags: ACK | PSH, seq: 1 + 1000, ack: 1, payload: 100, act: Forward, state: TCPSynRecv},
		{from: ttSynRecv, dir: R, name: "data beyond the originator's SYN window", flags: ACK | PSH, seq: 1 + 70000, ack: 1, payload: 100, act: Drop, reason: drop.OutOfWindow},
		{from: ttSynRecv, dir: R, name: "ACK of unsent data", flags: ACK, seq: 1, ack: 1 + 1000, act: Drop, reason: drop.OutOfWindow},
		{from: ttSynRecv, dir: R, name: "RST exact", flags: RST, seq: 1, act: Forward, state: TCPClose},
		{from: ttSynRecv, dir: R, name: "RST in window, inexact", flags: RST, seq: 1 + 1000, act: Forward, state: TCPSynRecv, ctr: CtrRSTInexact},
		{from: ttSynRecv, dir: R, name: "RST out of window", flags: RST, seq: 1 + 100000, act: Drop, reason: drop.RSTOutOfWindow},

		// ESTABLISHED.
		{from: ttEstablished, dir: O, name: "SYN retransmitted", flags: SYN, act: Forward, state: TCPEstablished},
		{from: ttEstablished, dir: O, name: "SYN with a new ISN (noted)", flags: SYN, seq: N, act: Forward, state: TCPEstablished, ctr: CtrSYNOnOpen},
		{from: ttEstablished, dir: O, name: "SYN-ACK from the originator", flags: SYNACK, ack: 1, act: Drop, reason: drop.InvalidState, alt: drop.SynAckBadAck},
		{from: ttEstablished, dir: O, name: "ACK", flags: ACK, seq: 1, ack: 1, act: Forward, state: TCPEstablished},
		{from: ttEstablished, dir: O, name: "data", flags: ACK | PSH, seq: 1, ack: 1, payload: 1000, act: Forward, state: TCPEstablished},
		{from: ttEstablished, dir: O, name: "FIN", flags: FINACK, seq: 1, ack: 1, act: Forward, state: TCPFinWait},
		{from: ttEstablished, dir: O, name: "data with FIN", flags: FINACK | PSH, seq: 1, ack: 1, payload: 100, act: Forward, state: TCPFinWait},
		{from: ttEstablished, dir: O, name: "RST exact", flags: RST, seq: 1, act: Forward, state: TCPClose},
		{from: ttEstablished, dir: O, name: "RST+ACK exact", flags: RSTACK, seq: 1, ack: 1, act: Forward, state: TCPClose},
		{from: ttEstablished, dir: O, name: "RST in window, inexact", flags: RST, seq: 1 + 1000, act: Forward, state: TCPEstablished, ctr: CtrRSTInexact},
		{from: ttEstablished, dir: O, name: "RST+ACK in window, inexact", flags: RSTACK, seq: 1 + 1000, ack: 1, act: Forward, state: TCPEstablished, ctr: CtrRSTInexact},
		{from: ttEstablished, dir: O, name: "RST beyond the window", flags: RST, seq: 1 + 100000, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttEstablished, dir: O, name: "RST older than the window", flags: RST, seq: 1 - 100000, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttEstablished, dir: O, name: "data beyond the window", flags: ACK | PSH, seq: 1 + 70000, ack: 1, payload: 100, act: Drop, reason: drop.OutOfWindow},
		{from: ttEstablished, dir: O, name: "data older than a full window", flags: ACK | PSH, seq: 1 - 70000, ack: 1, payload: 10, act: Drop, reason: drop.OutOfWindow},
		{from: ttEstablished, dir: O, name: "ACK of unsent data", flags: ACK, seq: 1, ack: 1 + 1000, act: Drop, reason: drop.OutOfWindow},
		{from: ttEstablished, dir: O, name: "ACK older than a full window", flags: ACK, seq: 1, ack: 1 - 70000, act: Drop, reason: drop.OutOfWindow},
		{from: ttEstablished, dir: O, name: "FIN beyond the window", flags: FINACK, seq: 1 + 70000, ack: 1, act: Drop, reason: drop.OutOfWindow},
		{from: ttEstablished, dir: O, name: "liberal: data beyond the window", flags: ACK | PSH, seq: 1 + 70000, ack: 1, payload: 100, liberal: true, act: Forward, state: TCPEstablished},
		{from: ttEstablished, dir: O, name: "liberal: ACK of unsent data", flags: ACK, seq: 1, ack: 1 + 1000, liberal: true, act: Forward, state: TCPEstablished},
		{from: ttEstablished, dir: O, name: "liberal: RST out of window", flags: RST, seq: 1 + 100000, liberal: true, act: Forward, state: TCPEstablished, ctr: CtrRSTInexact},
		{from: ttEstablished, dir: R, name: "SYN", flags: SYN, act: Drop, reason: drop.InvalidState},
		{from: ttEstablished, dir: R, name: "SYN-ACK retransmitted", flags: SYNACK, ack: 1, act: Forward, state: TCPEstablished, ctr: CtrSynAckRetransmit},
		{from: ttEstablished, dir: R, name: "SYN-ACK with a bad ack", flags: SYNACK, ack: 2, act: Drop, reason: drop.SynAckBadAck},
		{from: ttEstablished, dir: R, name: "ACK", flags: ACK, seq: 1, ack: 1, act: Forward, state: TCPEstablished},
		{from: ttEstablished, dir: R, name: "data", flags: ACK | PSH, seq: 1, ack: 1, payload: 1000, act: Forward, state: TCPEstablished},
		{from: ttEstablished, dir: R, name: "FIN (reply side closes first)", flags: FINACK, seq: 1, ack: 1, act: Forward, state: TCPFinWait},
		{from: ttEstablished, dir: R, name: "RST exact", flags: RST, seq: 1, act: Forward, state: TCPClose},
		{from: ttEstablished, dir: R, name: "RST+ACK exact", flags: RSTACK, seq: 1, ack: 1, act: Forward, state: TCPClose},
		{from: ttEstablished, dir: R, name: "RST in window, inexact", flags: RST, seq: 1 + 1000, act: Forward, state: TCPEstablished, ctr: CtrRSTInexact},
		{from: ttEstablished, dir: R, name: "RST out of window", flags: RST, seq: 1 + 100000, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttEstablished, dir: R, name: "data beyond the window", flags: ACK | PSH, seq: 1 + 70000, ack: 1, payload: 100, act: Drop, reason: drop.OutOfWindow},
		{from: ttEstablished, dir: R, name: "data older than a full window", flags: ACK | PSH, seq: 1 - 70000, ack: 1, payload: 10, act: Drop, reason: drop.OutOfWindow},
		{from: ttEstablished, dir: R, name: "ACK of unsent data", flags: ACK, seq: 1, ack: 1 + 1000, act: Drop, reason: drop.OutOfWindow},
		{from: ttEstablished, dir: R, name: "liberal: data beyond the window", flags: ACK | PSH, seq: 1 + 70000, ack: 1, payload: 100, liberal: true, act: Forward, state: TCPEstablished},

		// ESTABLISHED with a SYN with a new ISN noted (N2: port reuse while
		// the old connection looks alive).
		{from: ttEstPending, dir: R, name: "SYN-ACK acking the noted SYN", flags: SYNACK, seq: N, ack: N + 1, act: Reopened, state: TCPSynRecv},
		{from: ttEstPending, dir: R, name: "SYN-ACK of the old handshake retransmitted", flags: SYNACK, ack: 1, act: Forward, state: TCPEstablished, ctr: CtrSynAckRetransmit},
		{from: ttEstPending, dir: R, name: "SYN-ACK with a bad ack", flags: SYNACK, seq: N, ack: N + 2, act: Drop, reason: drop.SynAckBadAck},
		{from: ttEstPending, dir: R, name: "challenge ACK of the old connection", flags: ACK, seq: 1, ack: 1, act: Forward, state: TCPEstablished},
		{from: ttEstPending, dir: O, name: "old connection's ACK", flags: ACK, seq: 1, ack: 1, act: Forward, state: TCPEstablished},
		{from: ttEstPending, dir: O, name: "RST exact", flags: RST, seq: 1, act: Forward, state: TCPClose},

		// The incident (N2): a SYN with a new ISN was noted, then the old
		// connection closed (its delayed FINs), then the server answers the
		// new SYN. The SYN-ACK acks the forwarded SYN's ISN+1, so it starts
		// the new incarnation whatever closing state the old one reached;
		// NSX drops it here, edge's default mode must not.
		{from: ttPendFinWait, dir: R, name: "SYN-ACK acking the noted SYN", flags: SYNACK, seq: N, ack: N + 1, act: Reopened, state: TCPSynRecv},
		{from: ttPendFinWaitRep, dir: R, name: "SYN-ACK acking the noted SYN", flags: SYNACK, seq: N, ack: N + 1, act: Reopened, state: TCPSynRecv},
		{from: ttPendCloseWait, dir: R, name: "SYN-ACK acking the noted SYN", flags: SYNACK, seq: N, ack: N + 1, act: Reopened, state: TCPSynRecv},
		{from: ttPendLastAck, dir: R, name: "SYN-ACK acking the noted SYN", flags: SYNACK, seq: N, ack: N + 1, act: Reopened, state: TCPSynRecv},
		{from: ttPendTimeWait, dir: R, name: "SYN-ACK acking the noted SYN", flags: SYNACK, seq: N, ack: N + 1, act: Reopened, state: TCPSynRecv},
		{from: ttPendTimeWait, dir: R, name: "SYN-ACK acking the noted SYN+2", flags: SYNACK, seq: N, ack: N + 2, act: Drop, reason: drop.SynAckBadAck},
		// The old connection ended by an exact RST: the noted SYN still
		// waits for its answer.
		{from: ttPendClose, dir: R, name: "SYN-ACK acking the noted SYN", flags: SYNACK, seq: N, ack: N + 1, act: Reopened, state: TCPSynRecv},
		{from: ttPendLastAck, dir: R, name: "SYN-ACK of the old handshake retransmitted", flags: SYNACK, ack: 1, act: Forward, state: TCPLastAck, ctr: CtrSynAckRetransmit},

		// FIN_WAIT (the originator sent FIN: its next is ISN+2).
		{from: ttFinWait, dir: O, name: "SYN with a new ISN", flags: SYN, seq: N, act: Reopened, state: TCPSynSent},
		{from: ttFinWait, dir: O, name: "ACK", flags: ACK, seq: 2, ack: 1, act: Forward, state: TCPFinWait},
		{from: ttFinWait, dir: O, name: "FIN retransmitted", flags: FINACK, seq: 1, ack: 1, act: Forward, state: TCPFinWait},
		{from: ttFinWait, dir: O, name: "ACK of unsent data", flags: ACK, seq: 2, ack: 1 + 1000, act: Drop, reason: drop.OutOfWindow},
		{from: ttFinWait, dir: O, name: "RST exact", flags: RST, seq: 2, act: Forward, state: TCPClose},
		{from: ttFinWait, dir: O, name: "RST in window, inexact", flags: RST, seq: 2 + 1000, act: Forward, state: TCPFinWait, ctr: CtrRSTInexact},
		{from: ttFinWait, dir: O, name: "RST out of window", flags: RST, seq: 2 + 100000, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttFinWait, dir: R, name: "ACK of the FIN", flags: ACK, seq: 1, ack: 2, act: Forward, state: TCPCloseWait},
		{from: ttFinWait, dir: R, name: "ACK not covering the FIN", flags: ACK, seq: 1, ack: 1, act: Forward, state: TCPFinWait},
		{from: ttFinWait, dir: R, name: "data acking the FIN", flags: ACK | PSH, seq: 1, ack: 2, payload: 100, act: Forward, state: TCPCloseWait},
		{from: ttFinWait, dir: R, name: "FIN acking the FIN", flags: FINACK, seq: 1, ack: 2, act: Forward, state: TCPLastAck},
		{from: ttFinWait, dir: R, name: "data beyond the window", flags: ACK | PSH, seq: 1 + 70000, ack: 2, payload: 100, act: Drop, reason: drop.OutOfWindow},
		{from: ttFinWait, dir: R, name: "SYN", flags: SYN, act: Drop, reason: drop.InvalidState},
		{from: ttFinWait, dir: R, name: "SYN-ACK acking the handshake SYN", flags: SYNACK, ack: 1, act: Forward, state: TCPFinWait, ctr: CtrSynAckRetransmit},
		{from: ttFinWait, dir: R, name: "SYN-ACK with a bad ack", flags: SYNACK, ack: 2, act: Drop, reason: drop.SynAckBadAck},
		{from: ttFinWait, dir: R, name: "RST exact", flags: RST, seq: 1, act: Forward, state: TCPClose},
		{from: ttFinWait, dir: R, name: "RST in window, inexact", flags: RST, seq: 1 + 1000, act: Forward, state: TCPFinWait, ctr: CtrRSTInexact},
		{from: ttFinWait, dir: R, name: "RST out of window", flags: RST, seq: 1 + 100000, act: Drop, reason: drop.RSTOutOfWindow},

		// CLOSE_WAIT (the originator's FIN acknowledged).
		{from: ttCloseWait, dir: O, name: "SYN with a new ISN", flags: SYN, seq: N, act: Reopened, state: TCPSynSent},
		{from: ttCloseWait, dir: O, name: "ACK", flags: ACK, seq: 2, ack: 1, act: Forward, state: TCPCloseWait},
		{from: ttCloseWait, dir: O, name: "RST exact", flags: RST, seq: 2, act: Forward, state: TCPClose},
		{from: ttCloseWait, dir: O, name: "RST in window, inexact", flags: RST, seq: 2 + 1000, act: Forward, state: TCPCloseWait, ctr: CtrRSTInexact},
		{from: ttCloseWait, dir: O, name: "RST out of window", flags: RST, seq: 2 + 100000, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttCloseWait, dir: R, name: "data (half close)", flags: ACK | PSH, seq: 1, ack: 2, payload: 100, act: Forward, state: TCPCloseWait},
		{from: ttCloseWait, dir: R, name: "FIN", flags: FINACK, seq: 1, ack: 2, act: Forward, state: TCPLastAck},
		{from: ttCloseWait, dir: R, name: "data beyond the window", flags: ACK | PSH, seq: 1 + 70000, ack: 2, payload: 100, act: Drop, reason: drop.OutOfWindow},
		{from: ttCloseWait, dir: R, name: "SYN-ACK acking the handshake SYN", flags: SYNACK, ack: 1, act: Forward, state: TCPCloseWait, ctr: CtrSynAckRetransmit},
		{from: ttCloseWait, dir: R, name: "SYN-ACK with a bad ack", flags: SYNACK, ack: 2, act: Drop, reason: drop.SynAckBadAck},
		{from: ttCloseWait, dir: R, name: "RST exact", flags: RST, seq: 1, act: Forward, state: TCPClose},
		{from: ttCloseWait, dir: R, name: "RST out of window", flags: RST, seq: 1 + 100000, act: Drop, reason: drop.RSTOutOfWindow},

		// LAST_ACK (both FINs sent: both nexts are ISN+2).
		{from: ttLastAck, dir: O, name: "SYN with a new ISN", flags: SYN, seq: N, act: Reopened, state: TCPSynSent},
		{from: ttLastAck, dir: O, name: "ACK of the last FIN", flags: ACK, seq: 2, ack: 2, act: Forward, state: TCPTimeWait},
		{from: ttLastAck, dir: O, name: "ACK not covering the last FIN", flags: ACK, seq: 2, ack: 1, act: Forward, state: TCPLastAck},
		{from: ttLastAck, dir: O, name: "ACK of unsent data", flags: ACK, seq: 2, ack: 2 + 1000, act: Drop, reason: drop.OutOfWindow},
		{from: ttLastAck, dir: O, name: "RST exact", flags: RST, seq: 2, act: Forward, state: TCPClose},
		{from: ttLastAck, dir: O, name: "RST in window, inexact", flags: RST, seq: 2 + 1000, act: Forward, state: TCPLastAck, ctr: CtrRSTInexact},
		{from: ttLastAck, dir: O, name: "RST out of window", flags: RST, seq: 2 + 100000, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttLastAck, dir: R, name: "FIN retransmitted", flags: FINACK, seq: 1, ack: 2, act: Forward, state: TCPLastAck},
		{from: ttLastAck, dir: R, name: "SYN-ACK acking the handshake SYN", flags: SYNACK, ack: 1, act: Forward, state: TCPLastAck, ctr: CtrSynAckRetransmit},
		{from: ttLastAck, dir: R, name: "SYN-ACK with a bad ack", flags: SYNACK, ack: 2, act: Drop, reason: drop.SynAckBadAck},
		{from: ttLastAck, dir: R, name: "RST exact", flags: RST, seq: 2, act: Forward, state: TCPClose},
		{from: ttLastAck, dir: R, name: "RST out of window", flags: RST, seq: 2 + 100000, act: Drop, reason: drop.RSTOutOfWindow},

		// TIME_WAIT.
		{from: ttTimeWait, dir: O, name: "SYN with a new ISN", flags: SYN, seq: N, act: Reopened, state: TCPSynSent},
		{from: ttTimeWait, dir: O, name: "SYN with the old ISN", flags: SYN, act: Reopened, state: TCPSynSent},
		{from: ttTimeWait, dir: O, name: "last ACK retransmitted", flags: ACK, seq: 2, ack: 2, act: Forward, state: TCPTimeWait},
		{from: ttTimeWait, dir: O, name: "ACK of unsent data", flags: ACK, seq: 2, ack: 2 + 1000, act: Drop, reason: drop.OutOfWindow},
		{from: ttTimeWait, dir: O, name: "RST exact (RFC 1337)", flags: RST, seq: 2, act: Forward, state: TCPTimeWait, ctr: CtrRSTInTimeWait},
		{from: ttTimeWait, dir: O, name: "RST+ACK exact (RFC 1337)", flags: RSTACK, seq: 2, ack: 2, act: Forward, state: TCPTimeWait, ctr: CtrRSTInTimeWait},
		{from: ttTimeWait, dir: O, name: "RST in window, inexact", flags: RST, seq: 2 + 1000, act: Forward, state: TCPTimeWait, ctr: CtrRSTInexact},
		{from: ttTimeWait, dir: O, name: "RST out of window", flags: RST, seq: 2 + 100000, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttTimeWait, dir: R, name: "FIN retransmitted", flags: FINACK, seq: 1, ack: 2, act: Forward, state: TCPTimeWait},
		{from: ttTimeWait, dir: R, name: "data beyond the window", flags: ACK | PSH, seq: 2 + 70000, ack: 2, payload: 100, act: Drop, reason: drop.OutOfWindow},
		{from: ttTimeWait, dir: R, name: "RST exact (RFC 1337)", flags: RST, seq: 2, act: Forward, state: TCPTimeWait, ctr: CtrRSTInTimeWait},
		{from: ttTimeWait, dir: R, name: "RST out of window", flags: RST, seq: 2 + 100000, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttTimeWait, dir: R, name: "SYN on the reversed tuple (entry replaced)", flags: SYN, act: Open, state: StateNone, ctr: CtrReplaced},
		{from: ttTimeWait, dir: R, name: "SYN-ACK acking the handshake SYN", flags: SYNACK, ack: 1, act: Forward, state: TCPTimeWait, ctr: CtrSynAckRetransmit},
		{from: ttTimeWait, dir: R, name: "SYN-ACK with a bad ack", flags: SYNACK, ack: 2, act: Drop, reason: drop.SynAckBadAck},

		// CLOSE (the originator's exact RST: nexts are ISN+1).
		{from: ttClose, dir: O, name: "SYN with a new ISN", flags: SYN, seq: N, act: Reopened, state: TCPSynSent},
		{from: ttClose, dir: O, name: "SYN with the old ISN", flags: SYN, act: Reopened, state: TCPSynSent},
		{from: ttClose, dir: O, name: "pure ACK", flags: ACK, seq: 1, ack: 1, act: Forward, state: TCPClose},
		{from: ttClose, dir: O, name: "data", flags: ACK | PSH, seq: 1, ack: 1, payload: 100, act: Drop, reason: drop.DataOnClosed},
		{from: ttClose, dir: O, name: "FIN", flags: FINACK, seq: 1, ack: 1, act: Drop, reason: drop.DataOnClosed},
		{from: ttClose, dir: O, name: "RST exact", flags: RST, seq: 1, act: Forward, state: TCPClose},
		{from: ttClose, dir: O, name: "RST out of window", flags: RST, seq: 1 + 100000, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttClose, dir: R, name: "data", flags: ACK | PSH, seq: 1, ack: 1, payload: 100, act: Drop, reason: drop.DataOnClosed},
		{from: ttClose, dir: R, name: "RST exact", flags: RST, seq: 1, act: Forward, state: TCPClose},
		{from: ttClose, dir: R, name: "RST out of window", flags: RST, seq: 1 + 100000, act: Drop, reason: drop.RSTOutOfWindow},
		{from: ttClose, dir: R, name: "SYN on the reversed tuple (entry replaced)", flags: SYN, act: Open, state: StateNone, ctr: CtrReplaced},
		{from: ttClose, dir: R, name: "SYN-ACK acking the handshake SYN", flags: SYNACK, ack: 1, act: Forward, state: TCPClose, ctr: CtrSynAckRetransmit},
		{from: ttClose, dir: R, name: "SYN-ACK with a bad ack", flags: SYNACK, ack: 2, act: Drop, reason: drop.SynAckBadAck},

		// SYN_SENT of a second incarnation (N2: stale packets of the first
		// never move it).
		{from: ttSynSentGen1, dir: R, name: "SYN-ACK acking the new SYN", flags: SYNACK, seq: N, ack: N + 1, act: Forward, state: TCPSynRecv},
		{from: ttSynSentGen1, dir: R, name: "old SYN-ACK acking the old SYN", flags: SYNACK, ack: 1, act: Drop, reason: drop.StaleIncarnation},
		{from: ttSynSentGen1, dir: R, name: "delayed FIN of the old incarnation", flags: FINACK, seq: 1, ack: 2, act: Drop, reason: drop.StaleIncarnation},
		{from: ttSynSentGen1, dir: R, name: "delayed data of the old incarnation", flags: ACK | PSH, seq: 1, ack: 2, payload: 100, act: Drop, reason: drop.StaleIncarnation},
		{from: ttSynSentGen1, dir: R, name: "old RST without ACK", flags: RST, seq: 2, act: Drop, reason: drop.StaleIncarnation},
		{from: ttSynSentGen1, dir: R, name: "RST+ACK acking the new SYN", flags: RSTACK, ack: N + 1, act: Forward, state: TCPClose},
		{from: ttSynSentGen1, dir: R, name: "pure ACK (challenge ACK)", flags: ACK, seq: 2, ack: 2, act: Forward, state: TCPSynSent, ctr: CtrChallengeACK},
		{from: ttSynSentGen1, dir: O, name: "old ACK", flags: ACK, seq: 2, ack: 2, act: Drop, reason: drop.StaleIncarnation},
		{from: ttSynSentGen1, dir: O, name: "new SYN retransmitted", flags: SYN, seq: N, act: Forward, state: TCPSynSent},
		{from: ttSynSentGen1, dir: O, name: "RST exact", flags: RST, seq: N + 1, act: Forward, state: TCPClose},

		// SYN_RECV of a second incarnation.
		{from: ttSynRecvGen1, dir: R, name: "delayed FIN of the old incarnation", flags: FINACK, seq: 1, ack: 2, act: Drop, reason: drop.StaleIncarnation},
		{from: ttSynRecvGen1, dir: R, name: "SYN-ACK retransmitted", flags: SYNACK, seq: N, ack: N + 1, act: Forward, state: TCPSynRecv},
		{from: ttSynRecvGen1, dir: O, name: "final ACK", flags: ACK, seq: N + 1, ack: N + 1, act: Forward, state: TCPEstablished},
		{from: ttSynRecvGen1, dir: O, name: "old ACK", flags: ACK, seq: 2, ack: 2, act: Drop, reason: drop.StaleIncarnation},

		// S2: an inexact RST is not obeyed, so it must not move what the
		// tracker takes as the sender's next sequence number.
		{from: ttEstAfterInexactRST, dir: O, name: "RST exact at the real next seq", flags: RST, seq: 1, act: Forward, state: TCPClose},
		{from: ttEstAfterInexactRST, dir: O, name: "the same inexact RST again", flags: RST, seq: 1 + 1000, act: Forward, state: TCPEstablished, ctr: CtrRSTInexact},
		{from: ttEstAfterInexactRST, dir: O, name: "data at the real next seq", flags: ACK | PSH, seq: 1, ack: 1, payload: 100, act: Forward, state: TCPEstablished},
		{from: ttEstAfterInexactRST, dir: R, name: "RST exact", flags: RST, seq: 1, act: Forward, state: TCPClose},
	}
}

// ttISNs are the base ISN pairs each row runs with.
var ttISNs = []struct {
	name       string
	cisn, sisn uint32
}{
	{"isn=low", 1000, 5000},
	{"isn=wrapping", 0xffffff00, 0xfffffffe},
}

// TestTCPTransitionTable runs every row of ttRows, in both families.
func TestTCPTransitionTable(t *testing.T) {
	rows := ttRows()
	forEachFamily(t, func(t *testing.T, fam family) {
		seen := map[string]bool{}
		for _, isn := range ttISNs {
			t.Run(isn.name, func(t *testing.T) {
				for _, r := range rows {
					name := fmt.Sprintf("%v/%v/%s", r.from, r.dir, r.name)
					if seen[isn.name+name] {
						t.Fatalf("duplicate row name %q", name)
					}
					seen[isn.name+name] = true
					t.Run(name, func(t *testing.T) { ttRun(t, fam, r, isn.cisn, isn.sisn) })
				}
			})
		}
	})
}

// ttRun plays one row and checks everything it promises.
func ttRun(t *testing.T, fam family, r ttRow, cisn, sisn uint32) {
	h := newFamilyHarness(t, Policy{Liberal: r.liberal, PickUp: r.pickup}, fam)
	c := h.conn(40000, 1025, cisn, sisn)
	ttSetup(t, h, c, r.from)
	now := h.clk.now
	key := ttPacket(c, Original, SYN, 0, 0, 0).Key

	ref, _, live := h.s.Lookup(&key, now)
	var before flow
	var info0 FlowInfo
	if live {
		before = h.s.flows[ref]
		info0 = h.s.Info(ref, now)
	}
	if live != (r.from != ttNone) {
		t.Fatalf("after setup of %v: entry present = %v", r.from, live)
	}
	st0, len0 := h.tb.Stats(), h.tb.Len()

	p := ttPacket(c, r.dir, r.flags, r.seq, r.ack, r.payload)
	v := h.s.Track(&p, now)
	created := false

	if v.Action != r.act {
		t.Fatalf("%v %v flags %#x seq %d ack %d: action %v (state %v, reason %v), want %v",
			r.dir, r.from, p.Flags, p.Seq, p.Ack, v.Action, v.State, v.Reason, r.act)
	}
	switch v.Action {
	case Drop:
		if v.Reason == drop.None || (v.Reason != r.reason && (r.alt == drop.None || v.Reason != r.alt)) {
			t.Fatalf("drop reason %v, want %v", v.Reason, ttReasons(r))
		}
		if h.tb.Len() != len0 {
			t.Fatalf("a dropped packet changed the number of flows: %d -> %d", len0, h.tb.Len())
		}
		if live {
			ref2, _, ok := h.s.Lookup(&key, now)
			if !ok || ref2 != ref {
				t.Fatalf("a dropped packet removed the flow")
			}
			if after := h.s.flows[ref]; after != before {
				t.Fatalf("a dropped packet changed the flow:\nbefore %+v\nafter  %+v", before, after)
			}
		} else if _, _, ok := h.s.Lookup(&key, now); ok {
			t.Fatalf("a dropped packet created a flow")
		}
	case Open:
		if v.Reason != drop.None {
			t.Fatalf("Open with reason %v", v.Reason)
		}
		if _, _, ok := h.s.Lookup(&key, now); ok {
			t.Fatalf("Open but the tuple still has an entry")
		}
		if r.dir == Original {
			v = h.s.Create(&p, NewFlow{NAT: Translation{Addr: h.nat, Port: c.sport}}, now)
			created = true
			if v.Action != Forward || v.State != r.state {
				t.Fatalf("Create: %v %v (%v), want forward %v", v.Action, v.State, v.Reason, r.state)
			}
		} else if r.state != StateNone {
			t.Fatalf("bad row: Open from the reply side creates nothing here")
		}
		if got := h.state(key); got != r.state {
			t.Fatalf("state after: %v, want %v", got, r.state)
		}
	case Forward, Reopened:
		if v.Reason != drop.None {
			t.Fatalf("%v with reason %v", v.Action, v.Reason)
		}
		if !live || v.Flow != ref || v.Dir != r.dir {
			t.Fatalf("verdict names flow %d dir %v, want %d %v (live %v)", v.Flow, v.Dir, ref, r.dir, live)
		}
		if v.State != r.state || h.state(key) != r.state {
			t.Fatalf("state after: verdict %v, table %v, want %v", v.State, h.state(key), r.state)
		}
		info := h.s.Info(ref, now)
		if v.Action == Forward {
			if info.Gen != info0.Gen {
				t.Fatalf("forward changed the generation %d -> %d", info0.Gen, info.Gen)
			}
			if info.Packets[r.dir] != info0.Packets[r.dir]+1 {
				t.Fatalf("packets %v -> %v: the forwarded packet was not counted", info0.Packets, info.Packets)
			}
			break
		}
		// Reopened: a new generation, and the previous incarnation in
		// history, superseded.
		if info.Gen != info0.Gen+1 {
			t.Fatalf("reopen: generation %d -> %d, want +1", info0.Gen, info.Gen)
		}
		ex := h.explain(key)
		if ex.Current == nil || ex.Current.Gen != info.Gen {
			t.Fatalf("Explain current: %+v", ex.Current)
		}
		if len(ex.History) == 0 {
			t.Fatalf("reopen left no history")
		}
		old := ex.History[0]
		if old.Gen != info0.Gen || old.Reason != CloseSuperseded || old.ISN != info0.ISN || old.State != info0.State {
			t.Fatalf("history[0] = gen %d %v ISN %v state %v, want gen %d %v ISN %v state %v",
				old.Gen, old.Reason, old.ISN, old.State, info0.Gen, CloseSuperseded, info0.ISN, info0.State)
		}
	}

	// Counters: the row's counter moved by one, drops only by the verdict's
	// reason, and nothing else but lifecycle counters that follow from the
	// verdict.
	st := h.tb.Stats()
	for i := range st.Drops {
		want := st0.Drops[i]
		if v.Action == Drop && drop.Reason(i) == v.Reason {
			want++
		}
		if st.Drops[i] != want {
			t.Errorf("drop counter %v: %d -> %d", drop.Reason(i), st0.Drops[i], st.Drops[i])
		}
	}
	for i := range st.Counters {
		c := Counter(i)
		d := st.Counters[i] - st0.Counters[i]
		var want uint64
		switch {
		case c == r.ctr && c != CtrCreated:
			want = 1
		case c == CtrReopened && v.Action == Reopened, c == CtrCreated && created:
			want = 1
		case c == CtrClosed, c == CtrEventsLost:
			continue // follows from the state reached
		}
		if d != want {
			t.Errorf("counter %v moved by %d, want %d", c, d, want)
		}
	}
}

func ttReasons(r ttRow) string {
	if r.alt != drop.None {
		return r.reason.String() + " or " + r.alt.String()
	}
	return r.reason.String()
}

// ttSeqStep is one step of a valid sequence: the action and state expected.
type ttSeqStep struct {
	dir      Dir
	flags    uint8
	seq, ack int64
	payload  int
	act      Action
	state    State
}

// TestTCPValidSequences checks T1: valid RFC 793 sequences pass, packet by
// packet, including simultaneous open and close, half close, and the N2
// port-reuse sequences, with both ISN sets.
func TestTCPValidSequences(t *testing.T) {
	seqs := ttValidSequences
	forEachFamily(t, func(t *testing.T, fam family) {
		for _, isn := range ttISNs {
			for _, sq := range seqs {
				t.Run(isn.name+"/"+sq.name, func(t *testing.T) {
					h := newFamilyHarness(t, Policy{}, fam)
					c := h.conn(40000, 1025, isn.cisn, isn.sisn)
					for i, s := range sq.steps {
						p := ttPacket(c, s.dir, s.flags, s.seq, s.ack, s.payload)
						v := h.send(p, c.sport)
						if v.Action != s.act || v.State != s.state {
							t.Fatalf("step %d (%v flags %#x seq %+d ack %+d len %d): got %v %v (%v), want %v %v",
								i, s.dir, s.flags, s.seq, s.ack, s.payload, v.Action, v.State, v.Reason, s.act, s.state)
						}
					}
					if st := h.tb.Stats(); ttDrops(st) != 0 {
						t.Fatalf("drops counted on a valid sequence: %v", st.Drops)
					}
				})
			}
		}
	})
}

// ttValidSequences are the valid sequences of TestTCPValidSequences (the
// NSX shadow's tests replay them too).
var ttValidSequences = func() []ttSeq {
	const (
		O, R = Original, Reply
		N    = ttNewISN
		F, X = Forward, Reopened
	)
	return []ttSeq{
		{"client closes", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{O, ACK, 1, 1, 0, F, TCPEstablished},
			{O, ACK | PSH, 1, 1, 300, F, TCPEstablished},
			{R, ACK | PSH, 1, 301, 1400, F, TCPEstablished},
			{R, ACK | PSH, 1401, 301, 1400, F, TCPEstablished},
			{O, ACK, 301, 2801, 0, F, TCPEstablished},
			{O, FINACK, 301, 2801, 0, F, TCPFinWait},
			{R, FINACK, 2801, 302, 0, F, TCPLastAck},
			{O, ACK, 302, 2802, 0, F, TCPTimeWait},
		}},
		{"server closes", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{O, ACK | PSH, 1, 1, 10, F, TCPEstablished},
			{R, FINACK | PSH, 1, 11, 20, F, TCPFinWait},
			{O, ACK, 11, 22, 0, F, TCPCloseWait},
			{O, ACK | PSH, 11, 22, 5, F, TCPCloseWait},
			{O, FINACK, 16, 22, 0, F, TCPLastAck},
			{R, ACK, 22, 17, 0, F, TCPTimeWait},
		}},
		{"half close: data after the FIN", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{O, ACK, 1, 1, 0, F, TCPEstablished},
			{O, FINACK, 1, 1, 0, F, TCPFinWait},
			{R, ACK, 1, 2, 0, F, TCPCloseWait},
			{R, ACK | PSH, 1, 2, 1000, F, TCPCloseWait},
			{O, ACK, 2, 1001, 0, F, TCPCloseWait},
			{R, ACK | PSH, 1001, 2, 1000, F, TCPCloseWait},
			{R, FINACK, 2001, 2, 0, F, TCPLastAck},
			{O, ACK, 2, 2002, 0, F, TCPTimeWait},
		}},
		{"simultaneous close", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{O, ACK, 1, 1, 0, F, TCPEstablished},
			{O, FINACK, 1, 1, 0, F, TCPFinWait},
			{R, FINACK, 1, 1, 0, F, TCPLastAck},
			{O, ACK, 2, 2, 0, F, TCPTimeWait},
			{R, ACK, 2, 2, 0, F, TCPTimeWait},
		}},
		{"simultaneous open, SYN-ACKs crossing, final ACK from the originator", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, SYN, 0, 0, 0, F, TCPSynSent2},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{O, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{O, ACK, 1, 1, 0, F, TCPEstablished},
			{R, ACK | PSH, 1, 1, 10, F, TCPEstablished},
		}},
		{"simultaneous open, originator's SYN-ACK first, final ACK from the reply side", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, SYN, 0, 0, 0, F, TCPSynSent2},
			{O, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{R, ACK, 1, 1, 0, F, TCPEstablished},
			{O, ACK | PSH, 1, 1, 10, F, TCPEstablished},
		}},
		{"simultaneous open, one SYN-ACK only (RFC 793 figure 8)", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, SYN, 0, 0, 0, F, TCPSynSent2},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{O, ACK, 1, 1, 0, F, TCPEstablished},
		}},
		{"SYN retransmitted, SYN-ACK retransmitted", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{O, ACK, 1, 1, 0, F, TCPEstablished},
			{R, SYNACK, 0, 1, 0, F, TCPEstablished},
			{O, ACK, 1, 1, 0, F, TCPEstablished},
		}},
		{"port reuse after TIME_WAIT, delayed FIN before and after the new SYN (NSX)", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{O, ACK, 1, 1, 0, F, TCPEstablished},
			{O, FINACK, 1, 1, 0, F, TCPFinWait},
			{R, FINACK, 1, 2, 0, F, TCPLastAck},
			{O, ACK, 2, 2, 0, F, TCPTimeWait},
			{R, FINACK, 1, 2, 0, F, TCPTimeWait},
			{O, SYN, N, 0, 0, X, TCPSynSent},
			{R, SYNACK, N, N + 1, 0, F, TCPSynRecv},
			{O, ACK, N + 1, N + 1, 0, F, TCPEstablished},
			{O, ACK | PSH, N + 1, N + 1, 100, F, TCPEstablished},
		}},
		{"port reuse on a flow still ESTABLISHED here", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{O, ACK, 1, 1, 0, F, TCPEstablished},
			{O, SYN, N, 0, 0, F, TCPEstablished},
			{R, SYNACK, N, N + 1, 0, X, TCPSynRecv},
			{O, ACK, N + 1, N + 1, 0, F, TCPEstablished},
		}},
		{"port reuse: SYN noted, the old connection closes, then the new SYN-ACK (the incident)", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{O, ACK, 1, 1, 0, F, TCPEstablished},
			{O, SYN, N, 0, 0, F, TCPEstablished},
			{O, FINACK, 1, 1, 0, F, TCPFinWait},
			{R, FINACK, 1, 2, 0, F, TCPLastAck},
			{O, ACK, 2, 2, 0, F, TCPTimeWait},
			{R, SYNACK, N, N + 1, 0, X, TCPSynRecv},
			{O, ACK, N + 1, N + 1, 0, F, TCPEstablished},
			{R, ACK | PSH, N + 1, N + 1, 100, F, TCPEstablished},
		}},
		{"port reuse on a tuple the server still holds: challenge ACK, RST lost, SYN again (RFC 5961 4)", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, ACK, 1000, 500, 0, F, TCPSynSent},
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, ACK, 1000, 500, 0, F, TCPSynSent},
			{O, RST, 500, 0, 0, F, TCPSynSent},
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{O, ACK, 1, 1, 0, F, TCPEstablished},
		}},
		{"port reuse after RST", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, SYNACK, 0, 1, 0, F, TCPSynRecv},
			{O, ACK, 1, 1, 0, F, TCPEstablished},
			{R, RSTACK, 1, 1, 0, F, TCPClose},
			{O, SYN, N, 0, 0, X, TCPSynSent},
			{R, SYNACK, N, N + 1, 0, F, TCPSynRecv},
			{O, ACK, N + 1, N + 1, 0, F, TCPEstablished},
		}},
		{"refused connection: RST+ACK to the SYN", []ttSeqStep{
			{O, SYN, 0, 0, 0, F, TCPSynSent},
			{R, RSTACK, 0, 1, 0, F, TCPClose},
			{O, SYN, 0, 0, 0, X, TCPSynSent},
		}},
	}
}()

// ttSeq is a named valid sequence.
type ttSeq struct {
	name  string
	steps []ttSeqStep
}

// TestTCPWindowScaling: with window scaling on both SYNs, the windows of
// the SYN and SYN-ACK are not scaled (RFC 7323 2.2), later ones are. A
// segment inside the scaled window but past the unscaled one is valid; past
// the window in force it is not (unless liberal).
func TestTCPWindowScaling(t *testing.T) { forEachFamily(t, testTCPWindowScaling) }

func testTCPWindowScaling(t *testing.T, fam family) {
	var cisn, sisn uint32 = 0xfffff000, 77
	seg := func(t *testing.T, d Dir, flags uint8, seq, ack uint32, n int) Packet {
		s := headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 80,
			Flags: flags, Seq: seq, Ack: ack, Window: 1024, Payload: make([]byte, n)}
		if d == Reply {
			s.Src, s.Dst, s.SrcPort, s.DstPort = fam.server, fam.snat, 80, 1025
		}
		if flags&SYN != 0 {
			s.HasWScale, s.WScale, s.Window = true, 7, 65535
		}
		return pkt(t, s)
	}
	// handshake: both SYNs offer 65535 bytes (unscaled) and shift 7; the
	// client's final ACK advertises 1024<<7.
	handshake := func(t *testing.T, h *harness) {
		for i, p := range []Packet{
			seg(t, Original, SYN, cisn, 0, 0),
			seg(t, Reply, SYNACK, sisn, cisn+1, 0),
			seg(t, Original, ACK, cisn+1, sisn+1, 0),
		} {
			if v := h.send(p, 1025); v.Action != Forward {
				t.Fatalf("handshake step %d: %v (%v)", i, v.Action, v.Reason)
			}
		}
	}
	check := func(t *testing.T, h *harness, what string, p Packet, ok bool) {
		t.Helper()
		v := h.send(p, 1025)
		if ok && v.Action != Forward || !ok && (v.Action != Drop || v.Reason != drop.OutOfWindow) {
			t.Errorf("%s: %v (%v), want in window = %v", what, v.Action, v.Reason, ok)
		}
	}
	for _, liberal := range []bool{false, true} {
		t.Run(fmt.Sprintf("liberal=%v/SYN-ACK window is not scaled", liberal), func(t *testing.T) {
			h := newFamilyHarness(t, Policy{Liberal: liberal}, fam)
			handshake(t, h)
			// The server offered 65535 bytes in its SYN-ACK, not 65535<<7.
			check(t, h, "client data past the SYN-ACK's 65535-byte window",
				seg(t, Original, ACK|PSH, cisn+1+70000, sisn+1, 1000), liberal)
			check(t, h, "client data 1 MB ahead", seg(t, Original, ACK|PSH, cisn+1+1<<20, sisn+1, 1000), liberal)
			check(t, h, "client data at next", seg(t, Original, ACK|PSH, cisn+1, sisn+1, 1000), true)
		})
		t.Run(fmt.Sprintf("liberal=%v/scaled window after the handshake", liberal), func(t *testing.T) {
			h := newFamilyHarness(t, Policy{Liberal: liberal}, fam)
			handshake(t, h)
			check(t, h, "server ACK advertising 1024<<7", seg(t, Reply, ACK, sisn+1, cisn+1, 0), true)
			// 131072 bytes allowed: a segment at +100000 (earlier ones
			// lost upstream of us) is valid.
			check(t, h, "client data inside the scaled window", seg(t, Original, ACK|PSH, cisn+1+100000, sisn+1, 1000), true)
			check(t, h, "server data inside the client's scaled window", seg(t, Reply, ACK|PSH, sisn+1+100000, cisn+1, 1000), true)
			check(t, h, "client data beyond the scaled window", seg(t, Original, ACK|PSH, cisn+1+300000, sisn+1, 1000), liberal)
		})
	}
}

func ttDrops(st Stats) (n uint64) {
	for _, d := range st.Drops {
		n += d
	}
	return n
}

// ttImpossibleFlags is the rule of the brief, written independently of
// ValidTCPFlags: SYN+FIN, SYN+RST, none of SYN/ACK/RST/FIN, FIN without ACK.
func ttImpossibleFlags(f uint8) bool {
	syn, ack, rst, fin := f&SYN != 0, f&ACK != 0, f&RST != 0, f&FIN != 0
	return syn && fin || syn && rst || !syn && !ack && !rst && !fin || fin && !ack
}

// TestTCPImpossibleFlagsRejectedByParse tries all 256 flag bytes on IPv4
// and IPv6: impossible combinations are TCPBadFlags, Parse accepts exactly
// the flags ValidTCPFlags accepts, and the named cases are impossible.
func TestTCPImpossibleFlagsRejectedByParse(t *testing.T) {
	for _, name := range []uint8{SYN | FIN, SYN | RST, 0, FIN, SYN | FIN | ACK, SYN | RST | ACK, PSH, FIN | PSH} {
		if ValidTCPFlags(name) {
			t.Errorf("ValidTCPFlags(%#x) = true", name)
		}
	}
	for _, fam := range [][2]netip.Addr{{client, server}, {client6, server6}} {
		for f := 0; f < 256; f++ {
			fl := uint8(f)
			spec := headertest.Spec{Src: fam[0], Dst: fam[1], Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 80,
				Flags: fl, Seq: 1, Ack: 2, Payload: []byte("x")}
			var p Packet
			r := Parse(headertest.Build(spec), 0, &p)
			switch {
			case ttImpossibleFlags(fl) && r != drop.TCPBadFlags:
				t.Errorf("%v flags %#x: Parse = %v, want %v", spec.Src, fl, r, drop.TCPBadFlags)
			case r == drop.TCPBadFlags && ValidTCPFlags(fl), r == drop.None && !ValidTCPFlags(fl):
				t.Errorf("%v flags %#x: Parse = %v but ValidTCPFlags = %v", spec.Src, fl, r, ValidTCPFlags(fl))
			case r != drop.None && r != drop.TCPBadFlags:
				t.Errorf("%v flags %#x: Parse = %v", spec.Src, fl, r)
			}
		}
	}
}
