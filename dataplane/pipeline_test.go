package dataplane

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/snat"
)

// Golden packet tests of the worker pipeline without a kernel: each case is
// {description, input frame and port, expected verdict (egress port or drop
// reason), expected output frame}.

var (
	macClient  = headertest.MustMAC("02:00:00:00:00:02")
	macEdgeIn  = headertest.MustMAC("02:00:00:00:01:01")
	macEdgeOut = headertest.MustMAC("02:00:00:00:02:01")
	macServer  = headertest.MustMAC("02:00:00:00:02:02")
	ipClient   = netip.MustParseAddr("10.0.0.2")
	ipServer   = netip.MustParseAddr("203.0.113.2")
	ipSNAT     = netip.MustParseAddr("203.0.113.1")
	ipFar      = netip.MustParseAddr("198.51.100.7") // routed, neighbour unknown
)

type sent struct {
	port  int
	frame []byte
}

// testPipeline is a worker with no sockets: its output goes to out.
type testPipeline struct {
	t   testing.TB
	e   *Engine
	w   *worker
	out []sent
	now conntrack.Time
}

func newTestPipeline(t testing.TB, rules firewall.RuleSet, maxFlows int) *testPipeline {
	table, err := conntrack.New(conntrack.Config{MaxFlows: maxFlows, HistorySize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(table.Close)
	e := &Engine{table: table, start: time.Now(), stop: make(chan struct{})}
	fw, err := firewall.Compile(rules, table.ProfileIndex)
	if err != nil {
		t.Fatal(err)
	}
	e.fw.Store(fw)
	rt, err := NewRoutes([]Route{
		{Dst: netip.MustParsePrefix("10.0.0.0/24"), Port: 0},
		{Dst: netip.MustParsePrefix("203.0.113.0/24"), Port: 1},
		{Dst: netip.MustParsePrefix("198.51.100.0/24"), Via: netip.MustParseAddr("203.0.113.9"), Port: 1},
	}, 2)
	if err != nil {
		t.Fatal(err)
	}
	e.routes.Store(rt)
	e.neigh = NewNeighbours(1, 2)
	e.neigh.cur.Store(&map[neighKey][6]byte{
		{1, ipClient.As16()}: macClient,
		{2, ipServer.As16()}: macServer,
	})
	if e.nat, err = snat.New(snat.Config{Mode: snat.Automap, Automap: ipSNAT}, table); err != nil {
		t.Fatal(err)
	}
	tp := &testPipeline{t: t, e: e, now: conntrack.Second}
	tp.w = &worker{e: e, shard: table.Shard(0), nat: e.nat.Allocator(0)}
	tp.w.ports = [2]*port{
		{name: "in", ifindex: 1, mac: macEdgeIn, mtu: 1500, zone: firewall.Inside},
		{name: "out", ifindex: 2, mac: macEdgeOut, mtu: 1500, zone: firewall.Outside},
	}
	tp.w.testTX = func(port int, frame []byte) {
		tp.out = append(tp.out, sent{port, append([]byte(nil), frame...)})
	}
	return tp
}

// send runs one frame received on port in through the pipeline and returns
// what left (at most one frame) and the drop reason counted, if any.
func (tp *testPipeline) send(in int, frame []byte) (out *sent, reason drop.Reason) {
	tp.out = tp.out[:0]
	before := tp.w.drops
	tp.w.pipeline(in, [][]byte{frame}, tp.now)
	tp.w.transmit(0)
	tp.w.transmit(1)
	for r := range tp.w.drops {
		if tp.w.drops[r] != before[r] {
			reason = drop.Reason(r)
		}
	}
	tp.w.flush()
	if len(tp.out) > 1 {
		tp.t.Fatalf("one frame in, %d out", len(tp.out))
	}
	if len(tp.out) == 1 {
		return &tp.out[0], reason
	}
	return nil, reason
}

// natPort returns the SNAT port of the flow with original key k.
func (tp *testPipeline) natPort(k conntrack.Key) uint16 {
	r, _, ok := tp.w.shard.Lookup(&k, tp.now)
	if !ok {
		tp.t.Fatalf("no flow for %v", k)
	}
	_, port := tp.w.shard.NAT(r)
	return port
}

func eth(s headertest.Spec, src, dst [6]byte) []byte { return headertest.BuildEth(s, src, dst) }

func TestPipelineGolden(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	tcp := func(src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32, ttl uint8) headertest.Spec {
		return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoTCP, SrcPort: sport, DstPort: dport,
			Flags: flags, Seq: seq, Ack: ack, Window: 64240, TTL: ttl}
	}
	const SYN, ACK = header.TCPFlagSYN, header.TCPFlagACK
	orig := conntrack.MakeKey(header.ProtoTCP, netip.AddrPortFrom(ipClient, 40000), netip.AddrPortFrom(ipServer, 80))

	// 1. The client's SYN leaves translated.
	out, r := tp.send(0, eth(tcp(ipClient, ipServer, 40000, 80, SYN, 1000, 0, 64), macClient, macEdgeIn))
	if out == nil || r != drop.None {
		t.Fatalf("SYN: dropped (%v)", r)
	}
	port := tp.natPort(orig)
	want := eth(tcp(ipSNAT, ipServer, port, 80, SYN, 1000, 0, 63), macEdgeOut, macServer)
	if out.port != 1 || !bytes.Equal(out.frame, want) {
		t.Fatalf("SYN out on port %d:\n got %s\nwant %s", out.port, hex.EncodeToString(out.frame), hex.EncodeToString(want))
	}

	cases := []struct {
		name   string
		in     int
		frame  []byte
		port   int // expected egress port when forwarded
		reason drop.Reason
		want   []byte
	}{
		{"SYN-ACK comes back untranslated to the client", 1,
			eth(tcp(ipServer, ipSNAT, 80, port, SYN|ACK, 5000, 1001, 64), macServer, macEdgeOut), 0, drop.None,
			eth(tcp(ipServer, ipClient, 80, 40000, SYN|ACK, 5000, 1001, 63), macEdgeIn, macClient)},
		{"final ACK", 0,
			eth(tcp(ipClient, ipServer, 40000, 80, ACK, 1001, 5001, 64), macClient, macEdgeIn), 1, drop.None,
			eth(tcp(ipSNAT, ipServer, port, 80, ACK, 1001, 5001, 63), macEdgeOut, macServer)},
		{"unsolicited inbound SYN to the SNAT address", 1,
			eth(tcp(ipServer, ipSNAT, 80, 22, SYN, 1, 0, 64), macServer, macEdgeOut), 0, drop.FirewallDrop, nil},
		{"stray SYN-ACK without state", 1,
			eth(tcp(ipServer, ipSNAT, 80, 23, SYN|ACK, 1, 1, 64), macServer, macEdgeOut), 0, drop.NoState, nil},
		{"TTL 1 is not forwarded", 0,
			eth(tcp(ipClient, ipServer, 40000, 80, ACK, 1001, 5001, 1), macClient, macEdgeIn), 0, drop.TTLExceeded, nil},
		{"unknown next hop: resolution, no guessing", 0,
			eth(tcp(ipClient, ipFar, 40001, 443, SYN, 7, 0, 64), macClient, macEdgeIn), 0, drop.NoNeighbour, nil},
		{"no route", 0,
			eth(tcp(ipClient, netip.MustParseAddr("192.0.2.1"), 40002, 443, SYN, 7, 0, 64), macClient, macEdgeIn), 0, drop.NoRoute, nil},
		{"truncated frame", 0, []byte{1, 2, 3}, 0, drop.Truncated, nil},
		{"IPv6 from inside with an IPv4-only SNAT", 0,
			eth(tcp(netip.MustParseAddr("fd00::2"), netip.MustParseAddr("2001:db8::1"), 1, 2, SYN, 1, 0, 64), macClient, macEdgeIn),
			0, drop.SNATNoAddress, nil},
	}
	for _, c := range cases {
		out, r := tp.send(c.in, c.frame)
		switch {
		case c.want == nil && (out != nil || r != c.reason):
			t.Errorf("%s: got output %v reason %v; want drop %v", c.name, out != nil, r, c.reason)
		case c.want != nil && out == nil:
			t.Errorf("%s: dropped (%v)", c.name, r)
		case c.want != nil && (out.port != c.port || !bytes.Equal(out.frame, c.want)):
			t.Errorf("%s: port %d\n got %s\nwant %s", c.name, out.port, hex.EncodeToString(out.frame), hex.EncodeToString(c.want))
		}
	}

	// UDP and ICMP echo are translated too (ICMP: the identifier).
	udpOut, r := tp.send(0, eth(headertest.Spec{Src: ipClient, Dst: ipServer, Proto: header.ProtoUDP, SrcPort: 5353, DstPort: 53,
		Payload: []byte("query")}, macClient, macEdgeIn))
	if udpOut == nil {
		t.Fatalf("UDP dropped: %v", r)
	}
	uport := tp.natPort(conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, 5353), netip.AddrPortFrom(ipServer, 53)))
	if want := eth(headertest.Spec{Src: ipSNAT, Dst: ipServer, Proto: header.ProtoUDP, SrcPort: uport, DstPort: 53, TTL: 63,
		Payload: []byte("query")}, macEdgeOut, macServer); !bytes.Equal(udpOut.frame, want) {
		t.Fatalf("UDP out\n got %x\nwant %x", udpOut.frame, want)
	}
	echoOut, r := tp.send(0, eth(headertest.Spec{Src: ipClient, Dst: ipServer, Proto: header.ProtoICMP,
		ICMPType: header.ICMPv4EchoRequest, Ident: 77, ICMPSeq: 1}, macClient, macEdgeIn))
	if echoOut == nil {
		t.Fatalf("echo request dropped: %v", r)
	}
	id := tp.natPort(conntrack.MakeKey(header.ProtoICMP, netip.AddrPortFrom(ipClient, 77), netip.AddrPortFrom(ipServer, 0)))
	if want := eth(headertest.Spec{Src: ipSNAT, Dst: ipServer, Proto: header.ProtoICMP, ICMPType: header.ICMPv4EchoRequest,
		Ident: id, ICMPSeq: 1, TTL: 63}, macEdgeOut, macServer); !bytes.Equal(echoOut.frame, want) {
		t.Fatalf("echo out\n got %x\nwant %x", echoOut.frame, want)
	}
	replyOut, r := tp.send(1, eth(headertest.Spec{Src: ipServer, Dst: ipSNAT, Proto: header.ProtoICMP,
		ICMPType: header.ICMPv4EchoReply, Ident: id, ICMPSeq: 1}, macServer, macEdgeOut))
	if replyOut == nil {
		t.Fatalf("echo reply dropped: %v", r)
	}
	if want := eth(headertest.Spec{Src: ipServer, Dst: ipClient, Proto: header.ProtoICMP, ICMPType: header.ICMPv4EchoReply,
		Ident: 77, ICMPSeq: 1, TTL: 63}, macEdgeIn, macClient); !bytes.Equal(replyOut.frame, want) {
		t.Fatalf("echo reply\n got %x\nwant %x", replyOut.frame, want)
	}
}

// The MTU check uses the egress interface's MTU.
func TestPipelineMTU(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	tp.w.ports[1].mtu = 576
	big := eth(headertest.Spec{Src: ipClient, Dst: ipServer, Proto: header.ProtoUDP, SrcPort: 1, DstPort: 2,
		Payload: make([]byte, 1000)}, macClient, macEdgeIn)
	if out, r := tp.send(0, big); out != nil || r != drop.MTUExceeded {
		t.Fatalf("oversized packet: out %v reason %v", out != nil, r)
	}
}

// The per-packet pipeline allocates nothing.
func TestPipelineZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation test")
	}
	tp := newTestPipeline(t, allowOutbound, 1024)
	tp.w.testTX = func(int, []byte) {}
	frame := eth(headertest.Spec{Src: ipClient, Dst: ipServer, Proto: header.ProtoUDP, SrcPort: 5000, DstPort: 53,
		Payload: []byte("x")}, macClient, macEdgeIn)
	buf := make([]byte, len(frame))
	frames := [][]byte{buf}
	run := func() {
		copy(buf, frame)
		tp.w.pipeline(0, frames, tp.now)
		tp.w.transmit(1)
	}
	run() // opens the flow
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Fatalf("established-flow pipeline: %v allocs per packet", n)
	}
}
