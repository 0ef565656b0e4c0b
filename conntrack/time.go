package conntrack

// Time is a point on a monotonic clock, in nanoseconds since an arbitrary
// epoch chosen by the caller (the data plane passes the time of the batch it
// is processing; tests pass a fake clock). Nothing in conntrack reads the
// system clock.
type Time int64

// Common durations in Time units.
const (
	Millisecond Time = 1e6
	Second      Time = 1e9
)

// Flow records store deadlines as 32-bit millisecond ticks compared with
// serial-number arithmetic (RFC 1982 style), so a deadline must lie less than
// 2^31 ms (24.8 days) from now. Profile validation caps timeouts at MaxTimeout,
// and the sweeper visits every slot far more often than that.
const MaxTimeout = 20 * 24 * 3600 * Second

func ticks(t Time) uint32 { return uint32(t / Millisecond) }

// expired reports whether the deadline d (in ticks) is at or before now.
func expired(d uint32, now uint32) bool { return int32(now-d) >= 0 }

// fromTicks converts a deadline in ticks back to Time, assuming it lies within
// 2^31 ms of now.
func fromTicks(d uint32, now Time) Time {
	return now + Time(int32(d-ticks(now)))*Millisecond
}

func seconds(t Time) uint32 { return uint32(t / Second) }
