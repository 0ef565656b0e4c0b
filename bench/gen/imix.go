package gen

import (
	"errors"
	"strconv"
	"strings"
)

// IMIX is the simple IMIX (7:4:1 of 64-, 576- and 1500-byte frames) as a
// fixed 12-packet pattern that spreads the large frames out.
var IMIX = []int{64, 576, 64, 1500, 64, 576, 64, 64, 576, 64, 576, 64}

// IMIX6 returns IMIX for IPv6 frames: its 64-byte frames raised to
// MinFrame6, the smallest that carries IPv6, UDP and the payload the sink
// reads; the 7:4:1 proportions and the pattern are kept.
func IMIX6() []int {
	s := append([]int(nil), IMIX...)
	for i, n := range s {
		s[i] = max(n, MinFrame6)
	}
	return s
}

// Frame size limits (Ethernet frame including the FCS).
const (
	MinFrame = 64
	MaxFrame = 1518
	fcsLen   = 4
)

// ParseSizes reads a --size value: a frame size in bytes (64..1518,
// FCS included), "imix" (IMIX, or IMIX6 when v6), or a comma-separated
// pattern of sizes repeated in order.
func ParseSizes(s string, v6 bool) ([]int, error) {
	if strings.EqualFold(s, "imix") {
		if v6 {
			return IMIX6(), nil
		}
		return append([]int(nil), IMIX...), nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, errors.New("size " + strconv.Quote(f) + ": not a number or imix")
		}
		if n < MinFrame || n > MaxFrame {
			return nil, errors.New("size " + f + ": must be between 64 and 1518 (Ethernet frame with FCS)")
		}
		out = append(out, n)
	}
	return out, nil
}
