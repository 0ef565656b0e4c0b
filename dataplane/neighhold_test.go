package dataplane

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// The first packets toward a next hop being resolved are held, at most
// holdPerHop of them, and sent as they arrived (translated, hop limit one
// lower) once the worker sees the next hop's address; packets beyond the
// bound, and held ones still unresolved after holdTimeout, are dropped as
// no_neighbour. ipFar is routed via 203.0.113.9, unknown at first.
func TestPipelineNeighbourHold(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	hop := netip.MustParseAddr("203.0.113.9")
	syn := func(sport uint16) headertest.Spec {
		return headertest.Spec{Src: ipClient, Dst: ipFar, Proto: header.ProtoTCP, SrcPort: sport, DstPort: 443,
			Flags: header.TCPFlagSYN, Seq: 7, TTL: 64, ID: 3}
	}
	for i := range holdPerHop {
		if out, r := tp.send(0, eth(syn(uint16(40000+i)), macClient, macEdgeIn)); out != nil || r != drop.None {
			t.Fatalf("packet %d toward an unresolved hop: out %v, %v; want held", i, out != nil, r)
		}
	}
	if out, r := tp.send(0, eth(syn(40100), macClient, macEdgeIn)); out != nil || r != drop.NoNeighbour {
		t.Fatalf("packet %d toward the hop: out %v, %v; want no_neighbour (hold bound)", holdPerHop+1, out != nil, r)
	}
	if n := tp.e.neigh.Stats().Held; n != holdPerHop {
		t.Fatalf("held %d, want %d", n, holdPerHop)
	}
	// Resolved: the next batch sends them, translated as they were.
	macHop := headertest.MustMAC("02:00:00:00:02:09")
	tp.e.neigh.store(map[neighKey][6]byte{{1, ipClient.As16()}: macClient, {2, ipServer.As16()}: macServer, {2, hop.As16()}: macHop})
	tp.out = tp.out[:0]
	tp.w.pipeline(0, nil, tp.now)
	tp.w.transmit(1)
	if len(tp.out) != holdPerHop {
		t.Fatalf("%d held packets sent after resolution, want %d", len(tp.out), holdPerHop)
	}
	for i, o := range tp.out {
		k := conntrack.MakeKey(header.ProtoTCP, netip.AddrPortFrom(ipClient, uint16(40000+i)), netip.AddrPortFrom(ipFar, 443))
		want := syn(uint16(40000 + i))
		want.Src, want.SrcPort, want.TTL = ipSNAT, tp.natPort(k), 63
		if w := eth(want, macEdgeOut, macHop); o.port != 1 || !bytes.Equal(o.frame, w) {
			t.Fatalf("held packet %d sent\n got %x\nwant %x", i, o.frame, w)
		}
	}
	if st := tp.e.neigh.Stats(); st.HeldSent != holdPerHop || tp.w.held.waiting != 0 {
		t.Fatalf("sent %d, waiting %d", st.HeldSent, tp.w.held.waiting)
	}

	// Never resolved: dropped after holdTimeout, with an event.
	far2 := netip.MustParseAddr("203.0.113.77")
	spec := headertest.Spec{Src: ipClient, Dst: far2, Proto: header.ProtoUDP, SrcPort: 5000, DstPort: 53, Payload: []byte("q")}
	if out, r := tp.send(0, eth(spec, macClient, macEdgeIn)); out != nil || r != drop.None {
		t.Fatalf("toward %v: out %v, %v; want held", far2, out != nil, r)
	}
	tp.readEvents()
	tp.now += holdTimeout
	tp.w.pipeline(0, nil, tp.now)
	if tp.w.drops[drop.NoNeighbour] != 1 || tp.e.neigh.Stats().HeldDropped != 1 || tp.w.held.waiting != 0 {
		t.Fatalf("after the timeout: no_neighbour %d, held dropped %d, waiting %d", tp.w.drops[drop.NoNeighbour],
			tp.e.neigh.Stats().HeldDropped, tp.w.held.waiting)
	}
	tp.w.flush()
	evs := tp.readEvents()
	if len(evs) != 1 || evs[0].Reason != drop.NoNeighbour || evs[0].Key.DstAddr() != far2 {
		t.Fatalf("events %+v", evs)
	}
}

// Holding and releasing allocate nothing.
func TestNeighbourHoldZeroAllocs(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	tp.w.testTX = func(int, []byte) {}
	hop := netip.MustParseAddr("203.0.113.9")
	frame := eth(headertest.Spec{Src: ipClient, Dst: ipFar, Proto: header.ProtoUDP, SrcPort: 5000, DstPort: 53, Payload: []byte("q")},
		macClient, macEdgeIn)
	work := [][]byte{make([]byte, len(frame))}
	resolved := map[neighKey][6]byte{{1, ipClient.As16()}: macClient, {2, hop.As16()}: macServer}
	unresolved := map[neighKey][6]byte{{1, ipClient.As16()}: macClient}
	tp.e.neigh.store(unresolved)
	unres, res := tp.e.neigh.cur.Load(), (*neighTable)(nil)
	tp.e.neigh.store(resolved)
	res = tp.e.neigh.cur.Load()
	n := testing.AllocsPerRun(200, func() {
		tp.now += resolveWindow // a new resolution budget
		select {
		case <-tp.e.neigh.resolve: // the mirror's side (not running here)
		default:
		}
		tp.e.neigh.cur.Store(unres)
		copy(work[0], frame)
		tp.w.pipeline(0, work, tp.now) // held
		tp.e.neigh.cur.Store(res)
		tp.w.pipeline(0, nil, tp.now) // sent
		tp.w.transmit(1)
	})
	if n != 0 {
		t.Fatalf("%v allocations per hold and release", n)
	}
	if st := tp.e.neigh.Stats(); st.HeldSent < 200 {
		t.Fatalf("held %d, sent %d", st.Held, st.HeldSent)
	}
}
