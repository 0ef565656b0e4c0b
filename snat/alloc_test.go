package snat

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// Endpoint-dependent: each destination gets the whole range, and one
// destination never sees a port twice among live flows.
func TestEndpointDependent(t *testing.T) {
	h := newHarness(t, 1, 1024, automap(PortRange{5000, 5015}))
	dests := []struct {
		addr netip.Addr
		port uint16
	}{{server, 443}, {server, 80}, {netip.MustParseAddr("192.0.2.81"), 443}}
	for di, d := range dests {
		seen := map[uint16]bool{}
		for i := range 16 {
			k := tcpKey(client, uint16(10000+100*di+i), d.addr, d.port)
			tr, _ := h.mustOpen(k)
			if tr.Port < 5000 || tr.Port > 5015 {
				t.Fatalf("port %d outside the range", tr.Port)
			}
			if seen[tr.Port] {
				t.Fatalf("destination %d: port %d handed out twice", di, tr.Port)
			}
			seen[tr.Port] = true
			if got := h.n.Addr(tr.Addr); got != natIP.As16() {
				t.Fatalf("address %v", got)
			}
		}
		if len(seen) != 16 {
			t.Fatalf("destination %d got %d ports", di, len(seen))
		}
		k := tcpKey(client, uint16(20000+di), d.addr, d.port)
		if _, _, r := h.open(k); r != drop.SNATExhausted {
			t.Fatalf("17th flow: %v, want snat_exhausted", r)
		}
	}
	st := h.stats()
	if st.Counters[CtrAllocated] != 48 || st.Counters[CtrExhausted] != 3 || st.Counters[CtrQuarantineOverride] != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// No duplicate live port toward one destination over a big range, and
// every reply key is as conntrack builds it.
func TestNoDuplicates(t *testing.T) {
	h := newHarness(t, 1, 1<<14, automap(PortRange{20000, 22047}))
	seen := map[uint16]bool{}
	for i := range 2000 {
		k := tcpKey(client, uint16(1000+i), server, 443)
		tr, _ := h.mustOpen(k)
		if seen[tr.Port] {
			t.Fatalf("port %d twice", tr.Port)
		}
		seen[tr.Port] = true
	}
	if st := h.stats(); st.Counters[CtrAllocated] != 2000 || st.Counters[CtrQuarantineOverride] != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Randomness: ports of 6,400 flows toward one destination spread evenly
// over the default range (chi-square over 64 buckets, fixed seed), and
// consecutive choices are not sequential.
func TestPortsRandom(t *testing.T) {
	h := newHarness(t, 1, 1<<14, Config{Automap: natIP})
	const flows, buckets = 6400, 64
	var count [buckets]int
	prev, seq := uint16(0), 0
	for i := range flows {
		k := tcpKey(client, uint16(1000+i), server, 443)
		tr, _ := h.mustOpen(k)
		count[int(tr.Port-DefaultPortStart)*buckets/(DefaultPortEnd-DefaultPortStart+1)]++
		if tr.Port == prev+1 {
			seq++
		}
		prev = tr.Port
	}
	exp := float64(flows) / buckets
	chi2 := 0.0
	for _, c := range count {
		chi2 += (float64(c) - exp) * (float64(c) - exp) / exp
	}
	// 63 degrees of freedom: mean 63, sd 11.2; 120 is about p = 1e-5.
	if chi2 > 120 {
		t.Fatalf("chi-square %.1f over %d buckets: %v", chi2, buckets, count)
	}
	if seq > flows/100 {
		t.Fatalf("%d of %d ports followed the previous one", seq, flows)
	}
}

// Quarantine with a fake clock: a released port is not reused toward the
// same destination within the quarantine time while others are free.
func TestQuarantineNotReused(t *testing.T) {
	h := newHarness(t, 1, 1024, automap(PortRange{30000, 30255}))
	released := map[uint16]conntrack.Time{}
	for i := range 200 {
		k := tcpKey(client, uint16(1000+i), server, 443)
		tr, ref := h.mustOpen(k)
		if at, ok := released[tr.Port]; ok {
			t.Fatalf("port %d reused %v after its release", tr.Port, time.Duration(h.now-at))
		}
		h.close(k, ref)
		released[tr.Port] = h.now
		h.advance(100 * conntrack.Millisecond)
	}
	// Another destination may use them at once.
	for i := range 200 {
		h.mustOpen(tcpKey(client, uint16(5000+i), server, 8443))
	}
	if st := h.stats(); st.Counters[CtrQuarantineOverride] != 0 || st.Counters[CtrReleased] != 200 {
		t.Fatalf("stats %+v", st)
	}
}

// A released port comes back after the quarantine time, without an
// override; before it, only as an override, least recently released first.
func TestQuarantineExpiryAndOverride(t *testing.T) {
	for _, after := range []bool{false, true} {
		h := newHarness(t, 1, 1024, automap(PortRange{40000, 40003}))
		var keys [4]conntrack.Key
		var refs [4]conntrack.Ref
		var ports [4]uint16
		for i := range 4 {
			keys[i] = tcpKey(client, uint16(1000+i), server, 443)
			tr, ref := h.mustOpen(keys[i])
			ports[i], refs[i] = tr.Port, ref
		}
		// Release two: ports[2] first, then ports[0].
		h.close(keys[2], refs[2])
		h.advance(5 * conntrack.Second)
		h.close(keys[0], refs[0])
		if after {
			h.advance(h.n.cur.Load().hold - 5*conntrack.Second) // ports[2]'s quarantine just ended
			k := tcpKey(client, 2000, server, 443)
			tr, _ := h.mustOpen(k)
			if tr.Port != ports[2] {
				t.Fatalf("after the quarantine: port %d, want %d", tr.Port, ports[2])
			}
			if st := h.stats(); st.Counters[CtrQuarantineOverride] != 0 {
				t.Fatalf("override counted after the quarantine ended")
			}
			continue
		}
		h.advance(10 * conntrack.Second)
		// Both are quarantined: the least recently released comes first.
		for j, want := range []uint16{ports[2], ports[0]} {
			k := tcpKey(client, uint16(2000+j), server, 443)
			tr, _ := h.mustOpen(k)
			if tr.Port != want {
				t.Fatalf("override %d: port %d, want %d", j, tr.Port, want)
			}
		}
		if _, _, r := h.open(tcpKey(client, 3000, server, 443)); r != drop.SNATExhausted {
			t.Fatalf("got %v, want snat_exhausted", r)
		}
		st := h.stats()
		if st.Counters[CtrQuarantineOverride] != 2 || st.Counters[CtrExhausted] != 1 {
			t.Fatalf("stats %+v", st)
		}
		var ev [8]Event
		n := h.n.ReadEvents(ev[:])
		if n != 3 || ev[0].Kind != EvQuarantineOverride || ev[0].NATPort != ports[2] || ev[1].NATPort != ports[0] ||
			ev[2].Kind != EvExhausted || ev[2].Key != tcpKey(client, 3000, server, 443) {
			t.Fatalf("events %+v", ev[:n])
		}
		ds := h.destinations()
		if len(ds) != 1 || ds[0].InUse != 4 || ds[0].Free != 0 || ds[0].Exhausted != 1 || ds[0].Overrides != 2 ||
			ds[0].Dst != netip.AddrPortFrom(server, 443) || ds[0].Addr != natIP || ds[0].Proto != header.ProtoTCP {
			t.Fatalf("destinations %+v", ds)
		}
	}
}

// Exhaustion: the extra flow is refused and counted per destination; a
// second refusal does not scan again; a release makes room (an override).
func TestExhaustion(t *testing.T) {
	h := newHarness(t, 1, 1024, automap(PortRange{1024, 1031}))
	var refs []conntrack.Ref
	var keys []conntrack.Key
	for i := range 8 {
		k := tcpKey(client, uint16(1000+i), server, 443)
		_, ref := h.mustOpen(k)
		keys, refs = append(keys, k), append(refs, ref)
	}
	for i := range 3 {
		if _, _, r := h.open(tcpKey(client, uint16(2000+i), server, 443)); r != drop.SNATExhausted {
			t.Fatalf("got %v", r)
		}
	}
	st := h.stats()
	if st.Counters[CtrExhausted] != 3 || st.Counters[CtrScans] != 1 {
		t.Fatalf("want 3 refusals after 1 scan: %+v", st)
	}
	ds := h.destinations()
	if len(ds) != 1 || ds[0].Exhausted != 3 || ds[0].InUse != 8 || ds[0].Range != 8 {
		t.Fatalf("destinations %+v", ds)
	}
	h.close(keys[3], refs[3])
	tr, _ := h.mustOpen(tcpKey(client, 3000, server, 443))
	if st := h.stats(); st.Counters[CtrQuarantineOverride] != 1 {
		t.Fatalf("port %d without an override: %+v", tr.Port, st)
	}
	// Other destinations are unaffected.
	h.mustOpen(tcpKey(client, 3001, server, 444))
}

// With two shards, every reply key lands on the allocating shard, and a
// destination's range is split between the shards.
func TestShardOwnership(t *testing.T) {
	h := newHarness(t, 2, 1<<14, automap(PortRange{10000, 10999}))
	perShard := [2]int{}
	for i := range 3000 {
		src := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		k := tcpKey(src, uint16(1024+i), server, 443)
		s := h.tb.ShardOfSrc(&k)
		tr, _, r := h.open(k)
		if r == drop.SNATExhausted || r == drop.SNATProbeLimit {
			continue
		}
		if r != drop.None {
			t.Fatal(r)
		}
		rk := h.tb.Shard(s).ReplyKey(&k, tr)
		if got := h.tb.ShardOfDst(&rk); got != s {
			t.Fatalf("flow %v on shard %d: reply %v lands on shard %d", k, s, rk, got)
		}
		perShard[s]++
	}
	// Ports of the range whose replies land on each shard.
	var owned [2]int
	k := tcpKey(client, 1, server, 443)
	for p := 10000; p <= 10999; p++ {
		rk := h.tb.Shard(0).ReplyKey(&k, conntrack.Translation{Addr: 1, Port: uint16(p)})
		owned[h.tb.ShardOfDst(&rk)]++
	}
	if perShard != owned {
		t.Fatalf("allocated %v, ports owned per shard %v", perShard, owned)
	}
	st := h.stats()
	if st.Counters[CtrExhausted] == 0 || owned[0] == 0 || owned[1] == 0 {
		t.Fatalf("stats %+v owned %v", st, owned)
	}
}

// Paired pooling: one inside host keeps one pool address; hosts spread.
func TestPairedPooling(t *testing.T) {
	pool := Pool{Name: "p", Ranges: []AddrRange{{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.13")}},
		Addrs: []netip.Addr{natIP6}}
	h := newHarness(t, 1, 1<<12, Config{Mode: Pools, Pools: []Pool{pool}})
	used := map[uint16]bool{}
	for host := range 64 {
		src := netip.AddrFrom4([4]byte{10, 1, 0, byte(host)})
		var addr uint16
		for i := range 10 {
			tr, _ := h.mustOpen(tcpKey(src, uint16(1000+i), server, uint16(443+i%3)))
			if i > 0 && tr.Addr != addr {
				t.Fatalf("host %v got addresses %d and %d", src, addr, tr.Addr)
			}
			addr = tr.Addr
		}
		used[addr] = true
	}
	if len(used) < 3 {
		t.Fatalf("64 hosts used %d of 4 addresses", len(used))
	}
	for a := range used {
		if ip := netip.AddrFrom16(h.n.Addr(a)).Unmap(); !ip.Is4() || !netip.MustParsePrefix("198.51.100.8/29").Contains(ip) {
			t.Fatalf("address %v not from the IPv4 pool", ip)
		}
	}
	// IPv6 flows take the IPv6 address; a pool without one refuses them.
	tr, _ := h.mustOpen(tcpKey(client6, 1000, server6, 443))
	if h.n.Addr(tr.Addr) != natIP6.As16() {
		t.Fatalf("IPv6 flow got %v", h.n.Addr(tr.Addr))
	}
	h2 := newHarness(t, 1, 1024, automap(PortRange{}))
	k := tcpKey(client6, 1000, server6, 443)
	if _, r := h2.n.Allocator(0).Allocate(&k, h2.now); r != drop.SNATNoAddress {
		t.Fatalf("IPv6 flow on an IPv4 automap: %v", r)
	}
	if _, r := h2.n.Allocator(0).AllocateFrom(3, &k, h2.now); r != drop.SNATNoAddress {
		t.Fatalf("no such pool: %v", r)
	}
	if n := h2.stats().Counters[CtrUntranslated]; n != 0 {
		t.Fatalf("refused flows counted untranslated: %d", n)
	}
	gre := tcpKey(client, 0, server, 0)
	gre.Proto = 47
	if _, r := h2.n.Allocator(0).Allocate(&gre, h2.now); r != drop.UnsupportedProto {
		t.Fatalf("GRE: %v", r)
	}
}

// TestNoAddressForward: with NoAddress forward, a flow without an address
// of its family gets no translation (drop.None, the zero Translation),
// counted untranslated; flows of the other family are still translated,
// and a pool that does not exist is still refused.
func TestNoAddressForward(t *testing.T) {
	cfg := automap(PortRange{})
	cfg.NoAddress = NoAddressForward
	h := newHarness(t, 1, 1024, cfg)
	a := h.n.Allocator(0)
	for i := range 3 {
		k := tcpKey(client6, uint16(1000+i), server6, 443)
		tr, r := a.Allocate(&k, h.now)
		if r != drop.None || tr != (conntrack.Translation{}) {
			t.Fatalf("IPv6 flow %d: %+v %v, want untranslated", i, tr, r)
		}
	}
	if n := h.stats().Counters[CtrUntranslated]; n != 3 {
		t.Fatalf("untranslated %d, want 3", n)
	}
	if n := h.stats().Counters[CtrAllocated]; n != 0 {
		t.Fatalf("allocated %d for untranslated flows", n)
	}
	tr, _ := h.mustOpen(tcpKey(client, 1000, server, 443))
	if h.n.Addr(tr.Addr) != natIP.As16() {
		t.Fatalf("IPv4 flow got %v", h.n.Addr(tr.Addr))
	}
	k := tcpKey(client6, 2000, server6, 443)
	if _, r := a.AllocateFrom(3, &k, h.now); r != drop.SNATNoAddress {
		t.Fatalf("no such pool: %v", r)
	}
	if NoAddressForward.String() != "forward" || NoAddressDrop.String() != "drop" {
		t.Fatal(NoAddressForward.String(), NoAddressDrop.String())
	}
	for s, want := range map[string]NoAddress{"": NoAddressDrop, "drop": NoAddressDrop, "forward": NoAddressForward} {
		if got, ok := ParseNoAddress(s); !ok || got != want {
			t.Fatalf("ParseNoAddress(%q) = %v, %v", s, got, ok)
		}
	}
	if _, ok := ParseNoAddress("translate"); ok {
		t.Fatal("ParseNoAddress accepted translate")
	}
}

func TestPoolIndex(t *testing.T) {
	h := newHarness(t, 1, 1024, Config{Mode: Pools, Pools: []Pool{
		{Name: "a", Addrs: []netip.Addr{netip.MustParseAddr("198.51.100.1")}},
		{Name: "b", Addrs: []netip.Addr{netip.MustParseAddr("198.51.100.2")}},
	}})
	i, ok := h.n.PoolIndex("b")
	if !ok || i != 1 {
		t.Fatal(i, ok)
	}
	k := tcpKey(client, 1000, server, 443)
	tr, r := h.n.Allocator(0).AllocateFrom(i, &k, h.now)
	if r != drop.None || h.n.Addr(tr.Addr) != netip.MustParseAddr("198.51.100.2").As16() {
		t.Fatal(tr, r)
	}
	if _, ok := h.n.PoolIndex("c"); ok {
		t.Fatal("pool c")
	}
}

// ICMP echo: the identifier is the port; with KeepEchoID it is kept.
func TestEcho(t *testing.T) {
	echo := func(src netip.Addr, id uint16) conntrack.Key {
		return conntrack.Key{Src: src.As16(), Dst: server.As16(), SrcPort: id, Proto: header.ProtoICMP}
	}
	h := newHarness(t, 1, 1024, automap(PortRange{100, 103}))
	for i := range 4 {
		tr, _ := h.mustOpen(echo(client, uint16(7+i)))
		if tr.Port < 100 || tr.Port > 103 {
			t.Fatalf("identifier %d", tr.Port)
		}
	}
	if _, _, r := h.open(echo(client, 70)); r != drop.SNATExhausted {
		t.Fatal(r)
	}

	cfg := Config{Mode: Pools, KeepEchoID: true, Pools: []Pool{{Addrs: []netip.Addr{natIP, netip.MustParseAddr("198.51.100.2")}}}}
	h = newHarness(t, 1, 1024, cfg)
	a, b := netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.4")
	tr1, _ := h.mustOpen(echo(a, 777))
	tr2, _ := h.mustOpen(echo(b, 777))
	if tr1.Port != 777 || tr2.Port != 777 || tr1.Addr == tr2.Addr {
		t.Fatalf("kept identifiers: %+v %+v", tr1, tr2)
	}
	if _, _, r := h.open(echo(netip.MustParseAddr("10.0.0.5"), 777)); r != drop.SNATExhausted {
		t.Fatal(r)
	}
}

// Release ignores untranslated flows and addresses that are not ours, and
// Abandon gives a port back without quarantine.
func TestReleaseAndAbandon(t *testing.T) {
	h := newHarness(t, 1, 1024, automap(PortRange{50000, 50000}))
	a := h.n.Allocator(0)
	k := tcpKey(client, 1000, server, 443)
	a.Release(&k, conntrack.Translation{}, true, h.now)
	a.Release(&k, conntrack.Translation{Addr: 999, Port: 50000}, true, h.now)
	if st := h.stats(); st.Counters[CtrReleased] != 0 {
		t.Fatalf("released %d", st.Counters[CtrReleased])
	}
	tr, r := a.Allocate(&k, h.now)
	if r != drop.None {
		t.Fatal(r)
	}
	a.Abandon(&k, tr)
	if ds := h.destinations(); len(ds) != 0 {
		t.Fatalf("destinations after abandon: %+v", ds)
	}
	tr2, _ := h.mustOpen(k)
	if tr2 != tr || h.stats().Counters[CtrQuarantineOverride] != 0 {
		t.Fatalf("abandoned port not free at once: %+v %+v", tr2, h.stats())
	}
	// A flow that conntrack expires is released through the hook.
	h.advance(conntrack.DefaultProfile.Established + conntrack.Second)
	if n := h.tb.Shard(0).Expire(h.now, 100); n != 1 {
		t.Fatalf("expired %d", n)
	}
	ds := h.destinations()
	if st := h.stats(); st.Counters[CtrReleased] != 1 || len(ds) != 1 || ds[0].InUse != 0 || ds[0].Quarantined != 1 || ds[0].Free != 0 {
		t.Fatalf("after expiry: %+v %+v", st, ds)
	}
	// Serve drops the entry once its quarantine is over.
	h.advance(h.n.cur.Load().hold)
	h.n.Allocator(0).Serve(h.now)
	if ds := h.destinations(); len(ds) != 0 {
		t.Fatalf("destinations after the quarantine: %+v", ds)
	}
}

// A full quarantine forgets its oldest entries, counted.
func TestQuarantineFull(t *testing.T) {
	cfg := automap(PortRange{1000, 1999})
	cfg.QuarantinePorts = 4
	h := newHarness(t, 1, 1024, cfg)
	for i := range 6 {
		k := tcpKey(client, uint16(3000+i), server, 443)
		_, ref := h.mustOpen(k)
		h.close(k, ref)
		h.advance(conntrack.Second)
	}
	st := h.stats()
	if st.Counters[CtrQuarantineForgotten] != 2 || st.Counters[CtrReleased] != 6 {
		t.Fatalf("stats %+v", st)
	}
	if ds := h.destinations(); len(ds) != 1 || ds[0].Quarantined != 4 {
		t.Fatalf("destinations %+v", ds)
	}
}

// The destination table is bounded: beyond it allocations still work,
// uncounted.
func TestDestOverflow(t *testing.T) {
	cfg := automap(PortRange{})
	cfg.Destinations = 2
	h := newHarness(t, 1, 1024, cfg)
	for i := range 4 {
		h.mustOpen(tcpKey(client, 1000, server, uint16(1+i)))
	}
	if st := h.stats(); st.Counters[CtrDestOverflow] != 2 {
		t.Fatalf("stats %+v", st)
	}
	if ds := h.destinations(); len(ds) != 2 {
		t.Fatalf("destinations %+v", ds)
	}
}

// destinations runs NAT.Destinations with the test goroutine as every
// allocator's owner, serving from another goroutine's point of view.
func (h *harness) destinations() []DestStat {
	h.t.Helper()
	done := make(chan struct{})
	var ds []DestStat
	var err error
	go func() {
		defer close(done)
		ds, err = h.n.Destinations(context.Background())
	}()
	for {
		select {
		case <-done:
			if err != nil {
				h.t.Fatal(err)
			}
			return ds
		default:
			for _, a := range h.n.allocs {
				a.Serve(h.now)
			}
		}
	}
}

func TestDestinationsNotServed(t *testing.T) {
	h := newHarness(t, 2, 1024, automap(PortRange{}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := h.n.Destinations(ctx); err != ErrNotServed {
		t.Fatalf("got %v", err)
	}
}

// The control plane reads counts and events while owners allocate and
// release: run with -race.
func TestConcurrentControl(t *testing.T) {
	h := newHarness(t, 2, 1<<14, automap(PortRange{2000, 2063}))
	stop := make(chan struct{})
	done := make(chan int, 2)
	for s := range 2 {
		go func() {
			a, sh := h.n.Allocator(s), h.tb.Shard(s)
			now := conntrack.Second
			n := 0
			for i := 0; ; i++ {
				select {
				case <-stop:
					done <- n
					return
				default:
				}
				now += conntrack.Millisecond
				k := tcpKey(netip.AddrFrom4([4]byte{10, 0, byte(s), byte(i)}), uint16(1024+i%60000), server, uint16(443+i%4))
				if h.tb.ShardOfSrc(&k) != s {
					a.Serve(now)
					continue
				}
				if tr, r := a.Allocate(&k, now); r == drop.None {
					p := packet(k)
					if v := sh.Create(&p, conntrack.NewFlow{NAT: tr}, now); v.Action == conntrack.Forward {
						n++
						if i%3 == 0 {
							sh.Delete(v.Flow, now)
						}
					} else {
						a.Abandon(&k, tr)
					}
				}
				sh.Expire(now, 8)
				a.Serve(now)
				sh.Serve(now)
				runtime.Gosched() // two spinning owners on two CPUs would starve the reader
			}
		}()
	}
	var ev [64]Event
	for range 20 {
		ds, err := h.n.Destinations(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.InUse < 0 || d.InUse+d.Quarantined > d.Range*2 {
				t.Fatalf("bad counts %+v", d)
			}
		}
		h.n.Stats()
		h.n.ReadEvents(ev[:])
	}
	close(stop)
	total := <-done + <-done
	if total == 0 {
		t.Fatal("no flow opened")
	}
	if st := h.stats(); st.Counters[CtrAllocated] < uint64(total) {
		t.Fatalf("stats %+v total %d", st, total)
	}
}

// Churn toward one destination faster than the quarantine drains: once the
// range is all in use or in quarantine, each new flow reuses the least
// recently released port at once, scanning the range at most every 10 s.
func TestChurnReusesOldest(t *testing.T) {
	for _, shards := range []int{1, 2} {
		h := newHarness(t, shards, 1<<12, automap(PortRange{7000, 7127}))
		type flow struct {
			k   conntrack.Key
			ref conntrack.Ref
		}
		live := map[uint16]flow{}
		released := map[uint16]conntrack.Time{} // port -> last release, for ports not live
		i := 0
		next := func() conntrack.Key {
			for {
				i++
				k := tcpKey(client, uint16(1024+i), server, 443)
				if h.tb.ShardOfSrc(&k) == 0 {
					return k
				}
			}
		}
		for step := range 3000 {
			h.advance(200 * conntrack.Millisecond)
			k := next()
			before := h.n.Allocator(0).Stats()
			tr, ref, r := h.open(k)
			if r != drop.None {
				t.Fatalf("%d shards, step %d: %v", shards, step, r)
			}
			if _, dup := live[tr.Port]; dup {
				t.Fatalf("step %d: port %d is live", step, tr.Port)
			}
			after := h.n.Allocator(0).Stats()
			if after.Counters[CtrQuarantineOverride] > before.Counters[CtrQuarantineOverride] {
				// It must be the least recently released port.
				for p, at := range released {
					if at < released[tr.Port] {
						t.Fatalf("step %d: reused port %d released at %v, port %d released at %v", step, tr.Port, released[tr.Port], p, at)
					}
				}
			}
			delete(released, tr.Port)
			live[tr.Port] = flow{k, ref}
			if len(live) > 20 { // close a random live flow
				for p, f := range live {
					h.close(f.k, f.ref)
					delete(live, p)
					released[p] = h.now
					break
				}
			}
		}
		st := h.n.Allocator(0).Stats()
		// 600 s of churn: at most one full pass every 10 s.
		if st.Counters[CtrQuarantineOverride] < 2000 || st.Counters[CtrScans] > 65 || st.Counters[CtrExhausted] != 0 {
			t.Fatalf("%d shards: %+v", shards, st)
		}
	}
}
