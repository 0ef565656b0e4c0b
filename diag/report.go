package diag

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/edgegw/edge/drop"
)

// Report adds the counters read at the start and the end of the window
// (either may be nil) to the evidence and returns the findings, ranked. It
// may be called again after more events.
func (a *Analyzer) Report(before, after *Counters) Report {
	r := Report{Start: a.first, End: a.last, Events: a.events}
	if before != nil && !before.Time.IsZero() {
		r.Start = before.Time
	}
	if after != nil && after.Time.After(r.End) {
		r.End = after.Time
	}
	extra := &destState{} // evidence from counters alone, kept out of the Analyzer
	extraDests := map[endpoint]*destState{}
	if after != nil {
		a.countersEvidence(before, after, extra, extraDests, &r)
	}
	a.signalsEvidence(extraDests, r.Start, r.End)
	for _, d := range a.dests {
		r.Findings = append(r.Findings, a.findings(d, extraDests[d.ep])...)
		delete(extraDests, d.ep)
	}
	for _, d := range extraDests {
		r.Findings = append(r.Findings, a.findings(d, nil)...)
	}
	r.Findings = append(r.Findings, a.findings(&a.global, extra)...)
	rank(r.Findings)

	lost := a.streamLost
	if before != nil && after != nil && after.EventsLost > before.EventsLost {
		lost += after.EventsLost - before.EventsLost
	}
	if lost > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d events were lost (rings or this client did not keep up): counts are lower bounds", lost))
	}
	if a.tuplesForgotten > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d tuples were forgotten to stay within %d followed at once (least recently seen first)", a.tuplesForgotten, a.opt.MaxTuples))
	}
	if a.destsForgotten > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d destinations were forgotten to stay within %d (least evidence first)", a.destsForgotten, a.opt.MaxDestinations))
	}
	return r
}

// delta is after's counter minus before's (0 when it went down: a restart).
func delta(before, after map[string]uint64, name string) uint64 {
	var b uint64
	if before != nil {
		b = before[name]
	}
	if a := after[name]; a > b {
		return a - b
	}
	return 0
}

// countersEvidence adds what the counters show and the events did not:
// fill levels (warnings before anything is refused) and refusals whose
// events were lost.
func (a *Analyzer) countersEvidence(before, after *Counters, global *destState, dests map[endpoint]*destState, r *Report) {
	at := after.Time
	var bd map[string]uint64
	if before != nil {
		bd = before.Drops
	}
	// The flow table.
	// Counters count every refusal, events only those not lost: the
	// findings take the larger of the two (merge).
	refused := delta(bd, after.Drops, drop.TableFull.String()) + delta(bd, after.Drops, drop.ProbeLimit.String())
	if refused > 0 {
		t := global.tally(TableFull, Failing)
		t.conns, t.packets, t.first, t.last = refused, refused, r.Start, at
		t.counts["refused_by_counters"] = refused
	}
	if after.Capacity > 0 {
		fill := float64(after.Flows) / float64(after.Capacity)
		if fill >= a.opt.FillWarning {
			t := global.tally(TableFull, Warning)
			t.conns, t.first, t.last = uint64(after.Flows), at, at
			t.counts["flows"], t.counts["capacity"] = uint64(after.Flows), uint64(after.Capacity)
		}
	}
	// Other drops whose events were lost: named in a note.
	for _, rs := range []drop.Reason{drop.NSXSynAckOnClosing, drop.SNATProbeLimit} {
		if n := delta(bd, after.Drops, rs.String()); n > a.reasonEvents[rs] {
			r.Notes = append(r.Notes, fmt.Sprintf("counters show %d drops %s, events %d", n, rs, a.reasonEvents[rs]))
		}
	}
	// SNAT ports per destination.
	prev := map[DestUsage]uint64{}
	if before != nil {
		for _, u := range before.Destinations {
			prev[usageKey(u)] = u.Exhausted
		}
	}
	for _, u := range after.Destinations {
		ep := endpoint{u.Proto, u.Dst}
		d := dests[ep]
		if d == nil {
			d = &destState{ep: ep}
			dests[ep] = d
		}
		if n := u.Exhausted - min(u.Exhausted, prev[usageKey(u)]); n > 0 {
			t := d.tally(SNATExhaustion, Failing)
			t.counts["refused_by_counters"] += n
			t.conns += n
			t.packets += n
			t.first, t.last = r.Start, at
			t.counts["ports_in_use"], t.counts["ports_quarantined"], t.counts["ports_range"] =
				uint64(u.InUse), uint64(u.Quarantined), uint64(u.Range)
		} else if u.Range > 0 && float64(u.InUse+u.Quarantined)/float64(u.Range) >= a.opt.FillWarning {
			t := d.tally(SNATExhaustion, Warning)
			t.conns, t.first, t.last = uint64(u.InUse+u.Quarantined), at, at
			t.counts["ports_in_use"], t.counts["ports_quarantined"], t.counts["ports_range"] =
				uint64(u.InUse), uint64(u.Quarantined), uint64(u.Range)
			t.counts["snat_address "+u.Addr.String()]++
		}
	}
}

func usageKey(u DestUsage) DestUsage {
	return DestUsage{Addr: u.Addr, Dst: u.Dst, Proto: u.Proto}
}

// findings turns destination d's tallies (and extra's, from counters)
// into findings.
func (a *Analyzer) findings(d, extra *destState) []Finding {
	var out []Finding
	keys := map[tallyKey]bool{}
	for k := range d.tallies {
		keys[k] = true
	}
	if extra != nil {
		for k := range extra.tallies {
			keys[k] = true
		}
	}
	for k := range keys {
		t := d.tallies[k]
		if extra != nil && extra.tallies[k] != nil {
			t = merge(t, extra.tallies[k])
		}
		if t == nil || t.conns == 0 {
			continue
		}
		if k.s == Warning && (d.tallies[tallyKey{k.p, Failing}] != nil || extra != nil && extra.tallies[tallyKey{k.p, Failing}] != nil) {
			continue // the failure says more; its counters carry the fill
		}
		f := Finding{Pattern: k.p, Severity: k.s, Destination: AllDestinations, Count: t.conns, Packets: t.packets,
			FirstSeen: t.first, LastSeen: t.last, Examples: slices.Clone(t.examples), dst: d.ep.ap}
		if d.ep.ap.IsValid() {
			f.Destination, f.Protocol = d.ep.ap.String(), ProtoName(d.ep.proto)
		}
		f.Evidence.Counts = t.counts
		if len(t.durs)+len(t.hists) > 0 {
			f.Evidence.Durations = make(map[string]Dist, len(t.durs)+len(t.hists))
			for n, s := range t.durs {
				f.Evidence.Durations[n] = dist(s)
			}
			for n, h := range t.hists {
				f.Evidence.Durations[n] = h
			}
		}
		explain(&f, combined(d, extra))
		out = append(out, f)
	}
	return out
}

// combined returns destination d with what extra (evidence from counters)
// knows of its activity, for the sentences.
func combined(d, extra *destState) *destState {
	if extra == nil {
		return d
	}
	c := *d
	c.opened, c.resets = max(d.opened, extra.opened), max(d.resets, extra.resets)
	return &c
}

// merge returns the tallies of x and y summed (either may be nil).
func merge(x, y *tally) *tally {
	if x == nil {
		return y
	}
	m := &tally{conns: max(x.conns, y.conns), packets: max(x.packets, y.packets), first: x.first, last: x.last,
		examples: x.examples, counts: map[string]uint64{}, durs: x.durs, hists: y.hists}
	for _, c := range []map[string]uint64{x.counts, y.counts} {
		for k, v := range c {
			m.counts[k] = max(m.counts[k], v)
		}
	}
	if m.first.IsZero() || (!y.first.IsZero() && y.first.Before(m.first)) {
		m.first = y.first
	}
	if y.last.After(m.last) {
		m.last = y.last
	}
	return m
}

// secs formats a distribution's value in seconds for a sentence.
func secs(v float64) string {
	return time.Duration(v * float64(time.Second)).Round(100 * time.Millisecond).String()
}

// explain writes the finding's summary, fix and the signals it lacks.
func explain(f *Finding, d *destState) {
	dst := f.Destination
	c := f.Evidence.Counts
	ds := f.Evidence.Durations
	switch {
	case f.Pattern == StrayFINPortReuse && f.Severity == Failing:
		f.Evidence.Summary = fmt.Sprintf("%d SYN-ACKs from %s met CLOSING entries that FINs of earlier connections had left on reused ports (%s)",
			c["synack_dropped_on_closing"], dst, plural(f.Count, "connection"))
		f.Fix = fmt.Sprintf("edge runs in NSX compatibility mode, which drops a new connection's SYN-ACK when a delayed FIN of an old connection on the same port made a CLOSING entry: turn nsx_compat off so that edge tracks each incarnation of a reused port and connections to %s stop failing", dst)
	case f.Pattern == StrayFINPortReuse:
		var fins uint64
		for k, n := range c {
			if strings.HasPrefix(k, "stray_fins_dropped_") {
				fins += n
			}
		}
		f.Evidence.Summary = fmt.Sprintf("edge dropped %d delayed FINs of earlier connections whose ports %s to %s reused",
			fins, plural(f.Count, "new connection"), dst)
		f.Fix = fmt.Sprintf("nothing to do on edge: it kept these %d connections to %s working, where an NSX-style firewall would have made the stray FINs CLOSING entries and dropped the new connections' SYN-ACKs (502s); the FINs come late from clients or %s, worth a look if they grow", f.Count, dst, dst)
		if n := c["nsx_would_fail"]; n > 0 {
			// nsx_shadow judged these connections' SYN-ACKs as NSX would.
			f.Evidence.Summary = fmt.Sprintf("%s to %s would have failed behind an NSX-style firewall: edge forwarded their SYN-ACKs, which NSX compatibility mode (judging in shadow) would have dropped on a CLOSING entry left by an earlier connection on the same port",
				plural(n, "connection"), dst)
			if fins > 0 {
				f.Evidence.Summary += fmt.Sprintf("; edge dropped %d delayed FINs of those earlier connections", fins)
			}
		}
	case f.Pattern == IdleExpiry && f.Severity == Prevented:
		idle := ""
		if x, ok := ds["idle_at_expiry"]; ok {
			idle = " after " + secs(x.P50) + " idle (median)"
		}
		f.Evidence.Summary = fmt.Sprintf("edge's idle timer removed %s to %s%s and reset both ends (idle_expiry: reset): neither keeps a connection that would fail on its next use",
			plural(f.Count, "established connection"), dst, idle)
		f.Fix = fmt.Sprintf("nothing to do on edge if connections to %s are meant to close when idle; otherwise raise the established timeout of their timer profile above their idle time, or have the endpoints send keepalives more often than it", dst)
	case f.Pattern == IdleExpiry:
		after := ""
		if x, ok := ds["expiry_to_next_packet"]; ok {
			after = fmt.Sprintf(", the next packet coming up to %s after the expiry (median %s)", secs(x.Max), secs(x.P50))
		}
		f.Evidence.Summary = fmt.Sprintf("edge's idle timer removed %s to %s while still in use: %d of their packets were dropped afterwards%s",
			plural(f.Count, "connection"), dst, c["packets_after_expiry"], after)
		f.Fix = fmt.Sprintf("connections to %s stay idle longer than edge's idle timeout: raise the established (or UDP) timeout of their timer profile above the applications' idle time, or have the endpoints send keepalives more often than it", dst)
		f.Evidence.Missing = []string{"the idle time before expiry (the flow's last-packet time in the expired event)"}
		if x, ok := ds["idle_at_expiry"]; ok {
			y := ds["idle_before_next_packet"]
			f.Evidence.Summary += fmt.Sprintf("; the timer removed them after %s idle (median), and their next packet came after up to %s idle", secs(x.P50), secs(y.Max))
			f.Fix = fmt.Sprintf("connections to %s stay idle up to %s, longer than edge's idle timeout (~%s): raise the established (or UDP) timeout of their timer profile above %s, or have the endpoints send keepalives more often than every %s", dst, secs(y.Max), secs(x.Min), secs(y.Max), secs(x.Min))
			f.Evidence.Missing = nil
		}
		switch {
		case c["expired_with_reset"] > 0 && c["expired_silently"] == 0:
			f.Evidence.Summary += "; edge reset both ends when it removed them (idle_expiry: reset), and packets still came"
		case c["expired_silently"] > 0:
			f.Evidence.Summary += "; edge removed them silently (idle_expiry: silent): the ends learnt only from their next packet"
			f.Fix += ", or set idle_expiry: reset on the profile so both ends learn at once instead of failing on the next use"
		}
		if late, ok := c["expired_flows_with_late_packets"]; ok {
			idle := ""
			if x, ok := ds["idle_before_late_packet"]; ok {
				idle = ", idle " + around(x) + " when it came"
			}
			if c["packets_after_expiry"] == 0 {
				f.Evidence.Summary = fmt.Sprintf("edge's idle timer removed %s to %s while still in use: a packet of each came afterwards and was dropped%s",
					plural(f.Count, "connection"), dst, idle)
			} else {
				f.Evidence.Summary += fmt.Sprintf("; conntrack counted %d expired flows that got a packet later%s", late, idle)
			}
			if _, ok := ds["idle_at_expiry"]; !ok {
				f.Evidence.Missing = []string{"the timer that removed the flow (its profile's timeout for the state) beside its idle time"}
			}
		}
	case f.Pattern == KeepaliveRace:
		reuse := ""
		if x, ok := ds["reset_to_next_packet"]; ok {
			reuse = fmt.Sprintf(" (up to %s after it, median %s)", secs(x.Max), secs(x.P50))
		}
		f.Evidence.Summary = fmt.Sprintf("%s to %s reset while in use: %d resets answered a segment sent on a connection the other end had closed, %d connections sent more after their reset%s; %d connections to %s ended by a reset in all",
			plural(f.Count, "connection"), dst, c["resets_answering_a_segment"]+c["server_resets"], ds["reset_to_next_packet"].N, reuse, d.resets, dst)
		f.Fix = fmt.Sprintf("backend %s closes kept-alive connections that clients (the proxy) reuse moments later: raise the backend's keep-alive timeout above the proxy's upstream idle timeout, or lower the proxy's below the backend's", dst)
		f.Evidence.Missing = []string{
			"an event when the server sends the first FIN, with the flow's idle time then: the distribution of server idle-close times",
			"the client's idle time before reusing the connection: the distribution of reuse times",
		}
		if n, ok := c["client_data_after_server_close"]; ok {
			closes, delay := fmt.Sprintf("%d connections", c["server_closes"]), ""
			if x, ok := ds["server_idle_close"]; ok {
				closes += " after " + around(x) + " idle"
			}
			if x, ok := ds["server_close_to_client_data"]; ok {
				delay = fmt.Sprintf(", up to %s after the server's last packet, its FIN or a retransmission of it (median %s)", short(x.Max), short(x.P50))
			}
			sig := fmt.Sprintf("the client sent data on %s to %s the server had closed%s; the server closed %s",
				plural(n, "connection"), dst, delay, closes)
			if c["resets_answering_a_segment"]+c["server_resets"]+uint64(ds["reset_to_next_packet"].N) == 0 && c["packets_after_reset"] == 0 {
				f.Evidence.Summary = sig
			} else {
				f.Evidence.Summary += "; " + sig
			}
			reused := ""
			if x, ok := ds["client_reuse_idle"]; ok {
				f.Evidence.Summary += fmt.Sprintf("; clients reused %s to %s after %s idle, up to %s",
					plural(uint64(x.N), "connection"), dst, around(x), short(x.Max))
				reused = fmt.Sprintf(" after up to %s idle", short(x.Max))
				f.Evidence.Missing = nil
			} else {
				f.Evidence.Missing = []string{"the client's idle time before reusing the connection: the distribution of reuse times (none reused after 1 s or more in the window)"}
			}
			if x, ok := ds["server_idle_close"]; ok {
				f.Fix = fmt.Sprintf("backend %s closes idle connections after %s while clients (the proxy) still reuse them%s: raise the backend's keep-alive timeout above the proxy's upstream idle timeout, or lower the proxy's below %s", dst, around(x), reused, short(x.Min))
			}
		}
	case f.Pattern == SYNUnanswered && hasKey(c, "handshakes_syn_retried"):
		rtt := ""
		if x, ok := ds["handshake_time"]; ok {
			rtt = ", SYN to SYN-ACK " + around(x)
		}
		f.Evidence.Summary = fmt.Sprintf("%s to %s got no timely SYN-ACK: %d needed their SYN sent again (%d SYNs resent), %d timed out unanswered, %d were refused; %d handshakes completed in the window%s",
			plural(f.Count, "connection"), dst, c["handshakes_syn_retried"], c["syn_retransmits"], c["handshake_timeouts"]+c["expired_in_syn_sent"]+c["evicted_in_syn_sent"],
			c["handshake_refused"], c["handshakes_completed"], rtt)
		if c["handshakes_completed"] > 0 {
			f.Fix = fmt.Sprintf("backend %s answers some SYNs late or never: its listen backlog overflows under bursts of new connections; raise its listen backlog (the listen(2) argument and net.core.somaxconn) or make it accept connections faster", dst)
		} else {
			f.Fix = fmt.Sprintf("%s answered none of these SYNs: check that it is up and listening, and that its SYN-ACKs come back through edge", dst)
		}
	case f.Pattern == SYNUnanswered:
		answered := d.opened - min(d.opened, f.Count)
		f.Evidence.Summary = fmt.Sprintf("%s to %s got no SYN-ACK (%d in SYN_SENT still, %d with the SYN sent again, %d expired or evicted unanswered); %d other connections to it opened in the window",
			plural(f.Count, "connection"), dst, c["live_in_syn_sent"], c["syn_retransmitted"], c["expired_in_syn_sent"]+c["evicted_in_syn_sent"], answered)
		if answered > 0 {
			f.Fix = fmt.Sprintf("backend %s answers some SYNs and drops others: its listen backlog overflows under bursts of new connections; raise its listen backlog (the listen(2) argument and net.core.somaxconn) or make it accept connections faster", dst)
		} else {
			f.Fix = fmt.Sprintf("%s answered none of these SYNs: check that it is up and listening, and that its SYN-ACKs come back through edge", dst)
		}
		f.Evidence.Missing = []string{
			"SYN retransmissions per destination (a SYN with the same ISN in SYN_SENT is forwarded uncounted)",
			"handshake time (SYN to SYN-ACK) per destination",
		}
	case f.Pattern == SNATExhaustion && f.Severity == Failing:
		f.Evidence.Summary = fmt.Sprintf("%s to %s refused for lack of a SNAT port", plural(f.Count, "new connection"), dst)
		f.Fix = fmt.Sprintf("every SNAT port toward %s was in use or in quarantine: add addresses to the SNAT pool, shorten snat.quarantine, or have clients reuse connections to %s (keep-alive)", dst, dst)
	case f.Pattern == SNATExhaustion:
		f.Evidence.Summary = fmt.Sprintf("%d of the %d SNAT ports toward %s are in use or in quarantine", f.Count, c["ports_range"], dst)
		f.Fix = fmt.Sprintf("SNAT ports toward %s are nearly all taken: add addresses to the SNAT pool or shorten snat.quarantine before new connections are refused", dst)
	case f.Pattern == TableFull && f.Severity == Failing:
		f.Evidence.Summary = fmt.Sprintf("%s refused: the flow table was full (or a probe run at its bound)", plural(f.Count, "new flow"))
		f.Fix = "the flow table is full of flows that cannot be evicted: raise conntrack.max_flows, or shorten the timers of the profiles that keep idle flows"
	case f.Pattern == TableFull:
		f.Evidence.Summary = fmt.Sprintf("the flow table holds %d flows of %d", c["flows"], c["capacity"])
		f.Fix = "the flow table is nearly full: raise conntrack.max_flows or shorten idle timers before new flows are refused"
	}
}

// DestinationAddr returns the finding's destination as an address and
// port (invalid for AllDestinations).
func (f *Finding) DestinationAddr() netip.AddrPort { return f.dst }

// AttachHistory adds to the examples of the first maxFindings findings the
// incarnations fn returns for their tuple (a live flow first, then ended
// ones newest first, as `edge flows explain` lists them). It stops at fn's
// first error and returns it.
func (r *Report) AttachHistory(fn func(Tuple) ([]Flow, error), maxFindings int) error {
	for i := range r.Findings[:min(maxFindings, len(r.Findings))] {
		for j := range r.Findings[i].Examples {
			e := &r.Findings[i].Examples[j]
			fs, err := fn(e.Tuple)
			if err != nil {
				return err
			}
			for k := range fs {
				e.History = append(e.History, incarnation(&fs[k]))
			}
		}
	}
	return nil
}

func hasKey(m map[string]uint64, k string) bool {
	_, ok := m[k]
	return ok
}
