package snat

import (
	"encoding/binary"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// Endpoint-independent mapping (RFC 4787 REQ-1, RFC 5382 REQ-1): one
// external address and port per inside endpoint (address, port, protocol,
// zone) while any of its flows lives, for every destination. The mapping
// lives on the worker that owns the endpoint's flows: conntrack puts every
// flow of an inside endpoint on one shard (Table.ShardOfSrc), and the
// external port is chosen so that its endpoint lands there too
// (Table.ShardOfDst of the reply), so an unsolicited datagram toward the
// mapping reaches the same worker and meets its filter (Admit).
//
// An external endpoint belongs to at most one mapping, and a port held by
// a mapping is never given to an endpoint-dependent flow (no port
// overloading, RFC 4787 REQ-3). When a mapping ends after carrying a
// connection its port is quarantined for every other inside endpoint
// (RFC 6888 REQ-8): an entry with no destination in the quarantine.

// mapKey is an inside endpoint. 20 bytes, no padding; proto is never 0 in
// a used entry.
type mapKey struct {
	addr  [16]byte
	port  uint16
	proto uint8
	zone  uint8
}

// mapEntry is one mapping.
type mapEntry struct {
	in        mapKey
	naddr     uint16 // interned external address
	nport     uint16 // external port (ICMP echo identifier)
	flows     uint32 // live flows using the mapping
	idleUntil conntrack.Time
	filter    Filtering
	carried   bool // a flow of the mapping carried a connection: quarantine its port when it ends
	fresh     bool // no flow of the mapping has ended yet (Abandon of its first flow removes it)
	used      bool
	next      uint32 // free list (slot+1) while unused
}

type mapFull struct {
	scan  uint32 // the scan's position in the range
	miss  uint32 // ports the scan examined since it last found one
	at    conntrack.Time
	ended uint64 // mappings.ended when a whole pass found nothing
	naddr uint16
	proto uint8
	zone  uint8
	ok    bool
}

// protoSlot returns the index of a translated protocol in mappings.full.
func protoSlot(proto uint8) int {
	switch proto {
	case header.ProtoTCP:
		return 0
	case header.ProtoUDP:
		return 1
	case header.ProtoICMP:
		return 2
	}
	return 3
}

// mappings is the per-allocator mapping table: preallocated entries and
// two open-addressing indexes of entry slots (slot+1, 0 free; linear
// probing, backward-shift deletion), one by inside endpoint and one by
// external endpoint. Pointer-free: the garbage collector never scans it.
type mappings struct {
	e     []mapEntry
	byIn  []uint32
	byExt []uint32
	mask  uint32
	free  uint32 // free list head (slot+1)
	n     int
	key   hashKey
	sweep int    // next entry the idle sweep looks at
	ended uint64 // mappings removed so far (a port may be free again)
	// full holds, per protocol, the scan over the range for new mappings'
	// ports (it continues where the last search stopped) and remembers a
	// pass that found the whole range taken: until a mapping ends or
	// fullRetry passes, new endpoints of that address, protocol and zone
	// are then refused at once instead of probing MaxProbes ports each.
	full   [4]mapFull
	hold   conntrack.Time
	filter counts // address-dependent filtering: live flows per (mapping, remote address)
}

func (m *mappings) init(max int, key hashKey) {
	m.e = make([]mapEntry, max)
	for i := range m.e {
		m.e[i].next = uint32(i + 2)
	}
	m.e[max-1].next = 0
	m.free = 1
	m.byIn = make([]uint32, pow2(2*max))
	m.byExt = make([]uint32, len(m.byIn))
	m.mask = uint32(len(m.byIn) - 1)
	m.key = key
	m.hold = conntrack.Time(DefaultMappingTimeout)
	m.filter.init(max, key)
}

func (m *mappings) hashIn(k *mapKey) uint32 {
	a := binary.LittleEndian.Uint64(k.addr[0:8])
	b := binary.LittleEndian.Uint64(k.addr[8:16])
	c := uint64(k.port) | uint64(k.proto)<<16 | uint64(k.zone)<<24
	return uint32(mix(mix(a^m.key[0], b^m.key[1])^c^m.key[2], m.key[3]))
}

func (m *mappings) hashExt(naddr, nport uint16, proto, zone uint8) uint32 {
	c := uint64(naddr) | uint64(nport)<<16 | uint64(proto)<<32 | uint64(zone)<<40
	return uint32(mix(c^m.key[2], m.key[1]^m.key[3]))
}

func (m *mappings) homeIn(slot uint32) uint32 { return m.hashIn(&m.e[slot].in) & m.mask }

func (m *mappings) homeExt(slot uint32) uint32 {
	e := &m.e[slot]
	return m.hashExt(e.naddr, e.nport, e.in.proto, e.in.zone) & m.mask
}

// findIn returns the slot of the mapping of inside endpoint k, or -1.
func (m *mappings) findIn(k *mapKey) int {
	if m.n == 0 {
		return -1
	}
	for i := m.hashIn(k) & m.mask; ; i = (i + 1) & m.mask {
		s := m.byIn[i]
		if s == 0 {
			return -1
		}
		if m.e[s-1].in == *k {
			return int(s - 1)
		}
	}
}

// findExt returns the slot of the mapping of external endpoint (naddr,
// nport), or -1.
func (m *mappings) findExt(naddr, nport uint16, proto, zone uint8) int {
	if m.n == 0 {
		return -1
	}
	for i := m.hashExt(naddr, nport, proto, zone) & m.mask; ; i = (i + 1) & m.mask {
		s := m.byExt[i]
		if s == 0 {
			return -1
		}
		e := &m.e[s-1]
		if e.naddr == naddr && e.nport == nport && e.in.proto == proto && e.in.zone == zone {
			return int(s - 1)
		}
	}
}

// add inserts a mapping of k to (naddr, nport), which neither index holds,
// and returns its slot, or -1 when the table is full.
func (m *mappings) add(k *mapKey, naddr, nport uint16, filter Filtering) int {
	if m.free == 0 {
		return -1
	}
	s := m.free - 1
	e := &m.e[s]
	m.free = e.next
	*e = mapEntry{in: *k, naddr: naddr, nport: nport, filter: filter, fresh: true, used: true}
	i := m.hashIn(k) & m.mask
	for m.byIn[i] != 0 {
		i = (i + 1) & m.mask
	}
	m.byIn[i] = s + 1
	i = m.hashExt(naddr, nport, k.proto, k.zone) & m.mask
	for m.byExt[i] != 0 {
		i = (i + 1) & m.mask
	}
	m.byExt[i] = s + 1
	m.n++
	return int(s)
}

// del removes the mapping in slot s from both indexes and frees it.
func (m *mappings) del(s int) {
	slot := uint32(s) + 1
	ixDelete(m.byIn, m.mask, m.hashIn(&m.e[s].in)&m.mask, slot, m.homeIn)
	e := &m.e[s]
	ixDelete(m.byExt, m.mask, m.hashExt(e.naddr, e.nport, e.in.proto, e.in.zone)&m.mask, slot, m.homeExt)
	*e = mapEntry{next: m.free}
	m.free = slot
	m.n--
	m.ended++
}

// ixDelete removes slot+1 value v from index ix (probe run starting at
// home h) by backward shift; home gives the home position of an entry
// slot.
func ixDelete(ix []uint32, mask, h, v uint32, home func(uint32) uint32) {
	i := h
	for ix[i] != v {
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; ix[j] != 0; j = (j + 1) & mask {
		if inRun(home(ix[j]-1), i, j, mask) {
			ix[i] = ix[j]
			i = j
		}
	}
	ix[i] = 0
}

// counts is a pointer-free open-addressing table of counters keyed by
// tuple (for address-dependent filtering: dst is the remote address, dport
// 0, naddr, nport the mapping). At most max entries (load <= 1/2).
type counts struct {
	e    []countEntry
	mask uint32
	n    int
	max  int
	key  hashKey
}

type countEntry struct {
	k tuple
	n uint32
}

func (c *counts) init(max int, key hashKey) {
	c.e = make([]countEntry, pow2(2*max))
	c.mask = uint32(len(c.e) - 1)
	c.max = max
	c.key = key
}

func (c *counts) find(k *tuple) int {
	for i := uint32(c.key.hash(k)) & c.mask; ; i = (i + 1) & c.mask {
		e := &c.e[i]
		if e.k.proto == 0 {
			return -1
		}
		if e.k == *k {
			return int(i)
		}
	}
}

// inc counts one more for k; false when the table is full.
func (c *counts) inc(k *tuple) bool {
	i := uint32(c.key.hash(k)) & c.mask
	for ; c.e[i].k.proto != 0; i = (i + 1) & c.mask {
		if c.e[i].k == *k {
			c.e[i].n++
			return true
		}
	}
	if c.n >= c.max {
		return false
	}
	c.e[i] = countEntry{k: *k, n: 1}
	c.n++
	return true
}

// dec counts one less for k, removing it at zero.
func (c *counts) dec(k *tuple) {
	j := c.find(k)
	if j < 0 {
		return
	}
	if c.e[j].n--; c.e[j].n > 0 {
		return
	}
	i := uint32(j)
	for n := (i + 1) & c.mask; c.e[n].k.proto != 0; n = (n + 1) & c.mask {
		if inRun(uint32(c.key.hash(&c.e[n].k))&c.mask, i, n, c.mask) {
			c.e[i] = c.e[n]
			i = n
		}
	}
	c.e[i] = countEntry{}
	c.n--
}

// filterKey is the address-dependent filter's key for a mapping and a
// remote address.
func filterKey(e *mapEntry, remote *[16]byte) tuple {
	return tuple{dst: *remote, naddr: e.naddr, nport: e.nport, proto: e.in.proto, zone: e.in.zone}
}

// mapQuarKey is the quarantine key of a mapping's port for every other
// inside endpoint: no destination.
func mapQuarKey(naddr, nport uint16, proto, zone uint8) tuple {
	return tuple{naddr: naddr, nport: nport, proto: proto, zone: zone}
}

// live returns the slot of the mapping of inside endpoint k if it lives at
// now (an idle mapping whose time ran out is ended on the way), or -1.
func (a *Allocator) liveMapping(k *mapKey, now conntrack.Time) int {
	j := a.m.findIn(k)
	if j >= 0 && a.m.e[j].flows == 0 && now >= a.m.e[j].idleUntil {
		a.endMapping(j, now)
		return -1
	}
	return j
}

// mappedPort reports whether (naddr, port) is the external endpoint of a
// live mapping (an idle one whose time ran out is ended on the way).
func (a *Allocator) mappedPort(naddr, port uint16, proto, zone uint8, now conntrack.Time) bool {
	j := a.m.findExt(naddr, port, proto, zone)
	if j < 0 {
		return false
	}
	if a.m.e[j].flows == 0 && now >= a.m.e[j].idleUntil {
		a.endMapping(j, now)
		return false
	}
	return true
}

// endMapping ends the mapping in slot j: its port is quarantined for other
// inside endpoints if it carried a connection.
func (a *Allocator) endMapping(j int, now conntrack.Time) {
	e := &a.m.e[j]
	if e.carried {
		k := mapQuarKey(e.naddr, e.nport, e.in.proto, e.in.zone)
		if a.q.insert(&k, now, false) {
			a.ctr.add(CtrQuarantineForgotten, 1)
		}
	}
	a.m.del(j)
	a.ctr.add(CtrMappingsEnded, 1)
}

// allocMapped is AllocateFrom for a pool with endpoint-independent mapping:
// the flow takes its inside endpoint's mapping, made now if it has none
// (na is the pool address paired with the endpoint, k the destination
// tuple of na, rk the candidate reply key).
func (a *Allocator) allocMapped(b behaviour, na *natAddr, k *tuple, rk *conntrack.Key, orig *conntrack.Key, now conntrack.Time) (conntrack.Translation, drop.Reason) {
	mk := mapKey{addr: orig.Src, port: orig.SrcPort, proto: orig.Proto, zone: orig.Zone}
	if j := a.liveMapping(&mk, now); j >= 0 {
		e := &a.m.e[j]
		rk.Dst = a.n.Addr(e.naddr)
		rk.DstPort = e.nport
		if _, _, live := a.s.Lookup(rk, now); live {
			a.ctr.add(CtrMappingConflict, 1)
			return conntrack.Translation{}, drop.SNATMappingConflict
		}
		a.useMapping(j, &orig.Dst)
		k.naddr = e.naddr
		a.ctr.add(CtrMappingReused, 1)
		return a.commit(k, e.nport)
	}
	if a.m.free == 0 {
		a.ctr.add(CtrMappingsFull, 1)
		return conntrack.Translation{}, drop.SNATMappingsFull
	}
	f := &a.m.full[protoSlot(k.proto)]
	if f.ok && f.naddr == k.naddr && f.zone == k.zone && f.ended == a.m.ended && now-f.at < fullRetry {
		return a.exhausted(k, orig, now)
	}
	port, ok := a.mappingPort(f, k, rk, orig, now)
	if !ok {
		if f.miss < a.c.nports {
			// The pass over the range goes on with the next new
			// endpoint: a port free for the whole pass is found within
			// about nports/ScanProbes searches.
			a.ctr.add(CtrProbeLimit, 1)
			return conntrack.Translation{}, drop.SNATProbeLimit
		}
		f.at, f.ended, f.naddr, f.proto, f.zone, f.ok = now, a.m.ended, k.naddr, k.proto, k.zone, true
		return a.exhausted(k, orig, now)
	}
	j := a.m.add(&mk, k.naddr, port, b.filter)
	a.useMapping(j, &orig.Dst)
	a.ctr.add(CtrMappingsMade, 1)
	if port == orig.SrcPort {
		a.ctr.add(CtrPortPreserved, 1)
	}
	return a.commit(k, port)
}

// useMapping counts one more flow (toward remote) on mapping j.
func (a *Allocator) useMapping(j int, remote *[16]byte) {
	e := &a.m.e[j]
	e.flows++
	if e.filter == AddressDependent {
		fk := filterKey(e, remote)
		if !a.m.filter.inc(&fk) {
			a.ctr.add(CtrFilterOverflow, 1)
		}
	}
}

// mappingPort chooses the external port of a new mapping: the inside port
// itself when it is free (port preservation, as Linux does), else up to
// RandomProbes random ports (RFC 6056 Algorithm 2) and ScanProbes ports
// from the allocator's position in the range (Algorithm 1). A port
// qualifies when its external endpoint lands on this worker, no mapping
// holds it, no mapping released it within the quarantine, and toward the
// flow's destination it is neither in use nor quarantined.
func (a *Allocator) mappingPort(f *mapFull, k *tuple, rk *conntrack.Key, orig *conntrack.Key, now conntrack.Time) (uint16, bool) {
	n := a.c
	try := func(port uint16) bool {
		rk.DstPort = port
		if !a.lands(rk) || a.mappedPort(k.naddr, port, k.proto, k.zone, now) {
			return false
		}
		qk := mapQuarKey(k.naddr, port, k.proto, k.zone)
		if _, quar := a.q.lookup(&qk, now); quar {
			return false
		}
		free, quar, _ := a.check(rk, k, port, now)
		return free && !quar
	}
	probes := uint64(1)
	defer func() { a.ctr.add(CtrProbes, probes) }()
	if a.inRange(orig.SrcPort) && orig.SrcPort != 0 && try(orig.SrcPort) {
		return orig.SrcPort, true
	}
	for ; probes <= RandomProbes; probes++ {
		port := n.portStart + uint16(a.below(n.nports))
		if try(port) {
			return port, true
		}
	}
	for i := 0; i < ScanProbes; i++ {
		probes++
		if f.scan >= n.nports {
			f.scan %= n.nports
		}
		port := n.portStart + uint16(f.scan)
		f.scan++
		if try(port) {
			f.miss = 0
			return port, true
		}
		f.miss++
	}
	return 0, false
}

// releaseMapped counts out a released flow (original key orig, translation
// nat) from its inside endpoint's mapping, if it used one. The mapping ends
// with its last flow, a UDP mapping MappingTimeout later (RFC 4787 REQ-5).
func (a *Allocator) releaseMapped(orig *conntrack.Key, nat conntrack.Translation, carried bool, now conntrack.Time) {
	mk := mapKey{addr: orig.Src, port: orig.SrcPort, proto: orig.Proto, zone: orig.Zone}
	j := a.m.findIn(&mk)
	if j < 0 {
		return
	}
	e := &a.m.e[j]
	if e.naddr != nat.Addr || e.nport != nat.Port || e.flows == 0 {
		return
	}
	e.flows--
	e.fresh = false
	e.carried = e.carried || carried
	if e.filter == AddressDependent {
		fk := filterKey(e, &orig.Dst)
		a.m.filter.dec(&fk)
	}
	if e.flows > 0 {
		return
	}
	a.idleMapping(j, now)
}

// idleMapping handles mapping j after its last flow ended at now: a UDP
// mapping is kept MappingTimeout longer (RFC 4787 REQ-5), others end.
func (a *Allocator) idleMapping(j int, now conntrack.Time) {
	e := &a.m.e[j]
	e.fresh = false
	if e.in.proto == header.ProtoUDP && a.m.hold > 0 {
		e.idleUntil = now + a.m.hold
		return
	}
	a.endMapping(j, now)
}

// sweepMappings ends up to budget idle mappings whose time ran out,
// looking at budget slots from where the last sweep stopped (Serve).
func (a *Allocator) sweepMappings(now conntrack.Time, budget int) {
	if a.m.n == 0 {
		return
	}
	for ; budget > 0; budget-- {
		if a.m.sweep >= len(a.m.e) {
			a.m.sweep = 0
		}
		j := a.m.sweep
		a.m.sweep++
		if e := &a.m.e[j]; e.used && e.flows == 0 && now >= e.idleUntil {
			a.endMapping(j, now)
		}
	}
}

// Admit decides an unsolicited datagram from the outside that no flow
// matched: k is its key (remote endpoint -> external endpoint). When k's
// destination is the external endpoint of a live UDP mapping of this
// worker and the mapping's filter lets k's source in, it counts a new flow
// on the mapping and returns the flow's original key (inside endpoint ->
// remote endpoint) and translation, for conntrack.Shard.CreateInbound; the
// caller calls Abandon if that refuses the flow. ok is false when k is not
// toward a mapping (the packet meets the firewall as any other); r is
// drop.SNATFiltered when the filter refuses it (counted). A hairpinned
// datagram (from an inside endpoint, translated and looped back) is not
// filtered: the filtering behaviours of RFC 4787 section 5 are about
// external endpoints, and REQ-9 wants inside hosts to reach each other
// through their mappings (the firewall still judges the flow). Owner
// only; never allocates.
func (a *Allocator) Admit(k *conntrack.Key, hairpinned bool, now conntrack.Time) (orig conntrack.Key, tr conntrack.Translation, ok bool, r drop.Reason) {
	if k.Proto != header.ProtoUDP || a.m.n == 0 {
		return orig, tr, false, drop.None
	}
	naddr, known := a.n.addrIndex(&k.Dst)
	if !known {
		return orig, tr, false, drop.None
	}
	j := a.m.findExt(naddr, k.DstPort, k.Proto, k.Zone)
	if j < 0 {
		return orig, tr, false, drop.None
	}
	e := &a.m.e[j]
	if e.flows == 0 && now >= e.idleUntil {
		a.endMapping(j, now)
		return orig, tr, false, drop.None
	}
	switch {
	case hairpinned:
	case e.filter == EndpointIndependentFiltering:
	case e.filter == AddressDependent:
		fk := filterKey(e, &k.Src)
		if a.m.filter.find(&fk) < 0 {
			a.ctr.add(CtrFiltered, 1)
			return orig, tr, true, drop.SNATFiltered
		}
	default:
		a.ctr.add(CtrFiltered, 1)
		return orig, tr, true, drop.SNATFiltered
	}
	orig = conntrack.Key{Src: e.in.addr, Dst: k.Src, SrcPort: e.in.port, DstPort: k.SrcPort, Proto: k.Proto, Zone: k.Zone}
	a.useMapping(j, &k.Src)
	a.ctr.add(CtrAdmitted, 1)
	t := tuple{dst: orig.Dst, dport: orig.DstPort, naddr: e.naddr, proto: orig.Proto, zone: orig.Zone}
	tr, _ = a.commit(&t, e.nport)
	return orig, tr, true, drop.None
}

// abandonMapped undoes the mapping's part of a translation given back
// unused (Abandon): the flow is counted out, and a mapping it made ends at
// once (no packet left with it).
func (a *Allocator) abandonMapped(orig *conntrack.Key, tr conntrack.Translation, now conntrack.Time) bool {
	mk := mapKey{addr: orig.Src, port: orig.SrcPort, proto: orig.Proto, zone: orig.Zone}
	j := a.m.findIn(&mk)
	if j < 0 {
		return false
	}
	e := &a.m.e[j]
	if e.naddr != tr.Addr || e.nport != tr.Port || e.flows == 0 {
		return false
	}
	e.flows--
	if e.filter == AddressDependent {
		fk := filterKey(e, &orig.Dst)
		a.m.filter.dec(&fk)
	}
	if e.flows == 0 {
		if e.fresh {
			a.m.del(j) // made for this flow: nothing left with it
		} else {
			a.idleMapping(j, now)
		}
	}
	return true
}

// CountHairpin counts a packet the data plane hairpinned (translated with
// its flow's mapping and looped back toward another mapping). Owner only.
func (a *Allocator) CountHairpin() { a.ctr.add(CtrHairpinned, 1) }
