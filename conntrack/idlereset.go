package conntrack

// Idle expiry with reset (Profile.IdleExpiry = IdleReset).
//
// When an ESTABLISHED TCP flow of such a profile expires idle (by the
// sweep, or found expired by a lookup), the shard queues what the data
// plane needs to reset both ends: the flow's keys, which say how each end
// sees the connection (the inside end its original key, the outside end
// the reply key, with the SNAT address and port), and per direction the
// next sequence number that side would send (end[d], window tracking's
// highest seq+len). An RST is accepted only with exactly the receiver's
// next expected sequence number (RFC 5961 3.2; any other in the window
// earns a challenge ACK), and for a flow idle for its whole timer that is
// what the other side last sent. The worker drains the queue after each
// sweep (ExpiredResets, ConsumeExpiredResets) and reports what it sent
// (NoteResetSent). The queue is bounded: a flow that finds it full
// expires silently (counted expired_reset_lost).

// IdleResetQueue is how many expired flows a shard holds for the data
// plane to reset.
const IdleResetQueue = 256

// ExpiredReset is an ESTABLISHED TCP flow that expired idle under a
// profile with IdleReset.
type ExpiredReset struct {
	Orig  Key       // the original key: the client's side (inside) as it sees the connection
	Reply Key       // the reply key: the server's side as it sees the connection (translated)
	Next  [2]uint32 // per direction (Original, Reply), the next sequence number that side would send
}

type idleResetQueue struct {
	q [IdleResetQueue]ExpiredReset
	n int
}

// queueIdleReset queues flow f (reply key rk), expiring, for the data
// plane to reset, and reports whether it did: only an ESTABLISHED TCP flow
// whose profile asks for it, and only while the queue has room.
func (s *Shard) queueIdleReset(f *flow, rk *Key, pol *policy) bool {
	if f.state != TCPEstablished || !pol.set.reset[f.profile] {
		return false
	}
	if s.idle.n == len(s.idle.q) {
		s.count(CtrIdleResetLost)
		return false
	}
	s.idle.q[s.idle.n] = ExpiredReset{Orig: f.key, Reply: *rk, Next: f.end}
	s.idle.n++
	s.count(CtrIdleReset)
	return true
}

// ExpiredResets returns the expired flows waiting to be reset, oldest
// first. The slice is the shard's: valid until the next call that may
// expire flows or ConsumeExpiredResets. Owner only.
func (s *Shard) ExpiredResets() []ExpiredReset { return s.idle.q[:s.idle.n] }

// ConsumeExpiredResets removes the first n of ExpiredResets (those the
// data plane has dealt with). Owner only.
func (s *Shard) ConsumeExpiredResets(n int) {
	n = min(n, s.idle.n)
	copy(s.idle.q[:], s.idle.q[n:s.idle.n])
	s.idle.n -= n
}

// NoteResetSent counts an RST the data plane sent for an idle-expired
// flow with original key orig, toward its client (the inside end, toward
// true) or toward its server. Owner only; it never allocates.
func (s *Shard) NoteResetSent(orig *Key, toClient bool) {
	if toClient {
		s.count(CtrIdleRSTClient)
		s.sig(orig, DestResetsEdge)
		return
	}
	s.count(CtrIdleRSTServer)
}
