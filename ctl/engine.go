package ctl

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
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
// document with config.Parse (errors name the field), has Engine.Apply
// validate it whole (a dry run: nothing changes on error), then puts it in
// force and, when it was applied and differs from the running one, stores
// it, bumps the generation and writes it to the daemon's configuration file
// (WithSavePath; see ApplyConfig). Errors the engine returns for fields
// fixed while running (dataplane.ErrRestartRequired) wrap ErrImmutable too;
// a document that validated but could not be put in force (the commit
// failed: a BPF map update, ...), or a validation error that names no
// configuration field, wraps ErrInternal.
//
// ReadEvents merges the three event sources of the data plane (the
// workers' rings, conntrack's and SNAT's), converted to Event and sorted
// by time within each read.
//
// Close makes every later call fail with ErrStopping (ReadEvents returns
// 0) after the calls in progress, an apply included, have returned: call it
// after the Server has stopped and before the engine is closed.
type EngineBackend struct {
	e        *dataplane.Engine
	version  string
	logf     func(string, ...any)
	savePath string

	// life: every call holds it for reading; Close takes it for writing.
	life   sync.RWMutex
	closed bool

	mu  sync.Mutex // serializes ApplyConfig; guards doc and gen
	doc []byte
	gen uint64

	// ReadEvents' state (one caller at a time, see Backend).
	events  eventMerge
	sources []eventSource
	wev     []dataplane.Event
	cev     []conntrack.Event
	sev     []snat.Event
}

var _ Backend = (*EngineBackend)(nil)

// EngineOption configures an EngineBackend.
type EngineOption func(*EngineBackend)

// WithSavePath names the daemon's configuration file (the --config edge
// run was started with): every document applied for real is written there
// (see ApplyConfig), so the configuration in force is the one edge starts
// with next time. Empty (the default): applied documents are not saved.
func WithSavePath(path string) EngineOption {
	return func(b *EngineBackend) { b.savePath = path }
}

// NewEngineBackend serves e, started from the configuration document doc.
// logf (nil: silent) receives a line per applied configuration and per
// failed save.
func NewEngineBackend(e *dataplane.Engine, doc []byte, version string, logf func(string, ...any), opts ...EngineOption) *EngineBackend {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	b := &EngineBackend{e: e, version: version, logf: logf, doc: bytes.Clone(doc), gen: 1}
	for _, o := range opts {
		o(b)
	}
	b.sources = []eventSource{b.workerEvents, b.conntrackEvents, b.snatEvents}
	return b
}

// enter starts a call: it fails with ErrStopping once Close has begun.
// A nil error must be paired with b.life.RUnlock.
func (b *EngineBackend) enter() error {
	b.life.RLock()
	if b.closed {
		b.life.RUnlock()
		return ErrStopping
	}
	return nil
}

// Close waits for the calls in progress (an apply included) and makes
// every later call fail with ErrStopping. Call it after the Server has
// stopped (Server.GracefulStop or Stop, which wait for running handlers)
// and before closing the engine. Safe to call more than once.
func (b *EngineBackend) Close() error {
	b.life.Lock()
	b.closed = true
	b.life.Unlock()
	return nil
}

// now is the engine's clock as the table takes it.
func (b *EngineBackend) now() conntrack.Time { return conntrack.Time(b.e.Now()) }

// Status implements Backend. It reads the interfaces' addresses from the
// kernel: not for every metrics scrape (Collector caches it).
func (b *EngineBackend) Status(ctx context.Context) (Status, error) {
	if err := b.enter(); err != nil {
		return Status{}, err
	}
	defer b.life.RUnlock()
	ds := b.e.Status()
	b.mu.Lock()
	gen := b.gen
	b.mu.Unlock()
	s := Status{
		Version: b.version, Started: ds.Started,
		Flows: ds.Flows, Capacity: ds.Capacity, MemoryB: ds.MemoryB, Hugepages: ds.Hugepages,
		Generation: gen, NSXCompat: ds.NSXCompat, NSXShadow: ds.NSXShadow,
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
	st := &SNATStatus{Mode: c.Mode.String(), PortFirst: c.Ports.Start, PortLast: c.Ports.End, Quarantine: c.Quarantine,
		Mapping: c.Mapping.String(), Filtering: c.Filtering.String(), MappingTimeout: c.MappingTimeout}
	if c.Mode == snat.Automap {
		st.Pools = []SNATPool{{Name: "automap", Addrs: []netip.Addr{c.Automap}}}
		if c.Automap6.IsValid() {
			st.Pools[0].Addrs = append(st.Pools[0].Addrs, c.Automap6)
		}
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
	if err := b.enter(); err != nil {
		return nil, 0, err
	}
	defer b.life.RUnlock()
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

// configFields are the configuration file's top-level fields: an engine
// error about the document starts with one of them (`rules[2].dst: ...`),
// or with the name the firewall or conntrack gives it ("default",
// "profile").
var configFields = map[string]bool{
	"interfaces": true, "queues": true, "cpus": true, "management": true, "routes": true,
	"routes_from_kernel": true, "conntrack": true, "profiles": true, "snat": true, "rules": true,
	"default_action": true, "nsx_compat": true, "nsx_shadow": true, "hugepages": true, "xdp": true,
	"default": true, "profile": true,
}

// namesField reports whether err's text starts with a configuration field
// (its top-level name followed by ':', '.' or '[').
func namesField(err error) bool {
	msg := err.Error()
	i := strings.IndexAny(msg, ":.[ ")
	return i > 0 && configFields[msg[:i]]
}

// ApplyConfig implements Backend.
//
// The document is validated whole (config.Parse, then Engine.Apply as a dry
// run) and only then put in force; an error from putting a validated
// document in force (nothing changed: the engine undoes a failed commit) is
// the data plane's failure, not the document's, and wraps ErrInternal, as
// does a validation error that names no field.
//
// With WithSavePath, a document applied for real (dryRun false, changed
// or not) is written to the configuration file atomically: a temporary file in the
// same directory, written and synced, given the file's mode (and owner,
// when allowed), renamed over the file (a symlink's target when the path is
// one), then the directory synced. ApplyResult.SavedTo is then the file
// written. If the save fails, the configuration stays in force (it is not
// rolled back): SavedTo is empty, SaveError says why, and a line is logged;
// applying the same document again retries the save.
func (b *EngineBackend) ApplyConfig(ctx context.Context, doc []byte, dryRun bool) (ApplyResult, error) {
	if err := b.enter(); err != nil {
		return ApplyResult{}, err
	}
	defer b.life.RUnlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return ApplyResult{}, err
	}
	cfg, err := config.Parse(doc)
	if err != nil {
		return ApplyResult{}, err
	}
	changed, err := b.e.Apply(cfg, true)
	if err != nil {
		switch {
		case errors.Is(err, dataplane.ErrRestartRequired):
			err = &immutableErr{err}
		case !namesField(err):
			err = Internal(err)
		}
		return ApplyResult{}, err
	}
	if dryRun {
		return ApplyResult{Generation: b.gen, Changed: changed}, nil
	}
	// Validated: a failure from here on is the data plane's. A fresh parse,
	// so that nothing the dry run did to cfg carries over.
	if cfg, err = config.Parse(doc); err != nil {
		return ApplyResult{}, Internal(err)
	}
	if changed, err = b.e.Apply(cfg, false); err != nil {
		if errors.Is(err, dataplane.ErrRestartRequired) {
			return ApplyResult{}, &immutableErr{err}
		}
		b.logf("ctl: a valid configuration could not be applied (nothing changed): %v", err)
		return ApplyResult{}, Internal(err)
	}
	differs := len(changed) > 0 || !bytes.Equal(doc, b.doc)
	if differs {
		b.doc = bytes.Clone(doc)
		b.gen++
		b.logf("ctl: configuration generation %d applied; changed: %v", b.gen, changed)
	}
	res := ApplyResult{Generation: b.gen, Changed: changed}
	if b.savePath != "" {
		written, err := saveFile(b.savePath, b.doc)
		if err != nil {
			res.SaveError = err.Error()
			b.logf("ctl: configuration generation %d is in force but NOT saved: %v (edge would start from the old file)", b.gen, err)
		} else {
			res.SavedTo = written
		}
	}
	return res, nil
}

// saveFile replaces the file at path (a symlink's target when path is one)
// with doc atomically and durably, keeping its mode (0600 for a new file)
// and, when allowed, its owner. It returns the file written.
func saveFile(path string, doc []byte) (written string, err error) {
	target := path
	if p, err := filepath.EvalSymlinks(path); err == nil {
		target = p
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("save %s: %w", path, err)
	}
	if target, err = filepath.Abs(target); err != nil {
		return "", fmt.Errorf("save %s: %w", path, err)
	}
	mode := os.FileMode(0o600)
	var owner *syscall.Stat_t
	if fi, err := os.Stat(target); err == nil {
		if !fi.Mode().IsRegular() {
			return "", fmt.Errorf("save %s: not a regular file", target)
		}
		mode = fi.Mode().Perm()
		owner, _ = fi.Sys().(*syscall.Stat_t)
	}
	dir := filepath.Dir(target)
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("save %s: %w", target, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return "", fmt.Errorf("save %s: %w", target, err)
	}
	if owner != nil {
		_ = f.Chown(int(owner.Uid), int(owner.Gid)) // best effort: only root may give a file away
	}
	if _, err = f.Write(doc); err != nil {
		return "", fmt.Errorf("save %s: %w", target, err)
	}
	if err = f.Sync(); err != nil {
		return "", fmt.Errorf("save %s: %w", target, err)
	}
	if err = f.Close(); err != nil {
		return "", fmt.Errorf("save %s: %w", target, err)
	}
	if err = os.Rename(tmp, target); err != nil {
		return "", fmt.Errorf("save %s: %w", target, err)
	}
	// The rename is durable once the directory is synced; the file is in
	// place already, so a failure here is reported but nothing is undone.
	d, derr := os.Open(dir)
	if derr == nil {
		derr = d.Sync()
		d.Close()
	}
	if derr != nil {
		return "", fmt.Errorf("save %s: written, but syncing its directory: %w", target, derr)
	}
	return target, nil
}

// Flows implements Backend.
func (b *EngineBackend) Flows(ctx context.Context, f conntrack.Filter, fn func(*conntrack.FlowInfo) bool) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.life.RUnlock()
	return b.e.Table().Dump(ctx, f, b.now(), fn)
}

// Flush implements Backend.
func (b *EngineBackend) Flush(ctx context.Context, f conntrack.Filter) (int, error) {
	if err := b.enter(); err != nil {
		return 0, err
	}
	defer b.life.RUnlock()
	return b.e.Table().Flush(ctx, f, b.now())
}

// Explain implements Backend.
func (b *EngineBackend) Explain(ctx context.Context, k conntrack.Key, maxHistory int) (conntrack.Explanation, error) {
	if err := b.enter(); err != nil {
		return conntrack.Explanation{}, err
	}
	defer b.life.RUnlock()
	return b.e.Table().Explain(ctx, k, maxHistory, b.now())
}

// DataPlaneWait bounds how long a Stats call waits for the workers to copy
// their SNAT destinations (whatever the caller's context allows).
const DataPlaneWait = 5 * time.Second

// Stats implements Backend. The counters are atomics read without the
// workers' help. With destinations, the SNAT destinations are copied by the
// workers (snat.NAT.Destinations): Stats waits for them until ctx ends, at
// most DataPlaneWait, and if they do not answer returns the counters with a
// warning instead of the destinations.
func (b *EngineBackend) Stats(ctx context.Context, destinations bool) (Stats, error) {
	if err := b.enter(); err != nil {
		return Stats{}, err
	}
	defer b.life.RUnlock()
	ds := b.e.Stats()
	t := b.e.Table()
	s := Stats{Conntrack: t.Stats(), EventsLost: ds.EventsLost, KernelRoutesRefused: ds.KernelRoutesRefused}
	n := &ds.Neighbours
	s.Neighbours = NeighbourStats{Entries: n.Entries, Kept: n.Kept, Unanswered: n.Unanswered,
		KeptTotal: n.KeptTotal, KeptRecovered: n.KeptRecovered, KeptExpired: n.KeptExpired, KeptFailed: n.KeptFailed,
		Requests: n.Requests, Refused: n.Refused, GivenUp: n.GivenUp, Deleted: n.Deleted,
		Held: n.Held, HeldSent: n.HeldSent, HeldDropped: n.HeldDropped}
	s.EventsLost += s.Conntrack.Counters[conntrack.CtrEventsLost]
	for _, w := range ds.Workers {
		s.Workers = append(s.Workers, WorkerStats{
			ID: w.ID, RX: w.RX, TX: w.TX, Drops: w.Drops, Created: w.Created, Handoff: w.Handoff,
			ICMP: w.ICMP, RST: w.RST, Flows: w.Flows, Fragments: w.Fragments,
		})
	}
	for i, p := range ds.Ports {
		zone := [2]string{"inside", "outside"}[i]
		s.Interfaces = append(s.Interfaces, InterfaceStats{
			Name: p.Name, Zone: zone, RX: p.RX, TX: p.TX,
			XDPRedirected: p.XDP.Redirected, XDPNoSocket: p.XDP.NoSocket, XDPPassed: p.XDP.Passed, XDPOther: p.XDP.Other,
			XSKFillRingEmpty: p.XSK.FillRingEmpty, XSKRxRingFull: p.XSK.RxRingFull, XSKTxDeviceDrops: p.XSK.TxDeviceDrops,
		})
	}
	if n := b.e.NAT(); n != nil {
		s.SNAT = n.Stats()
		s.EventsLost += s.SNAT.Counters[snat.CtrEventsLost]
		if destinations {
			dctx, cancel := context.WithTimeout(ctx, DataPlaneWait)
			dests, err := n.Destinations(dctx)
			cancel()
			if err != nil {
				s.Warnings = append(s.Warnings, "snat destinations: the data plane did not answer: "+err.Error())
			} else {
				s.SNATDestinations = dests
			}
		}
	}
	return s, nil
}

// ReadEvents implements Backend: it drains the workers', conntrack's and
// SNAT's rings (at most len(out) from each per call, only while fewer than
// len(out) converted events wait), sorts what waits by time and moves up
// to len(out) of it into out. Events read but not returned wait for the
// next call.
//
// A flow refused for lack of a SNAT port is reported once, by SNAT's
// snat_exhausted event (which carries the translated address): the worker's
// dropped event with reason snat_exhausted for the same packet is left out
// (the drop is still counted in the stats).
func (b *EngineBackend) ReadEvents(out []Event) int {
	if b.enter() != nil {
		return 0
	}
	defer b.life.RUnlock()
	return b.events.read(out, b.sources)
}

// eventSource appends to dst the events it reads from one ring, converted,
// reading at most max of them.
type eventSource func(dst []Event, max int) []Event

// eventMerge merges event sources in time order (ReadEvents).
type eventMerge struct {
	pending []Event // read, sorted by time, not returned yet
}

// read fills out: when fewer than len(out) events wait, it reads at most
// len(out) from each source and sorts what waits by time (stable: a
// source's order is kept among equal times); then it moves up to len(out)
// waiting events into out and returns how many. What waits never exceeds
// (1 + len(sources)) * len(out) events.
func (m *eventMerge) read(out []Event, sources []eventSource) int {
	if len(out) == 0 {
		return 0
	}
	if len(m.pending) < len(out) {
		before := len(m.pending)
		for _, src := range sources {
			m.pending = src(m.pending, len(out))
		}
		if len(m.pending) > before {
			slices.SortStableFunc(m.pending, func(x, y Event) int { return cmp.Compare(x.Time, y.Time) })
		}
	}
	k := copy(out, m.pending)
	m.pending = append(m.pending[:0], m.pending[k:]...)
	return k
}

func (b *EngineBackend) workerEvents(dst []Event, n int) []Event {
	if cap(b.wev) < n {
		b.wev = make([]dataplane.Event, n)
	}
	for _, ev := range b.wev[:b.e.ReadEvents(b.wev[:n])] {
		if reportedBySNAT(&ev) {
			continue
		}
		dst = append(dst, workerEvent(&ev))
	}
	return dst
}

// reportedBySNAT reports whether a worker's event duplicates one of SNAT's:
// the drop of a packet whose flow SNAT refused for lack of a port (SNAT's
// snat_exhausted event, which carries the translated address, reports it).
func reportedBySNAT(ev *dataplane.Event) bool {
	return ev.Kind == dataplane.EvDropped && ev.Reason == drop.SNATExhausted
}

func (b *EngineBackend) conntrackEvents(dst []Event, n int) []Event {
	if cap(b.cev) < n {
		b.cev = make([]conntrack.Event, n)
	}
	t := b.e.Table()
	for _, ev := range b.cev[:t.ReadEvents(b.cev[:n])] {
		dst = append(dst, conntrackEvent(t, &ev))
	}
	return dst
}

func (b *EngineBackend) snatEvents(dst []Event, n int) []Event {
	nat := b.e.NAT()
	if nat == nil {
		return dst
	}
	if cap(b.sev) < n {
		b.sev = make([]snat.Event, n)
	}
	t := b.e.Table()
	for _, ev := range b.sev[:nat.ReadEvents(b.sev[:n])] {
		dst = append(dst, snatEvent(t, &ev))
	}
	return dst
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
	conntrack.EvRefused: EvRefused, conntrack.EvNSXWouldDrop: EvNSXWouldDrop,
}

func conntrackEvent(t *conntrack.Table, ev *conntrack.Event) Event {
	e := Event{Time: ev.Time, Key: ev.Key, Gen: ev.Gen, State: ev.State, Reason: ev.Reason, Flags: ev.Flags,
		Worker: int(ev.Shard), Idle: time.Duration(ev.Idle) * time.Millisecond, Expiry: ev.Expiry}
	// An event about a flow (it has a state) says which side's packet it
	// was; one about a packet without a flow does not.
	if ev.State != conntrack.StateNone {
		e.Dir, e.DirKnown = ev.Dir, true
	}
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
// Incarnation.Rule), named after the rule set the flow was created under
// (dataplane.Engine.FlowRuleName).
func (b *EngineBackend) RuleName(rule uint32) string { return b.e.FlowRuleName(rule) }

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

// Epoch implements Backend: the wall-clock time of the engine's clock zero,
// computed at each call as the wall clock now minus the engine's monotonic
// clock, so that a wall-clock step after start (NTP) does not shift every
// event and flow time: times reported after the step are right. (Status's
// Started is the wall clock at start, for display.)
func (b *EngineBackend) Epoch() time.Time {
	now := time.Now()
	return now.Add(-time.Duration(b.e.Now())).Round(0)
}
