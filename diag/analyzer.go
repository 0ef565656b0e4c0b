package diag

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
)

// Options bound the analysis and set its time windows. The zero value of a
// field takes its default.
type Options struct {
	// MaxTuples bounds the tuples followed at once (default 65536); when
	// it is reached the least recently seen quarter is forgotten.
	MaxTuples int
	// MaxDestinations bounds the destinations with evidence (default
	// 1024); when it is reached the one with the least evidence and
	// activity is forgotten, so the busiest are kept.
	MaxDestinations int
	// StrayWindow: a FIN dropped without state counts as a stray FIN of an
	// earlier connection when a SYN reuses its tuple within it (default 2m).
	StrayWindow time.Duration
	// ReuseWindow: a packet of a connection within it after a reset closed
	// the connection is a keep-alive race (default 10s).
	ReuseWindow time.Duration
	// IdleWindow: a packet of a flow within it after its idle timer
	// removed it is an idle-expiry failure (default 1h).
	IdleWindow time.Duration
	// SYNAge: a live flow still in SYN_SENT at least this old counts as a
	// SYN without answer (default 3s: past the first SYN retransmit, 1s,
	// and the second resolution of a flow's opening time).
	SYNAge time.Duration
	// FillWarning is the fill level (0-1) of the flow table or of a SNAT
	// destination's ports that is worth a warning (default 0.8).
	FillWarning float64
	// Examples per finding (default 3).
	Examples int
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxTuples, 65536)
	def(&o.MaxDestinations, 1024)
	def(&o.Examples, 3)
	defD(&o.StrayWindow, 2*time.Minute)
	defD(&o.ReuseWindow, 10*time.Second)
	defD(&o.IdleWindow, time.Hour)
	defD(&o.SYNAge, 3*time.Second)
	if o.FillWarning <= 0 || o.FillWarning > 1 {
		o.FillWarning = 0.8
	}
	return o
}

// Analyzer reads events in time order (Add), optionally a snapshot of live
// flows (AddFlows), and the counters at both ends of the window (Report),
// and diagnoses failure patterns per destination. Its memory is bounded by
// Options whatever the stream. Not safe for concurrent use.
type Analyzer struct {
	opt Options

	tuples  map[Tuple]*tupleState
	replies map[Tuple]Tuple // reply key of a translated flow -> its original key
	dests   map[endpoint]*destState
	global  destState // findings about the whole box (AllDestinations)

	events, other   uint64
	first, last     time.Time
	tuplesForgotten uint64
	destsForgotten  uint64
	streamLost      uint64
	flowsAt         time.Time
	signals         map[endpoint]*DestSignals // per-destination signals in the window (AddDestinations)
	reasonEvents    [drop.NumReasons]uint64   // dropped and refused events by reason
}

// New returns an Analyzer.
func New(opt Options) *Analyzer {
	opt = opt.withDefaults()
	return &Analyzer{opt: opt, tuples: make(map[Tuple]*tupleState), replies: make(map[Tuple]Tuple),
		dests: make(map[endpoint]*destState)}
}

// endpoint is a destination: protocol and server address and port.
type endpoint struct {
	proto uint8
	ap    netip.AddrPort
}

// destState is the evidence gathered about one destination.
type destState struct {
	ep      endpoint
	events  uint64 // events about it
	opened  uint64 // connections opened toward it (SYN, first datagram)
	resets  uint64 // connections closed by a reset
	server  bool   // seen as a flow's destination (not only guessed from a packet)
	tallies map[tallyKey]*tally
}

type tallyKey struct {
	p Pattern
	s Severity
}

// tally is the evidence of one pattern at one destination.
type tally struct {
	conns, packets uint64
	first, last    time.Time
	examples       []Example
	counts         map[string]uint64
	durs           map[string]*sampler
	hists          map[string]Dist // distributions known only summarised (per-destination signals)
}

// tupleState is what the rules remember of one tuple (a flow's original
// key, or a packet's key when its flow is not known).
type tupleState struct {
	t    Tuple
	nat  netip.AddrPort
	last time.Time

	opened       time.Time // its connection's SYN (zero: not seen)
	strayFIN     time.Time // first FIN dropped without state since the last SYN
	strayFINs    uint64
	expiredAt    time.Time // removed by the idle timer in a synchronized state
	expiredState conntrack.State
	expiredIdle  time.Duration // its idle time then (0: not known)
	expiredReset bool          // edge reset both ends then (idle_expiry: reset)
	resetAt      time.Time     // closed by a reset
	resetSampled bool          // the packet after resetAt was sampled
	counted      uint8         // patterns this connection was counted for (bit per Pattern)

	ring [8]ExampleEvent // its recent events
	n    int
}

// ringEvents returns the tuple's recent events, oldest first.
func (ts *tupleState) ringEvents() []ExampleEvent {
	k := min(ts.n, len(ts.ring))
	out := make([]ExampleEvent, 0, k)
	for i := ts.n - k; i < ts.n; i++ {
		out = append(out, ts.ring[i%len(ts.ring)])
	}
	return out
}

func stateName(s conntrack.State) string {
	if s == conntrack.StateNone {
		return ""
	}
	return strings.ToLower(s.String())
}

func (ts *tupleState) note(ev *Event) {
	e := ExampleEvent{Time: ev.Time, Kind: ev.Kind.String(), Gen: ev.Gen, State: stateName(ev.State)}
	if ev.Reason != drop.None {
		e.Reason = ev.Reason.String()
	}
	if ev.Flags != 0 {
		e.Flags = TCPFlags(ev.Flags)
	}
	ts.ring[ts.n%len(ts.ring)] = e
	ts.n++
}

// Add analyses one event. Events must come in time order (as the control
// plane delivers them).
func (a *Analyzer) Add(ev *Event) {
	a.events++
	if a.first.IsZero() || ev.Time.Before(a.first) {
		a.first = ev.Time
	}
	if ev.Time.After(a.last) {
		a.last = ev.Time
	}
	if ev.Kind == KindOther {
		a.other++
		return
	}
	if (ev.Kind == KindDropped || ev.Kind == KindRefused) && ev.Reason < drop.NumReasons {
		a.reasonEvents[ev.Reason]++
	}
	if ev.Tuple == (Tuple{}) {
		return // a packet that could not be parsed: counters cover it
	}
	canon, dir := a.resolve(ev)
	ts := a.tuple(canon, ev.Time)
	if ev.NAT.IsValid() && ev.Kind.flowKind() {
		a.setNAT(ts, ev.NAT)
	}
	ts.note(ev)
	d := a.dest(endpoint{canon.Proto, canon.Dst}, ev.Kind.flowKind())
	if d != nil {
		d.events++
	}
	if ev.Dir != DirUnknown {
		dir = ev.Dir
	}
	a.rules(ev, ts, d, dir)
}

// LostEvents records events the stream lost (the subscription's lost
// notices): findings are then lower bounds, and the report says so.
func (a *Analyzer) LostEvents(n uint64) { a.streamLost += n }

// resolve returns the tuple an event is about, as the flow's original key
// when it can be told, and the direction of its packet.
func (a *Analyzer) resolve(ev *Event) (Tuple, Dir) {
	t := ev.Tuple
	switch {
	case ev.Kind.flowKind(), ev.Kind == KindDropped && ev.State != conntrack.StateNone:
		// Conntrack reports the flow's original key: the client's, unless
		// the entry was made by the server's packet (in NSX compatibility
		// mode, its stray FIN), whose key is the client's connection seen
		// from the server: the reply key of a known translated flow, or
		// a known tuple reversed.
		if _, ok := a.tuples[t]; ok {
			return t, DirUnknown
		}
		if o, ok := a.replies[t]; ok && !ev.NAT.IsValid() {
			return o, DirUnknown
		}
		if ev.Kind == KindOpened && ev.Flags&(FlagSYN|FlagFIN) != FlagFIN {
			return t, DirUnknown // made by the client's SYN or first datagram
		}
		if _, ok := a.tuples[t.Reverse()]; ok {
			return t.Reverse(), DirUnknown
		}
		if a.serverSide(t) {
			return t.Reverse(), DirUnknown
		}
		return t, DirUnknown
	case ev.Kind == KindSNATExhausted, ev.Kind == KindSNATQuarantineOverride:
		return t, DirOriginal // SNAT translates new flows from the inside
	}
	if _, ok := a.tuples[t]; ok {
		return t, DirOriginal
	}
	if o, ok := a.replies[t]; ok {
		return o, DirReply
	}
	if _, ok := a.tuples[t.Reverse()]; ok {
		return t.Reverse(), DirReply
	}
	if a.serverSide(t) {
		return t.Reverse(), DirReply
	}
	if t.Proto == protoTCP && ev.Flags&(FlagSYN|FlagACK) == FlagSYN|FlagACK {
		return t.Reverse(), DirReply
	}
	return t, DirUnknown
}

// serverSide reports whether t's source is a known server and its
// destination is not: t is a packet from the server.
func (a *Analyzer) serverSide(t Tuple) bool {
	s, d := a.dests[endpoint{t.Proto, t.Src}], a.dests[endpoint{t.Proto, t.Dst}]
	return s != nil && s.server && (d == nil || !d.server)
}

// tuple returns the state of tuple t, making room within MaxTuples.
func (a *Analyzer) tuple(t Tuple, now time.Time) *tupleState {
	ts := a.tuples[t]
	if ts == nil {
		if len(a.tuples) >= a.opt.MaxTuples {
			a.forgetTuples()
		}
		ts = &tupleState{t: t}
		a.tuples[t] = ts
	}
	if now.After(ts.last) {
		ts.last = now
	}
	return ts
}

// forgetTuples drops the least recently seen quarter of the tuples (at
// least one), so that the cost of making room is amortised.
func (a *Analyzer) forgetTuples() {
	all := make([]*tupleState, 0, len(a.tuples))
	for _, ts := range a.tuples {
		all = append(all, ts)
	}
	slices.SortFunc(all, func(x, y *tupleState) int { return x.last.Compare(y.last) })
	for _, ts := range all[:max(1, len(all)/4)] {
		a.forgetTuple(ts.t, ts)
	}
}

func (a *Analyzer) forgetTuple(t Tuple, ts *tupleState) {
	if ts.nat.IsValid() {
		delete(a.replies, replyKey(t, ts.nat))
	}
	delete(a.tuples, t)
	a.tuplesForgotten++
}

func replyKey(orig Tuple, nat netip.AddrPort) Tuple {
	return Tuple{Proto: orig.Proto, Src: orig.Dst, Dst: nat, Zone: orig.Zone}
}

func (a *Analyzer) setNAT(ts *tupleState, nat netip.AddrPort) {
	if ts.nat == nat {
		return
	}
	if ts.nat.IsValid() {
		delete(a.replies, replyKey(ts.t, ts.nat))
	}
	ts.nat = nat
	a.replies[replyKey(ts.t, nat)] = ts.t
}

// dest returns the state of destination ep, making room within
// MaxDestinations by forgetting the destination with the least evidence.
func (a *Analyzer) dest(ep endpoint, server bool) *destState {
	d := a.dests[ep]
	if d == nil {
		if len(a.dests) >= a.opt.MaxDestinations {
			var low *destState
			for _, x := range a.dests {
				if low == nil || x.weight() < low.weight() {
					low = x
				}
			}
			delete(a.dests, low.ep)
			a.destsForgotten++
		}
		d = &destState{ep: ep}
		a.dests[ep] = d
	}
	d.server = d.server || server
	return d
}

// weight ranks destinations for the bound: evidence of failures first,
// then activity.
func (d *destState) weight() uint64 {
	var w uint64
	for _, t := range d.tallies {
		w += t.conns<<20 + t.packets<<10
	}
	return w + d.events
}

// record counts connection ts (once per pattern and connection) and packet
// ev as evidence of pattern p at destination d.
func (a *Analyzer) record(d *destState, p Pattern, s Severity, ts *tupleState, at time.Time) *tally {
	t := d.tally(p, s)
	t.packets++
	if t.first.IsZero() || at.Before(t.first) {
		t.first = at
	}
	if at.After(t.last) {
		t.last = at
	}
	if ts == nil {
		t.conns++
		return t
	}
	if ts.counted&(1<<p) == 0 {
		ts.counted |= 1 << p
		t.conns++
		if len(t.examples) < a.opt.Examples {
			t.examples = append(t.examples, Example{Tuple: ts.t, NAT: ts.nat, Events: ts.ringEvents()})
		}
	}
	return t
}

func (d *destState) tally(p Pattern, s Severity) *tally {
	if d.tallies == nil {
		d.tallies = make(map[tallyKey]*tally)
	}
	k := tallyKey{p, s}
	t := d.tallies[k]
	if t == nil {
		t = &tally{counts: make(map[string]uint64), durs: make(map[string]*sampler)}
		d.tallies[k] = t
	}
	return t
}

func (t *tally) dur(name string, v time.Duration) {
	s := t.durs[name]
	if s == nil {
		s = &sampler{}
		t.durs[name] = s
	}
	s.add(v)
}
