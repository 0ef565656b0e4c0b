package dataplane

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/edgegw/edge/conntrack"
)

// fakeKernel is a neighbour table as the kernel keeps it: a resolution
// (probe) of an address it does not have creates an INCOMPLETE entry that
// turns REACHABLE if the address answers and FAILED after failAfter if
// not; dumps list what it holds, minus the entries a test hides (a dump
// that skipped them, or garbage collection).
type fakeKernel struct {
	now     time.Time
	entries map[neighKey]*fakeEntry
	answers map[neighKey][6]byte // addresses that answer a resolution
	hidden  map[neighKey]bool
	probes  map[neighKey]int
	dels    int
}

type fakeEntry struct {
	state int
	mac   [6]byte
	since time.Time
}

const failAfter = 3 * time.Second

func newFakeKernel(now time.Time) *fakeKernel {
	return &fakeKernel{now: now, entries: map[neighKey]*fakeEntry{}, answers: map[neighKey][6]byte{},
		hidden: map[neighKey]bool{}, probes: map[neighKey]int{}}
}

func (k *fakeKernel) settle() {
	for key, e := range k.entries {
		if e.state != netlink.NUD_INCOMPLETE {
			continue
		}
		if mac, ok := k.answers[key]; ok {
			e.state, e.mac = netlink.NUD_REACHABLE, mac
		} else if k.now.Sub(e.since) >= failAfter {
			e.state = netlink.NUD_FAILED
		}
	}
}

func (k *fakeKernel) dump() ([]kernelNeigh, error) {
	k.settle()
	var d []kernelNeigh
	for key, e := range k.entries {
		if !k.hidden[key] {
			d = append(d, kernelNeigh{key: key, state: e.state, mac: e.mac})
		}
	}
	return d, nil
}

func (k *fakeKernel) probe(key neighKey) {
	k.probes[key]++
	if _, ok := k.entries[key]; !ok {
		k.entries[key] = &fakeEntry{state: netlink.NUD_INCOMPLETE, since: k.now}
	}
}

func (k *fakeKernel) del(key neighKey) {
	delete(k.entries, key)
	k.dels++
}

// unresolved counts the kernel's INCOMPLETE and FAILED entries.
func (k *fakeKernel) unresolved() int {
	c := 0
	for _, e := range k.entries {
		if e.state&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) != 0 {
			c++
		}
	}
	return c
}

func fakeNeighbours(t0 time.Time) (*Neighbours, *fakeKernel) {
	n := NewNeighbours(1, 2)
	k := newFakeKernel(t0)
	n.kernel = k
	return n, k
}

func key4(ifindex int32, a string) neighKey {
	return neighKey{ifindex, netip.MustParseAddr(a).As16()}
}

var (
	macClientA = [6]byte{2, 0, 0, 0, 0, 0xa}
	macClientB = [6]byte{2, 0, 0, 0, 0, 0xb}
)

// TestNeighbourInUseKept: an entry a worker sends through outlives dumps
// that lack it (a dump that skipped it under churn, the kernel's forced
// garbage collection) with its last good MAC, for neighKeepFor at most, and
// is revalidated meanwhile; an idle one does not; the kernel saying FAILED
// ends it at once.
func TestNeighbourInUseKept(t *testing.T) {
	t0 := time.Unix(1000, 0)
	client, idle := key4(1, "10.0.0.2"), key4(1, "10.0.0.3")
	for _, tc := range []struct {
		name string
		// what the kernel does at second s of the outage (1..20)
		during func(k *fakeKernel, s int)
		// the last second (since t0) at which the client is still usable
		lastUsable int
		want       NeighbourStats // counters checked: KeptTotal, KeptRecovered, KeptExpired, KeptFailed
	}{
		{"missing until the bound", func(*fakeKernel, int) {}, 14,
			NeighbourStats{KeptTotal: 1, KeptExpired: 1}},
		{"back after 5 s", func(k *fakeKernel, s int) {
			if s == 5 {
				delete(k.hidden, client)
			}
		}, 20, NeighbourStats{KeptTotal: 1, KeptRecovered: 1}},
		{"skipped by every other dump", func(k *fakeKernel, s int) {
			k.hidden[client] = s%2 == 1
		}, 20, NeighbourStats{KeptTotal: 10, KeptRecovered: 10}},
		{"INCOMPLETE for 3 s, then answered", func(k *fakeKernel, s int) {
			switch s {
			case 1: // the kernel lost it and resolves it again
				delete(k.hidden, client)
				k.entries[client] = &fakeEntry{state: netlink.NUD_INCOMPLETE, since: k.now}
			case 4:
				k.answers[client] = macClientA
			}
		}, 20, NeighbourStats{KeptTotal: 1, KeptRecovered: 1}},
		{"FAILED after 4 s", func(k *fakeKernel, s int) {
			if s == 4 {
				delete(k.hidden, client)
				k.entries[client].state = netlink.NUD_FAILED
			}
		}, 3, NeighbourStats{KeptTotal: 1, KeptFailed: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, k := fakeNeighbours(t0)
			k.entries[client] = &fakeEntry{state: netlink.NUD_REACHABLE, mac: macClientA}
			k.entries[idle] = &fakeEntry{state: netlink.NUD_STALE, mac: macClientB}
			n.rebuild(must(k.dump()), t0)
			var c hopCache
			if mac, ok := c.nextHop(n.cur.Load(), client.ifindex, &client.addr); !ok || mac != macClientA {
				t.Fatalf("client: %v %v", mac, ok)
			}
			k.hidden[client], k.hidden[idle] = true, true
			for s := 1; s <= 20; s++ {
				k.now = t0.Add(time.Duration(s) * time.Second)
				tc.during(k, s)
				n.rebuild(must(k.dump()), k.now)
				tb := n.cur.Load()
				if _, ok := tb.lookup(idle.ifindex, &idle.addr); ok {
					t.Fatalf("second %d: an idle entry the kernel lacks is kept", s)
				}
				mac, ok := c.nextHop(tb, client.ifindex, &client.addr)
				if ok != (s <= tc.lastUsable) || ok && mac != macClientA {
					t.Fatalf("second %d: client %v %v, want usable through second %d", s, mac, ok, tc.lastUsable)
				}
			}
			if k.probes[client] == 0 {
				t.Error("a kept entry was never revalidated")
			}
			if k.probes[idle] != 0 {
				t.Error("an idle entry was revalidated")
			}
			st := n.Stats()
			if st.KeptTotal != tc.want.KeptTotal || st.KeptRecovered != tc.want.KeptRecovered ||
				st.KeptExpired != tc.want.KeptExpired || st.KeptFailed != tc.want.KeptFailed || st.Kept != 0 {
				t.Errorf("stats %+v, want %+v", st, tc.want)
			}
		})
	}
}

// TestNeighbourKeptIdleExpires: a kept entry that workers stop using is
// dropped once neighUsedWithin has passed since its last use, before the
// bound.
func TestNeighbourKeptIdleExpires(t *testing.T) {
	t0 := time.Unix(1000, 0)
	client := key4(1, "10.0.0.2")
	n, k := fakeNeighbours(t0)
	k.entries[client] = &fakeEntry{state: netlink.NUD_REACHABLE, mac: macClientA}
	n.rebuild(must(k.dump()), t0)
	n.Lookup(int(client.ifindex), client.addr)
	k.hidden[client] = true
	for s := 1; s <= 12; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		n.rebuild(must(k.dump()), now)
		_, ok := n.cur.Load().lookup(client.ifindex, &client.addr)
		// used last in the snapshot of t0, noted at the rebuild of t0+1
		if want := now.Sub(t0.Add(time.Second)) < neighUsedWithin; ok != want {
			t.Fatalf("second %d: usable %v, want %v", s, ok, want)
		}
	}
}

// TestNeighbourChangedMAC: the kernel's MAC wins over the remembered one.
func TestNeighbourChangedMAC(t *testing.T) {
	t0 := time.Unix(1000, 0)
	client := key4(2, "203.0.113.9")
	n, k := fakeNeighbours(t0)
	k.entries[client] = &fakeEntry{state: netlink.NUD_REACHABLE, mac: macClientA}
	n.rebuild(must(k.dump()), t0)
	n.Lookup(int(client.ifindex), client.addr)
	k.hidden[client] = true
	n.rebuild(must(k.dump()), t0.Add(time.Second))
	delete(k.hidden, client)
	k.entries[client].mac = macClientB
	n.rebuild(must(k.dump()), t0.Add(2*time.Second))
	if mac, ok := n.Lookup(int(client.ifindex), client.addr); !ok || mac != macClientB {
		t.Fatalf("%v %v, want the kernel's new MAC", mac, ok)
	}
}

// TestNeighbourResolveBounded floods the mirror with resolutions of
// random, unanswered addresses of an inside /16 (20,000 requests a second
// for 10 s, as SYN-ACKs toward spoofed SYN sources need) while a client in
// use stays missing from the dumps for a while, and a real new host
// answers. The kernel's unresolved entries that edge caused stay within
// maxUnanswered, the client is usable throughout, and the new host, whose
// requests compete with the flood's for the bounded slots, is resolved
// at the latest when the flood ends.
func TestNeighbourResolveBounded(t *testing.T) {
	t0 := time.Unix(1000, 0)
	client, newHost := key4(1, "10.0.0.2"), key4(1, "10.0.200.1")
	n, k := fakeNeighbours(t0)
	k.entries[client] = &fakeEntry{state: netlink.NUD_REACHABLE, mac: macClientA}
	k.answers[newHost] = macClientB
	n.rebuild(must(k.dump()), t0)
	rng := rand.New(rand.NewPCG(1, 2))
	var c hopCache
	worst, refusedByResolve := 0, 0
	for tick := 1; tick <= 140; tick++ { // 100 ms steps; the flood for the first 10 s
		k.now = t0.Add(time.Duration(tick) * 100 * time.Millisecond)
		if tick == 10 {
			k.hidden[client] = true // garbage-collected by the kernel
		}
		if tick == 60 {
			delete(k.hidden, client)
		}
		for i := 0; i < 2000 && tick <= 100; i++ {
			a := netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(200)), byte(1 + rng.IntN(254))}).As16()
			if n.saturated.Load() {
				refusedByResolve++
				continue
			}
			n.request(resolveReq{ifindex: 1, addr: a}, k.now)
		}
		if tick == 20 {
			// A new host behind the gateway: its request may be refused
			// while the bound is reached; the worker retries per packet.
			n.request(resolveReq{ifindex: int(newHost.ifindex), addr: newHost.addr}, k.now)
		}
		if tick > 20 {
			if _, ok := n.cur.Load().lookup(newHost.ifindex, &newHost.addr); !ok && !n.saturated.Load() {
				n.request(resolveReq{ifindex: int(newHost.ifindex), addr: newHost.addr}, k.now)
			}
		}
		worst = max(worst, k.unresolved())
		n.rebuild(must(k.dump()), k.now)
		if mac, ok := c.nextHop(n.cur.Load(), client.ifindex, &client.addr); !ok || mac != macClientA {
			t.Fatalf("at %v the client in use was lost", k.now.Sub(t0))
		}
	}
	st := n.Stats()
	t.Logf("worst unresolved kernel entries %d; %+v; refused at Resolve %d", worst, st, refusedByResolve)
	if worst > maxUnanswered {
		t.Errorf("%d unresolved kernel entries, bound %d", worst, maxUnanswered)
	}
	// One batch of maxUnanswered per resolveTimeout, at most.
	if limit := uint64(maxUnanswered * (14*time.Second/resolveTimeout + 1)); st.Requests > limit {
		t.Errorf("%d resolutions asked in 14 s, want at most %d", st.Requests, limit)
	}
	if st.Deleted == 0 || st.GivenUp == 0 || st.KeptTotal != 1 || st.KeptRecovered != 1 {
		t.Errorf("stats %+v", st)
	}
	if _, ok := n.cur.Load().lookup(newHost.ifindex, &newHost.addr); !ok {
		t.Error("a new host that answers was never resolved")
	}
}

// TestResolveLimit: a worker asks resolveBudget times per resolveWindow.
func TestResolveLimit(t *testing.T) {
	var l resolveLimit
	now := conntrack.Time(5 * time.Second)
	for i := 0; i < resolveBudget; i++ {
		if !l.allow(now) {
			t.Fatalf("request %d refused", i)
		}
	}
	if l.allow(now + resolveWindow - 1) {
		t.Fatal("budget exceeded within the window")
	}
	if !l.allow(now + resolveWindow) {
		t.Fatal("refused in the next window")
	}
}

// TestResolveRefusedWhenSaturated: Resolve takes no request while
// maxUnanswered are outstanding.
func TestResolveRefusedWhenSaturated(t *testing.T) {
	n, k := fakeNeighbours(time.Unix(1000, 0))
	for i := 0; i < maxUnanswered; i++ {
		if !n.Resolve(1, netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}).As16()) {
			t.Fatalf("request %d refused", i)
		}
		n.request(<-n.resolve, k.now)
	}
	if n.Resolve(1, netip.MustParseAddr("10.0.2.1").As16()) {
		t.Fatal("a request taken with maxUnanswered outstanding")
	}
}

func TestNextHopZeroAlloc(t *testing.T) {
	n := NewNeighbours(1, 2)
	a, b := key4(1, "10.0.0.2"), key4(1, "10.0.0.3")
	n.store(map[neighKey][6]byte{a: macClientA, b: macClientB})
	var c hopCache
	var l resolveLimit
	tb := n.cur.Load()
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		k := &a
		if i%2 == 0 {
			k = &b
		}
		if _, ok := c.nextHop(tb, 1, &k.addr); !ok {
			t.Fatal("not found")
		}
		l.allow(conntrack.Time(i))
	})
	if allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
}

func BenchmarkNextHop(b *testing.B) {
	n := NewNeighbours(1, 2)
	a := key4(1, "10.0.0.2")
	n.store(map[neighKey][6]byte{a: macClientA})
	var c hopCache
	tb := n.cur.Load()
	b.ReportAllocs()
	for b.Loop() {
		c.nextHop(tb, 1, &a.addr)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
