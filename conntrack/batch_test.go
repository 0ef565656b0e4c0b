package conntrack

import (
	"hash/maphash"
	"math/rand/v2"
	"testing"
)

// TrackBatch must give exactly the verdicts and leave exactly the state that
// Track packet by packet does, including when a packet early in a batch
// releases a flow (expired, replaced) and shifts index entries under later
// packets of the same batch.
func TestTrackBatchEqualsTrack(t *testing.T) {
	seed := maphash.MakeSeed()
	mk := func() (*Table, *Shard) {
		tb, err := New(Config{MaxFlows: 64, Memory: MemoryHeap, HistorySize: 8, EventRingSize: 8})
		if err != nil {
			t.Fatal(err)
		}
		tb.seed = seed // same hashing in both tables
		t.Cleanup(tb.Close)
		return tb, tb.Shard(0)
	}
	ta, a := mk()
	tb, b := mk()
	r := rand.New(rand.NewPCG(7, 8))
	now := Second
	const flows = 48 // 96 index entries in 192 slots: long probe runs
	var batch [32]Packet
	var va [32]Verdict
	for round := 0; round < 3000; round++ {
		// Short timers on some flows so expiries land inside batches.
		now += Time(r.IntN(40)) * Second
		for i := range batch {
			j := r.IntN(flows)
			k, rk, _ := synthKey(j, false)
			cisn, sisn := uint32(j)*7919, uint32(j)*104729
			switch r.IntN(6) {
			case 0:
				batch[i] = Packet{Key: k, Flags: SYN, Seq: cisn, Window: 1000, WScale: -1}
			case 1:
				batch[i] = Packet{Key: rk, Flags: SYNACK, Seq: sisn, Ack: cisn + 1, Window: 1000, WScale: -1}
			case 2:
				batch[i] = Packet{Key: k, Flags: RST, Seq: cisn + 1, WScale: -1}
			case 3:
				batch[i] = Packet{Key: rk, Flags: SYN, Seq: sisn, Window: 1000, WScale: -1}
			default:
				batch[i] = Packet{Key: k, Flags: ACK, Seq: cisn + 1, Ack: sisn + 1, Window: 1000, WScale: -1}
			}
		}
		a.TrackBatch(batch[:], va[:], now)
		for i := range batch {
			vb := b.Track(&batch[i], now)
			if va[i] != vb {
				t.Fatalf("round %d packet %d: batch %+v, one by one %+v", round, i, va[i], vb)
			}
		}
		// Open the flows that asked, identically in both tables.
		for i := range batch {
			if va[i].Action == Open {
				x := a.Create(&batch[i], NewFlow{Profile: 0}, now)
				y := b.Create(&batch[i], NewFlow{Profile: 0}, now)
				if x != y {
					t.Fatalf("round %d: create %+v vs %+v", round, x, y)
				}
			}
		}
		if ta.Len() != tb.Len() {
			t.Fatalf("round %d: %d vs %d flows", round, ta.Len(), tb.Len())
		}
	}
	if ta.Stats().Counters[CtrExpired] == 0 || ta.Stats().Counters[CtrReplaced] == 0 {
		t.Fatalf("the test never released a flow mid-batch: %+v", ta.Stats().Counters)
	}
}
