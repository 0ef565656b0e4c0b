package snat

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/edgegw/edge/conntrack"
)

// A weak hash key makes collisions and wrap-around common in small tables.
var testKey = hashKey{1, 2, 3, 4}

func randTuple(r *rand.Rand, space int) tuple {
	i := r.IntN(space)
	return tuple{dst: [16]byte{15: byte(i), 14: byte(i >> 8)}, dport: uint16(i % 7), naddr: 1, proto: 6}
}

// dests against a map: adds, counts and deletions with backward shift.
func TestDestsModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var d dests
	d.init(16, testKey)
	model := map[tuple]uint32{}
	for step := range 200000 {
		k := randTuple(r, 40)
		if r.IntN(2) == 0 {
			i := d.add(&k)
			if _, ok := model[k]; !ok && len(model) >= 16 {
				if i >= 0 {
					t.Fatalf("step %d: add beyond max", step)
				}
				continue
			}
			if i < 0 {
				t.Fatalf("step %d: add failed with %d entries", step, len(model))
			}
			d.e[i].inUse++
			model[k]++
		} else if i := d.find(&k); i >= 0 {
			d.e[i].inUse--
			d.tidy(i)
			if model[k]--; model[k] == 0 {
				delete(model, k)
			}
		} else if _, ok := model[k]; ok {
			t.Fatalf("step %d: %v lost", step, k)
		}
		if step%1000 == 0 {
			if d.n != len(model) {
				t.Fatalf("step %d: %d entries, model %d", step, d.n, len(model))
			}
			for k, c := range model {
				if i := d.find(&k); i < 0 || d.e[i].inUse != c {
					t.Fatalf("step %d: %v count wrong", step, k)
				}
			}
		}
	}
}

// quarantine against a model: insert, supersede, remove, expire and
// forget the oldest when full.
func TestQuarantineModel(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var d dests
	d.init(64, testKey)
	var q quarantine
	const size, hold = 16, 50
	q.init(size, hold, testKey, &d)
	type ent struct {
		t   conntrack.Time
		seq int
	}
	model := map[tuple]ent{}
	now := conntrack.Time(1000)
	seq := 0
	for step := range 200000 {
		now += conntrack.Time(r.IntN(3))
		k := randTuple(r, 60)
		k.nport = uint16(r.IntN(4))
		switch r.IntN(4) {
		case 0, 1:
			q.insert(&k, now, false)
			model[k] = ent{now, seq}
			seq++
		case 2:
			q.remove(&k)
			delete(model, k)
		case 3:
			q.trim(now, 3)
		}
		if step%97 == 0 {
			// Check the whole key space against the model.
			for i := range 60 * 4 {
				mk := tuple{dst: [16]byte{15: byte(i / 4), 14: byte(i / 4 >> 8)}, dport: uint16(i / 4 % 7), naddr: 1, proto: 6, nport: uint16(i % 4)}
				gt, gq := q.lookup(&mk, now)
				e, ok := model[mk]
				switch {
				case !ok || now-e.t >= hold:
					if gq {
						t.Fatalf("step %d: %v quarantined, want not", step, mk)
					}
				case seq-e.seq <= size:
					// Fewer than size releases since: it cannot
					// have been forgotten.
					if !gq || gt != e.t {
						t.Fatalf("step %d: %v = (%d, %v), want (%d, true)", step, mk, gt, gq, e.t)
					}
				case gq && gt != e.t:
					t.Fatalf("step %d: %v released at %d, want %d", step, mk, gt, e.t)
				}
			}
			if q.len() > size {
				t.Fatalf("ring holds %d", q.len())
			}
			live := 0
			for s := q.head; s != q.tail; s++ {
				e := &q.ring[s&q.rmask]
				if e.dead {
					continue
				}
				live++
				if pos, slot := q.find(&e.k, uint32(q.key.hash(&e.k))); pos < 0 || slot != s&q.rmask {
					t.Fatalf("step %d: live entry %v not indexed", step, e.k)
				}
			}
			idx := 0
			for _, x := range q.ix {
				if x != 0 {
					idx++
				}
			}
			if idx != live {
				t.Fatalf("step %d: %d index entries for %d live", step, idx, live)
			}
		}
	}
}

// Counted quarantine entries keep their destination alive and uncount on
// expiry.
func TestQuarantineCounts(t *testing.T) {
	var d dests
	d.init(8, testKey)
	var q quarantine
	q.init(4, 10, testKey, &d)
	k := tuple{dst: [16]byte{1}, dport: 80, naddr: 1, proto: 6}
	i := d.add(&k)
	d.e[i].quar = 2
	k1, k2 := k, k
	k1.nport, k2.nport = 1, 2
	q.insert(&k1, 0, true)
	q.insert(&k2, 5, true)
	q.insert(&k1, 6, true) // supersedes: one uncount
	d.e[d.find(&k)].quar++
	if got := d.e[d.find(&k)].quar; got != 2 {
		t.Fatalf("quar %d", got)
	}
	q.trim(20, 10)
	if d.find(&k) >= 0 || q.len() != 0 {
		t.Fatalf("destination kept after its quarantine ended: %d left", q.len())
	}
}

// Destination lists against the ring: with counted entries, supersedes,
// removals, expiry, forgetting and oldest-first reuse, every destination's
// count equals its live entries, and its list reaches exactly those, oldest
// first.
func TestQuarantineLists(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var d dests
	d.init(64, testKey)
	var q quarantine
	const size, hold = 32, 40
	q.init(size, hold, testKey, &d)
	now := conntrack.Time(1000)
	dest := func(i int) tuple { return tuple{dst: [16]byte{15: byte(i)}, dport: 80, naddr: 1, proto: 6} }
	for step := range 100000 {
		now += conntrack.Time(r.IntN(2))
		k := dest(r.IntN(5))
		switch op := r.IntN(10); {
		case op < 5: // a release, counted as Allocator.Release does
			j := d.add(&k)
			d.e[j].quar++
			k.nport = uint16(r.IntN(12))
			q.insert(&k, now, true)
		case op < 6:
			k.nport = uint16(r.IntN(12))
			q.remove(&k)
		case op < 8:
			budget := 8
			if s, ok := q.oldest(&k, &budget); ok {
				// It must be the oldest live entry of k.
				for x := q.head; x != q.tail; x++ {
					e := &q.ring[x&q.rmask]
					if !e.dead && e.counted && e.k.dst == k.dst && x&q.rmask != s {
						if e.t < q.ring[s].t {
							t.Fatalf("step %d: oldest gave t=%d, %v has t=%d", step, q.ring[s].t, e.k, e.t)
						}
					}
				}
				q.kill(s)
			}
		default:
			q.trim(now, 4)
		}
		for i := range 5 {
			k := dest(i)
			live := map[uint32]bool{}
			for x := q.head; x != q.tail; x++ {
				e := &q.ring[x&q.rmask]
				if !e.dead && e.counted && e.k.dst == k.dst {
					live[x&q.rmask] = true
				}
			}
			j := d.find(&k)
			if j < 0 {
				if len(live) != 0 {
					t.Fatalf("step %d: destination %d gone with %d live entries", step, i, len(live))
				}
				continue
			}
			e := &d.e[j]
			if int(e.quar) != len(live) {
				t.Fatalf("step %d: destination %d counts %d, has %d", step, i, e.quar, len(live))
			}
			seen, last := 0, conntrack.Time(0)
			for s, n := e.qhead, 0; s != 0; s = q.ring[s-1].next {
				if n++; n > size {
					t.Fatalf("step %d: list of %d loops", step, i)
				}
				qe := &q.ring[s-1]
				if qe.k.dst != k.dst || qe.t < last {
					t.Fatalf("step %d: list of %d holds %v at t=%d after t=%d", step, i, qe.k, qe.t, last)
				}
				last = qe.t
				if !qe.dead {
					if !live[s-1] {
						t.Fatalf("step %d: list of %d reaches a dead slot", step, i)
					}
					seen++
				}
				if qe.next == 0 && e.qtail != s {
					t.Fatalf("step %d: tail %d, list ends at %d", step, e.qtail, s)
				}
			}
			if seen != len(live) {
				t.Fatalf("step %d: list of %d reaches %d of %d live entries", step, i, seen, len(live))
			}
		}
	}
}

// The memory figures in the package doc.
func TestEntrySizes(t *testing.T) {
	if s := unsafe.Sizeof(tuple{}); s != 24 {
		t.Errorf("tuple: %d bytes", s)
	}
	if s := unsafe.Sizeof(qent{}); s != 40 {
		t.Errorf("qent: %d bytes (the doc says 40, plus 16 of index)", s)
	}
	if s := unsafe.Sizeof(dent{}); s != 104 {
		t.Errorf("dent: %d bytes (the doc says 104)", s)
	}
	if s := unsafe.Sizeof(mapEntry{}); s != 48 {
		t.Errorf("mapEntry: %d bytes (the doc says 48)", s)
	}
	if s := unsafe.Sizeof(countEntry{}); s != 28 {
		t.Errorf("countEntry: %d bytes (the doc says 28)", s)
	}
}
