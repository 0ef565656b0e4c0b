package snat

import (
	"net/netip"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// BenchmarkAllocate measures one allocation (and its Abandon, so the state
// stays the same) toward a destination whose range is empty or 90% full of
// live flows, with one or two shards. A refusal at the probe bound (very
// rare at 90%) counts as an operation.
func BenchmarkAllocate(b *testing.B) {
	for _, c := range []struct {
		name   string
		shards int
		fill   float64
	}{{"empty", 1, 0}, {"90pct", 1, 0.9}, {"empty-2shards", 2, 0}, {"90pct-2shards", 2, 0.9}} {
		b.Run(c.name, func(b *testing.B) {
			h := newHarness(b, c.shards, 1<<17, Config{Automap: natIP})
			const ports = DefaultPortEnd - DefaultPortStart + 1
			a := h.n.Allocator(0)
			want := int(c.fill * ports / float64(c.shards))
			src := tcpKey(client, 0, server, 443)
			for i, n := 0, 0; n < want; i++ {
				src.SrcPort = uint16(i)
				src.Src[15] = byte(i >> 16)
				if h.tb.ShardOfSrc(&src) != 0 {
					continue
				}
				if _, _, r := h.open(src); r != drop.None {
					b.Fatal(r)
				}
				n++
			}
			k := tcpKey(client, 1, server, 443)
			k.Src[14] = 0xee
			for h.tb.ShardOfSrc(&k) != 0 {
				k.SrcPort++
			}
			now := h.now
			b.ReportAllocs()
			b.ResetTimer()
			st0 := a.Stats()
			for b.Loop() {
				tr, r := a.Allocate(&k, now)
				switch r {
				case drop.None:
					a.Abandon(&k, tr)
				case drop.SNATProbeLimit: // counted below
				default:
					b.Fatal(r)
				}
			}
			st := a.Stats()
			b.ReportMetric(float64(st.Counters[CtrProbes]-st0.Counters[CtrProbes])/float64(b.N), "probes/op")
			b.ReportMetric(float64(st.Counters[CtrProbeLimit]-st0.Counters[CtrProbeLimit])/float64(b.N), "refused/op")
		})
	}
}

// BenchmarkRelease measures conntrack's release hook (quarantine insert).
func BenchmarkRelease(b *testing.B) {
	h := newHarness(b, 1, 1024, Config{Automap: natIP})
	a := h.n.Allocator(0)
	k := tcpKey(client, 1000, server, 443)
	now := h.now
	port := uint16(0)
	b.ReportAllocs()
	for b.Loop() {
		port++
		now += conntrack.Millisecond
		a.Release(&k, conntrack.Translation{Addr: 1, Port: port}, true, now)
	}
}

func benchRewrite(b *testing.B, spec headertest.Spec, reply bool) {
	pkt := headertest.Build(spec)
	var p conntrack.Packet
	if r := conntrack.Parse(pkt, 0, &p); r != drop.None {
		b.Fatal(r)
	}
	nat := natIP.As16()
	if spec.Src.Is6() {
		nat = natIP6.As16()
	}
	orig := p.Key
	tr := conntrack.Translation{Addr: 1, Port: 40000}
	b.ReportAllocs()
	for b.Loop() {
		if reply {
			RewriteReply(pkt, &p, &orig)
		} else {
			RewriteOriginal(pkt, &p, tr, nat)
		}
	}
}

var benchSpecs = []struct {
	name string
	spec headertest.Spec
}{
	{"tcp4", headertest.Spec{Src: client, Dst: server, Proto: header.ProtoTCP, SrcPort: 1000, DstPort: 443, Flags: header.TCPFlagACK}},
	{"udp4", headertest.Spec{Src: client, Dst: server, Proto: header.ProtoUDP, SrcPort: 1000, DstPort: 53, Payload: make([]byte, 32)}},
	{"icmp4", headertest.Spec{Src: client, Dst: server, Proto: header.ProtoICMP, ICMPType: header.ICMPv4EchoRequest, Ident: 5}},
	{"tcp6", headertest.Spec{Src: client6, Dst: server6, Proto: header.ProtoTCP, SrcPort: 1000, DstPort: 443, Flags: header.TCPFlagACK}},
	{"udp6", headertest.Spec{Src: client6, Dst: server6, Proto: header.ProtoUDP, SrcPort: 1000, DstPort: 53, Payload: make([]byte, 32)}},
	{"icmp6", headertest.Spec{Src: client6, Dst: server6, Proto: header.ProtoICMPv6, ICMPType: header.ICMPv6EchoRequest, Ident: 5}},
}

func BenchmarkRewriteOriginal(b *testing.B) {
	for _, c := range benchSpecs {
		b.Run(c.name, func(b *testing.B) { benchRewrite(b, c.spec, false) })
	}
}

func BenchmarkRewriteReply(b *testing.B) {
	for _, c := range benchSpecs {
		b.Run(c.name, func(b *testing.B) { benchRewrite(b, c.spec, true) })
	}
}

// BenchmarkAllocateMapped measures endpoint-independent mapping: a new
// endpoint's mapping (made and, through Abandon, removed again) with the
// range empty or 90% mapped, and a new flow of an endpoint whose mapping
// exists (one shard; the inside port is taken so that port preservation
// fails and the search runs).
func BenchmarkAllocateMapped(b *testing.B) {
	for _, c := range []struct {
		name     string
		fill     float64
		existing bool
	}{{"new-empty", 0, false}, {"new-90pct", 0.9, false}, {"existing", 0, true}} {
		b.Run(c.name, func(b *testing.B) {
			h := newHarness(b, 1, 1<<17, Config{Automap: natIP, Mapping: EndpointIndependent})
			a := h.n.Allocator(0)
			want := int(c.fill * (DefaultPortEnd - DefaultPortStart + 1))
			src := udpKey(client, 0, server, 53)
			for i := 0; i < want; i++ {
				src.SrcPort = uint16(1024 + i)
				src.Src[14] = byte(i >> 8)
				if _, _, r := h.open(src); r != drop.None {
					b.Fatal(r)
				}
			}
			k := udpKey(client, 1024, server, 443) // its port is mapped when fill > 0
			k.Src[13] = 0xee
			if c.existing {
				h.mustOpen(udpKey(client, 7, server, 53))
				k = udpKey(client, 7, server, 443)
			}
			now := h.now
			st0 := a.Stats()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				tr, r := a.Allocate(&k, now)
				switch r {
				case drop.None:
					a.Abandon(&k, tr)
				case drop.SNATExhausted, drop.SNATProbeLimit: // counted below
				default:
					b.Fatal(r)
				}
			}
			st := a.Stats()
			b.ReportMetric(float64(st.Counters[CtrProbes]-st0.Counters[CtrProbes])/float64(b.N), "probes/op")
			refused := st.Counters[CtrExhausted] + st.Counters[CtrProbeLimit] - st0.Counters[CtrExhausted] - st0.Counters[CtrProbeLimit]
			b.ReportMetric(float64(refused)/float64(b.N), "refused/op")
		})
	}
}

// BenchmarkAdmit measures the filter of an unsolicited datagram toward a
// mapping (endpoint-independent filtering: admitted, then Abandon).
func BenchmarkAdmit(b *testing.B) {
	h := newHarness(b, 1, 1<<12, Config{Automap: natIP, Mapping: EndpointIndependent, Filtering: EndpointIndependentFiltering})
	a := h.n.Allocator(0)
	tr, _ := h.mustOpen(udpKey(client, 5000, server, 3478))
	ik := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(server2, 9), netip.AddrPortFrom(natIP, tr.Port))
	now := h.now
	b.ReportAllocs()
	for b.Loop() {
		orig, tr, ok, r := a.Admit(&ik, false, now)
		if !ok || r != drop.None {
			b.Fatal(ok, r)
		}
		a.Abandon(&orig, tr)
	}
}
