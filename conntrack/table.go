package conntrack

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/internal/mailbox"
	"github.com/edgegw/edge/internal/spsc"
)

// Config sizes a Table. It is read once by New.
type Config struct {
	// MaxFlows is the total flow capacity, split evenly over the shards.
	// Default 1,048,576. Storage for all of it is allocated up front.
	MaxFlows int
	// Shards is the number of single-writer shards: one per data-plane worker.
	// Default 1, at most 255.
	Shards int
	// HistorySize is how many ended incarnations each shard remembers for
	// Explain. Default 16,384.
	HistorySize int
	// EventRingSize is the capacity of each shard's event ring. Default 4,096.
	EventRingSize int
	// Destinations is how many destinations (server endpoints) each shard
	// tracks per-destination signals for (DestStat); default
	// DefaultDestinations, rounded up to a power of two times DestWays;
	// negative: none.
	Destinations int
	// Memory says where flow storage lives (default: hugepages if reserved).
	Memory Memory
	// Policy is the initial policy (profiles and TCP knobs).
	Policy Policy
	// Logf, if set, receives one line about the memory obtained.
	Logf func(format string, args ...any)
}

// Policy holds the settings that may change while traffic runs. It is
// validated whole and swapped atomically (Table.SetPolicy).
type Policy struct {
	// Profiles are the timer profiles; index 0 is the default for flows
	// that name no profile. Empty means [DefaultProfile].
	Profiles []Profile
	// Liberal skips TCP window checks (states are still tracked).
	Liberal bool
	// PickUp lets a TCP ACK without state create an ESTABLISHED flow
	// (mid-stream pick-up, like Linux nf_conntrack_tcp_loose). Off by
	// default: only a SYN creates TCP state.
	PickUp bool
	// NSXCompat emulates the NSX-T gateway firewall for A/B labs, and is
	// never for production: a FIN without state creates a CLOSING entry, a
	// SYN on a closing entry passes without starting a new incarnation, and
	// a SYN-ACK that meets a closing entry is dropped with
	// drop.NSXSynAckOnClosing (the data plane answers it with ICMP port
	// unreachable). Together: the 502 incident of ../shared/README.md.
	NSXCompat bool
	// NSXShadow keeps edge's own behaviour and evaluates beside it, on the
	// same packets, what NSXCompat would have decided: SYN-ACKs edge
	// forwards that NSX-like semantics would have dropped are counted
	// (nsx_would_drop, nsx_would_fail, per destination) and reported
	// (EvNSXWouldDrop), and no verdict changes (nsxshadow.go). For A/B labs
	// and for proving on live traffic what replacing NSX changes. Ignored
	// when NSXCompat is on.
	NSXShadow bool
}

// policy is the immutable snapshot behind Table.pol.
type policy struct {
	Policy
	set *profileSet
}

// Table is a connection-tracking table made of single-writer shards.
//
// Each Shard is owned by one goroutine (a data-plane worker): only that
// goroutine calls the Shard's packet methods. Table methods are for the
// control plane and may be called from any goroutine at any time; those that
// read flows (Dump, Explain, Flush) hand a request to each shard's owner,
// which serves it in bounded chunks between batches (Shard.Serve).
type Table struct {
	shards    []*Shard
	pol       atomic.Pointer[policy]
	nat       atomic.Pointer[[][16]byte] // interned NAT addresses; index 0 unused
	natMu     sync.Mutex                 // serializes InternAddr (control plane)
	cap       int
	huge      bool
	seed      maphash.Seed // flow-index hash seed, random per table
	shardSeed uint64       // shard hash seed, random per table, shared by all its workers
	evMu      sync.Mutex   // one event reader at a time
	evFanIn   spsc.FanIn   // ReadEvents' reader state (under evMu)
}

// New allocates a table and all its storage.
func New(cfg Config) (*Table, error) {
	if cfg.MaxFlows == 0 {
		cfg.MaxFlows = 1 << 20
	}
	if cfg.Shards == 0 {
		cfg.Shards = 1
	}
	if cfg.HistorySize == 0 {
		cfg.HistorySize = 16384
	}
	if cfg.EventRingSize == 0 {
		cfg.EventRingSize = 4096
	}
	if cfg.Destinations == 0 {
		cfg.Destinations = DefaultDestinations
	}
	switch {
	case cfg.Shards < 1 || cfg.Shards > 255:
		return nil, errors.New("conntrack: shards must be between 1 and 255")
	case cfg.MaxFlows < 64*cfg.Shards || cfg.MaxFlows > 1<<30:
		return nil, errors.New("conntrack: max_flows must be between 64 per shard and 2^30")
	case cfg.HistorySize < 0 || cfg.EventRingSize < 1:
		return nil, errors.New("conntrack: history and event ring sizes must be positive")
	case cfg.Destinations > 1<<20:
		return nil, errors.New("conntrack: at most 2^20 destinations per shard")
	}
	t := &Table{seed: maphash.MakeSeed(), shardSeed: randomSeed()}
	if err := t.SetPolicy(cfg.Policy); err != nil {
		return nil, err
	}
	empty := make([][16]byte, 1)
	t.nat.Store(&empty)
	per := cfg.MaxFlows / cfg.Shards
	t.cap = per * cfg.Shards
	t.huge = true
	for i := 0; i < cfg.Shards; i++ {
		s, err := newShard(t, i, per, cfg)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.huge = t.huge && s.memF.huge
		t.shards = append(t.shards, s)
	}
	if cfg.Logf != nil {
		where := "hugepages"
		switch {
		case !t.shards[0].memF.mmap:
			where = "the Go heap"
		case !t.huge:
			where = "normal pages (no hugepages reserved; see scripts/hugepages.sh)"
		}
		cfg.Logf("conntrack: %d flows in %d shards, %d MiB of flow storage and index in %s",
			t.cap, cfg.Shards, t.MemoryBytes()>>20, where)
	}
	return t, nil
}

// Close releases the table's storage. No shard may be in use.
func (t *Table) Close() {
	for _, s := range t.shards {
		s.memF.free()
		s.memI.free()
		s.flows, s.ix.e = nil, nil
	}
}

// Shards returns the number of shards.
func (t *Table) Shards() int { return len(t.shards) }

// Shard returns shard i, to be owned by one worker.
func (t *Table) Shard(i int) *Shard { return t.shards[i] }

// Capacity returns the number of flow slots.
func (t *Table) Capacity() int { return t.cap }

// Hugepages reports whether all flow storage is on hugepages.
func (t *Table) Hugepages() bool { return t.huge }

// MemoryBytes returns the bytes of flow storage plus index, all shards.
func (t *Table) MemoryBytes() int {
	n := 0
	for _, s := range t.shards {
		n += len(s.flows)*flowSize + len(s.ix.e)*8
	}
	return n
}

// SetPolicy validates p and swaps it in whole; on error nothing changes.
// Workers see the new policy from their next packet; existing flows keep
// their profile index (falling back to profile 0 if it no longer exists).
func (t *Table) SetPolicy(p Policy) error {
	set, err := newProfileSet(p.Profiles)
	if err != nil {
		return err
	}
	p.Profiles = append([]Profile(nil), p.Profiles...)
	t.pol.Store(&policy{Policy: p, set: set})
	return nil
}

// ValidatePolicy checks p as SetPolicy would, changing nothing.
func ValidatePolicy(p Policy) error {
	_, err := newProfileSet(p.Profiles)
	return err
}

// Policy returns the current policy.
func (t *Table) Policy() Policy { return t.pol.Load().Policy }

// ProfileIndex returns the index of the named profile in the current policy.
func (t *Table) ProfileIndex(name string) (uint8, bool) {
	for i, n := range t.pol.Load().set.names {
		if n == name {
			return uint8(i), true
		}
	}
	return 0, false
}

// InternAddr returns the small index under which flows store the translated
// address a (SNAT pools call it when configured). Indices are never reused;
// at most 65,535 addresses. Control plane only.
func (t *Table) InternAddr(a netip.Addr) (uint16, error) {
	t.natMu.Lock()
	defer t.natMu.Unlock()
	b := a.As16()
	cur := *t.nat.Load()
	for i := 1; i < len(cur); i++ {
		if cur[i] == b {
			return uint16(i), nil
		}
	}
	if len(cur) >= 1<<16 {
		return 0, errors.New("conntrack: more than 65535 NAT addresses")
	}
	next := append(append(make([][16]byte, 0, len(cur)+1), cur...), b)
	t.nat.Store(&next)
	return uint16(len(cur)), nil
}

// InternAddrs interns every address of as in one batch (the table of
// interned addresses is copied once, not once per address) and returns
// their indices, in as's order; an address already interned keeps its
// index, and one given twice gets one index. All or nothing: if the table
// would pass 65,535 addresses nothing is interned. Control plane only.
func (t *Table) InternAddrs(as []netip.Addr) ([]uint16, error) {
	t.natMu.Lock()
	defer t.natMu.Unlock()
	cur := *t.nat.Load()
	idx, add := internPlan(cur, as)
	if len(cur)+len(add) > 1<<16 {
		return nil, errors.New("conntrack: more than 65535 NAT addresses")
	}
	if len(add) > 0 {
		next := append(append(make([][16]byte, 0, len(cur)+len(add)), cur...), add...)
		t.nat.Store(&next)
	}
	return idx, nil
}

// CheckInternAddrs reports whether InternAddrs(as) would succeed now,
// changing nothing (for dry runs).
func (t *Table) CheckInternAddrs(as []netip.Addr) error {
	t.natMu.Lock()
	defer t.natMu.Unlock()
	cur := *t.nat.Load()
	if _, add := internPlan(cur, as); len(cur)+len(add) > 1<<16 {
		return errors.New("conntrack: more than 65535 NAT addresses")
	}
	return nil
}

// internPlan returns the index each of as would have after interning it in
// cur, and the addresses to append to cur for that.
func internPlan(cur [][16]byte, as []netip.Addr) (idx []uint16, add [][16]byte) {
	have := make(map[[16]byte]int, len(cur)+len(as))
	for i := 1; i < len(cur); i++ {
		have[cur[i]] = i
	}
	idx = make([]uint16, len(as))
	for j, a := range as {
		b := a.As16()
		i, ok := have[b]
		if !ok {
			i = len(cur) + len(add)
			have[b] = i
			add = append(add, b)
		}
		idx[j] = uint16(i) // truncated only past the limit, which callers refuse
	}
	return idx, add
}

// InternedAddrs returns how many addresses are interned.
func (t *Table) InternedAddrs() int { return len(*t.nat.Load()) - 1 }

// NATAddr returns the address interned under i (the zero Addr for 0).
func (t *Table) NATAddr(i uint16) netip.Addr {
	cur := *t.nat.Load()
	if i == 0 || int(i) >= len(cur) {
		return netip.Addr{}
	}
	return netip.AddrFrom16(cur[i]).Unmap()
}

// NATAddr16 returns the address interned under i in 16-byte form
// (IPv4-mapped); zero for an unknown index. Any goroutine, no allocation.
func (t *Table) NATAddr16(i uint16) [16]byte {
	cur := *t.nat.Load()
	if int(i) >= len(cur) {
		return [16]byte{}
	}
	return cur[i]
}

// ShardOfSrc returns the shard that owns the flow of a packet with key k
// that arrived from the inside: the shard of its source endpoint
// (ShardOfEndpoint). ShardOfDst is its counterpart for a packet from the
// outside. A flow is owned by the shard of its inside endpoint, so both
// directions of an untranslated flow land on one shard (the inside
// endpoint is the source one way and the destination the other), and so
// do all the flows of one inside endpoint, whatever their remote ends: the
// snat package keeps an endpoint's mapping there and picks translated
// ports whose endpoint lands on the same shard. Safe from any goroutine;
// it never allocates.
func (t *Table) ShardOfSrc(k *Key) int {
	return t.ShardOfEndpoint(&k.Src, k.SrcPort, k.Proto, k.Zone)
}

// ShardOfDst returns the shard that owns the flow of a packet with key k
// that arrived from the outside: the shard of its destination endpoint
// (see ShardOfSrc).
func (t *Table) ShardOfDst(k *Key) int {
	return t.ShardOfEndpoint(&k.Dst, k.DstPort, k.Proto, k.Zone)
}

// ShardOfEndpoint returns the shard of an endpoint: a keyed hash (XXH64
// under the table's secret shard seed) of address, port (ICMP echo
// identifier), protocol and zone, reduced to the number of shards. Every
// worker of the table uses it for the hand-off. Safe from any goroutine;
// it never allocates.
func (t *Table) ShardOfEndpoint(addr *[16]byte, port uint16, proto, zone uint8) int {
	if len(t.shards) == 1 {
		return 0
	}
	hi, _ := bits.Mul64(endpointHash(addr, port, proto, zone, t.shardSeed), uint64(len(t.shards)))
	return int(hi)
}

// Stats sums the counters of every shard. Safe at any time.
func (t *Table) Stats() Stats {
	var s Stats
	for _, sh := range t.shards {
		sh.ctr.addTo(&s)
		s.Flows += sh.live.Load()
		s.Capacity += int64(len(sh.flows))
	}
	return s
}

// ShardStats returns the counters of shard i alone.
func (t *Table) ShardStats(i int) Stats {
	var s Stats
	sh := t.shards[i]
	sh.ctr.addTo(&s)
	s.Flows = sh.live.Load()
	s.Capacity = int64(len(sh.flows))
	return s
}

// Len returns the number of live flows (entries not yet swept included).
func (t *Table) Len() int {
	n := int64(0)
	for _, s := range t.shards {
		n += s.live.Load()
	}
	return int(n)
}

// ReadEvents moves queued events of the shards into out and returns how
// many, every shard getting a fair share of out (spsc.Drain: a busy shard
// does not make the others lose events). One reader at a time (it
// serializes callers).
func (t *Table) ReadEvents(out []Event) int {
	t.evMu.Lock()
	defer t.evMu.Unlock()
	return spsc.Drain(&t.evFanIn, out, len(t.shards), func(i int, dst []Event) int {
		return t.shards[i].events.Read(dst)
	})
}

// SkipEvents discards the events queued so far.
func (t *Table) SkipEvents() {
	t.evMu.Lock()
	defer t.evMu.Unlock()
	for _, s := range t.shards {
		s.events.Skip()
	}
}

// Shard is one single-writer partition of a Table. All methods except those
// documented otherwise must be called by the shard's owner goroutine only.
type Shard struct {
	t     *Table
	id    uint8
	flows []flow
	ix    index
	memF  region
	memI  region

	freeHead uint32 // slot+1 of the first free slot, 0 = none (threaded through flow.end[0])
	hiwater  uint32 // slots [0, hiwater) have been handed out at least once
	sweep    uint32 // next slot the expiry sweep visits
	evictAt  uint32 // next slot eviction looks at

	hist       history
	events     spsc.Ring[Event] // lossy: a full ring loses events (counted), never blocks
	ctr        counters
	live       atomic.Int64
	mbox       mailbox.Mailbox[request] // pending control request, served by the owner
	ctlMu      sync.Mutex               // serializes control requests to this shard (control side)
	onRelease  ReleaseFunc              // called for every flow released (SNAT port bookkeeping)
	sink       uint64                   // keeps TrackBatch's prefetching loads alive
	hs         [MaxBatch]uint64         // TrackBatch's hashes (a field: not zeroed per call)
	pos        [MaxBatch]int32          // TrackBatch's probe start per packet
	prefetched int                      // packets prepared by the last Prefetch
	removesAt  uint64                   // ix.removes when they were

	dests   destTable      // per-destination signals (dest.go)
	expired expiredCache   // recently expired flows, to count their late packets
	late    lateNote       // the last late packet of an expired flow (LateExpired)
	nsx     nsxCache       // closing entries only NSX would hold (nsxshadow.go)
	idle    idleResetQueue // expired flows for the data plane to reset (idlereset.go)
}

func newShard(t *Table, id, n int, cfg Config) (*Shard, error) {
	s := &Shard{t: t, id: uint8(id)}
	var err error
	if s.memF, err = allocRegion(n*flowSize, cfg.Memory); err != nil {
		return nil, err
	}
	s.flows = flowsOf(s.memF, n)
	if s.memI, err = allocRegion(3*n*8, cfg.Memory); err != nil {
		s.memF.free()
		return nil, err
	}
	s.ix.e = entriesOf(s.memI, 3*n)
	s.hist.ring = make([]Incarnation, cfg.HistorySize)
	s.events.Init(cfg.EventRingSize)
	s.dests.init(cfg.Destinations, t.shardSeed^0x9e3779b97f4a7c15)
	return s, nil
}

// ID returns the shard's index in its table. Safe from any goroutine.
func (s *Shard) ID() int { return int(s.id) }

func (s *Shard) drop(r drop.Reason) { s.ctr.drops[r].Add(1) }
func (s *Shard) count(c Counter)    { s.ctr.ctr[c].Add(1) }

// natAddrs returns the current interned address list.
func (s *Shard) natAddrs() [][16]byte { return *s.t.nat.Load() }

// replyKey returns the reply-direction key of f.
func (s *Shard) replyKey(f *flow) Key {
	r := Key{Src: f.key.Dst, Dst: f.key.Src, SrcPort: f.key.DstPort, DstPort: f.key.SrcPort,
		Proto: f.key.Proto, Zone: f.key.Zone}
	if f.natAddr != 0 {
		r.Dst = s.natAddrs()[f.natAddr]
		r.DstPort = f.natPort
	}
	return r
}

// matches reports whether k is f's key in direction d. For the reply
// direction it compares k with the reply key implied by f (original key
// reversed, destination translated) word by word, without building it.
func (s *Shard) matches(f *flow, d Dir, k *Key) bool {
	if d == Original {
		return f.key.equal(k)
	}
	o0, o1, o2, o3, _, o5 := f.key.words()
	k0, k1, k2, k3, _, k5 := k.words()
	if (k0^o2)|(k1^o3)|uint64(k5^o5) != 0 || k.SrcPort != f.key.DstPort {
		return false
	}
	if f.natAddr == 0 {
		return k2 == o0 && k3 == o1 && k.DstPort == f.key.SrcPort
	}
	na := &s.natAddrs()[f.natAddr]
	return k.DstPort == f.natPort &&
		k2 == *(*uint64)(unsafe.Pointer(&na[0])) && k3 == *(*uint64)(unsafe.Pointer(&na[8]))
}

// hash returns the table hash of k.
func (s *Shard) hash(k *Key) uint64 { return hashKey(k, s.t.seed) }

// find returns the slot and direction of key k (hash h), or ok=false. An
// entry whose timer has run out is released on the spot and reported absent.
func (s *Shard) find(k *Key, h uint64, now Time) (slot uint32, d Dir, ok bool) {
	return s.findFrom(k, h, s.ix.home(uint32(h>>32)), now)
}

// findFrom is find starting the probe at index position i, which must lie
// on the key's probe run at or before its entry (TrackBatch passes the first
// position whose tag matched). It looks at most maxProbe positions: no
// entry lies further from its home.
func (s *Shard) findFrom(k *Key, h uint64, i int, now Time) (slot uint32, d Dir, ok bool) {
	e := s.ix.e
	tag := uint32(h >> 32)
	for range maxProbe {
		x := e[i]
		if x == 0 {
			return 0, 0, false
		}
		if entryTag(x) == tag {
			slot, d = entrySlotOf(x), entryDirOf(x)
			f := &s.flows[slot]
			if s.matches(f, d, k) {
				if expired(f.expires, ticks(now)) {
					s.release(slot, CloseExpired, now)
					return 0, 0, false
				}
				return slot, d, true
			}
		}
		if i++; i == len(e) {
			i = 0
		}
	}
	return 0, 0, false
}

// Lookup finds the live flow with key k in either direction. It changes no
// flow state (an expired entry is released). Owner only.
func (s *Shard) Lookup(k *Key, now Time) (Ref, Dir, bool) {
	slot, d, ok := s.find(k, s.hash(k), now)
	return Ref(slot), d, ok
}

// Ref names a live flow within its shard, until the flow is released.
type Ref uint32

// NAT returns the interned reply-direction address (0 if untranslated) and
// port of flow r.
func (s *Shard) NAT(r Ref) (addr uint16, port uint16) {
	f := &s.flows[r]
	return f.natAddr, f.natPort
}

// Key returns flow r's original-direction key. The pointer is into flow
// storage: valid until the flow is released. Owner only.
func (s *Shard) Key(r Ref) *Key { return &s.flows[r].key }

// Info returns a snapshot of flow r. Owner only.
func (s *Shard) Info(r Ref, now Time) FlowInfo { return s.info(uint32(r), now) }

// alloc takes a free slot, evicting under pressure; ok=false if none.
func (s *Shard) alloc(now Time) (uint32, bool) {
	if s.freeHead != 0 {
		slot := s.freeHead - 1
		s.freeHead = s.flows[slot].end[0]
		s.flows[slot].end[0] = 0
		return slot, true
	}
	if int(s.hiwater) < len(s.flows) {
		s.hiwater++
		return s.hiwater - 1, true
	}
	return s.evict(now)
}

// evictScan bounds the slots one eviction attempt examines.
const evictScan = 64

// evict frees one slot under table pressure, from one bounded pass over
// evictScan slots from a rotating cursor. It takes the first entry that has
// expired; else the first that is closing (TIME_WAIT, CLOSE, LAST_ACK) or
// unanswered UDP/ICMP whose timer has run at least half its course; else
// the oldest unanswered SYN_SENT entry of the pass (Linux's early drop of
// unassured entries: a flood of SYNs to black-holed ports must not hold the
// table for the SYN_SENT timeout). It never takes an established flow. Each
// removal is counted (evicted, and evicted_syn_sent for a SYN_SENT entry)
// and reported (EvEvicted).
//
// The cursor stops just past the slot it freed, and the new flow takes that
// slot, right behind the cursor: under steady pressure the cursor sweeps
// the table like a clock hand and an unanswered SYN_SENT entry lives about
// one sweep (as many new flows as the shard has slots), oldest first.
func (s *Shard) evict(now Time) (uint32, bool) {
	nt := ticks(now)
	pol := s.t.pol.Load()
	n := uint32(len(s.flows))
	victim, found := uint32(0), false
	syn, synFound := uint32(0), false
	slot := s.evictAt
	for i := 0; i < evictScan; i++ {
		if i > 0 {
			if slot++; slot == n {
				slot = 0
			}
		}
		f := &s.flows[slot]
		switch {
		case f.state == StateNone:
		case expired(f.expires, nt):
			s.evictAt = nextSlot(slot, n)
			s.release(slot, CloseExpired, now)
			return s.alloc(now)
		case found:
		case evictable(f, nt, pol):
			victim, found = slot, true
		case f.state == TCPSynSent && (!synFound || int32(f.expires-s.flows[syn].expires) < 0):
			syn, synFound = slot, true // the oldest: the earliest deadline, all with the SYN_SENT timer
		}
	}
	switch {
	case found:
	case synFound:
		victim = syn
		s.count(CtrEvictedSynSent)
	default:
		s.evictAt = nextSlot(slot, n)
		return 0, false
	}
	s.evictAt = nextSlot(victim, n)
	s.release(victim, CloseEvicted, now)
	return s.alloc(now)
}

func nextSlot(slot, n uint32) uint32 {
	if slot++; slot == n {
		return 0
	}
	return slot
}

func evictable(f *flow, nt uint32, pol *policy) bool {
	switch f.state {
	case TCPTimeWait, TCPClose, TCPLastAck:
		return true
	case UDPFirst, UDPSingle, ICMPFirst:
		// Unanswered: evictable once half its timer has run.
		to := pol.set.timeout(f.profile, f.state)
		return int32(f.expires-nt) < int32(to/2)
	}
	return false
}

// release ends the incarnation in slot (recording it in history and the
// event ring), removes both index entries and frees the slot.
func (s *Shard) release(slot uint32, why CloseReason, now Time) {
	f := &s.flows[slot]
	s.record(f, why, now)
	rk := s.replyKey(f)
	h, rh := s.hash(&f.key), s.hash(&rk)
	switch why {
	case CloseExpired:
		s.count(CtrExpired)
		expiry := IdleSilent
		if s.queueIdleReset(f, &rk, s.t.pol.Load()) {
			expiry = IdleReset
		}
		s.emitExpired(f, expiry, now)
		s.sigEnded(f, h, rh, true)
	case CloseEvicted:
		s.count(CtrEvicted)
		s.emit(f, EvEvicted, drop.None, Original, 0, now)
		s.sigEnded(f, h, rh, false)
	case CloseFlushed:
		s.count(CtrFlushed)
		s.emit(f, EvFlushed, drop.None, Original, 0, now)
	case CloseDeleted:
		s.count(CtrDeleted)
		s.emit(f, EvDeleted, drop.None, Original, 0, now)
	case CloseReplaced:
		s.count(CtrReplaced)
		s.emit(f, EvReplaced, drop.None, Original, 0, now)
	}
	if s.onRelease != nil {
		s.onRelease(&f.key, Translation{Addr: f.natAddr, Port: f.natPort}, f.carried(), now)
	}
	s.ix.remove(h, slot, Original)
	s.ix.remove(rh, slot, Reply)
	s.freeSlot(slot)
	s.live.Add(-1)
}

// freeSlot clears slot, which no index entry names, and puts it on the
// free list.
func (s *Shard) freeSlot(slot uint32) {
	f := &s.flows[slot]
	*f = flow{}
	f.end[0] = s.freeHead
	s.freeHead = slot + 1
}

// ReleaseFunc is told about every flow a shard releases (expired, evicted,
// flushed, deleted, replaced): its original key and translation, whether it
// carried a connection (see below), at time now. It runs on the owner's
// goroutine, inside the packet path: it must be quick and must not allocate
// or call back into the shard.
//
// A flow carried a connection when the far side took part in it: a TCP
// flow that reached ESTABLISHED, in this or an earlier incarnation of the
// tuple (or was closed by an RST after the SYN-ACK was seen), a UDP flow
// or ICMP echo that saw a reply. SYN_SENT, SYN_SENT2 and SYN_RECV
// flows, flows reset in SYN_SENT and unanswered datagrams did not: no
// state on the far side can still send toward their translated port.
type ReleaseFunc func(orig *Key, nat Translation, carried bool, now Time)

// carried reports whether f carried a connection (ReleaseFunc).
func (f *flow) carried() bool {
	switch f.state {
	case TCPEstablished, TCPFinWait, TCPCloseWait, TCPLastAck, TCPTimeWait, UDPMultiple, ICMPReplied:
		return true
	case TCPClose:
		// The reply side is initialized by the SYN-ACK (initSide sets
		// maxWin to at least 1): an RST before it ended a handshake.
		return f.gen > 0 || f.maxWin[Reply] != 0
	case TCPSynSent, TCPSynSent2, TCPSynRecv:
		// An earlier incarnation of the tuple ended closing (N2): it
		// may have carried one.
		return f.gen > 0
	}
	return false
}

// OnRelease installs fn as the shard's release hook (the SNAT allocator uses
// it to quarantine released ports). Owner only, before traffic starts.
func (s *Shard) OnRelease(fn ReleaseFunc) { s.onRelease = fn }

// Delete ends flow r (for instance when policy denies a reopened flow).
func (s *Shard) Delete(r Ref, now Time) { s.release(uint32(r), CloseDeleted, now) }

// record pushes f's current incarnation into the history ring.
func (s *Shard) record(f *flow, why CloseReason, now Time) {
	in := s.incarnation(f, now)
	in.Reason = why
	in.Closed = now
	s.hist.push(&in)
}

func (s *Shard) incarnation(f *flow, now Time) Incarnation {
	return Incarnation{
		Orig: f.key, Reply: s.replyKey(f), Gen: f.gen, Creator: f.creator(), State: f.state,
		ISN: f.isn, Packets: f.pkts, Rule: f.rule, Opened: Time(f.created) * Second,
	}
}

// emit records an event about f (or, when f is nil, about key k of a packet).
func (s *Shard) emit(f *flow, kind EventKind, r drop.Reason, d Dir, tcpFlags uint8, now Time) {
	e := Event{Time: now, Key: f.key, NATPort: f.natPort, NATAddr: f.natAddr, Gen: f.gen,
		Kind: kind, Reason: r, State: f.state, Dir: d, Flags: tcpFlags, Shard: s.id}
	if kind == EvExpired || kind == EvEvicted {
		e.Idle = f.idleMs(s.t.pol.Load(), now)
	}
	if !s.events.Put(&e) {
		s.count(CtrEventsLost)
	}
}

// emitExpired records the expiry of f, which edge resets or not.
func (s *Shard) emitExpired(f *flow, expiry IdleExpiry, now Time) {
	e := Event{Time: now, Key: f.key, NATPort: f.natPort, NATAddr: f.natAddr, Gen: f.gen,
		Kind: EvExpired, State: f.state, Shard: s.id, Expiry: expiry, Idle: f.idleMs(s.t.pol.Load(), now)}
	if !s.events.Put(&e) {
		s.count(CtrEventsLost)
	}
}

func (s *Shard) emitPacket(p *Packet, kind EventKind, r drop.Reason, now Time) {
	e := Event{Time: now, Key: p.Key, Kind: kind, Reason: r, Flags: p.Flags, Shard: s.id}
	if !s.events.Put(&e) {
		s.count(CtrEventsLost)
	}
}

// Expire runs the incremental expiry sweep: it visits at most budget slots
// from where the last call stopped and releases the flows whose timer has
// run out. It returns the number released. Call it from the owner's loop
// (each batch or idle tick); a full pass over the table costs
// capacity/budget calls. Lookups already treat expired entries as absent, so
// the sweep only reclaims memory and reports expiry events.
func (s *Shard) Expire(now Time, budget int) int {
	n := s.hiwater
	if n == 0 {
		return 0
	}
	nt := ticks(now)
	released := 0
	for ; budget > 0; budget-- {
		if s.sweep >= n {
			s.sweep = 0
		}
		slot := s.sweep
		s.sweep++
		f := &s.flows[slot]
		if f.state != StateNone && expired(f.expires, nt) {
			s.release(slot, CloseExpired, now)
			released++
		}
	}
	return released
}

// Len returns the shard's live flow count. Safe from any goroutine.
func (s *Shard) Len() int { return int(s.live.Load()) }

// randomSeed reads 8 bytes from getrandom(2) (crypto/rand would pull fmt
// into the hot-path packages through math/big).
func randomSeed() uint64 {
	var b [8]byte
	_, _ = unix.Getrandom(b[:], 0)
	return binary.LittleEndian.Uint64(b[:])
}
