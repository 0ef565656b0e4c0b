package gen

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TestSYNFrames checks SYN mode's frames with gopacket: a valid IPv4/TCP
// SYN in 60 bytes, both checksums right, ports in range, the fixed
// destination port kept, and a new source port for each of 64,512
// consecutive packets.
func TestSYNFrames(t *testing.T) {
	for _, dport := range []uint16{0, 9} {
		c := testConfig()
		c.SYN, c.SYNDstPort, c.FlowOffset = true, dport, 12345
		b, err := NewBuilder(c, 4)
		if err != nil {
			t.Fatal(err)
		}
		seen := make(map[uint32]bool)
		var bufs [4][2048]byte
		for seq := uint64(0); seq < srcSpan; seq++ {
			buf := bufs[seq%4][:]
			n := b.Build(buf, int(seq%4), seq, 0)
			if n != MinFrame-fcsLen || b.Len(seq) != n {
				t.Fatalf("seq %d: length %d (Len %d), want %d", seq, n, b.Len(seq), MinFrame-fcsLen)
			}
			sp, dp := uint16(buf[offSrcPort])<<8|uint16(buf[offSrcPort+1]), uint16(buf[offDstPort])<<8|uint16(buf[offDstPort+1])
			if seen[uint32(sp)<<16|uint32(dp)] {
				t.Fatalf("dport %d, seq %d: ports %d -> %d repeat an earlier packet's", dport, seq, sp, dp)
			}
			seen[uint32(sp)<<16|uint32(dp)] = true
			if sp < SrcPortMin || (dport != 0 && dp != dport) || (dport == 0 && (dp < DstPortMin || dp > DstPortMax)) {
				t.Fatalf("seq %d: ports %d -> %d", seq, sp, dp)
			}
			if seq%997 != 0 {
				continue // gopacket on a sample
			}
			checkSYN(t, seq, buf[:n])
		}
	}
}

// checkSYN checks frame f (SYN seq) with gopacket: a bare IPv4/TCP SYN with
// both checksums right, which ParsePacket does not take for a generated
// UDP packet. It returns the IPv4 header and the TCP header.
func checkSYN(t *testing.T, seq uint64, frame []byte) (*layers.IPv4, *layers.TCP) {
	t.Helper()
	f := append([]byte(nil), frame...)
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip == nil || tcp == nil {
		t.Fatalf("seq %d: not IPv4/TCP: %v", seq, pkt)
	}
	if !tcp.SYN || tcp.ACK || tcp.RST || tcp.FIN || len(tcp.Payload) != 0 || ip.Length != 40 || ip.TTL != 64 {
		t.Fatalf("seq %d: not a bare SYN: %+v %+v", seq, ip, tcp)
	}
	ipc, tcpc := *ip, *tcp
	tcpc.SetNetworkLayerForChecksum(&ipc)
	sb := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(sb, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true},
		&ipc, &tcpc); err != nil {
		t.Fatal(err)
	}
	re := gopacket.NewPacket(sb.Bytes(), layers.LayerTypeIPv4, gopacket.Default)
	if got, want := ip.Checksum, re.Layer(layers.LayerTypeIPv4).(*layers.IPv4).Checksum; got != want {
		t.Fatalf("seq %d: IPv4 checksum %#04x, gopacket %#04x", seq, got, want)
	}
	if got, want := tcp.Checksum, re.Layer(layers.LayerTypeTCP).(*layers.TCP).Checksum; got != want {
		t.Fatalf("seq %d: TCP checksum %#04x, gopacket %#04x", seq, got, want)
	}
	if _, ok := ParsePacket(f); ok {
		t.Fatalf("seq %d: ParsePacket read a SYN as a generated UDP packet", seq)
	}
	return ip, tcp
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
		b, err := NewBuilder(c, 2)
		if err != nil {
			t.Fatal(err)
		}
		addrs, ports := make([]netip.Addr, n), make([]uint16, n)
		var bufs [2][2048]byte
		for seq := range uint64(n) {
			buf := bufs[seq%2][:]
			m := b.Build(buf, int(seq%2), seq, 0)
			addrs[seq] = netip.AddrFrom4([4]byte(buf[offIP+12 : offIP+16]))
			ports[seq] = uint16(buf[offSrcPort])<<8 | uint16(buf[offSrcPort+1])
			if seq%97 == 0 || seq < 300 {
				ip, tcp := checkSYN(t, seq, buf[:m])
				if !ip.SrcIP.Equal(addrs[seq].AsSlice()) || !ip.DstIP.Equal(c.Dst.AsSlice()) || uint16(tcp.DstPort) != 9 {
					t.Fatalf("seq %d: %v -> %v port %d", seq, ip.SrcIP, ip.DstIP, tcp.DstPort)
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
	for _, bad := range []string{"10.0.0.0/31", "10.0.0.0/7", "2001:db8::/64"} {
		c := testConfig()
		c.SYN, c.SYNSrcPrefix = true, netip.MustParsePrefix(bad)
		if _, err := NewBuilder(c, 1); err == nil {
			t.Fatalf("source prefix %s accepted", bad)
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
	for _, prefix := range []string{"", "10.0.0.0/16"} {
		c := testConfig()
		c.SYN, c.SYNDstPort = true, 9
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
