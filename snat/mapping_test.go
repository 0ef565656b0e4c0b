package snat

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

func eim(ports PortRange, f Filtering) Config {
	return Config{Automap: natIP, Ports: ports, Mapping: EndpointIndependent, Filtering: f}
}

var server2 = netip.MustParseAddr("203.0.113.9")

// RFC 4787 REQ-1 / RFC 5382 REQ-1: one inside endpoint keeps one external
// endpoint for every destination under endpoint-independent mapping; under
// endpoint-dependent mapping each destination gets a port of its own.
func TestMappingAcrossDestinations(t *testing.T) {
	for _, shards := range []int{1, 4} {
		for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
			mk := tcpKey
			if proto == header.ProtoUDP {
				mk = udpKey
			}
			dests := []netip.AddrPort{
				netip.AddrPortFrom(server, 443), netip.AddrPortFrom(server, 80),
				netip.AddrPortFrom(server2, 443), netip.AddrPortFrom(server2, 3478),
			}
			h := newHarness(t, shards, 1<<12, eim(PortRange{}, 0))
			d := newHarness(t, shards, 1<<12, Config{Automap: natIP, Mapping: EndpointDependent})
			for src := range uint16(20) {
				var eimPorts, edmPorts []uint16
				for _, dst := range dests {
					k := mk(client, 30000+src, dst.Addr(), dst.Port())
					tr, _ := h.mustOpen(k)
					eimPorts = append(eimPorts, tr.Port)
					// The flow's reply lands on the shard that owns k.
					rk := h.tb.Shard(0).ReplyKey(&k, tr)
					if h.tb.ShardOfDst(&rk) != h.tb.ShardOfSrc(&k) {
						t.Fatalf("%d shards: reply %v of %v lands on shard %d, the flow on %d", shards, rk, k, h.tb.ShardOfDst(&rk), h.tb.ShardOfSrc(&k))
					}
					tr, _ = d.mustOpen(k)
					edmPorts = append(edmPorts, tr.Port)
				}
				for _, p := range eimPorts {
					if p != eimPorts[0] {
						t.Fatalf("%d shards, proto %d: EIM gave one endpoint ports %v", shards, proto, eimPorts)
					}
				}
				same := true
				for _, p := range edmPorts {
					same = same && p == edmPorts[0]
				}
				if same {
					t.Fatalf("%d shards, proto %d: EDM gave one endpoint the same port %v toward every destination", shards, proto, edmPorts)
				}
			}
			if s := h.stats(); s.Counters[CtrMappingsMade] != 20 || s.Counters[CtrMappingReused] != 60 {
				t.Fatalf("%d shards: made %d reused %d mappings, want 20 and 60", shards, s.Counters[CtrMappingsMade], s.Counters[CtrMappingReused])
			}
		}
	}
}

// No two inside endpoints share an external endpoint (no port overloading,
// RFC 4787 REQ-3), and a free inside port is kept (port preservation).
func TestMappingUniqueAndPreserved(t *testing.T) {
	h := newHarness(t, 1, 1<<12, eim(PortRange{1024, 1123}, 0))
	seen := map[uint16]netip.Addr{}
	for i := range 100 {
		src := netip.AddrFrom4([4]byte{10, 0, 0, byte(2 + i%50)})
		k := udpKey(src, 1024+uint16(i/50), server, 53)
		tr, _ := h.mustOpen(k)
		if other, dup := seen[tr.Port]; dup {
			t.Fatalf("port %d given to %v and %v", tr.Port, other, src)
		}
		seen[tr.Port] = src
	}
	// The range is full: the 101st endpoint is refused, counted.
	if _, _, r := h.open(udpKey(client, 5000, server2, 53)); r != drop.SNATExhausted {
		t.Fatalf("endpoint 101 in a 100-port range: %v", r)
	}
	p := newHarness(t, 1, 1<<12, eim(PortRange{}, 0))
	tr, _ := p.mustOpen(udpKey(client, 40000, server, 3478))
	if tr.Port != 40000 {
		t.Fatalf("inside port 40000 free, mapped to %d", tr.Port)
	}
	// Another host's 40000 is taken: it gets another port.
	tr, _ = p.mustOpen(udpKey(netip.MustParseAddr("10.0.0.3"), 40000, server, 3478))
	if tr.Port == 40000 {
		t.Fatal("two hosts mapped to port 40000")
	}
	if c := p.stats().Counters[CtrPortPreserved]; c != 1 {
		t.Fatalf("port_preserved %d, want 1", c)
	}
}

// A third party's datagram toward a mapping is admitted or refused by the
// mapping's filtering behaviour (RFC 4787 section 5); an admitted one
// opens a flow of the inside endpoint through the mapping.
func TestMappingFiltering(t *testing.T) {
	third := netip.MustParseAddr("192.0.2.200")
	cases := []struct {
		f                        Filtering
		samePort, otherPort, far bool // admitted: the server from a port it was not sent to / another port; another address
	}{
		{AddressPortDependent, false, false, false},
		{AddressDependent, true, true, false},
		{EndpointIndependentFiltering, true, true, true},
	}
	for _, c := range cases {
		h := newHarness(t, 2, 1<<12, eim(PortRange{}, c.f))
		k := udpKey(client, 5000, server, 3478)
		tr, _ := h.mustOpen(k)
		s := h.tb.ShardOfSrc(&k)
		a := h.n.Allocator(s)
		ext := netip.AddrPortFrom(natIP, tr.Port)
		for _, in := range []struct {
			from netip.AddrPort
			want bool
		}{
			{netip.AddrPortFrom(server, 3479), c.samePort},
			{netip.AddrPortFrom(server, 9999), c.otherPort},
			{netip.AddrPortFrom(third, 3478), c.far},
		} {
			ik := conntrack.MakeKey(header.ProtoUDP, in.from, ext)
			if got := h.tb.ShardOfDst(&ik); got != s {
				t.Fatalf("%v: datagram toward the mapping lands on shard %d, the mapping on %d", c.f, got, s)
			}
			orig, itr, ok, r := a.Admit(&ik, false, h.now)
			if !ok {
				t.Fatalf("%v: %v not seen as toward a mapping", c.f, ik)
			}
			if in.want != (r == drop.None) {
				t.Fatalf("%v: datagram from %v: %v, want admitted %v", c.f, in.from, r, in.want)
			}
			if r != drop.None {
				continue
			}
			if want := udpKey(client, 5000, in.from.Addr(), in.from.Port()); orig != want || itr != tr {
				t.Fatalf("%v: admitted as %v %+v, want %v %+v", c.f, orig, itr, want, tr)
			}
			p := packet(ik)
			v := h.tb.Shard(s).CreateInbound(&p, &orig, conntrack.NewFlow{NAT: itr}, h.now)
			if v.Action != conntrack.Forward || v.Dir != conntrack.Reply {
				t.Fatalf("%v: CreateInbound: %+v", c.f, v)
			}
			// The inside endpoint's answer is the flow's original direction.
			ans := packet(orig)
			if v := h.tb.Shard(s).Track(&ans, h.now); v.Action != conntrack.Forward || v.Dir != conntrack.Original || v.State != conntrack.UDPMultiple {
				t.Fatalf("%v: answer: %+v", c.f, v)
			}
		}
		// Not a mapping: a port nobody holds, or TCP.
		ik := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(third, 1), netip.AddrPortFrom(natIP, tr.Port+1))
		if _, _, ok, _ := a.Admit(&ik, false, h.now); ok {
			t.Fatalf("%v: datagram to an unmapped port seen as toward a mapping", c.f)
		}
		ik = conntrack.MakeKey(header.ProtoTCP, netip.AddrPortFrom(third, 1), ext)
		if _, _, ok, _ := a.Admit(&ik, false, h.now); ok {
			t.Fatalf("%v: TCP seen as toward a UDP mapping", c.f)
		}
	}
}

// A mapping lives while any flow uses it; a UDP mapping MappingTimeout
// longer (RFC 4787 REQ-5); a TCP mapping that carried a connection leaves
// its port quarantined for other inside endpoints (RFC 6888 REQ-8).
func TestMappingLifetime(t *testing.T) {
	cfg := eim(PortRange{2000, 2000}, 0)
	cfg.MappingTimeout = 2 * time.Minute
	cfg.Quarantine = time.Minute
	h := newHarness(t, 1, 1<<12, cfg)
	k1 := udpKey(client, 5000, server, 53)
	tr, ref := h.mustOpen(k1)
	_, ref2 := h.mustOpen(udpKey(client, 5000, server2, 53))
	h.close(k1, ref)
	other := udpKey(netip.MustParseAddr("10.0.0.3"), 5000, server, 53)
	if _, _, r := h.open(other); r != drop.SNATExhausted {
		t.Fatalf("the only port, mapped and in use: %v", r)
	}
	h.close(udpKey(client, 5000, server2, 53), ref2)
	h.advance(2*60*conntrack.Second - 1)
	if _, _, r := h.open(other); r != drop.SNATExhausted {
		t.Fatalf("UDP mapping idle less than mapping_timeout taken by another endpoint: %v", r)
	}
	// The endpoint itself gets its mapping back.
	tr2, ref3 := h.mustOpen(udpKey(client, 5000, server2, 123))
	if tr2 != tr {
		t.Fatalf("endpoint's idle mapping %+v not reused: %+v", tr, tr2)
	}
	h.close(udpKey(client, 5000, server2, 123), ref3)
	h.advance(2 * 60 * conntrack.Second)
	// It carried a connection: quarantined for others for a minute.
	if _, _, r := h.open(other); r != drop.SNATExhausted {
		t.Fatalf("ended mapping's port taken within the quarantine: %v", r)
	}
	h.advance(60 * conntrack.Second)
	if tr, _ := h.mustOpen(other); tr.Port != 2000 {
		t.Fatalf("port %d", tr.Port)
	}

	// TCP: the mapping ends with its flow.
	h = newHarness(t, 1, 1<<12, cfg)
	k := tcpKey(client, 5000, server, 443)
	_, ref, _ = h.openUnanswered(k)
	h.close(k, ref)
	if tr, _ := h.mustOpen(tcpKey(netip.MustParseAddr("10.0.0.3"), 5000, server, 443)); tr.Port != 2000 {
		t.Fatalf("port %d", tr.Port)
	}
	if s := h.stats(); s.Counters[CtrMappingsEnded] != 1 {
		t.Fatalf("mappings_ended %d", s.Counters[CtrMappingsEnded])
	}
}

// Abandon of a mapping's first flow removes the mapping; an endpoint-
// dependent flow never takes a mapped port.
func TestMappingAbandonAndMixed(t *testing.T) {
	h := newHarness(t, 1, 1<<12, eim(PortRange{3000, 3001}, 0))
	a := h.n.Allocator(0)
	k := udpKey(client, 7000, server, 53)
	tr, r := a.Allocate(&k, h.now)
	if r != drop.None {
		t.Fatal(r)
	}
	a.Abandon(&k, tr)
	if h.n.Allocator(0).m.n != 0 {
		t.Fatal("abandoned first flow left its mapping")
	}
	mapped, _ := h.mustOpen(k)
	if err := h.n.Reconfigure(&Config{Automap: natIP, Ports: PortRange{3000, 3001}, Mapping: EndpointDependent}); err != nil {
		t.Fatal(err)
	}
	// Toward another destination, where no live flow's reply key stands
	// in the way: only the mapping keeps its port from the EDM flows.
	for i := range 3 {
		tr, _, r := h.open(udpKey(netip.MustParseAddr("10.0.0.9"), uint16(100+i), server2, 53))
		if i == 0 && (r != drop.None || tr.Port == mapped.Port) {
			t.Fatalf("EDM flow: %+v %v; the mapping holds port %d", tr, r, mapped.Port)
		}
		if i > 0 && r != drop.SNATExhausted {
			t.Fatalf("EDM flow %d, the other port mapped: %+v %v", i, tr, r)
		}
	}
}

func TestMappingZeroAllocs(t *testing.T) {
	h := newHarness(t, 1, 1<<14, eim(PortRange{}, EndpointIndependentFiltering))
	a := h.n.Allocator(0)
	k := udpKey(client, 9000, server, 53)
	h.mustOpen(k)
	i := uint16(0)
	n := testing.AllocsPerRun(1000, func() {
		i++
		k2 := udpKey(client, 9000, server, 1000+i)
		tr, r := a.Allocate(&k2, h.now)
		if r != drop.None {
			t.Fatal(r)
		}
		a.Abandon(&k2, tr)
		k3 := udpKey(client, 20000+i, server2, 53)
		tr, r = a.Allocate(&k3, h.now)
		if r != drop.None {
			t.Fatal(r)
		}
		a.Abandon(&k3, tr)
		ik := conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(server2, 1+i), netip.AddrPortFrom(natIP, 9000))
		orig, tr, ok, r := a.Admit(&ik, false, h.now)
		if !ok || r != drop.None {
			t.Fatal(ok, r)
		}
		a.Abandon(&orig, tr)
	})
	if n != 0 {
		t.Fatalf("%v allocations per round", n)
	}
}

// served runs fn (a control-plane call) with the test goroutine serving
// every allocator, as the workers do between batches.
func (h *harness) served(fn func()) {
	h.t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	for {
		select {
		case <-done:
			return
		default:
			for _, a := range h.n.allocs {
				a.Serve(h.now)
			}
		}
	}
}

// The control plane lists mappings and ends the idle ones.
func TestMappingsListAndFlush(t *testing.T) {
	h := newHarness(t, 1, 1<<12, eim(PortRange{}, AddressDependent)) // one shard: the inside port is kept
	busy := udpKey(client, 5000, server, 53)
	h.mustOpen(busy)
	h.mustOpen(udpKey(client, 5000, server2, 53))
	idle := udpKey(netip.MustParseAddr("10.0.0.3"), 6000, server, 53)
	_, ref := h.mustOpen(idle)
	h.close(idle, ref)
	var ms []MappingStat
	var err error
	h.served(func() { ms, err = h.n.Mappings(context.Background()) })
	if err != nil || len(ms) != 2 {
		t.Fatalf("mappings %+v, %v", ms, err)
	}
	if m := ms[0]; m.Inside != netip.AddrPortFrom(client, 5000) || m.External != netip.AddrPortFrom(natIP, 5000) ||
		m.Flows != 2 || m.Filtering != AddressDependent || m.Proto != header.ProtoUDP || m.IdleUntil != 0 {
		t.Fatalf("busy mapping %+v", m)
	}
	if m := ms[1]; m.Flows != 0 || m.IdleUntil != h.now+conntrack.Time(DefaultMappingTimeout) || !m.Carried {
		t.Fatalf("idle mapping %+v", m)
	}
	var left int
	h.served(func() { left, err = h.n.FlushIdleMappings(context.Background()) })
	if err != nil || left != 1 {
		t.Fatalf("flush: %d left, %v", left, err)
	}
}

// A search that misses (random probes and one chunk of the scan over
// mapped ports) refuses the flow at the probe bound, not as exhausted; the
// scan goes on with the next endpoints and finds the free ports, and the
// range is called exhausted only after a whole pass found nothing.
func TestMappingScanPass(t *testing.T) {
	h := newHarness(t, 1, 1<<13, eim(PortRange{1024, 2047}, 0))
	for i := range 1000 { // ports 1024-2023 kept: mapped ports in one block
		h.mustOpen(udpKey(client, uint16(1024+i), server, 53))
	}
	got, limited := 0, 0
	for i := 0; ; i++ {
		if i > 2000 {
			t.Fatalf("no end: %d mapped, %d refused at the probe bound", got, limited)
		}
		k := udpKey(netip.MustParseAddr("10.0.0.9"), uint16(30000+i), server2, 53)
		tr, _, r := h.open(k)
		switch r {
		case drop.None:
			if tr.Port < 2024 {
				t.Fatalf("port %d was mapped", tr.Port)
			}
			got++
		case drop.SNATProbeLimit:
			limited++
		case drop.SNATExhausted:
			if got != 24 {
				t.Fatalf("exhausted with %d of the 24 free ports mapped", got)
			}
			if limited > 1024/ScanProbes+2 {
				t.Fatalf("%d searches refused at the probe bound before the pass ended", limited)
			}
			return
		default:
			t.Fatal(r)
		}
	}
}

// IsAddr knows every translated address, for a few (compared in place) and
// for many (a map).
func TestIsAddr(t *testing.T) {
	for _, n := range []int{1, 20} {
		var addrs []netip.Addr
		for i := range n {
			addrs = append(addrs, netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)}))
		}
		h := newHarness(t, 1, 1024, Config{Mode: Pools, Pools: []Pool{{Name: "p", Addrs: addrs}}})
		for _, a := range addrs {
			if b := a.As16(); !h.n.IsAddr(&b) {
				t.Fatalf("%d addresses: %v not known", n, a)
			}
		}
		for _, a := range []netip.Addr{netip.MustParseAddr("198.51.100.200"), client, {}} {
			if b := a.As16(); h.n.IsAddr(&b) {
				t.Fatalf("%d addresses: %v known", n, a)
			}
		}
	}
}
