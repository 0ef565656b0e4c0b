package ctl

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/edgegw/edge/config"
	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/dataplane"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/snat"
)

// EngineBackend serves a running *dataplane.Engine as a Backend.
//
// It keeps the running configuration document (the YAML last applied,
// generation 1 at start) and serializes applies: ApplyConfig parses a
// document with config.Parse (errors name the field), hands it to
// Engine.Apply (validated whole; nothing changes on error) and, when it
// was applied and differs from the running one, stores it and bumps the
// generation. Errors the engine returns for fields fixed while running
// (dataplane.ErrRestartRequired) wrap ErrImmutable too.
//
// ReadEvents merges the three event sources of the data plane (the
// workers' rings, conntrack's and SNAT's), converted to Event and sorted
// by time within each read.
type EngineBackend struct {
	e       *dataplane.Engine
	version string
	logf    func(string, ...any)

	mu  sync.Mutex // serializes ApplyConfig; guards doc and gen
	doc []byte
	gen uint64

	// ReadEvents' state (one caller at a time, see Backend).
	pending []Event
	wev     []dataplane.Event
	cev     []conntrack.Event
	sev     []snat.Event
}

var _ Backend = (*EngineBackend)(nil)

// NewEngineBackend serves e, started from the configuration document doc.
// logf (nil: silent) receives a line per applied configuration.
func NewEngineBackend(e *dataplane.Engine, doc []byte, version string, logf func(string, ...any)) *EngineBackend {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &EngineBackend{e: e, version: version, logf: logf, doc: bytes.Clone(doc), gen: 1}
}

// now is the engine's clock as the table takes it.
func (b *EngineBackend) now() conntrack.Time { return conntrack.Time(b.e.Now()) }

// Status implements Backend.
func (b *EngineBackend) Status(ctx context.Context) (Status, error) {
	ds := b.e.Status()
	b.mu.Lock()
	gen := b.gen
	b.mu.Unlock()
	s := Status{
		Version: b.version, Started: ds.Started,
		Flows: ds.Flows, Capacity: ds.Capacity, MemoryB: ds.MemoryB, Hugepages: ds.Hugepages,
		Generation: gen, NSXCompat: ds.NSXCompat,
	}
	for _, is := range ds.Interfaces {
		mode := "copy"
		if is.ZeroCopy {
			mode = "zerocopy"
		}
		s.Interfaces = append(s.Interfaces, InterfaceStatus{
			Name: is.Name, Zone: is.Zone.String(), Ifindex: is.Ifindex, MTU: is.MTU, MAC: is.MAC.String(),
			Addrs: is.Addrs, Queues: is.Queues, XDPMode: mode,
		})
	}
	for _, w := range ds.Workers {
		s.Workers = append(s.Workers, WorkerStatus{ID: w.ID, Queue: w.Queue, CPU: w.CPU})
	}
	if c := ds.SNAT; c != nil {
		s.SNAT = snatStatus(c)
	}
	return s, nil
}

// maxListedAddrs bounds the addresses a pool's status lists (Ranges has
// them all).
const maxListedAddrs = 16

func snatStatus(c *snat.Config) *SNATStatus {
	st := &SNATStatus{Mode: c.Mode.String(), PortFirst: c.Ports.Start, PortLast: c.Ports.End, Quarantine: c.Quarantine}
	if c.Mode == snat.Automap {
		st.Pools = []SNATPool{{Name: "automap", Addrs: []netip.Addr{c.Automap}}}
		return st
	}
	for _, p := range c.Pools {
		sp := SNATPool{Name: p.Name, Addrs: slices.Clone(p.Addrs)}
		for _, r := range p.Ranges {
			sp.Ranges = append(sp.Ranges, r.Start.String()+"-"+r.End.String())
			for a := r.Start; len(sp.Addrs) < maxListedAddrs; a = a.Next() {
				sp.Addrs = append(sp.Addrs, a)
				if a == r.End {
					break
				}
			}
		}
		st.Pools = append(st.Pools, sp)
	}
	return st
}

// Config implements Backend.
func (b *EngineBackend) Config(ctx context.Context) ([]byte, uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.doc), b.gen, nil
}

// immutableErr is an engine error about a field fixed while running: its
// text is the engine's (naming the field), and it is both the engine's
// error and ErrImmutable.
type immutableErr struct{ err error }

func (e *immutableErr) Error() string   { return e.err.Error() }
func (e *immutableErr) Unwrap() []error { return []error{e.err, ErrImmutable} }

// ApplyConfig implements Backend.
func (b *EngineBackend) ApplyConfig(ctx context.Context, doc []byte, dryRun bool) (ApplyResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return ApplyResult{}, err
	}
	cfg, err := config.Parse(doc)
	if err != nil {
		return ApplyResult{}, err
	}
	changed, err := b.e.Apply(cfg, dryRun)
	if err != nil {
		if errors.Is(err, dataplane.ErrRestartRequired) {
			err = &immutableErr{err}
		}
		return ApplyResult{}, err
	}
	if !dryRun && (len(changed) > 0 || !bytes.Equal(doc, b.doc)) {
		b.doc = bytes.Clone(doc)
		b.gen++
		b.logf("ctl: configuration generation %d applied; changed: %v", b.gen, changed)
	}
	return ApplyResult{Generation: b.gen, Changed: changed}, nil
}

// Flows implements Backend.
func (b *EngineBackend) Flows(ctx context.Context, f conntrack.Filter, fn func(*conntrack.FlowInfo) bool) error {
	return b.e.Table().Dump(ctx, f, b.now(), fn)
}

// Flush implements Backend.
func (b *EngineBackend) Flush(ctx context.Context, f conntrack.Filter) (int, error) {
	return b.e.Table().Flush(ctx, f, b.now())
}

// Explain implements Backend.
func (b *EngineBackend) Explain(ctx context.Context, k conntrack.Key, maxHistory int) (conntrack.Explanation, error) {
	return b.e.Table().Explain(ctx, k, maxHistory, b.now())
}

// Stats implements Backend. The SNAT destinations are copied by the
// workers (snat.NAT.Destinations), so Stats waits for them until ctx ends.
func (b *EngineBackend) Stats(ctx context.Context) (Stats, error) {
	ds := b.e.Stats()
	t := b.e.Table()
	s := Stats{Conntrack: t.Stats(), EventsLost: ds.EventsLost}
	s.EventsLost += s.Conntrack.Counters[conntrack.CtrEventsLost]
	for _, w := range ds.Workers {
		s.Workers = append(s.Workers, WorkerStats{
			ID: w.ID, RX: w.RX, TX: w.TX, Drops: w.Drops, Created: w.Created, Handoff: w.Handoff,
			ICMP: w.ICMP, RST: w.RST, Flows: w.Flows,
		})
	}
	for i, p := range ds.Ports {
		zone := [2]string{"inside", "outside"}[i]
		s.Interfaces = append(s.Interfaces, InterfaceStats{
			Name: p.Name, Zone: zone, RX: p.RX, TX: p.TX,
			XDPRedirected: p.XDP.Redirected, XDPNoSocket: p.XDP.NoSocket, XDPPassed: p.XDP.Passed, XDPOther: p.XDP.Other,
		})
	}
	if n := b.e.NAT(); n != nil {
		s.SNAT = n.Stats()
		s.EventsLost += s.SNAT.Counters[snat.CtrEventsLost]
		dests, err := n.Destinations(ctx)
		if err != nil {
			return Stats{}, err
		}
		s.SNATDestinations = dests
	}
	return s, nil
}

// ReadEvents implements Backend: it drains the workers', conntrack's and
// SNAT's rings (at most len(out) from each per call, only while fewer than
// len(out) converted events wait), sorts what waits by time and moves up
// to len(out) of it into out. Events read but not returned wait for the
// next call.
func (b *EngineBackend) ReadEvents(out []Event) int {
	if len(out) == 0 {
		return 0
	}
	if len(b.pending) < len(out) {
		n := len(out)
		if cap(b.wev) < n {
			b.wev = make([]dataplane.Event, n)
			b.cev = make([]conntrack.Event, n)
			b.sev = make([]snat.Event, n)
		}
		before := len(b.pending)
		t := b.e.Table()
		for _, ev := range b.wev[:b.e.ReadEvents(b.wev[:n])] {
			b.pending = append(b.pending, workerEvent(&ev))
		}
		for _, ev := range b.cev[:t.ReadEvents(b.cev[:n])] {
			b.pending = append(b.pending, conntrackEvent(t, &ev))
		}
		if nat := b.e.NAT(); nat != nil {
			for _, ev := range b.sev[:nat.ReadEvents(b.sev[:n])] {
				b.pending = append(b.pending, snatEvent(t, &ev))
			}
		}
		if len(b.pending) > before {
			slices.SortStableFunc(b.pending, func(x, y Event) int {
				switch {
				case x.Time < y.Time:
					return -1
				case x.Time > y.Time:
					return 1
				}
				return 0
			})
		}
	}
	k := copy(out, b.pending)
	b.pending = append(b.pending[:0], b.pending[k:]...)
	return k
}

func workerEvent(ev *dataplane.Event) Event {
	e := Event{Time: ev.Time, Key: ev.Key, Reason: ev.Reason, ICMP: ev.ICMP, Flags: ev.Flags,
		Worker: int(ev.Worker), Zone: ev.Zone}
	switch ev.Kind {
	case dataplane.EvDropped:
		e.Kind = EvDropped
	case dataplane.EvICMPSent:
		e.Kind = EvICMPSent
	case dataplane.EvRSTSent:
		e.Kind = EvRSTSent
	}
	return e
}

var conntrackKinds = [...]EventKind{
	conntrack.EvOpened: EvOpened, conntrack.EvReopened: EvReopened, conntrack.EvClosed: EvClosed,
	conntrack.EvExpired: EvExpired, conntrack.EvEvicted: EvEvicted, conntrack.EvFlushed: EvFlushed,
	conntrack.EvDeleted: EvDeleted, conntrack.EvReplaced: EvReplaced, conntrack.EvDropped: EvDropped,
	conntrack.EvRefused: EvRefused,
}

func conntrackEvent(t *conntrack.Table, ev *conntrack.Event) Event {
	e := Event{Time: ev.Time, Key: ev.Key, Gen: ev.Gen, State: ev.State, Reason: ev.Reason, Flags: ev.Flags,
		Worker: int(ev.Shard)}
	if int(ev.Kind) < len(conntrackKinds) {
		e.Kind = conntrackKinds[ev.Kind]
	}
	if ev.NATAddr != 0 {
		e.NAT = netip.AddrPortFrom(t.NATAddr(ev.NATAddr), ev.NATPort)
	}
	return e
}

func snatEvent(t *conntrack.Table, ev *snat.Event) Event {
	// SNAT translates flows from the inside only.
	e := Event{Time: ev.Time, Key: ev.Key, Worker: int(ev.Shard), Zone: 1}
	switch ev.Kind {
	case snat.EvExhausted:
		e.Kind, e.Reason = EvSNATExhausted, drop.SNATExhausted
	case snat.EvQuarantineOverride:
		e.Kind = EvSNATQuarantineOverride
	}
	if ev.NATAddr != 0 {
		e.NAT = netip.AddrPortFrom(t.NATAddr(ev.NATAddr), ev.NATPort)
	}
	return e
}

// RuleName implements Backend: rule is a flow's rule (FlowInfo.Rule,
// Incarnation.Rule): 0 for the default action, else the index in the rule
// set plus one. It is resolved against the rules in force.
func (b *EngineBackend) RuleName(rule uint32) string {
	if rule == 0 {
		return "default"
	}
	if n := b.e.RuleName(int32(rule - 1)); n != "" {
		return n
	}
	return "rules[" + strconv.Itoa(int(rule-1)) + "]"
}

// ProfileName implements Backend (an index past the profiles is profile
// 0's, as conntrack treats it).
func (b *EngineBackend) ProfileName(profile uint8) string {
	ps := b.e.Table().Policy().Profiles
	switch {
	case int(profile) < len(ps):
		return ps[profile].Name
	case len(ps) > 0:
		return ps[0].Name
	}
	return conntrack.DefaultProfile.Name
}

// Epoch implements Backend: the engine's start, the zero of its clock.
func (b *EngineBackend) Epoch() time.Time { return b.e.Start() }
