package conntrack

import (
	"net/netip"
	"testing"

	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// Every per-packet function must not allocate: these tests fail if one does.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	tb, err := New(Config{MaxFlows: 1 << 12, Memory: MemoryHeap, HistorySize: 16, EventRingSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	s := tb.Shard(0)
	natIdx, err := tb.InternAddr(snatAddr)
	if err != nil {
		t.Fatal(err)
	}
	sy := establish(t, tb, s, 1000, true, Second)
	now := 2 * Second
	raw := headertest.Build(headertest.Spec{Src: client, Dst: server, Proto: header.ProtoTCP, SrcPort: 1, DstPort: 2,
		Flags: SYN, HasWScale: true, WScale: 7, MSS: 1460})
	raw6 := headertest.Build(headertest.Spec{Src: client6, Dst: server6, Proto: header.ProtoUDP, SrcPort: 1, DstPort: 2})
	quoted := headertest.Build(headertest.Spec{Src: snatAddr, Dst: server, Proto: header.ProtoUDP, SrcPort: 1, DstPort: 2})
	icmpErr := headertest.Build(headertest.Spec{Src: server, Dst: snatAddr, Proto: header.ProtoICMP,
		ICMPType: header.ICMPv4DestUnreachable, ICMPCode: 3, Quote: quoted[:28]})
	garbage := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6}
	batch := sy.batchOrder(3, 64)
	var out [64]Verdict
	var p Packet
	i := 0
	cases := []struct {
		name string
		fn   func()
	}{
		{"Parse/tcp-syn", func() { Parse(raw, 0, &p) }},
		{"Parse/udp6", func() { Parse(raw6, 0, &p) }},
		{"Parse/icmp-error", func() { Parse(icmpErr, 0, &p) }},
		{"Parse/garbage", func() { Parse(garbage, 0, &p) }},
		{"Track/established-orig", func() { s.Track(&sy.orig[i%1000], now); i++ }},
		{"Track/established-reply", func() { s.Track(&sy.rep[i%1000], now); i++ }},
		{"Track/drop", func() { q := sy.orig[0]; q.Seq += 1 << 30; s.Track(&q, now) }},
		{"Track/miss", func() { q := sy.orig[0]; q.Key.SrcPort = 7; s.Track(&q, now) }},
		{"TrackBatch", func() { s.TrackBatch(batch, out[:], now) }},
		{"Lookup", func() { s.Lookup(&sy.orig[5].Key, now) }},
		{"Create+Delete", func() {
			q := Packet{Key: sy.orig[0].Key, Flags: SYN, Seq: 1, WScale: -1}
			q.Key.SrcPort = 9
			v := s.Create(&q, NewFlow{}, now)
			s.Delete(v.Flow, now)
		}},
		{"CreateInbound+Delete", func() {
			orig := MakeKey(header.ProtoUDP, netip.AddrPortFrom(client, 9), netip.AddrPortFrom(server, 53))
			nat := Translation{Addr: natIdx, Port: 4000}
			q := Packet{Kind: KindFlow, Key: s.ReplyKey(&orig, nat), WScale: -1}
			v := s.CreateInbound(&q, &orig, NewFlow{NAT: nat}, now)
			if v.Action != Forward {
				t.Fatalf("CreateInbound: %+v", v)
			}
			s.Delete(v.Flow, now)
		}},
		{"Expire", func() { s.Expire(now, 64) }},
		{"Serve/idle", func() { s.Serve(now) }},
	}
	for _, c := range cases {
		if n := testing.AllocsPerRun(200, c.fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", c.name, n)
		}
	}
}
