package diag

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/edgegw/edge/conntrack"
)

// DestSignals are the per-destination signals conntrack counts for one
// destination (`edge destinations -o json`), cumulative since the data
// plane started: the counts by conntrack.DestCounter name and the
// distributions by conntrack.DestHist name, in log2 buckets of
// milliseconds (bucket 0: under 1 ms, bucket i: [2^(i-1), 2^i) ms).
type DestSignals struct {
	Dst      netip.AddrPort
	Proto    uint8
	Counters map[string]uint64
	Hists    map[string][]uint64
}

// AddDestinations adds the per-destination signals counted between two
// snapshots taken at the ends of the window: before (nil: everything since
// the data plane started) and after. A destination absent from before, or
// whose counts went down (a restart, or conntrack replaced it by a busier
// one and took it back), counts from zero. At most Options.MaxDestinations
// destinations of after are kept, in after's order (the control plane
// lists the busiest first). Report turns them into evidence for
// syn_unanswered, keepalive_race and idle_expiry, merged with what the
// events show (the larger count wins: both see the same connections).
func (a *Analyzer) AddDestinations(before, after []DestSignals) {
	if a.signals == nil {
		a.signals = make(map[endpoint]*DestSignals)
	}
	prev := make(map[endpoint]*DestSignals, len(before))
	for i := range before {
		prev[endpoint{before[i].Proto, before[i].Dst}] = &before[i]
	}
	for i := range after {
		s := &after[i]
		ep := endpoint{s.Proto, s.Dst}
		acc := a.signals[ep]
		if acc == nil {
			if len(a.signals) >= a.opt.MaxDestinations {
				continue
			}
			acc = &DestSignals{Dst: s.Dst, Proto: s.Proto, Counters: map[string]uint64{}, Hists: map[string][]uint64{}}
			a.signals[ep] = acc
		}
		p := prev[ep]
		if p != nil && wentDown(p, s) {
			p = nil
		}
		for name, n := range s.Counters {
			if p != nil {
				n -= p.Counters[name]
			}
			if n > 0 {
				acc.Counters[name] += n
			}
		}
		for name, b := range s.Hists {
			h := acc.Hists[name]
			if len(h) < len(b) {
				h = append(h, make([]uint64, len(b)-len(h))...)
			}
			for j, n := range b {
				if p != nil && j < len(p.Hists[name]) {
					n -= p.Hists[name][j]
				}
				h[j] += n
			}
			acc.Hists[name] = h
		}
	}
}

// wentDown reports whether any count of before exceeds after's.
func wentDown(before, after *DestSignals) bool {
	for name, n := range before.Counters {
		if after.Counters[name] < n {
			return true
		}
	}
	for name, b := range before.Hists {
		for j, n := range b {
			if a := after.Hists[name]; j >= len(a) || a[j] < n {
				return true
			}
		}
	}
	return false
}

var (
	sigFlows         = conntrack.DestFlows.String()
	sigSYNRetransmit = conntrack.DestSYNRetransmits.String()
	sigSYNRetried    = conntrack.DestSYNRetried.String()
	sigHSTimeouts    = conntrack.DestHandshakeTimeouts.String()
	sigHSRefused     = conntrack.DestHandshakeRefused.String()
	sigHandshakes    = conntrack.DestHandshakes.String()
	sigResetsServer  = conntrack.DestResetsServer.String()
	sigServerCloses  = conntrack.DestServerCloses.String()
	sigRaces         = conntrack.DestRaces.String()
	sigExpiredLate   = conntrack.DestExpiredLate.String()
	sigNSXWouldFail  = conntrack.DestNSXWouldFail.String()
	sigClientReuses  = conntrack.DestClientReuses.String()

	histHandshake = conntrack.HistHandshakeRTT.String()
	histIdleClose = conntrack.HistServerIdleClose.String()
	histRaceDelay = conntrack.HistRaceDelay.String()
	histExpired   = conntrack.HistExpiredIdle.String()
	histReuse     = conntrack.HistClientReuseIdle.String()
)

// signalsEvidence adds the tallies the per-destination signals show to
// dests (evidence kept out of the Analyzer, merged with the events' by
// Report), over the window [start, end].
func (a *Analyzer) signalsEvidence(dests map[endpoint]*destState, start, end time.Time) {
	for ep, s := range a.signals {
		c := s.Counters
		d := dests[ep]
		if d == nil {
			d = &destState{ep: ep, server: true}
			dests[ep] = d
		}
		d.opened = max(d.opened, c[sigFlows])
		d.resets = max(d.resets, c[sigResetsServer])
		span := func(t *tally, conns uint64) {
			t.conns, t.packets, t.first, t.last = conns, conns, start, end
		}
		if to, re := c[sigHSTimeouts], c[sigSYNRetried]; to > 0 || re > 0 {
			// A handshake answered only after its SYN was sent again
			// failed too: its client waited a second or more (a
			// retransmission timeout), and many clients give up sooner.
			t := d.tally(SYNUnanswered, Failing)
			span(t, max(to, re))
			t.packets = c[sigSYNRetransmit]
			t.counts["handshake_timeouts"] = to
			t.counts["handshakes_syn_retried"] = re
			t.counts["syn_retransmits"] = c[sigSYNRetransmit]
			t.counts["handshake_refused"] = c[sigHSRefused]
			t.counts["handshakes_completed"] = c[sigHandshakes]
			t.hist("handshake_time", s.Hists[histHandshake])
		}
		if n := c[sigRaces]; n > 0 {
			t := d.tally(KeepaliveRace, Failing)
			span(t, n)
			t.counts["client_data_after_server_close"] = n
			t.counts["server_closes"] = c[sigServerCloses]
			t.counts["server_resets"] = c[sigResetsServer]
			t.hist("server_idle_close", s.Hists[histIdleClose])
			t.hist("server_close_to_client_data", s.Hists[histRaceDelay])
			t.counts["client_reuses"] = c[sigClientReuses]
			t.hist("client_reuse_idle", s.Hists[histReuse])
		}
		if n := c[sigNSXWouldFail]; n > 0 {
			t := d.tally(StrayFINPortReuse, Prevented)
			span(t, n)
			t.counts["nsx_would_fail"] = n
		}
		if n := c[sigExpiredLate]; n > 0 {
			t := d.tally(IdleExpiry, Failing)
			span(t, n)
			t.counts["expired_flows_with_late_packets"] = n
			t.hist("idle_before_late_packet", s.Hists[histExpired])
		}
	}
}

// hist records a distribution given as log2 buckets of milliseconds.
func (t *tally) hist(name string, b []uint64) {
	if d, ok := bucketDist(b); ok {
		if t.hists == nil {
			t.hists = map[string]Dist{}
		}
		t.hists[name] = d
	}
}

// bucketDist summarises log2 buckets of milliseconds (bucket 0: under 1
// ms, bucket i: [2^(i-1), 2^i) ms): the extremes are the outer bounds of
// the first and last buckets used, the quantiles the middle of the bucket
// that holds them, so each value is within a factor of 2 of the truth.
func bucketDist(b []uint64) (Dist, bool) {
	var total uint64
	first, last := -1, -1
	for i, n := range b {
		if n > 0 {
			total += n
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if total == 0 {
		return Dist{}, false
	}
	low := func(i int) float64 {
		if i == 0 {
			return 0
		}
		return float64(int64(1)<<(i-1)) / 1000
	}
	high := func(i int) float64 {
		if i == len(b)-1 && i >= conntrack.HistBuckets-1 {
			return low(i) // the open last bucket
		}
		return float64(int64(1)<<i) / 1000
	}
	q := func(p float64) float64 {
		var seen uint64
		for i, n := range b {
			seen += n
			if float64(seen) >= p*float64(total) && n > 0 {
				return (low(i) + high(i)) / 2
			}
		}
		return high(last)
	}
	return Dist{N: int(total), Min: low(first), P50: q(0.5), P90: q(0.9), Max: high(last)}, true
}

// around formats a distribution's median bucket for a sentence: "~6s
// (4.1s-8.2s)".
func around(d Dist) string {
	if d.P50 < 0.001 {
		return "under 1ms"
	}
	lo, hi := d.P50/1.5, d.P50*4/3
	return fmt.Sprintf("~%s (%s-%s)", short(d.P50), short(lo), short(hi))
}

// short formats seconds to the millisecond below 1 s, to 100 ms above.
func short(v float64) string {
	d := time.Duration(v * float64(time.Second))
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
