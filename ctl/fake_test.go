package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/frag"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/snat"
)

// fakeBackend is a Backend with a few flows, a history, events, counters
// and a configuration document, all in memory.
type fakeBackend struct {
	epoch time.Time

	mu      sync.Mutex
	flows   []conntrack.FlowInfo
	history map[conntrack.Key][]conntrack.Incarnation
	doc     []byte
	gen     uint64
	stats   Stats
	status  Status
	// mappings: what Mappings returns (FlushIdleMappings keeps those in use).
	mappings []Mapping
	// dests: what Destinations returns.
	dests conntrack.Destinations

	// Generated flows: when nGen > 0, Flows yields nGen flows made by
	// genFlow instead of flows; visited counts the ones yielded.
	nGen     int
	visited  int
	flowsErr error

	lastFilter  conntrack.Filter
	lastMaxHist int
	lastDests   bool          // Stats was asked for destinations
	flowsDone   chan struct{} // receives when a Flows call returns

	// Events: pending is what ReadEvents hands out next; reads signals
	// each ReadEvents call.
	pending []Event
	reads   chan struct{}
	readers int // concurrent ReadEvents calls (must stay <= 1)
	maxRead int
}

func newFake() *fakeBackend {
	epoch := time.Now().Add(-time.Hour)
	f := &fakeBackend{
		epoch:     epoch,
		history:   map[conntrack.Key][]conntrack.Incarnation{},
		doc:       []byte("interfaces:\n  inside: {name: in}\n  outside: {name: out}\nrules: []\n"),
		gen:       1,
		flowsDone: make(chan struct{}, 16),
		reads:     make(chan struct{}, 1),
	}
	now := conntrack.Time(time.Hour) // the fake's "now": one hour after epoch
	mk := func(proto uint8, src, dst string, state conntrack.State) conntrack.FlowInfo {
		s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
		fi := conntrack.FlowInfo{}
		fi.Orig = conntrack.MakeKey(proto, s, d)
		fi.Reply = fi.Orig.Reverse()
		fi.State = state
		fi.Opened = now - 10*conntrack.Second
		fi.Expires = now + 300*conntrack.Second
		fi.Packets = [2]uint32{5, 4}
		fi.Rule = 1
		fi.Profile = 0
		return fi
	}
	a := mk(6, "10.0.0.2:40000", "203.0.113.5:80", conntrack.TCPEstablished)
	a.NATAddr = netip.MustParseAddr("198.51.100.1")
	a.NATPort = 1024
	a.Reply.Dst = a.NATAddr.As16()
	a.Reply.DstPort = 1024
	a.ISN = [2]uint32{1000, 2000}
	a.Gen = 2
	b := mk(17, "10.0.0.3:5353", "203.0.113.53:53", conntrack.UDPMultiple)
	b.Creator = conntrack.CreatedByFirst
	c := mk(6, "[2001:db8::2]:40001", "[2001:db8:1::5]:443", conntrack.TCPSynSent)
	c.Shard = 1
	c.Liberal = true
	f.flows = []conntrack.FlowInfo{a, b, c}
	f.history[a.Orig] = []conntrack.Incarnation{
		{Orig: a.Orig, Reply: a.Reply, Gen: 1, State: conntrack.TCPFinWait, Reason: conntrack.CloseSuperseded,
			Opened: now - 100*conntrack.Second, Closed: now - 20*conntrack.Second, Packets: [2]uint32{9, 8}, Rule: 1},
		{Orig: a.Orig, Reply: a.Orig.Reverse(), Gen: 0, State: conntrack.TCPTimeWait, Reason: conntrack.CloseExpired,
			Opened: now - 900*conntrack.Second, Closed: now - 500*conntrack.Second, Rule: 0},
	}
	f.stats = Stats{
		Workers: []WorkerStats{
			{ID: 0, RX: [2]uint64{10, 20}, TX: [2]uint64{19, 9}, Created: 3, Handoff: 1, RST: 2, Flows: 2},
			{ID: 1, RX: [2]uint64{1, 2}, TX: [2]uint64{2, 1}, Flows: 1},
		},
		Interfaces: []InterfaceStats{{Name: "in", Zone: "inside", RX: 11, TX: 11, XDPRedirected: 11}},
		EventsLost: 7,
		SNATDestinations: []snat.DestStat{{Addr: netip.MustParseAddr("198.51.100.1"),
			Dst: netip.MustParseAddrPort("203.0.113.5:80"), Proto: 6, InUse: 1, Free: 64510, Range: 64511, Exhausted: 2}},
	}
	f.stats.Workers[0].Drops[drop.NoState] = 4
	f.stats.Workers[1].Drops[drop.NoState] = 1
	f.stats.Workers[1].Drops[drop.TTLExceeded] = 2
	f.stats.Workers[0].ICMP[icmp.TimeExceeded] = 2
	f.stats.Conntrack.Counters[conntrack.CtrCreated] = 3
	f.stats.Conntrack.Flows = 3
	f.stats.Conntrack.Capacity = 1024
	f.stats.SNAT.Counters[snat.CtrAllocated] = 1
	// Every counter distinct, so a field read for another shows.
	f.stats.Neighbours = NeighbourStats{Entries: 21, Kept: 22, Unanswered: 23, KeptTotal: 24, KeptRecovered: 25,
		KeptExpired: 26, KeptFailed: 27, Requests: 28, Refused: 29, GivenUp: 30, Deleted: 31,
		Held: 32, HeldSent: 33, HeldDropped: 34}
	f.stats.KernelRoutesRefused = 32
	f.stats.Workers[0].Fragments = frag.Stats{Noted: 41, Followed: 42, Held: 43, Released: 14, ExpiredHeld: 15,
		Completed: 46, Refused: 47, ExpiredState: 48}
	f.stats.Workers[1].Fragments = frag.Stats{Noted: 1, Followed: 2, Held: 3, Released: 1, ExpiredHeld: 1,
		Completed: 6, Refused: 7, ExpiredState: 8}
	f.status = Status{
		Version: "edge test-1.2.3",
		Started: time.Now().Add(-90 * time.Second),
		Interfaces: []InterfaceStatus{
			{Name: "in", Zone: "inside", Ifindex: 3, MTU: 1500, MAC: "02:00:00:00:00:01",
				Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Queues: 1, XDPMode: "copy"},
		},
		Workers:    []WorkerStatus{{ID: 0, Queue: 0, CPU: -1}, {ID: 1, Queue: 1, CPU: 1}},
		Flows:      3,
		Capacity:   1024,
		MemoryB:    1024 * 128,
		Generation: 1,
		SNAT: &SNATStatus{Mode: "pools", PortFirst: 1024, PortLast: 65535, Quarantine: 4 * time.Minute,
			Pools: []SNATPool{{Name: "p", Addrs: []netip.Addr{netip.MustParseAddr("198.51.100.1")}, Ranges: []string{"198.51.100.1-198.51.100.1"}}}},
	}
	return f
}

// genFlow is generated flow i.
func genFlow(i int) conntrack.FlowInfo {
	var fi conntrack.FlowInfo
	fi.Orig = conntrack.MakeKey(6, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), uint16(1024+i%60000)),
		netip.MustParseAddrPort("192.0.2.1:443"))
	fi.Reply = fi.Orig.Reverse()
	fi.State = conntrack.TCPEstablished
	fi.Expires = conntrack.Time(2 * time.Hour)
	return fi
}

func (f *fakeBackend) Status(ctx context.Context) (Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, nil
}

func (f *fakeBackend) Config(ctx context.Context) ([]byte, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.doc), f.gen, nil
}

// ApplyConfig: a document containing "bad:" is invalid, one containing
// "bpf:" fails as the data plane would (ErrInternal), one whose interfaces
// differ from the running ones is refused as immutable. A document applied
// for real is "saved" to /etc/edge/edge.yaml, unless it contains
// "unsaved:".
func (f *fakeBackend) ApplyConfig(ctx context.Context, doc []byte, dryRun bool) (ApplyResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := bytes.Index(doc, []byte("bad:")); i >= 0 {
		return ApplyResult{}, fmt.Errorf("rules[2].dst[0]: %q is not an address or prefix", "bad")
	}
	if bytes.Contains(doc, []byte("bpf:")) {
		return ApplyResult{}, Internal(errors.New("management: 192.0.2.9: map update: operation not permitted"))
	}
	iface := func(d []byte) []byte {
		if i := bytes.Index(d, []byte("rules:")); i >= 0 {
			return d[:i]
		}
		return d
	}
	if !bytes.Equal(iface(doc), iface(f.doc)) {
		return ApplyResult{}, fmt.Errorf("interfaces: %w", ErrImmutable)
	}
	res := ApplyResult{Generation: f.gen, Changed: []string{"rules"}}
	if !dryRun {
		f.gen++
		f.doc = bytes.Clone(doc)
		res.Generation = f.gen
		if bytes.Contains(doc, []byte("unsaved:")) {
			res.SaveError = "save /etc/edge/edge.yaml: read-only file system"
		} else {
			res.SavedTo = "/etc/edge/edge.yaml"
		}
	}
	return res, nil
}

// matchFlow is conntrack's Filter semantics, for the fake.
func matchFlow(fl *conntrack.Filter, fi *conntrack.FlowInfo) bool {
	if fl.Proto != 0 && fi.Orig.Proto != fl.Proto {
		return false
	}
	if fl.Zone > 0 && int(fi.Orig.Zone) != fl.Zone {
		return false
	}
	if fl.State != conntrack.StateNone && fi.State != fl.State {
		return false
	}
	if fl.Port != 0 && fi.Orig.SrcPort != fl.Port && fi.Orig.DstPort != fl.Port &&
		fi.Reply.SrcPort != fl.Port && fi.Reply.DstPort != fl.Port {
		return false
	}
	if fl.Prefix.IsValid() {
		in := func(a [16]byte) bool { return fl.Prefix.Contains(netip.AddrFrom16(a).Unmap()) }
		if !in(fi.Orig.Src) && !in(fi.Orig.Dst) && !in(fi.Reply.Dst) {
			return false
		}
	}
	return true
}

func (f *fakeBackend) Flows(ctx context.Context, fl conntrack.Filter, fn func(*conntrack.FlowInfo) bool) error {
	defer func() { f.flowsDone <- struct{}{} }()
	f.mu.Lock()
	f.lastFilter = fl
	flows, n, ferr := append([]conntrack.FlowInfo(nil), f.flows...), f.nGen, f.flowsErr
	f.mu.Unlock()
	if ferr != nil {
		return ferr
	}
	if n > 0 {
		for i := range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			fi := genFlow(i)
			f.mu.Lock()
			f.visited++
			f.mu.Unlock()
			if matchFlow(&fl, &fi) && !fn(&fi) {
				return nil
			}
		}
		return nil
	}
	for i := range flows {
		if matchFlow(&fl, &flows[i]) && !fn(&flows[i]) {
			return nil
		}
	}
	return nil
}

func (f *fakeBackend) Flush(ctx context.Context, fl conntrack.Filter) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastFilter = fl
	kept := f.flows[:0]
	n := 0
	for _, fi := range f.flows {
		if matchFlow(&fl, &fi) {
			n++
			continue
		}
		kept = append(kept, fi)
	}
	f.flows = kept
	return n, nil
}

func (f *fakeBackend) Explain(ctx context.Context, k conntrack.Key, maxHistory int) (conntrack.Explanation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastMaxHist = maxHistory
	ex := conntrack.Explanation{Key: k}
	for i := range f.flows {
		fi := f.flows[i]
		switch k {
		case fi.Orig:
			fi.Dir = conntrack.Original
		case fi.Reply:
			fi.Dir = conntrack.Reply
		default:
			continue
		}
		ex.Current = &fi
		k = fi.Orig
		break
	}
	h := f.history[k]
	ex.History = append(ex.History, h[:min(len(h), maxHistory)]...)
	return ex, nil
}

func (f *fakeBackend) Stats(ctx context.Context, destinations bool) (Stats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastDests = destinations
	s := f.stats
	if !destinations {
		s.SNATDestinations = nil
	}
	return s, nil
}

func (f *fakeBackend) ReadEvents(out []Event) int {
	f.mu.Lock()
	f.readers++
	f.maxRead = max(f.maxRead, f.readers)
	n := copy(out, f.pending)
	f.pending = f.pending[n:]
	f.readers--
	f.mu.Unlock()
	select {
	case f.reads <- struct{}{}:
	default:
	}
	return n
}

// push queues events for ReadEvents.
func (f *fakeBackend) push(evs ...Event) {
	f.mu.Lock()
	f.pending = append(f.pending, evs...)
	f.mu.Unlock()
}

// drained waits until ReadEvents has handed out every pushed event.
func (f *fakeBackend) drained(t *testing.T) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.pending)
		f.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-f.reads:
		case <-deadline:
			t.Fatalf("events not read: %d pending", n)
		}
	}
}

func (f *fakeBackend) RuleName(rule uint32) string {
	if rule == 0 {
		return "default"
	}
	return fmt.Sprintf("rule%d", rule)
}

func (f *fakeBackend) ProfileName(p uint8) string {
	if p == 0 {
		return "default"
	}
	return "nsx-gateway"
}

func (f *fakeBackend) Epoch() time.Time { return f.epoch }

// fakeNow is the fake's flows' notion of now, as a conntrack time.
var fakeNow = conntrack.Time(time.Hour)

// testServer serves b over bufconn, every connection authenticated as a
// unix peer of peerUID, and returns a client of it.
type testServer struct {
	*Server
	lis    *bufconn.Listener
	client *Client
	served chan error
}

func newTestServerUID(t *testing.T, b Backend, peerUID uint32, opts ...Option) *testServer {
	t.Helper()
	opts = append([]Option{func(o *options) {
		o.otherConns = func(net.Conn) (credentials.AuthInfo, error) {
			return UnixPeer{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}, UID: peerUID}, nil
		}
	}, WithEventPoll(time.Millisecond)}, opts...)
	ts := &testServer{Server: NewServer(b, opts...), lis: bufconn.Listen(1 << 20), served: make(chan error, 1)}
	go func() { ts.served <- ts.Serve(ts.lis) }()
	t.Cleanup(func() {
		ts.Stop()
		if err := <-ts.served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

func newTestServer(t *testing.T, b Backend, opts ...Option) *testServer {
	t.Helper()
	ts := newTestServerUID(t, b, uint32(os.Getuid()), opts...)
	c, err := ts.dial(t)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ts.client = c
	return ts
}

// dial makes another client of ts (closed at the end of the test).
func (ts *testServer) dial(t *testing.T, extra ...grpc.DialOption) (*Client, error) {
	t.Helper()
	opts := append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ts.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, extra...)
	c, err := dial(context.Background(), "passthrough:///bufnet", "bufconn", 5*time.Second, opts...)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var errFake = errors.New("fake failure")

func (f *fakeBackend) Mappings(ctx context.Context) ([]Mapping, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Mapping(nil), f.mappings...), nil
}

func (f *fakeBackend) FlushIdleMappings(ctx context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := f.mappings[:0]
	for _, m := range f.mappings {
		if m.Flows > 0 {
			kept = append(kept, m)
		}
	}
	f.mappings = kept
	return len(kept), nil
}

func (f *fakeBackend) Destinations(ctx context.Context) (conntrack.Destinations, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dests, nil
}
