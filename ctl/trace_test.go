package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
	"github.com/edgegw/edge/dataplane"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/icmp"
)

// fakeTracer is the fake backend with a TraceBackend that hands out recs
// (in batches of two) under the same rules as the engine: one trace at a
// time, at most spec.Count records, until ctx ends when it runs out
// (hold) or at once. started and ended receive when a trace (not a
// refused one) starts and ends.
type fakeTracer struct {
	*fakeBackend
	recs []dataplane.TraceRecord
	hold bool

	mu      sync.Mutex
	running bool
	spec    dataplane.TraceSpec
	started chan struct{}
	ended   chan error
}

func newFakeTracer(recs []dataplane.TraceRecord, hold bool) *fakeTracer {
	return &fakeTracer{fakeBackend: newFake(), recs: recs, hold: hold, started: make(chan struct{}, 4), ended: make(chan error, 4)}
}

func (f *fakeTracer) Trace(ctx context.Context, spec dataplane.TraceSpec, fn func([]dataplane.TraceRecord, uint64) bool) (err error) {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return dataplane.ErrTraceBusy
	}
	f.running, f.spec = true, spec
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running = false
		f.mu.Unlock()
		f.ended <- err
	}()
	f.started <- struct{}{}
	recs := f.recs
	if spec.Count > 0 && len(recs) > spec.Count {
		recs = recs[:spec.Count]
	}
	for len(recs) > 0 {
		k := min(2, len(recs))
		if !fn(recs[:k], 7) {
			return nil
		}
		recs = recs[k:]
	}
	if f.hold {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func traceRecs() []dataplane.TraceRecord {
	k := conntrack.MakeKey(6, netip.MustParseAddrPort("10.0.0.2:40000"), netip.MustParseAddrPort("203.0.113.2:80"))
	fwd := dataplane.TraceRecord{
		Time: fakeNow, Key: k, Orig: k, Worker: 1, In: 0, Zone: firewall.Inside, Flags: 0x02,
		Tracked: true, Verdict: conntrack.Open, Dir: conntrack.Original, After: conntrack.TCPSynSent, Gen: 3,
		New: true, Rule: 0, FlowRule: 4, RuleAction: firewall.Allow,
		NATAddr: netip.MustParseAddr("::ffff:203.0.113.1").As16(), NATPort: 40000,
		Action: dataplane.TraceForwarded, Out: 1, Hop: netip.MustParseAddr("::ffff:203.0.113.2").As16(),
	}
	drp := dataplane.TraceRecord{
		Time: fakeNow + conntrack.Second, Key: k.Reverse(), In: 1, Zone: firewall.Outside, Flags: 0x04,
		Tracked: true, HadFlow: true, Before: conntrack.TCPEstablished, BeforeGen: 3,
		Verdict: conntrack.Drop, Dir: conntrack.Reply, Action: dataplane.TraceDropped, Drop: drop.TTLExceeded,
		ICMP: icmp.TimeExceeded,
	}
	bad := dataplane.TraceRecord{Time: fakeNow, Parse: drop.Truncated, Action: dataplane.TraceDropped, Drop: drop.Truncated}
	return []dataplane.TraceRecord{fwd, drp, bad}
}

func recvTrace(t *testing.T, s interface {
	Recv() (*edgepb.TraceResponse, error)
}) (pkts []*edgepb.TracePacket, lost uint64, err error) {
	t.Helper()
	for {
		r, err := s.Recv()
		if err == io.EOF {
			return pkts, lost, nil
		}
		if err != nil {
			return pkts, lost, err
		}
		pkts, lost = append(pkts, r.Packets...), r.Lost
	}
}

func TestTraceStream(t *testing.T) {
	fb := newFakeTracer(traceRecs(), false)
	ts := newTestServer(t, fb)
	c := edgepb.NewTraceServiceClient(ts.client.Conn())
	s, err := c.Trace(ctxT(t), &edgepb.TraceRequest{Filter: &edgepb.FlowFilter{Address: "10.0.0.2", Protocol: "tcp"}, Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	pkts, lost, err := recvTrace(t, s)
	if err != nil || len(pkts) != 3 || lost != 7 {
		t.Fatalf("%d packets, lost %d, %v", len(pkts), lost, err)
	}
	want := (dataplane.TraceSpec{Filter: conntrack.Filter{Proto: 6, Prefix: netip.MustParsePrefix("10.0.0.2/32")}, Count: 5, For: DefaultTraceDuration})
	if fb.spec != want {
		t.Fatalf("backend spec %+v, want %+v", fb.spec, want)
	}
	at := fb.epoch.Add(time.Hour)
	wants := []string{
		`{"time":"` + pbTime(at) + `","worker":1,"ingress":"inside",` +
			`"tuple":{"protocol":"tcp","src":"10.0.0.2","src_port":40000,"dst":"203.0.113.2","dst_port":80},"tcp_flags":2,` +
			`"tracked":true,"verdict":"open","direction":"original","state_after":"syn_sent","generation":3,` +
			`"flow":{"protocol":"tcp","src":"10.0.0.2","src_port":40000,"dst":"203.0.113.2","dst_port":80},` +
			`"rule":"rule4","rule_action":"allow","nat_address":"203.0.113.1","nat_port":40000,` +
			`"action":"forwarded","egress":"outside","next_hop":"203.0.113.2"}`,
		`{"time":"` + pbTime(at.Add(time.Second)) + `","ingress":"outside",` +
			`"tuple":{"protocol":"tcp","src":"203.0.113.2","src_port":80,"dst":"10.0.0.2","dst_port":40000},"tcp_flags":4,` +
			`"tracked":true,"state_before":"established","generation_before":3,"verdict":"drop","direction":"reply",` +
			`"action":"dropped","drop_reason":"ttl_exceeded","icmp_sent":"time_exceeded"}`,
		`{"time":"` + pbTime(at) + `","ingress":"inside","parse":"truncated","action":"dropped","drop_reason":"truncated"}`,
	}
	for i, p := range pkts {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := compactJSON(t, b); got != wants[i] {
			t.Fatalf("packet %d:\n got %s\nwant %s", i, got, wants[i])
		}
	}
}

// One trace at a time; a client that goes away ends its trace; bad
// requests are refused before the backend is asked; a backend that cannot
// trace says so.
func TestTraceRefusals(t *testing.T) {
	fb := newFakeTracer(traceRecs()[:1], true)
	ts := newTestServer(t, fb)
	c := edgepb.NewTraceServiceClient(ts.client.Conn())
	ctx, cancel := context.WithCancel(ctxT(t))
	first, err := c.Trace(ctx, &edgepb.TraceRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Recv(); err != nil {
		t.Fatal(err)
	}
	<-fb.started
	s, err := c.Trace(ctxT(t), &edgepb.TraceRequest{})
	if err == nil {
		_, _, err = recvTrace(t, s)
	}
	wantCode(t, err, codes.FailedPrecondition, "a trace is already running")
	cancel()
	select {
	case err := <-fb.ended:
		if err != context.Canceled {
			t.Fatalf("trace ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the trace outlived its client")
	}

	for _, c2 := range []struct {
		req  *edgepb.TraceRequest
		want string
	}{
		{&edgepb.TraceRequest{Filter: &edgepb.FlowFilter{State: "established"}}, "filter.state: a trace cannot filter by state"},
		{&edgepb.TraceRequest{Filter: &edgepb.FlowFilter{Protocol: "bogus"}}, "filter.protocol"},
		{&edgepb.TraceRequest{Duration: durationpb.New(2 * time.Hour)}, "duration: 2h0m0s is out of range"},
		{&edgepb.TraceRequest{Duration: durationpb.New(-time.Second)}, "duration: -1s is out of range"},
	} {
		s, err := c.Trace(ctxT(t), c2.req)
		if err == nil {
			_, _, err = recvTrace(t, s)
		}
		wantCode(t, err, codes.InvalidArgument, c2.want)
	}
	select {
	case <-fb.started:
		t.Fatal("a refused request reached the backend")
	default:
	}

	plain := newTestServer(t, newFake())
	s, err = edgepb.NewTraceServiceClient(plain.client.Conn()).Trace(ctxT(t), &edgepb.TraceRequest{})
	if err == nil {
		_, _, err = recvTrace(t, s)
	}
	wantCode(t, err, codes.Unimplemented, "cannot trace")
}

// compactJSON removes the spaces protojson adds (at random, on purpose).
func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// EngineBackend.Trace on a running engine: datagrams from the client are
// recorded (new flow by rule outbound, translated, forwarded), and the
// trace ends when the callback says so.
func TestEngineBackendTrace(t *testing.T) {
	b, client := startBackend(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		recs []dataplane.TraceRecord
		err  error
	}
	got := make(chan result, 1)
	spec := dataplane.TraceSpec{Filter: conntrack.Filter{Proto: 17, Port: 7007}, For: 10 * time.Second}
	go func() {
		var all []dataplane.TraceRecord
		err := b.Trace(ctx, spec, func(recs []dataplane.TraceRecord, _ uint64) bool {
			all = append(all, recs...)
			for _, r := range recs {
				if r.Action == dataplane.TraceForwarded {
					return false
				}
			}
			return true
		})
		got <- result{all, err}
	}()
	var res result
	send := time.NewTicker(50 * time.Millisecond)
	defer send.Stop()
wait:
	for {
		select {
		case res = <-got:
			break wait
		case <-send.C:
			_ = client.Do(func() error {
				c, err := net.Dial("udp4", "203.0.113.2:7007")
				if err == nil {
					c.Write([]byte("q"))
					c.Close()
				}
				return err
			})
		}
	}
	if res.err != nil || len(res.recs) == 0 {
		t.Fatalf("trace: %d records, %v", len(res.recs), res.err)
	}
	// The first datagram opened the flow (later ones found it).
	first, last := res.recs[0], res.recs[len(res.recs)-1]
	if first.Key.DstPort != 7007 || first.In != 0 || !first.New || b.RuleName(first.FlowRule) != "outbound" ||
		first.Verdict != conntrack.Open || netip.AddrFrom16(first.NATAddr).Unmap() != netip.MustParseAddr("203.0.113.1") {
		t.Fatalf("first record %+v", first)
	}
	if last.Action != dataplane.TraceForwarded || last.Out != 1 || netip.AddrFrom16(last.Hop).Unmap() != netip.MustParseAddr("203.0.113.2") {
		t.Fatalf("last record %+v", last)
	}
	// Another trace may start once this one ended.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := b.Trace(ctx2, spec, func([]dataplane.TraceRecord, uint64) bool { return true }); err != context.DeadlineExceeded {
		t.Fatalf("second trace: %v", err)
	}
}

// pbTime formats t as protojson does a Timestamp: 0, 3, 6 or 9 fractional
// digits (time.RFC3339Nano would drop every trailing zero).
func pbTime(t time.Time) string {
	s := t.UTC().Format("2006-01-02T15:04:05.000000000")
	switch {
	case strings.HasSuffix(s, ".000000000"):
		s = s[:len(s)-10]
	case strings.HasSuffix(s, "000000"):
		s = s[:len(s)-6]
	case strings.HasSuffix(s, "000"):
		s = s[:len(s)-3]
	}
	return s + "Z"
}
