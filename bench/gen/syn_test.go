package gen

import (
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
			f := append([]byte(nil), buf[:n]...)
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
	c := testConfig()
	c.SYN, c.SYNDstPort = true, 9
	b, _ := NewBuilder(c, 8)
	buf := make([]byte, 2048)
	seq := uint64(0)
	if a := testing.AllocsPerRun(10000, func() { b.Build(buf, int(seq%8), seq, Now()); seq++ }); a != 0 {
		t.Fatalf("SYN Build allocates %v per packet", a)
	}
}

func BenchmarkBuildSYN(b *testing.B) {
	c := testConfig()
	c.SYN, c.SYNDstPort = true, 9
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
