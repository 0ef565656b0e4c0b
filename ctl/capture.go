package ctl

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
	"github.com/edgegw/edge/dataplane"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/icmp"
)

// Triggered capture (CaptureService, edge capture).

// Limits of a capture.
const (
	// DefaultCaptureDuration bounds a capture whose request gives no
	// duration.
	DefaultCaptureDuration = 10 * time.Minute
	// MaxCaptureDuration is the longest a request may arm a capture for.
	MaxCaptureDuration = 24 * time.Hour
	// CaptureBatch is the most packets in one ReadCaptureResponse.
	CaptureBatch = 1024
)

// CaptureBackend is a Backend that captures packets (EngineBackend does).
// The server answers CaptureService with UNIMPLEMENTED when its Backend is
// not one.
type CaptureBackend interface {
	// ArmCapture arms a capture; dataplane.ErrCaptureArmed while another
	// is armed.
	ArmCapture(ctx context.Context, spec dataplane.CaptureSpec) (dataplane.CaptureStatus, error)
	// DisarmCapture disarms the armed capture and reports whether one was.
	DisarmCapture(ctx context.Context) (bool, dataplane.CaptureStatus, error)
	// ReadCapture moves kept packets into out and returns how many.
	ReadCapture(ctx context.Context, out []dataplane.CapturedPacket) (int, dataplane.CaptureStatus, error)
}

var _ CaptureBackend = (*EngineBackend)(nil)

// ArmCapture implements CaptureBackend.
func (b *EngineBackend) ArmCapture(_ context.Context, spec dataplane.CaptureSpec) (dataplane.CaptureStatus, error) {
	if err := b.enter(); err != nil {
		return dataplane.CaptureStatus{}, err
	}
	defer b.life.RUnlock()
	if _, err := b.e.ArmCapture(spec); err != nil {
		return b.e.CaptureStatus(), err
	}
	return b.e.CaptureStatus(), nil
}

// DisarmCapture implements CaptureBackend.
func (b *EngineBackend) DisarmCapture(context.Context) (bool, dataplane.CaptureStatus, error) {
	if err := b.enter(); err != nil {
		return false, dataplane.CaptureStatus{}, err
	}
	defer b.life.RUnlock()
	was := b.e.DisarmCapture()
	return was, b.e.CaptureStatus(), nil
}

// ReadCapture implements CaptureBackend.
func (b *EngineBackend) ReadCapture(_ context.Context, out []dataplane.CapturedPacket) (int, dataplane.CaptureStatus, error) {
	if err := b.enter(); err != nil {
		return 0, dataplane.CaptureStatus{}, err
	}
	defer b.life.RUnlock()
	n := b.e.ReadCapture(out)
	return n, b.e.CaptureStatus(), nil
}

type captureService struct {
	edgepb.UnimplementedCaptureServiceServer
	s *Server
}

func (x captureService) backend() (CaptureBackend, error) {
	cb, ok := x.s.b.(CaptureBackend)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this edge cannot capture packets")
	}
	return cb, nil
}

func (x captureService) ArmCapture(ctx context.Context, req *edgepb.ArmCaptureRequest) (*edgepb.ArmCaptureResponse, error) {
	cb, err := x.backend()
	if err != nil {
		return nil, err
	}
	f, err := filterFromPB("filter", req.Filter)
	if err != nil {
		return nil, err
	}
	if f.State != conntrack.StateNone {
		return nil, invalidArg("filter.state", "a capture cannot filter by state (a packet has none before it is tracked)")
	}
	d := DefaultCaptureDuration
	if req.Duration != nil {
		if err := req.Duration.CheckValid(); err != nil || req.Duration.AsDuration() < 0 || req.Duration.AsDuration() > MaxCaptureDuration {
			return nil, invalidArg("duration", "%v is out of range (0-%v; 0: %v)", req.Duration.AsDuration(), MaxCaptureDuration, DefaultCaptureDuration)
		}
		if v := req.Duration.AsDuration(); v > 0 {
			d = v
		}
	}
	st, err := cb.ArmCapture(ctx, dataplane.CaptureSpec{Filter: f, Count: int(req.Count), For: d})
	switch {
	case errors.Is(err, dataplane.ErrCaptureArmed):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case err != nil:
		return nil, backendErr(ctx, "arm capture", err)
	}
	return &edgepb.ArmCaptureResponse{Status: captureStatusToPB(&st, newClock(x.s.b))}, nil
}

func (x captureService) DisarmCapture(ctx context.Context, _ *edgepb.DisarmCaptureRequest) (*edgepb.DisarmCaptureResponse, error) {
	cb, err := x.backend()
	if err != nil {
		return nil, err
	}
	was, st, err := cb.DisarmCapture(ctx)
	if err != nil {
		return nil, backendErr(ctx, "disarm capture", err)
	}
	return &edgepb.DisarmCaptureResponse{WasArmed: was, Status: captureStatusToPB(&st, newClock(x.s.b))}, nil
}

func (x captureService) ReadCapture(ctx context.Context, req *edgepb.ReadCaptureRequest) (*edgepb.ReadCaptureResponse, error) {
	cb, err := x.backend()
	if err != nil {
		return nil, err
	}
	max := int(req.Max)
	if max == 0 || max > CaptureBatch {
		max = CaptureBatch
	}
	buf := make([]dataplane.CapturedPacket, max)
	n, st, err := cb.ReadCapture(ctx, buf)
	if err != nil {
		return nil, backendErr(ctx, "read capture", err)
	}
	c := newClock(x.s.b)
	resp := &edgepb.ReadCaptureResponse{Status: captureStatusToPB(&st, c), Packets: make([]*edgepb.CapturedPacket, n)}
	for i := range buf[:n] {
		resp.Packets[i] = capturedToPB(&buf[i], c)
	}
	return resp, nil
}

func captureStatusToPB(s *dataplane.CaptureStatus, c clock) *edgepb.CaptureStatus {
	out := &edgepb.CaptureStatus{
		Armed:      s.Armed,
		Session:    s.Session,
		Count:      uint32(s.Spec.Count),
		Anomalies:  s.Anomalies,
		Packets:    s.Packets,
		Lost:       s.Lost,
		Limited:    s.Limited,
		SnapLength: dataplane.CaptureSnapLen,
	}
	if s.Spec.Filter != (conntrack.Filter{}) {
		out.Filter = filterToPB(s.Spec.Filter)
	}
	if s.Until != 0 {
		out.Until = c.wall(s.Until)
	}
	return out
}

func capturedToPB(p *dataplane.CapturedPacket, c clock) *edgepb.CapturedPacket {
	out := &edgepb.CapturedPacket{
		Time:      c.wall(p.Time),
		Session:   p.Session,
		Worker:    uint32(p.Worker),
		Trigger:   p.Trigger,
		Ingress:   portSide(p.In),
		Length:    uint32(p.Len),
		Data:      append([]byte(nil), p.Data[:p.CapLen]...),
		Tuple:     tupleToPB(&p.Key),
		Action:    "passed",
		RstSent:   p.RST,
		Anomaly:   p.Anomaly.String(),
		Anomalous: p.Anomalous,
		TcpFlags:  uint32(p.Flags),
	}
	if p.HasFlow {
		out.Flow, out.Direction = tupleToPB(&p.Flow), p.Dir.String()
		out.Generation = uint32(p.Gen)
	}
	if p.Drop != drop.None {
		out.Action, out.DropReason = "dropped", p.Drop.String()
	}
	if p.ICMP != icmp.NoError {
		out.IcmpSent = p.ICMP.String()
	}
	if p.Idle != 0 {
		out.Idle = durationpb.New(time.Duration(p.Idle))
	}
	return out
}
