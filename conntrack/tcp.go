package conntrack

import (
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// TCP tracking. The state machine is documented in doc.go; this file is its
// implementation, one function per segment class (SYN, SYN-ACK, RST, and
// everything else), and the window check.

const (
	fSYN = header.TCPFlagSYN
	fACK = header.TCPFlagACK
	fFIN = header.TCPFlagFIN
	fRST = header.TCPFlagRST
)

// Sequence-number comparisons modulo 2^32 (RFC 793 section 3.3).
func seqBefore(a, b uint32) bool { return int32(a-b) < 0 }
func seqAfter(a, b uint32) bool  { return int32(a-b) > 0 }

// segEnd returns seq + length of the segment, SYN and FIN counting one each.
func segEnd(p *Packet) uint32 {
	end := p.Seq + uint32(p.Payload)
	if p.Flags&fSYN != 0 {
		end++
	}
	if p.Flags&fFIN != 0 {
		end++
	}
	return end
}

// maxAckWindow is the least distance an ACK may lag behind what the other side
// has sent: a full unscaled window plus slack (the bound of condition IV).
const maxAckWindow = 66000

// initSide sets direction d's window state from a SYN or SYN-ACK it sent.
// If the other side has already advertised a window (its SYN), d may send
// that far beyond its SYN (as pf does); otherwise only up to its end.
func (f *flow) initSide(d Dir, p *Packet) {
	end := segEnd(p)
	f.isn[d] = p.Seq
	f.end[d] = end
	f.maxEnd[d] = end + f.maxWin[d^1]
	f.maxWin[d] = max(uint32(p.Window), 1) // SYN windows are never scaled (RFC 7323 2.2)
	s := uint8(wscaleNone)
	if p.WScale >= 0 {
		s = uint8(min(p.WScale, 14))
	}
	f.setScale(d, s)
}

// settleScales applies RFC 7323 2.2: scaling is in effect only if both
// SYNs carried the option; otherwise both shifts are 0.
func (f *flow) settleScales() {
	if f.wscale>>4 == wscaleNone || f.wscale&0xf == wscaleNone {
		f.wscale = 0
	}
}

// inWindow checks segment p from direction d against the window state and,
// if it passes, advances that state. The four conditions are van Rooij's:
//
//	I   seq <= maxEnd[d]                  data starts within what the receiver allowed
//	II  end >= end[d] - maxWin[r]         data is not older than one window
//	III ack <= end[r]                     no acknowledgement of data never sent
//	IV  ack >= end[r] - maxAckWindow      the acknowledgement is not ancient
//
// With liberal, the checks are skipped but the state still advances.
func (f *flow) inWindow(d Dir, p *Packet, liberal bool) bool {
	r := d ^ 1
	seq, ack, end := p.Seq, p.Ack, segEnd(p)
	if !liberal {
		cack := ack
		if p.Flags&fACK == 0 || (p.Flags&fRST != 0 && ack == 0) {
			cack = f.end[r] // no acknowledgement to check
		}
		ackWin := max(f.maxWin[d], maxAckWindow)
		if seqAfter(seq, f.maxEnd[d]) || seqBefore(end, f.end[d]-f.maxWin[r]) ||
			seqAfter(cack, f.end[r]) || seqBefore(cack, f.end[r]-ackWin) {
			return false
		}
	}
	f.advanceTo(d, p, ack, end)
	return true
}

// windowOK evaluates the four conditions without changing anything.
func (f *flow) windowOK(d Dir, p *Packet) bool {
	r := d ^ 1
	seq, ack, end := p.Seq, p.Ack, segEnd(p)
	if p.Flags&fACK == 0 || (p.Flags&fRST != 0 && ack == 0) {
		// No acknowledgement to check (some stacks send RST+ACK with ack 0).
		ack = f.end[r]
	}
	ackWin := max(f.maxWin[d], maxAckWindow)
	return !seqAfter(seq, f.maxEnd[d]) && !seqBefore(end, f.end[d]-f.maxWin[r]) &&
		!seqAfter(ack, f.end[r]) && !seqBefore(ack, f.end[r]-ackWin)
}

// advance moves direction d's window state past segment p.
func (f *flow) advance(d Dir, p *Packet) { f.advanceTo(d, p, p.Ack, segEnd(p)) }

func (f *flow) advanceTo(d Dir, p *Packet, ack, end uint32) {
	r := d ^ 1
	win := uint32(p.Window)
	if p.Flags&fSYN == 0 {
		win <<= f.scale(d) // the window of a SYN is never scaled (RFC 7323 2.2)
	}
	if f.maxWin[d] < win {
		f.maxWin[d] = win
	}
	if seqAfter(end, f.end[d]) {
		f.end[d] = end
	}
	if f.maxWin[r] != 0 && seqAfter(end, f.maxEnd[d]) {
		// The sender went past the advertised window (a window probe, or
		// a window we saw shrink): widen what we allow the receiver.
		f.maxWin[r] += end - f.maxEnd[d]
	}
	if p.Flags&fACK != 0 {
		if lim := ack + max(win, 1); seqAfter(lim, f.maxEnd[r]) {
			f.maxEnd[r] = lim
		}
	}
}

// tcpVerdict is what a TCP handler decided.
type tcpVerdict struct {
	act    Action
	reason drop.Reason
}

var (
	tcpPass = tcpVerdict{act: Forward}
)

func tcpDrop(r drop.Reason) tcpVerdict { return tcpVerdict{act: Drop, reason: r} }

// staleOr names the reason for a packet that does not fit the current
// incarnation: if the tuple had an earlier incarnation and the current one
// is still in its handshake, the packet most likely belongs to the old one.
func staleOr(f *flow, r drop.Reason) drop.Reason {
	if f.gen > 0 && f.state <= TCPSynRecv {
		return drop.StaleIncarnation
	}
	return r
}

// trackTCP runs segment p (direction d) through the state machine of the
// flow in slot. It updates state, window and flags; the caller refreshes the
// timer and counts packets when the verdict is to forward.
func (s *Shard) trackTCP(slot uint32, d Dir, p *Packet, pol *policy, now Time) tcpVerdict {
	f := &s.flows[slot]
	switch fl := p.Flags; {
	case fl&fRST != 0:
		prev := f.state
		v := s.tcpRST(f, d, p, pol)
		if v.act == Forward && prev != TCPClose && f.state == TCPClose {
			s.sigReset(f, d, prev, pol, now)
		}
		return v
	case fl&(fSYN|fACK) == fSYN|fACK:
		if pol.shadows() {
			return s.tcpSynAckShadow(f, slot, d, p, pol, now)
		}
		return s.tcpSynAck(f, slot, d, p, now)
	case fl&fSYN != 0:
		return s.tcpSYN(f, slot, d, p, now)
	}
	return s.tcpSegment(f, d, p, pol, now)
}

// tcpSYN handles a SYN without ACK.
func (s *Shard) tcpSYN(f *flow, slot uint32, d Dir, p *Packet, now Time) tcpVerdict {
	if f.state.closing() && s.t.pol.Load().NSXCompat {
		// NSX compatibility: the SYN passes; the closing entry stays.
		return tcpPass
	}
	if d == Reply {
		switch f.state {
		case TCPSynSent: // simultaneous open (RFC 793 figure 8)
			f.initSide(Reply, p)
			f.settleScales()
			f.state = TCPSynSent2
			f.flags |= flagSimOpen
			return tcpPass
		case TCPSynSent2:
			if p.Seq == f.isn[Reply] {
				return tcpPass
			}
		case TCPTimeWait, TCPClose:
			// The other side opens a connection on the reversed tuple:
			// end this incarnation; the caller treats the SYN as new.
			s.release(slot, CloseReplaced, now)
			return tcpVerdict{act: Open}
		}
		return tcpDrop(drop.InvalidState)
	}
	switch st := f.state; {
	case st == TCPSynSent:
		if e := s.sig(&f.key, DestSYNRetransmits); e != nil && f.pkts[Original] == 1 {
			e.ctr[DestSYNRetried]++ // the flow's first SYN so far was its only one
		}
		if p.Seq != f.isn[Original] {
			// The client gave up and retried with a new ISN.
			s.count(CtrSYNNewISN)
			f.initSide(Original, p)
			f.synISN = p.Seq
		}
		f.flags &^= flagChallenge
		if pol := s.t.pol.Load(); pol.shadows() {
			h, rh := s.nsxHashes(f)
			s.nsxRefresh(f, h, rh, pol, now) // it passes NSX's closing entry too
		}
		return tcpPass
	case st == TCPSynSent2:
		if p.Seq == f.isn[Original] {
			return tcpPass
		}
		return tcpDrop(drop.InvalidState)
	case st.closing():
		// N2: a SYN on a closing, TIME_WAIT or closed entry starts a new
		// incarnation of the tuple. The old one goes to history.
		if s.t.pol.Load().shadows() {
			s.nsxNote(s.hash(&f.key), st, now) // NSX: the SYN passes, the entry stays closing
		}
		s.reincarnate(f, CloseSuperseded, now)
		f.initSide(Original, p)
		f.synISN = p.Seq
		f.state = TCPSynSent
		return tcpVerdict{act: Reopened}
	default: // SYN_RECV, ESTABLISHED
		if p.Seq == f.isn[Original] {
			return tcpPass // retransmission of the handshake's SYN
		}
		// A SYN with a new ISN on a synchronized flow: the client may have
		// lost its connection and reused the port, or it may be forged.
		// Note it and let it through without touching the flow; if the
		// SYN-ACK that answers it comes back, a new incarnation starts
		// then (tcpSynAck). The old connection's challenge ACK (RFC 5961
		// 4) passes as an ordinary in-window ACK.
		s.count(CtrSYNOnOpen)
		f.flags |= flagPendingSYN
		f.synISN = p.Seq
		return tcpPass
	}
}

// tcpSynAck handles a SYN-ACK.
func (s *Shard) tcpSynAck(f *flow, slot uint32, d Dir, p *Packet, now Time) tcpVerdict {
	if f.state.closing() && s.t.pol.Load().NSXCompat {
		// NSX compatibility: the incident. Never in edge's own mode (N2).
		return tcpDrop(drop.NSXSynAckOnClosing)
	}
	if d == Original {
		// Only in a simultaneous open does the originator send a SYN-ACK,
		// acknowledging the reply side's SYN.
		if f.flags&flagSimOpen == 0 || (f.state != TCPSynSent2 && f.state != TCPSynRecv) {
			return tcpDrop(drop.InvalidState)
		}
		if p.Ack != f.isn[Reply]+1 || p.Seq != f.isn[Original] {
			return tcpDrop(drop.SynAckBadAck)
		}
		f.state = TCPSynRecv
		f.flags &^= flagChallenge
		f.advance(Original, p)
		return tcpPass
	}
	// N2: a SYN-ACK that acknowledges the SYN we forwarded is the answer of
	// the flow that SYN opened, whatever state the entry is in: it is never
	// dropped.
	if f.flags&flagPendingSYN != 0 && p.Ack == f.synISN+1 {
		// It answers a SYN noted on a synchronized flow: the endpoints agree
		// that a new connection is starting. Rebuild from the noted SYN; its
		// window and scale were not kept, so the originator's window starts
		// at the unscaled maximum and its shift at the maximum when scaling
		// is on, which can only widen the checks.
		isn := f.synISN
		s.reincarnate(f, CloseSuperseded, now)
		f.isn[Original], f.synISN = isn, isn
		f.end[Original], f.maxEnd[Original], f.maxWin[Original] = isn+1, isn+1, 65535
		f.setScale(Original, 14)
		f.initSide(Reply, p)
		f.settleScales()
		f.advance(Reply, p)
		f.state = TCPSynRecv
		return tcpVerdict{act: Reopened}
	}
	if f.acksSYN(p.Ack) {
		switch {
		case f.state == TCPSynSent || f.state == TCPSynSent2:
			s.sigHist(&f.key, HistHandshakeRTT, f.idleMs(s.t.pol.Load(), now))
			f.flags &^= flagChallenge
			f.initSide(Reply, p)
			f.settleScales()
			f.advance(Reply, p)
			f.state = TCPSynRecv
		case f.state == TCPSynRecv && p.Seq != f.isn[Reply]:
			f.initSide(Reply, p) // the server restarted its side
			f.settleScales()
			f.advance(Reply, p)
		case f.state > TCPSynRecv:
			// A late repeat of the handshake's SYN-ACK (the server did not
			// see the final ACK, or a duplicate): forwarded, no change.
			s.count(CtrSynAckRetransmit)
		}
		return tcpPass
	}
	if f.state.closing() && f.creator() == CreatedByPickup {
		// The NSX orphan: a closing entry created without a SYN cannot
		// judge a handshake. Release it; the SYN-ACK is then looked at as
		// a packet without state, subject to policy (Policy.PickUp).
		s.release(slot, CloseReplaced, now)
		return tcpVerdict{act: Open}
	}
	return tcpDrop(staleOr(f, drop.SynAckBadAck))
}

// acksSYN reports whether ack acknowledges this incarnation's SYN: its
// ISN+1, or the end of the data it carried (TCP Fast Open, RFC 7413).
func (f *flow) acksSYN(ack uint32) bool {
	return ack == f.isn[Original]+1 || (f.state <= TCPSynRecv && ack == f.end[Original] && f.flags&flagSimOpen == 0)
}

// tcpRST handles a segment with RST. RFC 5961 3.2: only an RST whose
// sequence number is exactly the next expected one resets the connection;
// one elsewhere in the window is let through for the endpoint to answer
// with a challenge ACK, but changes nothing here.
func (s *Shard) tcpRST(f *flow, d Dir, p *Packet, pol *policy) tcpVerdict {
	switch f.state {
	case TCPSynSent:
		if d == Reply {
			// RFC 793 3.4: in SYN-SENT an RST is acceptable if it
			// acknowledges the SYN.
			if p.Flags&fACK != 0 && f.acksSYN(p.Ack) {
				f.state = TCPClose
				return tcpPass
			}
			return tcpDrop(staleOr(f, drop.RSTOutOfWindow))
		}
		if f.flags&flagChallenge != 0 && p.Seq == f.end[Reply] {
			// The client resets the old connection whose challenge ACK it
			// was just shown: forward it, our new SYN_SENT is unaffected.
			s.count(CtrRSTToChallenge)
			return tcpPass
		}
		if p.Seq == f.end[Original] || p.Seq == f.isn[Original]+1 {
			f.state = TCPClose
			return tcpPass
		}
		return tcpDrop(drop.RSTOutOfWindow)
	case TCPSynSent2:
		if p.Seq == f.end[d] {
			f.state = TCPClose
			return tcpPass
		}
		return tcpDrop(drop.RSTOutOfWindow)
	}
	// An RST is checked but never advances the window: an inexact one
	// changes nothing, an exact one ends the flow. RFC 5961 3.2 accepts
	// an RST only if RCV.NXT <= seq < RCV.NXT+RCV.WND, and end[d] is the
	// receiver's RCV.NXT as far as edge can tell: unlike a data segment,
	// which may retransmit bytes before it, an RST below it is outside
	// the window.
	liberal := pol.Liberal || f.flags&flagLiberal != 0
	exact := p.Seq == f.end[d]
	if !exact && !liberal && (seqBefore(p.Seq, f.end[d]) || !f.windowOK(d, p)) {
		return tcpDrop(staleOr(f, drop.RSTOutOfWindow))
	}
	switch {
	case f.state == TCPClose:
		// Already closed: a repeated RST passes and changes nothing.
	case !exact:
		s.count(CtrRSTInexact)
	case f.state == TCPTimeWait:
		// RFC 1337: an RST must not assassinate TIME-WAIT.
		s.count(CtrRSTInTimeWait)
	default:
		// A SYN noted before keeps waiting for its SYN-ACK (N2): the RST
		// ends the old connection, not the new one's handshake.
		f.state = TCPClose
	}
	return tcpPass
}

// tcpSegment handles everything without SYN or RST: ACKs, data, FINs.
func (s *Shard) tcpSegment(f *flow, d Dir, p *Packet, pol *policy, now Time) tcpVerdict {
	fin := p.Flags&fFIN != 0
	switch f.state {
	case TCPSynSent:
		if d == Reply && !fin && p.Payload == 0 && f.flags&flagChallenge == 0 {
			// A pure ACK answering our SYN: the server still holds an old
			// connection on this tuple and sends a challenge ACK (RFC
			// 5961 4). Let it through once so the client can reset the
			// old connection; remember its ack to recognise that RST.
			s.count(CtrChallengeACK)
			f.flags |= flagChallenge
			f.end[Reply] = p.Ack
			return tcpVerdict{act: Forward, reason: drop.None}
		}
		return tcpDrop(staleOr(f, drop.InvalidState))
	case TCPSynSent2:
		return tcpDrop(drop.InvalidState)
	case TCPClose:
		if !fin && p.Payload == 0 {
			return tcpPass
		}
		if clientDataAfterServerClose(f, d, p) {
			s.sigRace(f, pol, now)
		}
		return tcpDrop(drop.DataOnClosed)
	}
	liberal := pol.Liberal || f.flags&flagLiberal != 0
	if !f.inWindow(d, p, liberal) {
		return tcpDrop(staleOr(f, drop.OutOfWindow))
	}
	if f.state != TCPEstablished && clientDataAfterServerClose(f, d, p) {
		s.sigRace(f, pol, now) // before the timer restarts: the delay is from the server's close
	}
	r := d ^ 1
	init := Original
	if f.flags&flagCloseByRep != 0 {
		init = Reply
	}
	switch f.state {
	case TCPSynRecv:
		// The final ACK of the handshake acknowledges the other side's SYN
		// (either side in a simultaneous open).
		if p.Flags&fACK != 0 && !seqBefore(p.Ack, f.isn[r]+1) && (d == Original || f.flags&flagSimOpen != 0) {
			f.state = TCPEstablished
			s.sig(&f.key, DestHandshakes)
			if fin {
				f.startClose(d)
			}
		}
	case TCPEstablished:
		if fin {
			if d == Reply {
				s.sigTime(&f.key, DestServerCloses, HistServerIdleClose, f.idleMs(pol, now))
			}
			f.startClose(d)
		}
	case TCPFinWait, TCPCloseWait:
		switch {
		case fin && d != init:
			f.state = TCPLastAck
		case f.state == TCPFinWait && d != init && !seqBefore(p.Ack, f.end[init]):
			f.state = TCPCloseWait // the first FIN is acknowledged
		}
	case TCPLastAck:
		if d == init && !fin && !seqBefore(p.Ack, f.end[r]) {
			f.state = TCPTimeWait // the last FIN is acknowledged
		}
	}
	return tcpPass
}

// startClose records that direction d sent the first FIN.
func (f *flow) startClose(d Dir) {
	f.state = TCPFinWait
	if d == Reply {
		f.flags |= flagCloseByRep
	} else {
		f.flags &^= flagCloseByRep
	}
}

// reincarnate ends f's current incarnation (to history) and prepares the slot
// for the next one: same tuple and translation, generation + 1, fresh TCP
// state that the caller fills from the packet. The caller reports Reopened,
// which makes Track count and emit the event once the new state is set.
func (s *Shard) reincarnate(f *flow, why CloseReason, now Time) {
	s.record(f, why, now)
	f.gen++
	f.flags = uint8(CreatedBySYN)
	f.created = seconds(now)
	f.end, f.maxEnd, f.maxWin, f.isn, f.pkts = [2]uint32{}, [2]uint32{}, [2]uint32{}, [2]uint32{}, [2]uint32{}
	f.wscale = wscaleNone<<4 | wscaleNone
}
