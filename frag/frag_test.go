package frag

import (
	"bytes"
	"encoding/binary"
	"testing"
)

const ms = int64(1e6)

type verdict struct {
	forward bool
	newSrc  [16]byte
}

func key(id uint32) Key {
	k := Key{ID: id, Proto: 17, Zone: 1}
	copy(k.Src[:], []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2})
	copy(k.Dst[:], []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 2})
	return k
}

func newTable(t testing.TB, c Config) *Table[verdict] {
	t.Helper()
	tab, err := New[verdict](c)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

var small = Config{Datagrams: 64, HoldFrames: 32, FrameSize: 256, Timeout: 500 * ms}

func frame(tag byte, n int) []byte { return bytes.Repeat([]byte{tag}, n) }

// checkPool asserts the pool's bookkeeping: every frame is either free or
// held by exactly one live datagram, and the counts agree.
func checkPool[V any](t testing.TB, tab *Table[V]) {
	t.Helper()
	owner := make([]int, len(tab.frameLen))
	for _, f := range tab.free {
		owner[f]++
	}
	if used, _ := tab.Len(); used != tab.live {
		t.Fatalf("%d slots in use, live count %d", used, tab.live)
	}
	for i := range tab.slots {
		s := &tab.slots[i]
		if !s.used {
			continue
		}
		n := 0
		for f := s.heldHead; f != noFrame; f = tab.next[f] {
			owner[f]++
			n++
			if n > MaxHeldPerDatagram {
				t.Fatalf("slot %d: held list longer than %d (cycle?)", i, MaxHeldPerDatagram)
			}
		}
		if n != int(s.nheld) {
			t.Fatalf("slot %d: nheld %d, list has %d", i, s.nheld, n)
		}
	}
	for f, n := range owner {
		if n != 1 {
			t.Fatalf("pool frame %d is free or held %d times, want exactly once", f, n)
		}
	}
}

func TestInOrder(t *testing.T) {
	tab := newTable(t, small)
	k := key(7)
	v := verdict{forward: true, newSrc: [16]byte{15: 9}}
	held, ok := tab.Note(&k, 0, v, 1480, true)
	if !ok || len(held) != 0 {
		t.Fatalf("Note = %d held, %v; want 0, true", len(held), ok)
	}
	if held, ok := tab.Note(&k, 0, verdict{}, 1480, true); !ok || held != nil {
		t.Fatalf("second Note = %v, %v; want nil, true", held, ok)
	}
	got, st := tab.Follow(&k, 1*ms, frame(1, 100), 1480, 1480, true)
	if st != Known || got != v {
		t.Fatalf("second fragment: %v %v, want Known %v", st, got, v)
	}
	if n, _ := tab.Len(); n != 1 {
		t.Fatalf("datagrams = %d before the last fragment, want 1", n)
	}
	// The last fragment completes the datagram: 1480+1480+500 bytes of 3460.
	if _, st := tab.Follow(&k, 2*ms, frame(2, 100), 2960, 500, false); st != Known {
		t.Fatalf("last fragment: %v, want Known", st)
	}
	if n, h := tab.Len(); n != 0 || h != 0 {
		t.Fatalf("after the last fragment: %d datagrams, %d held; want 0, 0", n, h)
	}
	if tab.Stats.Completed != 1 || tab.Stats.Followed != 2 || tab.Stats.Noted != 1 {
		t.Fatalf("stats %+v", tab.Stats)
	}
	// A duplicate after completion finds nothing: it is held, then expires.
	if _, st := tab.Follow(&k, 3*ms, frame(2, 100), 2960, 500, false); st != Held {
		t.Fatalf("duplicate after completion: %v, want Held", st)
	}
	checkPool(t, tab)
}

func TestOutOfOrder(t *testing.T) {
	tab := newTable(t, small)
	k := key(8)
	// The last fragment, then the middle one, arrive before the first.
	if _, st := tab.Follow(&k, 0, frame(3, 60), 2960, 500, false); st != Held {
		t.Fatalf("last fragment first: %v, want Held", st)
	}
	if _, st := tab.Follow(&k, 1*ms, frame(4, 70), 1480, 1480, true); st != Held {
		t.Fatalf("middle fragment: %v, want Held", st)
	}
	other := key(9)
	if _, st := tab.Follow(&other, 1*ms, frame(5, 80), 8, 8, false); st != Held {
		t.Fatalf("another datagram: %v, want Held", st)
	}
	checkPool(t, tab)
	v := verdict{forward: true}
	held, ok := tab.Note(&k, 2*ms, v, 1480, true)
	if !ok || len(held) != 2 {
		t.Fatalf("Note returned %d held frames, %v; want 2, true", len(held), ok)
	}
	if !bytes.Equal(held[0], frame(3, 60)) || !bytes.Equal(held[1], frame(4, 70)) {
		t.Fatalf("held frames out of arrival order or changed: %x / %x", held[0][:1], held[1][:1])
	}
	// Every byte (3460) was seen: the datagram is forgotten; the other stays.
	if n, h := tab.Len(); n != 1 || h != 1 {
		t.Fatalf("after Note: %d datagrams, %d held; want 1, 1", n, h)
	}
	if tab.Stats.Released != 2 || tab.Stats.Completed != 1 {
		t.Fatalf("stats %+v", tab.Stats)
	}
	checkPool(t, tab)
}

func TestExpiry(t *testing.T) {
	tab := newTable(t, small)
	k := key(10)
	if _, st := tab.Follow(&k, 0, frame(1, 10), 8, 8, true); st != Held {
		t.Fatal(st)
	}
	tab.Expire(small.Timeout-1, len(tab.slots)/Ways)
	if _, h := tab.Len(); h != 1 {
		t.Fatalf("held frame freed before its deadline")
	}
	tab.Expire(small.Timeout, len(tab.slots)/Ways)
	if n, h := tab.Len(); n != 0 || h != 0 {
		t.Fatalf("after the deadline: %d datagrams, %d held; want 0, 0", n, h)
	}
	if tab.Stats.ExpiredHeld != 1 || tab.Stats.ExpiredState != 1 {
		t.Fatalf("stats %+v", tab.Stats)
	}
	// A noted verdict lives Timeout after Note, and no longer.
	tab.Note(&k, 1000*ms, verdict{forward: true}, 8, true)
	if _, st := tab.Follow(&k, 1000*ms+small.Timeout-1, nil, 8, 8, true); st != Known {
		t.Fatalf("verdict before its deadline: %v, want Known", st)
	}
	if _, st := tab.Follow(&k, 1000*ms+small.Timeout, frame(1, 10), 16, 8, true); st != Held {
		t.Fatalf("verdict at its deadline: %v, want Held (state expired)", st)
	}
	checkPool(t, tab)
}

func TestBounds(t *testing.T) {
	// One bucket: Ways datagrams fit, the next is refused until one expires.
	tab := newTable(t, Config{Datagrams: Ways, HoldFrames: 4, FrameSize: 64, Timeout: 100 * ms})
	for i := range Ways {
		k := key(uint32(i))
		if _, ok := tab.Note(&k, 0, verdict{}, 8, true); !ok {
			t.Fatalf("datagram %d refused in a bucket of %d", i, Ways)
		}
	}
	k := key(99)
	if _, ok := tab.Note(&k, 1, verdict{}, 8, true); ok {
		t.Fatal("Note in a full bucket succeeded")
	}
	if _, st := tab.Follow(&k, 1, frame(1, 8), 8, 8, true); st != TableFull {
		t.Fatalf("Follow in a full bucket: %v, want TableFull", st)
	}
	if _, ok := tab.Note(&k, 100*ms, verdict{}, 8, true); !ok {
		t.Fatal("Note refused though the bucket's datagrams expired")
	}
	if tab.Stats.Refused != 2 {
		t.Fatalf("Refused = %d, want 2", tab.Stats.Refused)
	}

	tab = newTable(t, Config{Datagrams: 64, HoldFrames: MaxHeldPerDatagram + 1, FrameSize: 64, Timeout: 100 * ms})
	if _, st := tab.Follow(&k, 0, frame(1, 65), 8, 8, true); st != TooBig {
		t.Fatalf("65-byte frame in 64-byte pool: %v, want TooBig", st)
	}
	for i := range MaxHeldPerDatagram {
		if _, st := tab.Follow(&k, 0, frame(1, 64), 8*(i+1), 8, true); st != Held {
			t.Fatalf("fragment %d: %v, want Held", i, st)
		}
	}
	if _, st := tab.Follow(&k, 0, frame(1, 64), 8*17, 8, true); st != TooMany {
		t.Fatalf("fragment %d: %v, want TooMany", MaxHeldPerDatagram, st)
	}
	k2 := key(100)
	if _, st := tab.Follow(&k2, 0, frame(1, 64), 8, 8, true); st != Held {
		t.Fatalf("last pool frame: %v, want Held", st)
	}
	k3 := key(101)
	if _, st := tab.Follow(&k3, 0, frame(1, 64), 8, 8, true); st != PoolFull {
		t.Fatalf("empty pool: %v, want PoolFull", st)
	}
	checkPool(t, tab)
}

func TestNew(t *testing.T) {
	for _, c := range []Config{
		{},
		{Datagrams: 8, Timeout: 0},
		{Datagrams: 8, Timeout: 1, HoldFrames: 1},
		{Datagrams: 1 << 23, Timeout: 1},
		{Datagrams: 8, Timeout: 1, HoldFrames: 1, FrameSize: 1 << 17},
	} {
		if _, err := New[verdict](c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

// TestKeysSpread: datagrams that differ only in the fields a sender
// chooses freely (the identification, the low source bits) spread over the
// buckets under the keyed hash, so a sender cannot aim them at one bucket
// without the table's seed.
func TestKeysSpread(t *testing.T) {
	tab := newTable(t, Config{Datagrams: 4096, Timeout: 1})
	buckets := len(tab.slots) / Ways
	for _, vary := range []string{"id", "src"} {
		load := make([]int, buckets)
		const n = 4096
		for i := range n {
			k := key(0)
			if vary == "id" {
				k.ID = uint32(i) << 16 // high ID bits only: low bits constant
			} else {
				binary.BigEndian.PutUint32(k.Src[12:], uint32(i)<<20)
			}
			load[tab.bucket(&k)/Ways]++
		}
		worst := 0
		for _, l := range load {
			worst = max(worst, l)
		}
		// 4096 keys in 512 buckets: 8 per bucket on average; a uniform hash
		// gives a worst bucket near 20. A hash that ignored the varied bits
		// would put all 4096 in one.
		if worst > 32 {
			t.Errorf("varying %s: worst bucket holds %d of %d keys", vary, worst, n)
		}
	}
}

func TestZeroAlloc(t *testing.T) {
	tab := newTable(t, small)
	k := key(1)
	f := frame(1, 100)
	now := int64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		now += ms
		k.ID++
		tab.Follow(&k, now, f, 1480, 100, false)
		tab.Note(&k, now, verdict{forward: true}, 1480, true)
		tab.Follow(&k, now, f, 1480, 100, false)
		tab.Expire(now, 2)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per datagram, want 0", allocs)
	}
	if tab.Stats.Completed == 0 || tab.Stats.Released == 0 {
		t.Fatalf("the measured path did not run: %+v", tab.Stats)
	}
}

func BenchmarkFollow(b *testing.B) {
	tab := newTable(b, Config{Datagrams: 4096, HoldFrames: 256, FrameSize: 2048, Timeout: 1000 * ms})
	keys := make([]Key, 1024)
	for i := range keys {
		keys[i] = key(uint32(i))
		tab.Note(&keys[i], 0, verdict{forward: true}, 1480, true)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := &keys[i&1023]
		tab.Follow(k, 1, nil, 1480, 1480, true)
	}
}

func BenchmarkDatagram(b *testing.B) {
	tab := newTable(b, Config{Datagrams: 4096, HoldFrames: 256, FrameSize: 2048, Timeout: 1000 * ms})
	f := frame(1, 1500)
	k := key(0)
	b.ReportAllocs()
	now := int64(0)
	for b.Loop() {
		now++
		k.ID++
		tab.Follow(&k, now, f, 1480, 1480, false) // out of order: held
		tab.Note(&k, now, verdict{forward: true}, 1480, true)
		tab.Expire(now, 1)
	}
}
