package snat

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
)

// Tests of Prepare, Intern, Install and Reconfigure on a NAT with flows.

// After a change of port range, ports quarantined under the old range are
// never given out (not even as a quarantine override), and the counts the
// shortcuts trust are of the new range: with the new range full, new flows
// are refused.
func TestReconfigureRangeQuarantine(t *testing.T) {
	h := newHarness(t, 1, 1024, Config{Automap: natIP, Ports: PortRange{1000, 1009}, Quarantine: time.Minute})
	type flow struct {
		k   conntrack.Key
		ref conntrack.Ref
	}
	var flows []flow
	for i := range 10 {
		k := tcpKey(client, uint16(40000+i), server, 443)
		_, ref := h.mustOpen(k)
		flows = append(flows, flow{k, ref})
	}
	// The range is full: a full pass finds it so (and trusts its counts).
	if _, _, r := h.open(tcpKey(client, 40100, server, 443)); r != drop.SNATExhausted {
		t.Fatalf("eleventh flow in a 10-port range: %v", r)
	}
	for _, f := range flows {
		h.advance(conntrack.Millisecond)
		h.close(f.k, f.ref)
	}
	if err := h.n.Reconfigure(&Config{Automap: natIP, Ports: PortRange{2000, 2001}, Quarantine: time.Minute, Mapping: EndpointDependent}); err != nil {
		t.Fatal(err)
	}
	var got []uint16
	for i := range 6 {
		h.advance(conntrack.Millisecond)
		tr, _, r := h.open(tcpKey(client, uint16(41000+i), server, 443))
		switch {
		case i < 2 && r != drop.None:
			t.Fatalf("new flow %d: %v", i, r)
		case i >= 2 && r != drop.SNATExhausted:
			t.Fatalf("new flow %d with both ports of the new range in use: port %d, %v; want snat_exhausted", i, tr.Port, r)
		}
		if r == drop.None {
			got = append(got, tr.Port)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []uint16{2000, 2001}) {
		t.Fatalf("ports %v, want [2000 2001]", got)
	}
	if o := h.stats().Counters[CtrQuarantineOverride]; o != 0 {
		t.Fatalf("%d quarantine overrides (old-range ports reused)", o)
	}
	// The destination's counts are the new range's: two in use, none of
	// the old range's ten quarantined ports.
	ds := h.destinations()
	if len(ds) != 1 || ds[0].Range != 2 || ds[0].InUse != 2 || ds[0].Quarantined != 0 || ds[0].Free != 0 || ds[0].OutOfRange != 0 {
		t.Fatalf("destinations %+v; want range 2, 2 in use, 0 quarantined", ds)
	}
	// The old ports are still quarantined (the range may come back).
	h.n.Reconfigure(&Config{Automap: natIP, Ports: PortRange{1000, 1009}, Quarantine: time.Minute, Mapping: EndpointDependent})
	for i := range 10 {
		tr, _, r := h.open(tcpKey(client, uint16(42000+i), server, 443))
		if r != drop.None {
			t.Fatalf("old range back, flow %d: %v", i, r)
		}
		if i == 0 && h.stats().Counters[CtrQuarantineOverride] != 1 {
			t.Fatalf("first flow of the old range back took port %d without an override: the quarantine was lost", tr.Port)
		}
	}
}

// A flow that outlives a change of range is counted out of range, and its
// release neither counts a quarantined port of the new range nor leaves
// the destination counted forever.
func TestReconfigureOldFlowCounts(t *testing.T) {
	h := newHarness(t, 1, 1024, Config{Automap: natIP, Ports: PortRange{1000, 1009}})
	k := tcpKey(client, 40000, server, 443)
	_, ref := h.mustOpen(k)
	if err := h.n.Reconfigure(&Config{Automap: natIP, Ports: PortRange{2000, 2009}, Mapping: EndpointDependent}); err != nil {
		t.Fatal(err)
	}
	k2 := tcpKey(client, 40001, server, 443)
	_, ref2 := h.mustOpen(k2)
	ds := h.destinations()
	if len(ds) != 1 || ds[0].InUse != 1 || ds[0].OutOfRange != 1 || ds[0].Quarantined != 0 || ds[0].Free != 9 {
		t.Fatalf("destinations %+v; want 1 in use, 1 out of range, 9 free", ds)
	}
	h.close(k, ref)
	ds = h.destinations()
	if len(ds) != 1 || ds[0].InUse != 1 || ds[0].OutOfRange != 0 || ds[0].Quarantined != 0 {
		t.Fatalf("after the old flow ended: %+v; want 1 in use, nothing else", ds)
	}
	h.close(k2, ref2)
	ds = h.destinations()
	if len(ds) != 1 || ds[0].InUse != 0 || ds[0].Quarantined != 1 {
		t.Fatalf("after both ended: %+v; want the new flow's port quarantined", ds)
	}
	// Once the quarantine has ended nothing is counted any more.
	h.advance(conntrack.Time(DefaultQuarantine) + conntrack.Second)
	h.n.Allocator(0).Serve(h.now)
	if ds := h.destinations(); len(ds) != 0 {
		t.Fatalf("destinations after the quarantine: %+v", ds)
	}
}

// Prepare validates without a side effect: nothing is interned, nothing
// becomes known, the configuration in force stays; Install interns and
// swaps; Intern before Install makes Install infallible.
func TestPrepareInstall(t *testing.T) {
	h := newHarness(t, 2, 1024, automap(PortRange{}))
	interned := h.tb.InternedAddrs()
	known := len(*h.n.known.Load())
	pool := Config{Mode: Pools, Pools: []Pool{{Name: "p", Ranges: []AddrRange{{netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.13")}}}},
		Ports: PortRange{3000, 3999}}
	s, err := h.n.Prepare(&pool)
	if err != nil {
		t.Fatal(err)
	}
	if h.tb.InternedAddrs() != interned || len(*h.n.known.Load()) != known {
		t.Fatal("Prepare interned addresses")
	}
	if c, on := h.n.Config(); !on || c.Mode != Automap {
		t.Fatalf("Prepare changed the configuration: %+v", c)
	}
	if _, err := h.n.Prepare(&Config{Mode: Pools}); err == nil {
		t.Fatal("invalid config prepared")
	}
	if _, err := h.n.Prepare(&Config{Automap: natIP, Destinations: 7}); !errors.Is(err, ErrFixedSize) {
		t.Fatalf("a fixed size changed: %v", err)
	}
	if err := h.n.Intern(s); err != nil {
		t.Fatal(err)
	}
	if h.tb.InternedAddrs() != interned+4 {
		t.Fatalf("interned %d, want %d", h.tb.InternedAddrs(), interned+4)
	}
	if c, on := h.n.Config(); !on || c.Mode != Automap {
		t.Fatal("Intern changed the configuration in force")
	}
	if err := h.n.Install(s); err != nil {
		t.Fatal(err)
	}
	if c, _ := h.n.Config(); c.Mode != Pools || c.Ports.Start != 3000 {
		t.Fatalf("installed %+v", c)
	}
	tr, _ := h.mustOpen(tcpKey(client, 1, server, 80))
	if a := netip.AddrFrom16(h.n.Addr(tr.Addr)).Unmap(); a.Compare(netip.MustParseAddr("198.51.100.10")) < 0 || tr.Port < 3000 || tr.Port > 3999 {
		t.Fatalf("translation %v:%d", a, tr.Port)
	}
	// The same configuration again interns nothing more; off and on again too.
	if err := h.n.Reconfigure(&pool); err != nil {
		t.Fatal(err)
	}
	off, _ := h.n.Prepare(nil)
	if err := h.n.Install(off); err != nil {
		t.Fatal(err)
	}
	if _, on := h.n.Config(); on {
		t.Fatal("still on")
	}
	if err := h.n.Reconfigure(&pool); err != nil {
		t.Fatal(err)
	}
	if h.tb.InternedAddrs() != interned+4 {
		t.Fatalf("interned %d after re-applies, want %d", h.tb.InternedAddrs(), interned+4)
	}
	other := newHarness(t, 1, 1024, automap(PortRange{}))
	defer func() {
		if recover() == nil {
			t.Fatal("Install of another NAT's snapshot did not panic")
		}
	}()
	other.n.Install(s)
}

// Many dry runs of a big pool change nothing; renumberings intern each
// pool once, in one batch, and the one that would overflow the table is
// refused by Prepare, before anything changed.
func TestPrepareBigPools(t *testing.T) {
	h := newHarness(t, 1, 1024, automap(PortRange{}))
	pool := func(base int) *Config {
		start := netip.AddrFrom4([4]byte{10, byte(base), 0, 0})
		end := netip.AddrFrom4([4]byte{10, byte(base), 15, 255}) // 4096 addresses
		return &Config{Mode: Pools, Pools: []Pool{{Name: "p", Ranges: []AddrRange{{start, end}}}}}
	}
	before := h.tb.InternedAddrs()
	for range 100 {
		if _, err := h.n.Prepare(pool(1)); err != nil {
			t.Fatal(err)
		}
	}
	if h.tb.InternedAddrs() != before || len(*h.n.known.Load()) != before+1 {
		t.Fatalf("dry runs interned %d addresses", h.tb.InternedAddrs()-before)
	}
	// 15 renumberings of 4096 fit beside the automap address; the 16th
	// does not.
	for i := range 15 {
		if err := h.n.Reconfigure(pool(i + 1)); err != nil {
			t.Fatalf("renumbering %d: %v", i, err)
		}
	}
	if got := h.tb.InternedAddrs(); got != before+15*4096 {
		t.Fatalf("%d interned", got)
	}
	in := h.n.cur.Load()
	if err := h.n.Reconfigure(pool(16)); err == nil {
		t.Fatal("a pool past the intern table's size was accepted")
	}
	if h.tb.InternedAddrs() != before+15*4096 || h.n.cur.Load() != in {
		t.Fatal("the refused pool changed something")
	}
	// An address already interned costs nothing: back to pool 1 works.
	if err := h.n.Reconfigure(pool(1)); err != nil {
		t.Fatal(err)
	}
}
