package dataplane

import (
	"net/netip"
	"runtime"
	"strconv"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/snat"
)

// Pipeline benchmarks without the kernel: parse, conntrack, firewall (new
// flows), SNAT rewrite with checksums, TTL, route, neighbour, Ethernet
// rewrite, TX queue. Each packet is a 64-byte UDP/IPv4 frame copied from a
// template first (as the NIC would write it), then processed in batches of
// 32; the TX step hands frames to a no-op instead of a socket.

// benchServers spreads flows over 32 servers (SNAT offers the whole port
// range per destination).
const benchServers = 32

func benchServer(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + i%benchServers)})
}

// benchClient spreads flows over 1,024 inside hosts, 1,024 ports each (a
// million flows from a million hosts would measure the neighbour table,
// not the pipeline). They start at 10.0.0.2: 10.0.0.1 is edge's own
// inside address, which no packet from the wire may carry as its source.
func benchClient(i int) (netip.Addr, uint16) {
	h := i%1024 + 2
	return netip.AddrFrom4([4]byte{10, 0, byte(h >> 8), byte(h)}), uint16(1024 + (i/1024)%60000)
}

func udpFrame(src, dst netip.Addr, sport, dport uint16, smac, dmac [6]byte) []byte {
	return headertest.BuildEth(headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoUDP, SrcPort: sport, DstPort: dport,
		Payload: make([]byte, 64-14-20-8)}, smac, dmac)
}

func benchPipeline(b *testing.B, rules firewall.RuleSet, flows int) *testPipeline {
	tp := newTestPipeline(b, rules, flows+flows/4+64)
	tp.w.testTX = func(int, []byte) {}
	rt, err := NewRoutes([]Route{
		{Dst: netip.MustParsePrefix("10.0.0.0/8"), Port: 0},
		{Dst: netip.MustParsePrefix("203.0.113.0/24"), Port: 1},
	}, 2)
	if err != nil {
		b.Fatal(err)
	}
	tp.e.routes.Store(rt)
	m := map[neighKey][6]byte{}
	for i := 0; i < benchServers; i++ {
		m[neighKey{2, benchServer(i).As16()}] = macServer
	}
	for i := 0; i < min(flows, 1024); i++ {
		c, _ := benchClient(i)
		m[neighKey{1, c.As16()}] = macClient
	}
	tp.e.neigh.store(m)
	return tp
}

// BenchmarkPipelineEstablished sends both directions of established UDP
// flows through the pipeline, every flow visited in turn (1 and 1,000 flows
// are bench/pps.sh's first two cells; a million spread over DRAM).
func BenchmarkPipelineEstablished(b *testing.B) {
	for _, flows := range []int{1, 1000, 10_000, 1 << 20} {
		if testing.Short() && flows > 10_000 {
			continue
		}
		b.Run(strconv.Itoa(flows), func(b *testing.B) {
			tp := benchPipeline(b, allowOutbound, flows)
			// A million flows from 1,024 hosts are a million inside
			// endpoints: more than one address maps endpoint-
			// independently (its port range). The established path is
			// the same under either mapping behaviour (the mapping is
			// chosen when the flow opens), so these flows are mapped
			// per destination.
			nat, err := snat.New(snat.Config{Mode: snat.Automap, Automap: ipSNAT, Mapping: snat.EndpointDependent}, tp.e.table)
			if err != nil {
				b.Fatal(err)
			}
			tp.e.nat, tp.w.nat = nat, nat.Allocator(0)
			frames := openBenchFlows(tp, flows)
			if got := tp.e.table.Len(); got != flows {
				b.Fatalf("%d flows open, want %d", got, flows)
			}
			// Visit every flow, in a scattered order, but lay each port's
			// frames out one after another, as a NIC fills its ring:
			// reading the input must not be a cache miss of its own.
			var order [2][][]byte
			for port := range order {
				arena := make([]byte, 0, flows*len(frames[port][0]))
				order[port] = make([][]byte, 0, flows)
				for i := 0; i < flows; i++ {
					f := frames[port][(i*7919)%flows]
					arena = append(arena, f...)
					order[port] = append(order[port], arena[len(arena)-len(f):])
				}
			}
			frames = [2][][]byte{}
			runBatches(b, tp, order, nil)
		})
	}
}

// openBenchFlows opens n established UDP flows through tp's pipeline (a
// datagram from benchClient(i) to benchServer(i)) and returns each flow's
// frames per port: [0] the client's, arriving inside, [1] the server's
// reply to the SNAT address, arriving outside.
func openBenchFlows(tp *testPipeline, n int) (frames [2][][]byte) {
	one := make([][]byte, 1)
	for i := 0; i < n; i++ {
		c, cp := benchClient(i)
		f := udpFrame(c, benchServer(i), cp, 53, macClient, macEdgeIn)
		frames[0] = append(frames[0], f)
		one[0] = append([]byte(nil), f...) // the pipeline rewrites it
		tp.w.pipeline(0, one, tp.now)
		tp.w.transmit(1)
		k := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(c, cp), netip.AddrPortFrom(benchServer(i), 53))
		frames[1] = append(frames[1], udpFrame(benchServer(i), ipSNAT, 53, tp.natPort(k), macServer, macEdgeOut))
	}
	return frames
}

// runBatches is a benchmark's timed part: b.N packets through tp's worker
// in batches of 32, the two ports in turn, each port's frames in order
// (again from the first after the last), each copied into a buffer first
// as a NIC would write it. after (nil: none) runs after each batch. It
// reports the thread's CPU time per packet (cpu-ns/op: unlike ns/op, not
// inflated by other processes' turns on a shared CPU) and fails on any
// drop.
func runBatches(b *testing.B, tp *testPipeline, frames [2][][]byte, after func()) {
	var batch [32][]byte
	var bufs [32][64]byte
	var next [2]int // per port: the next frame
	runtime.GC()    // the setup's garbage is not the pipeline's cost
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := threadCPU()
	for i := 0; i < b.N; i += 32 {
		port := (i / 32) & 1
		for j := range batch {
			src := frames[port][next[port]]
			if next[port]++; next[port] == len(frames[port]) {
				next[port] = 0
			}
			copy(bufs[j][:], src)
			batch[j] = bufs[j][:len(src)]
		}
		tp.w.pipeline(port, batch[:], tp.now)
		tp.w.transmit(0)
		tp.w.transmit(1)
		if after != nil {
			after()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	tp.w.flush()
	noDrops(b, tp.w)
}

// BenchmarkPipelineNewFlow opens flows through 1,000 firewall rules (the
// allowing rule is the last) with SNAT port allocation.
func BenchmarkPipelineNewFlow(b *testing.B) {
	rules := firewall.RuleSet{Default: firewall.Drop}
	for i := 0; i < 999; i++ {
		rules.Rules = append(rules.Rules, firewall.Rule{
			Name: "r" + strconv.Itoa(i), Zone: firewall.Outside, Proto: header.ProtoTCP,
			Dst:      []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)}), 32)},
			DstPorts: []firewall.PortRange{{Lo: uint16(1000 + i), Hi: uint16(1000 + i)}}, Action: firewall.Allow,
		})
	}
	rules.Rules = append(rules.Rules, firewall.Rule{Name: "outbound", Zone: firewall.Inside, Action: firewall.Allow})
	const capacity = 1 << 20
	tp := benchPipeline(b, rules, capacity*3/4)
	// Each flow is a new inside endpoint: a new endpoint-independent
	// mapping (the default), within one address's 64,512 ports.
	const distinct = 1 << 15
	tmpl := make([][]byte, distinct)
	for i := range tmpl {
		c, cp := benchClient(i)
		tmpl[i] = udpFrame(c, benchServer(i), cp, 53, macClient, macEdgeIn)
	}
	var buf [64]byte
	frames := [][]byte{nil}
	runtime.GC()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	// cpu: this thread's CPU time in the timed parts (the expiry between
	// rounds excluded): unlike ns/op, not inflated by other processes'
	// turns on a shared CPU.
	var cpu int64
	cpu0 := threadCPU()
	for i := 0; i < b.N; i++ {
		j := i & (distinct - 1)
		if j == 0 && i > 0 {
			// Let the previous round's flows expire before reusing keys.
			b.StopTimer()
			cpu += threadCPU() - cpu0
			tp.now += conntrack.DefaultProfile.UDPFirst + conntrack.Second
			for tp.w.shard.Expire(tp.now, 1<<20) > 0 {
			}
			cpu0 = threadCPU()
			b.StartTimer()
		}
		copy(buf[:], tmpl[j])
		frames[0] = buf[:len(tmpl[j])]
		tp.w.pipeline(0, frames, tp.now)
		tp.w.transmit(1)
	}
	b.StopTimer()
	cpu += threadCPU() - cpu0
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	tp.w.flush()
	noDrops(b, tp.w)
	if got := tp.w.ctr.created.Load(); got < uint64(min(b.N, distinct)) {
		b.Fatalf("created %d flows for %d packets", got, b.N)
	}
}

func noDrops(b *testing.B, w *worker) {
	for r := range w.ctr.drops {
		if n := w.ctr.drops[r].Load(); n != 0 {
			b.Fatalf("%d packets dropped (%v)", n, drop.Reason(r))
		}
	}
}
