package dataplane

import "sync/atomic"

// handoff is a single-producer single-consumer ring of frames from one
// worker to another: a worker that receives a packet of a flow another
// worker owns (the NIC's RSS hash is not edge's shard hash) copies the
// frame into the owner's ring; the owner processes it like its own RX.
// Slots are reserved and committed by the producer, then peeked and
// released by the consumer after it has transmitted them (transmit copies
// frames out), so the frame memory is never shared while in use.
type handoff struct {
	slots []handoffSlot
	mask  uint64
	_     [64]byte
	head  atomic.Uint64 // consumer: next slot to process
	_     [56]byte
	tail  atomic.Uint64 // producer: next slot to fill
	_     [56]byte
}

type handoffSlot struct {
	n    uint16 // frame length
	port uint8  // ingress port, with handoffLooped for a hairpinned packet
	buf  [2048]byte
}

// handoffLooped marks a hand-off slot's port: the frame is a hairpinned
// packet, translated on the inside and looped back as if it arrived on the
// port.
const handoffLooped = 0x80

func newHandoff(n int) *handoff {
	size := 1
	for size < n {
		size <<= 1
	}
	return &handoff{slots: make([]handoffSlot, size), mask: uint64(size - 1)}
}

// put copies frame (received on port) into the ring; false when full.
func (h *handoff) put(port int, frame []byte) bool {
	t := h.tail.Load()
	if t-h.head.Load() >= uint64(len(h.slots)) || len(frame) > len(h.slots[0].buf) {
		return false
	}
	s := &h.slots[t&h.mask]
	s.n = uint16(copy(s.buf[:], frame))
	s.port = uint8(port)
	h.tail.Store(t + 1)
	return true
}

// peek returns the number of committed slots from the consumer's position
// (at most max) without releasing them.
func (h *handoff) peek(max int) int {
	return int(min(h.tail.Load()-h.head.Load(), uint64(max)))
}

// slot returns the i-th unreleased slot (0 = oldest).
func (h *handoff) slot(i int) *handoffSlot { return &h.slots[(h.head.Load()+uint64(i))&h.mask] }

// release gives n slots back to the producer.
func (h *handoff) release(n int) { h.head.Add(uint64(n)) }
