package ctl

import (
	"context"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
	"github.com/edgegw/edge/snat"
)

func wantCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("error %v, want %v", err, code)
	}
	if !strings.Contains(st.Message(), msg) {
		t.Fatalf("message %q, want it to contain %q", st.Message(), msg)
	}
}

func TestGetStatus(t *testing.T) {
	ts := newTestServer(t, newFake())
	r, err := ts.client.Status.GetStatus(ctxT(t), &edgepb.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != "edge test-1.2.3" || r.Uptime.AsDuration() < 90e9 || len(r.Workers) != 2 || r.Snat.GetMode() != "pools" {
		t.Fatalf("status: %v", r)
	}
}

func TestConfig(t *testing.T) {
	fb := newFake()
	ts := newTestServer(t, fb)
	ctx := ctxT(t)
	c := ts.client.Config
	got, err := c.GetConfig(ctx, &edgepb.GetConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Generation != 1 || got.Yaml != string(fb.doc) {
		t.Fatalf("config: %v", got)
	}
	doc := got.Yaml + "  - {name: a, action: allow}\n"

	// Dry run: validated, nothing changes.
	r, err := c.ApplyConfig(ctx, &edgepb.ApplyConfigRequest{Yaml: doc, DryRun: true})
	if err != nil || r.Generation != 1 || !slices.Equal(r.Changed, []string{"rules"}) {
		t.Fatalf("dry run: %v, %v", r, err)
	}
	// Invalid: INVALID_ARGUMENT naming the field, nothing changes.
	_, err = c.ApplyConfig(ctx, &edgepb.ApplyConfigRequest{Yaml: doc + "bad: 1\n"})
	wantCode(t, err, codes.InvalidArgument, `rules[2].dst[0]: "bad" is not an address or prefix`)
	// Immutable field: FAILED_PRECONDITION.
	_, err = c.ApplyConfig(ctx, &edgepb.ApplyConfigRequest{Yaml: strings.Replace(doc, "name: in}", "name: eth9}", 1)})
	wantCode(t, err, codes.FailedPrecondition, "interfaces: cannot change while edge runs; restart edge")
	// Oversized and empty.
	_, err = c.ApplyConfig(ctx, &edgepb.ApplyConfigRequest{Yaml: doc + "#" + strings.Repeat("x", MaxConfigSize)})
	wantCode(t, err, codes.InvalidArgument, "yaml: the document is")
	_, err = c.ApplyConfig(ctx, &edgepb.ApplyConfigRequest{})
	wantCode(t, err, codes.InvalidArgument, "yaml: empty document")
	// Larger than a message may be: refused by grpc before the handler.
	_, err = c.ApplyConfig(ctx, &edgepb.ApplyConfigRequest{Yaml: strings.Repeat("x", MaxRecvMsgSize+1)})
	wantCode(t, err, codes.ResourceExhausted, "")
	if got, _ := c.GetConfig(ctx, &edgepb.GetConfigRequest{}); got.Generation != 1 || got.Yaml != string(fb.doc) {
		t.Fatalf("config changed by refused applies: %v", got)
	}

	// A valid document the data plane fails to put in force: INTERNAL.
	_, err = c.ApplyConfig(ctx, &edgepb.ApplyConfigRequest{Yaml: doc + "bpf: 1\n"})
	wantCode(t, err, codes.Internal, "management: 192.0.2.9: map update")

	r, err = c.ApplyConfig(ctx, &edgepb.ApplyConfigRequest{Yaml: doc})
	if err != nil || r.Generation != 2 || r.SavedTo != "/etc/edge/edge.yaml" || r.SaveError != "" {
		t.Fatalf("apply: %v, %v", r, err)
	}
	if got, _ := c.GetConfig(ctx, &edgepb.GetConfigRequest{}); got.Generation != 2 || got.Yaml != doc {
		t.Fatalf("config after apply: %v", got)
	}
	// Applied but not saved: no error, the response says so.
	r, err = c.ApplyConfig(ctx, &edgepb.ApplyConfigRequest{Yaml: doc + "unsaved: 1\n"})
	if err != nil || r.Generation != 3 || r.SavedTo != "" || !strings.Contains(r.SaveError, "read-only file system") {
		t.Fatalf("apply, not saved: %v, %v", r, err)
	}
	// Dry run: not saved.
	r, err = c.ApplyConfig(ctx, &edgepb.ApplyConfigRequest{Yaml: doc, DryRun: true})
	if err != nil || r.SavedTo != "" || r.SaveError != "" {
		t.Fatalf("dry run saved: %v, %v", r, err)
	}
}

// listAll reads a ListFlows stream to its end.
func listAll(t *testing.T, c *Client, req *edgepb.ListFlowsRequest) (batches []int, flows []*edgepb.Flow) {
	t.Helper()
	s, err := c.Flows.ListFlows(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	for {
		r, err := s.Recv()
		if err == io.EOF {
			return batches, flows
		}
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, len(r.Flows))
		flows = append(flows, r.Flows...)
	}
}

func TestListFlows(t *testing.T) {
	fb := newFake()
	ts := newTestServer(t, fb)
	_, flows := listAll(t, ts.client, &edgepb.ListFlowsRequest{})
	if len(flows) != 3 || flows[0].NatAddress != "198.51.100.1" || flows[2].Original.Src != "2001:db8::2" || !flows[2].Liberal || flows[2].Shard != 1 {
		t.Fatalf("flows: %v", flows)
	}
	_, flows = listAll(t, ts.client, &edgepb.ListFlowsRequest{Filter: &edgepb.FlowFilter{Protocol: "tcp", Address: "10.0.0.0/24"}})
	if len(flows) != 1 || flows[0].Original.SrcPort != 40000 {
		t.Fatalf("filtered flows: %v", flows)
	}
	if want := (conntrack.Filter{Proto: 6, Prefix: mustPrefix("10.0.0.0/24")}); fb.lastFilter != want {
		t.Fatalf("backend filter %+v, want %+v", fb.lastFilter, want)
	}
	// Bad filter: INVALID_ARGUMENT on the first Recv.
	s, err := ts.client.Flows.ListFlows(ctxT(t), &edgepb.ListFlowsRequest{Filter: &edgepb.FlowFilter{State: "bogus"}})
	if err == nil {
		_, err = s.Recv()
	}
	wantCode(t, err, codes.InvalidArgument, `filter.state: "bogus" is not a flow state`)
}

func TestListFlowsBatchesAndLimit(t *testing.T) {
	fb := newFake()
	fb.nGen = 2*FlowBatch + 100
	ts := newTestServer(t, fb)
	batches, flows := listAll(t, ts.client, &edgepb.ListFlowsRequest{})
	if !slices.Equal(batches, []int{FlowBatch, FlowBatch, 100}) {
		t.Fatalf("batches %v", batches)
	}
	for i, f := range flows {
		if want := genFlow(i); f.Original.SrcPort != uint32(want.Orig.SrcPort) {
			t.Fatalf("flow %d: %v", i, f)
		}
	}
	batches, flows = listAll(t, ts.client, &edgepb.ListFlowsRequest{Limit: FlowBatch + 10})
	if !slices.Equal(batches, []int{FlowBatch, 10}) || len(flows) != FlowBatch+10 {
		t.Fatalf("limited: batches %v", batches)
	}
	batches, _ = listAll(t, ts.client, &edgepb.ListFlowsRequest{Limit: FlowBatch})
	if !slices.Equal(batches, []int{FlowBatch}) {
		t.Fatalf("limit of one batch: batches %v", batches)
	}
}

func TestListFlowsCancel(t *testing.T) {
	fb := newFake()
	fb.nGen = 50_000_000 // far more than the test will ever wait for
	ts := newTestServer(t, fb)
	ctx, cancel := context.WithCancel(ctxT(t))
	s, err := ts.client.Flows.ListFlows(ctx, &edgepb.ListFlowsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.Recv(); err != nil || len(r.Flows) != FlowBatch {
		t.Fatalf("first batch: %v", err)
	}
	cancel()
	<-fb.flowsDone // the backend's dump ended
	fb.mu.Lock()
	visited := fb.visited
	fb.mu.Unlock()
	if visited >= fb.nGen {
		t.Fatalf("dump ran to its end (%d flows) after the client went away", visited)
	}
	// Batches grpc had already buffered may still be delivered after
	// cancel; the stream then ends with CANCELLED.
	for i := 0; ; i++ {
		r, err := s.Recv()
		if err != nil {
			if status.Code(err) != codes.Canceled {
				t.Fatalf("Recv after cancel: %v", err)
			}
			break
		}
		if i > 1000 {
			t.Fatalf("still receiving after cancel (%d flows in the last batch)", len(r.Flows))
		}
	}
}

func TestListFlowsBackendError(t *testing.T) {
	fb := newFake()
	fb.flowsErr = conntrack.ErrNotServed
	ts := newTestServer(t, fb)
	s, err := ts.client.Flows.ListFlows(ctxT(t), &edgepb.ListFlowsRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	wantCode(t, err, codes.Unavailable, "the data plane did not answer")
	fb.mu.Lock()
	fb.flowsErr = errFake
	fb.mu.Unlock()
	s, _ = ts.client.Flows.ListFlows(ctxT(t), &edgepb.ListFlowsRequest{})
	_, err = s.Recv()
	wantCode(t, err, codes.Internal, "flows: fake failure")
}

func TestFlushFlows(t *testing.T) {
	fb := newFake()
	ts := newTestServer(t, fb)
	ctx := ctxT(t)
	_, err := ts.client.Flows.FlushFlows(ctx, &edgepb.FlushFlowsRequest{})
	wantCode(t, err, codes.InvalidArgument, "filter: empty: it would flush every flow; set all to do that")
	_, err = ts.client.Flows.FlushFlows(ctx, &edgepb.FlushFlowsRequest{Filter: &edgepb.FlowFilter{}})
	wantCode(t, err, codes.InvalidArgument, "filter: empty")
	_, err = ts.client.Flows.FlushFlows(ctx, &edgepb.FlushFlowsRequest{Filter: &edgepb.FlowFilter{Zone: 256}})
	wantCode(t, err, codes.InvalidArgument, "filter.zone: 256 is out of range")
	if len(fb.flows) != 3 {
		t.Fatal("refused flushes removed flows")
	}
	r, err := ts.client.Flows.FlushFlows(ctx, &edgepb.FlushFlowsRequest{Filter: &edgepb.FlowFilter{Protocol: "udp"}})
	if err != nil || r.Flushed != 1 {
		t.Fatalf("flush udp: %v, %v", r, err)
	}
	r, err = ts.client.Flows.FlushFlows(ctx, &edgepb.FlushFlowsRequest{All: true})
	if err != nil || r.Flushed != 2 {
		t.Fatalf("flush all: %v, %v", r, err)
	}
	if fb.lastFilter != (conntrack.Filter{}) {
		t.Fatalf("flush all passed filter %+v", fb.lastFilter)
	}
}

func TestExplainFlow(t *testing.T) {
	fb := newFake()
	ts := newTestServer(t, fb)
	ctx := ctxT(t)
	orig := &edgepb.Tuple{Protocol: "tcp", Src: "10.0.0.2", SrcPort: 40000, Dst: "203.0.113.5", DstPort: 80}
	r, err := ts.client.Flows.ExplainFlow(ctx, &edgepb.ExplainFlowRequest{Tuple: orig})
	if err != nil {
		t.Fatal(err)
	}
	if fb.lastMaxHist != DefaultMaxHistory {
		t.Errorf("max history %d, want the default %d", fb.lastMaxHist, DefaultMaxHistory)
	}
	if r.Current == nil || r.Current.Generation != 2 || r.MatchedDirection != "original" || len(r.History) != 2 ||
		r.History[0].Generation != 1 || r.History[0].CloseReason != "superseded" || r.History[1].CloseReason != "expired" {
		t.Fatalf("explain: %v", r)
	}
	// The reply direction (the translated tuple) finds the same flow.
	reply := &edgepb.Tuple{Protocol: "tcp", Src: "203.0.113.5", SrcPort: 80, Dst: "198.51.100.1", DstPort: 1024}
	r, err = ts.client.Flows.ExplainFlow(ctx, &edgepb.ExplainFlowRequest{Tuple: reply, MaxHistory: 1})
	if err != nil || r.MatchedDirection != "reply" || len(r.History) != 1 || fb.lastMaxHist != 1 {
		t.Fatalf("explain reply: %v, %v", r, err)
	}
	r, err = ts.client.Flows.ExplainFlow(ctx, &edgepb.ExplainFlowRequest{Tuple: orig, MaxHistory: 100000})
	if err != nil || fb.lastMaxHist != MaxHistory {
		t.Fatalf("max history %d, want the cap %d (%v)", fb.lastMaxHist, MaxHistory, err)
	}
	// Unknown tuple: no current flow, no history.
	r, err = ts.client.Flows.ExplainFlow(ctx, &edgepb.ExplainFlowRequest{Tuple: &edgepb.Tuple{Protocol: "udp", Src: "10.9.9.9", Dst: "10.9.9.8"}})
	if err != nil || r.Current != nil || len(r.History) != 0 || r.MatchedDirection != "" {
		t.Fatalf("unknown tuple: %v, %v", r, err)
	}
	_, err = ts.client.Flows.ExplainFlow(ctx, &edgepb.ExplainFlowRequest{})
	wantCode(t, err, codes.InvalidArgument, "tuple: required")
	_, err = ts.client.Flows.ExplainFlow(ctx, &edgepb.ExplainFlowRequest{Tuple: &edgepb.Tuple{Protocol: "tcp", Src: "10.0.0.1", Dst: "10.0.0.2", DstPort: 70000}})
	wantCode(t, err, codes.InvalidArgument, "tuple.dst_port: 70000 is out of range")
}

func TestGetStats(t *testing.T) {
	fb := newFake()
	ts := newTestServer(t, fb)
	r, err := ts.client.Stats.GetStats(ctxT(t), &edgepb.GetStatsRequest{SnatDestinations: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Drops["no_state"] != 5 || r.IcmpSent["time_exceeded"] != 2 || r.RstSent != 2 || len(r.SnatDestinations) != 1 ||
		r.SnatDestinationsTotal != 1 || r.Conntrack["expired"] != 0 || !fb.lastDests {
		t.Fatalf("stats: %v", r)
	}
	if _, ok := r.Conntrack["expired"]; ok {
		t.Fatal("zero counter in the map")
	}
	if w := r.Workers[0]; w.IcmpSent["time_exceeded"] != 2 || w.RstSent != 2 {
		t.Fatalf("worker 0: %v", w)
	}
	checkNewStats(t, r) // after the wire
	// Without destinations the workers are not asked.
	r, err = ts.client.Stats.GetStats(ctxT(t), &edgepb.GetStatsRequest{})
	if err != nil || fb.lastDests || len(r.SnatDestinations) != 0 {
		t.Fatalf("stats without destinations: %v %v (asked %v)", r, err, fb.lastDests)
	}

	// max_destinations: the busiest; 0 is 1000.
	fb.mu.Lock()
	fb.stats.SNATDestinations = nil
	for i := range 1500 {
		fb.stats.SNATDestinations = append(fb.stats.SNATDestinations, snat.DestStat{Addr: netip.MustParseAddr("198.51.100.1"),
			Dst: netip.AddrPortFrom(netip.MustParseAddr("203.0.113.5"), uint16(i)), Proto: 6, InUse: i})
	}
	fb.stats.Warnings = []string{"snat destinations: the data plane did not answer"}
	fb.mu.Unlock()
	r, err = ts.client.Stats.GetStats(ctxT(t), &edgepb.GetStatsRequest{SnatDestinations: true, MaxDestinations: 2})
	if err != nil || len(r.SnatDestinations) != 2 || r.SnatDestinationsTotal != 1500 || r.SnatDestinations[0].InUse != 1499 ||
		r.SnatDestinations[1].InUse != 1498 || len(r.Warnings) != 1 {
		t.Fatalf("max 2: %v, %v", r, err)
	}
	r, err = ts.client.Stats.GetStats(ctxT(t), &edgepb.GetStatsRequest{SnatDestinations: true})
	if err != nil || len(r.SnatDestinations) != DefaultMaxDestinations || r.SnatDestinationsTotal != 1500 {
		t.Fatalf("default max: %d of %d, %v", len(r.SnatDestinations), r.SnatDestinationsTotal, err)
	}
}

func TestHealth(t *testing.T) {
	ts := newTestServer(t, newFake())
	for _, svc := range append([]string{""}, Services...) {
		r, err := ts.client.Health.Check(ctxT(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q: %v, %v", svc, r, err)
		}
	}
	_, err := ts.client.Health.Check(ctxT(t), &healthpb.HealthCheckRequest{Service: "edge.v1.Nope"})
	wantCode(t, err, codes.NotFound, "")
}

func TestReflection(t *testing.T) {
	ts := newTestServer(t, newFake())
	rc := reflectionpb.NewServerReflectionClient(ts.client.Conn())
	s, err := rc.ServerReflectionInfo(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range r.GetListServicesResponse().GetService() {
		names = append(names, svc.Name)
	}
	for _, want := range append(slices.Clone(Services), "grpc.health.v1.Health") {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, not %s", names, want)
		}
	}
	// And the file describing a service, as grpcurl asks for it.
	if err := s.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "edge.v1.FlowService"}}); err != nil {
		t.Fatal(err)
	}
	r, err = s.Recv()
	if err != nil || len(r.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("file containing edge.v1.FlowService: %v, %v", r, err)
	}
	s.CloseSend()
}

func TestUnauthenticatedConnRefused(t *testing.T) {
	// A listener of neither kind: its connections fail the handshake.
	ts := newTestServerUID(t, newFake(), 0, func(o *options) { o.otherConns = nil })
	_, err := ts.dial(t)
	if err == nil {
		t.Fatal("dial over an unauthenticated listener succeeded")
	}
}

func TestOtherUIDRefused(t *testing.T) {
	ts := newTestServerUID(t, newFake(), 12345)
	_, err := ts.dial(t) // the health check is refused too
	if err == nil || !strings.Contains(err.Error(), "uid 12345 may not use edge's control socket") {
		t.Fatalf("dial as uid 12345: %v", err)
	}
	ts2 := newTestServerUID(t, newFake(), 12345, WithAllowedUIDs(12345))
	if _, err := ts2.dial(t); err != nil {
		t.Fatalf("dial as an allowed uid: %v", err)
	}
}

func TestGracefulStopEndsSubscriptions(t *testing.T) {
	ts := newTestServer(t, newFake())
	s, err := ts.client.Events.Subscribe(ctxT(t), &edgepb.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	subscribed(t, s)
	done := make(chan struct{})
	go func() { ts.GracefulStop(); close(done) }()
	_, err = s.Recv()
	wantCode(t, err, codes.Unavailable, "edge is stopping")
	<-done
	ts.GracefulStop() // again: no effect
	ts.Stop()
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestMaxSubscribers(t *testing.T) {
	ts := newTestServer(t, newFake(), WithMaxSubscribers(2))
	ctx, cancel := context.WithCancel(ctxT(t))
	var subs []grpc.ServerStreamingClient[edgepb.SubscribeResponse]
	for range 2 {
		s, err := ts.client.Events.Subscribe(ctx, &edgepb.SubscribeRequest{})
		if err != nil {
			t.Fatal(err)
		}
		subscribed(t, s)
		subs = append(subs, s)
	}
	s, err := ts.client.Events.Subscribe(ctxT(t), &edgepb.SubscribeRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	wantCode(t, err, codes.ResourceExhausted, "too many event subscribers: 2 already")
	// One ends: a new one fits.
	cancel()
	for _, s := range subs {
		for {
			if _, err := s.Recv(); err != nil {
				break
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := ts.client.Events.Subscribe(ctxT(t), &edgepb.SubscribeRequest{})
		if err == nil {
			_, err = s.Header()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the subscribers ended: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// blockingApply is a fake whose ApplyConfig waits for release.
type blockingApply struct {
	*fakeBackend
	entered, release chan struct{}
	returned         chan struct{}
}

func (b *blockingApply) ApplyConfig(ctx context.Context, doc []byte, dryRun bool) (ApplyResult, error) {
	close(b.entered)
	<-b.release
	defer close(b.returned)
	return b.fakeBackend.ApplyConfig(ctx, doc, dryRun)
}

// Stop returns only after the handlers have: an ApplyConfig in progress
// does not run against a backend the daemon closes next.
func TestStopWaitsForHandlers(t *testing.T) {
	for _, graceful := range []bool{false, true} {
		b := &blockingApply{fakeBackend: newFake(), entered: make(chan struct{}), release: make(chan struct{}), returned: make(chan struct{})}
		ts := newTestServer(t, b, WithGracePeriod(10*time.Millisecond))
		applied := make(chan error, 1)
		go func() {
			_, err := ts.client.Config.ApplyConfig(ctxT(t), &edgepb.ApplyConfigRequest{Yaml: string(b.doc)})
			applied <- err
		}()
		<-b.entered
		stopped := make(chan struct{})
		go func() {
			if graceful {
				ts.GracefulStop()
			} else {
				ts.Stop()
			}
			close(stopped)
		}()
		select {
		case <-stopped:
			t.Fatalf("graceful %v: the server stopped while ApplyConfig ran", graceful)
		case <-time.After(100 * time.Millisecond):
		}
		close(b.release)
		<-stopped
		select {
		case <-b.returned:
		default:
			t.Fatalf("graceful %v: stopped before ApplyConfig returned", graceful)
		}
		<-applied
	}
}

// A closing backend: UNAVAILABLE.
type stoppingBackend struct{ *fakeBackend }

func (stoppingBackend) ApplyConfig(context.Context, []byte, bool) (ApplyResult, error) {
	return ApplyResult{}, ErrStopping
}
func (stoppingBackend) Stats(context.Context, bool) (Stats, error) { return Stats{}, ErrStopping }

func TestBackendStopping(t *testing.T) {
	ts := newTestServer(t, stoppingBackend{newFake()})
	_, err := ts.client.Config.ApplyConfig(ctxT(t), &edgepb.ApplyConfigRequest{Yaml: "x: 1"})
	wantCode(t, err, codes.Unavailable, "edge is stopping")
	_, err = ts.client.Stats.GetStats(ctxT(t), &edgepb.GetStatsRequest{})
	wantCode(t, err, codes.Unavailable, "stats: edge is stopping")
}

func TestMaxStreams(t *testing.T) {
	ts := newTestServer(t, newFake(), WithMaxStreams(1))
	ctx, cancel := context.WithCancel(ctxT(t))
	s, err := ts.client.Events.Subscribe(ctx, &edgepb.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	subscribed(t, s)
	// The connection's one stream is taken: a call waits for it.
	short, cancelShort := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancelShort()
	_, err = ts.client.Status.GetStatus(short, &edgepb.GetStatusRequest{})
	wantCode(t, err, codes.DeadlineExceeded, "")
	cancel()
	if _, err := ts.client.Status.GetStatus(ctxT(t), &edgepb.GetStatusRequest{}); err != nil {
		t.Fatalf("after the stream ended: %v", err)
	}
}
