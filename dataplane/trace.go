package dataplane

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/internal/spsc"
)

// Packet trace (edge trace).
//
// A trace records, for each live packet matching a filter, its path through
// the worker pipeline: parse result, the flow and its state before and after
// tracking, the rule that decided a new flow, the NAT translation, the route
// and the final action (forwarded, dropped and why, hairpinned, handed off,
// ICMP error or reset sent). One trace runs at a time (StartTrace refuses a
// second with ErrTraceBusy), bounded by a packet count and a deadline.
//
// Cost when no trace runs: the session pointer is loaded once per pipeline
// call (traceBatch), and each packet meets one never-taken branch on a plain
// bool per stage (parse, track) and one on a nil pointer where it is
// forwarded. While a trace runs, every packet is matched against the filter
// and looked up once more in conntrack (the state before tracking); matching
// packets are recorded into a TraceRecord (fixed size, no pointers) held per
// batch slot, and each finished record goes to the worker's lossy SPSC ring
// (internal/spsc), counted in Trace.Lost when full. A packet matches when its
// key does (either endpoint, either port: conntrack.Filter without State),
// or, once tracked, when its flow's original key does (a reply toward a NAT
// address traces under the inside host's address), or, from the outside
// toward a NAT mapping, when the inside endpoint's key does.
//
// Drops, ICMP errors and resets reach the record through the worker's event
// hooks (events.go), so every drop path is traced without a hook of its own.
// A frame that is later lost on transmit (tx_full) was recorded forwarded.

// TraceAction is what finally happened to a traced packet.
type TraceAction uint8

const (
	TraceNone       TraceAction = iota // not decided in this worker's pipeline
	TraceForwarded                     // queued for transmission on Out toward Hop
	TraceDropped                       // Drop says why
	TraceHairpinned                    // translated and looped back toward a NAT mapping (its own record follows, Looped)
	TraceHandedOff                     // handed to worker Out, which owns its flow (its own record follows there)
	TraceFollowed                      // a later fragment: follows its first fragment's verdict (fragment table)
	TraceHeld                          // held while its next hop (Hop, on Out) is resolved, sent once it is (neighhold.go)
)

var traceActionNames = [...]string{"none", "forwarded", "dropped", "hairpinned", "handed_off", "followed", "held"}

func (a TraceAction) String() string {
	if int(a) < len(traceActionNames) {
		return traceActionNames[a]
	}
	return "unknown"
}

// TraceRecord is one packet's path through a worker's pipeline: fixed size,
// no pointers.
type TraceRecord struct {
	Time    conntrack.Time // the batch's time (see Engine.Start)
	Key     conntrack.Key  // the packet's key as parsed (an ICMP error: the quoted flow's, reversed); zero when Parse failed
	Orig    conntrack.Key  // its flow's original key (zero without a flow); Toward: the inside endpoint's flow (zero when filtered)
	NATAddr [16]byte       // the flow's translated address (zero: untranslated)
	Hop     [16]byte       // Forwarded: the next hop
	Session uint32         // the trace that recorded it
	Rule    int32          // New: the firewall rule that decided the flow (index in the rule set, -1 the default action)
	// FlowRule: New: the rule as the flow names it (Engine.FlowRuleName).
	FlowRule   uint32
	Gen        uint16 // the flow's incarnation after the packet
	BeforeGen  uint16 // HadFlow: its incarnation before
	NATPort    uint16
	Worker     uint8
	In         uint8         // ingress port: 0 inside, 1 outside
	Out        uint8         // Forwarded: egress port; HandedOff: the owning worker
	Zone       firewall.Zone // zone of the ingress port
	Kind       conntrack.Kind
	Frag       conntrack.FragKind
	Flags      uint8 // TCP flags
	ICMPType   uint8
	Parse      drop.Reason      // Parse's result: None, or why the packet could not be tracked
	HadFlow    bool             // a live flow matched before tracking
	Before     conntrack.State  // HadFlow: its state before tracking
	Verdict    conntrack.Action // tracking's answer (Open: no flow; the rules decide)
	Dir        conntrack.Dir    // the packet's direction in its flow
	After      conntrack.State  // the flow's state after the packet (StateNone: no flow)
	Tracked    bool             // the packet reached conntrack (Verdict, Dir, After are set)
	Toward     bool             // from the outside toward a NAT mapping (its filter decided)
	New        bool             // a rule decided a new flow (Rule, FlowRule, RuleAction)
	RuleAction firewall.Action
	Looped     bool // came back from a hairpin (looped toward a NAT mapping)
	Action     TraceAction
	Drop       drop.Reason // Dropped: the first reason counted
	ICMP       icmp.Kind   // an ICMP error sent in answer (NoError: none)
	RST        bool        // a TCP reset sent in answer
}

// TraceSpec says what a trace records.
type TraceSpec struct {
	// Filter selects packets as Filter selects flows (State must be
	// StateNone: a packet has none before it is tracked).
	Filter conntrack.Filter
	Count  int           // packets to record, then the trace is done; 0: no limit
	For    time.Duration // the trace is done after this long; 0: no limit
}

// ErrTraceBusy is StartTrace's error while another trace runs.
var ErrTraceBusy = errors.New("a trace is already running (one at a time): wait for it to end or stop it")

// traceRingSize is each worker's trace ring capacity.
const traceRingSize = 4096

// traceSession is a running trace as the workers see it (immutable but for
// the counters).
type traceSession struct {
	id     uint32
	filter conntrack.Filter
	all    bool           // the zero filter: unparsed packets are recorded too
	until  conntrack.Time // no packet recorded from this time on; 0: no limit
	left   atomic.Int64   // packets still to record
	lost   atomic.Uint64  // records lost to full rings
}

// traceControl is the engine's side of tracing.
type traceControl struct {
	cur  atomic.Pointer[traceSession]
	mu   sync.Mutex // StartTrace, Stop
	once sync.Once  // the workers' rings, made by the first trace
	next uint32     // the last session id (under mu)
}

// traceState is a worker's side of tracing.
type traceState struct {
	on   bool                    // a trace runs: refreshed once per pipeline call (traceBatch)
	cur  *TraceRecord            // the record of the packet being processed; nil: not traced
	sess *traceSession           // on: the trace
	held uint64                  // bit i: rec[i] holds the record of the packet in slot i
	slot int                     // the track stage's packet
	rec  *[batchSize]TraceRecord // made with ring by the first trace (kept out of the worker's own memory)
	ring spsc.Ring[TraceRecord]
}

// Trace is a running trace (StartTrace). One goroutine reads it.
type Trace struct {
	e     *Engine
	s     *traceSession
	fanIn spsc.FanIn // Read's reader state
}

// StartTrace starts recording the packets spec selects. The records are
// read with Trace.Read until Trace.Done; Stop ends the trace (always call
// it). One trace at a time: ErrTraceBusy while another runs.
func (e *Engine) StartTrace(spec TraceSpec) (*Trace, error) {
	if spec.Filter.State != conntrack.StateNone {
		return nil, errors.New("a trace cannot filter by flow state")
	}
	if spec.Count < 0 || spec.For < 0 {
		return nil, errors.New("a trace's count and duration cannot be negative")
	}
	tc := &e.trace
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.cur.Load() != nil {
		return nil, ErrTraceBusy
	}
	tc.once.Do(func() {
		for _, w := range e.workers {
			w.tr.ring.Init(traceRingSize)
			w.tr.rec = new([batchSize]TraceRecord)
		}
	})
	for _, w := range e.workers {
		w.tr.ring.Skip() // what a stopped trace's workers still wrote
	}
	tc.next++
	s := &traceSession{id: tc.next, filter: spec.Filter, all: spec.Filter == conntrack.Filter{}}
	var left int64
	s.until, left = sessionBounds(e.now(), spec.For, spec.Count)
	s.left.Store(left)
	tc.cur.Store(s)
	return &Trace{e: e, s: s}, nil
}

// sessionBounds returns the deadline (0: none) and the budget of a trace
// or capture session started at now to last d (0: no limit) and count
// items (0: no limit).
func sessionBounds(now conntrack.Time, d time.Duration, count int) (until conntrack.Time, left int64) {
	if d > 0 {
		until = now + conntrack.Time(d)
	}
	left = int64(count)
	if left == 0 {
		left = 1<<63 - 1
	}
	return until, left
}

// Read moves the records written so far into out and returns how many.
// One goroutine reads a trace, and not after Stop.
// Every worker gets a fair share of out (spsc.Drain).
func (t *Trace) Read(out []TraceRecord) int {
	return spsc.Drain(&t.fanIn, out, len(t.e.workers), func(i int, dst []TraceRecord) int {
		got, n := t.e.workers[i].tr.ring.Read(dst), 0
		for _, r := range dst[:got] {
			if r.Session == t.s.id {
				dst[n] = r
				n++
			}
		}
		return n
	})
}

// Lost returns how many records were lost to full rings.
func (t *Trace) Lost() uint64 { return t.s.lost.Load() }

// Done reports whether the trace recorded its count or ran its time. Records
// written before may still wait to be Read.
func (t *Trace) Done() bool {
	return t.s.left.Load() <= 0 || t.s.until != 0 && t.e.now() >= t.s.until
}

// Stop ends the trace; the workers stop recording within a batch.
func (t *Trace) Stop() {
	tc := &t.e.trace
	tc.mu.Lock()
	tc.cur.CompareAndSwap(t.s, nil)
	tc.mu.Unlock()
}

// traceMatch reports whether key k matches f (State aside): either address
// in the prefix, either port.
func traceMatch(f *conntrack.Filter, k *conntrack.Key) bool {
	if f.Proto != 0 && k.Proto != f.Proto {
		return false
	}
	if f.Zone > 0 && int(k.Zone) != f.Zone {
		return false
	}
	if f.Port != 0 && k.SrcPort != f.Port && k.DstPort != f.Port {
		return false
	}
	if f.Prefix.IsValid() && !f.Prefix.Contains(k.SrcAddr()) && !f.Prefix.Contains(k.DstAddr()) {
		return false
	}
	return true
}

// traceBatch starts a pipeline call: whether a trace runs is decided here,
// once, for the whole batch.
func (w *worker) traceBatch(now conntrack.Time) {
	s := w.env.trace.cur.Load()
	w.tr.on = s != nil && (s.until == 0 || now < s.until) && s.left.Load() > 0
	w.tr.sess, w.tr.cur, w.tr.held = s, nil, 0
}

// traceStart begins the record of packet p in slot i, received on port in
// with Parse result r, unless the trace's count is used up.
func (w *worker) traceStart(in, i int, p *conntrack.Packet, r drop.Reason) *TraceRecord {
	s := w.tr.sess
	if s.left.Add(-1) < 0 {
		return nil
	}
	rec := &w.tr.rec[i]
	*rec = TraceRecord{Time: w.now, Session: s.id, Rule: -1, Worker: uint8(w.id), In: uint8(in),
		Zone: w.ports[in].zone, Parse: r, Looped: w.looped}
	if r == drop.None || r == drop.Fragment { // Parse filled the key
		rec.Key, rec.Kind, rec.Frag, rec.Flags, rec.ICMPType = p.Key, p.Kind, p.Frag, p.Flags, p.ICMPType
	}
	w.tr.held |= 1 << i
	return rec
}

// traceParsed is the parse stage's hook for the packet Parse just put in
// slot n (result r): a record left in slot n belongs to a packet that did
// not go on to tracking, and is complete.
func (w *worker) traceParsed(in, n int, r drop.Reason) {
	if w.tr.held&(1<<n) != 0 {
		w.tr.held &^= 1 << n
		w.traceEmit(&w.tr.rec[n])
	}
	w.tr.cur = nil
	p := &w.pkts[n]
	if r != drop.None && r != drop.Fragment {
		// Parse stopped before the key was whole: only a trace of
		// everything records it (with no key).
		if w.tr.sess.all {
			w.tr.cur = w.traceStart(in, n, p, r)
		}
		return
	}
	if traceMatch(&w.tr.sess.filter, &p.Key) {
		w.tr.cur = w.traceStart(in, n, p, r)
	}
}

// traceKept ends the parse stage with n packets kept for tracking: a record
// in slot n is the last packet's, which did not go on.
func (w *worker) traceKept(n int) {
	if n < batchSize && w.tr.held&(1<<n) != 0 {
		w.tr.held &^= 1 << n
		w.traceEmit(&w.tr.rec[n])
	}
	w.tr.cur = nil
}

// traceTrack is the conntrack stage of packet i of the batch (received on
// port in) while a trace runs: the state before, TrackPrefetched, the
// verdict and the flow after.
func (w *worker) traceTrack(in, i int, p *conntrack.Packet, now conntrack.Time) conntrack.Verdict {
	w.traceEnd() // the previous packet's
	w.tr.slot = i
	var rec *TraceRecord
	if w.tr.held&(1<<i) != 0 {
		w.tr.held &^= 1 << i
		rec = &w.tr.rec[i]
	}
	ref, _, found := w.shard.Lookup(&p.Key, now)
	if rec == nil && found && traceMatch(&w.tr.sess.filter, w.shard.Key(ref)) {
		rec = w.traceStart(in, i, p, drop.None)
		w.tr.held &^= 1 << i
	}
	if rec != nil && found {
		fi := w.shard.Info(ref, now)
		rec.HadFlow, rec.Before, rec.BeforeGen = true, fi.State, fi.Gen
	}
	w.tr.cur = rec
	v := w.shard.TrackPrefetched(i, p, now)
	if rec != nil {
		rec.Tracked, rec.Verdict, rec.Dir = true, v.Action, v.Dir
		if v.Action == conntrack.Forward || v.Action == conntrack.Reopened {
			w.traceFlow(v, now)
		}
	}
	return v
}

// traceFlow notes flow v.Flow (original key, incarnation, state, NAT) in
// the current record.
func (w *worker) traceFlow(v conntrack.Verdict, now conntrack.Time) {
	rec := w.tr.cur
	fi := w.shard.Info(v.Flow, now)
	rec.Orig, rec.Gen, rec.After, rec.Dir = fi.Orig, fi.Gen, fi.State, v.Dir
	if a, port := w.shard.NAT(v.Flow); a != 0 {
		rec.NATAddr, rec.NATPort = w.env.table.NATAddr16(a), port
	}
}

// traceAdmit notes that packet p (the track stage's, received on port in)
// goes toward a NAT mapping, whose filter answered r; when it let p in,
// orig is the inside endpoint's flow, and p's record starts here if orig
// matches the filter and p did not.
func (w *worker) traceAdmit(in int, p *conntrack.Packet, orig *conntrack.Key, r drop.Reason) {
	if w.tr.cur == nil && r == drop.None && traceMatch(&w.tr.sess.filter, orig) {
		// traceTrack freed the packet's slot.
		w.tr.cur = w.traceStart(in, w.tr.slot, p, drop.None)
		w.tr.held &^= 1 << w.tr.slot
		if w.tr.cur != nil {
			w.tr.cur.Tracked, w.tr.cur.Verdict = true, conntrack.Open
		}
	}
	if rec := w.tr.cur; rec != nil {
		rec.Toward = true
		if r == drop.None {
			rec.Orig = *orig
		}
	}
}

// traceRule notes the firewall's decision of a new flow (rule flowRule as
// flows name it).
func (w *worker) traceRule(fv firewall.Verdict, flowRule uint32) {
	rec := w.tr.cur
	rec.New, rec.Rule, rec.RuleAction, rec.FlowRule = true, fv.Rule, fv.Action, flowRule
}

// traceHandOff notes that the packet went to worker owner.
func (w *worker) traceHandOff(owner int) {
	w.tr.cur.Action, w.tr.cur.Out = TraceHandedOff, uint8(owner)
}

// traceHairpin notes that the packet, of flow v, was looped back toward a
// NAT mapping.
func (w *worker) traceHairpin(v conntrack.Verdict, now conntrack.Time) {
	w.traceFlow(v, now)
	w.tr.cur.Action, w.tr.cur.Out = TraceHairpinned, uint8(w.outsidePort())
}

// traceForwarded notes that the packet, of flow v, was queued on port out
// toward next hop hop.
func (w *worker) traceForwarded(v conntrack.Verdict, out int, hop [16]byte, now conntrack.Time) {
	w.traceFlow(v, now)
	rec := w.tr.cur
	rec.Action, rec.Out, rec.Hop = TraceForwarded, uint8(out), hop
	if w.held.justHeld {
		rec.Action = TraceHeld
	}
}

// traceEvent is the event hook (events.go): a drop, ICMP error or reset of
// the current packet.
func (w *worker) traceEvent(kind EventKind, r drop.Reason, k icmp.Kind) {
	rec := w.tr.cur
	switch kind {
	case EvDropped:
		if rec.Action != TraceDropped {
			rec.Action, rec.Drop = TraceDropped, r
		}
	case EvICMPSent:
		rec.ICMP = k
	case EvRSTSent:
		rec.RST = true
	}
}

// traceEnd ends the current record, if any.
func (w *worker) traceEnd() {
	if w.tr.cur != nil {
		w.traceEmit(w.tr.cur)
		w.tr.cur = nil
	}
}

// traceEmit completes rec and puts it in the ring (lossy).
func (w *worker) traceEmit(rec *TraceRecord) {
	if rec.Action == TraceNone {
		switch {
		case rec.Frag == conntrack.FragLater && rec.Parse == drop.Fragment:
			rec.Action = TraceFollowed
		case rec.Parse != drop.None:
			rec.Action, rec.Drop = TraceDropped, rec.Parse
		}
	}
	if !w.tr.ring.Put(rec) {
		w.tr.sess.lost.Add(1)
	}
}
