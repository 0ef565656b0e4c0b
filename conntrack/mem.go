package conntrack

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Memory says where flow storage and the index live.
type Memory uint8

const (
	// MemoryAuto uses hugepages when enough are reserved
	// (scripts/hugepages.sh), else anonymous memory outside the Go heap with
	// transparent hugepages advised, and logs which it got. Under the race
	// detector it uses the Go heap so every access is checked.
	MemoryAuto Memory = iota
	// MemoryHeap allocates with make: simplest, GC-visible size (but never
	// scanned: the storage holds no pointers).
	MemoryHeap
	// MemoryHugepages requires reserved hugepages and fails otherwise.
	MemoryHugepages
)

// region is a block of zeroed memory obtained from mmap or the Go heap.
type region struct {
	mem  []byte
	mmap bool
	huge bool
}

func (r *region) free() {
	if r.mmap && r.mem != nil {
		_ = unix.Munmap(r.mem)
	}
	r.mem = nil
}

const hugePageSize = 2 << 20

// allocRegion returns size bytes of zeroed, 64-byte-aligned memory.
func allocRegion(size int, m Memory) (region, error) {
	if size == 0 {
		return region{}, nil
	}
	if m == MemoryHeap || (m == MemoryAuto && raceEnabled) {
		// Over-allocate so the start can be aligned to a cache line.
		b := make([]byte, size+64)
		off := int(64-uintptr(unsafe.Pointer(&b[0]))%64) % 64
		return region{mem: b[off : off+size : off+size]}, nil
	}
	hsize := (size + hugePageSize - 1) &^ (hugePageSize - 1)
	b, err := unix.Mmap(-1, 0, hsize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_HUGETLB)
	if err == nil {
		return region{mem: b[:size:size], mmap: true, huge: true}, nil
	}
	if m == MemoryHugepages {
		return region{}, errors.New("conntrack: hugepages requested but mmap(MAP_HUGETLB) failed: " + err.Error() +
			" (reserve them with scripts/hugepages.sh)")
	}
	b, err = unix.Mmap(-1, 0, hsize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return region{}, errors.New("conntrack: mmap of flow storage failed: " + err.Error())
	}
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // best effort: transparent hugepages
	return region{mem: b[:size:size], mmap: true}, nil
}

// flowsOf views a region as a []flow.
func flowsOf(r region, n int) []flow {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*flow)(unsafe.Pointer(&r.mem[0])), n)
}

// entriesOf views a region as a []uint64.
func entriesOf(r region, n int) []uint64 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&r.mem[0])), n)
}
