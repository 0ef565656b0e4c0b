package diag

import (
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
)

// The rules, one per pattern, read each event with the state of its tuple
// and destination. What each can tell from today's events, and what it
// would need, is in the package documentation.

func (a *Analyzer) rules(ev *Event, ts *tupleState, d *destState, dir Dir) {
	switch ev.Kind {
	case KindOpened, KindReopened:
		a.opened(ev, ts, d)
	case KindClosed:
		if ev.Flags&FlagRST != 0 {
			ts.resetAt, ts.resetSampled = ev.Time, false
			d.resets++
			switch {
			case dir == DirReply:
				// The server reset a connection: with the direction
				// known, that alone is the race's server side.
				t := a.record(d, KeepaliveRace, Failing, ts, ev.Time)
				t.counts["server_resets"]++
			case dir == DirUnknown && ev.Flags&FlagACK == 0:
				// A reset without ACK answers a segment that found no
				// connection (RFC 9293 3.10.7.1): its sender had closed
				// the connection and the other side still sent on it.
				// An end that aborts (SO_LINGER 0, unread data) sends
				// RST+ACK instead, and a SYN is answered with RST+ACK.
				t := a.record(d, KeepaliveRace, Failing, ts, ev.Time)
				t.counts["resets_answering_a_segment"]++
				if !ts.opened.IsZero() {
					t.dur("connection_age_at_reset", ev.Time.Sub(ts.opened))
				}
			}
		}
	case KindExpired, KindEvicted:
		a.removed(ev, ts, d)
	case KindDropped:
		a.dropped(ev, ts, d, dir)
	case KindRefused:
		a.refused(ev, ts, d)
	case KindSNATExhausted:
		t := a.record(d, SNATExhaustion, Failing, ts, ev.Time)
		t.counts["refused_events"]++
	case KindNSXWouldDrop:
		// Shadow mode: edge forwarded a SYN-ACK that NSX compatibility
		// mode would have dropped (a closing entry NSX would still hold).
		// Conntrack reports each connection once; a repeat is counted
		// once too.
		t := a.record(d, StrayFINPortReuse, Prevented, ts, ev.Time)
		if ts.counted&countedNSX == 0 {
			ts.counted |= countedNSX
			t.counts["nsx_would_fail"]++
		}
	case KindICMPSent:
		if ev.Reason == drop.NSXSynAckOnClosing {
			t := d.tally(StrayFINPortReuse, Failing)
			t.counts["icmp_port_unreachable_sent"]++
		}
	}
}

// countedNSX is the bit of tupleState.counted (above the patterns' bits)
// that marks the connection counted in nsx_would_fail.
const countedNSX = 1 << 7

var _ [7 - numPatterns]struct{} // the patterns' bits stay below it

// opened handles a new flow or a new incarnation of a tuple.
func (a *Analyzer) opened(ev *Event, ts *tupleState, d *destState) {
	syn := ev.Flags&FlagSYN != 0 || ev.Kind == KindReopened
	if ev.Kind == KindOpened && ev.Flags&(FlagFIN|FlagSYN) == FlagFIN {
		// NSX compatibility mode: a FIN without state made a CLOSING entry.
		t := d.tally(StrayFINPortReuse, Failing)
		t.counts["closing_entries_from_stray_fin"]++
		return
	}
	if !syn {
		d.opened++ // UDP, ICMP
		return
	}
	d.opened++
	if !ts.strayFIN.IsZero() && ev.Time.Sub(ts.strayFIN) <= a.opt.StrayWindow {
		// A FIN of an earlier connection came without state, and a new
		// connection reuses the tuple: an NSX-style firewall would have
		// made the FIN a CLOSING entry and dropped this one's SYN-ACK.
		gap := ev.Time.Sub(ts.strayFIN)
		n := ts.strayFINs
		ts.counted &^= 1 << StrayFINPortReuse
		t := a.record(d, StrayFINPortReuse, Prevented, ts, ev.Time)
		t.counts["stray_fins_dropped_no_state"] += n
		t.dur("stray_fin_to_reuse", gap)
	}
	// A fresh connection on the tuple: what happened to the previous one
	// is settled (a normal close followed by a SYN is not a race). It is
	// counted once whatever else shows the port reuse it survived (the
	// shadow's nsx_would_drop, its stray FIN dropped stale later).
	keep := uint8(0)
	if !ts.strayFIN.IsZero() && ev.Time.Sub(ts.strayFIN) <= a.opt.StrayWindow {
		keep = 1 << StrayFINPortReuse
	}
	ts.strayFIN, ts.strayFINs = time.Time{}, 0
	ts.resetAt, ts.expiredAt = time.Time{}, time.Time{}
	ts.opened = ev.Time
	ts.counted = keep
}

// synced reports whether a flow in state s had an answer and was still open
// (a connection in use). LAST_ACK and TIME_WAIT are not: both ends had
// closed, and what comes after such a flow expired (its last ACK, a
// retransmitted or delayed FIN) fails nothing.
func synced(s conntrack.State) bool {
	switch s {
	case conntrack.TCPEstablished, conntrack.TCPFinWait, conntrack.TCPCloseWait,
		conntrack.TCPSynRecv, conntrack.UDPMultiple, conntrack.ICMPReplied:
		return true
	}
	return false
}

// removed handles a flow removed by its idle timer or evicted.
func (a *Analyzer) removed(ev *Event, ts *tupleState, d *destState) {
	switch {
	case ev.State == conntrack.TCPSynSent || ev.State == conntrack.TCPSynSent2:
		t := a.record(d, SYNUnanswered, Failing, ts, ev.Time)
		t.counts[ev.Kind.String()+"_in_syn_sent"]++
		if !ts.opened.IsZero() {
			t.dur("syn_unanswered_for", ev.Time.Sub(ts.opened))
		}
	case ev.Kind == KindExpired && synced(ev.State):
		ts.expiredAt, ts.expiredState, ts.expiredIdle, ts.expiredReset = ev.Time, ev.State, ev.Idle, ev.Reset
		if ev.Reset {
			// idle_expiry: reset: edge told both ends at once, so neither
			// fails later on a connection it believes open.
			t := a.record(d, IdleExpiry, Prevented, ts, ev.Time)
			t.counts["expired_with_reset"]++
			if ev.Idle > 0 {
				t.dur("idle_at_expiry", ev.Idle)
			}
			ts.counted &^= 1 << IdleExpiry // a packet after it still counts the connection as failing
		}
	}
}

func inHandshake(s conntrack.State) bool {
	return s == conntrack.TCPSynSent || s == conntrack.TCPSynSent2 || s == conntrack.TCPSynRecv
}

// raceReason reports the drops of a packet that comes after its connection
// was reset.
func raceReason(r drop.Reason) bool {
	switch r {
	case drop.DataOnClosed, drop.NoState, drop.OutOfWindow, drop.InvalidState, drop.StaleIncarnation:
		return true
	}
	return false
}

// dropped handles a dropped packet.
func (a *Analyzer) dropped(ev *Event, ts *tupleState, d *destState, dir Dir) {
	fl := ev.Flags
	tcp := ev.Tuple.Proto == protoTCP
	switch r := ev.Reason; {
	case r == drop.NSXSynAckOnClosing:
		t := a.record(d, StrayFINPortReuse, Failing, ts, ev.Time)
		t.counts["synack_dropped_on_closing"]++
	case tcp && fl&(FlagFIN|FlagSYN) == FlagFIN && (r == drop.StaleIncarnation || inHandshake(ev.State) && raceReason(r)):
		// A FIN of an older incarnation of a reused tuple (no FIN can
		// belong to a connection still in its handshake), dropped without
		// touching the new one.
		t := a.record(d, StrayFINPortReuse, Prevented, ts, ev.Time)
		t.counts["stray_fins_dropped_"+r.String()]++
	case !ts.expiredAt.IsZero() && ev.Time.Sub(ts.expiredAt) <= a.opt.IdleWindow && !(tcp && fl&FlagSYN != 0):
		t := a.record(d, IdleExpiry, Failing, ts, ev.Time)
		t.counts["packets_after_expiry"]++
		if ts.expiredState != conntrack.StateNone { // the first packet after this expiry
			t.counts["expired_in_"+stateName(ts.expiredState)]++
			if ts.expiredReset {
				t.counts["expired_with_reset"]++
			} else {
				t.counts["expired_silently"]++
			}
			t.dur("expiry_to_next_packet", ev.Time.Sub(ts.expiredAt))
			if ts.expiredIdle > 0 {
				t.dur("idle_at_expiry", ts.expiredIdle)
				t.dur("idle_before_next_packet", ts.expiredIdle+ev.Time.Sub(ts.expiredAt))
			}
			ts.expiredState = conntrack.StateNone
		}
	case tcp && !ts.resetAt.IsZero() && ev.Time.Sub(ts.resetAt) <= a.opt.ReuseWindow &&
		fl&FlagSYN == 0 && dir != DirReply && raceReason(r):
		t := a.record(d, KeepaliveRace, Failing, ts, ev.Time)
		t.counts["packets_after_reset"]++
		if !ts.resetSampled { // the first packet after this reset
			ts.resetSampled = true
			t.dur("reset_to_next_packet", ev.Time.Sub(ts.resetAt))
		}
	case tcp && r == drop.NoState && fl&(FlagFIN|FlagSYN) == FlagFIN:
		if ts.strayFIN.IsZero() {
			ts.strayFIN = ev.Time
		}
		ts.strayFINs++
	case snatReason(r):
		t := a.record(d, SNATExhaustion, Failing, ts, ev.Time)
		t.counts["dropped_"+r.String()]++
	}
}

func snatReason(r drop.Reason) bool {
	switch r {
	case drop.SNATExhausted, drop.SNATProbeLimit, drop.SNATMappingsFull:
		return true
	}
	return false
}

// refused handles a new flow refused.
func (a *Analyzer) refused(ev *Event, ts *tupleState, d *destState) {
	switch r := ev.Reason; {
	case r == drop.TableFull || r == drop.ProbeLimit:
		t := a.record(&a.global, TableFull, Failing, ts, ev.Time)
		t.counts["refused_"+r.String()]++
		if len(t.counts) < 64 {
			t.counts["refused_toward "+d.ep.ap.String()]++
		}
	case snatReason(r):
		t := a.record(d, SNATExhaustion, Failing, ts, ev.Time)
		t.counts["refused_"+r.String()]++
	}
}

// AddFlows analyses a snapshot of live flows taken at time at (for
// example `edge flows state=syn_sent` at the end of the window): flows
// still waiting for a SYN-ACK after Options.SYNAge, or whose SYN was sent
// more than once, are SYNs without answer.
func (a *Analyzer) AddFlows(flows []Flow, at time.Time) {
	if at.After(a.flowsAt) {
		a.flowsAt = at
	}
	for i := range flows {
		f := &flows[i]
		if f.State != conntrack.TCPSynSent && f.State != conntrack.TCPSynSent2 {
			continue
		}
		age := at.Sub(f.Opened)
		if age < a.opt.SYNAge && f.PacketsOrig < 2 {
			continue
		}
		ts := a.tuple(f.Orig, at)
		if f.NAT.IsValid() {
			a.setNAT(ts, f.NAT)
		}
		d := a.dest(endpoint{f.Orig.Proto, f.Orig.Dst}, true)
		t := a.record(d, SYNUnanswered, Failing, ts, at)
		if !f.Opened.IsZero() && f.Opened.Before(t.first) {
			t.first = f.Opened
		}
		t.counts["live_in_syn_sent"]++
		if f.PacketsOrig >= 2 {
			t.counts["syn_retransmitted"]++
			t.counts["syns_sent"] += f.PacketsOrig
		}
		t.dur("syn_unanswered_for", age)
	}
}
