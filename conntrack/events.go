package conntrack

import (
	"unsafe"

	"github.com/edgegw/edge/drop"
)

// EventKind is the kind of a conntrack event.
type EventKind uint8

const (
	EvOpened       EventKind = iota + 1 // a flow was created
	EvReopened                          // a new incarnation of a tuple started
	EvClosed                            // a TCP flow reached TIME_WAIT or CLOSE
	EvExpired                           // removed by its idle timer
	EvEvicted                           // removed under table pressure
	EvFlushed                           // removed by the control plane
	EvDeleted                           // removed by the data plane
	EvReplaced                          // a closed/orphan entry replaced by a packet treated as new
	EvDropped                           // a packet dropped by conntrack (Reason says why)
	EvRefused                           // a new flow refused (Reason: table_full, key_in_use)
	EvNSXWouldDrop                      // NSX shadow: a connection NSX-like semantics would have failed (Reason: what NSX drops)
)

var evNames = [...]string{"", "opened", "reopened", "closed", "expired", "evicted", "flushed", "deleted", "replaced", "dropped", "refused", "nsx_would_drop"}

func (k EventKind) String() string {
	if int(k) < len(evNames) && k != 0 {
		return evNames[k]
	}
	return "unknown"
}

// Event is one conntrack event: fixed size, no pointers.
type Event struct {
	Time    Time
	Key     Key // the flow's original key, or the dropped packet's key
	NATPort uint16
	NATAddr uint16 // interned; resolve with Table.NATAddr
	Gen     uint16
	Kind    EventKind
	Reason  drop.Reason // for EvDropped and EvRefused
	State   State
	Dir     Dir
	Flags   uint8 // TCP flags of the packet, for EvDropped
	Shard   uint8
	// Expiry is, for EvExpired, whether edge resets both ends of the flow
	// (IdleReset: an ESTABLISHED TCP flow whose profile asks for it) or
	// not.
	Expiry IdleExpiry
	// Idle is, for EvExpired and EvEvicted, how long the flow had been
	// idle (milliseconds since its last packet): for an expired flow its
	// state's timeout plus the time the sweep took to reach it.
	Idle uint32
}

// Event fills one 64-byte line (Idle and Expiry took room the padding left).
var _ [64 - unsafe.Sizeof(Event{})]struct{}
