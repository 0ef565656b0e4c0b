package snat

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/internal/mailbox"
	"github.com/edgegw/edge/internal/spsc"
)

const (
	// RandomProbes is how many random ports Allocate tries before falling
	// back to a linear scan (RFC 6056 section 3.3.2, then 3.3.1).
	RandomProbes = 64
	// ScanProbes is how many ports of the destination's pass over the
	// range Allocate examines after RandomProbes random ones failed (and
	// the port last given back toward it without quarantine, if any).
	ScanProbes = 256
	// ReuseProbes is how many entries of the destination's quarantine list
	// Allocate looks at for the least recently released port.
	ReuseProbes = 64
	// MaxProbes bounds the candidate ports one Allocate examines, whatever
	// the quarantine holds: beyond it the flow is refused
	// (drop.SNATProbeLimit).
	MaxProbes = RandomProbes + 1 + ScanProbes + ReuseProbes
	// fullRetry is how long a destination found exhausted by a full pass
	// is refused without scanning again while none of its ports was
	// released.
	fullRetry = conntrack.Second
	// recountEvery is how long the counts of a full pass are trusted to
	// take quarantined ports without looking for a free one.
	recountEvery = 10 * conntrack.Second
)

// NAT is source NAT over a conntrack table: the configuration in force,
// an immutable snapshot shared read-only by the workers and replaced whole
// by Reconfigure, and one Allocator per shard. Its methods are safe from
// any goroutine.
type NAT struct {
	table   *conntrack.Table
	pairKey [2]uint64
	cur     atomic.Pointer[settings]
	// known lists, by interned index, every translated address any of the
	// NAT's configurations has had (zero: not one of ours). It only grows,
	// so a flow translated to an address a later configuration dropped is
	// still released (its port counted out and quarantined).
	known atomic.Pointer[[][16]byte]
	// addrs maps every address of known to its index (addrIndex).
	addrs  atomic.Pointer[map[[16]byte]uint16]
	sizes  sizes      // the tables' sizes, fixed at New
	mu     sync.Mutex // serializes Intern and Install (interning, n.known)
	allocs []*Allocator
	evMu   sync.Mutex // one event reader at a time
	evFan  spsc.FanIn // ReadEvents' reader state (under evMu)
}

// sizes are the Config fields that size preallocated tables: fixed at New.
type sizes struct{ quarantinePorts, destinations, eventRing, mappings int }

// settings is one immutable configuration snapshot (Snapshot's contents).
type settings struct {
	off           bool   // SNAT turned off: new flows are not translated
	cfg           Config // as resolved (defaults applied)
	pools         []pool
	names         []string
	portStart     uint16
	nports        uint32
	hold          conntrack.Time
	mapHold       conntrack.Time
	keepEchoID    bool
	forwardNoAddr bool // Config.NoAddress is NoAddressForward
}

type pool struct {
	v4, v6 []natAddr
	b      behaviour
}

type natAddr struct {
	idx  uint16
	addr [16]byte
}

// ErrFixedSize is wrapped by Reconfigure's error when a field that sizes
// the allocators' preallocated tables (QuarantinePorts, Destinations,
// EventRingSize) differs from New's: those need a new NAT.
var ErrFixedSize = errors.New("sized at start; cannot change on a running NAT")

type fixedErr struct {
	field     string
	got, want int
}

func (e *fixedErr) Error() string {
	return "snat: " + e.field + ": " + strconv.Itoa(e.got) + ": " + ErrFixedSize.Error() + " (" + strconv.Itoa(e.want) + ")"
}

func (e *fixedErr) Unwrap() error { return ErrFixedSize }

// New validates cfg, interns its addresses in t, and makes one Allocator per
// shard of t, installing each as its shard's release hook
// (conntrack.Shard.OnRelease). Call it before the workers start, once per
// table, and do not install other release hooks on t's shards.
func New(cfg Config, t *conntrack.Table) (*NAT, error) {
	r, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	n := newNAT(t, &r.cfg)
	s, err := n.settings(r)
	if err != nil {
		return nil, err
	}
	n.cur.Store(s)
	return n, nil
}

// NewOff is New with SNAT turned off (Reconfigure may turn it on later):
// Allocate translates nothing, and the allocators' tables take the
// default sizes.
func NewOff(t *conntrack.Table) *NAT {
	var c Config
	_ = size(&c.QuarantinePorts, DefaultQuarantinePorts, MaxQuarantinePorts, "")
	_ = size(&c.Destinations, DefaultDestinations, MaxDestinations, "")
	_ = size(&c.EventRingSize, DefaultEventRingSize, 1<<20, "")
	_ = size(&c.Mappings, DefaultMappings, MaxMappings, "")
	n := newNAT(t, &c)
	n.cur.Store(&settings{off: true})
	return n
}

func newNAT(t *conntrack.Table, c *Config) *NAT {
	n := &NAT{table: t, sizes: sizes{c.QuarantinePorts, c.Destinations, c.EventRingSize, c.Mappings}}
	var seed [32]byte
	randomBytes(seed[:])
	n.pairKey = [2]uint64{binary.LittleEndian.Uint64(seed[0:]), binary.LittleEndian.Uint64(seed[8:])}
	empty := make([][16]byte, 0)
	n.known.Store(&empty)
	noAddrs := map[[16]byte]uint16{}
	n.addrs.Store(&noAddrs)
	for i := 0; i < t.Shards(); i++ {
		a := newAllocator(n, c, i)
		n.allocs = append(n.allocs, a)
		t.Shard(i).OnRelease(a.Release)
	}
	return n
}

// Snapshot is a validated configuration ready to be installed
// (NAT.Prepare, NAT.Install). Its addresses are not interned yet.
type Snapshot struct {
	n *NAT
	r *resolved // nil: SNAT off
	s *settings // r's settings once its addresses are interned (Intern)
}

// Prepare validates cfg whole for a running NAT (nil: SNAT off) and
// returns it ready to Install. It has no side effect at all (a dry run
// may call it as often as it likes): it checks that the table can intern
// cfg's addresses but interns none; Install does. Changing a field that
// sizes preallocated tables fails with an error wrapping ErrFixedSize.
func (n *NAT) Prepare(cfg *Config) (*Snapshot, error) {
	if cfg == nil {
		return &Snapshot{n: n}, nil
	}
	r, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name      string
		got, want int
	}{
		{"quarantine_ports", r.cfg.QuarantinePorts, n.sizes.quarantinePorts},
		{"destinations", r.cfg.Destinations, n.sizes.destinations},
		{"event_ring_size", r.cfg.EventRingSize, n.sizes.eventRing},
		{"mappings", r.cfg.Mappings, n.sizes.mappings},
	} {
		if f.got != f.want {
			return nil, &fixedErr{field: f.name, got: f.got, want: f.want}
		}
	}
	if err := n.table.CheckInternAddrs(r.addrs()); err != nil {
		return nil, errors.New("snat: " + err.Error())
	}
	return &Snapshot{n: n, r: r}, nil
}

// addrs lists r's addresses, pool after pool.
func (r *resolved) addrs() []netip.Addr {
	var out []netip.Addr
	for _, p := range r.pools {
		out = append(out, p...)
	}
	return out
}

// settings interns r's addresses in the table, all in one batch, adds them
// to n.known (one copy of it) and returns r's settings. Callers serialize
// it (New before anyone else sees n, Intern and Install under n.mu). On
// error nothing changed.
func (n *NAT) settings(r *resolved) (*settings, error) {
	s := &settings{
		cfg:           r.cfg,
		portStart:     r.cfg.Ports.Start,
		nports:        uint32(r.cfg.Ports.End-r.cfg.Ports.Start) + 1,
		hold:          r.quarantine,
		mapHold:       r.mapTimeout,
		keepEchoID:    r.cfg.KeepEchoID,
		forwardNoAddr: r.cfg.NoAddress == NoAddressForward,
	}
	idx, err := n.table.InternAddrs(r.addrs())
	if err != nil {
		return nil, errors.New("snat: " + err.Error())
	}
	old := *n.known.Load()
	top := len(old)
	for _, i := range idx {
		top = max(top, int(i)+1)
	}
	known := make([][16]byte, top)
	copy(known, old)
	k := 0
	for i, addrs := range r.pools {
		p := pool{b: r.behaviour[i]}
		for _, a := range addrs {
			na := natAddr{idx: idx[k], addr: a.As16()}
			k++
			known[na.idx] = na.addr
			if a.Is4() {
				p.v4 = append(p.v4, na)
			} else {
				p.v6 = append(p.v6, na)
			}
		}
		s.pools = append(s.pools, p)
		if r.cfg.Mode == Pools {
			s.names = append(s.names, r.cfg.Pools[i].Name)
		} else {
			s.names = append(s.names, "automap")
		}
	}
	// Published before the settings that use the addresses: a worker
	// releasing a flow translated under s finds its address known.
	index := make(map[[16]byte]uint16, len(known))
	for i, a := range known {
		if a != [16]byte{} {
			index[a] = uint16(i)
		}
	}
	n.addrs.Store(&index)
	n.known.Store(&known)
	return s, nil
}

// Intern interns s's addresses in the table, in one batch, and makes them
// known to n (a release of a flow translated to one is counted), readying
// s so that Install cannot fail. It is Install's only step that can fail
// (only if something else interned addresses since Prepare and the table
// is full); its only lasting effect is the interned addresses (indices
// are never reused; an unused one costs 16 bytes), so a caller that must
// not change anything on failure calls it before any other change.
func (n *NAT) Intern(s *Snapshot) error {
	if s.n != n {
		panic("snat: Intern of another NAT's snapshot")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.intern(s)
}

func (n *NAT) intern(s *Snapshot) error {
	if s.r == nil || s.s != nil {
		return nil
	}
	st, err := n.settings(s.r)
	if err != nil {
		return err
	}
	s.s = st
	return nil
}

// Install makes s the configuration in force, interning its addresses
// first (Intern) unless that was done; it fails, changing nothing, only
// if interning does. Each allocator picks s up at its owner's next
// Allocate or Serve, so new flows use it from their worker's next batch
// at the latest. Existing flows keep the translation they have (it is
// stored in their conntrack entry) until they end, and their ports are
// then released and quarantined as before, whatever s says: a port outside
// s's range or an address no longer in a pool is simply never chosen
// again (its quarantine entry ages out, and it is not counted among the
// destination's quarantined ports). s must come from n.Prepare.
func (n *NAT) Install(s *Snapshot) error {
	if s.n != n {
		panic("snat: Install of another NAT's snapshot")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if s.r == nil {
		n.cur.Store(&settings{off: true})
		return nil
	}
	if err := n.intern(s); err != nil {
		return err
	}
	n.cur.Store(s.s)
	return nil
}

// Reconfigure is Prepare and Install: cfg (nil: SNAT off) is validated
// whole and, unless it fails, put in force.
func (n *NAT) Reconfigure(cfg *Config) error {
	s, err := n.Prepare(cfg)
	if err != nil {
		return err
	}
	return n.Install(s)
}

// Config returns the configuration in force, defaults applied, and false
// when SNAT is off.
func (n *NAT) Config() (Config, bool) {
	s := n.cur.Load()
	if s.off {
		return Config{}, false
	}
	c := s.cfg
	c.Pools = append([]Pool(nil), c.Pools...)
	return c, true
}

// randomBytes fills b from getrandom(2) (crypto/rand would pull fmt into
// the per-packet packages), falling back to the clock if that fails.
func randomBytes(b []byte) {
	if n, err := unix.Getrandom(b, 0); err == nil && n == len(b) {
		return
	}
	x := uint64(time.Now().UnixNano())
	for i := range b {
		x = x*6364136223846793005 + 1442695040888963407
		b[i] = byte(x >> 56)
	}
}

// Allocator returns shard i's allocator, to be owned by the worker that
// owns conntrack shard i.
func (n *NAT) Allocator(i int) *Allocator { return n.allocs[i] }

// PoolIndex returns the index of the named pool, for AllocateFrom. In
// automap mode the only pool is named "automap".
func (n *NAT) PoolIndex(name string) (int, bool) {
	for i, s := range n.cur.Load().names {
		if s == name {
			return i, true
		}
	}
	return 0, false
}

// Addr returns the translated address interned under i, as the natAddr
// argument of RewriteOriginal (IPv4 addresses IPv4-mapped), or the zero
// array if i is not one of n's addresses. It never allocates.
func (n *NAT) Addr(i uint16) [16]byte {
	if k := *n.known.Load(); int(i) < len(k) {
		return k[i]
	}
	return [16]byte{}
}

// addrIndex returns the interned index of translated address addr, if it
// is an address some configuration of n has had. Any goroutine; never
// allocates.
func (n *NAT) addrIndex(addr *[16]byte) (uint16, bool) {
	// The data plane asks for every packet from the inside (hairpin):
	// a few addresses (automap, a small pool) are compared in place,
	// cheaper than hashing the key.
	if k := *n.known.Load(); len(k) <= 8 {
		for i := range k {
			if k[i] == *addr && k[i] != [16]byte{} {
				return uint16(i), true
			}
		}
		return 0, false
	}
	i, ok := (*n.addrs.Load())[*addr]
	return i, ok
}

// IsAddr reports whether addr (16-byte form, IPv4 mapped) is a translated
// address of n: a packet from the inside toward it is hairpinned. Any
// goroutine; never allocates.
func (n *NAT) IsAddr(addr *[16]byte) bool {
	_, ok := n.addrIndex(addr)
	return ok
}

// NAT returns the NAT the allocator belongs to.
func (a *Allocator) NAT() *NAT { return a.n }

// ours reports whether i is an address some configuration of n has had.
func (n *NAT) ours(i uint16) bool {
	k := *n.known.Load()
	return int(i) < len(k) && k[i] != [16]byte{}
}

// pair picks the pool address for an inside source address: a keyed hash
// of the address alone, so one inside host keeps one outside address on
// every worker ("paired" pooling).
func (n *NAT) pair(src *[16]byte, count int) int {
	// Two rounds: an IPv4 address (IPv4-mapped) varies only in the top 32
	// bits of the second word, and one multiply-fold leaves the top bits of
	// its result (which choose the address below) poorly mixed: 64 hosts
	// of a /24 used only 2 of 4 addresses for about 1 key in 75.
	h := mix(binary.LittleEndian.Uint64(src[0:8])^n.pairKey[0], binary.LittleEndian.Uint64(src[8:16])^n.pairKey[1])
	h = mix(h^n.pairKey[0], 0x9e3779b97f4a7c15) // golden-ratio odd constant
	hi, _ := bits.Mul64(h, uint64(count))
	return int(hi)
}

// Stats sums the counters of every allocator. Safe at any time.
func (n *NAT) Stats() Stats {
	var s Stats
	for _, a := range n.allocs {
		a.ctr.addTo(&s)
	}
	return s
}

// ReadEvents moves queued events of the allocators into out and returns
// how many, every allocator getting a fair share of out (spsc.Drain). One
// reader at a time (it serializes callers).
func (n *NAT) ReadEvents(out []Event) int {
	n.evMu.Lock()
	defer n.evMu.Unlock()
	return spsc.Drain(&n.evFan, out, len(n.allocs), func(i int, dst []Event) int {
		return n.allocs[i].ev.Read(dst)
	})
}

// Allocator chooses translations for the new flows of one conntrack shard.
// It is owned by the shard's worker: Allocate, AllocateFrom, Abandon,
// Release and Serve must be called from that goroutine only (Release is
// called by conntrack itself, on that goroutine). Stats may be called from
// any goroutine; the control plane reads destinations through
// NAT.Destinations, which the owner serves from Serve.
type Allocator struct {
	n     *NAT
	c     *settings      // the configuration the owner uses (n.cur, picked up by refresh)
	since conntrack.Time // when c was picked up: full passes before it counted another range
	lo    uint16         // the port range the destination counts refer to (the last one in force;
	nr    uint32         // kept while SNAT is off): nr ports from lo
	t     *conntrack.Table
	s     *conntrack.Shard
	id    int
	multi bool // more than one shard: ports must be checked with ShardOf
	rng   rand.ChaCha8
	d     dests
	q     quarantine
	m     mappings
	now   conntrack.Time // the owner's last call's time (Abandon has none)
	ev    spsc.Ring[Event]
	ctr   counters
	mbox  mailbox.Mailbox[request]
	ctlMu sync.Mutex // serializes control requests (control side)
}

func newAllocator(n *NAT, cfg *Config, i int) *Allocator {
	a := &Allocator{n: n, t: n.table, s: n.table.Shard(i), id: i, multi: n.table.Shards() > 1, since: math.MinInt64}
	var seed [32]byte
	randomBytes(seed[:])
	a.rng.Seed(seed)
	var key hashKey
	for j := range key {
		key[j] = a.rng.Uint64()
	}
	a.d.init(cfg.Destinations, key)
	a.q.init(cfg.QuarantinePorts, conntrack.Time(DefaultQuarantine), key, &a.d)
	a.m.init(cfg.Mappings, key)
	// The scans for new mappings' ports start at a random place: mapped
	// ports cluster (kept inside ports: the hosts' ephemeral ranges).
	for i := range a.m.full {
		a.m.full[i].scan = uint32(a.rng.Uint64())
	}
	a.ev.Init(cfg.EventRingSize)
	return a
}

// Shard returns the index of the conntrack shard a serves.
func (a *Allocator) Shard() int { return a.id }

// Stats returns a's counters. Safe from any goroutine.
func (a *Allocator) Stats() Stats {
	var s Stats
	a.ctr.addTo(&s)
	return s
}

// below returns a uniformly random number in [0, n), n > 0 (Lemire's
// multiply-shift; the bias is below n/2^64).
func (a *Allocator) below(n uint32) uint32 {
	hi, _ := bits.Mul64(a.rng.Uint64(), uint64(n))
	return uint32(hi)
}

// Allocate is AllocateFrom(0, orig, now): a translation from the default
// pool.
func (a *Allocator) Allocate(orig *conntrack.Key, now conntrack.Time) (conntrack.Translation, drop.Reason) {
	return a.AllocateFrom(0, orig, now)
}

// refresh picks up the NAT's configuration in force if it changed since
// the owner last looked (one atomic load otherwise) and returns it. Full
// passes made under an earlier configuration are not trusted any more
// (they counted another range), and the quarantine time follows the new
// configuration (RFC 6888 REQ-8: it is configurable).
func (a *Allocator) refresh(now conntrack.Time) *settings {
	if c := a.n.cur.Load(); c != a.c {
		if a.c != nil {
			a.since = now
		}
		a.c = c
		if !c.off {
			a.q.hold = c.hold
			a.m.hold = c.mapHold
			a.lo, a.nr = c.portStart, c.nports
		}
	}
	return a.c
}

// inRange reports whether port is in the range the counts refer to.
func (a *Allocator) inRange(port uint16) bool {
	return uint32(port-a.lo) < a.nr
}

// migrate brings destination slot j's counts to the allocator's port range
// if they were made under another one, and reports whether it changed
// anything. Live flows counted in the old range move to other unless the
// new range holds the old one (a full pass sorts them again); quarantine
// entries of ports outside the new range leave the destination's count
// and list (they stay in the index, so their ports are still quarantined
// should the range come back), and dead entries are unlinked on the way.
// The work is one step per entry of the destination's list. It never
// moves table slots (callers tidy).
func (a *Allocator) migrate(j int) bool {
	e := &a.d.e[j]
	if e.rlo == a.lo && e.rn == a.nr {
		return false
	}
	if !(e.rlo >= a.lo && uint32(e.rlo)+e.rn <= uint32(a.lo)+a.nr) {
		e.other += e.inUse
		e.inUse = 0
	}
	var prev uint32
	for s := e.qhead; s != 0; {
		qe := &a.q.ring[s-1]
		next := qe.next
		if !qe.dead && a.inRange(qe.k.nport) {
			if prev == 0 {
				e.qhead = s
			} else {
				a.q.ring[prev-1].next = s
			}
			prev = s
		} else {
			if !qe.dead && qe.counted && e.quar > 0 {
				e.quar--
			}
			qe.counted = false
		}
		s = next
	}
	if prev == 0 {
		e.qhead = 0
	} else {
		a.q.ring[prev-1].next = 0
	}
	e.qtail = prev
	e.rlo, e.rn = a.lo, a.nr
	e.passed, e.full = false, false
	e.scanLeft = 0
	return true
}

// dent returns the slot of destination k brought up to the allocator's
// range (migrate), or -1. Slots may move (an emptied entry is tidied).
func (a *Allocator) dent(k *tuple) int {
	j := a.d.find(k)
	if j >= 0 && a.migrate(j) {
		a.d.tidy(j)
		j = a.d.find(k)
	}
	return j
}

// AllocateFrom chooses the translation of a new flow whose original key is
// orig (conntrack answered Open), from pool pool, at time now. The caller
// passes the result to conntrack.Shard.Create in NewFlow.NAT; if Create
// refuses the flow it must call Abandon.
//
// The translated address is the pool address of orig's family paired with
// orig's source address. The port (for ICMP echo, the identifier) is one
// whose reply key, orig reversed with the translated address and port as
// destination, is not a live flow and lands on a's shard
// (conntrack.Table.ShardOf). Ports released toward the same destination
// less than the quarantine time ago are taken only if no other is free, the
// least recently released first (counted: quarantine_override).
//
// With SNAT turned off (NewOff, Reconfigure(nil)) it returns the zero
// Translation and drop.None: the flow is not translated.
//
// It returns drop.SNATExhausted if no port is free toward the destination
// (counted, per destination too, with an event), drop.SNATProbeLimit if
// none was found within the probe bound (counted: snat_probe_limit),
// drop.SNATNoAddress if the pool has no address of orig's family (or there
// is no such pool) unless Config.NoAddress is NoAddressForward (then the
// zero Translation and drop.None: the flow is not translated; counted:
// untranslated), and drop.UnsupportedProto for a protocol other than
// TCP, UDP and ICMP echo.
//
// Cost: at most MaxProbes candidates (each a ShardOf hash with several
// shards, a conntrack Lookup and a quarantine lookup) whatever the
// quarantine holds: RandomProbes random ports, the port last given back
// toward the destination without quarantine, ScanProbes ports of the
// destination's pass over the range, which the next allocations toward
// it continue, then, when the counts say that every port is in use or
// quarantined, up to ReuseProbes entries of its quarantine list. It never
// allocates.
func (a *Allocator) AllocateFrom(pool int, orig *conntrack.Key, now conntrack.Time) (conntrack.Translation, drop.Reason) {
	a.now = now
	n := a.refresh(now)
	if n.off {
		return conntrack.Translation{}, drop.None
	}
	switch orig.Proto {
	case header.ProtoTCP, header.ProtoUDP, header.ProtoICMP, header.ProtoICMPv6:
	default:
		return conntrack.Translation{}, drop.UnsupportedProto
	}
	if uint(pool) >= uint(len(n.pools)) {
		return conntrack.Translation{}, drop.SNATNoAddress
	}
	addrs := n.pools[pool].v6
	if orig.IsIPv4() {
		addrs = n.pools[pool].v4
	}
	if len(addrs) == 0 {
		if n.forwardNoAddr {
			a.ctr.add(CtrUntranslated, 1)
			return conntrack.Translation{}, drop.None
		}
		return conntrack.Translation{}, drop.SNATNoAddress
	}
	i := a.n.pair(&orig.Src, len(addrs))
	if n.keepEchoID && (orig.Proto == header.ProtoICMP || orig.Proto == header.ProtoICMPv6) {
		return a.allocEcho(addrs, i, orig, now)
	}
	na := &addrs[i]
	// The candidate reply key, as conntrack.Shard.ReplyKey builds it.
	rk := orig.Reverse()
	rk.Dst = na.addr
	k := tuple{dst: orig.Dst, dport: orig.DstPort, naddr: na.idx, proto: orig.Proto, zone: orig.Zone}
	if n.pools[pool].b.mapping == EndpointIndependent {
		return a.allocMapped(n.pools[pool].b, na, &k, &rk, orig, now)
	}

	// When the counts of a recent full pass say that no port is free
	// outside the quarantine, take the least recently released one from
	// the destination's list at once instead of probing for one; and a
	// destination a full pass found exhausted less than fullRetry ago is
	// refused at once while all its ports are still in use.
	reused := false
	if j := a.dent(&k); j >= 0 {
		e := &a.d.e[j]
		if a.countsFull(e) && now-e.passAt < recountEvery {
			reused = true
			if tr, ok := a.reuseOldest(&k, &rk, orig, now); ok {
				return tr, drop.None
			}
			if j = a.d.find(&k); j >= 0 {
				e = &a.d.e[j]
				if e.full && e.inUse >= e.owned && now-e.passAt < fullRetry {
					return a.exhausted(&k, orig, now)
				}
			}
		}
	}

	// RFC 6056 section 3.3.2 (Algorithm 2): "next_ephemeral = min_ephemeral
	// + (random() % num_ephemeral)", tried until a suitable port is found,
	// here at most RandomProbes times.
	for probes := uint64(1); probes <= RandomProbes; probes++ {
		port := n.portStart + uint16(a.below(n.nports))
		rk.DstPort = port
		if !a.lands(&rk) {
			continue
		}
		if free, quar, _ := a.check(&rk, &k, port, now); free && !quar {
			a.ctr.add(CtrProbes, probes)
			return a.commit(&k, port)
		}
	}
	a.ctr.add(CtrProbes, RandomProbes)

	// The last port given back toward k without quarantine, if it is
	// still free: in a nearly full range, flows that end unanswered (or
	// are abandoned) hand their port on in O(1) instead of leaving it
	// for the scan to find.
	if j := a.d.find(&k); j >= 0 && a.d.e[j].freed {
		port := a.d.e[j].freedPort
		a.d.e[j].freed = false
		rk.DstPort = port
		a.ctr.add(CtrProbes, 1)
		if a.inRange(port) && a.lands(&rk) {
			if free, quar, _ := a.check(&rk, &k, port, now); free && !quar {
				return a.commit(&k, port)
			}
		}
	}

	// RFC 6056 section 3.3.1 (Algorithm 1): each port in turn from a
	// random start, wrapping from max_ephemeral to min_ephemeral, until
	// check_suitable_port succeeds or num_ephemeral ports were tried; here
	// one pass per destination, ScanProbes ports per allocation.
	// Quarantined ports are remembered: RFC 6888 REQ-8 ("Once an external
	// port is deallocated, it SHOULD NOT be reallocated to a new mapping
	// until at least 120 seconds have passed") yields to RFC 4787 REQ-3
	// (no port overloading) only when nothing else is free, and then the
	// least recently released port is taken.
	a.ctr.add(CtrScans, 1)
	sc := a.scan(&k, &rk, n, now)
	if sc.found {
		return a.commit(&k, sc.port)
	}
	if j := a.d.find(&k); j >= 0 && !reused && a.countsFull(&a.d.e[j]) {
		if tr, ok := a.reuseOldest(&k, &rk, orig, now); ok {
			return tr, drop.None
		}
	}
	switch {
	case sc.ended && !sc.quar:
		return a.exhausted(&k, orig, now)
	case sc.ended && sc.best.ok:
		// A pass that ended here found no free port and the list did not
		// give one (ports quarantined under another range, a destination
		// not counted, or counts that drifted): the least recently
		// released port this chunk saw.
		k.nport = sc.best.port
		a.q.remove(&k)
		k.nport = 0
		return a.override(&k, sc.best.port, orig, now)
	}
	a.ctr.add(CtrProbeLimit, 1)
	return conntrack.Translation{}, drop.SNATProbeLimit
}

// countsFull reports whether destination e's counts, brought up to date by
// a full pass under the configuration in force, say that every port of the
// range landing on this worker is in use or in quarantine.
func (a *Allocator) countsFull(e *dent) bool {
	return e.passed && e.passAt > a.since && e.inUse+e.quar >= e.owned
}

// scanResult is what one chunk of a pass found.
type scanResult struct {
	port  uint16 // a free port (found)
	found bool
	ended bool // the pass over the whole range ended in this chunk
	quar  bool // the pass (whole, if ended) saw a quarantined port
	best  struct {
		port uint16
		at   conntrack.Time
		ok   bool
	} // the least recently released quarantined port of this chunk
}

// scan examines up to ScanProbes ports of destination k's pass over the
// range (rk the candidate reply key), starting one from a random offset if
// none is in progress, and stops at the first free port that is not
// quarantined. The pass's position and counts live in k's destination
// entry; when it ends they become the destination's counts (owned, inUse,
// passed), which corrects any drift. Without an entry (the destination
// table is full) the chunk starts at a random offset and counts nothing.
func (a *Allocator) scan(k *tuple, rk *conntrack.Key, n *settings, now conntrack.Time) (r scanResult) {
	var next, left, owned, live uint32
	var quar bool
	j := a.d.find(k)
	if j >= 0 && a.d.e[j].scanLeft > 0 {
		e := &a.d.e[j]
		next, left, owned, live, quar = e.scanNext, e.scanLeft, e.scanOwned, e.scanLive, e.scanQuar
	} else {
		next, left = a.below(n.nports), n.nports
	}
	var examined uint64
	for left > 0 && examined < ScanProbes {
		port := n.portStart + uint16(next)
		if next++; next == n.nports {
			next = 0
		}
		left--
		examined++
		rk.DstPort = port
		if !a.lands(rk) {
			continue
		}
		owned++
		free, q, t := a.check(rk, k, port, now)
		if !free {
			live++
		}
		if free && !q {
			live++ // allocated now
			r.port, r.found = port, true
			break
		}
		if q {
			quar = true
			if !r.best.ok || t < r.best.at {
				r.best.port, r.best.at, r.best.ok = port, t, true
			}
		}
	}
	a.ctr.add(CtrProbes, examined)
	r.ended, r.quar = left == 0, quar
	// check may have released expired flows, which moves or deletes
	// destination entries: find k's again.
	if j = a.d.find(k); j < 0 {
		return r
	}
	e := &a.d.e[j]
	e.scanNext, e.scanLeft, e.scanOwned, e.scanLive, e.scanQuar = next, left, owned, live, quar
	if r.ended {
		// The pass counted the ports of the range that land on this
		// shard and, as of when it looked at each, those in use (the
		// live flows counted toward k beyond those have ports outside the
		// range). The port found here is counted by commit.
		if r.found {
			live--
		}
		e.other = max(e.inUse+e.other, live) - live
		e.owned, e.inUse, e.passed, e.passAt, e.full = owned, live, true, now, !quar && !r.found
	}
	return r
}

// override commits port, a quarantined port reused because no other port
// is free toward k (counted, with an event).
func (a *Allocator) override(k *tuple, port uint16, orig *conntrack.Key, now conntrack.Time) (conntrack.Translation, drop.Reason) {
	tr, r := a.commit(k, port)
	a.ctr.add(CtrQuarantineOverride, 1)
	if j := a.d.find(k); j >= 0 {
		a.d.e[j].overrides++
	}
	a.event(EvQuarantineOverride, orig, k.naddr, port, now)
	return tr, r
}

// reuseOldest takes the least recently released port of destination k's
// quarantine list (k.nport 0, rk the candidate reply key) that is not in
// use and is in the range in force, looking at no more than ReuseProbes
// entries. An entry whose quarantine has ended is taken as a plain
// allocation; one still running is an override. An entry of a port
// outside the range (released under an earlier configuration) is never
// taken: it leaves the list and the count, and stays quarantined. (Its
// address is k's, one of the pool in force: k came from it.)
func (a *Allocator) reuseOldest(k *tuple, rk *conntrack.Key, orig *conntrack.Key, now conntrack.Time) (conntrack.Translation, bool) {
	budget := ReuseProbes
	for {
		s, ok := a.q.oldest(k, &budget)
		if !ok {
			return conntrack.Translation{}, false
		}
		qe := &a.q.ring[s]
		port, released := qe.k.nport, qe.t
		if !a.inRange(port) {
			a.q.uncount(s)
			continue
		}
		a.q.kill(s)
		rk.DstPort = port
		a.ctr.add(CtrProbes, 1)
		if !a.lands(rk) {
			continue
		}
		if _, _, live := a.s.Lookup(rk, now); live {
			continue // in use after all (the counts drifted)
		}
		if now-released >= a.c.hold {
			tr, _ := a.commit(k, port)
			return tr, true
		}
		tr, _ := a.override(k, port, orig, now)
		return tr, true
	}
}

// lands reports whether the reply key rk lands on a's shard
// (conntrack.Table.ShardOf, a hash; every key does with one shard).
func (a *Allocator) lands(rk *conntrack.Key) bool {
	return !a.multi || a.t.ShardOfDst(rk) == a.id
}

// check reports whether port (rk.DstPort) is free toward k, that is rk is
// not a live flow in conntrack, and if so whether it is quarantined and
// since when. conntrack's Lookup may release an expired flow on the spot,
// which quarantines its port (through Release) before the quarantine is
// consulted: such a port counts as just released.
func (a *Allocator) check(rk *conntrack.Key, k *tuple, port uint16, now conntrack.Time) (free, quar bool, released conntrack.Time) {
	if _, _, live := a.s.Lookup(rk, now); live {
		return false, false, 0
	}
	if a.mappedPort(k.naddr, port, k.proto, k.zone, now) {
		return false, false, 0 // an endpoint-independent mapping's port
	}
	k.nport = port
	released, quar = a.q.lookup(k, now)
	k.nport = 0
	return true, quar, released
}

// commit counts port as in use toward k and returns the translation.
func (a *Allocator) commit(k *tuple, port uint16) (conntrack.Translation, drop.Reason) {
	k.nport = 0
	if j := a.d.add(k); j >= 0 {
		a.migrate(j)
		e := &a.d.e[j]
		e.inUse++
		e.full = false
	} else {
		a.ctr.add(CtrDestOverflow, 1)
	}
	a.ctr.add(CtrAllocated, 1)
	return conntrack.Translation{Addr: k.naddr, Port: port}, drop.None
}

func (a *Allocator) exhausted(k *tuple, orig *conntrack.Key, now conntrack.Time) (conntrack.Translation, drop.Reason) {
	if j := a.d.find(k); j >= 0 {
		a.d.e[j].exhausted++
	}
	a.ctr.add(CtrExhausted, 1)
	a.event(EvExhausted, orig, k.naddr, 0, now)
	return conntrack.Translation{}, drop.SNATExhausted
}

func (a *Allocator) event(kind EventKind, orig *conntrack.Key, naddr, nport uint16, now conntrack.Time) {
	e := Event{Time: now, Key: *orig, NATAddr: naddr, NATPort: nport, Kind: kind, Shard: uint8(a.id)}
	if !a.ev.Put(&e) {
		a.ctr.add(CtrEventsLost, 1)
	}
}

// allocEcho translates an ICMP echo flow's address only (Config.KeepEchoID):
// the identifier stays, so the pool's addresses of the family are tried in
// turn from the paired one until one gives a reply key that is free and
// lands on a's shard. No quarantine applies: the inside host chose the
// identifier.
func (a *Allocator) allocEcho(addrs []natAddr, first int, orig *conntrack.Key, now conntrack.Time) (conntrack.Translation, drop.Reason) {
	rk := orig.Reverse()
	for j := range addrs {
		na := &addrs[(first+j)%len(addrs)]
		rk.Dst = na.addr
		if !a.lands(&rk) {
			continue
		}
		if _, _, live := a.s.Lookup(&rk, now); live {
			continue
		}
		k := tuple{dst: orig.Dst, dport: orig.DstPort, naddr: na.idx, proto: orig.Proto, zone: orig.Zone}
		return a.commit(&k, orig.SrcPort)
	}
	k := tuple{dst: orig.Dst, dport: orig.DstPort, naddr: addrs[first].idx, proto: orig.Proto, zone: orig.Zone}
	return a.exhausted(&k, orig, now)
}

// Abandon gives back a translation that Allocate returned but that no flow
// uses (conntrack.Shard.Create refused the flow). The port is not
// quarantined: no packet left with it. Owner only; never allocates.
func (a *Allocator) Abandon(orig *conntrack.Key, tr conntrack.Translation) {
	mapped := a.abandonMapped(orig, tr, a.now)
	k := tuple{dst: orig.Dst, dport: orig.DstPort, naddr: tr.Addr, proto: orig.Proto, zone: orig.Zone}
	if j := a.dent(&k); j >= 0 {
		e := &a.d.e[j]
		e.countOut(a.inRange(tr.Port))
		if !mapped {
			e.freed, e.freedPort = true, tr.Port
		}
		a.d.tidy(j)
	}
	a.ctr.add(CtrAbandoned, 1)
}

// countOut counts one live flow toward e out: a port of the range comes
// off inUse, another off other (either from the other when it is zero: a
// flow live across a change of range may be counted in either).
func (e *dent) countOut(inRange bool) {
	a, b := &e.inUse, &e.other
	if !inRange {
		a, b = b, a
	}
	switch {
	case *a > 0:
		*a--
	case *b > 0:
		*b--
	}
}

// Release is a's conntrack release hook (conntrack.ReleaseFunc, installed
// by New): the flow with original key orig and translation nat ended at
// now, so its port is no longer in use toward orig's destination. If the
// flow carried a connection the port is quarantined there; otherwise it
// is free at once (counted: released_unheld; see the package doc).
// Untranslated flows and addresses of other NATs are ignored. It runs on
// the owner's goroutine, never allocates, and does bounded work (it
// touches at most four quarantine entries: the one it supersedes, two
// ended ones and, when the quarantine is full, the oldest).
func (a *Allocator) Release(orig *conntrack.Key, nat conntrack.Translation, carried bool, now conntrack.Time) {
	if nat.Addr == 0 || !a.n.ours(nat.Addr) {
		return
	}
	a.now = now
	a.ctr.add(CtrReleased, 1)
	a.releaseMapped(orig, nat, carried, now)
	k := tuple{dst: orig.Dst, dport: orig.DstPort, naddr: nat.Addr, proto: orig.Proto, zone: orig.Zone}
	counted := false
	if j := a.dent(&k); j >= 0 {
		e := &a.d.e[j]
		in := a.inRange(nat.Port)
		e.countOut(in)
		switch {
		case in && carried:
			// Counted only in the range: a port outside it (released
			// after a reconfigure) is never chosen, so it is not part of
			// the destination's ports; it is still quarantined.
			e.quar++
			counted = true
		case in:
			e.freed, e.freedPort = true, nat.Port
			a.d.tidy(j)
		default:
			a.d.tidy(j)
		}
	}
	if !carried {
		a.ctr.add(CtrReleasedUnheld, 1)
		return
	}
	k.nport = nat.Port
	if a.q.insert(&k, now, counted) {
		a.ctr.add(CtrQuarantineForgotten, 1)
	}
}
