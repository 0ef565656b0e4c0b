package gen

import (
	_ "unsafe" // go:linkname
)

// nanotime is the runtime's CLOCK_MONOTONIC reading (vDSO on Linux), the
// same clock as clock_gettime(CLOCK_MONOTONIC). The runtime keeps this
// linkname available for outside packages.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// Now returns CLOCK_MONOTONIC in nanoseconds, without a system call.
func Now() int64 { return nanotime() }
