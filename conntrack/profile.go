package conntrack

import (
	"errors"
	"strconv"
)

// State is a flow's tracking state. TCP states follow the Linux conntrack
// names (see the state machine in doc.go); UDP and ICMP echo flows have
// states of their own so one timeout table serves all protocols.
type State uint8

const (
	StateNone State = iota // a free slot

	TCPSynSent     // the originator's SYN was seen
	TCPSynSent2    // simultaneous open: both sides sent a SYN, no SYN-ACK yet
	TCPSynRecv     // the SYN-ACK answering the SYN was seen
	TCPEstablished // the handshake's final ACK was seen
	TCPFinWait     // one side sent FIN, not yet acknowledged
	TCPCloseWait   // the first FIN was acknowledged; the other side has not sent FIN
	TCPLastAck     // both sides sent FIN; the last one is not yet acknowledged
	TCPTimeWait    // both FINs acknowledged
	TCPClose       // closed by an exact-sequence RST

	UDPFirst    // one packet from the originator
	UDPSingle   // several packets from the originator, none back
	UDPMultiple // packets in both directions

	ICMPFirst   // echo request seen
	ICMPReplied // echo reply seen

	NumStates
)

// The timeout table has 16 columns; States must fit.
var _ [16 - NumStates]struct{}

var stateNames = [NumStates]string{
	"NONE", "SYN_SENT", "SYN_SENT2", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK",
	"TIME_WAIT", "CLOSE", "UDP_FIRST", "UDP_SINGLE", "UDP_MULTIPLE", "ICMP_FIRST", "ICMP_REPLIED",
}

func (s State) String() string {
	if s < NumStates {
		return stateNames[s]
	}
	return "STATE(" + strconv.Itoa(int(s)) + ")"
}

// StateByName returns the state whose String is name.
func StateByName(name string) (State, bool) {
	for i, n := range stateNames {
		if n == name {
			return State(i), true
		}
	}
	return StateNone, false
}

// IsTCP reports whether s is a TCP state.
func (s State) IsTCP() bool { return s >= TCPSynSent && s <= TCPClose }

// closing reports whether a SYN on a flow in state s starts a new incarnation.
func (s State) closing() bool { return s >= TCPFinWait && s <= TCPClose }

// Profile is a named set of per-state idle timeouts. A flow's timer restarts
// from the timeout of its current state on every packet that passes.
type Profile struct {
	Name string
	// TCP
	SynSent     Time // "first packet": SYN seen, nothing back (also SYN_SENT2)
	SynRecv     Time // "opening": SYN-ACK seen, final ACK not yet
	Established Time
	FinWait     Time // one FIN seen (FIN_WAIT, CLOSE_WAIT): "closing"
	LastAck     Time // both FINs seen (LAST_ACK, TIME_WAIT): "fin-wait"
	TimeWait    Time
	Close       Time // after an RST: "closed"
	// UDP
	UDPFirst    Time
	UDPSingle   Time
	UDPMultiple Time
	// ICMP echo
	ICMPFirst   Time
	ICMPReplied Time
	// IdleExpiry is what happens when an ESTABLISHED TCP flow of this
	// profile expires idle (IdleSilent by default).
	IdleExpiry IdleExpiry
}

// IdleExpiry says what edge does when an established TCP flow's idle timer
// runs out.
type IdleExpiry uint8

const (
	// IdleSilent forgets the flow; each end learns at its next packet
	// (dropped as no_state), as behind most stateful middle boxes.
	IdleSilent IdleExpiry = iota
	// IdleReset also asks the data plane to send each end a TCP RST with
	// the sequence number it expects (Shard.ExpiredResets), so that neither
	// keeps a connection that would fail on its next use.
	IdleReset
)

func (e IdleExpiry) String() string {
	if e == IdleReset {
		return "reset"
	}
	return "silent"
}

// DefaultProfile meets RFC 5382 REQ-5 (established idle >= 2 h 4 min,
// transitory >= 4 min), RFC 4787 REQ-5 (UDP >= 2 min, 5 min recommended) and
// RFC 5508 REQ-1 (ICMP query >= 60 s), as RFC 7857 restates them, with one
// departure: an unanswered SYN (SYN_SENT) is held 120 s, as Linux
// conntrack and pf (tcp.first) hold it, not REQ-5's 4 minutes, so that
// SYNs toward black-holed ports do not hold slots that long. 120 s still
// outlasts a client's SYN retries (Linux sends its last at 63 s).
// SYN_RECV and the closing states keep the 4-minute transitory timer.
var DefaultProfile = Profile{
	Name:        "default",
	SynSent:     120 * Second,
	SynRecv:     240 * Second,
	Established: 7440 * Second,
	FinWait:     240 * Second,
	LastAck:     240 * Second,
	TimeWait:    240 * Second,
	Close:       240 * Second, // RFC 7857 2.2: hold 4 min after RST
	UDPFirst:    300 * Second,
	UDPSingle:   300 * Second,
	UDPMultiple: 300 * Second,
	ICMPFirst:   60 * Second,
	ICMPReplied: 60 * Second,
}

// NSXGatewayProfile has the NSX-T gateway firewall's default session timers,
// for running edge A/B against an NSX-T edge. It is not RFC-conformant (UDP
// 30 s, ICMP 6 s) and is never the default.
var NSXGatewayProfile = Profile{
	Name:        "nsx-gateway",
	SynSent:     120 * Second, // first packet
	SynRecv:     30 * Second,  // opening
	Established: 7200 * Second,
	FinWait:     900 * Second, // closing
	LastAck:     4 * Second,   // fin-wait
	TimeWait:    4 * Second,
	Close:       2 * Second, // closed
	UDPFirst:    30 * Second,
	UDPSingle:   30 * Second,
	UDPMultiple: 30 * Second,
	ICMPFirst:   6 * Second,
	ICMPReplied: 6 * Second, // error reply
}

// timeouts returns the per-state timeout table of p in ticks (milliseconds).
func (p *Profile) timeouts() (t [NumStates]uint32) {
	set := func(d Time, states ...State) {
		for _, s := range states {
			t[s] = uint32(d / Millisecond)
		}
	}
	set(p.SynSent, TCPSynSent, TCPSynSent2)
	set(p.SynRecv, TCPSynRecv)
	set(p.Established, TCPEstablished)
	set(p.FinWait, TCPFinWait, TCPCloseWait)
	set(p.LastAck, TCPLastAck)
	set(p.TimeWait, TCPTimeWait)
	set(p.Close, TCPClose)
	set(p.UDPFirst, UDPFirst)
	set(p.UDPSingle, UDPSingle)
	set(p.UDPMultiple, UDPMultiple)
	set(p.ICMPFirst, ICMPFirst)
	set(p.ICMPReplied, ICMPReplied)
	return t
}

// Validate checks that every timeout is positive and at most MaxTimeout and
// that the profile has a name. Errors name the offending field.
func (p *Profile) Validate() error {
	if p.Name == "" {
		return errors.New("profile: name is empty")
	}
	fields := []struct {
		name string
		d    Time
	}{
		{"syn_sent", p.SynSent}, {"syn_recv", p.SynRecv}, {"established", p.Established},
		{"fin_wait", p.FinWait}, {"last_ack", p.LastAck}, {"time_wait", p.TimeWait}, {"close", p.Close},
		{"udp_first", p.UDPFirst}, {"udp_single", p.UDPSingle}, {"udp_multiple", p.UDPMultiple},
		{"icmp_first", p.ICMPFirst}, {"icmp_replied", p.ICMPReplied},
	}
	if p.IdleExpiry > IdleReset {
		return errors.New("profile " + strconv.Quote(p.Name) + ": idle_expiry must be silent or reset")
	}
	for _, f := range fields {
		if f.d < Millisecond || f.d > MaxTimeout {
			return errors.New("profile " + strconv.Quote(p.Name) + ": " + f.name +
				" must be between 1ms and " + strconv.Itoa(int(MaxTimeout/Second)) + "s")
		}
	}
	return nil
}

// profileSet is an immutable snapshot of the configured profiles, swapped
// whole through an atomic.Pointer. Its timeout table has a row for every
// possible profile index (rows past the configured profiles repeat profile
// 0), so the per-packet lookup needs no bounds check.
type profileSet struct {
	names []string
	to    [256][16]uint32
	reset [256]bool // IdleReset, per profile index (rows past the profiles: profile 0's)
}

func newProfileSet(ps []Profile) (*profileSet, error) {
	if len(ps) == 0 {
		ps = []Profile{DefaultProfile}
	}
	if len(ps) > 255 {
		return nil, errors.New("profiles: at most 255")
	}
	s := &profileSet{}
	seen := map[string]bool{}
	for i := range ps {
		if err := ps[i].Validate(); err != nil {
			return nil, err
		}
		if seen[ps[i].Name] {
			return nil, errors.New("profiles: duplicate name " + strconv.Quote(ps[i].Name))
		}
		seen[ps[i].Name] = true
		s.names = append(s.names, ps[i].Name)
	}
	for i := range s.to {
		p := &ps[0]
		if i < len(ps) {
			p = &ps[i]
		}
		t := p.timeouts()
		copy(s.to[i][:], t[:])
		s.reset[i] = p.IdleExpiry == IdleReset
	}
	return s, nil
}

// timeout returns the timeout in ticks of state st under profile index i
// (profile 0's when i is not configured).
func (s *profileSet) timeout(i uint8, st State) uint32 { return s.to[i][st&15] }
