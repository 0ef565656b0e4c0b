package ctl

// Conversions between edgepb messages and the plain Go types of the
// Backend. Everything a client sends is validated here, and a bad field is
// an INVALID_ARGUMENT status whose message starts with the field's path
// ("filter.address: ..."), so the CLI can print it as it is.

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/frag"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/snat"
)

// IP protocol numbers the API names.
const (
	ipProtoICMP   = 1
	ipProtoTCP    = 6
	ipProtoUDP    = 17
	ipProtoICMPv6 = 58
)

// invalidArg is an INVALID_ARGUMENT status about field.
func invalidArg(field, format string, args ...any) error {
	return status.Error(codes.InvalidArgument, field+": "+fmt.Sprintf(format, args...))
}

// pbProto is the API's name of IP protocol p: tcp, udp, icmp, icmpv6 or
// the number.
func pbProto(p uint8) string {
	switch p {
	case ipProtoTCP:
		return "tcp"
	case ipProtoUDP:
		return "udp"
	case ipProtoICMP:
		return "icmp"
	case ipProtoICMPv6:
		return "icmpv6"
	}
	return strconv.Itoa(int(p))
}

// parsePBProto parses a protocol name (any case) or number 1-255.
func parsePBProto(field, s string) (uint8, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return ipProtoTCP, nil
	case "udp":
		return ipProtoUDP, nil
	case "icmp":
		return ipProtoICMP, nil
	case "icmpv6":
		return ipProtoICMPv6, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n == 0 {
		return 0, invalidArg(field, "%q is not a protocol (tcp, udp, icmp, icmpv6 or a number 1-255)", s)
	}
	return uint8(n), nil
}

// stateNames are the states' API names: conntrack's names in lower case.
var stateNames = func() (n [conntrack.NumStates]string) {
	for i := range n {
		n[i] = strings.ToLower(conntrack.State(i).String())
	}
	return n
}()

func pbState(s conntrack.State) string {
	if s < conntrack.NumStates {
		return stateNames[s]
	}
	return strings.ToLower(s.String())
}

// parsePBState parses a flow state name (any case); "none" is not one.
func parsePBState(field, s string) (conntrack.State, error) {
	st, ok := conntrack.StateByName(strings.ToUpper(s))
	if !ok || st == conntrack.StateNone {
		return 0, invalidArg(field, "%q is not a flow state (%s)", s, strings.Join(stateNames[1:], ", "))
	}
	return st, nil
}

// parsePBPrefix parses an address ("10.0.0.1") or a prefix ("10.0.0.0/8").
// IPv4-mapped IPv6 addresses and prefixes become IPv4 (flows store IPv4
// that way and conntrack compares unmapped addresses); prefixes are masked.
func parsePBPrefix(field, s string) (netip.Prefix, error) {
	bad := func() (netip.Prefix, error) {
		return netip.Prefix{}, invalidArg(field, "%q is not an address or prefix", s)
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return bad()
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return bad()
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, invalidArg(field, "%q mixes IPv4-mapped and IPv6 addresses", s)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// pbPrefix is the inverse of parsePBPrefix: an address when the prefix
// holds one address, else the prefix.
func pbPrefix(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// filterFromPB validates a FlowFilter; field is its path in the request
// ("filter"). A nil filter is the zero Filter (all flows).
func filterFromPB(field string, f *edgepb.FlowFilter) (conntrack.Filter, error) {
	var cf conntrack.Filter
	if f == nil {
		return cf, nil
	}
	if f.Address != "" {
		p, err := parsePBPrefix(field+".address", f.Address)
		if err != nil {
			return cf, err
		}
		cf.Prefix = p
	}
	if f.Port > 65535 {
		return cf, invalidArg(field+".port", "%d is out of range (1-65535; 0: any)", f.Port)
	}
	cf.Port = uint16(f.Port)
	if f.Protocol != "" {
		p, err := parsePBProto(field+".protocol", f.Protocol)
		if err != nil {
			return cf, err
		}
		cf.Proto = p
	}
	if f.State != "" {
		st, err := parsePBState(field+".state", f.State)
		if err != nil {
			return cf, err
		}
		cf.State = st
	}
	if f.Zone > 255 {
		return cf, invalidArg(field+".zone", "%d is out of range (1-255; 0: any)", f.Zone)
	}
	cf.Zone = int(f.Zone)
	return cf, nil
}

// filterToPB is the inverse of filterFromPB.
func filterToPB(f conntrack.Filter) *edgepb.FlowFilter {
	out := &edgepb.FlowFilter{Address: pbPrefix(f.Prefix), Port: uint32(f.Port), Zone: uint32(f.Zone)}
	if f.Proto != 0 {
		out.Protocol = pbProto(f.Proto)
	}
	if f.State != conntrack.StateNone {
		out.State = pbState(f.State)
	}
	return out
}

// keyFromPB validates a Tuple and makes its key; field is its path
// ("tuple").
func keyFromPB(field string, t *edgepb.Tuple) (conntrack.Key, error) {
	if t == nil {
		return conntrack.Key{}, invalidArg(field, "required (protocol, src, src_port, dst, dst_port)")
	}
	if t.Protocol == "" {
		return conntrack.Key{}, invalidArg(field+".protocol", "required (tcp, udp, icmp, icmpv6 or a number 1-255)")
	}
	proto, err := parsePBProto(field+".protocol", t.Protocol)
	if err != nil {
		return conntrack.Key{}, err
	}
	addr := func(name, s string) (netip.Addr, error) {
		if s == "" {
			return netip.Addr{}, invalidArg(field+"."+name, "required")
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Addr{}, invalidArg(field+"."+name, "%q is not an IP address", s)
		}
		return a.Unmap(), nil
	}
	src, err := addr("src", t.Src)
	if err != nil {
		return conntrack.Key{}, err
	}
	dst, err := addr("dst", t.Dst)
	if err != nil {
		return conntrack.Key{}, err
	}
	if src.Is4() != dst.Is4() {
		return conntrack.Key{}, invalidArg(field, "src %s and dst %s are of different address families", src, dst)
	}
	switch {
	case proto == ipProtoICMP && !src.Is4():
		return conntrack.Key{}, invalidArg(field+".protocol", "icmp with IPv6 addresses (use icmpv6)")
	case proto == ipProtoICMPv6 && src.Is4():
		return conntrack.Key{}, invalidArg(field+".protocol", "icmpv6 with IPv4 addresses (use icmp)")
	}
	if t.SrcPort > 65535 {
		return conntrack.Key{}, invalidArg(field+".src_port", "%d is out of range (0-65535)", t.SrcPort)
	}
	if t.DstPort > 65535 {
		return conntrack.Key{}, invalidArg(field+".dst_port", "%d is out of range (0-65535)", t.DstPort)
	}
	if t.Zone > 255 {
		return conntrack.Key{}, invalidArg(field+".zone", "%d is out of range (0-255)", t.Zone)
	}
	k := conntrack.MakeKey(proto, netip.AddrPortFrom(src, uint16(t.SrcPort)), netip.AddrPortFrom(dst, uint16(t.DstPort)))
	k.Zone = uint8(t.Zone)
	return k, nil
}

// tupleToPB is the inverse of keyFromPB.
func tupleToPB(k *conntrack.Key) *edgepb.Tuple {
	return &edgepb.Tuple{
		Protocol: pbProto(k.Proto),
		Src:      k.SrcAddr().String(),
		SrcPort:  uint32(k.SrcPort),
		Dst:      k.DstAddr().String(),
		DstPort:  uint32(k.DstPort),
		Zone:     uint32(k.Zone),
	}
}

// clock turns conntrack times into wall-clock times: conntrack.Time t is
// epoch + t, and now is the conntrack time of the moment of the request.
// It is made per request: the backend's epoch follows the wall clock (see
// Backend.Epoch).
type clock struct {
	epoch time.Time
	now   conntrack.Time
}

func newClock(b Backend) clock {
	e := b.Epoch()
	return clock{epoch: e, now: conntrack.Time(time.Since(e))}
}

func (c clock) wall(t conntrack.Time) *timestamppb.Timestamp {
	return timestamppb.New(c.epoch.Add(time.Duration(t)))
}

// names caches a request's rule and profile names.
type names struct {
	b        Backend
	rules    map[uint32]string
	profiles map[uint8]string
}

func newNames(b Backend) *names {
	return &names{b: b, rules: map[uint32]string{}, profiles: map[uint8]string{}}
}

func (n *names) rule(r uint32) string {
	s, ok := n.rules[r]
	if !ok {
		s = n.b.RuleName(r)
		n.rules[r] = s
	}
	return s
}

func (n *names) profile(p uint8) string {
	s, ok := n.profiles[p]
	if !ok {
		s = n.b.ProfileName(p)
		n.profiles[p] = s
	}
	return s
}

// incarnationToPB converts an incarnation (a history entry, or the part of
// a live flow they share). The translated address is read off the reply
// key, which is the original reversed with the translated source as its
// destination.
func incarnationToPB(in *conntrack.Incarnation, c clock, n *names) *edgepb.Flow {
	f := &edgepb.Flow{
		Original:        tupleToPB(&in.Orig),
		Reply:           tupleToPB(&in.Reply),
		State:           pbState(in.State),
		Generation:      uint32(in.Gen),
		Creator:         in.Creator.String(),
		PacketsOriginal: uint64(in.Packets[0]),
		PacketsReply:    uint64(in.Packets[1]),
		Opened:          c.wall(in.Opened),
		Rule:            n.rule(in.Rule),
		IsnOriginal:     in.ISN[0],
		IsnReply:        in.ISN[1],
	}
	if in.Closed != 0 {
		f.Closed = c.wall(in.Closed)
		f.CloseReason = in.Reason.String()
	}
	if in.Reply.Dst != in.Orig.Src || in.Reply.DstPort != in.Orig.SrcPort {
		f.NatAddress = in.Reply.DstAddr().String()
		f.NatPort = uint32(in.Reply.DstPort)
	}
	return f
}

// flowToPB converts a live flow.
func flowToPB(fi *conntrack.FlowInfo, c clock, n *names) *edgepb.Flow {
	f := incarnationToPB(&fi.Incarnation, c, n)
	f.NatAddress, f.NatPort = "", 0
	if fi.NATAddr.IsValid() && !fi.NATAddr.IsUnspecified() {
		f.NatAddress = fi.NATAddr.Unmap().String()
		f.NatPort = uint32(fi.NATPort)
	}
	left := time.Duration(fi.Expires - c.now)
	if left < 0 {
		left = 0
	}
	f.ExpiresIn = durationpb.New(left)
	f.Profile = n.profile(fi.Profile)
	f.Shard = uint32(fi.Shard)
	f.Liberal = fi.Liberal
	f.Pending = fi.Pending
	return f
}

// explanationToPB converts Backend.Explain's answer.
func explanationToPB(ex *conntrack.Explanation, c clock, n *names) *edgepb.ExplainFlowResponse {
	out := &edgepb.ExplainFlowResponse{History: make([]*edgepb.Flow, 0, len(ex.History))}
	if ex.Current != nil {
		out.Current = flowToPB(ex.Current, c, n)
		out.MatchedDirection = ex.Current.Dir.String()
	}
	for i := range ex.History {
		out.History = append(out.History, incarnationToPB(&ex.History[i], c, n))
	}
	return out
}

// eventFilter is a validated EventFilter.
type eventFilter struct {
	kinds   uint32 // bit k: EventKind k; 0: all kinds
	reasons [drop.NumReasons]bool
	anyWhy  bool // no reasons given: every reason (and none) matches
	flow    conntrack.Filter
}

var _ [32 - NumEventKinds]struct{} // kinds fit the bit set

func eventFilterFromPB(field string, f *edgepb.EventFilter) (*eventFilter, error) {
	ef := &eventFilter{anyWhy: true}
	if f == nil {
		return ef, nil
	}
	for i, name := range f.Kinds {
		k, ok := EventKindByName(strings.ToLower(name))
		if !ok {
			all := make([]string, 0, NumEventKinds)
			for k := EventKind(1); k < NumEventKinds; k++ {
				all = append(all, k.String())
			}
			return nil, invalidArg(fmt.Sprintf("%s.kinds[%d]", field, i), "%q is not an event kind (%s)", name, strings.Join(all, ", "))
		}
		ef.kinds |= 1 << k
	}
	for i, name := range f.Reasons {
		r, ok := drop.ByName(strings.ToLower(name))
		if !ok || r == drop.None {
			return nil, invalidArg(fmt.Sprintf("%s.reasons[%d]", field, i), "%q is not a drop reason (see edge stats)", name)
		}
		ef.reasons[r] = true
		ef.anyWhy = false
	}
	if fl := f.Flow; fl != nil {
		// Events are filtered by address, port and protocol only (as the
		// API says); a state or zone would be silently ignored, so it is
		// refused.
		if fl.State != "" {
			return nil, invalidArg(field+".flow.state", "events cannot be filtered by state (use kinds and reasons)")
		}
		if fl.Zone != 0 {
			return nil, invalidArg(field+".flow.zone", "events cannot be filtered by zone")
		}
		flt, err := filterFromPB(field+".flow", &edgepb.FlowFilter{Address: fl.Address, Port: fl.Port, Protocol: fl.Protocol})
		if err != nil {
			return nil, err
		}
		ef.flow = flt
	}
	return ef, nil
}

func (f *eventFilter) match(ev *Event) bool {
	if f.kinds != 0 && (ev.Kind >= NumEventKinds || f.kinds&(1<<ev.Kind) == 0) {
		return false
	}
	if !f.anyWhy && (ev.Reason >= drop.NumReasons || !f.reasons[ev.Reason]) {
		return false
	}
	fl := &f.flow
	if fl.Proto != 0 && ev.Key.Proto != fl.Proto {
		return false
	}
	if fl.Port != 0 && ev.Key.SrcPort != fl.Port && ev.Key.DstPort != fl.Port &&
		(!ev.NAT.IsValid() || ev.NAT.Port() != fl.Port) {
		return false
	}
	if fl.Prefix.IsValid() && !fl.Prefix.Contains(ev.Key.SrcAddr()) && !fl.Prefix.Contains(ev.Key.DstAddr()) &&
		(!ev.NAT.IsValid() || !fl.Prefix.Contains(ev.NAT.Addr().Unmap())) {
		return false
	}
	return true
}

// eventZones are Event.Zone's names (1 inside, 2 outside; else unknown).
var eventZones = [...]string{1: "inside", 2: "outside"}

func eventToPB(ev *Event, c clock) *edgepb.Event {
	out := &edgepb.Event{
		Time:       c.wall(ev.Time),
		Kind:       ev.Kind.String(),
		Generation: uint32(ev.Gen),
		TcpFlags:   uint32(ev.Flags),
		Worker:     uint32(ev.Worker),
	}
	// A packet that could not be parsed has no tuple: leave it unset
	// rather than report 0.0.0.0 protocol 0.
	if ev.Key != (conntrack.Key{}) {
		out.Tuple = tupleToPB(&ev.Key)
	}
	if int(ev.Zone) < len(eventZones) {
		out.Zone = eventZones[ev.Zone]
	}
	if ev.Idle > 0 {
		out.Idle = durationpb.New(ev.Idle)
	}
	if ev.Kind == EvExpired {
		out.IdleExpiry = ev.Expiry.String()
	}
	if ev.DirKnown {
		out.Direction = "original"
		if ev.Dir == conntrack.Reply {
			out.Direction = "reply"
		}
	}
	if ev.NAT.IsValid() && !ev.NAT.Addr().IsUnspecified() {
		out.NatAddress = ev.NAT.Addr().Unmap().String()
		out.NatPort = uint32(ev.NAT.Port())
	}
	if ev.State != conntrack.StateNone {
		out.State = pbState(ev.State)
	}
	if ev.Reason != drop.None {
		out.Reason = ev.Reason.String()
	}
	if ev.ICMP != icmp.NoError {
		out.Icmp = ev.ICMP.String()
	}
	return out
}

// counterMap makes a name -> count map of the non-zero counts.
func counterMap[T ~uint8](counts []uint64, name func(T) string) map[string]uint64 {
	m := make(map[string]uint64)
	for i, n := range counts {
		if n != 0 {
			m[name(T(i))] += n
		}
	}
	return m
}

// statsToPB converts Backend.Stats's answer; with maxDest > 0 it includes
// the maxDest busiest SNAT destinations (by ports in use, then refusals),
// busiest first.
func statsToPB(s *Stats, maxDest int) *edgepb.GetStatsResponse {
	drops := s.Drops()
	var icmpSent [icmp.NumKinds]uint64
	out := &edgepb.GetStatsResponse{
		Drops:      counterMap(drops[:], drop.Reason.String),
		Conntrack:  counterMap(s.Conntrack.Counters[:], conntrack.Counter.String),
		Snat:       counterMap(s.SNAT.Counters[:], snat.Counter.String),
		Flows:      s.Conntrack.Flows,
		Capacity:   s.Conntrack.Capacity,
		EventsLost: s.EventsLost,
		Workers:    make([]*edgepb.WorkerStats, 0, len(s.Workers)),
		Interfaces: make([]*edgepb.InterfaceStats, 0, len(s.Interfaces)),
		Warnings:   s.Warnings,

		Neighbours:          neighboursToPB(&s.Neighbours),
		KernelRoutesRefused: s.KernelRoutesRefused,
	}
	frags := s.Fragments()
	out.Fragments = fragmentsToPB(&frags)
	for i := range s.Workers {
		w := &s.Workers[i]
		for k, n := range w.ICMP {
			icmpSent[k] += n
		}
		out.RstSent += w.RST
		out.Workers = append(out.Workers, &edgepb.WorkerStats{
			Id:        int32(w.ID),
			RxInside:  w.RX[0],
			RxOutside: w.RX[1],
			TxInside:  w.TX[0],
			TxOutside: w.TX[1],
			Created:   w.Created,
			Handoff:   w.Handoff,
			Drops:     counterMap(w.Drops[:], drop.Reason.String),
			Flows:     w.Flows,
			IcmpSent:  counterMap(w.ICMP[:], icmp.Kind.String),
			RstSent:   w.RST,
			Fragments: fragmentsToPB(&w.Fragments),
		})
	}
	out.IcmpSent = counterMap(icmpSent[:], icmp.Kind.String)
	for i := range s.Interfaces {
		x := &s.Interfaces[i]
		out.Interfaces = append(out.Interfaces, &edgepb.InterfaceStats{
			Name:          x.Name,
			Zone:          x.Zone,
			RxPackets:     x.RX,
			TxPackets:     x.TX,
			XdpRedirected: x.XDPRedirected,
			XdpNoSocket:   x.XDPNoSocket,
			XdpPassed:     x.XDPPassed,
			XdpOther:      x.XDPOther,

			XskFillRingEmpty: x.XSKFillRingEmpty,
			XskRxRingFull:    x.XSKRxRingFull,
			XskTxDeviceDrops: x.XSKTxDeviceDrops,
		})
	}
	if maxDest > 0 {
		out.SnatDestinationsTotal = uint32(len(s.SNATDestinations))
		dests := busiest(s.SNATDestinations, maxDest)
		out.SnatDestinations = make([]*edgepb.SNATDestination, 0, len(dests))
		for i := range dests {
			d := &dests[i]
			out.SnatDestinations = append(out.SnatDestinations, &edgepb.SNATDestination{
				Address:     d.Addr.Unmap().String(),
				Destination: d.Dst.Addr().Unmap().String(),
				Port:        uint32(d.Dst.Port()),
				Protocol:    pbProto(d.Proto),
				InUse:       uint32(max(d.InUse, 0)),
				Quarantined: uint32(max(d.Quarantined, 0)),
				Free:        uint32(max(d.Free, 0)),
				Range:       uint32(max(d.Range, 0)),
				Exhausted:   d.Exhausted,
				Overrides:   d.Overrides,
				Zone:        uint32(d.Zone),
			})
		}
	}
	return out
}

func neighboursToPB(n *NeighbourStats) *edgepb.NeighbourStats {
	return &edgepb.NeighbourStats{
		Entries:              uint64(max(n.Entries, 0)),
		Kept:                 uint64(max(n.Kept, 0)),
		Unanswered:           uint64(max(n.Unanswered, 0)),
		KeptTotal:            n.KeptTotal,
		KeptRecovered:        n.KeptRecovered,
		KeptExpired:          n.KeptExpired,
		KeptFailed:           n.KeptFailed,
		ResolutionsRequested: n.Requests,
		ResolutionsRefused:   n.Refused,
		ResolutionsGivenUp:   n.GivenUp,
		KernelEntriesDeleted: n.Deleted,
		Held:                 n.Held,
		HeldSent:             n.HeldSent,
		HeldDropped:          n.HeldDropped,
	}
}

func fragmentsToPB(f *frag.Stats) *edgepb.FragmentStats {
	return &edgepb.FragmentStats{
		FirstNoted:   f.Noted,
		Followed:     f.Followed,
		Held:         f.Held,
		Released:     f.Released,
		ExpiredHeld:  f.ExpiredHeld,
		Completed:    f.Completed,
		Refused:      f.Refused,
		ExpiredState: f.ExpiredState,
		HeldNow:      fragFramesHeld(f),
	}
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Unmap().String()
	}
	return out
}

func statusToPB(s *Status, now time.Time) *edgepb.GetStatusResponse {
	out := &edgepb.GetStatusResponse{
		Version:          s.Version,
		Flows:            s.Flows,
		Capacity:         s.Capacity,
		MemoryBytes:      s.MemoryB,
		Hugepages:        s.Hugepages,
		ConfigGeneration: s.Generation,
		NsxCompat:        s.NSXCompat,
		NsxShadow:        s.NSXShadow,
		Interfaces:       make([]*edgepb.InterfaceStatus, 0, len(s.Interfaces)),
		Workers:          make([]*edgepb.WorkerStatus, 0, len(s.Workers)),
	}
	if !s.Started.IsZero() {
		out.Started = timestamppb.New(s.Started)
		out.Uptime = durationpb.New(max(now.Sub(s.Started), 0))
	}
	for _, x := range s.Interfaces {
		out.Interfaces = append(out.Interfaces, &edgepb.InterfaceStatus{
			Name:      x.Name,
			Zone:      x.Zone,
			Ifindex:   int32(x.Ifindex),
			Mtu:       int32(x.MTU),
			Mac:       x.MAC,
			Addresses: addrStrings(x.Addrs),
			Queues:    int32(x.Queues),
			XdpMode:   x.XDPMode,
		})
	}
	for _, w := range s.Workers {
		out.Workers = append(out.Workers, &edgepb.WorkerStatus{Id: int32(w.ID), Queue: int32(w.Queue), Cpu: int32(w.CPU)})
	}
	if sn := s.SNAT; sn != nil {
		ps := &edgepb.SNATStatus{
			Mode:       sn.Mode,
			PortFirst:  uint32(sn.PortFirst),
			PortLast:   uint32(sn.PortLast),
			Quarantine: durationpb.New(sn.Quarantine),
			Mapping:    sn.Mapping, Filtering: sn.Filtering, MappingTimeout: durationpb.New(sn.MappingTimeout),
			Pools: make([]*edgepb.SNATPool, 0, len(sn.Pools)),
		}
		for _, p := range sn.Pools {
			ps.Pools = append(ps.Pools, &edgepb.SNATPool{Name: p.Name, Addresses: addrStrings(p.Addrs), Ranges: p.Ranges})
		}
		out.Snat = ps
	}
	return out
}
