package conntrack

import (
	"net/netip"
	"testing"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// CreateInbound opens the inside endpoint's UDP flow for a datagram from
// the remote end that a NAT mapping admitted: the datagram is its first
// packet, in the Reply direction; the inside endpoint's answer moves it to
// UDP_MULTIPLE (the remote's own datagrams alone to UDP_SINGLE, as an
// originator's would). Anything else is refused.
func TestCreateInbound(t *testing.T) {
	tb, err := New(Config{MaxFlows: 64, Memory: MemoryHeap, HistorySize: 4, EventRingSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	s := tb.Shard(0)
	natIdx, err := tb.InternAddr(snatAddr)
	if err != nil {
		t.Fatal(err)
	}
	nat := Translation{Addr: natIdx, Port: 4000}
	orig := MakeKey(header.ProtoUDP, netip.AddrPortFrom(client, 5000), netip.AddrPortFrom(server, 3478))
	in := Packet{Kind: KindFlow, Key: s.ReplyKey(&orig, nat), WScale: -1}
	now := Second

	// Refused: not UDP, not the reply of orig under nat, no translation.
	tcp := in
	tcp.Key.Proto = header.ProtoTCP
	wrong := in
	wrong.Key.SrcPort++
	for _, c := range []struct {
		name string
		p    Packet
		nat  Translation
	}{{"tcp", tcp, nat}, {"not the reply key", wrong, nat}, {"untranslated", in, Translation{}}} {
		p := c.p
		if v := s.CreateInbound(&p, &orig, NewFlow{NAT: c.nat}, now); v.Action != Drop || v.Reason != drop.NoState {
			t.Fatalf("%s: %+v", c.name, v)
		}
	}

	v := s.CreateInbound(&in, &orig, NewFlow{NAT: nat}, now)
	if v.Action != Forward || v.Dir != Reply || v.State != UDPFirst {
		t.Fatalf("CreateInbound: %+v", v)
	}
	if v := s.CreateInbound(&in, &orig, NewFlow{NAT: nat}, now); v.Action != Drop || v.Reason != drop.KeyInUse {
		t.Fatalf("twice: %+v", v)
	}
	// The remote end again: its datagrams are the originator's.
	again := in
	if v := s.Track(&again, now); v.Dir != Reply || v.State != UDPSingle {
		t.Fatalf("remote's second datagram: %+v", v)
	}
	ans := Packet{Kind: KindFlow, Key: orig, WScale: -1}
	if v := s.Track(&ans, now); v.Action != Forward || v.Dir != Original || v.State != UDPMultiple {
		t.Fatalf("inside endpoint's answer: %+v", v)
	}
}
