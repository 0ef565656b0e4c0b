package ctl

import (
	"context"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
)

// DefaultMaxDests is how many destinations ListDestinations returns when
// the request names no maximum.
const DefaultMaxDests = 1000

// Destinations is Backend.Destinations over the engine's conntrack table:
// the workers copy their destinations between batches; it waits for them
// until ctx ends, at most DataPlaneWait.
func (b *EngineBackend) Destinations(ctx context.Context) (conntrack.Destinations, error) {
	if err := b.enter(); err != nil {
		return conntrack.Destinations{}, err
	}
	defer b.life.RUnlock()
	dctx, cancel := context.WithTimeout(ctx, DataPlaneWait)
	defer cancel()
	return b.e.Table().Destinations(dctx, b.now())
}

type destService struct {
	edgepb.UnimplementedDestinationServiceServer
	s *Server
}

func (x destService) ListDestinations(ctx context.Context, req *edgepb.ListDestinationsRequest) (*edgepb.ListDestinationsResponse, error) {
	ds, err := x.s.b.Destinations(ctx)
	if err != nil {
		return nil, backendErr(ctx, "destinations", err)
	}
	return destsToPB(&ds, int(req.Max)), nil
}

// destsToPB converts the busiest max destinations (0: DefaultMaxDests).
func destsToPB(ds *conntrack.Destinations, max int) *edgepb.ListDestinationsResponse {
	if max <= 0 {
		max = DefaultMaxDests
	}
	resp := &edgepb.ListDestinationsResponse{Total: uint32(len(ds.Dests)), Capacity: uint32(ds.Capacity), Replaced: ds.Replaced}
	list := ds.Dests
	if len(list) > max {
		list = list[:max]
	}
	for i := range list {
		d := &list[i]
		pd := &edgepb.Destination{
			Address: d.Dest.AddrPort().Addr().String(), Port: uint32(d.Dest.Port), Protocol: pbProto(d.Dest.Proto),
			Zone: uint32(d.Dest.Zone), Counters: make(map[string]uint64, conntrack.NumDestCounters), Approx: d.Approx,
		}
		for c := range conntrack.NumDestCounters {
			if n := d.Counters[c]; n != 0 {
				pd.Counters[c.String()] = n
			}
		}
		for h := range conntrack.NumDestHists {
			b := d.Hists[h][:]
			last := len(b)
			for last > 0 && b[last-1] == 0 {
				last--
			}
			if last > 0 {
				pd.Histograms = append(pd.Histograms, &edgepb.Histogram{Name: h.String(), Buckets: append([]uint64(nil), b[:last]...)})
			}
		}
		resp.Destinations = append(resp.Destinations, pd)
	}
	return resp
}
