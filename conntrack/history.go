package conntrack

// CloseReason says why an incarnation ended.
type CloseReason uint8

const (
	CloseNone       CloseReason = iota // still open
	CloseSuperseded                    // a SYN (or a SYN-ACK acking a noted SYN) started a new incarnation
	CloseExpired                       // idle timer
	CloseEvicted                       // removed to make room under table pressure
	CloseFlushed                       // removed by the control plane
	CloseDeleted                       // removed by the data plane (e.g. policy denied a reopened flow)
	CloseReplaced                      // a packet that may open a flow met this closed or orphan entry
	CloseShutdown                      // table closed
)

var closeNames = [...]string{"open", "superseded", "expired", "evicted", "flushed", "deleted", "replaced", "shutdown"}

func (r CloseReason) String() string {
	if int(r) < len(closeNames) {
		return closeNames[r]
	}
	return "unknown"
}

// Incarnation describes one incarnation of a tuple: the current one of a
// live flow, or a past one kept in a shard's history ring.
type Incarnation struct {
	Orig, Reply Key
	Gen         uint16
	Creator     Creator
	State       State // final state, or the current one
	Reason      CloseReason
	ISN         [2]uint32 // original and reply ISN (TCP)
	Packets     [2]uint32 // original and reply packets
	Rule        uint32
	Opened      Time // second resolution
	Closed      Time // 0 while open
}

// history is a ring of the incarnations that ended most recently in a shard:
// bounded memory, no pointers, written by the owner only. Explain scans it
// newest first for a tuple; its depth in time is its size divided by the
// rate at which incarnations end.
type history struct {
	ring []Incarnation
	next uint64 // total pushed; ring[next%len] is the oldest
}

func (h *history) push(in *Incarnation) {
	if len(h.ring) == 0 {
		return
	}
	h.ring[h.next%uint64(len(h.ring))] = *in
	h.next++
}

// scan calls fn on entries newest first until fn returns false.
func (h *history) scan(fn func(*Incarnation) bool) {
	n := uint64(len(h.ring))
	if n == 0 {
		return
	}
	count := min(h.next, n)
	for i := uint64(1); i <= count; i++ {
		if !fn(&h.ring[(h.next-i)%n]) {
			return
		}
	}
}
