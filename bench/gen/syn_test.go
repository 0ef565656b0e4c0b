package gen

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestSYNFrames checks SYN mode's frames with gopacket, in each family: a
// valid IPv4/TCP SYN in 60 bytes or IPv6/TCP in MinSYNFrame6-4, the
// checksums right, ports in range, the fixed destination port kept, and a
// new source port for each of 64,512 consecutive packets.
func TestSYNFrames(t *testing.T) {
	for _, fam := range []struct {
		name     string
		src, dst netip.Addr
		size     int
	}{
		{"ipv4", netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("203.0.113.2"), MinFrame},
		{"ipv6", netip.MustParseAddr("fd00:10::2"), netip.MustParseAddr("2001:db8:113::2"), MinSYNFrame6},
	} {
		for _, dport := range []uint16{0, 9} {
			c := testConfig()
			c.Src, c.Dst = fam.src, fam.dst
			c.SYN, c.SYNDstPort, c.FlowOffset = true, dport, 12345
			b, err := NewBuilder(c, 4)
			if err != nil {
				t.Fatal(fam.name, err)
			}
			l3 := 0
			if fam.src.Is6() {
				l3 = ip6Len - ipLen
			}
			seen := make(map[uint32]bool)
			var bufs [4][2048]byte
			for seq := uint64(0); seq < srcSpan; seq++ {
				buf := bufs[seq%4][:]
				n := b.Build(buf, int(seq%4), seq, 0)
				if n != fam.size-fcsLen || b.Len(seq) != n {
					t.Fatalf("%s seq %d: length %d (Len %d), want %d", fam.name, seq, n, b.Len(seq), fam.size-fcsLen)
				}
				sp := uint16(buf[offSrcPort+l3])<<8 | uint16(buf[offSrcPort+l3+1])
				dp := uint16(buf[offDstPort+l3])<<8 | uint16(buf[offDstPort+l3+1])
				if seen[uint32(sp)<<16|uint32(dp)] {
					t.Fatalf("%s dport %d, seq %d: ports %d -> %d repeat an earlier packet's", fam.name, dport, seq, sp, dp)
				}
				seen[uint32(sp)<<16|uint32(dp)] = true
				if sp < SrcPortMin || (dport != 0 && dp != dport) || (dport == 0 && (dp < DstPortMin || dp > DstPortMax)) {
					t.Fatalf("%s seq %d: ports %d -> %d", fam.name, seq, sp, dp)
				}
				if seq%997 != 0 {
					continue // gopacket on a sample
				}
				src, dst, _ := checkSYN(t, seq, buf[:n])
				if !src.Equal(fam.src.AsSlice()) || !dst.Equal(fam.dst.AsSlice()) {
					t.Fatalf("%s seq %d: %v -> %v", fam.name, seq, src, dst)
				}
			}
		}
	}
}

// checkSYN checks frame f (SYN seq) with gopacket: a bare IPv4/TCP or
// IPv6/TCP SYN (hop limit 64, no extension header) with its checksums
// right, which ParsePacket does not take for a generated UDP packet. It
// returns the addresses and the TCP header.
func checkSYN(t *testing.T, seq uint64, frame []byte) (src, dst net.IP, tcp *layers.TCP) {
	t.Helper()
	f := append([]byte(nil), frame...)
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	tcp, _ = pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	var ipLayer gopacket.SerializableLayer
	var netLayer gopacket.NetworkLayer
	var first gopacket.LayerType
	var ipSum uint16
	switch ip := pkt.NetworkLayer().(type) {
	case *layers.IPv4:
		if ip.Length != 40 || ip.TTL != 64 {
			t.Fatalf("seq %d: IPv4 header %+v", seq, ip)
		}
		c := *ip
		ipLayer, netLayer, first, ipSum, src, dst = &c, &c, layers.LayerTypeIPv4, ip.Checksum, ip.SrcIP, ip.DstIP
	case *layers.IPv6:
		if ip.Length != 20 || ip.HopLimit != 64 || ip.NextHeader != layers.IPProtocolTCP {
			t.Fatalf("seq %d: IPv6 header %+v", seq, ip)
		}
		c := *ip
		ipLayer, netLayer, first, src, dst = &c, &c, layers.LayerTypeIPv6, ip.SrcIP, ip.DstIP
	}
	if tcp == nil || ipLayer == nil {
		t.Fatalf("seq %d: not IPv4/TCP or IPv6/TCP: %v", seq, pkt)
	}
	if !tcp.SYN || tcp.ACK || tcp.RST || tcp.FIN || len(tcp.Payload) != 0 {
		t.Fatalf("seq %d: not a bare SYN: %+v", seq, tcp)
	}
	tcpc := *tcp
	tcpc.SetNetworkLayerForChecksum(netLayer)
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
		ipLayer, &tcpc); err != nil {
		t.Fatal(err)
	}
	re := gopacket.NewPacket(sb.Bytes(), first, gopacket.Default)
	if v4, ok := re.NetworkLayer().(*layers.IPv4); ok && v4.Checksum != ipSum {
		t.Fatalf("seq %d: IPv4 checksum %#04x, gopacket %#04x", seq, ipSum, v4.Checksum)
	}
	if got, want := tcp.Checksum, re.Layer(layers.LayerTypeTCP).(*layers.TCP).Checksum; got != want {
		t.Fatalf("seq %d: TCP checksum %#04x, gopacket %#04x", seq, got, want)
	}
	if _, ok := ParsePacket(f); ok {
		t.Fatalf("seq %d: ParsePacket read a SYN as a generated UDP packet", seq)
	}
	return src, dst, tcp
}

// TestSYNSourcePrefix: with SYNSrcPrefix every SYN comes from an address of
// the prefix other than its first and last, the addresses spread over the
// prefix (a /24: all 254 hosts appear in 20,000 SYNs, none more than twice
// its share), both checksums stay right whatever the address, the same
// seed gives the same addresses and another seed others.
func TestSYNSourcePrefix(t *testing.T) {
	build := func(seed uint64, prefix string, n int) ([]netip.Addr, []uint16) {
		c := testConfig()
		c.SYN, c.SYNDstPort, c.Seed = true, 9, seed
		c.SYNSrcPrefix = netip.MustParsePrefix(prefix)
		l3 := 0
		if c.SYNSrcPrefix.Addr().Is6() {
			c.Src, c.Dst, l3 = netip.MustParseAddr("fd00:10::2"), netip.MustParseAddr("2001:db8:113::2"), ip6Len-ipLen
		}
		b, err := NewBuilder(c, 2)
		if err != nil {
			t.Fatal(err)
		}
		addrs, ports := make([]netip.Addr, n), make([]uint16, n)
		var bufs [2][2048]byte
		for seq := range uint64(n) {
			buf := bufs[seq%2][:]
			m := b.Build(buf, int(seq%2), seq, 0)
			if l3 == 0 {
				addrs[seq] = netip.AddrFrom4([4]byte(buf[offIP+12 : offIP+16]))
			} else {
				addrs[seq] = netip.AddrFrom16([16]byte(buf[offIP+8 : offIP+24]))
			}
			ports[seq] = uint16(buf[offSrcPort+l3])<<8 | uint16(buf[offSrcPort+l3+1])
			if seq%97 == 0 || seq < 300 {
				src, dst, tcp := checkSYN(t, seq, buf[:m])
				if !src.Equal(addrs[seq].AsSlice()) || !dst.Equal(c.Dst.AsSlice()) || uint16(tcp.DstPort) != 9 {
					t.Fatalf("seq %d: %v -> %v port %d", seq, src, dst, tcp.DstPort)
				}
			}
		}
		return addrs, ports
	}
	const n = 20000
	addrs, ports := build(7, "10.0.1.0/24", n)
	count := map[netip.Addr]int{}
	pfx := netip.MustParsePrefix("10.0.1.0/24")
	for i, a := range addrs {
		if !pfx.Contains(a) || a == pfx.Addr() || a == netip.MustParseAddr("10.0.1.255") {
			t.Fatalf("SYN %d from %v, want a host of %v", i, a, pfx)
		}
		count[a]++
	}
	if len(count) != 254 {
		t.Fatalf("%d distinct sources of 254", len(count))
	}
	for a, k := range count {
		if k > 2*n/254 {
			t.Fatalf("%v sent %d SYNs, over twice its share %d", a, k, n/254)
		}
	}
	// The source port still follows Ports.Src: distinct over the run.
	seenPort := map[uint16]bool{}
	for _, p := range ports {
		seenPort[p] = true
	}
	if len(seenPort) != n {
		t.Fatalf("%d distinct source ports in %d SYNs", len(seenPort), n)
	}
	again, _ := build(7, "10.0.1.0/24", 50)
	other, _ := build(8, "10.0.1.0/24", 50)
	same := 0
	for i := range again {
		if again[i] != addrs[i] {
			t.Fatalf("seed 7 again: SYN %d from %v, first time %v", i, again[i], addrs[i])
		}
		if other[i] == addrs[i] {
			same++
		}
	}
	if same > 5 {
		t.Fatalf("seed 8 repeats %d of seed 7's first 50 sources", same)
	}
	wide, _ := build(7, "10.0.0.0/16", 2000)
	distinct := map[netip.Addr]bool{}
	for _, a := range wide {
		distinct[a] = true
	}
	if len(distinct) < 1900 {
		t.Fatalf("a /16: %d distinct sources in 2,000 SYNs", len(distinct))
	}
	// IPv6: the prefix's hosts the same way (a /120: 254 hosts, the last
	// 32 bits vary, the rest is the prefix's).
	v6, _ := build(7, "fd00:10::8000:0/120", 5000)
	pfx6 := netip.MustParsePrefix("fd00:10::8000:0/120")
	count6 := map[netip.Addr]int{}
	for i, a := range v6 {
		if !pfx6.Contains(a) || a == pfx6.Addr() || a == netip.MustParseAddr("fd00:10::8000:ff") {
			t.Fatalf("IPv6 SYN %d from %v, want a host of %v", i, a, pfx6)
		}
		count6[a]++
	}
	if len(count6) != 254 {
		t.Fatalf("IPv6: %d distinct sources of 254", len(count6))
	}
	for _, bad := range []string{"10.0.0.0/31", "10.0.0.0/7", "2001:db8::/64"} {
		c := testConfig()
		c.SYN, c.SYNSrcPrefix = true, netip.MustParsePrefix(bad)
		if _, err := NewBuilder(c, 1); err == nil {
			t.Fatalf("source prefix %s accepted", bad)
		}
	}
	for _, bad := range []string{"fd00:10::/64", "fd00:10::/127", "10.0.0.0/16"} {
		c := testConfig()
		c.Src, c.Dst = netip.MustParseAddr("fd00:10::2"), netip.MustParseAddr("2001:db8:113::2")
		c.SYN, c.SYNSrcPrefix = true, netip.MustParsePrefix(bad)
		if _, err := NewBuilder(c, 1); err == nil {
			t.Fatalf("IPv6 SYN source prefix %s accepted", bad)
		}
	}
}

func TestPortsSrcPermutes(t *testing.T) {
	p := NewPorts(3)
	seen := make([]bool, 65536)
	for i := uint64(0); i < srcSpan; i++ {
		s := p.Src(i)
		if s < SrcPortMin || seen[s] {
			t.Fatalf("index %d: source port %d (out of range or repeated)", i, s)
		}
		seen[s] = true
	}
	if p.Src(5) != p.Src(5+srcSpan) {
		t.Fatal("Src is not periodic in the source range")
	}
}

func TestBuildSYNZeroAllocs(t *testing.T) {
	for _, prefix := range []string{"", "10.0.0.0/16", "fd00:10::/96"} {
		c := testConfig()
		c.SYN, c.SYNDstPort = true, 9
		if strings.Contains(prefix, ":") {
			c.Src, c.Dst = netip.MustParseAddr("fd00:10::2"), netip.MustParseAddr("2001:db8:113::2")
		}
		if prefix != "" {
			c.SYNSrcPrefix = netip.MustParsePrefix(prefix)
		}
		b, _ := NewBuilder(c, 8)
		buf := make([]byte, 2048)
		seq := uint64(0)
		if a := testing.AllocsPerRun(10000, func() { b.Build(buf, int(seq%8), seq, Now()); seq++ }); a != 0 {
			t.Fatalf("SYN Build (source prefix %q) allocates %v per packet", prefix, a)
		}
	}
}

func BenchmarkBuildSYN(b *testing.B) {
	c := testConfig()
	c.SYN, c.SYNDstPort = true, 9
	benchBuildSYN(b, c)
}

func BenchmarkBuildSYNSourcePrefix(b *testing.B) {
	c := testConfig()
	c.SYN, c.SYNDstPort, c.SYNSrcPrefix = true, 9, netip.MustParsePrefix("10.0.0.0/16")
	benchBuildSYN(b, c)
}

func benchBuildSYN(b *testing.B, c FrameConfig) {
	bl, _ := NewBuilder(c, 4096)
	buf := make([]byte, 4096*2048)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := i & 4095
		bl.Build(buf[s*2048:], s, uint64(i), 0)
	}
}

// TestPacerBurst: with Burst, nothing goes until a whole burst is due, then
// all that is due goes at once; without, each packet goes when due.
func TestPacerBurst(t *testing.T) {
	const us = int64(1000)
	p := newPacer(TxConfig{Rate: 20000, Burst: 32}, 0) // a packet every 50 us
	for _, c := range []struct {
		now    int64
		queued uint64
		want   int
	}{
		{1000 * us, 0, 0},   // 20 due
		{1600 * us, 0, 32},  // 32 due
		{1700 * us, 32, 0},  // 2 more due
		{4000 * us, 32, 48}, // 80 due
	} {
		if got := p.allow(c.now, c.queued, 64); got != c.want {
			t.Fatalf("burst 32, at %d us with %d queued: allow %d, want %d", c.now/us, c.queued, got, c.want)
		}
	}
	p = newPacer(TxConfig{Rate: 20000}, 0)
	if got := p.allow(60*us, 0, 64); got != 1 {
		t.Fatalf("no burst, 60 us in: allow %d, want 1", got)
	}
}
