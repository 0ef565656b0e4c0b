package frag

import (
	"encoding/binary"
	"testing"
)

// FuzzOps runs a sequence of Note, Follow and Expire calls chosen by the
// input over a few datagrams in a small table and checks, after every call,
// that the pool's bookkeeping holds (each frame free or held exactly once)
// and that Note hands back only frames of its own datagram, each once, in
// the order they were held.
func FuzzOps(f *testing.F) {
	f.Add([]byte{0x10, 0x21, 0x02, 0x31, 0x40})
	f.Add([]byte{0x11, 0x11, 0x11, 0x01, 0x41, 0x01})
	f.Fuzz(func(t *testing.T, ops []byte) {
		tab := newTable(t, Config{Datagrams: 8, HoldFrames: 6, FrameSize: 16, Timeout: 10})
		var now int64
		seq := uint32(0)
		lastSeq := map[uint32]uint32{} // datagram id -> sequence of the last frame Note returned
		for _, op := range ops {
			id := uint32(op & 0x0f % 10) // 10 datagrams over 8 slots
			k := key(id)
			switch op >> 4 & 3 {
			case 0: // Note
				held, _ := tab.Note(&k, now, verdict{forward: true}, 8, op&0x80 != 0)
				for _, fr := range held {
					if binary.BigEndian.Uint32(fr) != id {
						t.Fatalf("Note(%d) returned a frame of datagram %d", id, binary.BigEndian.Uint32(fr))
					}
					s := binary.BigEndian.Uint32(fr[4:])
					if s <= lastSeq[id] {
						t.Fatalf("Note(%d) returned frame %d after %d: out of order or twice", id, s, lastSeq[id])
					}
					lastSeq[id] = s
				}
			case 1, 2: // a later fragment
				seq++
				fr := make([]byte, 8+int(op>>6))
				binary.BigEndian.PutUint32(fr, id)
				binary.BigEndian.PutUint32(fr[4:], seq)
				tab.Follow(&k, now, fr, 8*int(op>>6+1), 8, op&0x80 != 0)
			case 3:
				now += int64(op >> 6)
				tab.Expire(now, 1)
			}
			checkPool(t, tab)
		}
	})
}
