package gen

import (
	"math"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

func testConfig() FrameConfig {
	return FrameConfig{
		SrcMAC: [6]byte{2, 0, 0, 0, 0, 1}, DstMAC: [6]byte{2, 0, 0, 0, 0, 2},
		Src: netip.MustParseAddr("10.0.0.2"), Dst: netip.MustParseAddr("203.0.113.2"),
		Sizes: IMIX, Flows: 1000, Seed: 7,
	}
}

// TestFrames checks every field and both checksums with gopacket, in each
// family (IPv6: the IMIX sizes with 64 raised to MinFrame6).
func TestFrames(t *testing.T) {
	for _, fam := range []struct {
		name     string
		src, dst netip.Addr
		sizes    []int
	}{
		{"ipv4", netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("203.0.113.2"), IMIX},
		{"ipv6", netip.MustParseAddr("fd00:10::2"), netip.MustParseAddr("2001:db8:113::2"),
			[]int{MinFrame6, MinFrame6, MinFrame6, MinFrame6, MinFrame6, MinFrame6, MinFrame6, 576, 576, 576, 576, 1500}},
	} {
		for _, newFlows := range []bool{false, true} {
			t.Run(fam.name, func(t *testing.T) { testFrames(t, fam.src, fam.dst, fam.sizes, newFlows) })
		}
	}
}

func testFrames(t *testing.T, src, dst netip.Addr, sizes []int, newFlows bool) {
	c := testConfig()
	c.Src, c.Dst, c.Sizes, c.NewFlows = src, dst, sizes, newFlows
	b, err := NewBuilder(c, 4)
	if err != nil {
		t.Fatal(err)
	}
	var bufs [4][2048]byte
	for seq := uint64(0); seq < 500; seq++ {
		ts := int64(0x0123456789abcdef) + int64(seq)*977
		buf := bufs[seq%4][:]
		n := b.Build(buf, int(seq%4), seq, ts)
		if want := sizes[seq%uint64(len(sizes))] - 4; n != want {
			t.Fatalf("seq %d: length %d, want %d", seq, n, want)
		}
		f := append([]byte(nil), buf[:n]...)
		pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		var ipLayer gopacket.SerializableLayer
		var netLayer gopacket.NetworkLayer
		var first gopacket.LayerType
		switch ip := pkt.NetworkLayer().(type) {
		case *layers.IPv4:
			if c.Src.Is6() || !ip.SrcIP.Equal(c.Src.AsSlice()) || !ip.DstIP.Equal(c.Dst.AsSlice()) || ip.TTL != 64 || int(ip.Length) != n-14 {
				t.Fatalf("seq %d: bad IPv4 header %+v", seq, ip)
			}
			ipc := *ip
			ipLayer, netLayer, first = &ipc, &ipc, layers.LayerTypeIPv4
		case *layers.IPv6:
			if c.Src.Is4() || !ip.SrcIP.Equal(c.Src.AsSlice()) || !ip.DstIP.Equal(c.Dst.AsSlice()) || ip.HopLimit != 64 ||
				int(ip.Length) != n-14-40 || ip.NextHeader != layers.IPProtocolUDP {
				t.Fatalf("seq %d: bad IPv6 header %+v", seq, ip)
			}
			ipc := *ip
			ipLayer, netLayer, first = &ipc, &ipc, layers.LayerTypeIPv6
		}
		if netLayer == nil || udp == nil {
			t.Fatalf("seq %d: not IP/UDP: %v", seq, pkt)
		}
		// Recompute the checksums with gopacket and compare.
		udpc := *udp
		udpc.SetNetworkLayerForChecksum(netLayer)
		sb := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
			ipLayer, &udpc, gopacket.Payload(udp.Payload)); err != nil {
			t.Fatal(err)
		}
		re := gopacket.NewPacket(sb.Bytes(), first, gopacket.Default)
		if ip, ok := pkt.NetworkLayer().(*layers.IPv4); ok {
			if got, want := ip.Checksum, re.Layer(layers.LayerTypeIPv4).(*layers.IPv4).Checksum; got != want {
				t.Fatalf("seq %d: IPv4 checksum %#04x, gopacket %#04x", seq, got, want)
			}
		}
		if got, want := udp.Checksum, re.Layer(layers.LayerTypeUDP).(*layers.UDP).Checksum; got != want {
			t.Fatalf("seq %d: UDP checksum %#04x, gopacket %#04x", seq, got, want)
		}
		if uint16(udp.SrcPort) < SrcPortMin || uint16(udp.DstPort) < DstPortMin || uint16(udp.DstPort) > DstPortMax {
			t.Fatalf("seq %d: ports %d -> %d out of RFC 4814 ranges", seq, udp.SrcPort, udp.DstPort)
		}
		p, ok := ParsePacket(f)
		if !ok || p.Seq != uint32(seq) || p.TS != ts {
			t.Fatalf("seq %d: parsed %+v %v", seq, p, ok)
		}
	}
}

// TestIPv6Refusals: an IPv6 builder refuses UDP frames too small for its
// headers and mixed families.
func TestIPv6Refusals(t *testing.T) {
	c := testConfig()
	c.Src, c.Dst, c.Sizes = netip.MustParseAddr("fd00:10::2"), netip.MustParseAddr("2001:db8:113::2"), []int{MinFrame6 - 1}
	if _, err := NewBuilder(c, 1); err == nil {
		t.Error("an IPv6 frame below MinFrame6 was accepted")
	}
	c.Sizes = nil
	if b, err := NewBuilder(c, 1); err != nil || b.Len(0) != MinFrame6-fcsLen {
		t.Errorf("IPv6 default size: %v, %v; want MinFrame6", err, b)
	}
	c.Dst = netip.MustParseAddr("203.0.113.2")
	if _, err := NewBuilder(c, 1); err == nil {
		t.Error("an IPv6 source with an IPv4 destination was accepted")
	}
}

func TestFlowsCycle(t *testing.T) {
	c := testConfig()
	c.Sizes, c.Flows = []int{64}, 10
	b, _ := NewBuilder(c, 1)
	buf := make([]byte, 2048)
	seen := map[[2]uint16]uint64{}
	for seq := uint64(0); seq < 30; seq++ {
		b.Build(buf, 0, seq, 0)
		k := [2]uint16{uint16(buf[offSrcPort])<<8 | uint16(buf[offSrcPort+1]), uint16(buf[offDstPort])<<8 | uint16(buf[offDstPort+1])}
		if first, ok := seen[k]; ok && (seq-first)%10 != 0 {
			t.Fatalf("flow %v repeats at %d and %d", k, first, seq)
		}
		if _, ok := seen[k]; !ok {
			seen[k] = seq
		}
	}
	if len(seen) != 10 {
		t.Fatalf("%d distinct flows, want 10", len(seen))
	}
}

// TestPorts: RFC 4814 4.5 ranges, distinct pairs, determinism, uniformity.
func TestPorts(t *testing.T) {
	p := NewPorts(42)
	const n = 200000
	seen := make(map[uint32]struct{}, n)
	var srcHist, dstHist [16]int
	for i := uint64(0); i < n; i++ {
		s, d := p.Pair(i)
		if s < SrcPortMin || d < DstPortMin || d > DstPortMax {
			t.Fatalf("index %d: ports %d, %d out of range", i, s, d)
		}
		k := uint32(s)<<16 | uint32(d)
		if _, dup := seen[k]; dup {
			t.Fatalf("index %d: pair %d,%d repeats", i, s, d)
		}
		seen[k] = struct{}{}
		srcHist[int(s-SrcPortMin)*16/srcSpan]++
		dstHist[int(d-DstPortMin)*16/dstSpan]++
	}
	for _, h := range [][16]int{srcHist, dstHist} {
		var chi float64
		for _, c := range h {
			e := float64(n) / 16
			chi += (float64(c) - e) * (float64(c) - e) / e
		}
		if chi > 50 { // 15 degrees of freedom: p < 1e-5
			t.Fatalf("not uniform: chi-square %.1f over %v", chi, h)
		}
	}
	a, b, c := NewPorts(42), NewPorts(42), NewPorts(43)
	same := 0
	for i := uint64(0); i < 1000; i++ {
		s1, d1 := a.Pair(i)
		s2, d2 := b.Pair(i)
		s3, d3 := c.Pair(i)
		if s1 != s2 || d1 != d2 {
			t.Fatal("same seed, different ports")
		}
		if s1 == s3 && d1 == d3 {
			same++
		}
	}
	if same > 5 {
		t.Fatalf("seeds 42 and 43 agree on %d of 1000 pairs", same)
	}
}

func TestIMIXProportions(t *testing.T) {
	c := testConfig()
	b, _ := NewBuilder(c, 1)
	count := map[int]int{}
	for seq := uint64(0); seq < 12000; seq++ {
		count[b.Len(seq)+4]++
	}
	if count[64] != 7000 || count[576] != 4000 || count[1500] != 1000 || len(count) != 3 {
		t.Fatalf("IMIX counts %v, want 7:4:1", count)
	}
	if s, err := ParseSizes("imix", false); err != nil || len(s) != 12 {
		t.Fatal(s, err)
	}
	// IPv6: the same pattern with 64 raised to MinFrame6, which an IPv6
	// builder accepts.
	s6, err := ParseSizes("imix", true)
	if err != nil || len(s6) != len(IMIX) {
		t.Fatal(s6, err)
	}
	for i, n := range IMIX {
		if want := map[int]int{64: MinFrame6, 576: 576, 1500: 1500}[n]; s6[i] != want {
			t.Fatalf("IPv6 imix[%d] = %d, want %d", i, s6[i], want)
		}
	}
	c6 := testConfig()
	c6.Src, c6.Dst, c6.Sizes = netip.MustParseAddr("fd00:10::2"), netip.MustParseAddr("2001:db8:113::2"), s6
	if _, err := NewBuilder(c6, 1); err != nil {
		t.Fatalf("IPv6 imix refused: %v", err)
	}
	for _, bad := range []string{"63", "1519", "x"} {
		if _, err := ParseSizes(bad, false); err == nil {
			t.Fatalf("ParseSizes(%q) accepted", bad)
		}
	}
}

func TestHist(t *testing.T) {
	var h Hist
	for v := uint64(1); v <= 100000; v++ {
		h.Record(v)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		got, want := float64(h.Quantile(q)), q*100000
		if math.Abs(got-want)/want > 0.04 {
			t.Fatalf("q%.3f = %.0f, want %.0f within 4%%", q, got, want)
		}
	}
	if h.Min() != 1 || h.Max() != 100000 || h.Count() != 100000 {
		t.Fatal(h.Min(), h.Max(), h.Count())
	}
	for i := 0; i < histBuckets; i++ {
		lo, hi := bucketRange(i)
		if histIndex(lo) != i || histIndex(hi) != i {
			t.Fatalf("bucket %d: [%d,%d] maps to %d,%d", i, lo, hi, histIndex(lo), histIndex(hi))
		}
	}
	h.Reset()
	h.Record(5)
	if h.Quantile(0.99) != 5 {
		t.Fatal(h.Quantile(0.99))
	}
	if a := testing.AllocsPerRun(1000, func() { h.Record(123456) }); a != 0 {
		t.Fatalf("Record allocates %v", a)
	}
}

func TestRecorder(t *testing.T) {
	c := testConfig()
	c.Sizes = []int{64}
	b, _ := NewBuilder(c, 1)
	r := NewRecorder(1 << 10)
	buf := make([]byte, 2048)
	add := func(seq uint64) { n := b.Build(buf, 0, seq, Now()-1000); r.Add(buf[:n], Now()) }
	for _, s := range []uint64{0, 1, 2, 4, 3, 3, 7, 2000} {
		add(s)
	}
	r.Add(make([]byte, 60), Now())
	s := r.Stats(10)
	if s.Received != 8 || s.Unique != 7 || s.Dup != 1 || s.Reorder != 1 || s.Untracked != 1 || s.Other != 1 || s.Lost != 3 {
		t.Fatalf("%+v", s)
	}
	if s.LatP50Ns < 1000 {
		t.Fatalf("latency %d < 1000 ns", s.LatP50Ns)
	}
	r.Reset()
	add(3)
	if s := r.Stats(0); s.Unique != 1 || s.Dup != 0 || s.Expected != 4 || s.ExpectedBy != "sequence" {
		t.Fatalf("after reset: %+v", s)
	}
	if a := testing.AllocsPerRun(1000, func() { r.Add(buf[:60], 1) }); a != 0 {
		t.Fatalf("Add allocates %v", a)
	}
}

func TestNowIsMonotonic(t *testing.T) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	if d := Now() - ts.Nano(); d < 0 || d > 1e8 {
		t.Fatalf("Now differs from CLOCK_MONOTONIC by %d ns", d)
	}
}

func TestBuildZeroAllocs(t *testing.T) {
	for _, nf := range []bool{false, true} {
		c := testConfig()
		c.NewFlows = nf
		b, _ := NewBuilder(c, 8)
		buf := make([]byte, 2048)
		seq := uint64(0)
		if a := testing.AllocsPerRun(10000, func() { b.Build(buf, int(seq%8), seq, Now()); seq++ }); a != 0 {
			t.Fatalf("new flows %v: Build allocates %v per packet", nf, a)
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, sz := range []string{"64", "imix"} {
		b.Run(sz, func(b *testing.B) {
			c := testConfig()
			c.Sizes, _ = ParseSizes(sz, false)
			c.Flows = 1 << 20
			bl, _ := NewBuilder(c, 4096)
			buf := make([]byte, 4096*2048)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				s := i & 4095
				bl.Build(buf[s*2048:], s, uint64(i), Now())
			}
		})
	}
}
