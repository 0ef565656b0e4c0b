package snat

import (
	"cmp"
	"context"
	"errors"
	"net/netip"
	"slices"

	"github.com/edgegw/edge/conntrack"
)

// Control-plane reads of per-destination counts.
//
// The destination table belongs to the allocator's owner, so the control
// plane never reads it directly: as conntrack does for flows, it leaves one
// request at a time in the allocator's mailbox (internal/mailbox) and the
// owner copies a bounded chunk (at most serveBudget table slots) into the
// request from Serve, between batches. Forwarding never waits for the
// control plane, and the control plane never races the owner.

const (
	// serveBudget bounds the destination slots one Serve call copies.
	serveBudget = 4096
	// trimBudget bounds the ended quarantine entries one Serve call drops.
	trimBudget = 256
)

// ErrNotServed is returned when an allocator's owner did not take a
// control request before the context ended (no worker is calling Serve).
var ErrNotServed = errors.New("snat: allocator owner did not serve the request (is the data plane running?)")

// DestStat is the port usage toward one destination from one translated
// address, summed over workers.
type DestStat struct {
	Addr  netip.Addr     // translated (pool) address
	Dst   netip.AddrPort // destination; port 0 for ICMP echo
	Proto uint8
	Zone  uint8
	// InUse is the number of ports with a live flow.
	InUse int
	// Quarantined is the number of released ports held back (until their
	// quarantine has ended and Serve has dropped the entry).
	Quarantined int
	// Free is the rest of the port range: Range - InUse - Quarantined.
	Free int
	// Range is the number of ports in the configured range.
	Range int
	// OutOfRange is the number of live flows whose ports are outside the
	// range in force (translated under an earlier configuration), or
	// not yet known to be inside it: after a change of range the flows
	// already live are counted here until a full pass over the new range
	// toward the destination sorts them (InUse and Quarantined count
	// ports of the range in force only).
	OutOfRange int
	// Exhausted counts the flows refused for lack of a port, and
	// Overrides the quarantined ports reused because nothing else was
	// free, while the destination had ports in use or in quarantine.
	Exhausted uint64
	Overrides uint64
}

// destRaw is one destination entry as the owner copies it.
type destRaw struct {
	k         tuple
	inUse     uint32
	quar      uint32
	other     uint32
	exhausted uint64
	overrides uint64
}

type request struct {
	kind   requestKind
	cursor int
	out    []destRaw
	maps   []MappingStat // kind mappingsReq
	now    conntrack.Time
	done   bool
}

type requestKind uint8

const (
	destinationsReq requestKind = iota
	mappingsReq                 // copy mappings
	flushIdleReq                // end idle mappings (no live flow)
)

// Serve does a's bounded background work: it drops up to 256 quarantine
// entries whose time has passed, and serves one chunk of a pending control
// request. The owner calls it once per loop iteration, beside
// conntrack.Shard.Serve. It never allocates.
func (a *Allocator) Serve(now conntrack.Time) {
	a.now = now
	a.refresh(now)
	a.q.trim(now, trimBudget)
	a.sweepMappings(now, trimBudget)
	r := a.mbox.Take()
	if r == nil {
		return
	}
	if r.kind != destinationsReq {
		a.serveMappings(r, now)
		a.mbox.Done()
		return
	}
	end := min(r.cursor+serveBudget, len(a.d.e))
	for i := r.cursor; i < end; i++ {
		e := &a.d.e[i]
		if e.k.proto == 0 {
			continue
		}
		if a.migrate(i) && e.inUse == 0 && e.quar == 0 && e.other == 0 {
			// Counted nothing of the range in force: gone, and another
			// entry may have moved into slot i (or, past the table's
			// end, been copied already: Destinations keeps one copy).
			a.d.tidy(i)
			i--
			continue
		}
		if len(r.out) == cap(r.out) {
			end = i
			break
		}
		r.out = append(r.out, destRaw{k: e.k, inUse: e.inUse, quar: e.quar, other: e.other, exhausted: e.exhausted, overrides: e.overrides})
	}
	r.cursor = end
	r.done = end >= len(a.d.e)
	a.mbox.Done()
}

// do hands r to a's owner and waits until it served one chunk, or until ctx
// ends without the owner having taken it.
func (a *Allocator) do(ctx context.Context, r *request) error {
	if !a.mbox.Call(ctx, r, 0) {
		return ErrNotServed
	}
	return nil
}

// Destinations returns the port usage of every destination some worker
// counts, sorted by translated address, destination and protocol. Each
// worker's owner copies its table in chunks from Serve, so the result is
// not a snapshot of one instant: entries added or removed meanwhile may
// or may not appear. Destinations not counted because a worker's table
// was full (counter dest_overflow) are missing. Safe from any goroutine;
// it fails with ErrNotServed if a worker does not call Serve before ctx
// ends.
func (n *NAT) Destinations(ctx context.Context) ([]DestStat, error) {
	nports := n.cur.Load().nports
	sum := make(map[tuple]*DestStat)
	buf := make([]destRaw, 0, serveBudget)
	for _, a := range n.allocs {
		seen := make(map[tuple]destRaw)
		a.ctlMu.Lock()
		r := &request{}
		for {
			r.out = buf[:0]
			if err := a.do(ctx, r); err != nil {
				a.ctlMu.Unlock()
				return nil, err
			}
			for _, d := range r.out {
				seen[d.k] = d // an entry moved by a deletion may be seen twice
			}
			if r.done {
				break
			}
		}
		a.ctlMu.Unlock()
		for k, d := range seen {
			s := sum[k]
			if s == nil {
				s = &DestStat{
					Addr:  netip.AddrFrom16(n.Addr(k.naddr)).Unmap(),
					Dst:   netip.AddrPortFrom(netip.AddrFrom16(k.dst).Unmap(), k.dport),
					Proto: k.proto,
					Zone:  k.zone,
					Range: int(nports),
				}
				sum[k] = s
			}
			s.InUse += int(d.inUse)
			s.Quarantined += int(d.quar)
			s.OutOfRange += int(d.other)
			s.Exhausted += d.exhausted
			s.Overrides += d.overrides
		}
	}
	out := make([]DestStat, 0, len(sum))
	for _, s := range sum {
		s.Free = max(s.Range-s.InUse-s.Quarantined, 0)
		out = append(out, *s)
	}
	slices.SortFunc(out, func(x, y DestStat) int {
		return cmp.Or(x.Addr.Compare(y.Addr), x.Dst.Compare(y.Dst), cmp.Compare(x.Proto, y.Proto), cmp.Compare(x.Zone, y.Zone))
	})
	return out, nil
}

// MappingStat is one endpoint-independent mapping.
type MappingStat struct {
	Inside   netip.AddrPort // the inside endpoint (port: ICMP echo identifier)
	External netip.AddrPort // its external address and port
	Proto    uint8
	Zone     uint8
	Shard    int
	Flows    int // live flows using it; 0: idle (a UDP mapping kept MappingTimeout after its last flow)
	// IdleUntil is when an idle mapping ends (0 while Flows > 0), in the
	// data plane's clock (conntrack.Time).
	IdleUntil conntrack.Time
	Filtering Filtering
	Carried   bool // a flow of it carried a connection: its port is quarantined when it ends
}

// serveMappings serves one chunk of a mappings or flush request: at most
// serveBudget slots of the mapping table. It allocates nothing: r.maps has
// its capacity from the caller.
func (a *Allocator) serveMappings(r *request, now conntrack.Time) {
	end := min(r.cursor+serveBudget, len(a.m.e))
	for i := r.cursor; i < end; i++ {
		e := &a.m.e[i]
		if !e.used {
			continue
		}
		if r.kind == flushIdleReq {
			if e.flows == 0 {
				a.endMapping(i, now)
			}
			continue
		}
		if len(r.maps) == cap(r.maps) {
			end = i
			break
		}
		r.maps = append(r.maps, MappingStat{
			Inside:    netip.AddrPortFrom(netip.AddrFrom16(e.in.addr).Unmap(), e.in.port),
			External:  netip.AddrPortFrom(netip.AddrFrom16(a.n.Addr(e.naddr)).Unmap(), e.nport),
			Proto:     e.in.proto,
			Zone:      e.in.zone,
			Shard:     a.id,
			Flows:     int(e.flows),
			IdleUntil: e.idleUntil,
			Filtering: e.filter,
			Carried:   e.carried,
		})
		if e.flows > 0 {
			r.maps[len(r.maps)-1].IdleUntil = 0
		}
	}
	r.cursor = end
	r.done = end >= len(a.m.e)
}

// Mappings returns every endpoint-independent mapping of every worker,
// sorted by inside endpoint and protocol. Like Destinations it is copied in
// bounded chunks from Serve, not a snapshot of one instant. Safe from any
// goroutine; it fails with ErrNotServed if a worker does not call Serve
// before ctx ends.
func (n *NAT) Mappings(ctx context.Context) ([]MappingStat, error) {
	var out []MappingStat
	buf := make([]MappingStat, 0, serveBudget)
	for _, a := range n.allocs {
		a.ctlMu.Lock()
		r := &request{kind: mappingsReq}
		for {
			r.maps = buf[:0]
			if err := a.do(ctx, r); err != nil {
				a.ctlMu.Unlock()
				return nil, err
			}
			out = append(out, r.maps...)
			if r.done {
				break
			}
		}
		a.ctlMu.Unlock()
	}
	slices.SortFunc(out, func(x, y MappingStat) int {
		return cmp.Or(x.Inside.Compare(y.Inside), cmp.Compare(x.Proto, y.Proto), cmp.Compare(x.Zone, y.Zone))
	})
	return out, nil
}

// FlushIdleMappings ends every mapping no live flow uses (UDP mappings
// kept after their last flow) at once, on every worker, and returns how
// many mappings were left (in use: they end with their flows, which
// conntrack's flush removes). Safe from any goroutine.
func (n *NAT) FlushIdleMappings(ctx context.Context) (left int, err error) {
	for _, a := range n.allocs {
		a.ctlMu.Lock()
		r := &request{kind: flushIdleReq}
		for !r.done {
			if err := a.do(ctx, r); err != nil {
				a.ctlMu.Unlock()
				return 0, err
			}
		}
		a.ctlMu.Unlock()
	}
	ms, err := n.Mappings(ctx)
	return len(ms), err
}
