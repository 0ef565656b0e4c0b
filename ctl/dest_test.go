package ctl

import (
	"net/netip"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
)

func TestListDestinations(t *testing.T) {
	fb := newFake()
	mk := func(ap string, flows, races uint64) conntrack.DestStat {
		a := netip.MustParseAddrPort(ap)
		d := conntrack.DestStat{Dest: conntrack.DestKey{Addr: a.Addr().As16(), Port: a.Port(), Proto: 6, Zone: 2}}
		d.Counters[conntrack.DestFlows] = flows
		d.Counters[conntrack.DestRaces] = races
		d.Hists[conntrack.HistServerIdleClose][13] = races
		return d
	}
	fb.dests = conntrack.Destinations{Capacity: 512, Replaced: 3,
		Dests: []conntrack.DestStat{mk("10.2.0.2:8080", 40, 7), mk("[2001:db8::1]:443", 5, 0)}}
	ts := newTestServer(t, fb)
	ctx := ctxT(t)
	r, err := ts.client.Dests.ListDestinations(ctx, &edgepb.ListDestinationsRequest{})
	if err != nil || r.Total != 2 || r.Capacity != 512 || r.Replaced != 3 || len(r.Destinations) != 2 {
		t.Fatalf("%v, %v", r, err)
	}
	d := r.Destinations[0]
	if d.Address != "10.2.0.2" || d.Port != 8080 || d.Protocol != "tcp" || d.Zone != 2 ||
		d.Counters["flows"] != 40 || d.Counters["keepalive_races"] != 7 || len(d.Counters) != 2 {
		t.Fatalf("first destination %v", d)
	}
	if len(d.Histograms) != 1 || d.Histograms[0].Name != "server_idle_close" || len(d.Histograms[0].Buckets) != 14 ||
		d.Histograms[0].Buckets[13] != 7 {
		t.Fatalf("histograms %v", d.Histograms)
	}
	if d := r.Destinations[1]; d.Address != "2001:db8::1" || d.Port != 443 || len(d.Histograms) != 0 {
		t.Fatalf("second destination %v", d)
	}
	if r, err := ts.client.Dests.ListDestinations(ctx, &edgepb.ListDestinationsRequest{Max: 1}); err != nil || r.Total != 2 || len(r.Destinations) != 1 {
		t.Fatalf("max 1: %v, %v", r, err)
	}
}

// An expired event carries the flow's idle time from conntrack to the API.
func TestEventIdle(t *testing.T) {
	tb, err := conntrack.New(conntrack.Config{MaxFlows: 64, Memory: conntrack.MemoryHeap})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	ce := conntrack.Event{Kind: conntrack.EvExpired, State: conntrack.TCPEstablished, Idle: 7441500,
		Key: conntrack.MakeKey(6, netip.MustParseAddrPort("10.0.0.2:40000"), netip.MustParseAddrPort("10.2.0.2:8080"))}
	ev := conntrackEvent(tb, &ce)
	if ev.Idle != 7441500*time.Millisecond {
		t.Fatalf("idle %v", ev.Idle)
	}
	if e := eventToPB(&ev, clock{epoch: time.Unix(0, 0)}); e.Idle.AsDuration() != ev.Idle {
		t.Fatalf("API idle %v, want %v", e.Idle, ev.Idle)
	}
	if e := eventToPB(&Event{Kind: EvOpened}, clock{}); e.Idle != nil {
		t.Fatalf("opened event with idle %v", e.Idle)
	}
}
