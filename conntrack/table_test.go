package conntrack

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/edgegw/edge/drop"
)

func TestLayout(t *testing.T) {
	if s := unsafe.Sizeof(Key{}); s != KeySize {
		t.Fatalf("Key is %d bytes, want %d (no padding)", s, KeySize)
	}
	if s := unsafe.Sizeof(flow{}); s != flowSize {
		t.Fatalf("flow is %d bytes, want %d", s, flowSize)
	}
	if s := unsafe.Sizeof(Verdict{}); s != 8 {
		t.Fatalf("Verdict is %d bytes, want 8", s)
	}
}

// The budget: <= 128 bytes per flow slot, both index entries included.
func TestMemoryPerFlow(t *testing.T) {
	for _, n := range []int{1 << 10, 1 << 20} {
		tb, err := New(Config{MaxFlows: n, HistorySize: 1})
		if err != nil {
			t.Fatal(err)
		}
		per := float64(tb.MemoryBytes()) / float64(tb.Capacity())
		tb.Close()
		if per > 128 {
			t.Errorf("%d flows: %.1f bytes per flow, want <= 128", n, per)
		}
	}
}

// The index, driven by random inserts and removes, agrees with a map.
func TestIndexAgainstModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const slots = 1000
	ix := index{e: make([]uint64, 3*slots)}
	model := map[uint32]uint64{} // slot -> hash
	// Hashes with deliberately few distinct home buckets to force long runs
	// and wrap-around.
	hash := func() uint64 {
		if r.IntN(2) == 0 {
			return uint64(r.Uint32N(4))<<32 | uint64(r.Uint32()) | 0xfffffff0<<32
		}
		return r.Uint64()
	}
	for step := 0; step < 200000; step++ {
		slot := uint32(r.IntN(slots))
		if h, ok := model[slot]; ok {
			ix.remove(h, slot, Original)
			delete(model, slot)
		} else {
			h := hash()
			if ix.insert(h, slot, Original) { // refused past maxProbe
				model[slot] = h
			}
		}
		if step%1000 == 0 {
			for slot, h := range model {
				if !ixHas(&ix, h, slot) {
					t.Fatalf("step %d: slot %d missing", step, slot)
				}
			}
			n := 0
			for _, e := range ix.e {
				if e != 0 {
					n++
				}
			}
			if n != len(model) {
				t.Fatalf("step %d: %d entries, model has %d", step, n, len(model))
			}
		}
	}
}

func ixHas(ix *index, h uint64, slot uint32) bool {
	want := makeEntry(h, slot, Original)
	i := ix.home(uint32(h >> 32))
	for ix.e[i] != 0 {
		if ix.e[i] == want {
			return true
		}
		if i++; i == len(ix.e) {
			i = 0
		}
	}
	return false
}

func TestTableFull(t *testing.T) {
	newFull := func(t *testing.T, n int, open func(s *Shard, i int, now Time)) (*Table, *Shard) {
		tb, err := New(Config{MaxFlows: n, Memory: MemoryHeap, HistorySize: 16})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tb.Close)
		s := tb.Shard(0)
		for i := 0; i < n; i++ {
			open(s, i, Second)
		}
		if tb.Len() != n {
			t.Fatalf("filled %d of %d", tb.Len(), n)
		}
		return tb, s
	}
	syn := func(i int) Packet {
		k, _, _ := synthKey(i, false)
		return Packet{Key: k, Flags: SYN, Seq: uint32(i), Window: 1000, WScale: -1}
	}
	extra := syn(1 << 20)

	t.Run("established flows are never evicted", func(t *testing.T) {
		// (Unanswered SYN_SENT entries are: evict_test.go.)
		tb, s := newFull(t, 64, func(s *Shard, i int, now Time) { establishOne(t, s, i, now) })
		v := s.Create(&extra, NewFlow{}, 2*Second)
		if v.Action != Drop || v.Reason != drop.TableFull {
			t.Fatalf("got %+v, want table_full", v)
		}
		st := tb.Stats()
		if st.Drops[drop.TableFull] != 1 || st.Counters[CtrEvicted] != 0 || tb.Len() != 64 {
			t.Fatalf("stats %+v len %d", st.Counters, tb.Len())
		}
		// Existing flows are unaffected.
		for i := 0; i < 64; i++ {
			k, _, _ := synthKey(i, false)
			if _, _, ok := s.Lookup(&k, 2*Second); !ok {
				t.Fatalf("flow %d gone", i)
			}
		}
	})
	t.Run("a closing entry is evicted and counted", func(t *testing.T) {
		tb, s := newFull(t, 64, func(s *Shard, i int, now Time) { establishOne(t, s, i, now) })
		// Reset flow 10: exact RST -> CLOSE.
		k, rk, _ := synthKey(10, false)
		cisn := uint32(10) * 7919
		rst := Packet{Key: k, Flags: RST, Seq: cisn + 1, WScale: -1}
		if v := s.Track(&rst, 2*Second); v.State != TCPClose {
			t.Fatalf("rst: %+v", v)
		}
		_ = rk
		if v := s.Create(&extra, NewFlow{}, 3*Second); v.Action != Forward {
			t.Fatalf("got %+v, want the closed entry evicted", v)
		}
		if got := tb.Stats().Counters[CtrEvicted]; got != 1 {
			t.Fatalf("evicted = %d", got)
		}
		if _, _, ok := s.Lookup(&k, 3*Second); ok {
			t.Fatalf("evicted flow still found")
		}
	})
	t.Run("an expired entry is reused before anything is evicted", func(t *testing.T) {
		tb, s := newFull(t, 64, func(s *Shard, i int, now Time) {
			p := syn(i)
			s.Create(&p, NewFlow{}, now)
		})
		later := Second + DefaultProfile.SynSent + Second
		if v := s.Create(&extra, NewFlow{}, later); v.Action != Forward {
			t.Fatalf("got %+v", v)
		}
		st := tb.Stats()
		if st.Counters[CtrEvicted] != 0 || st.Counters[CtrExpired] != 1 {
			t.Fatalf("evicted %d expired %d", st.Counters[CtrEvicted], st.Counters[CtrExpired])
		}
	})
}

// establishOne opens synthetic flow i to ESTABLISHED in s.
func establishOne(t testing.TB, s *Shard, i int, now Time) {
	k, rk, _ := synthKey(i, false)
	cisn, sisn := uint32(i)*7919, uint32(i)*104729
	for _, p := range []Packet{
		{Key: k, Flags: SYN, Seq: cisn, Window: 1000, WScale: -1},
		{Key: rk, Flags: SYNACK, Seq: sisn, Ack: cisn + 1, Window: 1000, WScale: -1},
		{Key: k, Flags: ACK, Seq: cisn + 1, Ack: sisn + 1, Window: 1000, WScale: -1},
	} {
		v := s.Track(&p, now)
		if v.Action == Open {
			v = s.Create(&p, NewFlow{}, now)
		}
		if v.Action != Forward {
			t.Fatalf("flow %d: %+v", i, v)
		}
	}
}

func TestExpireIsBounded(t *testing.T) {
	tb, s := newTestTable(t, Policy{})
	for i := 0; i < 500; i++ {
		k, _, _ := synthKey(i, false)
		p := Packet{Key: k, Flags: SYN, Seq: 1, WScale: -1}
		s.Create(&p, NewFlow{}, Second)
	}
	later := 2*Second + DefaultProfile.SynSent
	total := 0
	for call := 0; call < 100 && total < 500; call++ {
		n := s.Expire(later, 16)
		if n > 16 {
			t.Fatalf("Expire(16) released %d", n)
		}
		total += n
	}
	if total != 500 || tb.Len() != 0 || tb.Stats().Counters[CtrExpired] != 500 {
		t.Fatalf("released %d, len %d", total, tb.Len())
	}
}

func TestSetPolicyValidatesWhole(t *testing.T) {
	tb, _ := newTestTable(t, Policy{})
	bad := NSXGatewayProfile
	bad.Name = "bad"
	bad.Established = 0
	if err := tb.SetPolicy(Policy{Profiles: []Profile{DefaultProfile, bad}, Liberal: true}); err == nil {
		t.Fatal("invalid profile accepted")
	}
	if tb.Policy().Liberal {
		t.Fatal("a refused policy was partly applied")
	}
	if err := tb.SetPolicy(Policy{Profiles: []Profile{DefaultProfile, NSXGatewayProfile}}); err != nil {
		t.Fatal(err)
	}
	if i, ok := tb.ProfileIndex("nsx-gateway"); !ok || i != 1 {
		t.Fatalf("nsx-gateway index %d %v", i, ok)
	}
}

func TestControlWithoutOwnerTimesOut(t *testing.T) {
	tb, _ := newTestTable(t, Policy{})
	c, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := tb.Dump(c, Filter{}, Second, func(*FlowInfo) bool { return true })
	if !errors.Is(err, ErrNotServed) {
		t.Fatalf("got %v", err)
	}
}

// Workers insert, look up, update and expire flows in their shards while
// control-plane goroutines dump, flush, explain, read stats and events and
// swap the policy. Run with -race: every flow access must be the owner's.
func TestConcurrentControlAndData(t *testing.T) {
	const shards, perShard = 2, 2000
	tb, err := New(Config{MaxFlows: shards * perShard * 2, Shards: shards, HistorySize: 256, EventRingSize: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	var clock atomic.Int64
	clock.Store(int64(Second))
	stop := make(chan struct{})
	var workers, ctl sync.WaitGroup
	var forwarded atomic.Int64
	for w := 0; w < shards; w++ {
		workers.Add(1)
		go func(s *Shard, base int) {
			defer workers.Done()
			r := rand.New(rand.NewPCG(uint64(base), 9))
			var batch [32]Packet
			var out [32]Verdict
			for round := 0; ; round++ {
				select {
				case <-stop:
					return
				default:
				}
				now := Time(clock.Add(int64(10 * Millisecond)))
				for i := range batch {
					j := base + r.IntN(perShard)
					k, rk, _ := synthKey(j, false)
					switch r.IntN(4) {
					case 0:
						batch[i] = Packet{Key: k, Flags: SYN, Seq: uint32(j) * 7919, Window: 1000, WScale: -1}
					case 1:
						batch[i] = Packet{Key: rk, Flags: SYNACK, Seq: uint32(j) * 104729, Ack: uint32(j)*7919 + 1, Window: 1000, WScale: -1}
					default:
						batch[i] = Packet{Key: k, Flags: ACK, Seq: uint32(j)*7919 + 1, Ack: uint32(j)*104729 + 1, Window: 1000, WScale: -1}
					}
				}
				s.TrackBatch(batch[:], out[:], now)
				for i := range out {
					switch out[i].Action {
					case Open:
						s.Create(&batch[i], NewFlow{}, now)
					case Forward:
						forwarded.Add(1)
					}
				}
				s.Expire(now, 64)
				s.Serve(now)
				if round%50 == 0 {
					runtimeGosched()
				}
			}
		}(tb.Shard(w), w*perShard*10)
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	ctlLoop := func(fn func()) {
		ctl.Add(1)
		go func() {
			defer ctl.Done()
			for time.Now().Before(deadline) {
				fn()
			}
		}()
	}
	bg := context.Background()
	ctlLoop(func() {
		n := 0
		if err := tb.Dump(bg, Filter{}, Time(clock.Load()), func(*FlowInfo) bool { n++; return true }); err != nil {
			t.Error(err)
		}
	})
	ctlLoop(func() {
		k, _, _ := synthKey(7, false)
		if _, err := tb.Explain(bg, k, 4, Time(clock.Load())); err != nil {
			t.Error(err)
		}
		time.Sleep(time.Millisecond)
	})
	ctlLoop(func() {
		if _, err := tb.Flush(bg, Filter{State: TCPSynSent}, Time(clock.Load())); err != nil {
			t.Error(err)
		}
		time.Sleep(5 * time.Millisecond)
	})
	ctlLoop(func() {
		var ev [64]Event
		tb.ReadEvents(ev[:])
		_ = tb.Stats()
		_ = tb.Len()
		_ = tb.SetPolicy(Policy{Liberal: rand.IntN(2) == 0})
		time.Sleep(100 * time.Microsecond)
	})
	ctl.Wait()
	close(stop)
	workers.Wait()
	if forwarded.Load() == 0 {
		t.Fatal("workers forwarded nothing")
	}
	st := tb.Stats()
	if st.Counters[CtrCreated] == 0 || st.Counters[CtrFlushed] == 0 {
		t.Fatalf("created %d flushed %d", st.Counters[CtrCreated], st.Counters[CtrFlushed])
	}
}

func TestReleaseHook(t *testing.T) {
	h := newHarness(t, Policy{})
	var got []Translation
	h.s.OnRelease(func(orig *Key, nat Translation, carried bool, now Time) { got = append(got, nat) })
	c := &conn{t: t, cport: 41000, sport: 7000, cisn: 1, sisn: 2}
	h.send(c.out(SYN, 1, 0, 0), c.sport)
	h.clk.Advance(DefaultProfile.SynSent + Second)
	if n := h.s.Expire(h.clk.now, 100); n != 1 {
		t.Fatalf("expired %d", n)
	}
	if len(got) != 1 || got[0] != (Translation{Addr: h.nat, Port: 7000}) {
		t.Fatalf("hook saw %+v", got)
	}
}
