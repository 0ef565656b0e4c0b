package conntrack

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

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

func synthKey(i int, nat bool) (orig, reply Key, natPort uint16) {
	var k Key
	k.Proto = header.ProtoTCP
	k.Src = [16]byte{10: 0xff, 11: 0xff, 12: 10, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)}
	srv := i % 200
	if nat {
		srv = i / 60000
	}
	k.Dst = [16]byte{10: 0xff, 11: 0xff, 12: 192, 13: 0, 14: byte(srv >> 8), 15: byte(srv)}
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

// gen produces the packets of a benchmark the way a worker would: each one
// is written into a small batch array that stays in L1 (as Parse does), for
// a pseudorandom flow. Reading them from a large pre-built array instead
// would add a cache miss per packet that no real pipeline has.
type gen struct {
	n     int
	nat   bool
	state uint64
}

// next writes the next packet (random flow, alternating direction) into p,
// computed from the flow number alone: no memory is read.
func (g *gen) next(p *Packet, i int) {
	g.state ^= g.state << 13
	g.state ^= g.state >> 7
	g.state ^= g.state << 17
	hi, _ := bits.Mul64(g.state, uint64(g.n))
	j := int(hi)
	ok, rk, _ := synthKey(j, g.nat)
	cisn, sisn := uint32(j)*7919, uint32(j)*104729
	if i&1 == 0 {
		*p = Packet{Key: ok, Flags: ACK, Seq: cisn + 1, Ack: sisn + 1, Window: 512, WScale: -1}
	} else {
		*p = Packet{Key: rk, Flags: ACK, Seq: sisn + 1, Ack: cisn + 1, Window: 512, WScale: -1}
	}
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
}{{"10k", 10_000}, {"1M", 1 << 20}, {"16M", 16 << 20}}

// BenchmarkTrackEstablished measures lookup + TCP update of an established
// flow (pure ACKs, both directions, random flows) at several table sizes,
// one packet at a time and in batches of 32. Each packet is generated into
// L1 first (see gen); BenchmarkGen measures that alone, to subtract.
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
			)
			parent := b
			setup := func(b *testing.B) {
				// Built once per size, owned by the parent benchmark (a
				// sub-benchmark's cleanups run after each of its rounds).
				once.Do(func() {
					t = benchTable(parent, sz.n, 1)
					establish(b, t, t.Shard(0), sz.n, nat, Second)
				})
			}
			b.Run(name+"/single", func(b *testing.B) {
				setup(b)
				s := t.Shard(0)
				g := gen{n: sz.n, nat: nat, state: 88172645463325252}
				var p Packet
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					g.next(&p, i)
					if v := s.Track(&p, 2*Second); v.Action != Forward {
						b.Fatalf("%+v", v)
					}
				}
			})
			b.Run(name+"/batch32", func(b *testing.B) {
				setup(b)
				s := t.Shard(0)
				g := gen{n: sz.n, nat: nat, state: 88172645463325252}
				var batch [32]Packet
				var out [32]Verdict
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += 32 {
					for k := range batch {
						g.next(&batch[k], k)
					}
					s.TrackBatch(batch[:], out[:], 2*Second)
				}
			})
		}
	}
}

// BenchmarkGen is the cost of generating one benchmark packet (see gen).
func BenchmarkGen(b *testing.B) {
	for _, nat := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "snat"}[nat], func(b *testing.B) {
			g := gen{n: 1 << 20, nat: nat, state: 88172645463325252}
			var p Packet
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				g.next(&p, i)
			}
			sinkPacket = p
		})
	}
}

var sinkPacket Packet

// BenchmarkCreate measures opening a new TCP flow (Track miss + Create with
// SNAT) in a table that is kept between 0 and 3/4 full.
func BenchmarkCreate(b *testing.B) {
	const capacity = 1 << 20
	t := benchTable(b, capacity, 1)
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
		if j == 0 && i > 0 {
			// Every 64k flows, move time on so the previous generation of
			// keys has expired and their slots are reused.
			b.StopTimer()
			now += DefaultProfile.SynSent + Second
			for s.Expire(now, 1<<20) > 0 {
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
			for w := 0; w < workers; w++ {
				establish(b, t, t.Shard(w), per, false, Second)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(s *Shard) {
					defer wg.Done()
					g := gen{n: per, state: 88172645463325252}
					var batch [32]Packet
					var out [32]Verdict
					for i := 0; i < b.N; i += 32 {
						for k := range batch {
							g.next(&batch[k], k)
						}
						s.TrackBatch(batch[:], out[:], 2*Second)
					}
				}(t.Shard(w))
			}
			wg.Wait()
			el := time.Since(start)
			b.ReportMetric(float64(b.N*workers)/el.Seconds()/1e6, "Mpps")
		})
	}
}

// Keep the helpers used when only some benchmarks run.
var _ = binary.BigEndian
