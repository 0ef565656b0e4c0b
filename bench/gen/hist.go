package gen

import "math/bits"

const (
	histSubBits = 5
	histSub     = 1 << histSubBits // sub-buckets per power of two
	histBuckets = (64-histSubBits)*histSub + histSub
)

// Hist is a log-linear histogram of non-negative values (nanoseconds):
// exact below 64, then 32 buckets per power of two (relative error <= 1/32).
// Recording allocates nothing. The zero value is empty and ready to use; a
// Hist belongs to one goroutine.
type Hist struct {
	counts   [histBuckets]uint64
	n        uint64
	sum      uint64
	min, max uint64
}

func histIndex(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return shift*histSub + int(v>>uint(shift))
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < 2*histSub {
		return uint64(i), uint64(i)
	}
	shift := uint(i/histSub - 1)
	m := uint64(i%histSub + histSub)
	return m << shift, (m+1)<<shift - 1
}

// Record adds one value.
func (h *Hist) Record(v uint64) {
	h.counts[histIndex(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

// Count is the number of values recorded.
func (h *Hist) Count() uint64 { return h.n }

// Min, Max and Mean of the recorded values (0 when empty).
func (h *Hist) Min() uint64 { return h.min }
func (h *Hist) Max() uint64 { return h.max }
func (h *Hist) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return float64(h.sum) / float64(h.n)
}

// Quantile returns the value at quantile q (0..1): the midpoint of the
// bucket holding it, clamped to the recorded min and max.
func (h *Hist) Quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var c uint64
	for i, n := range h.counts {
		c += n
		if c >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

// Reset empties the histogram.
func (h *Hist) Reset() { *h = Hist{} }
