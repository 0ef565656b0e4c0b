package dataplane

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/internal/spsc"
)

// Triggered capture (edge capture).
//
// While a capture is armed, each worker copies the start of every packet
// that reaches its track stage (CaptureSnapLen bytes from the Ethernet
// header, as received: before translation) with its time, port, key, flow
// and verdict into a ring of the last captureHistSize packets. When a
// packet meets an anomaly, the packet and the recent packets of its flow
// found in the ring (at most captureHistMax, each kept once) are copied
// into the worker's kept store, a lossy SPSC ring (internal/spsc) that
// Engine.ReadCapture drains. The anomalies (CaptureAnomaly):
//
//   - state mismatch: conntrack dropped the packet for its flow's state
//     (captureMismatch lists the reasons: no_state, invalid_state,
//     stale_incarnation, out_of_window, synack_bad_ack, rst_out_of_window,
//     data_on_closed, nsx_synack_on_closing). An ICMP error about no flow
//     (icmp_no_flow) is not one: backscatter, not a connection failing.
//   - edge sent an ICMP error or a TCP reset in answer to the packet.
//   - idle expired: a packet of a flow edge expired idle (a no_state drop
//     conntrack recognises, Shard.LateExpired, with the flow's idle time).
//   - server reset: a TCP RST of the flow's reply direction (from the side
//     that did not open it) within captureRSTWindow of its SYN-ACK or of
//     data from the opening side, as the ring shows them.
//
// A packet dropped before the track stage (parse, router checks) is not
// recorded: it has no flow. The first anomaly wins when a packet meets two.
//
// Memory is fixed when the first capture is armed and never grows: per
// worker the ring (captureHistSize slots) and the kept store
// (captureKeptSize packets), about 400 KB. A full kept store loses packets
// (counted, CaptureStatus.Lost); anomalies beyond captureRate per second
// per worker (burst captureBurst) are not kept (counted, Limited), which
// also bounds the ring scans an attacker's anomalous packets can cost.
//
// Cost when no capture is armed: the session pointer is loaded once per
// pipeline call (captureBatch) and each packet meets one never-taken branch
// on a plain bool in the track stage; the event paths test a nil pointer.
// Armed, each tracked packet costs one copy of its first CaptureSnapLen
// bytes and key into the ring.

// CaptureSnapLen is how many bytes of each packet (from its Ethernet
// header) a capture holds.
const CaptureSnapLen = 128

const (
	captureHistSize = 512  // per worker: recent packets (a power of two)
	captureHistMax  = 32   // history packets kept per anomaly
	captureKeptSize = 1024 // per worker: kept packets awaiting ReadCapture
	captureRate     = 200  // anomalies kept per second per worker
	captureBurst    = 64
	// captureRSTWindow: a server reset this soon after its SYN-ACK or the
	// client's data is an anomaly.
	captureRSTWindow = conntrack.Time(time.Second)
)

// CaptureAnomaly is why a capture kept a packet and its flow's history.
type CaptureAnomaly uint8

const (
	AnomalyNone          CaptureAnomaly = iota
	AnomalyStateMismatch                // conntrack dropped the packet for its flow's state (Drop says why)
	AnomalyEdgeICMP                     // edge answered the packet with an ICMP error
	AnomalyEdgeRST                      // edge answered the packet with a TCP reset
	AnomalyServerRST                    // a reset from the flow's reply side soon after its SYN-ACK or the client's data
	AnomalyIdleExpired                  // a packet of a flow edge expired idle (dropped no_state; Idle says how long it was idle)
)

var anomalyNames = [...]string{"none", "state_mismatch", "edge_icmp", "edge_rst", "server_rst", "idle_expired"}

func (a CaptureAnomaly) String() string {
	if int(a) < len(anomalyNames) {
		return anomalyNames[a]
	}
	return "unknown"
}

// captureMismatch marks the conntrack drop reasons that are state
// mismatches (AnomalyStateMismatch).
var captureMismatch = func() (m [drop.NumReasons]bool) {
	for _, r := range []drop.Reason{drop.NoState, drop.InvalidState, drop.StaleIncarnation, drop.OutOfWindow,
		drop.SynAckBadAck, drop.RSTOutOfWindow, drop.DataOnClosed, drop.NSXSynAckOnClosing} {
		m[r] = true
	}
	return m
}()

// CapturedPacket is one packet a capture kept: fixed size, no pointers.
type CapturedPacket struct {
	Time    conntrack.Time // the batch's time (see Engine.Start)
	Idle    conntrack.Time // AnomalyIdleExpired: how long the flow had been idle when it expired and this packet came
	Key     conntrack.Key  // the packet's key as parsed (an ICMP error: the quoted flow's, reversed)
	Flow    conntrack.Key  // its flow's original key; zero: no flow
	Session uint32         // the capture that kept it
	// Trigger numbers the anomaly the packet was kept for, per worker: the
	// anomalous packet and its flow's history share it.
	Trigger   uint32
	Len       uint16 // the frame's length
	CapLen    uint16 // bytes of Data held
	Payload   uint16 // TCP/UDP payload length
	Gen       uint16 // Anomalous, with a flow: the flow's incarnation
	Worker    uint8
	In        uint8 // ingress port: 0 inside, 1 outside
	Flags     uint8 // TCP flags
	Dir       conntrack.Dir
	HasFlow   bool        // Flow and Dir are set
	Drop      drop.Reason // why the packet was dropped; None: it went on (forwarded, held, hairpinned)
	ICMP      icmp.Kind   // an ICMP error edge sent in answer (NoError: none)
	RST       bool        // a TCP reset edge sent in answer
	Anomaly   CaptureAnomaly
	Anomalous bool // the packet that met Anomaly; false: its flow's history
	Data      [CaptureSnapLen]byte
}

// CaptureSpec says what a capture keeps.
type CaptureSpec struct {
	// Filter selects the anomalous packets kept, by their key or their
	// flow's (State must be StateNone).
	Filter conntrack.Filter
	Count  int           // anomalies to keep, then the capture disarms; 0: no limit
	For    time.Duration // the capture disarms after this long; 0: until DisarmCapture
}

// CaptureStatus describes the armed capture (or the last one).
type CaptureStatus struct {
	Armed     bool
	Session   uint32 // 0: none was ever armed
	Spec      CaptureSpec
	Until     conntrack.Time // 0: no deadline
	Anomalies uint64         // anomalies kept
	Packets   uint64         // packets kept (anomalous and history)
	Lost      uint64         // packets lost to full kept stores
	Limited   uint64         // anomalies not kept: over the per-worker rate
}

// ErrCaptureArmed is ArmCapture's error while another capture is armed.
var ErrCaptureArmed = errors.New("a capture is already armed (one at a time): read it, or disarm it first")

// captureSession is an armed capture as the workers see it (immutable but
// for the counters).
type captureSession struct {
	id        uint32
	spec      CaptureSpec
	until     conntrack.Time
	left      atomic.Int64
	anomalies atomic.Uint64
	packets   atomic.Uint64
	lost      atomic.Uint64
	limited   atomic.Uint64
}

// captureControl is the engine's side of capture.
type captureControl struct {
	cur  atomic.Pointer[captureSession]
	last atomic.Pointer[captureSession] // the last armed (CaptureStatus)
	mu   sync.Mutex                     // Arm, Disarm
	rmu  sync.Mutex                     // one reader of the kept stores
	fan  spsc.FanIn                     // the reader's place among the workers (under rmu)
	once sync.Once                      // the workers' rings, made by the first capture
	next uint32                         // the last session id (under mu)
}

// captureSlot is one packet in a worker's ring.
type captureSlot struct {
	pkt  CapturedPacket
	kept bool // already copied to the kept store
}

// captureState is a worker's side of capture.
type captureState struct {
	on      bool            // a capture is armed: refreshed once per pipeline call (captureBatch)
	sess    *captureSession // on: the capture
	cur     *captureSlot    // the track stage's packet; nil outside it
	ref     conntrack.Ref   // cur.pkt.HasFlow: its flow
	opened  bool            // cur had no flow when tracked: it may open one
	anomaly CaptureAnomaly  // cur's anomaly so far
	next    uint32          // ring: the next slot to write (modulo captureHistSize)
	trigger uint32
	limit   icmp.Limiter
	hist    *[captureHistSize]captureSlot // made with kept by the first capture
	kept    spsc.Ring[CapturedPacket]
	pick    [captureHistMax]uint32 // scratch: the history slots of one anomaly
}

// ArmCapture arms a capture; it stays armed until spec's count or time is
// used up or DisarmCapture. One at a time: ErrCaptureArmed while another
// is armed. Packets kept stay in the kept stores until ReadCapture.
func (e *Engine) ArmCapture(spec CaptureSpec) (uint32, error) {
	if spec.Filter.State != conntrack.StateNone {
		return 0, errors.New("a capture cannot filter by flow state")
	}
	if spec.Count < 0 || spec.For < 0 {
		return 0, errors.New("a capture's count and duration cannot be negative")
	}
	c := &e.capture
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.cur.Load(); s != nil && !e.captureDone(s) {
		return 0, ErrCaptureArmed
	}
	c.once.Do(func() {
		for _, w := range e.workers {
			w.cap.hist = new([captureHistSize]captureSlot)
			w.cap.kept.Init(captureKeptSize)
			w.cap.limit = icmp.NewLimiter(captureRate, captureBurst)
		}
	})
	c.next++
	s := &captureSession{id: c.next, spec: spec}
	var left int64
	s.until, left = sessionBounds(e.now(), spec.For, spec.Count)
	s.left.Store(left)
	c.last.Store(s)
	c.cur.Store(s)
	return s.id, nil
}

// DisarmCapture disarms the armed capture, if any (the workers stop within
// a batch); what it kept stays readable. It reports whether one was armed.
func (e *Engine) DisarmCapture() bool {
	c := &e.capture
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.cur.Swap(nil)
	return s != nil && !e.captureDone(s)
}

func (e *Engine) captureDone(s *captureSession) bool {
	return s.left.Load() <= 0 || s.until != 0 && e.now() >= s.until
}

// CaptureStatus returns the state of the armed capture, or of the last one.
func (e *Engine) CaptureStatus() CaptureStatus {
	s := e.capture.last.Load()
	if s == nil {
		return CaptureStatus{}
	}
	return CaptureStatus{
		Armed:     e.capture.cur.Load() == s && !e.captureDone(s),
		Session:   s.id,
		Spec:      s.spec,
		Until:     s.until,
		Anomalies: s.anomalies.Load(),
		Packets:   s.packets.Load(),
		Lost:      s.lost.Load(),
		Limited:   s.limited.Load(),
	}
}

// ReadCapture moves kept packets into out and returns how many, each
// worker's in the order kept (an anomaly's history, oldest first, then its
// anomalous packet); every worker gets a fair share of out (spsc.Drain), so
// a worker with many anomalies does not make the others' stores overflow.
// One reader at a time (it serializes callers).
func (e *Engine) ReadCapture(out []CapturedPacket) int {
	c := &e.capture
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.last.Load() == nil {
		return 0 // never armed: no rings
	}
	return spsc.Drain(&c.fan, out, len(e.workers), func(i int, dst []CapturedPacket) int {
		return e.workers[i].cap.kept.Read(dst)
	})
}

// captureBatch starts a pipeline call: whether a capture is armed is
// decided here, once, for the whole batch.
func (w *worker) captureBatch(now conntrack.Time) {
	s := w.env.capture.cur.Load()
	w.cap.on = s != nil && (s.until == 0 || now < s.until) && s.left.Load() > 0
	w.cap.sess, w.cap.cur = s, nil
}

// captureTrack is the track stage's hook while a capture is armed: packet
// p in slot i of the batch, received on port in, got verdict v. It
// finishes the previous packet and records p in the ring.
func (w *worker) captureTrack(in, i int, p *conntrack.Packet, v conntrack.Verdict) {
	w.captureFinish()
	c := &w.cap
	sl := &c.hist[c.next&(captureHistSize-1)]
	c.next++
	frame := w.frames[i]
	sl.kept = false
	// Field by field: a composite literal would zero and copy the whole
	// record, Data included, for every packet (20 ns a packet more);
	// TestCaptureSlotReuse checks every field is set.
	pk := &sl.pkt
	pk.Time, pk.Idle, pk.Key, pk.Session, pk.Trigger = w.now, 0, p.Key, c.sess.id, 0
	pk.Len, pk.Payload, pk.Gen = uint16(min(len(frame), 0xffff)), p.Payload, 0
	pk.Worker, pk.In, pk.Flags, pk.HasFlow, pk.Dir = uint8(w.id), uint8(in), p.Flags, false, conntrack.Original
	pk.Drop, pk.ICMP, pk.RST, pk.Anomaly, pk.Anomalous = drop.None, icmp.NoError, false, AnomalyNone, false
	pk.CapLen = uint16(copy(pk.Data[:], frame))
	c.cur, c.anomaly, c.opened = sl, AnomalyNone, v.Action == conntrack.Open
	hasFlow := v.Action == conntrack.Forward || v.Action == conntrack.Reopened ||
		v.Action == conntrack.Drop && v.State != conntrack.StateNone
	if hasFlow {
		pk.HasFlow, pk.Flow, pk.Dir = true, *w.shard.Key(v.Flow), v.Dir
		c.ref = v.Flow
	} else {
		pk.Flow = conntrack.Key{}
	}
	switch {
	case v.Action == conntrack.Drop:
		sl.pkt.Drop = v.Reason
		if captureMismatch[v.Reason] {
			c.anomaly = AnomalyStateMismatch
		}
		if v.Reason == drop.NoState {
			if idle, late := w.shard.LateExpired(&p.Key, w.now); late {
				c.anomaly, sl.pkt.Idle = AnomalyIdleExpired, idle
			}
		}
	case hasFlow && p.Key.Proto == header.ProtoTCP && p.Kind == conntrack.KindFlow &&
		p.Flags&header.TCPFlagRST != 0 && v.Dir == conntrack.Reply && w.captureRecentServerRST(sl):
		c.anomaly = AnomalyServerRST
	}
}

// captureRecentServerRST reports whether the ring shows, within
// captureRSTWindow before the reset in rst, its flow's SYN-ACK or data from
// the flow's opening side.
func (w *worker) captureRecentServerRST(rst *captureSlot) bool {
	c := &w.cap
	for k := uint32(2); k <= captureHistSize && k <= c.next; k++ {
		sl := &c.hist[(c.next-k)&(captureHistSize-1)]
		if sl.pkt.Session != rst.pkt.Session || rst.pkt.Time-sl.pkt.Time > captureRSTWindow {
			return false
		}
		if !sl.pkt.HasFlow || sl.pkt.Flow != rst.pkt.Flow || sl.pkt.Key.Proto != header.ProtoTCP {
			continue
		}
		synAck := header.TCPFlagSYN | header.TCPFlagACK
		if sl.pkt.Dir == conntrack.Reply && sl.pkt.Flags&synAck == synAck ||
			sl.pkt.Dir == conntrack.Original && sl.pkt.Payload > 0 {
			return true
		}
	}
	return false
}

// captureEvent is the event hook (events.go) while the track stage's
// packet is recorded: a drop, ICMP error or reset of that packet.
func (w *worker) captureEvent(kind EventKind, r drop.Reason, k icmp.Kind) {
	c := &w.cap
	switch kind {
	case EvDropped:
		if c.cur.pkt.Drop == drop.None {
			c.cur.pkt.Drop = r
		}
	case EvICMPSent:
		c.cur.pkt.ICMP = k
		if c.anomaly == AnomalyNone {
			c.anomaly = AnomalyEdgeICMP
		}
	case EvRSTSent:
		c.cur.pkt.RST = true
		if c.anomaly == AnomalyNone {
			c.anomaly = AnomalyEdgeRST
		}
	}
}

// captureEnd ends a pipeline call while a capture is armed.
func (w *worker) captureEnd() {
	w.captureFinish()
	w.cap.cur = nil
}

// captureFinish keeps the recorded packet and its flow's history if it met
// an anomaly that the capture's filter, count and rate allow.
func (w *worker) captureFinish() {
	c := &w.cap
	if c.cur == nil {
		return
	}
	if c.opened {
		// No flow when tracked: the flow the packet opened, if any.
		if r, d, ok := w.shard.Lookup(&c.cur.pkt.Key, w.now); ok {
			c.cur.pkt.HasFlow, c.cur.pkt.Flow, c.cur.pkt.Dir, c.ref = true, *w.shard.Key(r), d, r
		}
		c.opened = false
	}
	if c.anomaly == AnomalyNone {
		return
	}
	a := &c.cur.pkt
	s := c.sess
	if !traceMatch(&s.spec.Filter, &a.Key) && !(a.HasFlow && traceMatch(&s.spec.Filter, &a.Flow)) {
		return
	}
	if !c.limit.Allow(w.now) {
		s.limited.Add(1)
		return
	}
	if s.left.Add(-1) < 0 {
		return
	}
	s.anomalies.Add(1)
	c.trigger++
	if a.HasFlow {
		// The incarnation of the flow the packet was tracked with.
		if fi := w.shard.Info(c.ref, w.now); fi.Orig == a.Flow {
			a.Gen = fi.Gen
		}
	}
	a.Anomaly, a.Anomalous, a.Session, a.Trigger = c.anomaly, true, s.id, c.trigger

	// The flow's recent packets of this capture, newest first, back to one
	// an earlier anomaly kept: the same key either way, or the flow's original key
	// (a flow's first packet was recorded before the flow existed), or
	// the same flow. A packet with no flow (no_state) adopts the flow of
	// the first history packet that had one (a late packet of a flow that
	// ended).
	k1, k2, orig := a.Key, a.Key.Reverse(), a.Flow
	if !a.HasFlow {
		orig = conntrack.Key{}
	}
	var zero conntrack.Key
	n := 0
	cur := c.next - 1
	for k := uint32(1); k < captureHistSize && k <= cur && n < captureHistMax; k++ {
		sl := &c.hist[(cur-k)&(captureHistSize-1)]
		e := &sl.pkt
		if e.Session != s.id {
			break // recorded under an earlier capture: what came between is missing
		}
		if e.Key != k1 && e.Key != k2 && !(orig != zero && (e.Key == orig || e.HasFlow && e.Flow == orig)) {
			continue
		}
		if sl.kept {
			break // an earlier anomaly of the flow kept what came before
		}
		if orig == zero && e.HasFlow {
			orig = e.Flow
		}
		c.pick[n] = (cur - k) & (captureHistSize - 1)
		n++
	}
	for j := n - 1; j >= 0; j-- {
		sl := &c.hist[c.pick[j]]
		sl.kept = true
		w.captureKeep(&sl.pkt, s, c.anomaly)
	}
	c.cur.kept = true
	w.captureKeep(a, s, c.anomaly)
	c.anomaly = AnomalyNone
}

// captureKeep copies p into the kept store as part of anomaly trigger.
func (w *worker) captureKeep(p *CapturedPacket, s *captureSession, a CaptureAnomaly) {
	p.Session, p.Trigger, p.Anomaly = s.id, w.cap.trigger, a
	if !w.cap.kept.Put(p) {
		s.lost.Add(1)
		return
	}
	s.packets.Add(1)
}
