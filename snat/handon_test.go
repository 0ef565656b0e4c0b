package snat

import (
	"net/netip"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// The port last given back without quarantine is handed on only while it
// is still not quarantined: here it was taken again by a flow that carried
// a connection and then ended, so the next flow gets it only as a counted
// override (RFC 6888 REQ-8), never as a plain allocation.
func TestHandedOnPortQuarantinedSince(t *testing.T) {
	h := newHarness(t, 1, 1024, automap(PortRange{50000, 50001}))
	host := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}) }
	a, refA, r := h.openUnanswered(tcpKey(host(1), 1000, server, 443))
	if r != drop.None {
		t.Fatal(r)
	}
	kA := tcpKey(host(1), 1000, server, 443)
	b, _ := h.mustOpen(tcpKey(host(2), 1000, server, 443))
	if a.Port == b.Port {
		t.Fatalf("two flows on port %d", a.Port)
	}
	// A carried no connection: its port is free at once (and remembered
	// for hand-on).
	h.close(kA, refA)
	h.advance(conntrack.Second)
	kC := tcpKey(host(3), 1000, server, 443)
	c, refC := h.mustOpen(kC)
	if c.Port != a.Port {
		t.Fatalf("third flow got port %d, want the only free one %d", c.Port, a.Port)
	}
	// C carried a connection: the port is quarantined now.
	h.close(kC, refC)
	h.advance(conntrack.Second)
	st0 := h.stats()
	d, _ := h.mustOpen(tcpKey(host(4), 1000, server, 443))
	st := h.stats()
	if d.Port != a.Port {
		t.Fatalf("fourth flow got port %d, want %d", d.Port, a.Port)
	}
	if n := st.Counters[CtrQuarantineOverride] - st0.Counters[CtrQuarantineOverride]; n != 1 {
		t.Fatalf("a port quarantined 1s ago was reused with %d overrides counted, want 1", n)
	}
}

// A destination the destination table has no room for is not counted, so
// no quarantine list serves it: when every port toward it is quarantined,
// the pass over the range takes the least recently released one
// (RFC 6888 REQ-8 yields to RFC 4787 REQ-3), as an override.
func TestUncountedDestinationOverridesOldest(t *testing.T) {
	cfg := automap(PortRange{50000, 50002})
	cfg.Destinations = 2
	h := newHarness(t, 1, 1024, cfg)
	for i := range 2 { // fill the destination table
		h.mustOpen(tcpKey(client, 1000, server, uint16(1+i)))
	}
	var order []uint16
	for i := range 3 {
		k := tcpKey(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 2000, server, 80)
		tr, ref := h.mustOpen(k)
		h.advance(conntrack.Second)
		h.close(k, ref)
		order = append(order, tr.Port)
	}
	if st := h.stats(); st.Counters[CtrDestOverflow] != 3 {
		t.Fatalf("dest_overflow %d, want 3: the destination must not be counted", st.Counters[CtrDestOverflow])
	}
	h.advance(conntrack.Second)
	st0 := h.stats()
	tr, _ := h.mustOpen(tcpKey(netip.AddrFrom4([4]byte{10, 0, 2, 1}), 3000, server, 80))
	st := h.stats()
	if tr.Port != order[0] {
		t.Fatalf("took port %d; released in order %v, want the least recently released %d", tr.Port, order, order[0])
	}
	if st.Counters[CtrQuarantineOverride]-st0.Counters[CtrQuarantineOverride] != 1 {
		t.Fatalf("override not counted")
	}
}

// The quarantine list reuseOldest walks is bounded by ReuseProbes: when
// its oldest entries are ports whose reply keys are live flows after all
// (here flows opened from the outside toward the translated address, which
// the counts do not know of), one allocation still examines at most
// MaxProbes ports, and is refused at the bound rather than walking the
// whole list.
func TestReuseOldestBounded(t *testing.T) {
	const nports = 2000
	h := newHarness(t, 1, 8192, automap(PortRange{20000, 20000 + nports - 1}))
	a := h.n.Allocator(0)
	sh := h.tb.Shard(0)
	var order []uint16 // ports in the order they were released
	type flow struct {
		k   conntrack.Key
		ref conntrack.Ref
		tr  conntrack.Translation
	}
	var flows []flow
	for i := 0; len(flows) < nports; i++ {
		k := tcpKey(client, uint16(1024+i), server, 443)
		tr, ref, r := h.open(k)
		switch r {
		case drop.None:
			flows = append(flows, flow{k, ref, tr})
		case drop.SNATProbeLimit: // the pass goes on at the next flow
		default:
			t.Fatalf("flow %d: %v", i, r)
		}
	}
	for _, f := range flows {
		h.advance(conntrack.Millisecond)
		h.close(f.k, f.ref)
		order = append(order, f.tr.Port)
	}
	// New flows until a pass over the whole range ended: the last one
	// takes the oldest quarantined port, and the counts say full.
	next := 30000
	for took := false; !took; next++ {
		if next > 30000+nports {
			t.Fatal("no pass over the range ended")
		}
		_, _, r := h.open(tcpKey(client, uint16(next), server, 443))
		took = r == drop.None
	}
	// Flows from the destination to the translated address on the next
	// oldest ports.
	for _, port := range order[1:1501] {
		p := packet(conntrack.MakeKey(header.ProtoTCP, netip.AddrPortFrom(server, 443), netip.AddrPortFrom(natIP, port)))
		if v := sh.Create(&p, conntrack.NewFlow{}, h.now); v.Action != conntrack.Forward {
			t.Fatalf("inbound flow to port %d: %+v", port, v)
		}
	}
	st0 := a.Stats()
	k := tcpKey(client, uint16(next), server, 443)
	_, r := a.Allocate(&k, h.now)
	st := a.Stats()
	if probes := st.Counters[CtrProbes] - st0.Counters[CtrProbes]; probes > MaxProbes {
		t.Fatalf("one allocation examined %d ports (%v), the bound is %d", probes, r, MaxProbes)
	}
}
