package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/snat"
)

// Golden tests of packet traces: each case sends packets through the test
// pipeline under a trace and compares each record, summarized by
// traceSummary, with the path the packet is known to take.

// traceSummary writes the fields of r a test checks, in a fixed order
// (time, session and worker aside).
func traceSummary(r *TraceRecord) string {
	var b strings.Builder
	ap := func(a [16]byte, port uint16) string {
		return netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), port).String()
	}
	fmt.Fprintf(&b, "in%d", r.In)
	if r.Looped {
		b.WriteString(" looped")
	}
	fmt.Fprintf(&b, " %s>%s parse=%v", ap(r.Key.Src, r.Key.SrcPort), ap(r.Key.Dst, r.Key.DstPort), r.Parse)
	if r.Tracked {
		before := "none"
		if r.HadFlow {
			before = fmt.Sprintf("%v/%d", r.Before, r.BeforeGen)
		}
		fmt.Fprintf(&b, " %s->%v/%d %v %v", before, r.After, r.Gen, r.Verdict, r.Dir)
	}
	if r.Toward {
		b.WriteString(" toward")
		if r.Orig != (conntrack.Key{}) {
			fmt.Fprintf(&b, "(%s>%s)", ap(r.Orig.Src, r.Orig.SrcPort), ap(r.Orig.Dst, r.Orig.DstPort))
		}
	}
	if r.New {
		fmt.Fprintf(&b, " rule=%d/%v", r.Rule, r.RuleAction)
	}
	if r.NATAddr != ([16]byte{}) {
		fmt.Fprintf(&b, " nat=%s", ap(r.NATAddr, r.NATPort))
	}
	fmt.Fprintf(&b, " %v", r.Action)
	switch r.Action {
	case TraceForwarded, TraceHeld:
		fmt.Fprintf(&b, " out%d via %v", r.Out, netip.AddrFrom16(r.Hop).Unmap())
	case TraceDropped:
		fmt.Fprintf(&b, " %v", r.Drop)
	case TraceHandedOff, TraceHairpinned:
		fmt.Fprintf(&b, " %d", r.Out)
	}
	if r.ICMP != icmp.NoError {
		fmt.Fprintf(&b, " icmp=%v", r.ICMP)
	}
	if r.RST {
		b.WriteString(" rst")
	}
	return b.String()
}

// traceAll reads every record of tr (the test pipeline has published them:
// the ring's Put publishes at once) and returns their summaries.
func traceAll(t *testing.T, tr *Trace) []string {
	t.Helper()
	var recs [64]TraceRecord
	var out []string
	for {
		n := tr.Read(recs[:])
		if n == 0 {
			return out
		}
		for i := range recs[:n] {
			if recs[i].Session != tr.s.id || int(recs[i].Worker) >= len(tr.e.workers) {
				t.Fatalf("record of session %d worker %d", recs[i].Session, recs[i].Worker)
			}
			out = append(out, traceSummary(&recs[i]))
		}
	}
}

func startTrace(t *testing.T, e *Engine, spec TraceSpec) *Trace {
	t.Helper()
	tr, err := e.StartTrace(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Stop)
	return tr
}

func wantTrace(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s: trace\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func tcpSpec(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, flags uint8, seq, ack uint32, ttl uint8) headertest.Spec {
	return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoTCP, SrcPort: sport, DstPort: dport,
		Flags: flags, Seq: seq, Ack: ack, Window: 64240, TTL: ttl}
}

func addrFilter(a netip.Addr) conntrack.Filter {
	return conntrack.Filter{Prefix: netip.PrefixFrom(a, a.BitLen())}
}

// A new TCP flow from the inside, its reply from the outside (matched by
// the inside host's address through its flow: the packet itself is
// addressed to the SNAT address), the handshake's last ACK, a packet
// another host sends (not matched), an unsolicited inbound SYN (the
// default rule drops it) and a packet whose TTL runs out (ICMP time
// exceeded, no rule consulted: nothing is opened for it), and a new flow
// whose next hop's address is not known yet (the flow is made, the packet
// dropped).
func TestTraceGolden(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	const SYN, ACK = header.TCPFlagSYN, header.TCPFlagACK
	tr := startTrace(t, tp.e, TraceSpec{Filter: addrFilter(ipClient)})

	tp.send(0, eth(tcpSpec(ipClient, 40000, ipServer, 80, SYN, 1000, 0, 64), macClient, macEdgeIn))
	port := tp.natPort(conntrack.MakeKey(header.ProtoTCP, netip.AddrPortFrom(ipClient, 40000), netip.AddrPortFrom(ipServer, 80)))
	nat := fmt.Sprintf("203.0.113.1:%d", port)
	wantTrace(t, "SYN", traceAll(t, tr),
		"in0 10.0.0.2:40000>203.0.113.2:80 parse=none none->SYN_SENT/0 open original rule=0/allow nat="+nat+" forwarded out1 via 203.0.113.2")

	tp.send(1, eth(tcpSpec(ipServer, 80, ipSNAT, port, SYN|ACK, 5000, 1001, 64), macServer, macEdgeOut))
	tp.send(0, eth(tcpSpec(ipClient, 40000, ipServer, 80, ACK, 1001, 5001, 64), macClient, macEdgeIn))
	tp.send(0, eth(tcpSpec(ipClientB, 40000, ipServer, 80, ACK, 1, 1, 64), macHostB, macEdgeIn))
	wantTrace(t, "established", traceAll(t, tr),
		"in1 203.0.113.2:80>"+nat+" parse=none SYN_SENT/0->SYN_RECV/0 forward reply nat="+nat+" forwarded out0 via 10.0.0.2",
		"in0 10.0.0.2:40000>203.0.113.2:80 parse=none SYN_RECV/0->ESTABLISHED/0 forward original nat="+nat+" forwarded out1 via 203.0.113.2")

	tr.Stop()
	tr = startTrace(t, tp.e, TraceSpec{Filter: conntrack.Filter{Port: 22}})
	tp.send(1, eth(tcpSpec(ipServer, 80, ipSNAT, 22, SYN, 1, 0, 64), macServer, macEdgeOut))
	tp.send(0, eth(tcpSpec(ipClient, 40001, ipServer, 22, SYN, 1, 0, 1), macClient, macEdgeIn))
	tp.send(0, eth(tcpSpec(ipClient, 40002, ipFar, 22, SYN, 1, 0, 64), macClient, macEdgeIn))
	wantTrace(t, "drops", traceAll(t, tr),
		"in1 203.0.113.2:80>203.0.113.1:22 parse=none none->NONE/0 open original rule=-1/drop dropped firewall_drop",
		"in0 10.0.0.2:40001>203.0.113.2:22 parse=none none->NONE/0 open original dropped ttl_exceeded icmp=time_exceeded",
		"in0 10.0.0.2:40002>198.51.100.7:22 parse=none none->SYN_SENT/0 open original rule=0/allow nat=203.0.113.1:40002 held out1 via 203.0.113.9")
}

// A hairpinned datagram (A to B's mapping) traced twice: where it leaves
// A's flow toward the loop, and where it comes back from the outside
// toward B's mapping, admitted as B's flow.
func TestTraceHairpin(t *testing.T) {
	tp := natPipeline(t, snat.Config{})
	pa := tp.mapping(ipClient, macClient, 5000, ipServer, 3478)
	pb := tp.mapping(ipClientB, macHostB, 6000, ipServer, 3478)
	tr := startTrace(t, tp.e, TraceSpec{Filter: conntrack.Filter{Proto: header.ProtoUDP}})
	out, r := tp.send(0, eth(natUDP(ipClient, 5000, ipSNAT, pb, 64), macClient, macEdgeIn))
	if out == nil {
		t.Fatalf("hairpin dropped: %v", r)
	}
	a, b := fmt.Sprintf("203.0.113.1:%d", pa), fmt.Sprintf("203.0.113.1:%d", pb)
	wantTrace(t, "hairpin", traceAll(t, tr),
		"in0 10.0.0.2:5000>"+b+" parse=none none->UDP_FIRST/0 open original rule=0/allow nat="+a+" hairpinned 1",
		"in1 looped "+a+">"+b+" parse=none none->UDP_FIRST/0 open reply toward(10.0.0.3:6000>"+a+") rule=0/allow nat="+b+" forwarded out0 via 10.0.0.3")
}

// A datagram from the outside that the mapping's filter refuses (traced by
// its source: a refused datagram has no inside endpoint's flow to match),
// then one it lets in, traced under the inside host's address (the packet
// itself is addressed to the SNAT address).
func TestTraceNATFiltered(t *testing.T) {
	tp := natPipeline(t, snat.Config{})
	ext := tp.mapping(ipClient, macClient, 40000, ipServer, 3478)
	tr := startTrace(t, tp.e, TraceSpec{Filter: addrFilter(ipServer)})
	tp.send(1, eth(natUDP(ipServer, 3479, ipSNAT, ext, 64), macServer, macEdgeOut))
	wantTrace(t, "filtered", traceAll(t, tr),
		fmt.Sprintf("in1 203.0.113.2:3479>203.0.113.1:%d parse=none none->NONE/0 open original toward dropped snat_filtered", ext))
	tr.Stop()

	tp2 := natPipeline(t, snat.Config{Filtering: snat.EndpointIndependentFiltering})
	ext = tp2.mapping(ipClient, macClient, 40000, ipServer, 3478)
	tr = startTrace(t, tp2.e, TraceSpec{Filter: addrFilter(ipClient)})
	tp2.send(1, eth(natUDP(ipServer2, 3479, ipSNAT, ext, 64), macServer, macEdgeOut))
	wantTrace(t, "admitted", traceAll(t, tr),
		fmt.Sprintf("in1 203.0.113.3:3479>203.0.113.1:%d parse=none none->UDP_FIRST/0 open reply toward(10.0.0.2:40000>203.0.113.3:3479) rule=0/allow nat=203.0.113.1:%d forwarded out0 via 10.0.0.2", ext, ext))
}

// Two workers: a datagram whose flow the other worker owns is traced where
// it arrived (handed off) and where it was decided.
func TestTraceHandOff(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	e, w0 := tp.e, tp.w
	table, err := conntrack.New(conntrack.Config{MaxFlows: 1024, Shards: 2, HistorySize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(table.Close)
	if e.nat, err = snat.New(snat.Config{Mode: snat.Automap, Automap: ipSNAT}, table); err != nil {
		t.Fatal(err)
	}
	e.table, w0.env.table, w0.shard, w0.nat = table, table, table.Shard(0), e.nat.Allocator(0)
	w1 := newWorker(e, 1)
	w1.nat, w1.ports, w1.testTX = e.nat.Allocator(1), w0.ports, w0.testTX
	e.workers = []*worker{w0, w1}
	h01, h10 := newHandoff(loopSlots), newHandoff(loopSlots)
	w0.outbox, w0.inbox = []*handoff{w0.outbox[0], h01}, []*handoff{w0.inbox[0], h10}
	loop1 := newHandoff(loopSlots)
	w1.outbox, w1.inbox = []*handoff{h10, loop1}, []*handoff{h01, loop1}
	sport := uint16(40000)
	for {
		k := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, sport), netip.AddrPortFrom(ipServer, 53))
		// Worker 1 owns the flow, and the inside port is kept: its
		// external endpoint lands on worker 1 too.
		nat := ipSNAT.As16()
		if table.ShardOfSrc(&k) == 1 && table.ShardOfEndpoint(&nat, sport, header.ProtoUDP, 0) == 1 {
			break
		}
		sport++
	}
	tr := startTrace(t, e, TraceSpec{Filter: addrFilter(ipClient)})
	w0.pipeline(0, [][]byte{eth(natUDP(ipClient, sport, ipServer, 53, 64), macClient, macEdgeIn)}, tp.now)
	w1.drainInbox(tp.now)
	w1.transmit(1)
	h01.release(w1.taken[0])
	if len(tp.out) != 1 || tp.out[0].port != 1 {
		t.Fatalf("%d frames out", len(tp.out))
	}
	var recs [4]TraceRecord
	if n := tr.Read(recs[:]); n != 2 || recs[0].Worker != 0 || recs[1].Worker != 1 {
		t.Fatalf("%d records: %+v", n, recs[:n])
	}
	a := fmt.Sprintf("10.0.0.2:%d>203.0.113.2:53", sport)
	wantTrace(t, "hand-off", []string{traceSummary(&recs[0]), traceSummary(&recs[1])},
		"in0 "+a+" parse=none handed_off 1",
		fmt.Sprintf("in0 %s parse=none none->UDP_FIRST/0 open original rule=0/allow nat=203.0.113.1:%d forwarded out1 via 203.0.113.2", a, sport))
}

// Count bounds a trace; one trace at a time; a stopped trace's records do
// not reach the next; a full ring loses records and counts them.
func TestTraceBounds(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	frame := func(sport uint16) []byte {
		return eth(natUDP(ipClient, sport, ipServer, 53, 64), macClient, macEdgeIn)
	}
	tr := startTrace(t, tp.e, TraceSpec{Count: 2})
	if _, err := tp.e.StartTrace(TraceSpec{}); !errors.Is(err, ErrTraceBusy) {
		t.Fatalf("second trace: %v, want ErrTraceBusy", err)
	}
	for i := range 4 {
		tp.send(0, frame(1000+uint16(i)))
	}
	if got := traceAll(t, tr); len(got) != 2 || !tr.Done() {
		t.Fatalf("count 2: %d records, done %v", len(got), tr.Done())
	}
	tr.Stop()

	tr = startTrace(t, tp.e, TraceSpec{})
	tp.send(0, frame(2000))
	tr.Stop() // its record stays in the ring, unread
	tr = startTrace(t, tp.e, TraceSpec{Filter: conntrack.Filter{Port: 2001}})
	tp.send(0, frame(2000)) // not matched
	tp.send(0, frame(2001))
	if got := traceAll(t, tr); len(got) != 1 || !strings.Contains(got[0], ":2001>") {
		t.Fatalf("new trace read %q", got)
	}
	for i := range traceRingSize + 3 {
		tp.send(0, frame(2001))
		_ = i
	}
	if n := len(traceAll(t, tr)); n != traceRingSize || tr.Lost() != 3 {
		t.Fatalf("full ring: %d records, %d lost; want %d, 3", n, tr.Lost(), traceRingSize)
	}
	if _, err := tp.e.StartTrace(TraceSpec{Filter: conntrack.Filter{State: conntrack.TCPEstablished}}); err == nil {
		t.Fatal("a trace filtered by state was started")
	}
}

// The pipeline allocates nothing per packet, with no trace and with one
// recording every packet (established UDP both ways, a hairpin).
func TestTraceZeroAllocs(t *testing.T) {
	tp := natPipeline(t, snat.Config{})
	pa := tp.mapping(ipClient, macClient, 5000, ipServer, 3478)
	pb := tp.mapping(ipClientB, macHostB, 6000, ipServer, 3478)
	tp.w.testTX = func(int, []byte) {}
	templates := [][2]any{
		{0, eth(natUDP(ipClient, 5000, ipServer, 3478, 64), macClient, macEdgeIn)},
		{1, eth(natUDP(ipServer, 3478, ipSNAT, pa, 64), macServer, macEdgeOut)},
		{0, eth(natUDP(ipClient, 5000, ipSNAT, pb, 64), macClient, macEdgeIn)},
	}
	frames := [][]byte{make([]byte, 128)}
	var recs [16]TraceRecord
	var tr *Trace
	read := 0
	run := func() {
		for _, tm := range templates {
			f := tm[1].([]byte)
			frames[0] = frames[0][:copy(frames[0][:cap(frames[0])], f)]
			tp.w.pipeline(tm[0].(int), frames, tp.now)
			tp.w.drainInbox(tp.now)
			tp.w.transmit(0)
			tp.w.transmit(1)
			tp.w.inbox[0].release(tp.w.taken[0])
			tp.w.taken[0] = 0
		}
		if tr != nil {
			for n := tr.Read(recs[:]); n > 0; n = tr.Read(recs[:]) {
				read += n
			}
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("no trace: %v allocs per run", n)
	}
	tr = startTrace(t, tp.e, TraceSpec{})
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("tracing: %v allocs per run", n)
	}
	// Four records per run (the hairpin makes two), none lost.
	if want := 4 * 102; read != want || tr.Lost() != 0 {
		t.Fatalf("%d records read, %d lost; want %d, 0", read, tr.Lost(), want)
	}
}

// BenchmarkPipelineTrace: established UDP flows (1,000, both directions,
// batches of 32) with no trace, with a trace no packet matches (every
// packet matched and looked up once more) and with one recording every
// packet (the ring read every batch).
func BenchmarkPipelineTrace(b *testing.B) {
	const flows = 1000
	for _, mode := range []string{"off", "on-nomatch", "on-all"} {
		b.Run(mode, func(b *testing.B) {
			tp := benchPipeline(b, allowOutbound, flows)
			frames := openBenchFlows(tp, flows)
			var tr *Trace
			if mode != "off" {
				spec := TraceSpec{}
				if mode == "on-nomatch" {
					spec.Filter.Port = 1
				}
				var err error
				if tr, err = tp.e.StartTrace(spec); err != nil {
					b.Fatal(err)
				}
				defer tr.Stop()
			}
			var recs [64]TraceRecord
			runBatches(b, tp, frames, func() {
				if tr != nil {
					for tr.Read(recs[:]) > 0 {
					}
				}
			})
		})
	}
}
