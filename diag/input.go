package diag

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
)

// Kind is what an Event reports. The names are the control plane's event
// kinds (ctl.EventKind, `edge events --kind`); a name this package does not
// know is KindOther and is only counted.
type Kind uint8

const (
	KindOther Kind = iota
	KindOpened
	KindReopened
	KindClosed
	KindExpired
	KindEvicted
	KindFlushed
	KindDeleted
	KindReplaced
	KindRefused
	KindDropped
	KindICMPSent
	KindRSTSent
	KindSNATExhausted
	KindSNATQuarantineOverride
	KindNSXWouldDrop // nsx_shadow: a connection NSX-like semantics would have failed
	numKinds
)

var kindNames = [numKinds]string{
	"other", "opened", "reopened", "closed", "expired", "evicted", "flushed", "deleted",
	"replaced", "refused", "dropped", "icmp_sent", "rst_sent", "snat_exhausted",
	"snat_quarantine_override", "nsx_would_drop",
}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "other"
}

// KindByName returns the Kind of a control-plane event kind name, and
// false (KindOther) for a name it does not know.
func KindByName(name string) (Kind, bool) {
	for i := KindOpened; i < numKinds; i++ {
		if kindNames[i] == name {
			return i, true
		}
	}
	return KindOther, false
}

// flowKind reports whether events of kind k carry a flow's original key
// (conntrack's lifecycle events, and the NSX shadow's) rather than a
// packet's key.
func (k Kind) flowKind() bool { return k >= KindOpened && k <= KindReplaced || k == KindNSXWouldDrop }

// Zone is the side a packet arrived on.
type Zone uint8

const (
	ZoneUnknown Zone = iota
	ZoneInside
	ZoneOutside
)

// Dir is the direction of the packet an event is about, relative to its
// flow. The control plane's conntrack events of a flow carry it (the API's
// Event.direction); others, and recordings of older daemons, do not
// (DirUnknown): the rules use it when it is known and fall back to weaker
// evidence otherwise.
type Dir uint8

const (
	DirUnknown  Dir = iota
	DirOriginal     // from the flow's originator (the client)
	DirReply        // from the other end (the server)
)

// Tuple is a packet's or a flow's key: protocol, source and destination
// (IPv4 addresses unmapped) and conntrack zone.
type Tuple struct {
	Proto    uint8
	Src, Dst netip.AddrPort
	Zone     uint8
}

// Reverse returns the tuple of the opposite direction.
func (t Tuple) Reverse() Tuple { return Tuple{Proto: t.Proto, Src: t.Dst, Dst: t.Src, Zone: t.Zone} }

// String formats t as `edge events` and `edge flows explain` do:
// "tcp 10.0.0.2:40000 -> 10.2.0.2:8080".
func (t Tuple) String() string {
	s := ProtoName(t.Proto) + " " + t.Src.String() + " -> " + t.Dst.String()
	if t.Zone != 0 {
		s += " zone " + strconv.Itoa(int(t.Zone))
	}
	return s
}

// ProtoName is the API's name of IP protocol p (tcp, udp, icmp, icmpv6 or
// the number).
func ProtoName(p uint8) string {
	switch p {
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	}
	return strconv.Itoa(int(p))
}

// ProtoByName is the inverse of ProtoName.
func ProtoByName(s string) (uint8, bool) {
	switch s {
	case "tcp":
		return protoTCP, true
	case "udp":
		return protoUDP, true
	case "icmp":
		return 1, true
	case "icmpv6":
		return 58, true
	}
	n, err := strconv.ParseUint(s, 10, 8)
	return uint8(n), err == nil && n > 0
}

const (
	protoTCP = 6
	protoUDP = 17
)

// TCP flag bits of Event.Flags (the header's order).
const (
	FlagFIN = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
)

// Event is one data-plane event as the control plane reports it (ctl.Event,
// the JSON lines of `edge events -o json`). Kind-dependent fields are zero
// when they do not apply.
type Event struct {
	Time time.Time
	Kind Kind
	// Tuple is the flow's original key for conntrack's lifecycle events
	// (opened ... replaced) and for drops decided on an existing flow
	// (State set); otherwise the packet's key as it arrived.
	Tuple  Tuple
	NAT    netip.AddrPort // translated source, when known
	Gen    uint16
	State  conntrack.State
	Reason drop.Reason // dropped, refused: why; icmp_sent, rst_sent: the cause
	ICMP   string
	Flags  uint8 // TCP flags of the packet
	Worker int
	Zone   Zone
	Dir    Dir
	// Idle: expired, evicted: how long the flow had been idle (its timer,
	// for an expired flow, plus the sweep's delay); 0: not known.
	Idle time.Duration
	// Reset: expired: edge sent each end of the flow an RST (its profile's
	// idle_expiry: reset); false: it expired silently (or not known).
	Reset bool
}

// Counters are the data plane's counters at one time (`edge stats -o json`
// with --snat). Maps are by counter name.
type Counters struct {
	Time       time.Time
	Drops      map[string]uint64 // by drop reason
	Conntrack  map[string]uint64
	SNAT       map[string]uint64
	Flows      int64
	Capacity   int64
	EventsLost uint64
	// Destinations is SNAT port usage per destination (the busiest).
	Destinations []DestUsage
}

// DestUsage is the SNAT port usage of one translated address toward one
// destination.
type DestUsage struct {
	Addr                 netip.Addr // translated address
	Dst                  netip.AddrPort
	Proto                uint8
	InUse, Quarantined   int
	Free, Range          int
	Exhausted, Overrides uint64
}

// Flow is one incarnation of a tuple: a live flow (Closed zero) from
// `edge flows`, or an ended one from `edge flows explain`.
type Flow struct {
	Orig         Tuple
	NAT          netip.AddrPort
	State        conntrack.State
	Gen          uint16
	Creator      string
	PacketsOrig  uint64
	PacketsReply uint64
	Opened       time.Time
	Closed       time.Time
	CloseReason  string
}
