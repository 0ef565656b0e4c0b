package dataplane

import (
	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/internal/spsc"
)

// Worker events.
//
// Every drop a worker counts outside conntrack (parse errors, martians,
// firewall deny and reject, no route, no neighbour, TTL, MTU, SNAT refusals,
// full hand-off or TX rings, ICMP errors refused by RFC 1812 4.3.2.7 or the
// rate limit) and every ICMP error and TCP reset it generates is recorded
// as an Event in the worker's own lossy single-producer single-consumer
// ring (internal/spsc, staged per event and published once per batch):
// fixed-size, pointer-free records written by
// the worker only on those paths, never on a forwarded packet's. A full
// ring loses the event and counts it (WorkerStats.EventsLost, published
// per batch); it never blocks the worker. Drops conntrack decides (state mismatches,
// table full, key in use) are conntrack's events (conntrack.Table.
// ReadEvents) and SNAT's exhaustion and quarantine overrides are snat's
// (snat.NAT.ReadEvents); the control plane merges the three.

// EventKind is what a worker Event reports.
type EventKind uint8

const (
	EvDropped  EventKind = iota + 1 // a packet dropped (or an ICMP error not sent); Reason says why
	EvICMPSent                      // an ICMP error sent; Reason is its cause, ICMP its kind
	EvRSTSent                       // a TCP reset sent (reject rule); Reason is its cause
)

var evKindNames = [...]string{"", "dropped", "icmp_sent", "rst_sent"}

func (k EventKind) String() string {
	if int(k) < len(evKindNames) && k != 0 {
		return evKindNames[k]
	}
	return "unknown"
}

// Event is one worker event: fixed size, no pointers.
type Event struct {
	Time   conntrack.Time // the batch's time (see Engine.Start)
	Key    conntrack.Key  // the packet's key; zero when it could not be parsed
	Kind   EventKind
	Reason drop.Reason // dropped: why; icmp_sent, rst_sent: the cause
	ICMP   icmp.Kind   // icmp_sent: the error's kind
	Flags  uint8       // TCP flags of the packet
	Zone   uint8       // firewall.Zone of the ingress interface (1 inside, 2 outside); 0 unknown
	Worker uint8
}

// eventRingSize is each worker's event ring capacity.
const eventRingSize = 4096

// event records an event about packet p (nil: not parsed) received on port
// in (-1: unknown). Only drop and generation paths call it; it never
// allocates and never waits.
func (w *worker) event(kind EventKind, r drop.Reason, k icmp.Kind, in int, p *conntrack.Packet) {
	e := Event{Time: w.now, Kind: kind, Reason: r, ICMP: k, Worker: uint8(w.id)}
	if in >= 0 {
		e.Zone = uint8(w.ports[in].zone)
	}
	if p != nil {
		e.Key, e.Flags = p.Key, p.Flags
	}
	if !w.events.Stage(&e) {
		w.evLost++
	}
	if w.tr.cur != nil && p != nil { // trace hook (trace.go)
		w.traceEvent(kind, r, k)
	}
	if w.cap.cur != nil && p != nil { // capture hook (capture.go)
		w.captureEvent(kind, r, k)
	}
}

// drop counts a drop that concerns no parsed packet, with an event.
func (w *worker) drop(r drop.Reason) {
	w.drops[r]++
	w.event(EvDropped, r, icmp.NoError, -1, nil)
}

// dropPkt counts the drop of packet p received on port in, with an event.
// A first fragment's drop is noted: its later fragments follow it.
func (w *worker) dropPkt(r drop.Reason, in int, p *conntrack.Packet) {
	w.drops[r]++
	w.event(EvDropped, r, icmp.NoError, in, p)
	w.noteFirstDrop(in, p, r)
}

// count counts a drop conntrack decided: conntrack recorded its event.
func (w *worker) count(r drop.Reason) {
	w.drops[r]++
	if w.tr.cur != nil { // trace hook (trace.go)
		w.traceEvent(EvDropped, r, icmp.NoError)
	}
	if w.cap.cur != nil { // capture hook (capture.go)
		w.captureEvent(EvDropped, r, icmp.NoError)
	}
}

// ReadEvents moves the queued events of the workers into out and returns
// how many, worker by worker (each worker's in time order). Every worker
// gets a fair share of out (spsc.Drain), so a busy worker does not make
// the others lose events to their full rings. One reader at a time (it
// serializes callers).
func (e *Engine) ReadEvents(out []Event) int {
	e.evMu.Lock()
	defer e.evMu.Unlock()
	return spsc.Drain(&e.evFanIn, out, len(e.workers), func(i int, dst []Event) int {
		return e.workers[i].events.Read(dst)
	})
}
