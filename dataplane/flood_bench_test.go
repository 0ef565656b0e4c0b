package dataplane

import (
	"encoding/binary"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/snat"
)

// The SYN flood of bench/synflood.sh without the kernel: a table full of
// young SYN_SENT entries (the flood's own) and SYNs of new flows arriving in
// batches of 32 at 20,000 a second, all toward one server port (so one SNAT
// destination), from inside sources that cycle through their 64,512 source
// ports. Each SYN goes through parse, conntrack (miss), route, firewall, SNAT
// port allocation and Create, which refuses it (table_full, then SNAT
// Abandon) or evicts an entry for it (its SNAT port is then released to
// quarantine) and forwards it; or SNAT refuses it (snat_exhausted) when the
// flood's own flows hold every port toward its destination.

// floodTable is the lab's table size (bench/synflood.sh MAX_FLOWS).
const floodTable = 4096

// floodTemplate is the flood's SYN frame that writeFloodSYN patches.
var floodTemplate = headertest.BuildEth(headertest.Spec{Src: ipClient, Dst: ipServer, Proto: header.ProtoTCP,
	SrcPort: 1024, DstPort: 9, Flags: header.TCPFlagSYN}, macClient, macEdgeIn)

// writeFloodSYN writes SYN number i of the flood toward the server's port 9
// into buf and returns its length: source port 1024 + i mod 64,512, from
// inside host 10.0.0.(2 + i / 64,512 mod 250), so that 16 million SYNs are
// distinct flows. It allocates nothing.
func writeFloodSYN(buf []byte, i int) int {
	n := copy(buf, floodTemplate)
	ip := buf[header.EthernetLen:n]
	ip[15] = byte(2 + (i/64512)%250)
	binary.BigEndian.PutUint16(ip[20:], uint16(1024+i%64512))
	binary.BigEndian.PutUint32(ip[24:], uint32(i)*2654435761)
	headertest.FixChecksums(ip)
	return n
}

// fillSYN is SYN number i of the flows that fill the table first: toward
// ports 10 and up of the server (a port range per SNAT destination is 64,512
// ports; a million flows need many destinations).
func fillSYN(i int) []byte {
	return headertest.BuildEth(headertest.Spec{Src: ipClient, Dst: ipServer, Proto: header.ProtoTCP,
		SrcPort: uint16(1024 + i%60000), DstPort: uint16(10 + i/60000), Flags: header.TCPFlagSYN, Seq: uint32(i)},
		macClient, macEdgeIn)
}

// synFlood is a test pipeline with a full table, and the flood.
type synFlood struct {
	tp    *testPipeline
	next  int // the next flood SYN
	bufs  [32][64]byte
	batch [32][]byte
}

// newSYNFlood fills a table of size flows with SYN_SENT flows.
func newSYNFlood(tb testing.TB, flows int) *synFlood {
	tp := newTestPipeline(tb, allowOutbound, flows)
	tp.w.testTX = func(int, []byte) {}
	f := &synFlood{tp: tp}
	for i := 0; i < flows; i += 32 {
		n := min(32, flows-i)
		for j := 0; j < n; j++ {
			fr := fillSYN(i + j)
			copy(f.bufs[j][:], fr)
			f.batch[j] = f.bufs[j][:len(fr)]
		}
		tp.w.pipeline(0, f.batch[:n], tp.now)
		tp.w.transmit(1)
	}
	tp.w.flush()
	if got := tp.e.table.Len(); got != flows {
		tb.Fatalf("%d flows open, want a full table of %d", got, flows)
	}
	return f
}

// send runs the next 32 flood SYNs through the pipeline as one batch, 1.6
// ms of clock after the previous batch (20,000 SYNs a second), each written
// into a buffer first as a NIC would write it.
func (f *synFlood) send() {
	f.tp.now += 32 * 50_000 // ns
	for j := range f.batch {
		f.batch[j] = f.bufs[j][:writeFloodSYN(f.bufs[j][:], f.next)]
		f.next++
	}
	f.tp.w.pipeline(0, f.batch[:], f.tp.now)
	f.tp.w.transmit(1)
}

// BenchmarkPipelineSYNFloodFullTable is the cost of one flood SYN at a full
// table (the lab's 4,096 flows, in cache, and a million, in DRAM), after 10
// s of flood (200,000 SYNs: the SNAT quarantine toward the flood's
// destination is full by then if evictions release ports). It reports the
// CPU time per SYN (cpu-ns/SYN: the thread's, immune to other processes'
// turns on a shared machine, unlike ns/op) and the slowest batch of 32
// (max-batch-µs): a worker that spends longer on a batch than its RX ring
// lasts (2,048 frames) loses frames.
func BenchmarkPipelineSYNFloodFullTable(b *testing.B) {
	for _, flows := range []int{floodTable, 1 << 20} {
		if testing.Short() && flows > floodTable {
			continue
		}
		b.Run(strconv.Itoa(flows), func(b *testing.B) {
			f := newSYNFlood(b, flows)
			for i := 0; i < 200_000; i += 32 {
				f.send()
			}
			f.tp.w.flush()
			w := f.tp.w
			refused0, created0 := refusals(w), w.ctr.created.Load()
			nat0 := f.tp.e.nat.Stats()
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			// The worst batch in CPU time of this thread: on a shared
			// machine, wall time would count other processes' turns.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var worst, total int64
			for i := 0; i < b.N; i += 32 {
				t0 := threadCPU()
				f.send()
				d := threadCPU() - t0
				worst, total = max(worst, d), total+d
			}
			b.StopTimer()
			w.flush()
			refused, created := refusals(w)-refused0, w.ctr.created.Load()-created0
			if got := f.tp.e.table.Len(); got != flows {
				b.Fatalf("%d flows after the flood, want the table full (%d)", got, flows)
			}
			if refused+created < uint64(b.N) {
				b.Fatalf("%d SYNs refused and %d created for %d sent; drops: %v", refused, created, b.N, dropCounts(w))
			}
			b.ReportMetric(float64(worst)/1e3, "max-batch-µs")
			b.ReportMetric(float64(total)/float64(b.N), "cpu-ns/SYN")
			// SNAT's work: candidate ports looked at per SYN, and linear
			// scans of the port range (after 64 random probes failed).
			nat := f.tp.e.nat.Stats()
			b.ReportMetric(float64(nat.Counters[snat.CtrProbes]-nat0.Counters[snat.CtrProbes])/float64(b.N), "snat-probes/SYN")
			b.ReportMetric(float64(nat.Counters[snat.CtrScans]-nat0.Counters[snat.CtrScans])/float64(b.N)*1e3, "snat-scans/kSYN")
			b.ReportMetric(float64(refused)/float64(b.N), "refused/op")
			b.ReportMetric(float64(created)/float64(b.N), "created/op")
		})
	}
}

// refusals counts the SYNs w refused for want of room: the table's
// (table_full) or SNAT's toward the flood's destination (snat_exhausted).
func refusals(w *worker) uint64 {
	return w.ctr.drops[drop.TableFull].Load() + w.ctr.drops[drop.SNATExhausted].Load()
}

// dropCounts returns w's non-zero drop counters by reason.
func dropCounts(w *worker) map[drop.Reason]uint64 {
	m := map[drop.Reason]uint64{}
	for r := range w.ctr.drops {
		if n := w.ctr.drops[r].Load(); n != 0 {
			m[drop.Reason(r)] = n
		}
	}
	return m
}

// threadCPU returns the CPU time of the calling thread, ns.
func threadCPU() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}

// TestSYNFloodZeroAlloc: a SYN at a full table (refused, or evicting an
// entry) allocates nothing.
func TestSYNFloodZeroAlloc(t *testing.T) {
	f := newSYNFlood(t, floodTable)
	for i := 0; i < 10_000; i += 32 {
		f.send() // past the first round of evictions, if any
	}
	if allocs := testing.AllocsPerRun(100, f.send); allocs != 0 {
		t.Fatalf("%v allocations per batch of 32 flood SYNs, want 0", allocs)
	}
	f.tp.w.flush()
	if n := refusals(f.tp.w) + f.tp.w.ctr.created.Load(); n < 10_000 {
		t.Fatalf("only %d SYNs refused or created", n)
	}
}
