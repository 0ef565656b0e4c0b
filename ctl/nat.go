package ctl

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
)

// Mappings is Backend.Mappings over the engine's NAT.
func (b *EngineBackend) Mappings(ctx context.Context) ([]Mapping, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	defer b.life.RUnlock()
	n := b.e.NAT()
	if n == nil {
		return nil, nil
	}
	ms, err := n.Mappings(ctx)
	if err != nil {
		return nil, err
	}
	now := conntrack.Time(b.e.Now())
	out := make([]Mapping, len(ms))
	for i, m := range ms {
		out[i] = Mapping{MappingStat: m}
		if m.Flows == 0 && m.IdleUntil > now {
			out[i].IdleLeft = time.Duration(m.IdleUntil - now)
		}
	}
	return out, nil
}

// FlushIdleMappings is Backend.FlushIdleMappings over the engine's NAT.
func (b *EngineBackend) FlushIdleMappings(ctx context.Context) (int, error) {
	if err := b.enter(); err != nil {
		return 0, err
	}
	defer b.life.RUnlock()
	n := b.e.NAT()
	if n == nil {
		return 0, nil
	}
	return n.FlushIdleMappings(ctx)
}

type natService struct {
	edgepb.UnimplementedNATServiceServer
	s *Server
}

func (x natService) ListMappings(ctx context.Context, req *edgepb.ListMappingsRequest) (*edgepb.ListMappingsResponse, error) {
	ms, err := x.s.b.Mappings(ctx)
	if err != nil {
		return nil, backendErr(ctx, "mappings", err)
	}
	resp := &edgepb.ListMappingsResponse{Total: uint64(len(ms))}
	if req.Max != 0 && len(ms) > int(req.Max) {
		ms = ms[:req.Max]
	}
	for i := range ms {
		m := &ms[i]
		pm := &edgepb.Mapping{
			InsideAddress: m.Inside.Addr().String(), InsidePort: uint32(m.Inside.Port()),
			ExternalAddress: m.External.Addr().String(), ExternalPort: uint32(m.External.Port()),
			Protocol: pbProto(m.Proto), Zone: uint32(m.Zone), Worker: uint32(m.Shard), Flows: uint32(m.Flows),
			Filtering: m.Filtering.String(), Carried: m.Carried,
		}
		if m.Flows == 0 {
			pm.IdleLeft = durationpb.New(m.IdleLeft)
		}
		resp.Mappings = append(resp.Mappings, pm)
	}
	return resp, nil
}

func (x natService) FlushMappings(ctx context.Context, _ *edgepb.FlushMappingsRequest) (*edgepb.FlushMappingsResponse, error) {
	left, err := x.s.b.FlushIdleMappings(ctx)
	if err != nil {
		return nil, backendErr(ctx, "flush mappings", err)
	}
	return &edgepb.FlushMappingsResponse{Left: uint64(left)}, nil
}
