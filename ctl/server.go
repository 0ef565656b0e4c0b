package ctl

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
)

// Limits of the API.
const (
	// MaxRecvMsgSize is the largest request the server reads.
	MaxRecvMsgSize = 4 << 20
	// MaxConfigSize is the largest configuration document ApplyConfig takes.
	MaxConfigSize = 1 << 20
	// FlowBatch is the number of flows in one ListFlowsResponse.
	FlowBatch = 512
	// EventBatch is the most events in one SubscribeResponse.
	EventBatch = 256
	// DefaultMaxHistory and MaxHistory bound ExplainFlow's history.
	DefaultMaxHistory = 16
	MaxHistory        = 256
	// DefaultMaxStreams is the default cap on concurrent streams (calls)
	// per connection.
	DefaultMaxStreams = 64
	// DefaultMaxSubscribers is the default cap on event subscriptions
	// (Subscribe streams) server-wide.
	DefaultMaxSubscribers = 32
	// DefaultMaxDestinations is how many SNAT destinations GetStats
	// returns when the request does not say (the busiest).
	DefaultMaxDestinations = 1000
)

// Services are the full names of the API's services, as health checks and
// reflection know them.
var Services = []string{
	edgepb.StatusService_ServiceDesc.ServiceName,
	edgepb.ConfigService_ServiceDesc.ServiceName,
	edgepb.FlowService_ServiceDesc.ServiceName,
	edgepb.EventService_ServiceDesc.ServiceName,
	edgepb.StatsService_ServiceDesc.ServiceName,
}

// Option configures a Server.
type Option func(*options)

type options struct {
	eventPoll  time.Duration
	eventQueue int
	maxStreams uint32
	maxSubs    int
	uids       []uint32
	grace      time.Duration
	otherConns func(net.Conn) (credentials.AuthInfo, error) // tests: bufconn
}

// WithEventPoll sets how often the event broker reads the backend's events
// (default 25 ms).
func WithEventPoll(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.eventPoll = d
		}
	}
}

// WithEventQueue sets how many events a subscriber may have queued before
// it loses events (default 4096).
func WithEventQueue(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.eventQueue = n
		}
	}
}

// WithMaxStreams caps concurrent calls per connection (default 64).
func WithMaxStreams(n uint32) Option {
	return func(o *options) {
		if n > 0 {
			o.maxStreams = n
		}
	}
}

// WithMaxSubscribers caps event subscriptions server-wide (default 32):
// one more Subscribe fails with RESOURCE_EXHAUSTED. Each subscription
// costs the broker a copy of every matching event and a queue of up to
// WithEventQueue events.
func WithMaxSubscribers(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxSubs = n
		}
	}
}

// WithAllowedUIDs lets unix-socket peers with these uids call, besides
// root and the server's own uid (the socket's mode, 0600, must then be
// loosened by the caller, e.g. with a group).
func WithAllowedUIDs(uids ...uint32) Option {
	return func(o *options) { o.uids = append(o.uids, uids...) }
}

// WithGracePeriod sets how long GracefulStop waits for calls to finish
// before it cuts them (default 5 s).
func WithGracePeriod(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.grace = d
		}
	}
}

// Server serves the edge API over a Backend. Make it with NewServer, serve
// listeners from ListenUnix and ListenTLS (any number, concurrently) and
// stop it with GracefulStop or Stop.
type Server struct {
	b      Backend
	opts   options
	uid    uint32
	g      *grpc.Server
	health *health.Server
	broker *broker

	stopOnce sync.Once
}

// NewServer makes a server of b with health and reflection services.
func NewServer(b Backend, opts ...Option) *Server {
	s := &Server{
		b:   b,
		uid: uint32(os.Getuid()),
		opts: options{eventPoll: defaultEventPoll, eventQueue: defaultEventQueue, maxStreams: DefaultMaxStreams,
			maxSubs: DefaultMaxSubscribers, grace: 5 * time.Second},
	}
	for _, o := range opts {
		o(&s.opts)
	}
	s.broker = newBroker(b, s.opts.eventPoll, s.opts.eventQueue, s.opts.maxSubs)
	s.g = grpc.NewServer(
		grpc.Creds(&serverCreds{other: s.opts.otherConns}),
		grpc.ChainUnaryInterceptor(s.unaryAuth),
		grpc.ChainStreamInterceptor(s.streamAuth),
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(s.opts.maxStreams),
		grpc.ConnectionTimeout(10*time.Second),
		// Stop and GracefulStop return only after every handler has
		// returned: nothing runs against the backend once they have.
		grpc.WaitForHandlers(true),
	)
	edgepb.RegisterStatusServiceServer(s.g, statusService{s: s})
	edgepb.RegisterConfigServiceServer(s.g, configService{s: s})
	edgepb.RegisterFlowServiceServer(s.g, flowService{s: s})
	edgepb.RegisterEventServiceServer(s.g, eventService{s: s})
	edgepb.RegisterStatsServiceServer(s.g, statsService{s: s})
	edgepb.RegisterNATServiceServer(s.g, natService{s: s})
	edgepb.RegisterTraceServiceServer(s.g, traceService{s: s})
	edgepb.RegisterCaptureServiceServer(s.g, captureService{s: s})
	edgepb.RegisterDestinationServiceServer(s.g, destService{s: s})
	s.health = health.NewServer()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, name := range Services {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	healthpb.RegisterHealthServer(s.g, s.health)
	reflection.Register(s.g)
	return s
}

// Serve accepts connections on l until the server stops; it returns nil
// after GracefulStop or Stop. It may be called for several listeners.
func (s *Server) Serve(l net.Listener) error {
	s.broker.start()
	err := s.g.Serve(l)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// GracefulStop stops accepting connections, ends event subscriptions,
// reports NOT_SERVING and waits for the other calls to finish, at most the
// grace period (5 s by default), then cuts them (as Stop). Listeners are
// closed. It returns when every handler has returned: after it, the server
// makes no Backend call (the daemon then closes the backend and the engine).
func (s *Server) GracefulStop() {
	s.shutdown()
	done := make(chan struct{})
	go func() { s.g.GracefulStop(); close(done) }()
	t := time.NewTimer(s.opts.grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.g.Stop()
		<-done
	}
}

// Stop closes the listeners and every connection at once, also while a
// GracefulStop waits, ends event subscriptions, and returns when every
// handler has returned (their contexts are cancelled; an ApplyConfig in
// progress completes): after it, the server makes no Backend call.
func (s *Server) Stop() {
	s.shutdown()
	s.g.Stop()
}

// shutdown reports NOT_SERVING and stops the event broker, which ends the
// subscriptions.
func (s *Server) shutdown() {
	s.stopOnce.Do(func() {
		s.health.Shutdown()
		s.broker.close()
	})
}

// backendErr turns a Backend error into a status.
func backendErr(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, conntrack.ErrNotServed):
		return status.Errorf(codes.Unavailable, "%s: the data plane did not answer: %v", what, err)
	case errors.Is(err, ErrStopping):
		return status.Errorf(codes.Unavailable, "%s: %v", what, err)
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Errorf(codes.Internal, "%s: %v", what, err)
}

type statusService struct {
	edgepb.UnimplementedStatusServiceServer
	s *Server
}

func (x statusService) GetStatus(ctx context.Context, _ *edgepb.GetStatusRequest) (*edgepb.GetStatusResponse, error) {
	st, err := x.s.b.Status(ctx)
	if err != nil {
		return nil, backendErr(ctx, "status", err)
	}
	return statusToPB(&st, time.Now()), nil
}

type configService struct {
	edgepb.UnimplementedConfigServiceServer
	s *Server
}

func (x configService) GetConfig(ctx context.Context, _ *edgepb.GetConfigRequest) (*edgepb.GetConfigResponse, error) {
	doc, gen, err := x.s.b.Config(ctx)
	if err != nil {
		return nil, backendErr(ctx, "config", err)
	}
	return &edgepb.GetConfigResponse{Yaml: string(doc), Generation: gen}, nil
}

func (x configService) ApplyConfig(ctx context.Context, req *edgepb.ApplyConfigRequest) (*edgepb.ApplyConfigResponse, error) {
	if n := len(req.Yaml); n > MaxConfigSize {
		return nil, invalidArg("yaml", "the document is %d bytes, more than the limit of %d (1 MiB)", n, MaxConfigSize)
	}
	if len(req.Yaml) == 0 {
		return nil, invalidArg("yaml", "empty document")
	}
	res, err := x.s.b.ApplyConfig(ctx, []byte(req.Yaml), req.DryRun)
	switch {
	case err == nil:
	case errors.Is(err, ErrImmutable):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return nil, status.FromContextError(err).Err()
	case errors.Is(err, ErrStopping):
		return nil, status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ErrInternal):
		return nil, status.Error(codes.Internal, err.Error())
	default:
		if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
			return nil, err
		}
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &edgepb.ApplyConfigResponse{Generation: res.Generation, Changed: res.Changed,
		SavedTo: res.SavedTo, SaveError: res.SaveError}, nil
}

type flowService struct {
	edgepb.UnimplementedFlowServiceServer
	s *Server
}

func (x flowService) ListFlows(req *edgepb.ListFlowsRequest, stream grpc.ServerStreamingServer[edgepb.ListFlowsResponse]) error {
	f, err := filterFromPB("filter", req.Filter)
	if err != nil {
		return err
	}
	var packed bool
	switch strings.ToLower(req.Encoding) {
	case "", FlowEncodingMessages:
	case FlowEncodingPacked:
		packed = true
	default:
		return invalidArg("encoding", "%q is not a flow encoding (%s, %s)", req.Encoding, FlowEncodingMessages, FlowEncodingPacked)
	}
	ctx := stream.Context()
	c, n := newClock(x.s.b), newNames(x.s.b)
	limit := int(req.Limit)
	// One of the two batches is in use: Flow messages or packed records.
	var batch []*edgepb.Flow
	var pack *flowPacker
	batchMax := FlowBatch
	if packed {
		pack, batchMax = newFlowPacker(c, n), PackedFlowBatch
	} else {
		batch = make([]*edgepb.Flow, 0, FlowBatch)
	}
	inBatch, sent := 0, 0
	var sendErr error
	flush := func() bool {
		if inBatch == 0 {
			return true
		}
		resp := &edgepb.ListFlowsResponse{Flows: batch}
		if packed {
			resp.Packed = pack.take()
		}
		if sendErr = stream.Send(resp); sendErr != nil {
			return false
		}
		if !packed {
			batch = make([]*edgepb.Flow, 0, FlowBatch)
		}
		inBatch = 0
		return true
	}
	err = x.s.b.Flows(ctx, f, func(fi *conntrack.FlowInfo) bool {
		if packed {
			pack.add(fi)
		} else {
			batch = append(batch, flowToPB(fi, c, n))
		}
		inBatch++
		sent++
		if inBatch == batchMax && !flush() {
			return false
		}
		return limit == 0 || sent < limit
	})
	if sendErr != nil {
		return sendErr
	}
	if err != nil {
		return backendErr(ctx, "flows", err)
	}
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	flush()
	return sendErr
}

func (x flowService) FlushFlows(ctx context.Context, req *edgepb.FlushFlowsRequest) (*edgepb.FlushFlowsResponse, error) {
	f, err := filterFromPB("filter", req.Filter)
	if err != nil {
		return nil, err
	}
	if f == (conntrack.Filter{}) && !req.All {
		return nil, invalidArg("filter", "empty: it would flush every flow; set all to do that")
	}
	n, err := x.s.b.Flush(ctx, f)
	if err != nil {
		return nil, backendErr(ctx, "flush", err)
	}
	return &edgepb.FlushFlowsResponse{Flushed: uint64(max(n, 0))}, nil
}

func (x flowService) ExplainFlow(ctx context.Context, req *edgepb.ExplainFlowRequest) (*edgepb.ExplainFlowResponse, error) {
	k, err := keyFromPB("tuple", req.Tuple)
	if err != nil {
		return nil, err
	}
	h := int(min(req.MaxHistory, MaxHistory))
	if h == 0 {
		h = DefaultMaxHistory
	}
	ex, err := x.s.b.Explain(ctx, k, h)
	if err != nil {
		return nil, backendErr(ctx, "explain", err)
	}
	if len(ex.History) > h {
		ex.History = ex.History[:h]
	}
	return explanationToPB(&ex, newClock(x.s.b), newNames(x.s.b)), nil
}

type eventService struct {
	edgepb.UnimplementedEventServiceServer
	s *Server
}

func (x eventService) Subscribe(req *edgepb.SubscribeRequest, stream grpc.ServerStreamingServer[edgepb.SubscribeResponse]) error {
	f, err := eventFilterFromPB("filter", req.Filter)
	if err != nil {
		return err
	}
	br := x.s.broker
	sub, cancel, err := br.subscribe(f)
	if err != nil {
		return err
	}
	defer cancel()
	ctx := stream.Context()
	// Headers now: the client knows it is subscribed before any event.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	var spare []Event
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-br.stop:
			return status.Error(codes.Unavailable, "edge is stopping")
		case <-sub.notify:
		}
		q, lost := sub.take(spare)
		evs, c := q, newClock(x.s.b)
		for first := true; first || len(evs) > 0; first = false {
			n := min(len(evs), EventBatch)
			resp := &edgepb.SubscribeResponse{Events: make([]*edgepb.Event, n), Lost: lost}
			for i := range n {
				resp.Events[i] = eventToPB(&evs[i], c)
			}
			evs = evs[n:]
			lost = 0
			if n == 0 && resp.Lost == 0 {
				break
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
		}
		spare = q[:0]
	}
}

type statsService struct {
	edgepb.UnimplementedStatsServiceServer
	s *Server
}

func (x statsService) GetStats(ctx context.Context, req *edgepb.GetStatsRequest) (*edgepb.GetStatsResponse, error) {
	st, err := x.s.b.Stats(ctx, req.SnatDestinations)
	if err != nil {
		return nil, backendErr(ctx, "stats", err)
	}
	maxDest := 0
	if req.SnatDestinations {
		maxDest = int(req.MaxDestinations)
		if maxDest == 0 {
			maxDest = DefaultMaxDestinations
		}
	}
	return statsToPB(&st, maxDest), nil
}
