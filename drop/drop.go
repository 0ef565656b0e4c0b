// Package drop declares, in one place, every reason edge has to drop a
// packet, with the name used in counters, events, metrics and docs.
//
// A bad packet on the hot path is never an error value or a log line: it is a
// Reason, counted by whoever dropped it. Counting is the caller's business
// (each worker keeps its own padded array indexed by Reason and the control
// plane sums them on read); this package holds only the enumeration, so it is
// a leaf that every packet-path package can import.
//
// The zero Reason is None ("not dropped"). Reasons are stable small integers:
// they index arrays, so new ones are added before NumReasons, never reordered.
package drop

// Reason says why a packet was dropped (or, for a few, why it was counted but
// let through; see Counted).
type Reason uint8

const (
	None Reason = iota

	// Parsing: the packet's headers contradict themselves or the frame.
	Truncated        // the frame ends before a header it announces
	BadIPHeader      // IPv4 version/IHL/total length or IPv6 payload length inconsistent
	BadIPv6ExtHeader // IPv6 extension-header chain malformed or longer than we walk
	BadL4Header      // TCP data offset or UDP length inconsistent with the packet
	Fragment         // a non-first fragment: no L4 header to track (no reassembly yet)
	UnsupportedProto // an L4 protocol the gateway does not forward
	TCPBadFlags      // impossible TCP flag combination: SYN+FIN, SYN+RST, none, FIN without ACK
	BadICMP          // ICMP header truncated or an error that quotes too little

	// Connection tracking.
	NoState          // a packet that cannot create state (FIN, RST, SYN-ACK, ACK...) met no flow
	TableFull        // a new flow was refused: no free slot and nothing evictable
	KeyInUse         // a new flow's original or reply tuple already belongs to a live flow
	InvalidState     // a packet that is not valid in its flow's state
	StaleIncarnation // a packet of an older incarnation of the tuple (a delayed FIN, an old ACK)
	OutOfWindow      // a TCP segment outside the tracked sequence/ack window
	SynAckBadAck     // a SYN-ACK that does not acknowledge the SYN we forwarded
	RSTOutOfWindow   // an RST whose sequence number is outside the window
	DataOnClosed     // payload or FIN on a flow closed by RST
	ICMPNoFlow       // an ICMP error quoting a packet of no known flow

	NumReasons
)

var names = [NumReasons]string{
	None:             "none",
	Truncated:        "truncated",
	BadIPHeader:      "bad_ip_header",
	BadIPv6ExtHeader: "bad_ipv6_ext_header",
	BadL4Header:      "bad_l4_header",
	Fragment:         "fragment",
	UnsupportedProto: "unsupported_proto",
	TCPBadFlags:      "tcp_bad_flags",
	BadICMP:          "bad_icmp",
	NoState:          "no_state",
	TableFull:        "table_full",
	KeyInUse:         "key_in_use",
	InvalidState:     "invalid_state",
	StaleIncarnation: "stale_incarnation",
	OutOfWindow:      "out_of_window",
	SynAckBadAck:     "synack_bad_ack",
	RSTOutOfWindow:   "rst_out_of_window",
	DataOnClosed:     "data_on_closed",
	ICMPNoFlow:       "icmp_no_flow",
}

var help = [NumReasons]string{
	None:             "not dropped",
	Truncated:        "the frame ends before a header it announces",
	BadIPHeader:      "IPv4/IPv6 header fields inconsistent with each other or the frame",
	BadIPv6ExtHeader: "IPv6 extension-header chain malformed or too long",
	BadL4Header:      "TCP data offset or UDP length inconsistent with the packet",
	Fragment:         "non-first IP fragment (no reassembly): nothing to match a flow on",
	UnsupportedProto: "L4 protocol not forwarded by the gateway",
	TCPBadFlags:      "impossible TCP flag combination (SYN+FIN, SYN+RST, no flags, FIN without ACK)",
	BadICMP:          "ICMP header truncated, or an ICMP error quoting too little of the original packet",
	NoState:          "packet that may not create state (FIN, RST, SYN-ACK, bare ACK, echo reply) without a flow",
	TableFull:        "new flow refused: flow table full and no entry evictable",
	KeyInUse:         "new flow refused: its original or reply tuple belongs to a live flow",
	InvalidState:     "packet not valid in the flow's TCP state",
	StaleIncarnation: "packet of an older incarnation of the tuple; it never changes the newer one",
	OutOfWindow:      "TCP segment outside the tracked sequence or acknowledgement window",
	SynAckBadAck:     "SYN-ACK that does not acknowledge the SYN edge forwarded",
	RSTOutOfWindow:   "RST with a sequence number outside the window (RFC 5961 3.2)",
	DataOnClosed:     "payload or FIN on a flow already closed by RST",
	ICMPNoFlow:       "ICMP error quoting a packet of no known flow (RFC 5508 / RFC 7857 I3)",
}

// String returns the counter name of r, e.g. "out_of_window".
func (r Reason) String() string {
	if r < NumReasons {
		return names[r]
	}
	return "unknown"
}

// Help returns a one-line description of r for metrics and docs.
func (r Reason) Help() string {
	if r < NumReasons {
		return help[r]
	}
	return "unknown reason"
}

// ByName returns the Reason whose String is name.
func ByName(name string) (Reason, bool) {
	for i, n := range names {
		if n == name {
			return Reason(i), true
		}
	}
	return None, false
}
