package ctl

import (
	"net/netip"
	"testing"

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
