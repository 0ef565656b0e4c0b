package conntrack

import (
	"sync/atomic"

	"github.com/edgegw/edge/drop"
)

// Counter names a per-shard event count that is not a drop: lifecycle events
// and packets counted but let through.
type Counter uint8

const (
	CtrCreated          Counter = iota // flows created
	CtrReopened                        // new incarnations of an existing tuple
	CtrClosed                          // TCP flows that reached TIME_WAIT or CLOSE
	CtrExpired                         // flows removed by their idle timer
	CtrEvicted                         // flows removed under table pressure
	CtrFlushed                         // flows removed by the control plane
	CtrDeleted                         // flows removed by the data plane (policy on reopen)
	CtrReplaced                        // orphan or closed entries replaced by a packet treated as new
	CtrRSTInexact                      // in-window RSTs with an inexact sequence: forwarded, not obeyed (RFC 5961 3.2)
	CtrRSTInTimeWait                   // RSTs in TIME_WAIT: forwarded, state kept (RFC 1337)
	CtrSYNOnOpen                       // SYNs with a new ISN on a synchronized flow: forwarded and noted
	CtrSYNNewISN                       // SYN retransmissions with a changed ISN in SYN_SENT
	CtrChallengeACK                    // pure ACKs answering a SYN in SYN_SENT, passed as RFC 5961 challenge ACKs
	CtrRSTToChallenge                  // RSTs answering such a challenge ACK: forwarded, state kept
	CtrSynAckRetransmit                // SYN-ACK retransmissions on an established flow
	CtrEventsLost                      // events not recorded because the event ring was full
	CtrEvictedSynSent                  // unanswered SYN_SENT entries evicted under table pressure (also in evicted)
	CtrNSXWouldDrop                    // NSX shadow: SYN-ACKs edge forwarded that NSX-like semantics would have dropped
	CtrNSXWouldFail                    // NSX shadow: connections with such a SYN-ACK (once each)
	CtrIdleReset                       // ESTABLISHED flows expired under a profile with idle_expiry reset, queued for the data plane to reset
	CtrIdleResetLost                   // such flows that found the reset queue full: expired silently
	CtrIdleRSTClient                   // RSTs the data plane sent toward the client (inside end) of such a flow
	CtrIdleRSTServer                   // RSTs the data plane sent toward the server (outside end) of such a flow
	NumCounters
)

var counterNames = [NumCounters]string{
	"created", "reopened", "closed", "expired", "evicted", "flushed", "deleted", "replaced",
	"rst_inexact", "rst_in_time_wait", "syn_on_open", "syn_new_isn", "challenge_ack", "rst_to_challenge",
	"synack_retransmit", "events_lost", "evicted_syn_sent", "nsx_would_drop", "nsx_would_fail",
	"expired_reset", "expired_reset_lost", "idle_rst_client", "idle_rst_server",
}

func (c Counter) String() string {
	if c < NumCounters {
		return counterNames[c]
	}
	return "unknown"
}

// counters of one shard. They are atomics because the control plane reads
// them while the owner writes; the owner touches them only for drops and
// lifecycle events, never on an established flow's fast path. Each shard is
// a separate allocation and the struct is padded, so shards never share a
// cache line.
type counters struct {
	_     [64]byte
	drops [drop.NumReasons]atomic.Uint64
	ctr   [NumCounters]atomic.Uint64
	_     [64]byte
}

// Stats is a snapshot of counters summed over shards (or of one shard).
type Stats struct {
	Drops    [drop.NumReasons]uint64
	Counters [NumCounters]uint64
	Flows    int64 // live flows
	Capacity int64 // flow slots
}

func (c *counters) addTo(s *Stats) {
	for i := range c.drops {
		s.Drops[i] += c.drops[i].Load()
	}
	for i := range c.ctr {
		s.Counters[i] += c.ctr[i].Load()
	}
}
