package ctl

import (
	"context"
	"net/netip"
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
	"github.com/edgegw/edge/icmp"
)

// fakeCapturer is the fake backend with a CaptureBackend under the
// engine's rules: one armed capture at a time, kept packets read once.
type fakeCapturer struct {
	*fakeBackend
	mu    sync.Mutex
	armed bool
	spec  dataplane.CaptureSpec
	arms  int
	kept  []dataplane.CapturedPacket
}

func (f *fakeCapturer) status() dataplane.CaptureStatus {
	return dataplane.CaptureStatus{Armed: f.armed, Session: uint32(f.arms), Spec: f.spec, Until: fakeNow + 10*conntrack.Second,
		Anomalies: 1, Packets: 2, Lost: 3, Limited: 4}
}

func (f *fakeCapturer) ArmCapture(_ context.Context, spec dataplane.CaptureSpec) (dataplane.CaptureStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.armed {
		return f.status(), dataplane.ErrCaptureArmed
	}
	f.armed, f.spec = true, spec
	f.arms++
	return f.status(), nil
}

func (f *fakeCapturer) DisarmCapture(context.Context) (bool, dataplane.CaptureStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	was := f.armed
	f.armed = false
	return was, f.status(), nil
}

func (f *fakeCapturer) ReadCapture(_ context.Context, out []dataplane.CapturedPacket) (int, dataplane.CaptureStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := copy(out, f.kept)
	f.kept = f.kept[n:]
	return n, f.status(), nil
}

func capturedPackets() []dataplane.CapturedPacket {
	k := conntrack.MakeKey(6, netip.MustParseAddrPort("10.0.0.2:40000"), netip.MustParseAddrPort("203.0.113.2:80"))
	reply := conntrack.MakeKey(6, netip.MustParseAddrPort("203.0.113.2:80"), netip.MustParseAddrPort("203.0.113.1:40000"))
	hist := dataplane.CapturedPacket{Time: fakeNow, Key: k, Flow: k, HasFlow: true, Dir: conntrack.Original, Session: 1, Trigger: 5,
		Len: 60, CapLen: 4, Flags: 0x02, Anomaly: dataplane.AnomalyStateMismatch, Data: [dataplane.CaptureSnapLen]byte{1, 2, 3, 4}}
	anom := dataplane.CapturedPacket{Time: fakeNow + conntrack.Second, Key: reply, Flow: k, HasFlow: true, Dir: conntrack.Reply,
		Session: 1, Trigger: 5, Worker: 1, In: 1, Len: 200, CapLen: 2, Gen: 2, Flags: 0x12, Drop: drop.SynAckBadAck,
		ICMP: icmp.PortUnreachable, Anomaly: dataplane.AnomalyStateMismatch, Anomalous: true, Data: [dataplane.CaptureSnapLen]byte{9, 8}}
	late := dataplane.CapturedPacket{Time: fakeNow + 2*conntrack.Second, Key: k, Session: 1, Trigger: 6, Len: 54, CapLen: 1,
		Drop: drop.NoState, Anomaly: dataplane.AnomalyIdleExpired, Anomalous: true, Idle: 7500 * conntrack.Second}
	return []dataplane.CapturedPacket{hist, anom, late}
}

// Arm, read and disarm through the service: the request's filter and
// duration reach the backend, the packets and status come back converted,
// and a second arm is refused while one is armed.
func TestCaptureService(t *testing.T) {
	fb := &fakeCapturer{fakeBackend: newFake(), kept: capturedPackets()}
	ts := newTestServer(t, fb)
	c := edgepb.NewCaptureServiceClient(ts.client.Conn())
	ctx := ctxT(t)
	ar, err := c.ArmCapture(ctx, &edgepb.ArmCaptureRequest{Filter: &edgepb.FlowFilter{Address: "10.0.0.0/24", Port: 80}, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := dataplane.CaptureSpec{Filter: conntrack.Filter{Prefix: netip.MustParsePrefix("10.0.0.0/24"), Port: 80}, Count: 3, For: DefaultCaptureDuration}
	if fb.spec != want || !ar.Status.Armed || ar.Status.Session != 1 || ar.Status.Filter.GetAddress() != "10.0.0.0/24" {
		t.Fatalf("backend spec %+v, status %v; want %+v", fb.spec, ar.Status, want)
	}
	_, err = c.ArmCapture(ctx, &edgepb.ArmCaptureRequest{})
	wantCode(t, err, codes.FailedPrecondition, "already armed")

	rr, err := c.ReadCapture(ctx, &edgepb.ReadCaptureRequest{Max: 1})
	if err != nil || len(rr.Packets) != 1 {
		t.Fatalf("read max 1: %v, %v", rr, err)
	}
	rest, err := c.ReadCapture(ctx, &edgepb.ReadCaptureRequest{})
	if err != nil || len(rest.Packets) != 2 {
		t.Fatalf("read the rest: %v, %v", rest, err)
	}
	at := fb.epoch.Add(time.Hour)
	wants := []string{
		`{"time":"` + pbTime(at) + `","session":1,"trigger":5,"ingress":"inside","length":60,"data":"AQIDBA==",` +
			`"tuple":{"protocol":"tcp","src":"10.0.0.2","src_port":40000,"dst":"203.0.113.2","dst_port":80},` +
			`"flow":{"protocol":"tcp","src":"10.0.0.2","src_port":40000,"dst":"203.0.113.2","dst_port":80},` +
			`"direction":"original","action":"passed","anomaly":"state_mismatch","tcp_flags":2}`,
		`{"time":"` + pbTime(at.Add(time.Second)) + `","session":1,"worker":1,"trigger":5,"ingress":"outside","length":200,"data":"CQg=",` +
			`"tuple":{"protocol":"tcp","src":"203.0.113.2","src_port":80,"dst":"203.0.113.1","dst_port":40000},` +
			`"flow":{"protocol":"tcp","src":"10.0.0.2","src_port":40000,"dst":"203.0.113.2","dst_port":80},"generation":2,` +
			`"direction":"reply","action":"dropped","drop_reason":"synack_bad_ack","icmp_sent":"port_unreachable",` +
			`"anomaly":"state_mismatch","anomalous":true,"tcp_flags":18}`,
		`{"time":"` + pbTime(at.Add(2*time.Second)) + `","session":1,"trigger":6,"ingress":"inside","length":54,"data":"AA==",` +
			`"tuple":{"protocol":"tcp","src":"10.0.0.2","src_port":40000,"dst":"203.0.113.2","dst_port":80},` +
			`"action":"dropped","drop_reason":"no_state","anomaly":"idle_expired","anomalous":true,"idle":"7500s"}`,
	}
	for i, p := range append(rr.Packets, rest.Packets...) {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := compactJSON(t, b); got != wants[i] {
			t.Fatalf("packet %d:\n got %s\nwant %s", i, got, wants[i])
		}
	}
	st := rest.Status
	if st.Anomalies != 1 || st.Packets != 2 || st.Lost != 3 || st.Limited != 4 || st.SnapLength != dataplane.CaptureSnapLen ||
		!st.Until.AsTime().Equal(fb.epoch.Add(time.Hour+10*time.Second)) {
		t.Fatalf("status %v", st)
	}
	dr, err := c.DisarmCapture(ctx, &edgepb.DisarmCaptureRequest{})
	if err != nil || !dr.WasArmed || dr.Status.Armed {
		t.Fatalf("disarm: %v, %v", dr, err)
	}
	if dr, err = c.DisarmCapture(ctx, &edgepb.DisarmCaptureRequest{}); err != nil || dr.WasArmed {
		t.Fatalf("second disarm: %v, %v", dr, err)
	}
}

// Bad requests are refused before the backend is asked; a backend that
// cannot capture says so.
func TestCaptureRefusals(t *testing.T) {
	fb := &fakeCapturer{fakeBackend: newFake()}
	c := edgepb.NewCaptureServiceClient(newTestServer(t, fb).client.Conn())
	for _, c2 := range []struct {
		req  *edgepb.ArmCaptureRequest
		want string
	}{
		{&edgepb.ArmCaptureRequest{Filter: &edgepb.FlowFilter{State: "established"}}, "filter.state: a capture cannot filter by state"},
		{&edgepb.ArmCaptureRequest{Filter: &edgepb.FlowFilter{Protocol: "bogus"}}, "filter.protocol"},
		{&edgepb.ArmCaptureRequest{Duration: durationpb.New(25 * time.Hour)}, "duration: 25h0m0s is out of range"},
		{&edgepb.ArmCaptureRequest{Duration: durationpb.New(-time.Second)}, "duration: -1s is out of range"},
	} {
		_, err := c.ArmCapture(ctxT(t), c2.req)
		wantCode(t, err, codes.InvalidArgument, c2.want)
	}
	if fb.arms != 0 {
		t.Fatal("a refused request reached the backend")
	}
	plain := edgepb.NewCaptureServiceClient(newTestServer(t, newFake()).client.Conn())
	_, err := plain.ArmCapture(ctxT(t), &edgepb.ArmCaptureRequest{})
	wantCode(t, err, codes.Unimplemented, "cannot capture")
	_, err = plain.ReadCapture(ctxT(t), &edgepb.ReadCaptureRequest{})
	wantCode(t, err, codes.Unimplemented, "cannot capture")
}
