package conntrack

import (
	"sync/atomic"

	"github.com/edgegw/edge/drop"
)

// EventKind is the kind of a conntrack event.
type EventKind uint8

const (
	EvOpened   EventKind = iota + 1 // a flow was created
	EvReopened                      // a new incarnation of a tuple started
	EvClosed                        // a TCP flow reached TIME_WAIT or CLOSE
	EvExpired                       // removed by its idle timer
	EvEvicted                       // removed under table pressure
	EvFlushed                       // removed by the control plane
	EvDeleted                       // removed by the data plane
	EvReplaced                      // a closed/orphan entry replaced by a packet treated as new
	EvDropped                       // a packet dropped by conntrack (Reason says why)
	EvRefused                       // a new flow refused (Reason: table_full, key_in_use)
)

var evNames = [...]string{"", "opened", "reopened", "closed", "expired", "evicted", "flushed", "deleted", "replaced", "dropped", "refused"}

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
}

// eventRing is a single-producer single-consumer ring: the shard's owner
// produces, one control-plane reader consumes. The producer never waits:
// when the ring is full the event is counted as lost. Indices are free-running
// counters; the slots between head and tail belong to the consumer, the rest
// to the producer, so neither ever touches a slot the other may be using.
type eventRing struct {
	buf  []Event
	mask uint64
	_    [64]byte
	head atomic.Uint64 // next slot to read (consumer)
	_    [56]byte
	tail atomic.Uint64 // next slot to write (producer)
	_    [56]byte
}

func (r *eventRing) init(size int) {
	n := 1
	for n < size {
		n <<= 1
	}
	r.buf = make([]Event, n)
	r.mask = uint64(n - 1)
}

// put appends e; it reports false (and drops e) when the ring is full.
func (r *eventRing) put(e *Event) bool {
	t := r.tail.Load()
	if t-r.head.Load() >= uint64(len(r.buf)) {
		return false
	}
	r.buf[t&r.mask] = *e
	r.tail.Store(t + 1)
	return true
}

// read copies up to len(out) events into out and returns how many.
func (r *eventRing) read(out []Event) int {
	h := r.head.Load()
	t := r.tail.Load()
	n := 0
	for h != t && n < len(out) {
		out[n] = r.buf[h&r.mask]
		h++
		n++
	}
	r.head.Store(h)
	return n
}

// skip discards everything queued (a new subscriber starts from now).
func (r *eventRing) skip() { r.head.Store(r.tail.Load()) }
