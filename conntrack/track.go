package conntrack

import (
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// Action is what the data plane should do with a tracked packet.
type Action uint8

const (
	// Forward: the packet belongs to a flow (Verdict.Flow, Verdict.Dir)
	// and may pass.
	Forward Action = iota
	// Drop: Verdict.Reason says why; already counted by the shard.
	Drop
	// Open: no flow, and the packet may open one subject to policy: the
	// caller evaluates its rules, chooses a translation and calls Create.
	Open
	// Reopened: the packet started a new incarnation of an existing flow
	// (a SYN on a closing entry, or a SYN-ACK answering a noted SYN). It
	// passes like Forward; the caller may re-evaluate policy and Delete.
	Reopened
)

func (a Action) String() string {
	switch a {
	case Forward:
		return "forward"
	case Drop:
		return "drop"
	case Open:
		return "open"
	case Reopened:
		return "reopened"
	}
	return "unknown"
}

// Verdict is the tracker's answer for one packet: 8 bytes, no pointers.
type Verdict struct {
	Flow   Ref
	Action Action
	Dir    Dir
	Reason drop.Reason
	State  State // the flow's state after the packet
}

// Track looks up the flow of packet p and runs it through the protocol's
// tracker at time now. Forwarded packets refresh the flow's timer and count
// in its packet counters; ICMP errors (KindRelated) are only looked up: they
// never refresh, change or delete a flow (RFC 5508 REQ-?; N: I3).
//
// Owner only. It never allocates.
func (s *Shard) Track(p *Packet, now Time) Verdict {
	h := s.hash(&p.Key)
	return s.track(p, h, s.ix.home(uint32(h>>32)), s.t.pol.Load(), now)
}

// track is Track with the key's hash h and the index position pos where its
// probe starts.
func (s *Shard) track(p *Packet, h uint64, pos int, pol *policy, now Time) Verdict {
	slot, d, ok := s.findFrom(&p.Key, h, pos, now)
	if p.Kind == KindRelated {
		if !ok {
			s.drop(drop.ICMPNoFlow)
			s.emitPacket(p, EvDropped, drop.ICMPNoFlow, now)
			return Verdict{Action: Drop, Reason: drop.ICMPNoFlow}
		}
		return Verdict{Flow: Ref(slot), Action: Forward, Dir: d, State: s.flows[slot].state}
	}
	if !ok {
		return s.miss(p, pol, now)
	}
	f := &s.flows[slot]
	var v tcpVerdict
	switch p.Key.Proto {
	case header.ProtoTCP:
		if f.state == TCPEstablished && p.Flags&(fSYN|fRST|fFIN) == 0 {
			// Fast path: data or an ACK on an established flow moves no
			// state; only the window check and update apply.
			if !f.inWindow(d, p, pol.Liberal || f.flags&flagLiberal != 0) {
				v = tcpDrop(drop.OutOfWindow)
			} else if d == Original && p.Payload > 0 {
				if idle := int32(ticks(now) - f.lastSeen(pol)); idle >= int32(ReuseIdleMin/Millisecond) {
					// The client reusing a connection idle that long.
					s.sigTime(&f.key, DestClientReuses, HistClientReuseIdle, uint32(idle))
				}
			}
		} else {
			v = s.trackTCP(slot, d, p, pol, now)
		}
		switch v.act {
		case Drop:
			s.drop(v.reason)
			s.emit(f, EvDropped, v.reason, d, p.Flags, now)
			return Verdict{Flow: Ref(slot), Action: Drop, Dir: d, Reason: v.reason, State: f.state}
		case Open:
			return s.miss(p, pol, now) // the entry was released
		case Reopened:
			s.count(CtrReopened)
			s.emit(f, EvReopened, drop.None, d, p.Flags, now)
			s.sig(&f.key, DestFlows)
		}
		if (f.state == TCPTimeWait || f.state == TCPClose) && f.flags&flagClosedSeen == 0 {
			f.flags |= flagClosedSeen
			s.count(CtrClosed)
			s.emit(f, EvClosed, drop.None, d, p.Flags, now)
		}
	case header.ProtoUDP:
		trackUDP(f, d)
	default:
		trackICMP(f, d)
	}
	f.pkts[d]++
	f.expires = ticks(now) + pol.set.timeout(f.profile, f.state)
	act := Forward
	if v.act == Reopened {
		act = Reopened
	}
	return Verdict{Flow: Ref(slot), Action: act, Dir: d, State: f.state}
}

// trackUDP: UDP_FIRST -> UDP_SINGLE on the originator's second datagram;
// any reply -> UDP_MULTIPLE. In a flow the remote end opened
// (CreateInbound) the roles are swapped: its datagrams are the
// originator's.
func trackUDP(f *flow, d Dir) {
	answer := d == Reply
	if f.flags&flagInbound != 0 {
		answer = !answer
	}
	if answer {
		f.state = UDPMultiple
	} else if f.state == UDPFirst {
		f.state = UDPSingle
	}
}

// trackICMP: an echo reply moves ICMP_FIRST to ICMP_REPLIED.
func trackICMP(f *flow, d Dir) {
	if d == Reply {
		f.state = ICMPReplied
	}
}

// miss handles a packet without a flow: Open if it may open one, else a
// counted NoState drop (N1: only a SYN creates TCP state).
func (s *Shard) miss(p *Packet, pol *policy, now Time) Verdict {
	if creator, ok := mayCreate(p, pol); ok {
		_ = creator
		return Verdict{Action: Open}
	}
	s.drop(drop.NoState)
	s.emitPacket(p, EvDropped, drop.NoState, now)
	s.sigLate(p, now)
	if pol.shadows() && p.Key.Proto == header.ProtoTCP && p.Kind == KindFlow && p.Flags&(fSYN|fACK|fRST|fFIN) == fFIN|fACK {
		s.nsxNoteStray(p, now) // NSX makes a closing entry of it
	}
	return Verdict{Action: Drop, Reason: drop.NoState}
}

// mayCreate reports whether p may open a flow, and as what.
func mayCreate(p *Packet, pol *policy) (Creator, bool) {
	if p.Kind != KindFlow {
		return 0, false
	}
	switch p.Key.Proto {
	case header.ProtoTCP:
		switch p.Flags & (fSYN | fACK | fRST | fFIN) {
		case fSYN:
			return CreatedBySYN, true
		case fACK, fSYN | fACK:
			return CreatedByPickup, pol.PickUp
		case fFIN | fACK:
			return CreatedByStray, pol.NSXCompat
		}
		return 0, false
	case header.ProtoUDP:
		return CreatedByFirst, true
	case header.ProtoICMP:
		return CreatedByFirst, p.ICMPType == header.ICMPv4EchoRequest
	case header.ProtoICMPv6:
		return CreatedByFirst, p.ICMPType == header.ICMPv6EchoRequest
	}
	return 0, false
}

// Translation says how a new flow's reply key differs from its original key
// reversed: replies are addressed to (Addr, Port) instead of the
// originator. Addr is an index from Table.InternAddr; 0 means no
// translation.
type Translation struct {
	Addr uint16
	Port uint16
}

// NewFlow carries the decisions the data plane made for a new flow.
type NewFlow struct {
	NAT     Translation
	Profile uint8  // timer profile index (Table.ProfileIndex)
	Rule    uint32 // the rule that allowed it, kept for Explain
}

// ReplyKey returns the reply key a packet's flow would have under
// translation nat (for SNAT to test candidate ports with Lookup).
func (s *Shard) ReplyKey(orig *Key, nat Translation) Key {
	r := orig.Reverse()
	if nat.Addr != 0 {
		r.Dst = s.natAddrs()[nat.Addr]
		r.DstPort = nat.Port
	}
	return r
}

// Create opens a flow for packet p, which Track answered with Open. It
// refuses (Drop, counted, event) when the table is full and nothing is
// evictable, or when the reply key already belongs to a live flow. Owner only.
func (s *Shard) Create(p *Packet, nf NewFlow, now Time) Verdict {
	pol := s.t.pol.Load()
	creator, ok := mayCreate(p, pol)
	if !ok {
		s.drop(drop.NoState)
		s.emitPacket(p, EvRefused, drop.NoState, now)
		return Verdict{Action: Drop, Reason: drop.NoState}
	}
	rk := s.ReplyKey(&p.Key, nf.NAT)
	h, rh := s.hash(&p.Key), s.hash(&rk)
	slot, v, ok := s.claim(p, &p.Key, &rk, h, rh, now)
	if !ok {
		return v
	}
	f := &s.flows[slot]
	*f = flow{key: p.Key, natAddr: nf.NAT.Addr, natPort: nf.NAT.Port, profile: nf.Profile, rule: nf.Rule,
		flags: uint8(creator), created: seconds(now), wscale: wscaleNone<<4 | wscaleNone}
	switch {
	case creator == CreatedBySYN:
		f.initSide(Original, p)
		f.synISN = p.Seq
		f.state = TCPSynSent
		if pol.shadows() {
			nh, nrh := s.nsxHashes(f)
			s.nsxRefresh(f, nh, nrh, pol, now) // the SYN passes a closing entry NSX would hold
		}
	case creator == CreatedByStray:
		// NSX compatibility: the stray FIN's entry starts CLOSING, with no
		// knowledge of either window.
		f.initSide(Original, p)
		f.isn[Original] = 0
		f.end[Reply], f.maxEnd[Reply] = p.Ack, p.Ack
		f.flags |= flagLiberal
		f.state = TCPFinWait
	case creator == CreatedByPickup:
		// Mid-stream (an ACK, or a SYN-ACK whose SYN edge did not see):
		// nothing is known of the windows, so the flow is tracked
		// liberally for its whole life (as Linux does) and starts
		// ESTABLISHED; its states still follow the FINs and RSTs.
		f.initSide(Original, p)
		if p.Flags&fSYN == 0 {
			f.isn[Original] = 0
		}
		f.end[Reply], f.maxEnd[Reply] = p.Ack, p.Ack
		f.flags |= flagLiberal
		f.state = TCPEstablished
	case p.Key.Proto == header.ProtoUDP:
		f.state = UDPFirst
	default:
		f.state = ICMPFirst
	}
	return s.publish(p, slot, h, rh, Original, pol, now)
}

// claim checks, for a new flow of packet p with original key orig (hash h)
// and reply key rk (hash rh), that neither key is a live flow's and that
// both have room in their probe runs, and takes a slot for it. Otherwise
// it returns the refusal (counted, with an event) and false.
func (s *Shard) claim(p *Packet, orig, rk *Key, h, rh uint64, now Time) (uint32, Verdict, bool) {
	if _, _, dup := s.find(orig, h, now); dup {
		return 0, s.refuse(p, drop.KeyInUse, now), false
	}
	if _, _, dup := s.find(rk, rh, now); dup {
		return 0, s.refuse(p, drop.KeyInUse, now), false
	}
	// Both keys need room in their probe runs. An eviction by alloc
	// only shortens runs, so the first insert of publish cannot fail; the
	// second can, if both keys share a run that has a single free place.
	if s.ix.free(h) < 0 || s.ix.free(rh) < 0 {
		return 0, s.refuse(p, drop.ProbeLimit, now), false
	}
	slot, ok := s.alloc(now)
	if !ok {
		return 0, s.refuse(p, drop.TableFull, now), false
	}
	return slot, Verdict{}, true
}

// publish completes the flow in slot, opened by packet p travelling in
// direction d: p is its first packet, its timer starts, and it is indexed
// under both keys (hashes h and rh) and reported opened.
func (s *Shard) publish(p *Packet, slot uint32, h, rh uint64, d Dir, pol *policy, now Time) Verdict {
	f := &s.flows[slot]
	f.pkts[d] = 1
	f.expires = ticks(now) + pol.set.timeout(f.profile, f.state)
	s.ix.insert(h, slot, Original)
	if !s.ix.insert(rh, slot, Reply) {
		s.ix.remove(h, slot, Original)
		s.freeSlot(slot)
		return s.refuse(p, drop.ProbeLimit, now)
	}
	s.live.Add(1)
	s.count(CtrCreated)
	s.emit(f, EvOpened, drop.None, d, p.Flags, now)
	s.sig(&f.key, DestFlows)
	return Verdict{Flow: Ref(slot), Action: Forward, Dir: d, State: f.state}
}

// CreateInbound opens a UDP flow for packet p, a datagram from the remote
// end toward a translated endpoint that no flow matched and that a NAT
// mapping's filter admitted (endpoint-independent or address-dependent
// filtering, package snat). The flow is the inside endpoint's: its
// original key is orig (inside endpoint -> p's source) and nf.NAT the
// mapping, so its reply key is p's key, and p is counted as its first
// packet, in the Reply direction (the Verdict says so). It refuses what
// Create refuses, and with drop.NoState anything but a UDP datagram whose
// key is orig's reply under nf.NAT. Owner only.
func (s *Shard) CreateInbound(p *Packet, orig *Key, nf NewFlow, now Time) Verdict {
	if p.Kind != KindFlow || p.Key.Proto != header.ProtoUDP || nf.NAT.Addr == 0 {
		return s.refuse(p, drop.NoState, now)
	}
	rk := s.ReplyKey(orig, nf.NAT)
	if rk != p.Key {
		return s.refuse(p, drop.NoState, now)
	}
	h, rh := s.hash(orig), s.hash(&rk)
	slot, v, ok := s.claim(p, orig, &rk, h, rh, now)
	if !ok {
		return v
	}
	f := &s.flows[slot]
	*f = flow{key: *orig, natAddr: nf.NAT.Addr, natPort: nf.NAT.Port, profile: nf.Profile, rule: nf.Rule,
		flags: uint8(CreatedByFirst) | flagInbound, created: seconds(now), wscale: wscaleNone<<4 | wscaleNone,
		state: UDPFirst}
	return s.publish(p, slot, h, rh, Reply, s.t.pol.Load(), now)
}

// refuse counts the refusal of a new flow for packet p and reports it.
func (s *Shard) refuse(p *Packet, r drop.Reason, now Time) Verdict {
	s.drop(r)
	s.emitPacket(p, EvRefused, r, now)
	return Verdict{Action: Drop, Reason: r}
}

// MaxBatch is the largest batch TrackBatch takes.
const MaxBatch = 256

// Prefetch prepares a batch of up to MaxBatch packets for TrackPrefetched:
// it hashes every key, then loads each key's home index entry, then touches
// the flow each entry points to, each in its own tight loop. The loads of a
// batch are independent, so the CPU keeps many cache misses in flight at
// once instead of paying them one after another (a table of a million flows
// lives in DRAM). It returns how many packets it prepared. Owner only.
func (s *Shard) Prefetch(pkts []Packet) int {
	n := min(len(pkts), MaxBatch)
	hs := &s.hs
	for i := 0; i < n; i++ {
		hs[i] = s.hash(&pkts[i].Key)
	}
	e := s.ix.e
	var sink uint64
	for i := 0; i < n; i++ {
		sink += e[s.ix.home(uint32(hs[i]>>32))]
	}
	// Touch the flow each key's entry points to: the first entry of its
	// probe run with the key's tag (usually at or next to home, in the line
	// just loaded), and remember where it was so tracking starts there.
	// Only the lines the packet's tracking will use (see flow): the first
	// 60 bytes of a slot (at most two lines: their first and last bytes),
	// 84 for TCP (at most three: the key's protocol byte lies in the middle
	// one whenever there are three).
	pos := &s.pos
	for i := 0; i < n; i++ {
		tag := uint32(hs[i] >> 32)
		j := s.ix.home(tag)
		pos[i] = int32(j)
		tcp := pkts[i].Key.Proto == header.ProtoTCP
		for k := 0; k < 4; k++ {
			x := e[j]
			if x == 0 {
				break
			}
			if entryTag(x) == tag {
				f := &s.flows[entrySlotOf(x)]
				sink += uint64(f.key.Src[0]) + uint64(f.key.Proto) + uint64(f.pkts[1])
				if tcp {
					sink += uint64(f.maxWin[1])
				}
				pos[i] = int32(j)
				break
			}
			if j++; j == len(e) {
				j = 0
			}
		}
	}
	s.sink = sink
	s.prefetched = n
	s.removesAt = s.ix.removes
	return n
}

// TrackPrefetched tracks packet i of the batch given to the last Prefetch
// (p must be that packet, unchanged). Packets are tracked in order, and the
// caller acts on each verdict (Create, translate, forward) before tracking
// the next: a verdict's Ref stays valid only until the shard next changes.
// Inserts never move index entries, so Creates between calls are safe; a
// release may shift entries back, after which the probe starts from home.
// Owner only.
func (s *Shard) TrackPrefetched(i int, p *Packet, now Time) Verdict {
	if i >= s.prefetched {
		return s.Track(p, now)
	}
	start := int(s.pos[i])
	if s.ix.removes != s.removesAt {
		start = s.ix.home(uint32(s.hs[i] >> 32))
	}
	return s.track(p, s.hs[i], start, s.t.pol.Load(), now)
}

// TrackBatch tracks len(pkts) packets (at most MaxBatch) and writes one
// Verdict per packet into out: Prefetch, then TrackPrefetched for each.
// Because every packet is tracked before the caller acts on any, it suits
// callers that only look up (benchmarks, tests); the data plane interleaves
// TrackPrefetched with its actions instead. Owner only.
func (s *Shard) TrackBatch(pkts []Packet, out []Verdict, now Time) {
	n := min(s.Prefetch(pkts), len(out))
	pol := s.t.pol.Load()
	for i := 0; i < n; i++ {
		start := int(s.pos[i])
		if s.ix.removes != s.removesAt {
			start = s.ix.home(uint32(s.hs[i] >> 32))
		}
		out[i] = s.track(&pkts[i], s.hs[i], start, pol, now)
	}
}
