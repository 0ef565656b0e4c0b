package ctl

import (
	"context"
	"net/netip"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/frag"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/snat"
)

// Backend is the data plane as the control plane sees it, in plain Go
// values: nothing here knows grpc or protobuf. The daemon serves a
// *dataplane.Engine through EngineBackend; the tests serve a fake.
//
// Every method is safe from any goroutine except ReadEvents, which has one
// caller (the server's event broker). Methods that need the workers' help
// (Flows, Flush, Explain, Stats' SNAT destinations) wait for them through
// their mailboxes and give up when ctx ends.
type Backend interface {
	// Status describes the running data plane.
	Status(ctx context.Context) (Status, error)

	// Config returns the running configuration document (the config file
	// schema, YAML) and its generation (1 at start, +1 per apply).
	Config(ctx context.Context) (doc []byte, generation uint64, err error)
	// ApplyConfig validates doc whole and, unless dryRun, applies it.
	// On error nothing changed and the error names the field
	// (`rules[2].dst[0]: ...`); a field that cannot change while running
	// (interfaces, queues, ...) is refused the same way.
	ApplyConfig(ctx context.Context, doc []byte, dryRun bool) (ApplyResult, error)

	// Flows calls fn for each live flow matching f until fn returns false.
	Flows(ctx context.Context, f conntrack.Filter, fn func(*conntrack.FlowInfo) bool) error
	// Flush removes the live flows matching f and returns how many.
	Flush(ctx context.Context, f conntrack.Filter) (int, error)
	// Explain returns the live flow of tuple k (either direction) and up to
	// maxHistory of its ended incarnations.
	Explain(ctx context.Context, k conntrack.Key, maxHistory int) (conntrack.Explanation, error)

	// Mappings returns the NAT's endpoint-independent mappings, sorted by
	// inside endpoint (none without SNAT).
	Mappings(ctx context.Context) ([]Mapping, error)
	// FlushIdleMappings ends the mappings no live flow uses and returns
	// how many are left (in use).
	FlushIdleMappings(ctx context.Context) (int, error)

	// Destinations returns conntrack's per-destination signals, summed
	// over the workers (who copy them between batches), busiest first.
	Destinations(ctx context.Context) (conntrack.Destinations, error)

	// Stats returns the counters, summed at the time of the call. With
	// destinations it also asks the workers for SNAT port usage per
	// destination; if they do not answer before ctx ends, the counters are
	// still returned, with Stats.Warnings saying what is missing.
	Stats(ctx context.Context, destinations bool) (Stats, error)

	// ReadEvents moves queued events into out and returns how many. One
	// caller at a time; events the rings could not hold are counted in
	// Stats().EventsLost.
	ReadEvents(out []Event) int

	// Names of the values flows and events carry as indexes.
	RuleName(rule uint32) string
	ProfileName(profile uint8) string
	// Epoch is the wall-clock time of conntrack.Time 0: the time of a
	// conntrack.Time t is Epoch().Add(time.Duration(t)). It may move when
	// the wall clock is stepped (the data plane's clock is monotonic), so
	// callers take it once per request.
	Epoch() time.Time
}

// ApplyResult is what an applied (or dry-run) configuration changed.
type ApplyResult struct {
	Generation uint64   // the running generation after the call
	Changed    []string // top-level fields that differ: "rules", "snat", "profiles", ...
	SavedTo    string   // the file the document was written to; "": not saved
	// SaveError says why a document applied for real could not be saved
	// (SavedTo is then ""); the configuration is in force all the same.
	SaveError string
}

// Status describes the running data plane.
type Status struct {
	Version    string
	Started    time.Time
	Interfaces []InterfaceStatus
	Workers    []WorkerStatus
	Flows      int64 // live flows
	Capacity   int64 // flow slots
	MemoryB    int64 // flow storage bytes
	Hugepages  bool  // flow storage on hugepages
	SNAT       *SNATStatus
	Generation uint64 // configuration generation
	NSXCompat  bool
	NSXShadow  bool
}

// InterfaceStatus is one side of the gateway.
type InterfaceStatus struct {
	Name    string
	Zone    string // "inside" or "outside"
	Ifindex int
	MTU     int
	MAC     string
	Addrs   []netip.Addr
	Queues  int
	XDPMode string // "copy" or "zerocopy"
}

// WorkerStatus is one worker: one queue on each interface, one shard.
type WorkerStatus struct {
	ID    int
	Queue int
	CPU   int // -1: not pinned
}

// SNATStatus is the source-NAT configuration in force.
type SNATStatus struct {
	Mode       string // "automap" or "pools"
	Pools      []SNATPool
	PortFirst  uint16
	PortLast   uint16
	Quarantine time.Duration
	// Mapping and Filtering: the NAT behaviour (of pools that set none).
	Mapping, Filtering string
	MappingTimeout     time.Duration
}

// SNATPool is one named set of translated addresses.
type SNATPool struct {
	Name  string
	Addrs []netip.Addr // ranges expanded only up to a few; see Ranges
	// Ranges are the pool's address ranges as written ("a-b").
	Ranges []string
}

// Stats are the data plane's counters.
type Stats struct {
	Workers    []WorkerStats
	Interfaces []InterfaceStats
	Conntrack  conntrack.Stats // summed over shards (drops conntrack counted)
	SNAT       snat.Stats      // zero without SNAT
	// SNATDestinations is the port usage toward each destination.
	SNATDestinations []snat.DestStat
	EventsLost       uint64 // events lost to full rings (data plane side)
	Neighbours       NeighbourStats
	// KernelRoutesRefused counts refreshes of routes_from_kernel refused
	// (more routes than routes_from_kernel_max, netlink errors).
	KernelRoutesRefused uint64
	Warnings            []string
}

// NeighbourStats are the neighbour mirror's counters (the data plane's
// copy of the kernel's neighbour tables).
type NeighbourStats struct {
	Entries    int // in the snapshot the workers use
	Kept       int // of them, in use and served from memory because the kernel's dump lacks them
	Unanswered int // resolutions asked of the kernel and outstanding

	KeptTotal     uint64 // times an in-use entry was kept when a dump lacked it
	KeptRecovered uint64 // kept entries the kernel had again
	KeptExpired   uint64 // kept entries dropped at the keep bound
	KeptFailed    uint64 // kept entries dropped because the kernel reported the neighbour failed
	Requests      uint64 // resolutions asked of the kernel
	Refused       uint64 // resolutions refused: too many outstanding (the packets count as drop neighbour_resolve_limited)
	GivenUp       uint64 // resolutions given up: failed, or unanswered too long
	Deleted       uint64 // failed or stuck kernel entries of edge's own requests deleted
	Held          uint64 // packets held while their next hop was resolved
	HeldSent      uint64 // of them, sent once it was
	HeldDropped   uint64 // of them, dropped unresolved (counted as no_neighbour too)
}

// Fragments sums the workers' fragment-table counters.
func (s *Stats) Fragments() frag.Stats {
	var f frag.Stats
	for i := range s.Workers {
		w := &s.Workers[i].Fragments
		f.Noted += w.Noted
		f.Followed += w.Followed
		f.Held += w.Held
		f.Released += w.Released
		f.ExpiredHeld += w.ExpiredHeld
		f.Completed += w.Completed
		f.Refused += w.Refused
		f.ExpiredState += w.ExpiredState
	}
	return f
}

// fragFramesHeld is how many of the frames f counted as held wait now for
// their datagram's first fragment. Counters read while a worker publishes
// can show more frames leaving than entering: that is 0.
func fragFramesHeld(f *frag.Stats) uint64 {
	if f.Released >= f.Held || f.ExpiredHeld >= f.Held-f.Released {
		return 0 // not a wrapped difference
	}
	return f.Held - f.Released - f.ExpiredHeld
}

// Drops sums the workers' drops by reason.
func (s *Stats) Drops() [drop.NumReasons]uint64 {
	var d [drop.NumReasons]uint64
	for i := range s.Workers {
		for r, n := range s.Workers[i].Drops {
			d[r] += n
		}
	}
	return d
}

// WorkerStats are one worker's counters.
type WorkerStats struct {
	ID      int
	RX, TX  [2]uint64 // by zone: 0 inside, 1 outside
	Drops   [drop.NumReasons]uint64
	Created uint64
	Handoff uint64 // frames handed to the worker owning their flow
	ICMP    [icmp.NumKinds]uint64
	RST     uint64
	Flows   int64 // live flows in this worker's shard
	// Fragments are the worker's fragment table's counters: later
	// fragments following their first fragment's verdict, and frames held
	// until it comes.
	Fragments frag.Stats
}

// InterfaceStats are one interface's counters.
type InterfaceStats struct {
	Name   string
	Zone   string
	RX, TX uint64 // packets, summed over workers
	// XDP program verdicts on this interface.
	XDPRedirected, XDPNoSocket, XDPPassed, XDPOther uint64
	// AF_XDP sockets' losses (kernel counters, summed over queues): frames
	// redirected that no worker received because its fill ring was empty
	// or its RX ring full, and frames the device dropped on transmit.
	XSKFillRingEmpty, XSKRxRingFull, XSKTxDeviceDrops uint64
}

// EventKind is what an Event reports.
type EventKind uint8

const (
	EvNone EventKind = iota
	// From conntrack.
	EvOpened   // a flow was created
	EvReopened // a new incarnation of a tuple started
	EvClosed   // a TCP flow reached TIME_WAIT or CLOSE
	EvExpired  // removed by its idle timer
	EvEvicted  // removed under table pressure
	EvFlushed  // removed by the control plane
	EvDeleted  // removed by the data plane
	EvReplaced // a closed entry replaced by a packet treated as new
	EvRefused  // a new flow refused (table full, key in use, SNAT exhausted)
	// From the workers and conntrack.
	EvDropped // a packet dropped; Reason says why
	EvICMPSent
	EvRSTSent
	// From SNAT.
	EvSNATExhausted          // no port toward the destination
	EvSNATQuarantineOverride // a quarantined port reused
	// From conntrack's NSX shadow (nsx_shadow).
	EvNSXWouldDrop // a connection NSX-like semantics would have failed: its SYN-ACK dropped (Reason)
	NumEventKinds
)

var eventKindNames = [NumEventKinds]string{
	"none", "opened", "reopened", "closed", "expired", "evicted", "flushed", "deleted",
	"replaced", "refused", "dropped", "icmp_sent", "rst_sent", "snat_exhausted",
	"snat_quarantine_override", "nsx_would_drop",
}

func (k EventKind) String() string {
	if k < NumEventKinds {
		return eventKindNames[k]
	}
	return "unknown"
}

// EventKindByName is the inverse of EventKind.String.
func EventKindByName(name string) (EventKind, bool) {
	for i, n := range eventKindNames {
		if n == name && i != 0 {
			return EventKind(i), true
		}
	}
	return 0, false
}

// Event is one thing that happened in the data plane.
type Event struct {
	Time   conntrack.Time // see Backend.Epoch
	Kind   EventKind
	Key    conntrack.Key  // the flow's original key, or the packet's
	NAT    netip.AddrPort // the translated source, when known
	Gen    uint16
	State  conntrack.State
	Reason drop.Reason // dropped/refused: why; icmp_sent/rst_sent: the cause
	ICMP   icmp.Kind   // icmp_sent
	Flags  uint8       // TCP flags of the packet, for dropped
	Worker int
	Zone   uint8 // zone the packet arrived on (0 unknown, 1 inside, 2 outside)
	// Dir is the direction of the event's packet in its flow, when DirKnown
	// (conntrack events of a flow).
	Dir      conntrack.Dir
	DirKnown bool
	// Idle: expired, evicted: how long the flow had been idle.
	Idle time.Duration
	// Expiry: expired: whether edge reset the flow's ends (its profile's
	// idle_expiry, for an established TCP flow) or not.
	Expiry conntrack.IdleExpiry
}

// Mapping is one NAT mapping (snat.MappingStat with the time left of an
// idle one).
type Mapping struct {
	snat.MappingStat
	IdleLeft time.Duration // idle (Flows 0): how long it is kept
}
