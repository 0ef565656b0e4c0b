package header_test

import (
	"strconv"
	"testing"

	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

func BenchmarkIPv4Parse(b *testing.B) {
	pkt := headertest.Build(headertest.Spec{
		Src: headertest.MustAddr("192.0.2.1"), Dst: headertest.MustAddr("198.51.100.2"),
		Proto: header.ProtoTCP, SrcPort: 1234, DstPort: 443, Flags: header.TCPFlagACK, Payload: make([]byte, 64),
	})
	b.ReportAllocs()
	for b.Loop() {
		ip := header.IPv4(pkt)
		if !ip.IsValid(len(pkt)) {
			b.Fatal("invalid")
		}
		sink4 = ip.Src()
		sink4 = ip.Dst()
		sinkU8 = ip.Protocol() + ip.TTL()
		sinkBool = ip.IsFragment()
		tcp := header.TCP(ip.Payload())
		if !tcp.IsValid(len(tcp)) {
			b.Fatal("invalid tcp")
		}
		sinkU16 = tcp.SrcPort() + tcp.DstPort()
		sinkU8 = tcp.Flags()
	}
}

func BenchmarkIPv6Transport(b *testing.B) {
	for _, bc := range []struct {
		name string
		pkt  []byte
	}{
		{"NoExt", buildIPv6Ext(nil, header.ProtoTCP, make([]byte, 20))},
		{"HBH+Dst+Frag", buildIPv6Ext([]ext{generic(header.ProtoHopByHop, 0), generic(header.ProtoDestOpts, 1), fragHdr(0, true, 3)},
			header.ProtoTCP, make([]byte, 20))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ip := header.IPv6(bc.pkt)
			b.ReportAllocs()
			for b.Loop() {
				if !ip.IsValid(len(bc.pkt)) {
					b.Fatal("invalid")
				}
				sinkU8, sinkInt, sinkFrag, sinkBool = ip.Transport()
			}
		})
	}
}

func BenchmarkParseTCPOptions(b *testing.B) {
	opts := []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}
	b.ReportAllocs()
	for b.Loop() {
		sinkOpts, sinkBool = header.ParseTCPOptions(opts)
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{64, 1500} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				sinkU16 = header.Checksum(buf, 0)
			}
		})
	}
}

func BenchmarkChecksumUpdateBytes(b *testing.B) {
	for _, n := range []int{4, 16} {
		old, new := make([]byte, n), make([]byte, n)
		for i := range old {
			old[i], new[i] = byte(i), byte(i*31+5)
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			c := uint16(0x1234)
			for b.Loop() {
				c = header.ChecksumUpdateBytes(c, old, new)
			}
			sinkU16 = c
		})
	}
}

func BenchmarkTCPChecksum1500(b *testing.B) {
	seg := make([]byte, 1480)
	src, dst := []byte{192, 0, 2, 1}, []byte{198, 51, 100, 2}
	b.SetBytes(int64(len(seg)))
	b.ReportAllocs()
	for b.Loop() {
		sinkU16 = header.TCPChecksum(src, dst, seg)
	}
}
