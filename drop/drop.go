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
	Fragment         // a fragment of a TCP segment or of a protocol whose fragments are not followed
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

	// Firewall policy (first packet of a flow).
	FirewallDrop   // a new flow denied by a firewall rule or the default action
	FirewallReject // a new flow rejected by a firewall rule (the data plane answers it)

	// Source NAT (first packet of a flow, and rewrites).
	SNATExhausted // a new flow refused: no free SNAT port toward its destination
	SNATNoAddress // no SNAT address of the packet's IP family (NAT46/NAT64 is not supported)

	// Forwarding (data plane).
	TTLExceeded    // TTL or hop limit would reach 0
	NoRoute        // no route to the destination
	MTUExceeded    // larger than the egress MTU
	NoNeighbour    // next hop's MAC address unknown (resolution requested)
	TxFull         // no free transmit slot on the egress queue
	HandoffFull    // the owning worker's hand-off ring was full
	NotForwardable // link-layer broadcast/multicast, or a multicast, broadcast, loopback, link-local or unspecified address

	// ICMP errors edge generates or translates (package icmp).
	ICMPNotSentError     // no ICMP error about an ICMP error or redirect (RFC 1812 4.3.2.7, RFC 4443 2.4(e))
	ICMPNotSentFragment  // no ICMP error about a non-first fragment
	ICMPNotSentSource    // no ICMP error to a source that is not one unicast host
	ICMPNotSentMulticast // no ICMP error about a packet sent to a multicast or broadcast address
	ICMPNotSentTCPNotSYN // no ICMP error about a TCP segment that is not a SYN (rule N3)
	ICMPRateLimited      // ICMP error not sent: the worker's ICMP rate limit was reached
	ICMPBuildFailed      // ICMP error not built: buffer too small, or kind, MTU or source invalid
	ICMPBadChecksum      // ICMP error to translate has a bad ICMP or quoted IPv4 checksum

	// NSX compatibility mode (conntrack.Policy.NSXCompat; off by default).
	NSXSynAckOnClosing // a SYN-ACK met a CLOSING entry: dropped (and ICMP 3/3 sent) as the NSX-T gateway firewall does

	// Router checks on the IP header (RFC 1812 5.2.2, 5.3.7; data plane).
	BadIPChecksum     // IPv4 header checksum wrong
	EtherTypeMismatch // the IP version is not the one the EtherType announces
	BadIPv6Address    // an IPv6 header (or the one an ICMPv6 error quotes) carries an IPv4-mapped or -compatible address
	SourceRouted      // IPv4 loose or strict source route option (dropped unless configured otherwise)
	BadIPOptions      // IPv4 options malformed: an option length below 2 or past the header
	URPF              // the source fails the arrival interface's reverse-path check (RFC 3704)
	OwnAddressSource  // the source is one of the box's own interface addresses
	Oversize          // a frame larger than an AF_XDP frame holds (the link's MTU was raised while edge runs)

	// Fragments (UDP and ICMP datagrams; dataplane/fragment.go).
	FragmentNoRoom  // a later fragment arrived before its first and could not be held (table bucket or pool full)
	FragmentExpired // a held later fragment whose first fragment did not arrive in time

	// Connection-tracking hardening (denial of service).
	ProbeLimit // a new flow refused: its key's run in the flow index would pass the probe bound

	// SNAT allocation bound (snat.MaxProbes).
	SNATProbeLimit // a new flow refused: no free SNAT port found within the probe bound (the range toward its destination is nearly full)

	// Neighbour resolution (dataplane/neigh.go).
	NeighbourResolveLimited // next hop's MAC address unknown and its resolution refused: edge's bound on resolutions reached

	// NAT mappings (endpoint-independent mapping, filtering; package snat).
	SNATFiltered        // an unsolicited datagram toward a NAT mapping that the mapping's filter refused
	SNATMappingConflict // a new flow refused: its endpoint's mapping is in use toward that destination by another flow
	SNATMappingsFull    // a new flow refused: the worker's NAT mapping table is full
	HairpinFull         // a packet from the inside to a NAT mapping (hairpinning) dropped: the ring that loops it back was full

	// IPv6 extension headers (header.IPv6.Transport).
	RoutingType0 // an IPv6 Routing header of type 0 with segments left (RFC 5095: deprecated)

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
	FirewallDrop:     "firewall_drop",
	FirewallReject:   "firewall_reject",
	SNATExhausted:    "snat_exhausted",
	SNATNoAddress:    "snat_no_address", TTLExceeded: "ttl_exceeded",
	NoRoute:        "no_route",
	MTUExceeded:    "mtu_exceeded",
	NoNeighbour:    "no_neighbour",
	TxFull:         "tx_full",
	HandoffFull:    "handoff_full",
	NotForwardable: "not_forwardable",

	ICMPNotSentError:     "icmp_not_sent_error",
	ICMPNotSentFragment:  "icmp_not_sent_fragment",
	ICMPNotSentSource:    "icmp_not_sent_source",
	ICMPNotSentMulticast: "icmp_not_sent_multicast",
	ICMPNotSentTCPNotSYN: "icmp_not_sent_tcp_not_syn",
	ICMPRateLimited:      "icmp_rate_limited",
	ICMPBuildFailed:      "icmp_build_failed",
	ICMPBadChecksum:      "icmp_bad_checksum",
	NSXSynAckOnClosing:   "nsx_synack_on_closing",

	BadIPChecksum:     "bad_ip_checksum",
	EtherTypeMismatch: "ethertype_mismatch",
	BadIPv6Address:    "bad_ipv6_address",
	SourceRouted:      "source_routed",
	BadIPOptions:      "bad_ip_options",
	URPF:              "urpf",
	OwnAddressSource:  "own_address_source",
	Oversize:          "oversize",
	FragmentNoRoom:    "fragment_no_room",
	FragmentExpired:   "fragment_expired",
	ProbeLimit:        "probe_limit",
	SNATProbeLimit:    "snat_probe_limit",

	NeighbourResolveLimited: "neighbour_resolve_limited",

	SNATFiltered:        "snat_filtered",
	SNATMappingConflict: "snat_mapping_conflict",
	SNATMappingsFull:    "snat_mappings_full",
	HairpinFull:         "hairpin_full",
	RoutingType0:        "ipv6_routing_type0",
}

var help = [NumReasons]string{
	None:             "not dropped",
	Truncated:        "the frame ends before a header it announces",
	BadIPHeader:      "IPv4/IPv6 header fields inconsistent with each other or the frame",
	BadIPv6ExtHeader: "IPv6 extension-header chain malformed or too long",
	BadL4Header:      "TCP data offset or UDP length inconsistent with the packet",
	Fragment:         "IP fragment of a TCP segment or of a protocol other than UDP and ICMP: not followed (UDP and ICMP fragments follow their first fragment)",
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
	FirewallDrop:     "new flow denied by a firewall rule or the default action, dropped silently",
	FirewallReject:   "new flow rejected by a firewall rule, answered with a TCP RST or ICMP admin-prohibited",
	SNATExhausted:    "new flow refused: every SNAT port toward its destination is in use (no port overloading, RFC 4787 REQ-3)",
	SNATNoAddress:    "no SNAT address of the packet's IP family in the pool, or a translation of the other family (NAT46/NAT64 not supported)",
	TTLExceeded:      "TTL or hop limit would reach 0 (RFC 1812 5.3.1)",
	NoRoute:          "no route to the destination",
	MTUExceeded:      "packet larger than the egress interface's MTU",
	NoNeighbour:      "next hop's MAC address not known yet: resolution requested, packet dropped",
	TxFull:           "no free transmit slot on the egress queue",
	HandoffFull:      "a packet of a flow another worker owns found that worker's hand-off ring full",
	NotForwardable:   "not routed: link-layer broadcast or multicast, or a multicast, broadcast, loopback, link-local or unspecified IP address (RFC 1812 5.3.7)",

	ICMPNotSentError:     "no ICMP error sent about an ICMP error or ICMPv6 redirect (RFC 1812 4.3.2.7, RFC 4443 2.4(e.1, e.2))",
	ICMPNotSentFragment:  "no ICMP error sent about a non-first fragment (RFC 1812 4.3.2.7)",
	ICMPNotSentSource:    "no ICMP error sent to an unspecified, loopback, multicast, broadcast or class E source (RFC 1812 4.3.2.7, RFC 4443 2.4(e.6))",
	ICMPNotSentMulticast: "no ICMP error sent about a packet to a multicast or limited-broadcast address (RFC 1812 4.3.2.7, RFC 4443 2.4(e.3))",
	ICMPNotSentTCPNotSYN: "no ICMP error sent about a TCP segment other than a SYN (edge rule N3; packet-too-big exempt)",
	ICMPRateLimited:      "ICMP error not sent: the worker's ICMP error rate limit was reached (RFC 1812 4.3.2.8, RFC 4443 2.4(f))",
	ICMPBuildFailed:      "ICMP error not built: transmit buffer too small, or kind, MTU or source address invalid for the packet's family",
	ICMPBadChecksum:      "ICMP error not translated: bad ICMP checksum or bad quoted IPv4 header checksum (RFC 5508 REQ-3)",
	NSXSynAckOnClosing:   "NSX compatibility mode: SYN-ACK on a CLOSING entry dropped and answered with ICMP port unreachable, reproducing the NSX-T incident",

	BadIPChecksum:     "IPv4 header checksum wrong: dropped, never forwarded with an updated checksum (RFC 1812 5.2.2)",
	EtherTypeMismatch: "IP version differs from the EtherType (an IPv4 packet in an IPv6 frame or the reverse), or an EtherType that is not IP",
	BadIPv6Address:    "IPv6 packet (or the packet an ICMPv6 error quotes) with an IPv4-mapped (::ffff:0:0/96) or IPv4-compatible (::/96) address (RFC 4291 2.5.5)",
	SourceRouted:      "IPv4 packet with a loose or strict source route option (LSRR, SSRR), dropped by default (RFC 7126 4.3, 4.4; config source_route)",
	BadIPOptions:      "IPv4 options malformed: an option's length is below 2 or runs past the header (RFC 1812 5.2.4)",
	URPF:              "spoofed source: strict uRPF (inside by default): the route back to the source does not leave through the interface the packet came in on; loose (outside by default): there is no route back (RFC 3704, BCP 38)",
	OwnAddressSource:  "spoofed source: a packet from the wire carrying one of edge's own interface addresses as its source (RFC 1812 5.3.7)",
	Oversize:          "frame larger than an AF_XDP frame holds (the interface's MTU was raised above edge's while it runs): cut by the XDP program, dropped, answered with fragmentation needed (IPv4 DF) or packet too big (IPv6)",
	FragmentNoRoom:    "later IP fragment that arrived before its first fragment and could not be held: the fragment table's bucket or its pool of held frames was full",
	FragmentExpired:   "later IP fragment held for its first fragment, which did not arrive within the fragment timeout (2 s)",
	ProbeLimit:        "new flow refused: its key's probe run in the flow index would pass the bound (a hash-flooding defence; with a keyed hash, random keys never reach it)",
	SNATProbeLimit:    "new flow refused: the SNAT allocator examined its bound of candidate ports (snat.MaxProbes) without finding a free one; the range toward the destination is nearly all in use or in quarantine, and later flows continue the search where this one stopped",

	SNATFiltered:            "an unsolicited datagram from the outside toward a NAT mapping (an inside endpoint's external address and port) that no flow matched, refused by the mapping's filtering behaviour (address-and-port-dependent: only endpoints the inside endpoint sent to; address-dependent: only addresses it sent to; RFC 4787 section 5)",
	SNATMappingConflict:     "new flow refused: its inside endpoint's NAT mapping (external address and port) is already used toward the same destination by a flow of another endpoint (possible only after a change of mapping behaviour or with pools of different behaviours sharing an address)",
	SNATMappingsFull:        "new flow refused: the worker's table of NAT mappings (snat.Config.Mappings) is full",
	HairpinFull:             "a packet from the inside to a NAT mapping (hairpinning, RFC 4787 REQ-9) dropped: the ring that loops it back to its owning worker was full",
	RoutingType0:            "IPv6 packet with a Routing header of type 0 and segments left above 0 (RFC 5095 deprecates it: it lets a sender bounce traffic between routers); dropped, other routing types are forwarded",
	NeighbourResolveLimited: "next hop's MAC address not known and its resolution not requested: the worker's resolution rate (a window's budget) or edge's bound on unanswered resolutions was reached (a flood toward many unresolvable addresses must not fill the kernel's neighbour table); packet dropped",
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
