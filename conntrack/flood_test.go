package conntrack

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/edgegw/edge/drop"
)

// floodKeys returns n TCP keys from one IPv6 /64 whose interface-ID bits
// are paired with their source ports so that the key fold the table hash
// used to apply (words 0^rot(2), 1^4, 3^5 of the key, the seed XORed into
// one of them) gives all of them the same input: colliding under every
// seed. A sender with a /64 can make them.
func floodKeys(t testing.TB, n int) []Key {
	t.Helper()
	dst := netip.MustParseAddrPort("[2001:db8::80]:443")
	keys := make([]Key, n)
	for i := range keys {
		sport := uint16(1024 + i)
		src := netip.MustParseAddr("2001:db8:1:2::").As16()
		ports := uint32(sport) | uint32(dst.Port())<<16 // how word 4 lays them out
		binary.LittleEndian.PutUint32(src[8:], ports^0x5eed)
		keys[i] = MakeKey(6, netip.AddrPortFrom(netip.AddrFrom16(src), sport), dst)
	}
	// They do collide under the old fold.
	fold := func(k *Key) [3]uint64 {
		w0, w1, w2, w3, w4, w5 := k.words()
		return [3]uint64{w0 ^ (w2<<31 | w2>>33), w1 ^ uint64(w4), w3 ^ uint64(w5)}
	}
	for i := range keys {
		if fold(&keys[i]) != fold(&keys[0]) || (i > 0 && keys[i] == keys[0]) {
			t.Fatalf("key %d (%v) does not collide with key 0 under the old fold", i, keys[i])
		}
	}
	return keys
}

// 50,000 keys that collided under the old fold spread over the index like
// random keys: distinct hashes, short probe runs, and all of them fit.
func TestFoldCollidingKeysSpread(t *testing.T) {
	const n = 50_000
	keys := floodKeys(t, n)
	tb, err := New(Config{MaxFlows: 1 << 16, Memory: MemoryHeap, HistorySize: 1, EventRingSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	s := tb.Shard(0)
	hashes := map[uint64]bool{}
	perHome := map[int]int{}
	worst := 0
	for i := range keys {
		h := s.hash(&keys[i])
		hashes[h] = true
		home := s.ix.home(uint32(h >> 32))
		perHome[home]++
		worst = max(worst, perHome[home])
	}
	// Among 50,000 random 64-bit hashes a repeat has odds of 1 in 10^10;
	// over 196,608 homes the fullest holds about 6.
	if len(hashes) != n || worst > 12 {
		t.Fatalf("%d distinct hashes of %d keys, up to %d keys on one home position", len(hashes), n, worst)
	}
	// Open them all as flows (original and reply entries: 100,000 in the
	// index): none is refused and the longest probe run stays short.
	for i := range keys {
		p := Packet{Key: keys[i], Flags: SYN, Seq: 1, WScale: -1}
		if v := s.Track(&p, Second); v.Action != Open {
			t.Fatalf("key %d: %+v", i, v)
		}
		if v := s.Create(&p, NewFlow{}, Second); v.Action != Forward {
			t.Fatalf("key %d: %+v", i, v)
		}
	}
	if run := longestRun(&s.ix); run > 64 {
		t.Fatalf("longest probe run %d positions", run)
	}
}

// longestRun returns the largest distance of an index entry from its home.
func longestRun(ix *index) int {
	worst := 0
	for i, x := range ix.e {
		if x == 0 {
			continue
		}
		d := i - ix.home(entryTag(x))
		if d < 0 {
			d += len(ix.e)
		}
		worst = max(worst, d)
	}
	return worst
}

// The shard hash is keyed per table (a sender cannot choose its shard),
// puts both directions of a flow on the shard of its inside endpoint, and
// spreads keys that collided under the old fold evenly.
func TestShardOfKeyedAndSymmetric(t *testing.T) {
	const shards = 4
	mk := func() *Table {
		tb, err := New(Config{MaxFlows: 64 * shards, Shards: shards, Memory: MemoryHeap, HistorySize: 1, EventRingSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tb.Close)
		return tb
	}
	a, b := mk(), mk()
	keys := floodKeys(t, 20_000)
	same := 0
	var count [shards]int
	for i := range keys {
		k := &keys[i]
		r := k.Reverse()
		sa := a.ShardOfSrc(k)
		if sa != a.ShardOfDst(&r) {
			t.Fatalf("%v from the inside and its reverse from the outside are on shards %d and %d", k, sa, a.ShardOfDst(&r))
		}
		// Only the inside endpoint counts: any remote end, same shard.
		other := *k
		other.Dst[15] ^= 0x5a
		other.DstPort ^= 0xa5a5
		if a.ShardOfSrc(&other) != sa {
			t.Fatalf("%v and %v share an inside endpoint but not a shard", k, other)
		}
		count[sa]++
		if sa == b.ShardOfSrc(k) {
			same++
		}
	}
	// Independent seeds agree on about a quarter of the keys.
	if same > len(keys)/3 {
		t.Fatalf("two tables put %d of %d keys on the same shard: the shard hash is not keyed", same, len(keys))
	}
	for i, c := range count {
		if c < len(keys)/shards*8/10 || c > len(keys)/shards*12/10 {
			t.Fatalf("shard %d got %d of %d keys: %v", i, c, len(keys), count)
		}
	}
}

func TestHashesDoNotAllocate(t *testing.T) {
	tb, err := New(Config{MaxFlows: 256, Shards: 4, Memory: MemoryHeap, HistorySize: 1, EventRingSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	k := floodKeys(t, 1)[0]
	s := tb.Shard(0)
	var sink uint64
	if n := testing.AllocsPerRun(100, func() { sink += s.hash(&k) + uint64(tb.ShardOfSrc(&k)) }); n != 0 {
		t.Fatalf("%v allocations per hash", n)
	}
	_ = sink
}

// A key whose probe run has no free position within maxProbe of its home
// is refused (probe_limit, counted, with an event) without disturbing the
// index. Also when the two keys of the flow share the run's last free
// position: the first insert is then undone and the slot freed.
func TestProbeLimitRefuses(t *testing.T) {
	for _, shared := range []bool{false, true} {
		tb, s := newTestTable(t, Policy{})
		nat, _ := tb.InternAddr(snatAddr)
		k := floodKeys(t, 1)[0]
		n := len(s.ix.e)
		homeK := s.ix.home(uint32(s.hash(&k) >> 32))
		fill := func(from, to int) { // positions [from, to), another tag
			for i := from; i < to; i++ {
				s.ix.e[i%n] = makeEntry(uint64(^uint32(0))<<32, 0, Original)
			}
		}
		nf := NewFlow{NAT: Translation{Addr: nat, Port: 1}}
		if !shared {
			fill(homeK, homeK+maxProbe)
		} else {
			// A reply key whose home is just after k's; leave one free
			// position that is the first free one for both.
			for ; ; nf.NAT.Port++ {
				rk := s.ReplyKey(&k, nf.NAT)
				hr := s.ix.home(uint32(s.hash(&rk) >> 32))
				if d := (hr - homeK + n) % n; d > 0 && d < 50 {
					last := homeK + maxProbe - 1
					fill(homeK, last)
					fill(last+1, homeK+d+maxProbe)
					break
				}
			}
		}
		used := 0
		for _, x := range s.ix.e {
			if x != 0 {
				used++
			}
		}
		p := Packet{Key: k, Flags: SYN, Seq: 1, WScale: -1}
		if v := s.Track(&p, Second); v.Action != Open {
			t.Fatalf("shared %v: track %+v", shared, v)
		}
		v := s.Create(&p, nf, Second)
		if v.Action != Drop || v.Reason != drop.ProbeLimit {
			t.Fatalf("shared %v: create %+v, want drop probe_limit", shared, v)
		}
		after := 0
		for _, x := range s.ix.e {
			if x != 0 {
				after++
			}
		}
		st := tb.Stats()
		var ev [4]Event
		got := tb.ReadEvents(ev[:])
		if after != used || tb.Len() != 0 || st.Drops[drop.ProbeLimit] != 1 || got != 1 ||
			ev[0].Kind != EvRefused || ev[0].Reason != drop.ProbeLimit {
			t.Fatalf("shared %v: index entries %d -> %d, %d flows, %d probe_limit drops, events %v",
				shared, used, after, tb.Len(), st.Drops[drop.ProbeLimit], ev[:got])
		}
		// The slot went back to the free list: another flow opens. The
		// index holds only the fill now (no flow is open): clear it, or a
		// key whose run meets the fill is refused too (1 run in 60).
		for i := range s.ix.e {
			s.ix.e[i] = 0
		}
		q := Packet{Key: floodKeys(t, 2)[1], Flags: SYN, Seq: 1, WScale: -1}
		if v := s.Create(&q, NewFlow{}, Second); v.Action != Forward {
			t.Fatalf("shared %v: next flow %+v", shared, v)
		}
	}
}

// BenchmarkHash measures the two per-packet hashes: the flow-index hash of
// a key and the shard of a key (several shards).
func BenchmarkHash(b *testing.B) {
	tb, err := New(Config{MaxFlows: 256, Shards: 4, Memory: MemoryHeap, HistorySize: 1, EventRingSize: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(tb.Close)
	keys := floodKeys(b, 1024)
	s := tb.Shard(0)
	var sink uint64
	b.Run("index", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sink += s.hash(&keys[i&1023])
		}
	})
	b.Run("shard", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			sink += uint64(tb.ShardOfSrc(&keys[i&1023]))
		}
	})
	_ = sink
}
