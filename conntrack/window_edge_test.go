package conntrack

import (
	"fmt"
	"testing"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// TestTCPWindowEdges puts a segment exactly on the edge of each of the four
// window conditions (accepted) and one byte beyond it (dropped), from both
// sides, with and without window scaling, for data and ACKs (the fused check
// of inWindow) and for inexact RSTs (windowOK; an RST's left edge is
// RCV.NXT, RFC 5961 3.2). The edges are worked out
// here from the handshake's advertised windows and the conditions as
// doc.go states them, not read from the tracker:
//
//	I   seq <= maxEnd[d]                 maxEnd: highest ack + window the receiver advertised
//	II  end >= end[d] - maxWin[r]        maxWin: the largest window r advertised (scaled)
//	III ack <= end[r]                    end: the next sequence number the sender will use
//	IV  ack >= end[r] - max(maxWin[d], 66000)
func TestTCPWindowEdges(t *testing.T) { forEachFamily(t, testTCPWindowEdges) }

func testTCPWindowEdges(t *testing.T, fam family) {
	type side struct {
		next    int64 // offset of the sender's next sequence number from its ISN
		maxWin  int64 // the largest window it advertised, scaled
		rcvNext int64 // the offset (from the receiver's ISN) it acknowledges
	}
	type setup struct {
		name   string
		wscale int    // shift offered in both SYNs; -1: no option
		win    uint16 // window field of the client's / server's ACK after the handshake
		swin   uint16
	}
	setups := []setup{
		// The SYNs offer 65535 bytes (never scaled); the ACKs then advertise
		// 1024<<7 = 131072 (client) and 1000<<7 = 128000 (server).
		{name: "wscale=7", wscale: 7, win: 1024, swin: 1000},
		// Without the option the ACKs' windows count as they are: 40000 and
		// 30000, below the SYNs' 65535, which stay the largest.
		{name: "no wscale", wscale: -1, win: 40000, swin: 30000},
	}
	const slack = 66000 // condition IV's least allowance (maxAckWindow, doc.go)

	for _, su := range setups {
		var cliWin, srvWin int64 = 65535, 65535
		if su.wscale >= 0 {
			cliWin, srvWin = max(cliWin, int64(su.win)<<su.wscale), max(srvWin, int64(su.swin)<<su.wscale)
		}
		// Each side's view after the handshake and one ACK from each: the
		// client's next is ISN+1, the server's ISN+1.
		sides := [2]side{
			Original: {next: 1, maxWin: cliWin, rcvNext: 1},
			Reply:    {next: 1, maxWin: srvWin, rcvNext: 1},
		}
		type edgeCase struct {
			name     string
			flags    uint8
			seq, ack int64 // offsets from the sender's / receiver's ISN
			payload  int
		}
		for _, d := range []Dir{Original, Reply} {
			s, r := sides[d], sides[d^1]
			// I: the receiver r allowed up to its ack (s.next) plus its
			// largest window.
			edgeI := s.next + r.maxWin
			// II: data may be as old as one of r's windows.
			edgeII := s.next - r.maxWin
			// III: r has sent up to r.next.
			edgeIII := r.next
			// IV: an ack may lag by s's largest window, at least the slack.
			edgeIV := r.next - max(s.maxWin, slack)

			// Each pair is (at the edge: accepted, one byte beyond: dropped).
			pairs := []struct {
				cond    string
				in, out edgeCase
				rst     bool // an inexact RST: accepted passes unobeyed
			}{
				{cond: "I data", in: edgeCase{"seq at the right edge", ACK | PSH, edgeI, s.rcvNext, 10},
					out: edgeCase{"seq one past the right edge", ACK | PSH, edgeI + 1, s.rcvNext, 10}},
				{cond: "II data", in: edgeCase{"end one window old", ACK | PSH, edgeII - 10, s.rcvNext, 10},
					out: edgeCase{"end one window and a byte old", ACK | PSH, edgeII - 11, s.rcvNext, 10}},
				{cond: "III ack", in: edgeCase{"ack of all sent", ACK, s.next, edgeIII, 0},
					out: edgeCase{"ack of one byte never sent", ACK, s.next, edgeIII + 1, 0}},
				{cond: "IV ack", in: edgeCase{"ack lagging the full allowance", ACK, s.next, edgeIV, 0},
					out: edgeCase{"ack lagging a byte more", ACK, s.next, edgeIV - 1, 0}},
				{cond: "I RST", rst: true, in: edgeCase{"RST at the right edge", RST, edgeI, 0, 0},
					out: edgeCase{"RST one past the right edge", RST, edgeI + 1, 0, 0}},
				// An RST's left edge is RCV.NXT, not condition II (RFC 5961
				// 3.2): at RCV.NXT it is exact and closes; just above it
				// is in the window (inexact); one below is outside.
				{cond: "RCV.NXT RST", rst: true, in: edgeCase{"RST a byte above RCV.NXT", RST, s.next + 1, 0, 0},
					out: edgeCase{"RST a byte below RCV.NXT", RST, s.next - 1, 0, 0}},
				{cond: "III RST+ACK", rst: true, in: edgeCase{"RST+ACK, inexact, acking all sent", RSTACK, s.next + 100, edgeIII, 0},
					out: edgeCase{"RST+ACK, inexact, acking a byte never sent", RSTACK, s.next + 100, edgeIII + 1, 0}},
				{cond: "IV RST+ACK", rst: true, in: edgeCase{"RST+ACK, inexact, ack lagging the full allowance", RSTACK, s.next + 100, edgeIV, 0},
					out: edgeCase{"RST+ACK, inexact, ack lagging a byte more", RSTACK, s.next + 100, edgeIV - 1, 0}},
			}
			for _, pr := range pairs {
				for _, isn := range edgeISNs {
					for _, ok := range []bool{true, false} {
						c := pr.in
						if !ok {
							c = pr.out
						}
						name := fmt.Sprintf("%s/%s/%v/%s/%s", su.name, isn.name, d, pr.cond, c.name)
						t.Run(name, func(t *testing.T) {
							h := newFamilyHarness(t, Policy{}, fam)
							e := &edgeConn{t: t, fam: &fam, cisn: isn.cisn, sisn: isn.sisn, wscale: su.wscale}
							e.handshake(h, su.win, su.swin)
							before := h.tb.Stats()
							v := h.send(e.seg(d, c.flags, c.seq, c.ack, c.payload, su.win, su.swin), 1025)
							switch {
							case ok && pr.rst:
								after := h.tb.Stats()
								if v.Action != Forward || v.State != TCPEstablished ||
									after.Counters[CtrRSTInexact] != before.Counters[CtrRSTInexact]+1 {
									t.Fatalf("%v %v (%v), want forwarded unobeyed (inexact RST counted)", v.Action, v.State, v.Reason)
								}
							case ok:
								if v.Action != Forward {
									t.Fatalf("%v (%v), want forward", v.Action, v.Reason)
								}
							case pr.rst:
								if v.Action != Drop || v.Reason != drop.RSTOutOfWindow {
									t.Fatalf("%v (%v), want drop %v", v.Action, v.Reason, drop.RSTOutOfWindow)
								}
							default:
								if v.Action != Drop || v.Reason != drop.OutOfWindow {
									t.Fatalf("%v (%v), want drop %v", v.Action, v.Reason, drop.OutOfWindow)
								}
							}
						})
					}
				}
			}
		}
	}
}

// edgeISNs are the base ISNs of TestTCPWindowEdges: small ones, and ones
// whose right edges wrap 2^32. Unlike ttISNs, no acknowledgement the test
// sends is 0, which an RST+ACK may carry meaning none (windowOK).
var edgeISNs = []struct {
	name       string
	cisn, sisn uint32
}{
	{"isn=low", 1000, 5000},
	{"isn=wrapping", 0xffffff00, 0xfffffff0},
}

// edgeConn builds the segments of TestTCPWindowEdges: SYNs offering 65535
// bytes and shift wscale (none if negative), later segments advertising
// the given window fields.
type edgeConn struct {
	t          *testing.T
	fam        *family
	cisn, sisn uint32
	wscale     int
}

func (e *edgeConn) seg(d Dir, flags uint8, seq, ack int64, n int, cwin, swin uint16) Packet {
	si, ri, win := e.cisn, e.sisn, cwin
	s := headertest.Spec{Src: e.fam.client, Dst: e.fam.server, Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 80}
	if d == Reply {
		si, ri, win = e.sisn, e.cisn, swin
		s.Src, s.Dst, s.SrcPort, s.DstPort = e.fam.server, e.fam.snat, 80, 1025
	}
	s.Flags, s.Seq, s.Window, s.Payload = flags, uint32(int64(si)+seq), win, make([]byte, n)
	if flags&ACK != 0 {
		s.Ack = uint32(int64(ri) + ack)
	}
	if flags&SYN != 0 {
		s.Window = 65535
		if e.wscale >= 0 {
			s.HasWScale, s.WScale = true, uint8(e.wscale)
		}
	}
	return pkt(e.t, s)
}

// handshake opens the connection and sends one ACK each way advertising the
// windows after the handshake.
func (e *edgeConn) handshake(h *harness, cwin, swin uint16) {
	e.t.Helper()
	for i, p := range []Packet{
		e.seg(Original, SYN, 0, 0, 0, cwin, swin),
		e.seg(Reply, SYNACK, 0, 1, 0, cwin, swin),
		e.seg(Original, ACK, 1, 1, 0, cwin, swin),
		e.seg(Reply, ACK, 1, 1, 0, cwin, swin),
	} {
		if v := h.send(p, 1025); v.Action != Forward {
			e.t.Fatalf("handshake step %d: %v (%v)", i, v.Action, v.Reason)
		}
	}
	if st := h.state(e.seg(Original, SYN, 0, 0, 0, cwin, swin).Key); st != TCPEstablished {
		e.t.Fatalf("after the handshake: %v", st)
	}
}

// TestTCPWindowScaleNeedsBothSYNs: RFC 7323 2.2, scaling is in effect only
// if both SYNs carried the option. With the option in the client's SYN only,
// the client's later window field 1024 means 1024 bytes, so the server may
// send no further than the 65535 bytes of the client's SYN window.
func TestTCPWindowScaleNeedsBothSYNs(t *testing.T) { forEachFamily(t, testTCPWindowScaleNeedsBothSYNs) }

func testTCPWindowScaleNeedsBothSYNs(t *testing.T, fam family) {
	for _, isn := range edgeISNs {
		t.Run(isn.name, func(t *testing.T) {
			h := newFamilyHarness(t, Policy{}, fam)
			e := &edgeConn{t: t, fam: &fam, cisn: isn.cisn, sisn: isn.sisn, wscale: 7}
			syn := e.seg(Original, SYN, 0, 0, 0, 1024, 1024)
			e.wscale = -1 // the server's SYN-ACK has no option
			for i, p := range []Packet{syn, e.seg(Reply, SYNACK, 0, 1, 0, 1024, 1024), e.seg(Original, ACK, 1, 1, 0, 1024, 1024)} {
				if v := h.send(p, 1025); v.Action != Forward {
					t.Fatalf("handshake step %d: %v (%v)", i, v.Action, v.Reason)
				}
			}
			// With 1024<<7 in force the server could send 131072 bytes.
			v := h.send(e.seg(Reply, ACK|PSH, 1+100000, 1, 10, 1024, 1024), 1025)
			if v.Action != Drop || v.Reason != drop.OutOfWindow {
				t.Fatalf("server data 100000 bytes ahead: %v (%v), want drop %v", v.Action, v.Reason, drop.OutOfWindow)
			}
			if v := h.send(e.seg(Reply, ACK|PSH, 1+65535-10, 1, 10, 1024, 1024), 1025); v.Action != Forward {
				t.Fatalf("server data inside the SYN's 65535 bytes: %v (%v)", v.Action, v.Reason)
			}
		})
	}
}

// TestTCPWindowOverrunWidens: a segment that starts inside the window but
// runs past its right edge (a window probe, or a window seen to shrink)
// widens what the receiver is taken to allow by the overrun, so the data
// just before it, retransmitted, is still within one window (condition II).
func TestTCPWindowOverrunWidens(t *testing.T) { forEachFamily(t, testTCPWindowOverrunWidens) }

func testTCPWindowOverrunWidens(t *testing.T, fam family) {
	const win = 65535 // no scaling: the SYNs' windows are the largest
	for _, isn := range edgeISNs {
		t.Run(isn.name, func(t *testing.T) {
			h := newFamilyHarness(t, Policy{}, fam)
			e := &edgeConn{t: t, fam: &fam, cisn: isn.cisn, sisn: isn.sisn, wscale: -1}
			e.handshake(h, 40000, 40000)
			// The client's right edge is 1 + 65535; this segment starts on it
			// and carries 1000 bytes past it.
			if v := h.send(e.seg(Original, ACK|PSH, 1+win, 1, 1000, 40000, 40000), 1025); v.Action != Forward {
				t.Fatalf("segment at the right edge: %v (%v)", v.Action, v.Reason)
			}
			// The client's next is now 1+65535+1000; one window back, widened
			// by the overrun, is 1: the 10 bytes ending there are not older
			// than a window.
			if v := h.send(e.seg(Original, ACK|PSH, 1-10, 1, 10, 40000, 40000), 1025); v.Action != Forward {
				t.Fatalf("retransmission ending at the old next: %v (%v), want forward", v.Action, v.Reason)
			}
			if v := h.send(e.seg(Original, ACK|PSH, 1-11, 1, 10, 40000, 40000), 1025); v.Action != Drop || v.Reason != drop.OutOfWindow {
				t.Fatalf("a byte older: %v (%v), want drop %v", v.Action, v.Reason, drop.OutOfWindow)
			}
		})
	}
}

// TestReincarnationForgetsOldWindows: a new incarnation of a tuple starts
// with no window state of the old one. The old connection's server
// advertised 1000<<7 bytes; the new one offers 65535 unscaled in its
// SYN-ACK, so client data 100000 bytes ahead is out of the new window.
func TestReincarnationForgetsOldWindows(t *testing.T) {
	forEachFamily(t, testReincarnationForgetsOldWindows)
}

func testReincarnationForgetsOldWindows(t *testing.T, fam family) {
	const N = ttNewISN
	for _, isn := range edgeISNs {
		t.Run(isn.name, func(t *testing.T) {
			h := newFamilyHarness(t, Policy{}, fam)
			e := &edgeConn{t: t, fam: &fam, cisn: isn.cisn, sisn: isn.sisn, wscale: 7}
			e.handshake(h, 1024, 1000)
			steps := []struct {
				d        Dir
				flags    uint8
				seq, ack int64
				act      Action
				state    State
			}{
				{Original, FINACK, 1, 1, Forward, TCPFinWait},
				{Reply, FINACK, 1, 2, Forward, TCPLastAck},
				{Original, ACK, 2, 2, Forward, TCPTimeWait},
				{Original, SYN, N, 0, Reopened, TCPSynSent},
				{Reply, SYNACK, N, N + 1, Forward, TCPSynRecv},
				{Original, ACK, N + 1, N + 1, Forward, TCPEstablished},
			}
			for i, s := range steps {
				if s.flags == SYN {
					e.wscale = -1 // the new SYNs offer no scaling
				}
				v := h.send(e.seg(s.d, s.flags, s.seq, s.ack, 0, 1024, 1000), 1025)
				if v.Action != s.act || v.State != s.state {
					t.Fatalf("step %d: %v %v (%v), want %v %v", i, v.Action, v.State, v.Reason, s.act, s.state)
				}
			}
			v := h.send(e.seg(Original, ACK|PSH, N+1+100000, N+1, 10, 1024, 1000), 1025)
			if v.Action != Drop || v.Reason != drop.OutOfWindow {
				t.Fatalf("client data 100000 bytes into the new connection: %v (%v), want drop %v", v.Action, v.Reason, drop.OutOfWindow)
			}
			if v := h.send(e.seg(Original, ACK|PSH, N+1+65535-10, N+1, 10, 1024, 1000), 1025); v.Action != Forward {
				t.Fatalf("client data inside the new SYN-ACK's window: %v (%v)", v.Action, v.Reason)
			}
		})
	}
}
