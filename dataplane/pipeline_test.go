package dataplane

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/icmp"
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
	ipEdgeIn   = netip.MustParseAddr("10.0.0.1")
)

// testRoutes are the test pipeline's routes.
var testRoutes = []Route{
	{Dst: netip.MustParsePrefix("10.0.0.0/24"), Port: 0},
	{Dst: netip.MustParsePrefix("203.0.113.0/24"), Port: 1},
	{Dst: netip.MustParsePrefix("198.51.100.0/24"), Via: netip.MustParseAddr("203.0.113.9"), Port: 1},
	{Dst: netip.MustParsePrefix("2001:db8::/32"), Port: 1},
	{Dst: netip.MustParsePrefix("fd00::/64"), Port: 0}, // inside IPv6 clients (strict uRPF)
}

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
	cur := Config{Rules: rules, Conntrack: conntrack.Config{MaxFlows: maxFlows, HistorySize: 64},
		Routes: testRoutes, Logf: func(string, ...any) {}}
	if err := cur.defaults(); err != nil {
		t.Fatal(err)
	}
	e.cfg = cur
	e.cur.Store(&cur)
	e.gen.Store(1)
	fw, err := firewall.Compile(rules, table.ProfileIndex)
	if err != nil {
		t.Fatal(err)
	}
	e.ruleSets.add(fw) // as New does
	e.fw.Store(fw)
	rt, err := NewRoutes(testRoutes, 2)
	if err != nil {
		t.Fatal(err)
	}
	e.routes.Store(rt)
	e.neigh = NewNeighbours(1, 2)
	e.neigh.store(map[neighKey][6]byte{
		{1, ipClient.As16()}: macClient,
		{2, ipServer.As16()}: macServer,
	})
	sc := &snat.Config{Mode: snat.Automap, Automap: ipSNAT}
	if e.nat, err = snat.New(*sc, table); err != nil {
		t.Fatal(err)
	}
	cur.SNAT, e.natCfg = sc, sc
	tp := &testPipeline{t: t, e: e, now: conntrack.Second}
	tp.w = newWorker(e, 0)
	tp.w.nat = e.nat.Allocator(0)
	e.workers = []*worker{tp.w}
	tp.w.ports = [2]*port{
		{name: "in", ifindex: 1, mac: macEdgeIn, mtu: 1500, zone: firewall.Inside, addr4: ipEdgeIn.As16()},
		{name: "out", ifindex: 2, mac: macEdgeOut, mtu: 1500, zone: firewall.Outside, addr4: ipSNAT.As16()},
	}
	tp.w.testTX = func(port int, frame []byte) {
		tp.out = append(tp.out, sent{port, append([]byte(nil), frame...)})
	}
	loop := newHandoff(loopSlots) // as New makes it: the worker's own loop ring
	tp.w.outbox, tp.w.inbox = []*handoff{loop}, []*handoff{loop}
	return tp
}

// send runs one frame received on port in through the pipeline and returns
// what left (at most one frame) and the drop reason counted (the
// first in drop's order when several were: an ICMP refusal comes with its
// cause, which is the one returned).
func (tp *testPipeline) send(in int, frame []byte) (out *sent, reason drop.Reason) {
	out, reasons := tp.sendAll(in, frame)
	for r := range reasons {
		if reason == drop.None || r < reason {
			reason = r
		}
	}
	return out, reason
}

// sendAll is send returning every drop reason counted.
func (tp *testPipeline) sendAll(in int, frame []byte) (out *sent, reasons map[drop.Reason]bool) {
	tp.out = tp.out[:0]
	before := tp.w.drops
	tp.w.pipeline(in, [][]byte{frame}, tp.now)
	tp.w.drainInbox(tp.now) // a hairpinned packet comes back through the loop ring
	tp.w.transmit(0)
	tp.w.transmit(1)
	for j, r := range tp.w.inbox {
		r.release(tp.w.taken[j])
		tp.w.taken[j] = 0
	}
	reasons = map[drop.Reason]bool{}
	for r := range tp.w.drops {
		if tp.w.drops[r] != before[r] {
			reasons[drop.Reason(r)] = true
		}
	}
	tp.w.flush()
	if len(tp.out) > 1 {
		tp.t.Fatalf("one frame in, %d out", len(tp.out))
	}
	if len(tp.out) == 1 {
		return &tp.out[0], reasons
	}
	return nil, reasons
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

// TestPipelineGolden: a TCP connection from the inside through SNAT (SYN,
// SYN-ACK, ACK, data both ways, FIN), the packets edge must not forward, a
// UDP datagram and its answer, an ICMP echo and its reply, in each family.
// Every packet leaves with the TTL / hop limit one lower, translated, with
// checksums gopacket agrees with.
func TestPipelineGolden(t *testing.T) { forEachPipeFamily(t, testPipelineGolden) }

func testPipelineGolden(t *testing.T, fam pipeFamily) {
	tp := fam.newPipeline(t, allowOutbound)
	tcp := func(src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32, ttl uint8, data string) headertest.Spec {
		return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoTCP, SrcPort: sport, DstPort: dport,
			Flags: flags, Seq: seq, Ack: ack, Window: 64240, TTL: ttl, Payload: []byte(data)}
	}
	const SYN, ACK, FIN, PSH = header.TCPFlagSYN, header.TCPFlagACK, header.TCPFlagFIN, header.TCPFlagPSH
	client, server, snatAddr := fam.client, fam.server, fam.snat
	orig := conntrack.MakeKey(header.ProtoTCP, netip.AddrPortFrom(client, 40000), netip.AddrPortFrom(server, 80))

	// 1. The client's SYN leaves translated, from the SNAT address of its family.
	out, r := tp.send(0, eth(tcp(client, server, 40000, 80, SYN, 1000, 0, 64, ""), macClient, macEdgeIn))
	if out == nil || r != drop.None {
		t.Fatalf("SYN: dropped (%v)", r)
	}
	port := tp.natPort(orig)
	if addr, _ := tp.w.shard.NAT(mustLookup(t, tp, orig)); tp.e.table.NATAddr(addr) != snatAddr {
		t.Fatalf("flow translated to %v, want %v", tp.e.table.NATAddr(addr), snatAddr)
	}
	want := eth(tcp(snatAddr, server, port, 80, SYN, 1000, 0, 63, ""), macEdgeOut, macServer)
	if out.port != 1 || !bytes.Equal(out.frame, want) {
		t.Fatalf("SYN out on port %d:\n got %s\nwant %s", out.port, hex.EncodeToString(out.frame), hex.EncodeToString(want))
	}
	checkGopacket(t, "SYN", out.frame)

	cases := []struct {
		name   string
		in     int
		frame  []byte
		port   int // expected egress port when forwarded
		reason drop.Reason
		want   []byte
	}{
		{"SYN-ACK comes back untranslated to the client", 1,
			eth(tcp(server, snatAddr, 80, port, SYN|ACK, 5000, 1001, 64, ""), macServer, macEdgeOut), 0, drop.None,
			eth(tcp(server, client, 80, 40000, SYN|ACK, 5000, 1001, 63, ""), macEdgeIn, macClient)},
		{"final ACK", 0,
			eth(tcp(client, server, 40000, 80, ACK, 1001, 5001, 64, ""), macClient, macEdgeIn), 1, drop.None,
			eth(tcp(snatAddr, server, port, 80, ACK, 1001, 5001, 63, ""), macEdgeOut, macServer)},
		{"established: data from the client, TTL 2 leaves as 1", 0,
			eth(tcp(client, server, 40000, 80, PSH|ACK, 1001, 5001, 2, "GET / HTTP/1.1\r\n\r\n"), macClient, macEdgeIn), 1, drop.None,
			eth(tcp(snatAddr, server, port, 80, PSH|ACK, 1001, 5001, 1, "GET / HTTP/1.1\r\n\r\n"), macEdgeOut, macServer)},
		{"established: data from the server, TTL 255", 1,
			eth(tcp(server, snatAddr, 80, port, PSH|ACK, 5001, 1019, 255, "HTTP/1.1 200 OK\r\n"), macServer, macEdgeOut), 0, drop.None,
			eth(tcp(server, client, 80, 40000, PSH|ACK, 5001, 1019, 254, "HTTP/1.1 200 OK\r\n"), macEdgeIn, macClient)},
		{"unsolicited inbound SYN to the SNAT address", 1,
			eth(tcp(server, snatAddr, 80, 22, SYN, 1, 0, 64, ""), macServer, macEdgeOut), 0, drop.FirewallDrop, nil},
		{"stray SYN-ACK without state", 1,
			eth(tcp(server, snatAddr, 80, 23, SYN|ACK, 1, 1, 64, ""), macServer, macEdgeOut), 0, drop.NoState, nil},
		{"TTL 1 TCP ACK: not forwarded, and no ICMP about a non-SYN (N3)", 0,
			eth(tcp(client, server, 40000, 80, ACK, 1019, 5018, 1, ""), macClient, macEdgeIn), 0, drop.TTLExceeded, nil},
		{"established: FIN from the client", 0,
			eth(tcp(client, server, 40000, 80, FIN|ACK, 1019, 5018, 64, ""), macClient, macEdgeIn), 1, drop.None,
			eth(tcp(snatAddr, server, port, 80, FIN|ACK, 1019, 5018, 63, ""), macEdgeOut, macServer)},
		{"unknown next hop: held while it is resolved, no guessing", 0,
			eth(tcp(client, fam.far, 40001, 443, SYN, 7, 0, 64, ""), macClient, macEdgeIn), 0, drop.None, nil},
		{"no route", 0,
			eth(tcp(client, fam.unrouted, 40002, 443, SYN, 7, 0, 64, ""), macClient, macEdgeIn), 0, drop.NoRoute, nil},
		{"truncated frame", 0, []byte{1, 2, 3}, 0, drop.Truncated, nil},
		{"to a multicast group: not routed", 0,
			eth(tcp(client, fam.multicast, 1, 2, SYN, 1, 0, 64, ""), macClient, macEdgeIn), 0, drop.NotForwardable, nil},
		{"link-layer broadcast: not routed", 0,
			eth(tcp(client, server, 1, 2, SYN, 1, 0, 64, ""), macClient, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), 0, drop.NotForwardable, nil},
		{"from a link-local source: not routed", 0,
			eth(tcp(fam.linkLocal, server, 1, 2, SYN, 1, 0, 64, ""), macClient, macEdgeIn), 0, drop.NotForwardable, nil},
		{"the other family from inside, with SNAT addresses of this family only", 0,
			eth(tcp(fam.otherClient, fam.otherServer, 1, 2, SYN, 1, 0, 64, ""), macClient, macEdgeIn), 0, drop.SNATNoAddress, nil},
	}
	for _, c := range cases {
		runRouterCases(t, tp, []routerCase{{name: c.name, in: c.in, frame: c.frame, reason: c.reason, port: c.port, want: c.want}})
		if c.want != nil && !t.Failed() {
			checkGopacket(t, c.name, c.want)
		}
	}

	if _, rs := tp.sendAll(0, eth(tcp(client, server, 40000, 80, ACK, 1019, 5018, 1, ""), macClient, macEdgeIn)); !rs[drop.ICMPNotSentTCPNotSYN] {
		t.Errorf("TTL-1 ACK: the N3 refusal was not counted: %v", rs)
	}

	// UDP and ICMP echo are translated too (ICMP: the identifier).
	udp := func(src, dst netip.Addr, sport, dport uint16, ttl uint8, data string) headertest.Spec {
		return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoUDP, SrcPort: sport, DstPort: dport, TTL: ttl, Payload: []byte(data)}
	}
	udpOut, r := tp.send(0, eth(udp(client, server, 5353, 53, 64, "query"), macClient, macEdgeIn))
	if udpOut == nil {
		t.Fatalf("UDP dropped: %v", r)
	}
	uport := tp.natPort(conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(client, 5353), netip.AddrPortFrom(server, 53)))
	if want := eth(udp(snatAddr, server, uport, 53, 63, "query"), macEdgeOut, macServer); udpOut.port != 1 || !bytes.Equal(udpOut.frame, want) {
		t.Fatalf("UDP out\n got %x\nwant %x", udpOut.frame, want)
	}
	checkGopacket(t, "UDP", udpOut.frame)
	udpIn, r := tp.send(1, eth(udp(server, snatAddr, 53, uport, 64, "answer"), macServer, macEdgeOut))
	if udpIn == nil {
		t.Fatalf("UDP answer dropped: %v", r)
	}
	if want := eth(udp(server, client, 53, 5353, 63, "answer"), macEdgeIn, macClient); udpIn.port != 0 || !bytes.Equal(udpIn.frame, want) {
		t.Fatalf("UDP answer\n got %x\nwant %x", udpIn.frame, want)
	}
	checkGopacket(t, "UDP answer", udpIn.frame)
	echoOut, r := tp.send(0, eth(headertest.Spec{Src: client, Dst: server, Proto: fam.icmp,
		ICMPType: fam.echoRequest, Ident: 77, ICMPSeq: 1}, macClient, macEdgeIn))
	if echoOut == nil {
		t.Fatalf("echo request dropped: %v", r)
	}
	id := tp.natPort(conntrack.MakeKey(fam.icmp, netip.AddrPortFrom(client, 77), netip.AddrPortFrom(server, 0)))
	if want := eth(headertest.Spec{Src: snatAddr, Dst: server, Proto: fam.icmp, ICMPType: fam.echoRequest,
		Ident: id, ICMPSeq: 1, TTL: 63}, macEdgeOut, macServer); !bytes.Equal(echoOut.frame, want) {
		t.Fatalf("echo out\n got %x\nwant %x", echoOut.frame, want)
	}
	checkGopacket(t, "echo request", echoOut.frame)
	replyOut, r := tp.send(1, eth(headertest.Spec{Src: server, Dst: snatAddr, Proto: fam.icmp,
		ICMPType: fam.echoReply, Ident: id, ICMPSeq: 1}, macServer, macEdgeOut))
	if replyOut == nil {
		t.Fatalf("echo reply dropped: %v", r)
	}
	if want := eth(headertest.Spec{Src: server, Dst: client, Proto: fam.icmp, ICMPType: fam.echoReply,
		Ident: 77, ICMPSeq: 1, TTL: 63}, macEdgeIn, macClient); !bytes.Equal(replyOut.frame, want) {
		t.Fatalf("echo reply\n got %x\nwant %x", replyOut.frame, want)
	}
	checkGopacket(t, "echo reply", replyOut.frame)
}

// The MTU check uses the egress interface's MTU. A packet over it is never
// fragmented: it is dropped and answered with the error of its family
// (IPv4 with DF: fragmentation needed, RFC 1191; IPv6: packet too big, RFC
// 8200 5, RFC 4443 3.2) carrying the MTU and quoting the packet as the
// client sent it, counted under that error's own name; an IPv4 packet
// without DF is dropped (edge does not fragment). One of exactly the MTU
// leaves, translated.
func TestPipelineMTU(t *testing.T) { forEachPipeFamily(t, testPipelineMTU) }

func testPipelineMTU(t *testing.T, fam pipeFamily) {
	const mtu = 1400
	tp := fam.newPipeline(t, allowOutbound)
	tp.w.ports[1].mtu = mtu
	spec := headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoUDP, SrcPort: 4500, DstPort: 4500,
		Payload: make([]byte, mtu-fam.ipHeaderLen-header.UDPLen+1), DF: true} // one byte over
	for i := range spec.Payload {
		spec.Payload[i] = byte(i)
	}
	big := eth(spec, macClient, macEdgeIn)
	orig := append([]byte(nil), big[header.EthernetLen:]...)
	out, r := tp.send(0, big)
	if out == nil || out.port != 0 || r != drop.MTUExceeded {
		t.Fatalf("packet over the MTU: out %v reason %v; want %v back on port 0, drop mtu_exceeded", out != nil, r, fam.tooBig)
	}
	if want := fam.icmpError(fam.tooBig, mtu, orig); !bytes.Equal(out.frame, want) {
		t.Fatalf("%v\n got %x\nwant %x", fam.tooBig, out.frame, want)
	}
	checkGopacket(t, fam.tooBig.String(), out.frame)
	if tp.e.table.Len() != 0 {
		t.Errorf("%d flows created by a packet over the MTU", tp.e.table.Len())
	}
	other := map[icmp.Kind]icmp.Kind{icmp.FragNeeded: icmp.PacketTooBig, icmp.PacketTooBig: icmp.FragNeeded}[fam.tooBig]
	if st := tp.e.Stats(); st.ICMP[fam.tooBig] != 1 || st.ICMP[other] != 0 {
		t.Errorf("ICMP sent %v: want one %v and no %v", st.ICMP, fam.tooBig, other)
	}
	if fam.etherType == header.EtherTypeIPv4 {
		noDF := spec
		noDF.DF = false
		if out, r := tp.send(0, eth(noDF, macClient, macEdgeIn)); out != nil || r != drop.MTUExceeded {
			t.Fatalf("no-DF packet over the MTU: out %v reason %v", out != nil, r)
		}
	}

	// Exactly the MTU: forwarded, translated, TTL one lower.
	spec.Payload = spec.Payload[:len(spec.Payload)-1]
	out, r = tp.send(0, eth(spec, macClient, macEdgeIn))
	if out == nil || out.port != 1 {
		t.Fatalf("packet of exactly the MTU: dropped (%v)", r)
	}
	uport := tp.natPort(conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(fam.client, 4500), netip.AddrPortFrom(fam.server, 4500)))
	fwd := spec
	fwd.Src, fwd.SrcPort, fwd.TTL = fam.snat, uport, 63
	if want := eth(fwd, macEdgeOut, macServer); !bytes.Equal(out.frame, want) {
		t.Fatalf("packet of exactly the MTU\n got %x\nwant %x", out.frame, want)
	}
	checkGopacket(t, "at the MTU", out.frame)
}

// An expired TTL (hop limit) is not forwarded and is answered with time
// exceeded from the ingress interface's address of the packet's family,
// quoting it as received (RFC 1812 5.3.1, RFC 4443 3.3); no flow and no
// NAT port are taken. Rule N3: no error about a TCP segment that is not a
// SYN (here on an open flow).
func TestPipelineTimeExceeded(t *testing.T) { forEachPipeFamily(t, testPipelineTimeExceeded) }

func testPipelineTimeExceeded(t *testing.T, fam pipeFamily) {
	tp := fam.newPipeline(t, allowOutbound)
	for _, c := range []struct {
		name string
		spec headertest.Spec
	}{
		{"UDP", headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoUDP, SrcPort: 33434, DstPort: 33435,
			TTL: 1, Payload: []byte("traceroute")}},
		{"TCP SYN", headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoTCP, SrcPort: 40001, DstPort: 443,
			Flags: header.TCPFlagSYN, Seq: 77, TTL: 1}},
	} {
		frame := eth(c.spec, macClient, macEdgeIn)
		orig := append([]byte(nil), frame[header.EthernetLen:]...)
		out, r := tp.send(0, frame)
		if out == nil || out.port != 0 || r != drop.TTLExceeded {
			t.Errorf("%s, TTL 1: out %v reason %v; want time exceeded back on port 0, drop ttl_exceeded", c.name, out != nil, r)
			continue
		}
		if want := fam.icmpError(icmp.TimeExceeded, 0, orig); !bytes.Equal(out.frame, want) {
			t.Errorf("%s: time exceeded\n got %x\nwant %x", c.name, out.frame, want)
		}
		checkGopacket(t, c.name+" time exceeded", out.frame)
	}
	if tp.e.table.Len() != 0 {
		t.Errorf("%d flows created by expired packets", tp.e.table.Len())
	}
	if got := tp.w.ctr.icmp[icmp.TimeExceeded].Load(); got != 2 {
		t.Errorf("time exceeded sent %d times, want 2", got)
	}

	seg := func(flags uint8, seq, ack uint32, ttl uint8) []byte {
		return eth(headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoTCP, SrcPort: 40002, DstPort: 443,
			Flags: flags, Seq: seq, Ack: ack, TTL: ttl}, macClient, macEdgeIn)
	}
	if out, r := tp.send(0, seg(header.TCPFlagSYN, 5, 0, 64)); out == nil {
		t.Fatalf("SYN dropped: %v", r)
	}
	nport := tp.natPort(conntrack.MakeKey(header.ProtoTCP, netip.AddrPortFrom(fam.client, 40002), netip.AddrPortFrom(fam.server, 443)))
	if out, r := tp.send(1, eth(headertest.Spec{Src: fam.server, Dst: fam.snat, Proto: header.ProtoTCP, SrcPort: 443, DstPort: nport,
		Flags: header.TCPFlagSYN | header.TCPFlagACK, Seq: 100, Ack: 6}, macServer, macEdgeOut)); out == nil {
		t.Fatalf("SYN-ACK dropped: %v", r)
	}
	if out, rs := tp.sendAll(0, seg(header.TCPFlagACK, 6, 101, 1)); out != nil || !rs[drop.TTLExceeded] || !rs[drop.ICMPNotSentTCPNotSYN] {
		t.Errorf("TCP ACK, TTL 1: out %v reasons %v; want no output, ttl_exceeded and icmp_not_sent_tcp_not_syn", out != nil, rs)
	}
}

// A reject rule answers a TCP SYN with the reset a closed port would send,
// anything else with the family's administratively prohibited, and creates
// no flow.
func TestPipelineReject(t *testing.T) { forEachPipeFamily(t, testPipelineReject) }

func testPipelineReject(t *testing.T, fam pipeFamily) {
	rules := firewall.RuleSet{Rules: []firewall.Rule{
		{Name: "no-telnet", Zone: firewall.Inside, Proto: header.ProtoTCP, DstPorts: []firewall.PortRange{{Lo: 23, Hi: 23}}, Action: firewall.Reject},
		{Name: "outbound", Zone: firewall.Inside, Action: firewall.Allow},
	}}
	tp := fam.newPipeline(t, rules)
	out, r := tp.send(0, eth(headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoTCP, SrcPort: 5, DstPort: 23,
		Flags: header.TCPFlagSYN, Seq: 9}, macClient, macEdgeIn))
	if out == nil || out.port != 0 || r != drop.FirewallReject {
		t.Fatalf("reject: out %v reason %v", out != nil, r)
	}
	want := eth(headertest.Spec{Src: fam.server, Dst: fam.client, Proto: header.ProtoTCP, SrcPort: 23, DstPort: 5,
		Flags: header.TCPFlagRST | header.TCPFlagACK, Ack: 10, NoWindowDefault: true, TTL: icmp.TTL, DF: true}, macEdgeIn, macClient)
	if !bytes.Equal(out.frame, want) {
		t.Fatalf("reject answer to a TCP SYN is not the closed port's reset\n got %x\nwant %x", out.frame, want)
	}
	checkGopacket(t, "reset", out.frame)
	// Other protocols get ICMP administratively prohibited.
	rules.Rules[0] = firewall.Rule{Name: "no-tftp", Zone: firewall.Inside, Proto: header.ProtoUDP,
		DstPorts: []firewall.PortRange{{Lo: 69, Hi: 69}}, Action: firewall.Reject}
	if err := tp.e.SetRules(rules); err != nil {
		t.Fatal(err)
	}
	out, r = tp.send(0, eth(headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoUDP, SrcPort: 5, DstPort: 69}, macClient, macEdgeIn))
	if out == nil || r != drop.FirewallReject {
		t.Fatalf("UDP reject: out %v reason %v", out != nil, r)
	}
	proto, m := ipProtoPayload(out.frame)
	if proto != fam.icmp || len(m) < 2 || m[0] != fam.unreachable || m[1] != fam.adminProhibited {
		t.Fatalf("UDP reject answer is not ICMP admin-prohibited (%d/%d): %x", fam.unreachable, fam.adminProhibited, out.frame)
	}
	checkGopacket(t, "admin prohibited", out.frame)
	if tp.e.table.Len() != 0 {
		t.Fatal("a rejected flow was created")
	}
}

// ipDst returns the destination address of the IPv4 or IPv6 packet in frame.
func ipDst(frame []byte) netip.Addr {
	ip := frame[header.EthernetLen:]
	if ip[0]>>4 == 6 {
		return netip.AddrFrom16([16]byte(ip[24:40]))
	}
	return netip.AddrFrom4([4]byte(ip[16:20]))
}

// ipProtoPayload returns the protocol and payload of the IPv4 or IPv6
// (without extension headers) packet in frame.
func ipProtoPayload(frame []byte) (uint8, []byte) {
	ip := frame[header.EthernetLen:]
	if ip[0]>>4 == 6 {
		return ip[6], ip[header.IPv6Len:]
	}
	h := header.IPv4(ip)
	return h.Protocol(), h.Payload()
}

// An ICMP error from the outside about a translated datagram reaches the
// client translated back (RFC 5508): exactly the error the server would
// have sent without NAT, one hop older.
func TestPipelineRelatedICMP(t *testing.T) { forEachPipeFamily(t, testPipelineRelatedICMP) }

func testPipelineRelatedICMP(t *testing.T, fam pipeFamily) {
	tp := fam.newPipeline(t, allowOutbound)
	dgram := headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoUDP, SrcPort: 6000, DstPort: 9, Payload: []byte("x")}
	out, _ := tp.send(0, eth(dgram, macClient, macEdgeIn))
	if out == nil {
		t.Fatal("datagram dropped")
	}
	translated := append([]byte(nil), out.frame[header.EthernetLen:]...)
	// The server answers port unreachable about the translated datagram.
	errIP := make([]byte, 2048)
	n, r := icmp.Build(errIP, icmp.PortUnreachable, fam.server.As16(), translated, 0)
	if r != drop.None {
		t.Fatal(r)
	}
	frame := make([]byte, header.EthernetLen+n)
	copy(frame[header.EthernetLen:], errIP[:n])
	header.Ethernet(frame).SetSrc(macServer)
	header.Ethernet(frame).SetDst(macEdgeOut)
	header.Ethernet(frame).SetEtherType(fam.etherType)
	got, r := tp.send(1, frame)
	if got == nil || got.port != 0 {
		t.Fatalf("related error not forwarded to the client (%v)", r)
	}
	// What the server would have sent with no NAT, TTL one lower.
	plain := headertest.Build(headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoUDP, SrcPort: 6000, DstPort: 9,
		Payload: []byte("x"), TTL: 63})
	want := make([]byte, 2048)
	n, _ = icmp.Build(want[header.EthernetLen:], icmp.PortUnreachable, fam.server.As16(), plain, 0)
	want = want[:header.EthernetLen+n]
	if fam.etherType == header.EtherTypeIPv4 {
		wip := header.IPv4(want[header.EthernetLen:])
		wip.SetTTL(icmp.TTL - 1)
		wip.SetChecksum(0)
		wip.SetChecksum(wip.CalculateChecksum())
	} else {
		want[header.EthernetLen+7] = icmp.TTL - 1 // the hop limit (in no checksum)
	}
	header.Ethernet(want).SetDst(macClient)
	header.Ethernet(want).SetSrc(macEdgeIn)
	header.Ethernet(want).SetEtherType(fam.etherType)
	if !bytes.Equal(got.frame, want) {
		t.Fatalf("translated error\n got %x\nwant %x", got.frame, want)
	}
	checkGopacket(t, "translated error", got.frame)
}

// The per-packet pipeline allocates nothing, and every packet it is
// measured on is forwarded (a packet dropped early allocates nothing
// either). TestPipelineZeroAllocsRealTX does the same through an AF_XDP
// socket.
func TestPipelineZeroAllocs(t *testing.T) { forEachPipeFamily(t, testPipelineZeroAllocs) }

func testPipelineZeroAllocs(t *testing.T, fam pipeFamily) {
	if testing.Short() {
		t.Skip("allocation test")
	}
	tp := fam.newPipeline(t, allowOutbound)
	frame := eth(headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoUDP, SrcPort: 5000, DstPort: 53,
		Payload: []byte("x")}, macClient, macEdgeIn)
	var want []byte // the first packet as it left
	forwarded := 0
	tp.w.testTX = func(port int, f []byte) {
		if port == 1 && (want == nil || bytes.Equal(f, want)) {
			forwarded++
		}
		if want == nil {
			want = append([]byte(nil), f...)
		}
	}
	buf := make([]byte, len(frame))
	frames := [][]byte{buf}
	runs := 0
	run := func() {
		copy(buf, frame)
		tp.w.pipeline(0, frames, tp.now)
		tp.w.transmit(1)
		runs++
	}
	run() // opens the flow
	n := testing.AllocsPerRun(200, run)
	for r, d := range tp.w.drops {
		if d != 0 {
			t.Errorf("%d packets dropped: %v", d, drop.Reason(r))
		}
	}
	if forwarded != runs {
		t.Fatalf("%d of %d packets forwarded on the outside port as the first one was", forwarded, runs)
	}
	if n != 0 {
		t.Fatalf("established-flow pipeline: %v allocs per packet", n)
	}
}

// With two SNAT ports and endpoint-dependent mapping, a third flow toward
// the same destination is refused and counted (no port overloading, RFC
// 4787 / RFC 6888 exhaustion), while another destination still gets the
// whole range.
func TestPipelineSNATExhaustion(t *testing.T) { forEachPipeFamily(t, testPipelineSNATExhaustion) }

func testPipelineSNATExhaustion(t *testing.T, fam pipeFamily) {
	tp := fam.newPipeline(t, allowOutbound)
	nat, err := snat.New(snat.Config{Mode: snat.Automap, Automap: fam.snat, Ports: snat.PortRange{Start: 2000, End: 2001},
		Mapping: snat.EndpointDependent}, tp.e.table)
	if err != nil {
		t.Fatal(err)
	}
	tp.e.nat, tp.w.nat = nat, nat.Allocator(0)
	flow := func(cport uint16, dst netip.Addr) []byte {
		return eth(headertest.Spec{Src: fam.client, Dst: dst, Proto: header.ProtoUDP, SrcPort: cport, DstPort: 53}, macClient, macEdgeIn)
	}
	for _, cport := range []uint16{1, 2} {
		if out, r := tp.send(0, flow(cport, fam.server)); out == nil {
			t.Fatalf("flow %d refused: %v", cport, r)
		}
	}
	if out, r := tp.send(0, flow(3, fam.server)); out != nil || r != drop.SNATExhausted {
		t.Fatalf("third flow to one destination: out %v reason %v, want snat_exhausted", out != nil, r)
	}
	tp.e.neigh.store(map[neighKey][6]byte{{1, fam.client.As16()}: macClient, {2, fam.server.As16()}: macServer,
		{2, fam.server2.As16()}: macServer})
	if out, r := tp.send(0, flow(3, fam.server2)); out == nil {
		t.Fatalf("another destination refused: %v", r)
	}
	if got := nat.Stats(); got.Counters[snat.CtrExhausted] == 0 {
		t.Fatalf("exhaustion not counted in snat stats: %+v", got)
	}
}

// The NSX-T incident, packet by packet through the pipeline, in edge's
// default mode and in NSX compatibility mode, with NSX's gateway timers in
// both: an old connection closes, its entry expires, the server's delayed
// FIN arrives, the client reuses the tuple, the server answers its SYN.
func TestPipelineNSXSequence(t *testing.T) { forEachPipeFamily(t, testPipelineNSXSequence) }

func testPipelineNSXSequence(t *testing.T, fam pipeFamily) {
	for _, nsx := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "nsx-compat"}[nsx], func(t *testing.T) {
			allowAll := firewall.RuleSet{Rules: []firewall.Rule{{Name: "any", Action: firewall.Allow}}}
			tp := fam.newPipeline(t, allowAll)
			tp.w.nat, tp.e.nat = nil, nil // firewall only: the tuple is the same on both sides
			if err := tp.e.table.SetPolicy(conntrack.Policy{Profiles: []conntrack.Profile{conntrack.NSXGatewayProfile}, NSXCompat: nsx}); err != nil {
				t.Fatal(err)
			}
			const SYN, ACK, FIN = header.TCPFlagSYN, header.TCPFlagACK, header.TCPFlagFIN
			c2s := func(flags uint8, seq, ack uint32) []byte {
				return eth(headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoTCP, SrcPort: 41000, DstPort: 80,
					Flags: flags, Seq: seq, Ack: ack, Window: 64240}, macClient, macEdgeIn)
			}
			s2c := func(flags uint8, seq, ack uint32) []byte {
				return eth(headertest.Spec{Src: fam.server, Dst: fam.client, Proto: header.ProtoTCP, SrcPort: 80, DstPort: 41000,
					Flags: flags, Seq: seq, Ack: ack, Window: 64240}, macServer, macEdgeOut)
			}
			step := func(name string, in int, frame []byte) (*sent, drop.Reason) {
				out, r := tp.send(in, frame)
				t.Logf("%-28s -> forwarded %v, drop %v", name, out != nil, r)
				return out, r
			}
			// The old connection, opened and closed by the server.
			for _, p := range []struct {
				in    int
				frame []byte
			}{
				{0, c2s(SYN, 100, 0)}, {1, s2c(SYN|ACK, 500, 101)}, {0, c2s(ACK, 101, 501)},
				{1, s2c(FIN|ACK, 501, 101)}, {0, c2s(ACK, 101, 502)}, {0, c2s(FIN|ACK, 101, 502)}, {1, s2c(ACK, 502, 102)},
			} {
				if out, r := tp.send(p.in, p.frame); out == nil {
					t.Fatalf("old connection: dropped (%v)", r)
				}
			}
			tp.now += conntrack.NSXGatewayProfile.TimeWait + conntrack.Second // the entry expires
			_, r := step("delayed FIN of the old flow", 1, s2c(FIN|ACK, 501, 101))
			if !nsx && r != drop.NoState {
				t.Fatalf("default mode: a stray FIN was not dropped as no_state (%v)", r)
			}
			if out, r := step("new SYN, same tuple", 0, c2s(SYN, 90000, 0)); out == nil {
				t.Fatalf("the new SYN was dropped (%v)", r)
			}
			out, r := step("SYN-ACK of the new flow", 1, s2c(SYN|ACK, 70000, 90001))
			if !nsx {
				if out == nil || out.port != 0 {
					t.Fatalf("default mode dropped the SYN-ACK (%v): the incident edge exists to prevent", r)
				}
				if tp.w.ctr.icmp[icmp.PortUnreachable].Load() != 0 {
					t.Fatal("default mode sent an ICMP error")
				}
				if out, r := step("ACK", 0, c2s(ACK, 90001, 70001)); out == nil {
					t.Fatalf("final ACK dropped (%v)", r)
				}
				return
			}
			if r != drop.NSXSynAckOnClosing || out == nil || out.port != 1 {
				t.Fatalf("nsx mode: want the SYN-ACK dropped and an ICMP error to the server; got out %v reason %v", out != nil, r)
			}
			proto, m := ipProtoPayload(out.frame)
			if proto != fam.icmp || len(m) < 2 || m[0] != fam.unreachable || m[1] != fam.portUnreachable || ipDst(out.frame) != fam.server {
				t.Fatalf("nsx mode answer is not ICMP port unreachable (%d/%d) to the server: %x", fam.unreachable, fam.portUnreachable, out.frame)
			}
			checkGopacket(t, "port unreachable", out.frame)
		})
	}
}

// Rule N2 through the pipeline, in edge's default mode with SNAT: whatever
// closing state the old connection's entry is in (FIN_WAIT, CLOSE_WAIT,
// LAST_ACK, TIME_WAIT, CLOSE), the client's new SYN on the same tuple and
// the server's SYN-ACK acknowledging its ISN+1 are forwarded, translated,
// and no ICMP error is ever sent. Two orders:
//
//   - reuse after close: the entry is closing, the server's stray FIN of
//     the old connection arrives, then the new SYN, then its SYN-ACK;
//   - noted SYN: the new SYN arrives while the old connection is still
//     established (noted, syn_on_open), the old connection's close then
//     moves the entry to a closing state, then the SYN-ACK of the noted
//     SYN arrives (RST: the server resets the old connection first).
func TestPipelineSynAckOnClosing(t *testing.T) { forEachPipeFamily(t, testPipelineSynAckOnClosing) }

func testPipelineSynAckOnClosing(t *testing.T, fam pipeFamily) {
	const SYN, ACK, FIN, RST = header.TCPFlagSYN, header.TCPFlagACK, header.TCPFlagFIN, header.TCPFlagRST
	const oldISN, srvISN, newISN, newSrvISN = 100, 500, 90000, 70000
	type seg struct {
		in       int // 0: from the client, 1: from the server
		flags    uint8
		seq, ack uint32
	}
	// Segments of the old connection after its handshake that take the
	// entry to each closing state (the server closes first).
	closes := []struct {
		state conntrack.State
		segs  []seg
	}{
		{conntrack.TCPFinWait, []seg{{1, FIN | ACK, srvISN + 1, oldISN + 1}}},
		{conntrack.TCPCloseWait, []seg{{1, FIN | ACK, srvISN + 1, oldISN + 1}, {0, ACK, oldISN + 1, srvISN + 2}}},
		{conntrack.TCPLastAck, []seg{{1, FIN | ACK, srvISN + 1, oldISN + 1}, {0, ACK, oldISN + 1, srvISN + 2},
			{0, FIN | ACK, oldISN + 1, srvISN + 2}}},
		{conntrack.TCPTimeWait, []seg{{1, FIN | ACK, srvISN + 1, oldISN + 1}, {0, ACK, oldISN + 1, srvISN + 2},
			{0, FIN | ACK, oldISN + 1, srvISN + 2}, {1, ACK, srvISN + 2, oldISN + 2}}},
		{conntrack.TCPClose, []seg{{1, RST, srvISN + 1, 0}}},
	}
	for _, order := range []string{"reuse-after-close", "noted-syn"} {
		for _, cl := range closes {
			t.Run(order+"/"+cl.state.String(), func(t *testing.T) {
				tp := fam.newPipeline(t, allowOutbound)
				const cport = 42000
				orig := conntrack.MakeKey(header.ProtoTCP, netip.AddrPortFrom(fam.client, cport), netip.AddrPortFrom(fam.server, 80))
				var nport uint16 // the SNAT port, once the flow exists
				spec := func(s seg, translated bool) headertest.Spec {
					sp := headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoTCP, SrcPort: cport, DstPort: 80,
						Flags: s.flags, Seq: s.seq, Ack: s.ack, Window: 64240}
					if s.in == 1 {
						sp.Src, sp.Dst, sp.SrcPort, sp.DstPort = fam.server, fam.client, 80, cport
					}
					if translated { // as it travels outside
						if s.in == 0 {
							sp.Src, sp.SrcPort = fam.snat, nport
						} else {
							sp.Dst, sp.DstPort = fam.snat, nport
						}
					}
					return sp
				}
				// frame is s as it arrives at edge.
				frame := func(s seg) []byte {
					if s.in == 0 {
						return eth(spec(s, false), macClient, macEdgeIn)
					}
					return eth(spec(s, true), macServer, macEdgeOut)
				}
				// forwarded is s as edge must forward it: translated on the
				// way out, untranslated on the way in, TTL one lower.
				forwarded := func(s seg) (int, []byte) {
					sp := spec(s, s.in == 0)
					sp.TTL = 63
					if s.in == 0 {
						return 1, eth(sp, macEdgeOut, macServer)
					}
					return 0, eth(sp, macEdgeIn, macClient)
				}
				noICMP := func(step string, out *sent) {
					t.Helper()
					if out != nil {
						if proto, _ := ipProtoPayload(out.frame); proto != header.ProtoTCP {
							t.Fatalf("%s: edge sent %x, not the TCP segment", step, out.frame)
						}
					}
					for k := range tp.w.ctr.icmp {
						if n := tp.w.ctr.icmp[k].Load(); n != 0 {
							t.Fatalf("%s: %d ICMP %v sent in default mode", step, n, icmp.Kind(k))
						}
					}
				}
				mustForward := func(step string, s seg) {
					t.Helper()
					out, r := tp.send(s.in, frame(s))
					noICMP(step, out)
					if out == nil || r != drop.None {
						t.Fatalf("%s: dropped (%v)", step, r)
					}
					if nport == 0 {
						nport = tp.natPort(orig)
					}
					port, want := forwarded(s)
					if out.port != port || !bytes.Equal(out.frame, want) {
						t.Fatalf("%s: out on port %d\n got %x\nwant %x", step, out.port, out.frame, want)
					}
					checkGopacket(t, step, out.frame)
				}
				state := func() conntrack.FlowInfo {
					t.Helper()
					r, _, ok := tp.w.shard.Lookup(&orig, tp.now)
					if !ok {
						t.Fatal("the flow is gone")
					}
					return tp.w.shard.Info(r, tp.now)
				}

				mustForward("old SYN", seg{0, SYN, oldISN, 0})
				oldPort := nport
				mustForward("old SYN-ACK", seg{1, SYN | ACK, srvISN, oldISN + 1})
				mustForward("old ACK", seg{0, ACK, oldISN + 1, srvISN + 1})
				newSYN := seg{0, SYN, newISN, 0}
				if order == "noted-syn" {
					mustForward("new SYN on the established entry", newSYN)
					if fi := state(); !fi.Pending {
						t.Fatalf("the new SYN was not noted: %+v", fi)
					}
				}
				for i, s := range cl.segs {
					mustForward("old connection closing, segment "+strconv.Itoa(i), s)
				}
				if fi := state(); fi.State != cl.state || fi.Gen != 0 {
					t.Fatalf("entry in %v gen %d, want %v gen 0 (the test did not reach the state it is about)", fi.State, fi.Gen, cl.state)
				}
				if order == "reuse-after-close" {
					// The server's FIN of the old connection, repeated late:
					// forwarded or dropped, never answered.
					out, _ := tp.send(1, frame(seg{1, FIN | ACK, srvISN + 1, oldISN + 1}))
					noICMP("stray FIN of the old connection", out)
					mustForward("new SYN, same tuple", newSYN)
				}
				if nport != oldPort {
					t.Fatalf("the new incarnation changed SNAT port %d -> %d", oldPort, nport)
				}
				mustForward("SYN-ACK acking the new ISN+1", seg{1, SYN | ACK, newSrvISN, newISN + 1})
				mustForward("final ACK", seg{0, ACK, newISN + 1, newSrvISN + 1})
				if fi := state(); fi.State != conntrack.TCPEstablished || fi.Gen != 1 || fi.ISN != [2]uint32{newISN, newSrvISN} {
					t.Fatalf("after the new handshake: %v gen %d ISNs %v; want ESTABLISHED gen 1 ISNs [%d %d]",
						fi.State, fi.Gen, fi.ISN, newISN, newSrvISN)
				}
			})
		}
	}
}

// Two packets of a new flow in one RX batch (a QUIC Initial pair, a DNS
// burst): the second must meet the flow the first created, not race it.
func TestPipelineNewFlowTwiceInOneBatch(t *testing.T) {
	forEachPipeFamily(t, testPipelineNewFlowTwiceInOneBatch)
}

func testPipelineNewFlowTwiceInOneBatch(t *testing.T, fam pipeFamily) {
	tp := fam.newPipeline(t, allowOutbound)
	d := eth(headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoUDP, SrcPort: 4433, DstPort: 443,
		Payload: []byte("initial")}, macClient, macEdgeIn)
	frames := [][]byte{append([]byte(nil), d...), append([]byte(nil), d...)}
	tp.out = tp.out[:0]
	tp.w.pipeline(0, frames, tp.now)
	tp.w.transmit(1)
	if len(tp.out) != 2 {
		t.Fatalf("%d of 2 datagrams forwarded; drops %v", len(tp.out), tp.w.drops)
	}
	if !bytes.Equal(tp.out[0].frame, tp.out[1].frame) {
		t.Fatalf("the two datagrams left differently translated:\n%x\n%x", tp.out[0].frame, tp.out[1].frame)
	}
	if tp.e.table.Len() != 1 {
		t.Fatalf("%d flows, want 1", tp.e.table.Len())
	}
}

// A rule with log set records each flow's first packet; others do not.
func TestPipelineRuleLog(t *testing.T) {
	rules := firewall.RuleSet{Rules: []firewall.Rule{
		{Name: "dns-logged", Zone: firewall.Inside, Proto: header.ProtoUDP, DstPorts: []firewall.PortRange{{Lo: 53, Hi: 53}}, Action: firewall.Allow, Log: true},
		{Name: "outbound", Zone: firewall.Inside, Action: firewall.Allow},
	}}
	tp := newTestPipeline(t, rules, 1024)
	udp := func(dport uint16) []byte {
		return eth(headertest.Spec{Src: ipClient, Dst: ipServer, Proto: header.ProtoUDP, SrcPort: 5000 + dport, DstPort: dport}, macClient, macEdgeIn)
	}
	tp.send(0, udp(53))
	tp.send(0, udp(53)) // same flow: not logged again
	tp.send(0, udp(123))
	var logs [8]RuleLog
	n := tp.e.ReadRuleLogs(logs[:])
	if n != 1 || tp.e.RuleName(logs[0].Rule) != "dns-logged" || logs[0].Key.DstPort != 53 || logs[0].Action != firewall.Allow {
		t.Fatalf("rule log: %d records %+v", n, logs[:n])
	}
}
