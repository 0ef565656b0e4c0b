package ctl

import (
	"net/netip"
	"testing"
	"time"

	"github.com/edgegw/edge/ctl/edgepb"
	"github.com/edgegw/edge/snat"
)

func TestNATMappings(t *testing.T) {
	fb := newFake()
	fb.mappings = []Mapping{
		{MappingStat: snat.MappingStat{Inside: netip.MustParseAddrPort("10.0.0.2:5000"), External: netip.MustParseAddrPort("203.0.113.1:5000"),
			Proto: 17, Flows: 2, Filtering: snat.AddressPortDependent, Shard: 1}},
		{MappingStat: snat.MappingStat{Inside: netip.MustParseAddrPort("10.0.0.3:6000"), External: netip.MustParseAddrPort("203.0.113.1:31000"),
			Proto: 17, Filtering: snat.EndpointIndependentFiltering, Carried: true}, IdleLeft: 90 * time.Second},
	}
	ts := newTestServer(t, fb)
	ctx := ctxT(t)
	r, err := ts.client.NAT.ListMappings(ctx, &edgepb.ListMappingsRequest{})
	if err != nil || r.Total != 2 || len(r.Mappings) != 2 {
		t.Fatalf("%v, %v", r, err)
	}
	m := r.Mappings[0]
	if m.InsideAddress != "10.0.0.2" || m.InsidePort != 5000 || m.ExternalAddress != "203.0.113.1" || m.ExternalPort != 5000 ||
		m.Protocol != "udp" || m.Flows != 2 || m.Worker != 1 || m.Filtering != "address-and-port-dependent" || m.IdleLeft != nil {
		t.Fatalf("busy mapping %v", m)
	}
	if m := r.Mappings[1]; m.IdleLeft.AsDuration() != 90*time.Second || !m.Carried || m.Filtering != "endpoint-independent" {
		t.Fatalf("idle mapping %v", m)
	}
	if r, err := ts.client.NAT.ListMappings(ctx, &edgepb.ListMappingsRequest{Max: 1}); err != nil || r.Total != 2 || len(r.Mappings) != 1 {
		t.Fatalf("max 1: %v, %v", r, err)
	}
	f, err := ts.client.NAT.FlushMappings(ctx, &edgepb.FlushMappingsRequest{})
	if err != nil || f.Left != 1 || len(fb.mappings) != 1 {
		t.Fatalf("flush: %v, %v, %d left", f, err, len(fb.mappings))
	}
}
