package conntrack

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// synthetic flows for benchmarks and allocation tests: flow i is
// 10.(i>>16).(i>>8).i:(1024+i%50000) -> 192.0.2.(i%200):80, untranslated, or
// translated to snatAddr with port (i % 60000)+1024 when nat is set (then the
// server address varies with i/60000 so reply keys stay unique).
type synth struct {
	n    int
	nat  uint16
	orig []Packet // pure ACKs, original direction
	rep  []Packet // pure ACKs, reply direction
}

var snat16 = snatAddr.As16()

// synthKey builds the keys of synthetic flow i with 8-byte stores (as Parse
// does), so reading them back is not a store-forwarding stall.
func synthKey(i int, nat bool) (orig, reply Key, natPort uint16) {
	var k Key
	k.Proto = header.ProtoTCP
	binary.BigEndian.PutUint64(k.Src[8:], 0xffff<<32|uint64(10<<24|uint32(i)&0xffffff))
	srv := i % 200
	if nat {
		srv = i / 60000
	}
	binary.BigEndian.PutUint64(k.Dst[8:], 0xffff<<32|uint64(192<<24|uint32(srv)&0xffff))
	k.SrcPort = uint16(1024 + i%50000)
	k.DstPort = 80
	reply = k.Reverse()
	if nat {
		natPort = uint16(i%60000) + 1024
		reply.Dst = snat16
		reply.DstPort = natPort
	}
	return k, reply, natPort
}

// establish creates n established TCP flows in shard s (owner goroutine).
func establish(tb testing.TB, t *Table, s *Shard, n int, nat bool, now Time) *synth {
	sy := &synth{n: n, orig: make([]Packet, n), rep: make([]Packet, n)}
	if nat {
		var err error
		if sy.nat, err = t.InternAddr(snatAddr); err != nil {
			tb.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		ok, rk, port := synthKey(i, nat)
		cisn, sisn := uint32(i)*7919, uint32(i)*104729
		syn := Packet{Key: ok, Flags: SYN, Seq: cisn, Window: 65535, WScale: 7}
		if v := s.Track(&syn, now); v.Action != Open {
			tb.Fatalf("flow %d: SYN %+v", i, v)
		}
		if v := s.Create(&syn, NewFlow{NAT: Translation{Addr: sy.nat, Port: port}}, now); v.Action != Forward {
			tb.Fatalf("flow %d: create %+v", i, v)
		}
		synack := Packet{Key: rk, Flags: SYNACK, Seq: sisn, Ack: cisn + 1, Window: 65535, WScale: 7}
		if v := s.Track(&synack, now); v.Action != Forward {
			tb.Fatalf("flow %d: SYN-ACK %+v", i, v)
		}
		sy.orig[i] = Packet{Key: ok, Flags: ACK, Seq: cisn + 1, Ack: sisn + 1, Window: 512, WScale: -1}
		sy.rep[i] = Packet{Key: rk, Flags: ACK, Seq: sisn + 1, Ack: cisn + 1, Window: 512, WScale: -1}
		if v := s.Track(&sy.orig[i], now); v.State != TCPEstablished {
			tb.Fatalf("flow %d: ACK %+v", i, v)
		}
	}
	return sy
}

// batchOrder returns size packets of random flows, alternating directions
// (for batch benchmarks and tests, where the packets are input data).
func (sy *synth) batchOrder(seed uint64, size int) []Packet {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]Packet, size)
	for i := range out {
		j := r.IntN(sy.n)
		if i&1 == 0 {
			out[i] = sy.orig[j]
		} else {
			out[i] = sy.rep[j]
		}
	}
	return out
}

func benchTable(b *testing.B, flows, shards int) *Table {
	// Leave headroom so the table is not at its maximum load factor.
	t, err := New(Config{MaxFlows: flows + flows/4 + 64*shards, Shards: shards, HistorySize: 1024})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(t.Close)
	return t
}

var sizes = []struct {
	name string
	n    int
}{{"1k", 1000}, {"10k", 10_000}, {"1M", 1 << 20}, {"16M", 16 << 20}}

// BenchmarkTrackEstablished measures lookup + TCP update of an established
// flow (pure ACKs, both directions, random flows) at several table sizes,
// one packet at a time and in batches of 32. The packets are read in order
// from a pre-built stream of 64k (random flows), as a worker reads its RX
// ring: sequential, so the stream itself costs no cache misses.
// -short skips 16M.
func BenchmarkTrackEstablished(b *testing.B) {
	for _, sz := range sizes {
		if testing.Short() && sz.n > 1<<20 {
			continue
		}
		for _, nat := range []bool{false, true} {
			if nat && sz.n > 1<<20 {
				continue
			}
			name := sz.name
			if nat {
				name += "/snat"
			}
			var (
				once sync.Once
				t    *Table
				pk   []Packet
			)
			parent := b
			setup := func(b *testing.B) {
				// Built once per size, owned by the parent benchmark (a
				// sub-benchmark's cleanups run after each of its rounds).
				once.Do(func() {
					t = benchTable(parent, sz.n, 1)
					sy := establish(b, t, t.Shard(0), sz.n, nat, Second)
					pk = sy.batchOrder(1, 1<<16)
				})
			}
			b.Run(name+"/single", func(b *testing.B) {
				setup(b)
				s := t.Shard(0)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if v := s.Track(&pk[i&(len(pk)-1)], 2*Second); v.Action != Forward {
						b.Fatalf("%+v", v)
					}
				}
			})
			b.Run(name+"/batch32", func(b *testing.B) {
				setup(b)
				s := t.Shard(0)
				var out [32]Verdict
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := threadCPU()
				for i := 0; i < b.N; i += 32 {
					off := i & (len(pk) - 1)
					s.TrackBatch(pk[off:off+32], out[:], 2*Second)
				}
				b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// BenchmarkCreate measures opening a new TCP flow: the Track miss plus
// Create with SNAT, in a table of 16k slots (cache-resident) and of 1M
// (index and records in DRAM). The table is kept below 3/4 full: whenever it
// gets there, the clock moves past the SYN_SENT timeout and the expired
// flows are swept, outside the timed region.
func BenchmarkCreate(b *testing.B) {
	for _, capacity := range []int{16 << 10, 1 << 20} {
		b.Run(strconv.Itoa(capacity>>10)+"k", func(b *testing.B) {
			t, err := New(Config{MaxFlows: capacity, HistorySize: 1024})
			if err != nil {
				b.Fatal(err)
			}
			defer t.Close()
			s := t.Shard(0)
			nat, _ := t.InternAddr(snatAddr)
			pk := make([]Packet, 1<<16)
			for i := range pk {
				k, _, _ := synthKey(i, true)
				pk[i] = Packet{Key: k, Flags: SYN, Seq: uint32(i), Window: 65535, WScale: 7}
			}
			now := Second
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				j := i & (len(pk) - 1)
				if j == 0 || s.Len() >= capacity*3/4 {
					b.StopTimer()
					now += DefaultProfile.SynSent + Second
					for s.Expire(now, 1<<20) > 0 {
					}
					var ev [256]Event
					for t.ReadEvents(ev[:]) > 0 {
					}
					b.StartTimer()
				}
				p := &pk[j]
				if v := s.Track(p, now); v.Action != Open {
					b.Fatalf("%d: %+v", i, v)
				}
				port := uint16(j%60000) + 1024
				if v := s.Create(p, NewFlow{NAT: Translation{Addr: nat, Port: port}}, now); v.Action != Forward {
					b.Fatalf("%d: %+v", i, v)
				}
			}
		})
	}
}

// BenchmarkParse measures Parse of a TCP/IPv4 and a TCP/IPv6 segment.
func BenchmarkParse(b *testing.B) {
	for _, tc := range []struct {
		name string
		spec headertest.Spec
	}{
		{"tcp4", headertest.Spec{Src: client, Dst: server, Proto: header.ProtoTCP, SrcPort: 1, DstPort: 2, Flags: ACK, Payload: make([]byte, 18)}},
		{"tcp6", headertest.Spec{Src: client6, Dst: server6, Proto: header.ProtoTCP, SrcPort: 1, DstPort: 2, Flags: ACK, Payload: make([]byte, 18)}},
		{"syn4-options", headertest.Spec{Src: client, Dst: server, Proto: header.ProtoTCP, SrcPort: 1, DstPort: 2, Flags: SYN, MSS: 1460, HasWScale: true, WScale: 7, SACKPerm: true}},
	} {
		raw := headertest.Build(tc.spec)
		b.Run(tc.name, func(b *testing.B) {
			var p Packet
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if r := Parse(raw, 0, &p); r != drop.None {
					b.Fatal(r)
				}
			}
		})
	}
}

// BenchmarkWorkers measures aggregate established-flow throughput with one
// and two workers, each owning its shard (100k flows per shard, batches of
// 32). On a 2-vCPU machine two workers can at best double one.
func BenchmarkWorkers(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(strconv.Itoa(workers), func(b *testing.B) {
			const per = 100_000
			t := benchTable(b, per*workers, workers)
			pks := make([][]Packet, workers)
			for w := 0; w < workers; w++ {
				sy := establish(b, t, t.Shard(w), per, false, Second)
				pks[w] = sy.batchOrder(uint64(w), 1<<16)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(s *Shard, pk []Packet) {
					defer wg.Done()
					var out [32]Verdict
					for i := 0; i < b.N; i += 32 {
						off := i & (len(pk) - 1)
						s.TrackBatch(pk[off:off+32], out[:], 2*Second)
					}
				}(t.Shard(w), pks[w])
			}
			wg.Wait()
			el := time.Since(start)
			b.ReportMetric(float64(b.N*workers)/el.Seconds()/1e6, "Mpps")
		})
	}
}

// threadCPU returns the CPU time of the calling thread, ns: per-op figures
// from it are not inflated by other processes' turns on a shared CPU.
func threadCPU() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}
