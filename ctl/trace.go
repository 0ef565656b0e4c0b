package ctl

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
	"github.com/edgegw/edge/dataplane"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/icmp"
)

// Packet traces (TraceService, edge trace).

// Limits of a trace.
const (
	// DefaultTraceDuration bounds a trace whose request gives no duration.
	DefaultTraceDuration = time.Minute
	// MaxTraceDuration is the longest trace a request may ask for.
	MaxTraceDuration = time.Hour
	// TraceBatch is the most packets in one TraceResponse.
	TraceBatch = 256
	// tracePoll is how often a trace's rings are read.
	tracePoll = 20 * time.Millisecond
)

// TraceBackend is a Backend that traces packets (EngineBackend does). The
// server answers Trace with UNIMPLEMENTED when its Backend is not one.
type TraceBackend interface {
	// Trace records the packets spec selects and calls fn with each batch
	// of records read, and the records lost so far, until the trace is done
	// (spec.Count, spec.For), ctx ends (its error is returned) or fn returns
	// false. One trace runs at a time: another fails with
	// dataplane.ErrTraceBusy.
	Trace(ctx context.Context, spec dataplane.TraceSpec, fn func(recs []dataplane.TraceRecord, lost uint64) bool) error
}

var _ TraceBackend = (*EngineBackend)(nil)

// Trace implements TraceBackend: it reads the workers' trace rings every
// tracePoll (and at once while they are full).
func (b *EngineBackend) Trace(ctx context.Context, spec dataplane.TraceSpec, fn func([]dataplane.TraceRecord, uint64) bool) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.life.RUnlock()
	tr, err := b.e.StartTrace(spec)
	if err != nil {
		return err
	}
	defer tr.Stop()
	buf := make([]dataplane.TraceRecord, TraceBatch)
	tick := time.NewTicker(tracePoll)
	defer tick.Stop()
	last := false // the trace is done: one more read after a poll period
	for {
		done := tr.Done() // before reading: what was recorded before it is read below
		n := tr.Read(buf)
		if n > 0 && !fn(buf[:n], tr.Lost()) {
			return nil
		}
		if n == len(buf) {
			continue
		}
		if last {
			return nil
		}
		// A record is written when its packet has been through the
		// pipeline, a moment after the packet counted against the trace:
		// the last ones are read after one more period.
		last = done
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

type traceService struct {
	edgepb.UnimplementedTraceServiceServer
	s *Server
}

func (x traceService) Trace(req *edgepb.TraceRequest, stream grpc.ServerStreamingServer[edgepb.TraceResponse]) error {
	tb, ok := x.s.b.(TraceBackend)
	if !ok {
		return status.Error(codes.Unimplemented, "this edge cannot trace packets")
	}
	f, err := filterFromPB("filter", req.Filter)
	if err != nil {
		return err
	}
	if f.State != conntrack.StateNone {
		return invalidArg("filter.state", "a trace cannot filter by state (a packet has none before it is tracked)")
	}
	d := DefaultTraceDuration
	if req.Duration != nil {
		if err := req.Duration.CheckValid(); err != nil || req.Duration.AsDuration() < 0 || req.Duration.AsDuration() > MaxTraceDuration {
			return invalidArg("duration", "%v is out of range (0-%v; 0: %v)", req.Duration.AsDuration(), MaxTraceDuration, DefaultTraceDuration)
		}
		if v := req.Duration.AsDuration(); v > 0 {
			d = v
		}
	}
	ctx := stream.Context()
	c, n := newClock(x.s.b), newNames(x.s.b)
	var sendErr error
	err = tb.Trace(ctx, dataplane.TraceSpec{Filter: f, Count: int(req.Count), For: d}, func(recs []dataplane.TraceRecord, lost uint64) bool {
		resp := &edgepb.TraceResponse{Lost: lost, Packets: make([]*edgepb.TracePacket, len(recs))}
		for i := range recs {
			resp.Packets[i] = tracePacketToPB(&recs[i], c, n)
		}
		sendErr = stream.Send(resp)
		return sendErr == nil
	})
	switch {
	case sendErr != nil:
		return sendErr
	case errors.Is(err, dataplane.ErrTraceBusy):
		return status.Error(codes.FailedPrecondition, err.Error())
	case err != nil:
		return backendErr(ctx, "trace", err)
	}
	return nil
}

// portSides names a trace record's ports (0 inside, 1 outside).
var portSides = [...]string{"inside", "outside"}

func portSide(p uint8) string {
	if int(p) < len(portSides) {
		return portSides[p]
	}
	return ""
}

func addr16(a [16]byte) string { return netip.AddrFrom16(a).Unmap().String() }

func tracePacketToPB(r *dataplane.TraceRecord, c clock, n *names) *edgepb.TracePacket {
	out := &edgepb.TracePacket{
		Time:      c.wall(r.Time),
		Worker:    uint32(r.Worker),
		Ingress:   portSide(r.In),
		TcpFlags:  uint32(r.Flags),
		IcmpError: r.Kind == conntrack.KindRelated,
		Looped:    r.Looped,
		Tracked:   r.Tracked,
		Action:    r.Action.String(),
	}
	if r.Key != (conntrack.Key{}) {
		out.Tuple = tupleToPB(&r.Key)
	}
	switch r.Frag {
	case conntrack.FragFirst:
		out.Fragment = "first"
	case conntrack.FragLater:
		out.Fragment = "later"
	}
	if r.Parse != drop.None {
		out.Parse = r.Parse.String()
	}
	if r.Tracked {
		if r.HadFlow {
			out.StateBefore, out.GenerationBefore = pbState(r.Before), uint32(r.BeforeGen)
		}
		out.Verdict, out.Direction = r.Verdict.String(), r.Dir.String()
		if r.After != conntrack.StateNone {
			out.StateAfter, out.Generation = pbState(r.After), uint32(r.Gen)
		}
	}
	if r.Orig != (conntrack.Key{}) {
		out.Flow = tupleToPB(&r.Orig)
	}
	out.TowardMapping = r.Toward
	if r.New {
		out.Rule, out.RuleAction = n.rule(r.FlowRule), r.RuleAction.String()
	}
	if r.NATAddr != ([16]byte{}) {
		out.NatAddress, out.NatPort = addr16(r.NATAddr), uint32(r.NATPort)
	}
	switch r.Action {
	case dataplane.TraceDropped:
		out.DropReason = r.Drop.String()
	case dataplane.TraceForwarded, dataplane.TraceHeld:
		out.Egress, out.NextHop = portSide(r.Out), addr16(r.Hop)
	case dataplane.TraceHandedOff:
		out.HandoffWorker = uint32(r.Out)
	}
	if r.ICMP != icmp.NoError {
		out.IcmpSent = r.ICMP.String()
	}
	out.RstSent = r.RST
	return out
}
