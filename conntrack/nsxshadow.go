package conntrack

import "github.com/edgegw/edge/drop"

// NSX shadow mode (Policy.NSXShadow).
//
// Edge keeps its own verdicts and asks, on the same packets, whether the
// NSX-like semantics of Policy.NSXCompat would have dropped a SYN-ACK that
// edge forwards: the one verdict of that mode that fails connections (the
// 502 incident). NSX drops a SYN-ACK that meets a closing entry, and its
// closing entries outlive edge's in two ways, which the shadow remembers:
//
//   - a FIN without state (a delayed FIN of an old connection) creates one
//     in NSX; edge drops the FIN (no_state) and creates nothing;
//   - a SYN on a closing entry passes in NSX and the entry stays closing;
//     edge starts a new incarnation (SYN_SENT).
//
// Either way the shard notes the tuple (the hash of the key NSX's entry
// would have: the FIN's own, or the closing flow's original key), the
// closing state that entry would be in and when a packet last restarted its
// timer, in a small direct-mapped cache (bounded; a collision replaces the
// older note). A flow finds a note under its original key (a client's
// delayed FIN) and, untranslated, its reply key (a server's; see nsxHashes). The
// SYNs of the new connection restart that timer, as they would in NSX. A
// SYN-ACK that edge forwards (or that starts a new incarnation) while the
// flow's own state is closing, or while a note for its tuple is live under
// the flow's profile, is one NSX would have dropped
// as nsx_synack_on_closing: counted (nsx_would_drop per SYN-ACK,
// nsx_would_fail once per connection, per destination too) and reported
// once per connection (EvNSXWouldDrop).
//
// What it approximates: NSX creates the stray FIN's entry only if its
// rules let the FIN through; the shadow assumes they do whenever they let
// the new connection's SYN through (same tuple). It judges SYN-ACKs only:
// after NSX has dropped one the two boxes see different traffic, and edge
// sees only its own. All of it runs on the handshake and no-state paths
// when the policy asks for it; the established path never looks.

// nsxNotes is the size of a shard's cache of NSX-only closing entries.
const nsxNotes = 1024

// nsxNote is one tuple NSX would hold as a closing entry.
type nsxNote struct {
	h       uint64 // the original key's table hash, |1; 0 = empty
	last    uint32 // tick of the last packet that restarted NSX's timer
	counted uint32 // ISN of the connection already counted as failing (with countedOK)
	state   State  // the closing state NSX's entry would be in
	ok      bool   // counted is set
}

type nsxCache [nsxNotes]nsxNote

func (c *nsxCache) slot(h uint64) *nsxNote { return &c[(h>>7)&(nsxNotes-1)] }

// shadows reports whether the policy asks for the NSX shadow: NSXShadow
// without NSXCompat (in NSX mode the verdicts are NSX's already).
func (pol *policy) shadows() bool { return pol.NSXShadow && !pol.NSXCompat }

// nsxNote notes that NSX would hold tuple k (hash h) as a closing entry in
// state st, its timer restarted at now.
func (s *Shard) nsxNote(h uint64, st State, now Time) {
	*s.nsx.slot(h | 1) = nsxNote{h: h | 1, last: ticks(now), state: st}
}

// nsxLive returns the live note for a flow with key hashes h and rh
// (original and reply) and timer profile profile at now, or nil: NSX's
// entry would have expired after its state's timeout since the last packet
// that restarted it.
func (s *Shard) nsxLive(h, rh uint64, profile uint8, pol *policy, now Time) *nsxNote {
	for _, x := range [2]uint64{h | 1, rh | 1} {
		n := s.nsx.slot(x)
		if n.h == x && !expired(n.last+pol.set.timeout(profile, n.state), ticks(now)) {
			return n
		}
	}
	return nil
}

// nsxHashes returns the hashes of the keys under which NSX's entry for flow
// f may be noted: its original key and, for an untranslated flow, its reply
// key (a FIN from the server side). A translated flow's reply key is not
// one: NSX compatibility mode makes a FIN from the outside toward a
// translated port an entry of its own, and SNAT then gives the new
// connection another port.
func (s *Shard) nsxHashes(f *flow) (h, rh uint64) {
	h = s.hash(&f.key)
	if f.natAddr != 0 {
		return h, h
	}
	rk := f.key.Reverse()
	return h, s.hash(&rk)
}

// nsxNoteStray notes a FIN without state, which NSX would make a closing
// entry of. p missed the table; only a FIN+ACK qualifies (mayCreate).
func (s *Shard) nsxNoteStray(p *Packet, now Time) {
	s.nsxNote(s.hash(&p.Key), TCPFinWait, now)
}

// nsxRefresh restarts the timer of NSX's note for flow f (key hashes h and
// rh), if live: a SYN of the new connection passed NSX's closing entry.
func (s *Shard) nsxRefresh(f *flow, h, rh uint64, pol *policy, now Time) {
	if n := s.nsxLive(h, rh, f.profile, pol, now); n != nil {
		n.last = ticks(now)
	}
}

// tcpSynAckShadow is tcpSynAck with the shadow's judgement beside it.
func (s *Shard) tcpSynAckShadow(f *flow, slot uint32, d Dir, p *Packet, pol *policy, now Time) tcpVerdict {
	h, rh := s.nsxHashes(f)
	closing, prev, last := f.state.closing(), f.state, f.lastSeen(pol)
	n := s.nsxLive(h, rh, f.profile, pol, now)
	v := s.tcpSynAck(f, slot, d, p, now)
	if !closing && n == nil || v.act != Forward && v.act != Reopened {
		return v
	}
	// NSX drops this SYN-ACK; edge lets it through.
	s.count(CtrNSXWouldDrop)
	if n == nil {
		// A closing entry edge still has: NSX has it too.
		n = s.nsx.slot(h | 1)
		*n = nsxNote{h: h | 1, last: last, state: prev}
	}
	isn := f.isn[Original]
	if n.ok && n.counted == isn {
		return v // this connection was counted at its first SYN-ACK
	}
	n.counted, n.ok = isn, true
	s.count(CtrNSXWouldFail)
	s.sig(&f.key, DestNSXWouldFail)
	s.emit(f, EvNSXWouldDrop, drop.NSXSynAckOnClosing, d, p.Flags, now)
	return v
}
