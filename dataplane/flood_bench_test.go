package dataplane

import (
	"runtime"
	"testing"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// The SYN-flood refusal path: a table full of young SYN_SENT entries (the
// flood's own, nothing evictable) and SYNs with new source ports arriving in
// batches of 32, as bench/synflood.sh drives edge in the lab. Each SYN goes
// through parse, conntrack (miss), route, firewall, SNAT port allocation,
// Create (refused: table_full) and SNAT Abandon.

// floodTable is the lab's table size (bench/synflood.sh --max-flows).
const floodTable = 4096

func synFrame(sport uint16) []byte {
	return headertest.BuildEth(headertest.Spec{Src: ipClient, Dst: ipServer, Proto: header.ProtoTCP,
		SrcPort: sport, DstPort: 9, Flags: header.TCPFlagSYN, Seq: uint32(sport) << 8}, macClient, macEdgeIn)
}

// floodPipeline returns a test pipeline whose table is full of SYN_SENT
// flows opened by SYNs from source ports 1024 up, and the frames of
// distinct further SYNs (source ports above those).
func floodPipeline(tb testing.TB) (*testPipeline, [][]byte) {
	tp := newTestPipeline(tb, allowOutbound, floodTable)
	tp.w.testTX = func(int, []byte) {}
	frames := make([][]byte, 1)
	for i := 0; i < floodTable; i++ {
		frames[0] = synFrame(uint16(1024 + i))
		tp.w.pipeline(0, frames, tp.now)
		tp.w.transmit(1)
	}
	tp.w.flush()
	if got := tp.e.table.Len(); got != floodTable {
		tb.Fatalf("%d flows open, want a full table of %d", got, floodTable)
	}
	var syns [][]byte
	for p := 1024 + floodTable; p < 65536; p++ {
		syns = append(syns, synFrame(uint16(p)))
	}
	return tp, syns
}

// floodBatch sends SYNs syns[from:from+32] (wrapping) through the pipeline
// in one batch, copying each into bufs first as a NIC would write it.
func floodBatch(tp *testPipeline, syns [][]byte, from int, bufs *[32][64]byte, batch *[32][]byte) {
	for j := range batch {
		src := syns[(from+j)%len(syns)]
		copy(bufs[j][:], src)
		batch[j] = bufs[j][:len(src)]
	}
	tp.w.pipeline(0, batch[:], tp.now)
	tp.w.transmit(1)
}

// BenchmarkPipelineSYNFloodFullTable is the cost of one refused SYN.
func BenchmarkPipelineSYNFloodFullTable(b *testing.B) {
	tp, syns := floodPipeline(b)
	var bufs [32][64]byte
	var batch [32][]byte
	before := tp.w.ctr.drops[drop.TableFull].Load()
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 32 {
		// 20,000 SYNs a second: 1.6 ms of clock per batch of 32.
		tp.now += 32 * 50_000 // ns
		floodBatch(tp, syns, i, &bufs, &batch)
	}
	b.StopTimer()
	tp.w.flush()
	if refused := tp.w.ctr.drops[drop.TableFull].Load() - before; refused < uint64(b.N) {
		b.Fatalf("%d SYNs refused as table_full for %d sent", refused, b.N)
	}
}

// TestSYNFloodRefusalZeroAlloc: refusing a SYN at a full table allocates
// nothing.
func TestSYNFloodRefusalZeroAlloc(t *testing.T) {
	tp, syns := floodPipeline(t)
	var bufs [32][64]byte
	var batch [32][]byte
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		tp.now += 32 * 50_000 // ns
		floodBatch(tp, syns, i, &bufs, &batch)
		i += 32
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch of refused SYNs, want 0", allocs)
	}
	tp.w.flush()
	if n := tp.w.ctr.drops[drop.TableFull].Load(); n < 100*32 {
		t.Fatalf("%d SYNs refused as table_full, want at least %d", n, 100*32)
	}
}
