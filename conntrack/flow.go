package conntrack

import "unsafe"

// flow is one slot of a shard's flow storage: 104 bytes, no pointers, so the
// storage can live outside the Go heap (hugepages) and is never scanned by
// the garbage collector. Only the owning worker reads or writes it.
//
// The reply-direction key is not stored: it is the original key reversed,
// with the destination replaced by (natAddr, natPort) when the flow is
// translated. natAddr indexes the table's interned NAT address list
// (Table.InternAddr); 0 means "not translated".
//
// Field order follows the established path, which meets a slot in DRAM
// when the table is large: a UDP or ICMP packet reads and writes the first
// 60 bytes only (key to pkts), a TCP segment the first 84 (to maxWin);
// what only a flow's first packets, its end or the control plane read comes
// last (Prefetch touches just the lines the packet will use).
type flow struct {
	key     Key    // original direction, 38 bytes
	natPort uint16 // reply-direction destination port (SNAT port or ICMP id)
	natAddr uint16 // interned reply-direction destination address, 0 = none
	gen     uint16 // incarnation number of this tuple
	state   State
	flags   uint8
	profile uint8     // index into the table's profile set
	wscale  uint8     // window scale shift: original in the high nibble, reply in the low; 0xf = absent
	expires uint32    // deadline, millisecond ticks (serial arithmetic)
	pkts    [2]uint32 // packets per direction in this incarnation

	// TCP window tracking per direction (0 = original, 1 = reply), after
	// Guido van Rooij, "Real Stateful TCP Packet Filtering in IP Filter".
	end    [2]uint32 // highest seq+len sent
	maxEnd [2]uint32 // highest ack+window the peer allowed: upper bound for seq
	maxWin [2]uint32 // largest (scaled) window advertised

	synISN  uint32    // sequence number of the last SYN from the original side: its SYN-ACK acks synISN+1
	isn     [2]uint32 // initial sequence numbers of this incarnation
	created uint32    // seconds since the clock's epoch
	rule    uint32    // firewall rule that admitted the flow (opaque to conntrack)
}

const flowSize = 104

var _ [flowSize - unsafe.Sizeof(flow{})]struct{}
var _ [unsafe.Sizeof(flow{}) - flowSize]struct{}

// What Prefetch relies on: a UDP or ICMP packet's bytes (key to pkts) fit
// in 64, so their first and last bytes name every line they lie in; a TCP
// segment's (key to maxWin) span at most 64 bytes beyond the key's
// protocol byte, which therefore lies in the middle line of any three.
var _ [64 - (unsafe.Offsetof(flow{}.pkts) + unsafe.Sizeof(flow{}.pkts))]struct{}
var _ [unsafe.Offsetof(flow{}.key) + unsafe.Offsetof(Key{}.Proto) + 64 -
	(unsafe.Offsetof(flow{}.maxWin) + unsafe.Sizeof(flow{}.maxWin))]struct{}

// flow.flags bits.
const (
	flagCreatorMask = 0x03 // how the incarnation was created: a Creator
	flagLiberal     = 0x04 // skip window checks (policy, or picked up mid-stream)
	flagPendingSYN  = 0x08 // TCP: a SYN with a new ISN seen on a synchronized flow; synISN holds it
	flagChallenge   = 0x10 // TCP SYN_SENT: a possible RFC 5961 challenge ACK passed; end[1] holds its ack
	flagCloseByRep  = 0x20 // TCP: the reply side sent the first FIN
	flagSimOpen     = 0x40 // TCP: the handshake was a simultaneous open
	flagClosedSeen  = 0x80 // TCP: the close (TIME_WAIT or CLOSE) was already counted
	flagUDPReply    = 0x08 // UDP/ICMP: a reply was seen
	flagInbound     = 0x10 // UDP: opened by a datagram from the remote end that a NAT mapping's filter admitted (CreateInbound)
)

// Creator says what kind of packet created a flow incarnation.
type Creator uint8

const (
	CreatedBySYN    Creator = iota // a TCP SYN (the only way, by default)
	CreatedByPickup                // a TCP segment picked up mid-stream (explicit policy)
	CreatedByFirst                 // the first UDP datagram or ICMP echo request
	CreatedByStray                 // NSX compatibility mode only: a FIN without state
)

func (c Creator) String() string {
	switch c {
	case CreatedBySYN:
		return "syn"
	case CreatedByPickup:
		return "pickup"
	case CreatedByFirst:
		return "first"
	case CreatedByStray:
		return "stray-fin"
	}
	return "unknown"
}

func (f *flow) creator() Creator { return Creator(f.flags & flagCreatorMask) }

const wscaleNone = 0xf

func (f *flow) scale(d Dir) uint8 {
	s := f.wscale >> 4
	if d == Reply {
		s = f.wscale & 0xf
	}
	if s == wscaleNone {
		return 0
	}
	return s
}

func (f *flow) setScale(d Dir, s uint8) {
	if d == Original {
		f.wscale = f.wscale&0x0f | s<<4
	} else {
		f.wscale = f.wscale&0xf0 | s&0xf
	}
}

// Dir is the direction of a packet relative to its flow.
type Dir uint8

const (
	Original Dir = 0 // same direction as the packet that created the flow
	Reply    Dir = 1
)

func (d Dir) String() string {
	if d == Original {
		return "original"
	}
	return "reply"
}
