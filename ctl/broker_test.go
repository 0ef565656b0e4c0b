package ctl

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/icmp"
)

// subscribed waits until the server has registered each stream's
// subscription (it sends the headers after that).
func subscribed(t *testing.T, streams ...grpc.ServerStreamingClient[edgepb.SubscribeResponse]) {
	t.Helper()
	for _, s := range streams {
		if _, err := s.Header(); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
	}
}

func testEvent(kind EventKind, reason drop.Reason, src string, seq int) Event {
	return Event{
		Time:   fakeNow + conntrack.Time(seq)*conntrack.Millisecond,
		Kind:   kind,
		Key:    conntrack.MakeKey(6, netip.MustParseAddrPort(src), netip.MustParseAddrPort("203.0.113.5:80")),
		Reason: reason,
		Worker: seq,
	}
}

// recvEvents receives until it has n events.
func recvEvents(t *testing.T, s grpc.ServerStreamingClient[edgepb.SubscribeResponse], n int) (evs []*edgepb.Event, lost uint64) {
	t.Helper()
	for len(evs) < n {
		r, err := s.Recv()
		if err != nil {
			t.Fatalf("after %d events: %v", len(evs), err)
		}
		if len(r.Events) > EventBatch {
			t.Fatalf("batch of %d events", len(r.Events))
		}
		evs = append(evs, r.Events...)
		lost += r.Lost
	}
	return evs, lost
}

func TestSubscribeFiltered(t *testing.T) {
	fb := newFake()
	ts := newTestServer(t, fb)
	ctx := ctxT(t)
	a, err := ts.client.Events.Subscribe(ctx, &edgepb.SubscribeRequest{Filter: &edgepb.EventFilter{
		Kinds: []string{"dropped"}, Reasons: []string{"no_state"}, Flow: &edgepb.FlowFilter{Address: "10.0.0.0/24"}}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ts.client.Events.Subscribe(ctx, &edgepb.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	subscribed(t, a, b)

	e1 := testEvent(EvDropped, drop.NoState, "10.0.0.2:40000", 1)
	e1.Flags = 0x10
	e1.State = conntrack.TCPTimeWait
	e2 := testEvent(EvDropped, drop.NoRoute, "10.0.0.2:40000", 2)
	e3 := testEvent(EvOpened, drop.None, "10.0.0.2:40001", 3)
	e4 := testEvent(EvDropped, drop.NoState, "10.9.0.1:40000", 4)
	e5 := testEvent(EvDropped, drop.NoState, "192.0.2.1:40000", 5)
	e5.NAT = netip.MustParseAddrPort("10.0.0.9:1024")
	e6 := testEvent(EvICMPSent, drop.NoRoute, "10.0.0.2:40002", 6)
	e6.ICMP = icmp.TimeExceeded
	fb.push(e1, e2, e3, e4, e5, e6)

	got, lost := recvEvents(t, a, 2)
	if lost != 0 || len(got) != 2 || got[0].Worker != 1 || got[1].Worker != 5 {
		t.Fatalf("filtered subscriber got %v (lost %d)", got, lost)
	}
	if g := got[0]; g.Kind != "dropped" || g.Reason != "no_state" || g.State != "time_wait" || g.TcpFlags != 0x10 ||
		g.Tuple.Src != "10.0.0.2" || g.Tuple.SrcPort != 40000 || g.Tuple.Protocol != "tcp" || g.NatAddress != "" ||
		!g.Time.AsTime().Equal(fb.epoch.Add(time.Hour+time.Millisecond)) {
		t.Errorf("event: %v", g)
	}
	if g := got[1]; g.NatAddress != "10.0.0.9" || g.NatPort != 1024 {
		t.Errorf("event with NAT: %v", g)
	}
	all, lost := recvEvents(t, b, 6)
	if lost != 0 || len(all) != 6 {
		t.Fatalf("unfiltered subscriber got %d events, lost %d", len(all), lost)
	}
	for i, g := range all {
		if g.Worker != uint32(i+1) {
			t.Fatalf("event %d out of order: %v", i, g)
		}
	}
	if g := all[5]; g.Kind != "icmp_sent" || g.Icmp != "time_exceeded" || g.Reason != "no_route" {
		t.Errorf("icmp event: %v", g)
	}
	// Nothing else reached a: the next matching event is the next it gets.
	fb.push(e2, e3, testEvent(EvDropped, drop.NoState, "10.0.0.3:1", 7))
	if got, _ := recvEvents(t, a, 1); len(got) != 1 || got[0].Worker != 7 {
		t.Fatalf("filtered subscriber got %v", got)
	}
}

func TestSubscribeInvalid(t *testing.T) {
	ts := newTestServer(t, newFake())
	for _, c := range []struct {
		f   *edgepb.EventFilter
		msg string
	}{
		{&edgepb.EventFilter{Kinds: []string{"opened", "exploded"}}, `filter.kinds[1]: "exploded" is not an event kind`},
		{&edgepb.EventFilter{Reasons: []string{"bored"}}, `filter.reasons[0]: "bored" is not a drop reason`},
		{&edgepb.EventFilter{Flow: &edgepb.FlowFilter{Protocol: "xtp"}}, `filter.flow.protocol: "xtp" is not a protocol`},
	} {
		s, err := ts.client.Events.Subscribe(ctxT(t), &edgepb.SubscribeRequest{Filter: c.f})
		if err == nil {
			_, err = s.Recv()
		}
		wantCode(t, err, codes.InvalidArgument, c.msg)
	}
}

// With no subscriber the broker drains and discards: a new subscriber gets
// only what happens after it subscribed.
func TestSubscribeNoStaleEvents(t *testing.T) {
	fb := newFake()
	ts := newTestServer(t, fb)
	for i := range 3000 {
		fb.push(testEvent(EvOpened, drop.None, "10.0.0.2:1", i))
	}
	fb.drained(t)
	s, err := ts.client.Events.Subscribe(ctxT(t), &edgepb.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	subscribed(t, s)
	fb.push(testEvent(EvClosed, drop.None, "10.0.0.2:1", 99999))
	got, lost := recvEvents(t, s, 1)
	if len(got) != 1 || got[0].Worker != 99999 || lost != 0 {
		t.Fatalf("new subscriber got %d events, first %v", len(got), got[0])
	}
}

// A subscriber that does not read loses events, counted in its next
// response, while another keeps receiving every event and the broker keeps
// reading.
func TestSlowSubscriber(t *testing.T) {
	const (
		queue  = 64
		round  = 32  // events per round: fit the fast subscriber's queue
		rounds = 100 // 3,200 events: 50 queues' worth
		total  = round * rounds
	)
	fb := newFake()
	ts := newTestServer(t, fb, WithEventQueue(queue))
	// A round trip per round through a 1 ms poll: generous for a loaded CI.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fast, err := ts.client.Events.Subscribe(ctx, &edgepb.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The slow one on its own connection with small windows, so grpc's
	// flow control holds the server's sends back soon.
	sc, err := ts.dial(t, grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	slow, err := sc.Events.Subscribe(ctx, &edgepb.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	subscribed(t, fast, slow)

	seq := 0
	for range rounds {
		evs := make([]Event, round)
		for i := range evs {
			evs[i] = testEvent(EvOpened, drop.None, "10.0.0.2:1", seq)
			seq++
		}
		fb.push(evs...)
		got, lost := recvEvents(t, fast, round)
		if lost != 0 || len(got) != round || got[0].Worker != uint32(seq-round) || got[round-1].Worker != uint32(seq-1) {
			t.Fatalf("fast subscriber: %d events, lost %d, at %d", len(got), lost, seq)
		}
	}

	// The slow subscriber reads now: what it gets plus what it lost is
	// everything, in order.
	var received, lost uint64
	last := -1
	for received+lost < total {
		r, err := slow.Recv()
		if err != nil {
			t.Fatalf("slow subscriber after %d events, %d lost: %v", received, lost, err)
		}
		for _, e := range r.Events {
			if int(e.Worker) <= last {
				t.Fatalf("slow subscriber: event %d after %d", e.Worker, last)
			}
			last = int(e.Worker)
		}
		received += uint64(len(r.Events))
		lost += r.Lost
	}
	if lost == 0 || received+lost != total {
		t.Fatalf("slow subscriber: %d received, %d lost, of %d", received, lost, total)
	}
	t.Logf("slow subscriber: %d received, %d lost", received, lost)
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.maxRead != 1 {
		t.Fatalf("%d concurrent ReadEvents calls", fb.maxRead)
	}
}

// The broker alone: offer never blocks on a subscriber nobody reads.
func TestBrokerOfferNeverBlocks(t *testing.T) {
	br := newBroker(newFake(), time.Millisecond, 8, 0)
	all, _ := eventFilterFromPB("filter", nil)
	s, cancel, _ := br.subscribe(all)
	defer cancel()
	evs := make([]Event, 100)
	for range 10 {
		s.offer(evs, br.queueLen)
	}
	q, lost := s.take(nil)
	if len(q) != 8 || lost != 992 {
		t.Fatalf("queued %d, lost %d", len(q), lost)
	}
	if q, lost := s.take(q); len(q) != 0 || lost != 0 {
		t.Fatalf("after take: queued %d, lost %d", len(q), lost)
	}
	br.close() // never started
	br.close()
}

func TestBrokerStops(t *testing.T) {
	fb := newFake()
	br := newBroker(fb, time.Millisecond, 8, 0)
	br.start()
	fb.push(make([]Event, 5000)...)
	fb.drained(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { br.close(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("broker did not stop")
	}
}
