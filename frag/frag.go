// Package frag lets the later fragments of an IP datagram follow the verdict
// and translation its first fragment got, without reassembling it (virtual
// reassembly, as VPP's shallow reassembly does).
//
// Only a datagram's first fragment carries the transport header, so only it
// can be tracked by conntrack, judged by the firewall and translated by SNAT.
// The worker records what happened to it with [Table.Note]; every later
// fragment of the same datagram, identified by (zone, source, destination,
// protocol, identification), asks [Table.Follow] for that verdict and gets
// the same address rewrite (its L4 checksum lives in the first fragment, so
// an address rewrite and, for IPv4, the header checksum is all it needs).
// A later fragment that arrives before its first fragment is copied into a
// small pool by Follow and handed back by Note, in arrival order, when the
// first fragment is decided; held frames not claimed within the timeout are
// freed by [Table.Expire] or by the next use of their slot, and counted.
//
// Everything is bounded and preallocated: the table is set-associative
// (a keyed hash picks a bucket of [Ways] slots, so no probe run can grow),
// a datagram holds at most [MaxHeldPerDatagram] frames, and the pool holds
// Config.HoldFrames frames in all. A datagram is forgotten when the bytes
// of its fragments add up to its length (the last fragment gives it), or at
// its deadline. The hash is keyed per table (hash/maphash), because every
// field of the key is chosen by the sender.
//
// What the table does not do: it does not compare fragment contents, so it
// neither detects nor resolves overlaps; the caller refuses non-first
// fragments that would overlap the transport header (RFC 1858), which is
// what a translation depends on. It does not re-fragment.
//
// Concurrency: a Table is owned by one goroutine (a worker); nothing is
// locked. Its zero value is not usable: call [New]. Time is passed in (the
// batch's time in nanoseconds), never read.
package frag

import (
	"errors"
	"hash/maphash"
	"unsafe"
)

// Key identifies a datagram: its fragments share it. IPv4 addresses are
// stored IPv4-mapped. The struct is comparable and padding-free.
type Key struct {
	Src, Dst [16]byte
	ID       uint32 // IPv4 Identification (16 bits) or IPv6 Fragment header Identification
	Proto    uint8  // the upper-layer protocol
	Zone     uint8  // the zone the datagram arrived from
	_        [2]byte
}

// Ways is the number of slots in one bucket of the table.
const Ways = 8

// MaxHeldPerDatagram bounds the frames held for one datagram waiting for
// its first fragment.
const MaxHeldPerDatagram = 16

// State says what became of a later fragment given to [Table.Follow].
type State uint8

const (
	// Known: the first fragment was decided; the returned value says how.
	Known State = iota
	// Held: no first fragment was noted yet; the frame was copied into the
	// pool and [Table.Note] will hand it back.
	Held
	// The fragment found no verdict and could not be held; the caller
	// drops it.
	TableFull // no slot for a new datagram in its bucket
	PoolFull  // no free frame in the pool
	TooMany   // the datagram already holds MaxHeldPerDatagram frames
	TooBig    // the frame is larger than the pool's frames
)

// Config sizes a Table.
type Config struct {
	Datagrams  int   // datagrams tracked at once (rounded up to a power of two times Ways)
	HoldFrames int   // frames that can wait for their first fragment, in all
	FrameSize  int   // largest frame held (bytes)
	Timeout    int64 // how long a datagram's state lives after its first fragment or first held frame (ns)
}

// Stats counts what a Table did; the owner reads it (or copies it out).
type Stats struct {
	Noted        uint64 // first fragments recorded
	Followed     uint64 // later fragments that found their datagram's verdict
	Held         uint64 // frames held for a first fragment not yet seen
	Released     uint64 // held frames handed back by Note
	ExpiredHeld  uint64 // held frames freed at their datagram's deadline
	Completed    uint64 // datagrams forgotten because all their bytes were seen
	Refused      uint64 // Note or Follow that needed a new slot and found none in the bucket
	ExpiredState uint64 // datagram states that reached their deadline
}

const noFrame = -1

type slot[V any] struct {
	key      Key
	used     bool
	deadline int64
	value    V
	seen     uint32 // payload bytes of fragments seen (later fragments, and the first one's)
	total    uint32 // the datagram's payload length, once its last fragment was seen (0 before)
	known    bool   // Note was called: value is the verdict
	nheld    uint8
	heldHead int32 // first held frame (pool index), noFrame if none
	heldTail int32
}

// Table tracks datagrams whose fragments are crossing the box. V is the
// owner's record of the first fragment's verdict (drop, or forward with
// which rewrite); it should hold no pointers.
type Table[V any] struct {
	slots   []slot[V]
	mask    uint64 // bucket index mask
	seed    maphash.Seed
	timeout int64

	pool      []byte // HoldFrames frames of frameSize bytes
	frameSize int
	frameLen  []int32 // length of each pool frame in use
	next      []int32 // next held frame of the same datagram, noFrame at the end
	free      []int32 // free pool frames (a stack)
	released  [][]byte

	sweep int // next bucket Expire visits
	live  int // slots in use: Expire has nothing to do at 0 (the usual case)

	Stats Stats
}

// New returns a Table sized by c.
func New[V any](c Config) (*Table[V], error) {
	if c.Datagrams <= 0 || c.HoldFrames < 0 || c.Timeout <= 0 || (c.HoldFrames > 0 && c.FrameSize <= 0) {
		return nil, errors.New("frag: Datagrams and Timeout must be positive, FrameSize too when frames are held")
	}
	if c.Datagrams > 1<<22 || c.HoldFrames > 1<<20 || c.FrameSize > 1<<16 {
		return nil, errors.New("frag: table or pool too large")
	}
	buckets := 1
	for buckets*Ways < c.Datagrams {
		buckets <<= 1
	}
	t := &Table[V]{
		slots:     make([]slot[V], buckets*Ways),
		mask:      uint64(buckets - 1),
		seed:      maphash.MakeSeed(),
		timeout:   c.Timeout,
		pool:      make([]byte, c.HoldFrames*c.FrameSize),
		frameSize: c.FrameSize,
		frameLen:  make([]int32, c.HoldFrames),
		next:      make([]int32, c.HoldFrames),
		free:      make([]int32, c.HoldFrames),
		released:  make([][]byte, 0, MaxHeldPerDatagram),
	}
	for i := range t.free {
		t.free[i] = int32(c.HoldFrames - 1 - i)
	}
	return t, nil
}

func (k *Key) bytes() []byte { return unsafe.Slice((*byte)(unsafe.Pointer(k)), unsafe.Sizeof(*k)) }

// bucket returns the first slot index of k's bucket.
func (t *Table[V]) bucket(k *Key) int {
	return int(maphash.Bytes(t.seed, k.bytes())&t.mask) * Ways
}

// find returns k's live slot, or -1.
func (t *Table[V]) find(k *Key, now int64) int {
	b := t.bucket(k)
	for i := b; i < b+Ways; i++ {
		s := &t.slots[i]
		if s.used && s.key == *k {
			if now-s.deadline >= 0 {
				t.forget(s, true)
				return -1
			}
			return i
		}
	}
	return -1
}

// claim returns a slot for a new datagram k in its bucket (a free or expired
// one), or -1 when every slot holds a live datagram.
func (t *Table[V]) claim(k *Key, now int64) int {
	b := t.bucket(k)
	for i := b; i < b+Ways; i++ {
		s := &t.slots[i]
		if s.used && now-s.deadline >= 0 {
			t.forget(s, true)
		}
		if !s.used {
			*s = slot[V]{used: true, key: *k, deadline: now + t.timeout, heldHead: noFrame, heldTail: noFrame}
			t.live++
			return i
		}
	}
	t.Stats.Refused++
	return -1
}

// forget frees s and its held frames.
func (t *Table[V]) forget(s *slot[V], expired bool) {
	for f := s.heldHead; f != noFrame; f = t.next[f] {
		t.free = append(t.free, f)
		if expired {
			t.Stats.ExpiredHeld++
		}
	}
	if expired {
		t.Stats.ExpiredState++
	}
	s.used = false
	t.live--
	s.heldHead, s.heldTail, s.nheld = noFrame, noFrame, 0
}

// account adds a fragment's payload to s and forgets s once every byte of
// the datagram was seen. off and n are the fragment's offset and payload
// length in bytes; more is its MF flag.
func (t *Table[V]) account(s *slot[V], off, n int, more bool) {
	s.seen += uint32(n)
	if !more {
		s.total = uint32(off + n)
	}
	if s.known && s.total != 0 && s.seen >= s.total && s.nheld == 0 {
		t.Stats.Completed++
		t.forget(s, false)
	}
}

// Note records v as the verdict of datagram k's first fragment (payload
// length n, so offset 0; more is its MF flag, set for a real first
// fragment) and returns the frames held for k, in arrival order: the caller
// processes them now, as later fragments that found v. The returned slices
// stay valid until the next call to Follow. ok is false when the datagram
// could not be recorded (its bucket is full of live datagrams): its later
// fragments will find nothing. A datagram's first verdict stands: noting it
// again changes nothing and returns no frames.
func (t *Table[V]) Note(k *Key, now int64, v V, n int, more bool) (held [][]byte, ok bool) {
	i := t.find(k, now)
	if i < 0 {
		if i = t.claim(k, now); i < 0 {
			return nil, false
		}
	}
	s := &t.slots[i]
	if s.known {
		// The first verdict stands (a caller that counts one packet's
		// drop twice, or a duplicated first fragment, changes nothing).
		return nil, true
	}
	t.Stats.Noted++
	s.value, s.known = v, true
	s.deadline = now + t.timeout
	held = t.released[:0]
	for f := s.heldHead; f != noFrame; f = t.next[f] {
		off := int(f) * t.frameSize
		held = append(held, t.pool[off:off+int(t.frameLen[f])])
		t.free = append(t.free, f)
	}
	t.Stats.Released += uint64(len(held))
	s.heldHead, s.heldTail, s.nheld = noFrame, noFrame, 0
	t.account(s, 0, n, more)
	return held, true
}

// Follow returns the verdict noted for datagram k, for frame, a later
// fragment at byte offset off with n payload bytes and MF flag more (State
// Known). When no first fragment was noted (or its state expired), the
// frame is copied into the pool until it is (Held), or, when that is not
// possible, the reason is returned and the caller drops the fragment.
func (t *Table[V]) Follow(k *Key, now int64, frame []byte, off, n int, more bool) (v V, st State) {
	i := t.find(k, now)
	if i >= 0 && t.slots[i].known {
		s := &t.slots[i]
		t.Stats.Followed++
		v = s.value
		t.account(s, off, n, more)
		return v, Known
	}
	if len(frame) > t.frameSize {
		return v, TooBig
	}
	if len(t.free) == 0 {
		return v, PoolFull
	}
	if i < 0 {
		if i = t.claim(k, now); i < 0 {
			return v, TableFull
		}
	}
	s := &t.slots[i]
	if s.nheld >= MaxHeldPerDatagram {
		return v, TooMany
	}
	f := t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	copy(t.pool[int(f)*t.frameSize:], frame)
	t.frameLen[f] = int32(len(frame))
	t.next[f] = noFrame
	if s.heldTail == noFrame {
		s.heldHead = f
	} else {
		t.next[s.heldTail] = f
	}
	s.heldTail = f
	s.nheld++
	s.seen += uint32(n)
	if !more {
		s.total = uint32(off + n)
	}
	t.Stats.Held++
	return v, Held
}

// Expire visits up to budget buckets, round robin, and frees the datagrams
// whose deadline passed, with their held frames. The owner calls it with a
// small budget once per batch, so held frames do not wait for their
// bucket to be used again.
func (t *Table[V]) Expire(now int64, budget int) {
	buckets := len(t.slots) / Ways
	if t.live == 0 {
		return // nothing to expire: the data plane calls this every batch
	}
	for ; budget > 0; budget-- {
		b := t.sweep * Ways
		for i := b; i < b+Ways; i++ {
			s := &t.slots[i]
			if s.used && now-s.deadline >= 0 {
				t.forget(s, true)
			}
		}
		t.sweep++
		if t.sweep == buckets {
			t.sweep = 0
		}
	}
}

// Len returns the number of datagrams tracked and of frames held (for
// status; it walks the table).
func (t *Table[V]) Len() (datagrams, held int) {
	for i := range t.slots {
		if t.slots[i].used {
			datagrams++
		}
	}
	return datagrams, cap(t.free) - len(t.free)
}
