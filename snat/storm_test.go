package snat

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// stormSetup fills one worker's quarantine toward server:443 with every
// port of the default range but the free ones (first-flood flows that
// carried a connection and ended, released newest last in port order) and
// returns the allocator, the translated address, the free ports and a
// source of new flows from other inside hosts that land on shard 0.
func stormSetup(tb testing.TB, free []uint16) (*harness, *Allocator, func() conntrack.Key) {
	h := newHarness(tb, 1, 1<<12, Config{Automap: natIP})
	a := h.n.Allocator(0)
	k := tcpKey(client, 1000, server, 443)
	tr, r := a.Allocate(&k, h.now)
	if r != drop.None {
		tb.Fatal(r)
	}
	a.Abandon(&k, tr)
	isFree := map[uint16]bool{}
	for _, p := range free {
		isFree[p] = true
	}
	for p := uint32(DefaultPortStart); p <= DefaultPortEnd; p++ {
		if isFree[uint16(p)] {
			continue
		}
		h.advance(conntrack.Millisecond / 1000)
		// Counted in use toward the destination, as Allocate does, then
		// released by conntrack.
		dk := tuple{dst: k.Dst, dport: k.DstPort, naddr: tr.Addr, proto: k.Proto, zone: k.Zone}
		a.commit(&dk, uint16(p))
		a.Release(&k, conntrack.Translation{Addr: tr.Addr, Port: uint16(p)}, true, h.now)
	}
	if f := a.Stats().Counters[CtrQuarantineForgotten]; f != 0 {
		tb.Fatalf("%d quarantine entries forgotten while filling", f)
	}
	i := 0
	next := func() conntrack.Key {
		i++
		src := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		return tcpKey(src, uint16(1024+i%60000), server, 443)
	}
	return h, a, next
}

// TestQuarantineStorm reproduces issue 16 item 2: a first flood left the
// quarantine toward one destination holding all its ports but a few, and
// a second flood of new flows from other inside hosts follows. Each new
// flow must cost at most MaxProbes candidates (the old allocator scanned
// the range for every one, thousands of probes each), the free ports must
// still be found and handed out before any quarantined one (P2), and once
// none is left the least recently released port is reused, in O(1).
func TestQuarantineStorm(t *testing.T) {
	free := []uint16{1500, 20000, 33333, 47000, 60001, 65535}
	h, a, next := stormSetup(t, free)
	const flows = 3000
	st0 := a.Stats()
	var maxProbes, sumProbes uint64
	got := map[uint16]bool{}
	refused, overrides := 0, 0
	oldest := uint16(DefaultPortStart)
	for n := range flows {
		h.advance(conntrack.Millisecond)
		k := next()
		before := a.Stats()
		tr, _, r := h.open(k)
		after := a.Stats()
		p := after.Counters[CtrProbes] - before.Counters[CtrProbes]
		maxProbes = max(maxProbes, p)
		sumProbes += p
		switch {
		case r == drop.SNATProbeLimit:
			refused++
			continue
		case r != drop.None:
			t.Fatalf("flow %d: %v", n, r)
		}
		if got[tr.Port] {
			t.Fatalf("flow %d: port %d handed out twice", n, tr.Port)
		}
		got[tr.Port] = true
		if after.Counters[CtrQuarantineOverride] > before.Counters[CtrQuarantineOverride] {
			for _, f := range free {
				if !got[f] {
					t.Fatalf("flow %d: quarantined port %d reused while port %d is free", n, tr.Port, f)
				}
			}
			// Released in port order, free ports skipped: the
			// overrides take the lowest ports first.
			for slices.Contains(free, oldest) {
				oldest++
			}
			if tr.Port != oldest {
				t.Fatalf("override %d took port %d, want the least recently released %d", overrides, tr.Port, oldest)
			}
			oldest++
			overrides++
		}
	}
	st := a.Stats()
	t.Logf("%d flows: %d allocated, %d refused (snat_probe_limit), %d overrides; probes max %d, mean %.1f per new flow",
		flows, st.Counters[CtrAllocated]-st0.Counters[CtrAllocated], refused, overrides, maxProbes, float64(sumProbes)/flows)
	if maxProbes > MaxProbes {
		t.Errorf("an allocation examined %d ports, the bound is %d", maxProbes, MaxProbes)
	}
	for _, f := range free {
		if !got[f] {
			t.Errorf("free port %d never handed out", f)
		}
	}
	// One pass over the range finds every free port: about
	// 64,512/ScanProbes refusals at most before the overrides start.
	if limit := (DefaultPortEnd-DefaultPortStart+1)/ScanProbes + 1; refused > limit {
		t.Errorf("%d flows refused, more than one pass (%d)", refused, limit)
	}
	if overrides < flows-refused-len(free) {
		t.Errorf("%d overrides of %d flows", overrides, flows)
	}
	if st.Counters[CtrProbeLimit]-st0.Counters[CtrProbeLimit] != uint64(refused) {
		t.Errorf("snat_probe_limit counted %d, %d refused", st.Counters[CtrProbeLimit], refused)
	}
}

// A flow that never carried a connection (TCP never ESTABLISHED, a
// datagram or echo request without reply) gives its port back at once; one
// that did has it quarantined. With a one-port range the next flow toward
// the same destination shows which: a quarantined port is reused only as
// an override.
func TestUnansweredPortNotHeld(t *testing.T) {
	for _, c := range []struct {
		name     string
		key      func(src netip.Addr) conntrack.Key
		answered bool
		held     bool
	}{
		{"tcp syn_sent", func(s netip.Addr) conntrack.Key { return tcpKey(s, 1000, server, 443) }, false, false},
		{"tcp established", func(s netip.Addr) conntrack.Key { return tcpKey(s, 1000, server, 443) }, true, true},
		{"udp unanswered", func(s netip.Addr) conntrack.Key { return udpKey(s, 1000, server, 53) }, false, false},
		{"udp answered", func(s netip.Addr) conntrack.Key { return udpKey(s, 1000, server, 53) }, true, true},
		{"echo unanswered", func(s netip.Addr) conntrack.Key { return echoKey(s, 7) }, false, false},
		{"echo answered", func(s netip.Addr) conntrack.Key { return echoKey(s, 7) }, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, 1, 1024, automap(PortRange{50000, 50000}))
			k := c.key(client)
			open := h.openUnanswered
			if c.answered {
				open = h.open
			}
			tr, ref, r := open(k)
			if r != drop.None {
				t.Fatal(r)
			}
			h.close(k, ref)
			h.advance(conntrack.Second)
			k2 := c.key(netip.MustParseAddr("10.0.0.9"))
			tr2, _, r := h.open(k2)
			st := h.stats()
			if r != drop.None || tr2.Port != tr.Port {
				t.Fatalf("second flow: %+v %v", tr2, r)
			}
			held := st.Counters[CtrQuarantineOverride] == 1
			unheld := st.Counters[CtrReleasedUnheld] == 1
			if held != c.held || unheld == c.held || st.Counters[CtrReleased] != 1 {
				t.Fatalf("port held %v (overrides %d, released %d, released_unheld %d), want held %v",
					held, st.Counters[CtrQuarantineOverride], st.Counters[CtrReleased], st.Counters[CtrReleasedUnheld], c.held)
			}
			if ds := h.destinations(); len(ds) != 1 || ds[0].InUse != 1 || ds[0].Quarantined != 0 {
				t.Fatalf("destinations %+v", ds)
			}
		})
	}
}

func udpKey(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) conntrack.Key {
	return conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport))
}

func echoKey(src netip.Addr, id uint16) conntrack.Key {
	return conntrack.MakeKey(header.ProtoICMP, netip.AddrPortFrom(src, id), netip.AddrPortFrom(server, 0))
}

// BenchmarkAllocateFullQuarantine measures one new flow toward a
// destination whose quarantine holds every port of the range but a few
// (the state after a first flood), the translation abandoned so that the
// state stays the same. A refusal at the probe bound counts as an
// operation: it is what the flow costs.
func BenchmarkAllocateFullQuarantine(b *testing.B) {
	for _, c := range []struct {
		name string
		free []uint16
	}{{"16free", []uint16{2000, 6000, 10000, 14000, 18000, 22000, 26000, 30000, 34000, 38000, 42000, 46000, 50000, 54000, 58000, 62000}},
		{"1free", []uint16{40000}}, {"0free", nil}} {
		b.Run(c.name, func(b *testing.B) {
			h, a, next := stormSetup(b, c.free)
			k := next()
			now := h.now
			st0 := a.Stats()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				tr, r := a.Allocate(&k, now)
				switch r {
				case drop.None:
					a.Abandon(&k, tr)
				case drop.SNATProbeLimit:
				default:
					b.Fatal(r)
				}
			}
			st := a.Stats()
			b.ReportMetric(float64(st.Counters[CtrProbes]-st0.Counters[CtrProbes])/float64(b.N), "probes/op")
			b.ReportMetric(float64(st.Counters[CtrAllocated]-st0.Counters[CtrAllocated])/float64(b.N), "allocated/op")
		})
	}
}

// Allocate toward a destination whose quarantine is full does not allocate
// either, on any of its paths (refusal at the bound, the pass, overrides).
func TestStormZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	h, a, next := stormSetup(t, nil)
	k := next()
	st0 := a.Stats()
	if n := testing.AllocsPerRun(2000, func() {
		h.advance(conntrack.Millisecond)
		if tr, r := a.Allocate(&k, h.now); r == drop.None {
			a.Abandon(&k, tr)
		}
	}); n != 0 {
		t.Errorf("%v allocs per Allocate", n)
	}
	st := a.Stats()
	if st.Counters[CtrProbeLimit] == st0.Counters[CtrProbeLimit] || st.Counters[CtrQuarantineOverride] == st0.Counters[CtrQuarantineOverride] {
		t.Errorf("refusals and overrides not both exercised: %+v", st)
	}
	if st.Counters[CtrAbandoned]-st0.Counters[CtrAbandoned] < 1000 {
		t.Errorf("the abandoned port was not handed on: %+v", st)
	}
}

// Issue 16's two floods, back to back, into a small table: unanswered SYNs
// from one inside host on random ports, then from random inside addresses,
// toward one destination. conntrack evicts the unanswered SYN_SENT flows
// under pressure; their ports carried no connection, so none is
// quarantined, and new flows keep finding a free port at the first probes
// (with the old allocator the first flood filled the quarantine toward the
// destination and the second paid for it).
func TestFloodsIntoSmallTable(t *testing.T) {
	const perFlood = 70000
	h := newHarness(t, 1, 4096, Config{Automap: natIP})
	a := h.n.Allocator(0)
	sh := h.tb.Shard(0)
	var maxProbes uint64
	flood := func(name string, key func(i int) conntrack.Key) {
		st0 := a.Stats()
		for i := range perFlood {
			h.advance(10 * conntrack.Millisecond / 1000)
			k := key(i)
			before := a.Stats().Counters[CtrProbes]
			tr, r := a.Allocate(&k, h.now)
			maxProbes = max(maxProbes, a.Stats().Counters[CtrProbes]-before)
			if r != drop.None {
				t.Fatalf("%s, flow %d: %v", name, i, r)
			}
			p := packet(k)
			if v := sh.Create(&p, conntrack.NewFlow{NAT: tr}, h.now); v.Action != conntrack.Forward {
				a.Abandon(&k, tr)
			}
		}
		st := a.Stats()
		probes := st.Counters[CtrProbes] - st0.Counters[CtrProbes]
		allocated := st.Counters[CtrAllocated] - st0.Counters[CtrAllocated]
		t.Logf("%s: %d allocated, %.2f probes per new flow, %d released without quarantine, quarantine holds %d",
			name, allocated, float64(probes)/float64(allocated), st.Counters[CtrReleasedUnheld]-st0.Counters[CtrReleasedUnheld], a.q.len())
		if float64(probes)/float64(allocated) > 2 {
			t.Errorf("%s: %.2f probes per new flow", name, float64(probes)/float64(allocated))
		}
	}
	flood("random ports", func(i int) conntrack.Key { return tcpKey(client, uint16(1024+i%64000), server, 443) })
	flood("random inside addresses", func(i int) conntrack.Key {
		return tcpKey(netip.AddrFrom4([4]byte{10, byte(1 + i>>16), byte(i >> 8), byte(i)}), 40000, server, 443)
	})
	st := a.Stats()
	if q := a.q.len(); q != 0 || st.Counters[CtrQuarantineForgotten] != 0 {
		t.Errorf("the quarantine holds %d ports of flows that carried no connection", q)
	}
	if st.Counters[CtrReleasedUnheld] < 2*perFlood-4096 {
		t.Errorf("%d released without quarantine, want nearly %d", st.Counters[CtrReleasedUnheld], 2*perFlood)
	}
	if maxProbes > MaxProbes {
		t.Errorf("an allocation examined %d ports, the bound is %d", maxProbes, MaxProbes)
	}
}
