package conntrack

import (
	"context"
	"encoding/binary"
	"math/bits"
	"net/netip"
	"sort"
)

// Per-destination signals.
//
// A shard counts, per server endpoint (a flow's original destination: the
// server as the inside sees it, for flows from the inside and for inbound
// ones alike), the events that explain failed connections: SYNs
// retransmitted without an answer, handshakes that timed out, were refused
// or completed, resets that ended a flow by the side that sent them, the
// server closing a connection (and after how long idle), client data after
// that close (the keep-alive race), and packets of flows edge had expired.
//
// The counts are taken where those events already leave the established
// fast path (a SYN, a SYN-ACK, an RST, a FIN, a flow's end, a packet
// without a flow), so forwarding an established flow's data costs nothing.
// Memory is bounded and allocated with the shard, pointer-free: a
// set-associative table of DestWays entries per bucket, where a new
// destination replaces the least active of its bucket and inherits its
// activity plus one (the space-saving scheme: busy destinations stay,
// rarely seen ones make room; Approx bounds how much of a destination's
// activity may belong to the ones it replaced).

// DestKey names a destination: a server endpoint.
type DestKey struct {
	Addr  [16]byte // IPv4-mapped for IPv4
	Port  uint16
	Proto uint8
	Zone  uint8
}

// AddrPort returns the destination as an address and port.
func (k DestKey) AddrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(k.Addr).Unmap(), k.Port)
}

// String formats the destination as "ip:port".
func (k DestKey) String() string { return k.AddrPort().String() }

// DestCounter names one per-destination count.
type DestCounter uint8

const (
	DestFlows             DestCounter = iota // flows (and new incarnations) opened toward it
	DestSYNRetransmits                       // SYNs sent again in SYN_SENT before any answer (same or new ISN)
	DestSYNRetried                           // flows whose SYN was sent more than once (their first retransmission)
	DestHandshakeTimeouts                    // SYN_SENT flows expired or evicted: the SYN was never answered
	DestHandshakeRefused                     // handshakes the server refused with an RST
	DestHandshakes                           // handshakes completed (ESTABLISHED)
	DestResetsClient                         // RSTs from the client side that ended a flow
	DestResetsServer                         // RSTs from the server side that ended a flow
	DestServerCloses                         // established connections the server closed first (FIN or RST)
	DestRaces                                // connections where the client sent data after the server closed (keep-alive race)
	DestExpiredLate                          // flows edge expired that later received a packet (dropped, no state)
	DestResetsEdge                           // RSTs edge itself sent toward the client (NoteRSTSent: reject rules)
	DestNSXWouldFail                         // NSX shadow: connections NSX-like semantics would have failed (nsxshadow.go)
	DestClientReuses                         // client data on an established connection idle for ReuseIdleMin or more (keep-alive reuse)
	NumDestCounters
)

var destCounterNames = [NumDestCounters]string{
	"flows", "syn_retransmits", "syn_retried", "handshake_timeouts", "handshake_refused", "handshakes",
	"resets_client", "resets_server", "server_closes", "keepalive_races", "expired_late", "resets_edge",
	"nsx_would_fail", "client_reuses",
}

func (c DestCounter) String() string {
	if c < NumDestCounters {
		return destCounterNames[c]
	}
	return "unknown"
}

// DestHist names one per-destination distribution.
type DestHist uint8

const (
	HistHandshakeRTT    DestHist = iota // last SYN to its SYN-ACK
	HistServerIdleClose                 // how long the connection was idle when the server closed it
	HistRaceDelay                       // from the server's close (its last packet before) to the client's data
	HistExpiredIdle                     // how long an expired flow had been idle when its late packet came
	HistClientReuseIdle                 // how long an established connection had been idle when the client sent data on it (ReuseIdleMin or more)
	NumDestHists
)

var destHistNames = [NumDestHists]string{"handshake_rtt", "server_idle_close", "race_delay", "expired_idle", "client_reuse_idle"}

func (h DestHist) String() string {
	if h < NumDestHists {
		return destHistNames[h]
	}
	return "unknown"
}

// HistBuckets is the number of buckets of a distribution: bucket 0 counts
// durations under 1 ms, bucket i (1 <= i < HistBuckets-1) those in
// [2^(i-1), 2^i) ms, and the last one everything from 2^(HistBuckets-2) ms
// (about 4.7 hours) up.
const HistBuckets = 25

// HistBucketLow returns the lower bound of bucket i.
func HistBucketLow(i int) Time {
	if i == 0 {
		return 0
	}
	return Time(1) << (i - 1) * Millisecond
}

func histBucket(ms uint32) int { return min(bits.Len32(ms), HistBuckets-1) }

// DestSignals are the counts and distributions of one destination.
type DestSignals struct {
	Counters [NumDestCounters]uint64
	Hists    [NumDestHists][HistBuckets]uint64
}

func (d *DestSignals) add(o *DestSignals) {
	for i := range d.Counters {
		d.Counters[i] += o.Counters[i]
	}
	for h := range d.Hists {
		for i := range d.Hists[h] {
			d.Hists[h][i] += o.Hists[h][i]
		}
	}
}

// DestStat is one destination's signals, summed over shards.
type DestStat struct {
	Dest DestKey
	DestSignals
	// Approx is the activity (number of counted events) the destination
	// may have inherited from the destinations it replaced: 0 means its
	// counts are exact since it was first seen.
	Approx uint64
}

// DestWays is the associativity of the destination table.
const DestWays = 8

// DefaultDestinations is the default number of destinations each shard tracks.
const DefaultDestinations = 256

// destEntry is one tracked destination in a shard: no pointers. Counts are
// 32-bit (a shard's; the control plane sums them in 64).
type destEntry struct {
	key    DestKey
	used   bool
	approx uint32 // the activity it inherited
	ctr    [NumDestCounters]uint32
	hist   [NumDestHists][HistBuckets]uint32
}

// destWay is the part of an entry a lookup reads: a bucket's DestWays ways
// fill one 64-byte line, so finding a destination (or the least active
// way) reads one line, and the entry itself only on a tag match.
type destWay struct {
	tag      uint32 // from the destination's hash, never 0; 0 = free
	activity uint32 // events counted, plus what it inherited (space-saving)
}

// destTable is a shard's set-associative table of destinations.
type destTable struct {
	ways     []destWay   // buckets*DestWays
	e        []destEntry // the entry of each way
	mask     uint64      // buckets-1
	seed     uint64
	replaced uint64 // destinations that replaced another (owner writes, control reads through Serve)
}

func (t *destTable) init(n int, seed uint64) {
	if n <= 0 {
		return
	}
	buckets := 1
	for buckets*DestWays < n {
		buckets <<= 1
	}
	t.ways = make([]destWay, buckets*DestWays)
	t.e = make([]destEntry, buckets*DestWays)
	t.mask = uint64(buckets - 1)
	t.seed = seed
}

// get returns the entry of destination k, taking a place for it if it has
// none: a free way of its bucket, else the least active one's. Each call
// is one counted event and adds to the entry's activity. nil when the
// table is disabled.
func (t *destTable) get(k *DestKey) *destEntry {
	if len(t.e) == 0 {
		return nil
	}
	h := destHash(k, t.seed)
	tag := uint32(h>>32) | 1
	b := int(h&t.mask) * DestWays
	ways := t.ways[b : b+DestWays : b+DestWays]
	victim := 0
	for i := range ways {
		w := &ways[i]
		if w.tag == tag {
			if e := &t.e[b+i]; e.key == *k {
				w.activity++
				return e
			}
		}
		// The victim: a free way, else the least active.
		if v := &ways[victim]; v.tag != 0 && (w.tag == 0 || w.activity < v.activity) {
			victim = i
		}
	}
	w := &ways[victim]
	inherited := uint32(0)
	if w.tag != 0 {
		inherited = w.activity
		t.replaced++
	}
	w.tag, w.activity = tag, inherited+1
	e := &t.e[b+victim]
	*e = destEntry{key: *k, used: true, approx: inherited}
	return e
}

// destHash is a keyed hash of a destination: two rounds of 64x64->128
// multiply-and-fold (as wyhash) under the table's secret seed. A few ns
// where a general-purpose hash of 20 bytes takes 20: it runs for every
// flow opened. Its strength matters little: a bucket holds the busiest of
// the destinations that land in it, so destinations an inside client
// chooses can at most take the place of less active ones.
func destHash(k *DestKey, seed uint64) uint64 {
	const m1, m2, m3 = 0xa0761d6478bd642f, 0xe7037ed1a0b428db, 0x8ebc6af09c88c6e3
	a := binary.LittleEndian.Uint64(k.Addr[0:8]) ^ seed
	b := binary.LittleEndian.Uint64(k.Addr[8:16]) ^ m1
	c := uint64(k.Port) | uint64(k.Proto)<<16 | uint64(k.Zone)<<24
	hi, lo := bits.Mul64(a, b)
	hi, lo = bits.Mul64(hi^lo^m2, c^seed^m3)
	return hi ^ lo
}

// destOf returns the destination of flow key k: its original destination.
func destOf(k *Key) DestKey {
	return DestKey{Addr: k.Dst, Port: k.DstPort, Proto: k.Proto, Zone: k.Zone}
}

// tracksDest reports whether flows of protocol proto are counted per
// destination: TCP and UDP (an ICMP echo's "port" is its identifier).
func tracksDest(proto uint8) bool { return proto == 6 || proto == 17 }

// sig counts event c for the destination of flow key k.
func (s *Shard) sig(k *Key, c DestCounter) *destEntry {
	if !tracksDest(k.Proto) {
		return nil
	}
	d := destOf(k)
	e := s.dests.get(&d)
	if e != nil {
		e.ctr[c]++
	}
	return e
}

// sigTime counts event c with a duration of ms milliseconds in
// distribution h.
func (s *Shard) sigTime(k *Key, c DestCounter, h DestHist, ms uint32) {
	if e := s.sig(k, c); e != nil {
		e.hist[h][histBucket(ms)]++
	}
}

// lastSeen returns the tick of f's last forwarded packet: every forwarded
// packet sets its deadline to that tick plus the timeout of the state it
// left the flow in, which the flow is still in.
func (f *flow) lastSeen(pol *policy) uint32 {
	return f.expires - pol.set.timeout(f.profile, f.state)
}

// idleMs returns how long f has been idle at now, in milliseconds.
func (f *flow) idleMs(pol *policy, now Time) uint32 {
	d := int32(ticks(now) - f.lastSeen(pol))
	return uint32(max(d, 0))
}

// flagRaced (TCP, past SYN_SENT) marks a connection whose keep-alive race
// was counted. It shares its bit with flagChallenge, which only SYN_SENT
// uses and which leaving SYN_SENT clears.
const flagRaced = flagChallenge

// sigRace counts client data after the server closed, once per connection.
// The caller has checked that p is client data and the server closed.
func (s *Shard) sigRace(f *flow, pol *policy, now Time) {
	if f.flags&flagRaced != 0 {
		return
	}
	f.flags |= flagRaced
	s.sigTime(&f.key, DestRaces, HistRaceDelay, f.idleMs(pol, now))
}

// ReuseIdleMin is the shortest idle time after which client data on an
// established connection counts as reusing it (DestClientReuses,
// HistClientReuseIdle): shorter gaps are a conversation's own pauses, and
// longer ones are rare enough that the destination lookup they cost is
// off the established path's common case (one compare per data segment).
// The distribution, beside the server's idle-close times
// (HistServerIdleClose), says how close a keep-alive race is.
const ReuseIdleMin = Second

// clientDataAfterServerClose reports whether segment p (direction d) is data
// from the client on a connection the server closed first.
func clientDataAfterServerClose(f *flow, d Dir, p *Packet) bool {
	return d == Original && p.Payload > 0 && f.flags&flagCloseByRep != 0
}

// sigReset counts an RST from direction d that moved flow f from state prev
// to CLOSE. An RST from the server ends a handshake (refused) or closes an
// established connection (a server close, idle for how long); the latter
// marks the close as the server's, so client data after it is a race.
func (s *Shard) sigReset(f *flow, d Dir, prev State, pol *policy, now Time) {
	if d == Original {
		s.sig(&f.key, DestResetsClient)
		return
	}
	s.sig(&f.key, DestResetsServer)
	switch prev {
	case TCPSynSent:
		s.sig(&f.key, DestHandshakeRefused)
	case TCPEstablished:
		// f.state is CLOSE already: the idle time is from the deadline
		// ESTABLISHED set.
		idle := int32(ticks(now) - (f.expires - pol.set.timeout(f.profile, prev)))
		s.sigTime(&f.key, DestServerCloses, HistServerIdleClose, uint32(max(idle, 0)))
		f.flags |= flagCloseByRep
	}
}

// expiredCacheSize is the number of recently expired flows a shard
// remembers (each under both its keys), to recognise their late packets.
const expiredCacheSize = 2048

// expiredEntry remembers one key of a flow that expired.
type expiredEntry struct {
	h        uint64 // the key's table hash; 0 = empty
	twin     uint64 // the hash of the flow's other key
	dest     DestKey
	lastSeen uint32 // tick of the flow's last packet
}

type expiredCache [expiredCacheSize]expiredEntry

func (c *expiredCache) slot(h uint64) *expiredEntry { return &c[h&(expiredCacheSize-1)] }

// noteExpired remembers flow f, which expired, under its keys' hashes h and
// rh, if it carried a connection still open (a late packet of anything else,
// such as the retransmitted or delayed FIN of a connection that had closed,
// is no failure anyone waits on).
func (s *Shard) noteExpired(f *flow, h, rh uint64, pol *policy) {
	if !tracksDest(f.key.Proto) || !f.carried() || len(s.dests.e) == 0 {
		return
	}
	switch f.state {
	case TCPLastAck, TCPTimeWait, TCPClose:
		return
	}
	h, rh = h|1, rh|1 // never 0, the empty mark
	last := f.lastSeen(pol)
	d := destOf(&f.key)
	*s.expired.slot(h) = expiredEntry{h: h, twin: rh, dest: d, lastSeen: last}
	*s.expired.slot(rh) = expiredEntry{h: rh, twin: h, dest: d, lastSeen: last}
}

// sigLate counts packet p, which found no flow and is dropped, if it
// belongs to a flow that expired: once per flow, with its idle time.
func (s *Shard) sigLate(p *Packet, now Time) {
	if !tracksDest(p.Key.Proto) || len(s.dests.e) == 0 {
		return
	}
	h := s.hash(&p.Key) | 1
	e := s.expired.slot(h)
	if e.h != h {
		return
	}
	idle := uint32(max(int32(ticks(now)-e.lastSeen), 0))
	if t := s.expired.slot(e.twin); t.h == e.twin {
		t.h = 0
	}
	e.h = 0
	s.late = lateNote{key: p.Key, at: now, idle: Time(idle) * Millisecond}
	if de := s.dests.get(&e.dest); de != nil {
		de.ctr[DestExpiredLate]++
		de.hist[HistExpiredIdle][histBucket(idle)]++
	}
}

// lateNote is the last packet sigLate recognised.
type lateNote struct {
	key  Key
	at   Time
	idle Time
}

// LateExpired reports whether the packet of key k that Track dropped at
// time now as no_state was a late packet of a flow that expired (counted
// expired_late), and how long that flow had been idle. Owner only.
func (s *Shard) LateExpired(k *Key, now Time) (idle Time, ok bool) {
	if s.late.at != now || s.late.key != *k {
		return 0, false
	}
	return s.late.idle, true
}

// serveDests copies up to cap(r.dests) tracked destinations from r.cursor.
func (s *Shard) serveDests(r *request) {
	e := s.dests.e
	i := int(r.cursor)
	for ; i < len(e) && len(r.dests) < cap(r.dests); i++ {
		w := &e[i]
		if !w.used {
			continue
		}
		st := DestStat{Dest: w.key, Approx: uint64(w.approx)}
		for c := range w.ctr {
			st.Counters[c] = uint64(w.ctr[c])
		}
		for h := range w.hist {
			for b := range w.hist[h] {
				st.Hists[h][b] = uint64(w.hist[h][b])
			}
		}
		r.dests = append(r.dests, st)
	}
	r.cursor = uint32(i)
	r.done = i >= len(e)
	r.n = int(s.dests.replaced)
}

// Destinations is what Table.Destinations returns.
type Destinations struct {
	Dests []DestStat // busiest first: most flows, then most counted events
	// Capacity is how many destinations the shards can track together
	// (each shard tracks its own flows' destinations).
	Capacity int
	// Replaced counts the destinations that took the place of a less
	// active one, over all shards since start.
	Replaced uint64
}

// Destinations collects every shard's tracked destinations (through the
// shards' owners, like Dump) and sums those several shards track.
func (t *Table) Destinations(ctx context.Context, now Time) (Destinations, error) {
	var out Destinations
	idx := make(map[DestKey]int)
	buf := make([]DestStat, 0, 256)
	for _, s := range t.shards {
		out.Capacity += len(s.dests.e)
		r := &request{op: opDests, now: now}
		for {
			r.dests = buf[:0]
			s.ctlMu.Lock()
			err := s.do(ctx, r)
			s.ctlMu.Unlock()
			if err != nil {
				return out, err
			}
			for i := range r.dests {
				d := &r.dests[i]
				if j, ok := idx[d.Dest]; ok {
					out.Dests[j].add(&d.DestSignals)
					out.Dests[j].Approx += d.Approx
					continue
				}
				idx[d.Dest] = len(out.Dests)
				out.Dests = append(out.Dests, *d)
			}
			if r.done {
				break
			}
		}
		out.Replaced += uint64(r.n)
	}
	sort.Slice(out.Dests, func(i, j int) bool {
		a, b := &out.Dests[i], &out.Dests[j]
		if a.Counters[DestFlows] != b.Counters[DestFlows] {
			return a.Counters[DestFlows] > b.Counters[DestFlows]
		}
		if x, y := a.events(), b.events(); x != y {
			return x > y
		}
		return a.Dest.String() < b.Dest.String()
	})
	return out, nil
}

func (d *DestSignals) events() uint64 {
	n := uint64(0)
	for _, c := range d.Counters {
		n += c
	}
	return n
}

// sigEnded counts the end of flow f by its timer (expired) or under table
// pressure: an unanswered handshake is a timeout, and an expired flow that
// carried a connection is remembered for its late packets. h and rh are the
// hashes of its keys.
func (s *Shard) sigEnded(f *flow, h, rh uint64, expired bool) {
	if f.state == TCPSynSent || f.state == TCPSynSent2 {
		s.sig(&f.key, DestHandshakeTimeouts)
		return
	}
	if expired {
		s.noteExpired(f, h, rh, s.t.pol.Load())
	}
}

// sigHist records a duration of ms milliseconds in distribution h of flow
// key k's destination.
func (s *Shard) sigHist(k *Key, h DestHist, ms uint32) {
	if !tracksDest(k.Proto) {
		return
	}
	d := destOf(k)
	if e := s.dests.get(&d); e != nil {
		e.hist[h][histBucket(ms)]++
	}
}

// NoteRSTSent counts an RST the data plane sent in answer to packet key k
// (a reject rule), for k's destination: the endpoint its sender tried to
// reach. Owner only; it never allocates.
func (s *Shard) NoteRSTSent(k *Key) { s.sig(k, DestResetsEdge) }
