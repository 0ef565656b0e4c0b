package dataplane

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"

	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/conntrack"
)

// Neighbours mirrors the kernel's neighbour (ARP / NDP) table for edge's
// interfaces. Workers read an immutable snapshot through an atomic pointer;
// one goroutine (Run) rebuilds it from netlink: on every neighbour update
// the kernel sends, and once a second as a safety net.
//
// A worker that finds no usable entry for a next hop drops the packet
// (counted as drop.NoNeighbour) and calls Resolve, which asks the kernel to
// resolve the address; the packet is never sent to a guessed MAC.
//
// Two defences keep a flood toward many unresolvable addresses (SYNs from
// random sources in an inside subnet: each answer needs a neighbour) from
// stopping established traffic:
//
//   - An entry in use (a worker sent through it within neighUsedWithin) is
//     kept, with its last good MAC, while the kernel's dumps lack it, for
//     at most neighKeepFor, and revalidated (probed) meanwhile. A dump walks
//     a hash table that changes under it and can skip live entries, and the
//     kernel's garbage collection removes STALE entries when its table
//     fills (forced, at gc_thresh3: those not updated in the last 5 s);
//     STALE is where every entry edge sends through ends up, since edge's
//     frames bypass the kernel, which never confirms it. Only the kernel
//     saying FAILED, or the bound, ends it.
//   - Resolutions of new addresses are bounded: a worker asks at most
//     resolveBudget times per resolveWindow, and at most maxUnanswered
//     requests are outstanding (asked, neither answered nor given up) at a
//     time; beyond that a packet is counted drop.NeighbourResolveLimited and
//     nothing is asked. Each resolution costs the kernel an entry (INCOMPLETE
//     then FAILED); edge deletes the FAILED ones it caused, so its share of
//     the kernel's table stays near maxUnanswered, far from gc_thresh3.
type Neighbours struct {
	ifindexes []int
	cur       atomic.Pointer[neighTable]
	resolve   chan resolveReq
	saturated atomic.Bool // maxUnanswered requests outstanding: workers do not ask

	// Run's goroutine only (tests call its methods directly).
	known     map[neighKey]*neighEntry
	requested map[neighKey]time.Time // outstanding resolutions, by when they were asked
	kernel    neighKernel
	gen       uint64 // rebuilds

	stats neighCounters
}

// Bounds of the mirror (see Neighbours).
const (
	neighUsedWithin = 10 * time.Second // an entry a worker used this recently is in use
	neighKeepFor    = 15 * time.Second // longest an in-use entry outlives the kernel's dumps
	revalidateEvery = time.Second      // probes of a kept entry, at most
	maxUnanswered   = 64               // resolutions outstanding at a time
	resolveTimeout  = 3 * time.Second  // a request unanswered this long is given up (ARP: 3 probes 1 s apart)

	resolveWindow = conntrack.Time(100 * time.Millisecond)
	resolveBudget = 16 // requests per worker per resolveWindow
)

// neighEntry is what the mirror knows of one neighbour.
type neighEntry struct {
	mac     [6]byte
	seen    time.Time // last dump that had it usable
	used    time.Time // last snapshot in which a worker sent through it
	probed  time.Time // last revalidation while kept
	seenGen uint64    // the rebuild that last found it usable
	kept    bool      // served from memory: the last dump lacked it
}

type neighCounters struct {
	kept, keptExpired, keptRecovered, keptFailed atomic.Uint64
	requests, refused, given, deleted            atomic.Uint64
	held, heldSent, heldDropped                  atomic.Uint64 // the workers' held packets (neighhold.go)
}

// NeighbourStats are the neighbour mirror's counters.
type NeighbourStats struct {
	Entries       int    // in the snapshot workers use
	Kept          int    // of them, in use and served from memory (the kernel's dump lacks them)
	Unanswered    int    // resolutions outstanding
	KeptTotal     uint64 // times an in-use entry was kept when a dump lacked it
	KeptRecovered uint64 // kept entries the kernel had again within the bound
	KeptExpired   uint64 // kept entries dropped at the bound (neighKeepFor)
	KeptFailed    uint64 // kept entries dropped because the kernel reported the neighbour FAILED
	Requests      uint64 // resolutions asked of the kernel
	Refused       uint64 // resolution requests refused by the mirror (outstanding bound reached); the workers count theirs as drop.NeighbourResolveLimited
	GivenUp       uint64 // resolutions given up: FAILED, or unanswered after resolveTimeout
	Deleted       uint64 // FAILED or stuck kernel entries of edge's own requests deleted
	Held          uint64 // packets held by the workers while their next hop was resolved
	HeldSent      uint64 // of them, sent once it was
	HeldDropped   uint64 // of them, dropped unresolved after holdTimeout (counted as no_neighbour too)
}

type neighKey struct {
	ifindex int32
	addr    [16]byte
}

// kernelNeigh is one entry of a kernel dump.
type kernelNeigh struct {
	key   neighKey
	state int // netlink.NUD_*
	mac   [6]byte
	group bool // the link-layer address is missing, not 6 bytes, or a group address
}

// neighKernel is what the mirror needs of the kernel: a dump of the
// entries of the mirrored interfaces, a resolution, a deletion.
type neighKernel interface {
	dump() ([]kernelNeigh, error)
	probe(neighKey)
	del(neighKey)
}

// NewNeighbours mirrors the neighbours of the given interfaces. Call Run
// from a goroutine on a thread in their network namespace.
func NewNeighbours(ifindexes ...int) *Neighbours {
	n := &Neighbours{ifindexes: ifindexes, resolve: make(chan resolveReq, 64),
		known: map[neighKey]*neighEntry{}, requested: map[neighKey]time.Time{}}
	n.kernel = netlinkKernel{n}
	n.store(nil)
	return n
}

// Lookup returns the MAC address of addr (16-byte form, IPv4-mapped for
// IPv4) on interface ifindex and, as a worker's lookup does, marks the
// entry in use. Any goroutine; no allocation, no lock.
func (n *Neighbours) Lookup(ifindex int, addr [16]byte) ([6]byte, bool) {
	t := n.cur.Load()
	i, ok := t.find(int32(ifindex), &addr)
	if !ok {
		return [6]byte{}, false
	}
	t.markHit(i)
	return t.slots[i].mac, true
}

// Stats reads the mirror's counters. Any goroutine.
func (n *Neighbours) Stats() NeighbourStats {
	t := n.cur.Load()
	c := &n.stats
	return NeighbourStats{Entries: t.entries, Kept: t.kept, Unanswered: int(t.unanswered),
		KeptTotal: c.kept.Load(), KeptRecovered: c.keptRecovered.Load(), KeptExpired: c.keptExpired.Load(),
		KeptFailed: c.keptFailed.Load(), Requests: c.requests.Load(), Refused: c.refused.Load(),
		GivenUp: c.given.Load(), Deleted: c.deleted.Load(),
		Held: c.held.Load(), HeldSent: c.heldSent.Load(), HeldDropped: c.heldDropped.Load()}
}

// NeighbourStats reads the engine's neighbour mirror counters.
func (e *Engine) NeighbourStats() NeighbourStats { return e.neigh.Stats() }

// neighTable is an immutable open-addressing table (linear probing, load
// at most 1/2) of a snapshot: a per-packet lookup is a multiply, one or two
// slot reads and a compare, where a Go map cost several times that. A
// slot's hit flag is its one mutable part: a worker sets it (once: it reads
// before writing) when it sends through the entry, and the mirror reads it
// when it builds the next snapshot. It shares the slot's cache line, which
// the lookup reads anyway.
type neighTable struct {
	slots []neighSlot
	mask  uint64

	entries, kept int
	unanswered    int32
}

type neighSlot struct {
	addr    [16]byte
	ifindex int32
	mac     [6]byte
	used    bool
	hit     uint32 // atomic: a worker sent through the entry
}

func neighHash(ifindex int32, a *[16]byte) uint64 {
	lo := binary.LittleEndian.Uint64(a[0:8])
	hi := binary.LittleEndian.Uint64(a[8:16])
	// splitmix64's finalizer over the folded words: every input bit
	// reaches every output bit (IPv4-mapped addresses vary only in their
	// top 32 bits, which a bare multiply never carries downward).
	h := lo*0x9e3779b97f4a7c15 ^ hi ^ uint64(uint32(ifindex))<<1
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

func newNeighTable(m map[neighKey][6]byte) *neighTable {
	n := 8
	for n < 2*len(m) {
		n <<= 1
	}
	t := &neighTable{slots: make([]neighSlot, n), mask: uint64(n - 1), entries: len(m)}
	for k, mac := range m {
		i := neighHash(k.ifindex, &k.addr) & t.mask
		for t.slots[i].used {
			i = (i + 1) & t.mask
		}
		t.slots[i] = neighSlot{addr: k.addr, ifindex: k.ifindex, mac: mac, used: true}
	}
	return t
}

// find returns the slot of addr on ifindex.
func (t *neighTable) find(ifindex int32, a *[16]byte) (int, bool) {
	i := neighHash(ifindex, a) & t.mask
	for {
		s := &t.slots[i]
		if !s.used {
			return 0, false
		}
		if s.ifindex == ifindex && s.addr == *a {
			return int(i), true
		}
		i = (i + 1) & t.mask
	}
}

func (t *neighTable) lookup(ifindex int32, a *[16]byte) ([6]byte, bool) {
	if i, ok := t.find(ifindex, a); ok {
		return t.slots[i].mac, true
	}
	return [6]byte{}, false
}

// markHit notes that a worker sent through slot i. Read before write: the
// slot's cache line is written once per snapshot, not once per packet.
func (t *neighTable) markHit(i int) {
	if h := &t.slots[i].hit; atomic.LoadUint32(h) == 0 {
		atomic.StoreUint32(h, 1)
	}
}

// hopCache is one worker's memory of the last next hop it resolved on a
// port: most traffic on a port goes to one next hop (the gateway).
type hopCache struct {
	table *neighTable
	hop   [16]byte
	slot  int
}

// nextHop returns the MAC address of hop on ifindex in snapshot t, through
// the worker's cache c, and marks the entry in use. No allocation.
func (c *hopCache) nextHop(t *neighTable, ifindex int32, hop *[16]byte) ([6]byte, bool) {
	if c.table != t || c.hop != *hop {
		i, ok := t.find(ifindex, hop)
		if !ok {
			return [6]byte{}, false
		}
		*c = hopCache{table: t, hop: *hop, slot: i}
	}
	t.markHit(c.slot)
	return t.slots[c.slot].mac, true
}

// resolveLimit is one worker's budget of resolution requests: resolveBudget
// per resolveWindow.
type resolveLimit struct {
	window conntrack.Time
	left   int
}

// allow spends one request of the budget at time now, if one is left.
func (l *resolveLimit) allow(now conntrack.Time) bool {
	if now-l.window >= resolveWindow || now < l.window {
		l.window, l.left = now, resolveBudget
	}
	if l.left == 0 {
		return false
	}
	l.left--
	return true
}

// store publishes a new snapshot built from m.
func (n *Neighbours) store(m map[neighKey][6]byte) { n.cur.Store(newNeighTable(m)) }

// Resolve asks for addr to be resolved on interface ifindex and reports
// whether the request was taken. It never blocks and takes no lock of
// edge's: while maxUnanswered requests are outstanding, or when the request
// queue is full, it refuses.
func (n *Neighbours) Resolve(ifindex int, addr [16]byte) bool {
	if n.saturated.Load() {
		return false
	}
	select {
	case n.resolve <- resolveReq{ifindex: ifindex, addr: addr}:
		return true
	default:
		return false
	}
}

type resolveReq struct {
	ifindex int
	addr    [16]byte
}

// request handles a worker's request at time now: a new address is asked
// of the kernel unless maxUnanswered requests are outstanding; one already
// outstanding is not asked again. Run's goroutine.
func (n *Neighbours) request(r resolveReq, now time.Time) {
	k := neighKey{int32(r.ifindex), r.addr}
	if _, ok := n.requested[k]; ok {
		return
	}
	if len(n.requested) >= maxUnanswered {
		n.stats.refused.Add(1)
		n.saturated.Store(true)
		return
	}
	n.requested[k] = now
	n.saturated.Store(len(n.requested) >= maxUnanswered)
	n.stats.requests.Add(1)
	n.kernel.probe(k)
}

// usableStates are the kernel states whose link-layer address may be used.
const usableStates = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// Refresh rebuilds the snapshot from the kernel's table now.
func (n *Neighbours) Refresh() error {
	return n.refresh(time.Now())
}

func (n *Neighbours) refresh(now time.Time) error {
	d, err := n.kernel.dump()
	if err != nil {
		return err
	}
	n.rebuild(d, now)
	return nil
}

// rebuild publishes the snapshot for kernel dump d at time now: the
// dump's usable entries, and the in-use entries it lacks within their
// bound. It revalidates kept entries and settles edge's requests. Run's
// goroutine.
func (n *Neighbours) rebuild(d []kernelNeigh, now time.Time) {
	// Which entries did the workers use since the last snapshot?
	old := n.cur.Load()
	for i := range old.slots {
		if s := &old.slots[i]; s.used && atomic.LoadUint32(&s.hit) != 0 {
			if e := n.known[neighKey{s.ifindex, s.addr}]; e != nil {
				e.used = now
			}
		}
	}
	n.gen++
	failed := map[neighKey]bool{}
	present := map[neighKey]int{}
	for _, kn := range d {
		present[kn.key] = kn.state
		switch {
		case kn.state&usableStates != 0 && !kn.group:
			e := n.known[kn.key]
			if e == nil {
				e = &neighEntry{}
				n.known[kn.key] = e
			}
			if e.kept {
				e.kept = false
				n.stats.keptRecovered.Add(1)
			}
			e.mac, e.seen, e.seenGen = kn.mac, now, n.gen
			delete(n.requested, kn.key)
		case kn.state&netlink.NUD_FAILED != 0:
			failed[kn.key] = true
		}
	}
	m := make(map[neighKey][6]byte, len(n.known))
	kept := 0
	for k, e := range n.known {
		if e.seenGen == n.gen {
			m[k] = e.mac
			continue
		}
		inUse := now.Sub(e.used) < neighUsedWithin
		switch {
		case failed[k]:
			// The kernel tried and the neighbour did not answer.
			if e.kept {
				n.stats.keptFailed.Add(1)
			}
			delete(n.known, k)
		case !inUse || now.Sub(e.seen) >= neighKeepFor:
			if e.kept {
				n.stats.keptExpired.Add(1)
			}
			delete(n.known, k)
		default:
			if !e.kept {
				e.kept = true
				n.stats.kept.Add(1)
			}
			kept++
			m[k] = e.mac
			if now.Sub(e.probed) >= revalidateEvery {
				e.probed = now
				n.kernel.probe(k)
			}
		}
	}
	// Settle edge's own requests: a FAILED one, or one unanswered for
	// resolveTimeout, is given up and its kernel entry deleted (the kernel
	// would keep it until its garbage collection, which does not run below
	// gc_thresh1 entries, and a full table of them is what evicts the
	// entries of live neighbours).
	for k, at := range n.requested {
		st, inKernel := present[k]
		if !failed[k] && now.Sub(at) < resolveTimeout {
			continue
		}
		delete(n.requested, k)
		n.stats.given.Add(1)
		if inKernel && st&usableStates == 0 {
			n.kernel.del(k)
			n.stats.deleted.Add(1)
		}
	}
	n.saturated.Store(len(n.requested) >= maxUnanswered)
	t := newNeighTable(m)
	t.kept, t.unanswered = kept, int32(len(n.requested))
	n.cur.Store(t)
}

// Run keeps the snapshot current and performs resolutions until done is
// closed. It must run on a thread in the interfaces' network namespace
// (the netlink socket and the probe sockets are opened there).
func (n *Neighbours) Run(done <-chan struct{}) error {
	updates := make(chan netlink.NeighUpdate, 256)
	if err := netlink.NeighSubscribe(updates, done); err != nil {
		return err
	}
	if err := n.Refresh(); err != nil {
		return err
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case _, ok := <-updates:
			if !ok {
				// The subscription died (netlink closes the channel on a
				// receive error such as ENOBUFS in an update storm): fall
				// back to the periodic refresh rather than spin.
				updates = nil
				continue
			}
			// Coalesce a burst of updates into one rebuild.
			for len(updates) > 0 {
				<-updates
			}
			_ = n.Refresh()
		case <-tick.C:
			_ = n.Refresh()
		case r := <-n.resolve:
			n.request(r, time.Now())
		}
	}
}

// netlinkKernel is the kernel of the calling thread's network namespace.
type netlinkKernel struct{ n *Neighbours }

func (k netlinkKernel) dump() ([]kernelNeigh, error) {
	var d []kernelNeigh
	for _, ifindex := range k.n.ifindexes {
		for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
			list, err := redumpInterrupted(func() ([]netlink.Neigh, error) {
				return netlink.NeighList(ifindex, fam)
			})
			if err != nil {
				return nil, err
			}
			for _, e := range list {
				a, ok := netip.AddrFromSlice(e.IP)
				if !ok {
					continue
				}
				kn := kernelNeigh{key: neighKey{int32(ifindex), a.As16()}, state: e.State}
				// Never a group address: the kernel keeps ff:ff:ff:ff:ff:ff
				// NOARP entries for subnet broadcasts, and forwarding to
				// them would be a directed broadcast (RFC 2644).
				kn.group = len(e.HardwareAddr) != 6 || e.HardwareAddr[0]&1 != 0
				if !kn.group {
					copy(kn.mac[:], e.HardwareAddr)
				}
				d = append(d, kn)
			}
		}
	}
	return d, nil
}

// probe makes the kernel resolve k's address on k's interface: an
// RTM_NEWNEIGH with NTF_USE (as `ip neigh replace ADDR dev DEV use`) creates
// the entry if needed and starts resolution as a packet sent toward it
// would (ARP request or neighbour solicitation); the netlink update then
// refreshes the snapshot. No packet is sent to the neighbour itself: a
// datagram to its discard port, as before, drew an ICMP port unreachable
// that arrived at edge and was counted as icmp_no_flow. The entry's state
// is left to the kernel (not permanent: it can be garbage collected).
func (netlinkKernel) probe(k neighKey) {
	a := netip.AddrFrom16(k.addr).Unmap()
	fam := unix.AF_INET
	if a.Is6() {
		fam = unix.AF_INET6
	}
	_ = netlink.NeighSet(&netlink.Neigh{LinkIndex: int(k.ifindex), Family: fam, IP: net.IP(a.AsSlice()), Flags: netlink.NTF_USE})
}

// del deletes k's entry from the kernel's table.
func (netlinkKernel) del(k neighKey) {
	a := netip.AddrFrom16(k.addr).Unmap()
	fam := unix.AF_INET
	if a.Is6() {
		fam = unix.AF_INET6
	}
	_ = netlink.NeighDel(&netlink.Neigh{LinkIndex: int(k.ifindex), Family: fam, IP: net.IP(a.AsSlice())})
}
