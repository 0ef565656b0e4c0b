package dataplane

// Frames of a worker's UMEM.
//
// A worker's two sockets (one per port, same queue) share one UMEM
// (XDP_SHARED_UMEM), each with its own fill and completion rings, so a
// frame received on one port is transmitted on the other from the frame it
// arrived in: no copy in user space. Frames other workers hand over and
// frames edge builds (ICMP errors, resets) are copied into a free frame.
//
// Ownership: every frame is, at any time, in exactly one place, recorded in
// frameLedger.state:
//
//	free      the UMEM's free stack (xdp.Socket GetDescs, Release, Complete)
//	fill p    port p's fill ring, or in the kernel receiving into it, or on p's RX ring
//	held      the worker's: received and being processed, until the end of its loop
//	tx p      port p's TX ring, until p's completion ring gives it back
//
// and only these moves exist, all made by the worker's goroutine:
//
//	free   -> fill p   topUp: port p's fill ring topped up from the free stack
//	fill p -> held     receive: taken from port p's RX ring
//	held   -> tx q     transmit: a received frame sent on port q as it is
//	free   -> tx q     transmit: a free frame a frame was copied into (handed
//	                   over by another worker, or generated), sent on port q
//	held   -> free     recycle: a received frame not transmitted (dropped,
//	                   copied to a hand-off ring, no room in the TX ring)
//	tx q   -> free     recycle: port q's completion ring
//
// A frame is thus never freed twice (only held and tx frames are freed, and
// each move changes the state) nor leaked (a received frame is held until
// the end of the loop that received it, when it is either on a TX ring or
// freed). The state array is always kept (transmit sends a frame in place
// only while it is held, so a frame queued twice is never on two rings);
// checking every move against it and counting frames per state is for
// tests (verifyFrames), which assert the counts' sum and that they drain.

import (
	"math/bits"
	"strconv"

	"github.com/asavie/xdp"
)

// frameState is where a frame of a worker's UMEM is (see above).
type frameState uint8

const (
	frameFree frameState = iota
	frameFill            // + port
	_
	frameHeld
	frameTx // + port
	_
	numFrameStates
)

var frameStateNames = [numFrameStates]string{"free", "fill 0", "fill 1", "held", "tx 0", "tx 1"}

// verifyFrames makes every move check the frame's state and count frames
// per state (frameLedger.count). Tests set it.
var verifyFrames = false

// frameLedger records where each frame of a worker's UMEM is.
type frameLedger struct {
	state  []frameState // by frame number (address >> shift)
	shift  uint
	ring   int                 // descriptors per fill ring
	fill   int                 // frames each fill ring is topped up to
	count  [numFrameStates]int // frames per state (verifyFrames only)
	zcAddr [batchSize]uint64   // transmit: UMEM address of each queued frame sent in place
	inUMEM [batchSize]bool     // transmit: queued frame i is a held UMEM frame
	txDesc [batchSize]xdp.Desc
}

// init sizes the ledger for a UMEM of frames frames of frameSize bytes (a
// power of two), every frame free, with fill rings of ring descriptors
// topped up to fill frames.
func (l *frameLedger) init(frames, frameSize, ring, fill int) {
	l.ring = ring
	l.state = make([]frameState, frames)
	l.shift = uint(bits.TrailingZeros(uint(frameSize)))
	l.fill = fill
	l.count = [numFrameStates]int{}
	l.count[frameFree] = frames
}

// move records that the frame at addr went from state from to state to.
func (l *frameLedger) move(addr uint64, from, to frameState) {
	i := addr >> l.shift
	if verifyFrames {
		if l.state[i] != from {
			panic("dataplane: frame " + strconv.FormatUint(i, 10) + " moved " + frameStateNames[from] + " -> " +
				frameStateNames[to] + " but is " + frameStateNames[l.state[i]])
		}
		l.count[from]--
		l.count[to]++
	}
	l.state[i] = to
}

// fillTarget is how many frames each port's fill ring is topped up to: the
// whole ring, unless the UMEM is smaller than four rings (two fill rings
// and two TX rings), then a quarter of it, so transmission keeps half.
func fillTarget(frames, ring int) int { return min(ring, frames/4) }

// initFrames sets the ledger up for the worker's shared UMEM and fills
// both ports' fill rings; before any packet can be redirected to them.
func (w *worker) initFrames(ring int) {
	s := w.ports[0].sock
	w.ledger.init(s.NumFrames(), s.FrameSize(), ring, fillTarget(s.NumFrames(), ring))
	for pi := range w.ports {
		w.topUp(pi)
	}
}

// receive takes up to batchSize frames from port pi's RX ring.
func (w *worker) receive(pi int) []xdp.Desc {
	rx := w.ports[pi].sock.Receive(batchSize)
	for _, d := range rx {
		w.ledger.move(d.Addr, frameFill+frameState(pi), frameHeld)
	}
	return rx
}

// recycle ends a loop for port pi: of the frames received on it (rx), those
// still held (not transmitted in place) go back to the free stack; the
// frames port pi's completion ring gives back are freed; the fill ring is
// topped up from the free stack. The free stack is LIFO, so the frames just
// freed, warm in cache, are the next received into.
func (w *worker) recycle(pi int, rx []xdp.Desc) {
	l := &w.ledger
	held := rx[:0] // rx is the socket's receive buffer, consumed: compacted in place
	for _, d := range rx {
		if l.state[d.Addr>>l.shift] == frameHeld {
			l.move(d.Addr, frameHeld, frameFree)
			held = append(held, d)
		}
	}
	w.ports[pi].sock.Release(held)
	w.complete(pi)
	w.topUp(pi)
}

// complete takes port pi's completion ring: those frames are free.
func (w *worker) complete(pi int) {
	s := w.ports[pi].sock
	if n := s.NumCompleted(); n > 0 {
		for _, a := range s.Complete(n) {
			w.ledger.move(a, frameTx+frameState(pi), frameFree)
		}
	}
}

// topUp gives port pi's fill ring free frames up to the fill target.
func (w *worker) topUp(pi int) {
	s := w.ports[pi].sock
	l := &w.ledger
	inRing := l.ring - s.NumFreeFillSlots()
	want := l.fill - inRing
	if want <= 0 {
		return
	}
	descs := s.GetDescs(want)
	for _, d := range descs {
		l.move(d.Addr, frameFree, frameFill+frameState(pi))
	}
	s.Fill(descs) // fits: want <= the ring's free slots
}
