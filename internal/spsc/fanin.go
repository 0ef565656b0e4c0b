package spsc

// FanIn is a reader's state for draining several sources (the event rings
// of a data plane's workers, shards or allocators) into one buffer without
// favouring any: a busy source must not fill the reader's buffer every time
// and make the others lose values to their own full rings. Use it with
// Drain, from one reader at a time.
type FanIn struct {
	start int // the source the next Drain starts from
}

// Drain fills out from n sources and returns how many values it placed.
// read(i, dst) moves up to len(dst) values of source i into dst and
// returns how many it placed there (it may filter). Every source is first
// offered an equal share of out (len(out)/n, at least one value), then
// the room left goes to the sources that still have more; both passes
// start from the source after the one the previous Drain started from, so
// when out is smaller than n no source is always the last served.
func Drain[T any](f *FanIn, out []T, n int, read func(i int, dst []T) int) int {
	if n <= 0 || len(out) == 0 {
		return 0
	}
	start := f.start % n
	f.start = start + 1
	share := max(len(out)/n, 1)
	got := 0
	for k := 0; k < n && got < len(out); k++ {
		got += read((start+k)%n, out[got:min(got+share, len(out))])
	}
	for k := 0; k < n && got < len(out); k++ {
		got += read((start+k)%n, out[got:])
	}
	return got
}
