package firewall

import (
	"net/netip"
	"strconv"

	"github.com/edgegw/edge/drop"
)

// Zone is the interface side a flow's first packet arrived on. It is not the
// conntrack zone (conntrack.Key.Zone, a routing domain).
type Zone uint8

const (
	AnyZone Zone = iota // in a Rule: either side
	Inside              // the protected, SNATed side
	Outside             // the uplink side

	numZones
)

var zoneNames = [numZones]string{AnyZone: "any", Inside: "inside", Outside: "outside"}

// String returns "any", "inside" or "outside".
func (z Zone) String() string {
	if z < numZones {
		return zoneNames[z]
	}
	return "zone(" + strconv.Itoa(int(z)) + ")"
}

// ZoneByName returns the Zone whose String is name.
func ZoneByName(name string) (Zone, bool) {
	for i, n := range zoneNames {
		if n == name {
			return Zone(i), true
		}
	}
	return 0, false
}

// Action is what the firewall does with a new flow. The zero Action is Drop,
// so an unset default or a rule whose action was forgotten fails closed.
type Action uint8

const (
	Drop   Action = iota // discard silently
	Allow                // let the flow be created
	Reject               // discard and answer (TCP RST or ICMP admin-prohibited, sent by the data plane)

	numActions
)

var actionNames = [numActions]string{Drop: "drop", Allow: "allow", Reject: "reject"}

// String returns "drop", "allow" or "reject".
func (a Action) String() string {
	if a < numActions {
		return actionNames[a]
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// ActionByName returns the Action whose String is name.
func ActionByName(name string) (Action, bool) {
	for i, n := range actionNames {
		if n == name {
			return Action(i), true
		}
	}
	return 0, false
}

// IP protocol numbers a rule may name.
const (
	ProtoAny    uint8 = 0
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// PortRange is an inclusive range of ports: {80, 80} is port 80 alone.
type PortRange struct {
	Lo, Hi uint16
}

func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// Rule is one entry of the ordered rule list. Every field left empty (or 0)
// matches anything; a rule matches a flow when all its fields do. Within one
// list field (Src, Dst, SrcPorts, DstPorts, ICMPTypes) any element may match.
type Rule struct {
	Name string // for logs and the control plane; not interpreted
	Zone Zone   // AnyZone, Inside or Outside

	// Src and Dst match the first packet's addresses. IPv4 prefixes match
	// only IPv4 packets and IPv6 prefixes only IPv6 ones: a list holding
	// only IPv4 prefixes never matches an IPv6 flow. Prefixes must be
	// canonical (no host bits) and not IPv4-mapped IPv6.
	Src, Dst []netip.Prefix

	Proto uint8 // ProtoAny, ProtoTCP, ProtoUDP, ProtoICMP or ProtoICMPv6

	// SrcPorts and DstPorts need Proto TCP or UDP.
	SrcPorts, DstPorts []PortRange

	// ICMPTypes needs Proto ICMP or ICMPv6 (the type of the echo request,
	// or whatever ICMP message opens the flow).
	ICMPTypes []uint8

	Action Action
	// Profile names the conntrack timer profile of flows this rule allows
	// ("" = the default profile, index 0).
	Profile string
	Log     bool // the data plane logs (rate-limited) the flows this rule matches
}

// RuleSet is a whole policy: Rules in priority order (the first match wins)
// and the action for flows no rule matches (Drop when unset).
type RuleSet struct {
	Rules   []Rule
	Default Action
}

// Verdict is Match's answer: 8 bytes, no pointers.
type Verdict struct {
	Rule    int32  // index of the matching rule, -1 for the default action
	Action  Action // what to do with the flow
	Profile uint8  // conntrack timer profile index (conntrack.NewFlow.Profile)
	Log     bool   // the matching rule asks for the flow to be logged
}

// Reason returns the drop reason the data plane counts for v: None for
// Allow, FirewallDrop or FirewallReject.
func (v Verdict) Reason() drop.Reason {
	switch v.Action {
	case Allow:
		return drop.None
	case Reject:
		return drop.FirewallReject
	}
	return drop.FirewallDrop
}
