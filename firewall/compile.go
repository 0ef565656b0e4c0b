package firewall

import (
	"net/netip"
	"strconv"
)

// MaxRules is the largest number of rules a RuleSet may hold.
const MaxRules = 65535

// MaxMemory bounds the classifier tables of one Compiled, in bytes. A rule
// set that would need more is refused by Compile (the tables grow roughly as
// distinct prefixes and ports times the number of rules / 8 bytes; see the
// package doc).
const MaxMemory = 256 << 20

// Error is the error Compile returns: Field is the path of the offending
// field, e.g. "rules[3].dst[1]", and Msg says what is wrong with it.
type Error struct {
	Field string
	Msg   string
}

func (e *Error) Error() string { return e.Field + ": " + e.Msg }

func ruleField(i int, field string) string {
	return "rules[" + strconv.Itoa(i) + "]." + field
}

func elemField(i int, field string, j int) string {
	return ruleField(i, field) + "[" + strconv.Itoa(j) + "]"
}

// Compile validates rs whole and builds its classifier. profileIndex resolves
// a rule's timer profile name to its conntrack index (pass
// conntrack.Table.ProfileIndex); a rule with Profile "" gets index 0 without
// asking. A nil profileIndex knows no names. On error Compile returns nil and
// an *Error naming the first offending field.
//
// Profile indices are resolved now: after a conntrack policy change that
// renumbers profiles, compile the rule set again.
func Compile(rs RuleSet, profileIndex func(name string) (uint8, bool)) (*Compiled, error) {
	if len(rs.Rules) > MaxRules {
		return nil, &Error{"rules", strconv.Itoa(len(rs.Rules)) + " rules, more than " + strconv.Itoa(MaxRules)}
	}
	if rs.Default >= numActions {
		return nil, &Error{"default", "invalid action " + strconv.Itoa(int(rs.Default))}
	}
	verdicts := make([]Verdict, len(rs.Rules))
	for i := range rs.Rules {
		v, err := validate(i, &rs.Rules[i], profileIndex)
		if err != nil {
			return nil, err
		}
		verdicts[i] = v
	}
	return build(rs, verdicts)
}

func validate(i int, r *Rule, profileIndex func(string) (uint8, bool)) (Verdict, error) {
	if r.Zone >= numZones {
		return Verdict{}, &Error{ruleField(i, "zone"), "invalid zone " + strconv.Itoa(int(r.Zone)) +
			" (want 0 any, 1 inside or 2 outside)"}
	}
	for _, f := range [2]struct {
		name string
		ps   []netip.Prefix
	}{{"src", r.Src}, {"dst", r.Dst}} {
		for j, p := range f.ps {
			if msg := checkPrefix(p); msg != "" {
				return Verdict{}, &Error{elemField(i, f.name, j), msg}
			}
		}
	}
	switch r.Proto {
	case ProtoAny, ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6:
	default:
		return Verdict{}, &Error{ruleField(i, "proto"), "unsupported protocol " + strconv.Itoa(int(r.Proto)) +
			" (want 0 any, 6 tcp, 17 udp, 1 icmp or 58 icmpv6)"}
	}
	for _, f := range [2]struct {
		name string
		rs   []PortRange
	}{{"src_ports", r.SrcPorts}, {"dst_ports", r.DstPorts}} {
		if len(f.rs) > 0 && r.Proto != ProtoTCP && r.Proto != ProtoUDP {
			return Verdict{}, &Error{ruleField(i, f.name), "ports need proto tcp or udp"}
		}
		for j, pr := range f.rs {
			if pr.Lo > pr.Hi {
				return Verdict{}, &Error{elemField(i, f.name, j), strconv.Itoa(int(pr.Lo)) + "-" +
					strconv.Itoa(int(pr.Hi)) + ": low above high"}
			}
		}
	}
	if len(r.ICMPTypes) > 0 && r.Proto != ProtoICMP && r.Proto != ProtoICMPv6 {
		return Verdict{}, &Error{ruleField(i, "icmp_types"), "types need proto icmp or icmpv6"}
	}
	if r.Action >= numActions {
		return Verdict{}, &Error{ruleField(i, "action"), "invalid action " + strconv.Itoa(int(r.Action))}
	}
	v := Verdict{Rule: int32(i), Action: r.Action, Log: r.Log}
	if r.Profile != "" {
		idx, ok := uint8(0), false
		if profileIndex != nil {
			idx, ok = profileIndex(r.Profile)
		}
		if !ok {
			return Verdict{}, &Error{ruleField(i, "profile"), "unknown timer profile " + strconv.Quote(r.Profile)}
		}
		v.Profile = idx
	}
	return v, nil
}

// checkPrefix returns what is wrong with p, or "".
func checkPrefix(p netip.Prefix) string {
	a := p.Addr()
	switch {
	case !a.IsValid():
		return "the zero netip.Prefix is not a valid prefix"
	case !p.IsValid():
		return strconv.Quote(a.String()+"/?") + " is not a valid prefix (length out of range)"
	case a.Is4In6() && p.Bits() >= 96:
		return strconv.Quote(p.String()) + " is IPv4-mapped: write it as IPv4 " +
			netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked().String()
	case p.Masked() != p:
		return strconv.Quote(p.String()) + " has host bits set (the prefix is " + p.Masked().String() + ")"
	}
	return ""
}
