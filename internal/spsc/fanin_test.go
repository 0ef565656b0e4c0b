package spsc

import "testing"

// ringsOf returns n rings of capacity size, ring i holding fill[i] values
// i*1000, i*1000+1, ...
func ringsOf(size int, fill ...int) []*Ring[int] {
	rs := make([]*Ring[int], len(fill))
	for i, n := range fill {
		rs[i] = new(Ring[int])
		rs[i].Init(size)
		for k := 0; k < n; k++ {
			v := i*1000 + k
			rs[i].Put(&v)
		}
	}
	return rs
}

func drainRings(f *FanIn, out []int, rs []*Ring[int]) int {
	return Drain(f, out, len(rs), func(i int, dst []int) int { return rs[i].Read(dst) })
}

// perSource counts the values of out[:n] by source.
func perSource(out []int, n, sources int) []int {
	c := make([]int, sources)
	for _, v := range out[:n] {
		c[v/1000]++
	}
	return c
}

// A full source gets its share, no more, while another has values; the
// room it leaves goes to those that have more; each source's values stay
// in order.
func TestDrainShares(t *testing.T) {
	var f FanIn
	rs := ringsOf(256, 200, 10, 100)
	out := make([]int, 90)
	n := drainRings(&f, out, rs)
	if c := perSource(out, n, 3); n != 90 || c[0] != 50 || c[1] != 10 || c[2] != 30 {
		t.Fatalf("read %d: per source %v, want 90: [50 10 30] (share 30, source 1's unused 20 to source 0 first)", n, c)
	}
	last := []int{-1, -1, -1}
	for _, v := range out[:n] {
		if s := v / 1000; v <= last[s] {
			t.Fatalf("source %d out of order: %v", s, out[:n])
		} else {
			last[s] = v
		}
	}
	// Everything, when out is large enough.
	big := make([]int, 1000)
	if n := drainRings(&f, big, rs); n != 150+0+70 {
		t.Fatalf("rest: read %d, want 220", n)
	}
	if n := drainRings(&f, big, rs); n != 0 {
		t.Fatalf("empty: read %d", n)
	}
}

// With less room than sources, each call starts from the next source: none
// is always the one left out.
func TestDrainRotates(t *testing.T) {
	var f FanIn
	rs := ringsOf(64, 50, 50, 50)
	out := make([]int, 2)
	got := make([]int, 3)
	for i := 0; i < 30; i++ {
		n := drainRings(&f, out, rs)
		for s, c := range perSource(out, n, 3) {
			got[s] += c
		}
	}
	if got[0] != 20 || got[1] != 20 || got[2] != 20 {
		t.Fatalf("per source over 30 calls of 2: %v, want 20 each", got)
	}
}

// A source that filters what it reads (read places fewer than it took) is
// offered the room again in the second pass.
func TestDrainFiltered(t *testing.T) {
	var f FanIn
	rs := ringsOf(64, 40, 40)
	even := func(i int, dst []int) int {
		got, n := rs[i].Read(dst), 0
		for _, v := range dst[:got] {
			if v%2 == 0 {
				dst[n] = v
				n++
			}
		}
		return n
	}
	// First pass: 10 read from each, 5 kept each. Second: source 0 reads
	// 10 into the 10 left and keeps 5, source 1 reads 5 and keeps 3.
	out := make([]int, 20)
	n := Drain(&f, out, 2, even)
	if c := perSource(out, n, 2); n != 18 || c[0] != 10 || c[1] != 8 {
		t.Fatalf("read %d, per source %v; want 18: [10 8]", n, c)
	}
	for _, v := range out[:n] {
		if v%2 != 0 {
			t.Fatalf("odd value %d placed", v)
		}
	}
}

func TestDrainNothing(t *testing.T) {
	var f FanIn
	if n := Drain(&f, nil, 3, func(int, []int) int { t.Fatal("read with no room"); return 0 }); n != 0 {
		t.Fatal(n)
	}
	if n := Drain(&f, make([]int, 4), 0, func(int, []int) int { t.Fatal("read with no source"); return 0 }); n != 0 {
		t.Fatal(n)
	}
}
