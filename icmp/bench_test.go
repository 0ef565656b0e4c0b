package icmp_test

import (
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/icmp"
)

var (
	sinkN      int
	sinkReason drop.Reason
	sinkBool   bool
	sinkKind   icmp.Kind
)

func BenchmarkBuild(b *testing.B) {
	out := make([]byte, 1500)
	for _, bc := range []struct {
		name string
		k    icmp.Kind
		src  [16]byte
		off  []byte
		mtu  uint32
	}{
		{"v4-time-exceeded-syn", icmp.TimeExceeded, r4.As16(), synPkt(c4, s4, 1), 0},
		{"v4-frag-needed-1428B", icmp.FragNeeded, r4.As16(), bigUDP(c4, s4), 1280},
		{"v6-time-exceeded-syn", icmp.TimeExceeded, r6.As16(), synPkt(c6, s6, 1), 0},
		{"v6-packet-too-big-1448B", icmp.FragNeeded, r6.As16(), bigUDP(c6, s6), 1280},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.off)))
			for b.Loop() {
				sinkN, sinkReason = icmp.Build(out, bc.k, bc.src, bc.off, bc.mtu)
			}
			if sinkReason != drop.None {
				b.Fatal(sinkReason)
			}
		})
	}
}

func BenchmarkMaySend(b *testing.B) {
	for _, bc := range []struct {
		name string
		pkt  []byte
		k    icmp.Kind
		want drop.Reason
	}{
		{"v4-tcp-syn", synPkt(c4, s4, 1), icmp.TimeExceeded, drop.None},
		{"v4-tcp-ack", tcp(c4, s4, header.TCPFlagACK), icmp.TimeExceeded, drop.ICMPNotSentTCPNotSYN},
		{"v6-udp", bigUDP(c6, s6), icmp.FragNeeded, drop.None},
		{"v6-icmp-error", icmpMsg(c6, s6, header.ICMPv6DestUnreachable, 4), icmp.TimeExceeded, drop.ICMPNotSentError},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkReason = icmp.MaySend(bc.pkt, bc.k)
			}
			if sinkReason != bc.want {
				b.Fatal(sinkReason)
			}
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	pkt := bigUDP(c4, s4)
	b.ReportAllocs()
	for b.Loop() {
		sinkKind, sinkBool = icmp.Check(pkt, 1280)
	}
}

func BenchmarkLimiterAllow(b *testing.B) {
	var l icmp.Limiter
	var now conntrack.Time
	b.ReportAllocs()
	for b.Loop() {
		now += 100 * 1000 // 100 µs apart: 10k/s offered, 100/s allowed
		sinkBool = l.Allow(now)
	}
}

// BenchmarkTranslateRelated translates one error back and forth in place
// (see toggle): each iteration is one full TranslateRelated, checksum
// verification included.
func BenchmarkTranslateRelated(b *testing.B) {
	for _, bc := range []struct {
		name  string
		f     family
		proto uint8
	}{
		{"v4-udp", families[0], header.ProtoUDP},
		{"v4-tcp", families[0], header.ProtoTCP},
		{"v4-echo", families[0], header.ProtoICMP},
		{"v6-udp", families[1], header.ProtoUDP},
		{"v6-tcp", families[1], header.ProtoTCP},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tg := newToggle(b, bc.f, bc.proto)
			b.ReportAllocs()
			for b.Loop() {
				tg.step()
			}
			if tg.fails != 0 {
				b.Fatalf("%d translations failed", tg.fails)
			}
		})
	}
}
