package conntrack

import "math/bits"

// index is an open-addressing hash index (linear probing, backward-shift
// deletion, no tombstones) from a Key's hash to a flow slot and direction.
// Each flow has two entries: its original and its reply key.
//
// An entry is a uint64: the high 32 bits of the key's hash (the tag), one
// direction bit, and slot+1 in the low 31 bits; 0 is an empty entry. The
// home bucket of a hash is fastrange(tag, len): a multiply and a shift, so
// the index needs no power-of-two size and is sized at 3 entries per flow
// (load factor at most 2/3 when the table is full: 24 bytes per flow).
//
// A probe run is bounded: every entry lies fewer than maxProbe positions
// after its home. Insert refuses to go further (the flow is refused,
// drop.ProbeLimit) and deletion only moves entries toward their home, so
// a lookup gives up after maxProbe positions. The index hash is keyed
// (hashKey), so runs that long come only from chance: at the index's
// largest load (2/3) the longest run among 8M random entries is about 120.
//
// Only the owning worker touches an index.
type index struct {
	e       []uint64
	removes uint64 // entries removed so far: a removal may shift entries back
}

const (
	entryDir  = 1 << 31
	entrySlot = entryDir - 1
)

func makeEntry(h uint64, slot uint32, d Dir) uint64 {
	return h&^(1<<32-1) | uint64(d)<<31 | uint64(slot+1)
}

func entryTag(e uint64) uint32    { return uint32(e >> 32) }
func entrySlotOf(e uint64) uint32 { return uint32(e&entrySlot) - 1 }
func entryDirOf(e uint64) Dir     { return Dir(e >> 31 & 1) }

func (ix *index) home(tag uint32) int {
	hi, _ := bits.Mul64(uint64(tag)<<32, uint64(len(ix.e)))
	return int(hi)
}

// maxProbe bounds the distance from an entry's home to the entry.
const maxProbe = 256

// free returns the first empty position of hash h's probe run, or -1 if
// there is none within maxProbe positions of its home.
func (ix *index) free(h uint64) int {
	e := ix.e
	i := ix.home(uint32(h >> 32))
	for n := 0; n < maxProbe; n++ {
		if e[i] == 0 {
			return i
		}
		if i++; i == len(e) {
			i = 0
		}
	}
	return -1
}

// insert adds an entry, or reports false if h's probe run has no empty
// position within maxProbe of its home. The caller guarantees the key is
// absent (the index is sized for 3 entries per slot, so it is never full).
func (ix *index) insert(h uint64, slot uint32, d Dir) bool {
	i := ix.free(h)
	if i < 0 {
		return false
	}
	ix.e[i] = makeEntry(h, slot, d)
	return true
}

// remove deletes the entry for (slot, d) reached from hash h and closes the
// gap by shifting later entries of the same probe run back (Knuth 6.4
// Algorithm R), so lookups never need tombstones.
func (ix *index) remove(h uint64, slot uint32, d Dir) {
	e := ix.e
	n := len(e)
	ix.removes++
	want := makeEntry(h, slot, d)
	i := ix.home(uint32(h >> 32))
	for probes := 0; e[i] != want; probes++ {
		if e[i] == 0 || probes == maxProbe {
			return // not present: nothing to do
		}
		if i++; i == n {
			i = 0
		}
	}
	// i is the hole. Move back any later entry whose home is not in (i, j].
	j := i
	for {
		if j++; j == n {
			j = 0
		}
		if e[j] == 0 {
			break
		}
		k := ix.home(entryTag(e[j]))
		// The entry at j may fill the hole at i unless its home k lies
		// cyclically in (i, j].
		if (j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j)) {
			e[i] = e[j]
			i = j
		}
	}
	e[i] = 0
}
