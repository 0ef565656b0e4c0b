package dataplane

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/snat"
)

// More of what later fragments must follow (dataplane/fragment.go): the
// IPv6 source translation, the TTL and MTU checks of their own, the port
// they arrived on, and held fragments leaving before the pool reuses
// their frames.

// An IPv6 datagram translated by SNAT (a pool with an IPv6 address): every
// fragment leaves with the translated source, the held one too.
func TestFragmentsIPv6Translated(t *testing.T) {
	tp := v6Pipeline(t)
	nat6 := netip.MustParseAddr("2001:db8:ff::1")
	if err := tp.e.nat.Reconfigure(&snat.Config{Mode: snat.Pools,
		Pools: []snat.Pool{{Name: "p", Addrs: []netip.Addr{ipSNAT, nat6}}}}); err != nil {
		t.Fatal(err)
	}
	host, far := netip.MustParseAddr("fd00::2"), netip.MustParseAddr("2001:db8::5")
	spec := bigUDP(host, far, 5353, 53)
	frags := fragment(t, eth(spec, macClient, macEdgeIn), 0x1badcafe, 1232, 1232)
	out, drops := tp.sendFrames(0, frags[1], frags[0], frags[2])
	if len(out) != 3 || len(drops) != 0 {
		t.Fatalf("%d of 3 fragments left, drops %v", len(out), drops)
	}
	for i, f := range framesOf(out, 1) {
		if src := header.IPv6(f[header.EthernetLen:]).Src(); netip.AddrFrom16(src) != nat6 {
			t.Errorf("fragment %d left with source %v, want %v", i, netip.AddrFrom16(src), nat6)
		}
	}
	want := spec
	want.Src = nat6
	want.SrcPort = tp.natPort(conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(host, 5353), netip.AddrPortFrom(far, 53)))
	checkUDP(t, reassemble(t, framesOf(out, 1)), want)
}

// A later fragment is checked on its own against the egress MTU (edge does
// not fragment) and its TTL: its first fragment's verdict does not cover
// them. No ICMP error is sent about a non-first fragment.
func TestFragmentsLaterChecksTTLAndMTU(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	tp.w.ports[1].mtu = 1400
	spec := bigUDP(ipClient, ipServer, 5400, 53)
	// 1300, 1500 and 268 bytes: the second is over the egress MTU.
	frags := fragment(t, eth(spec, macClient, macEdgeIn), 0x51, 1280, 1480)
	out, drops := tp.sendFrames(0, frags...)
	if len(out) != 2 || drops[drop.MTUExceeded] != 1 || len(drops) != 1 {
		t.Fatalf("%d of 3 fragments left (want 2), drops %v (want mtu_exceeded x1)", len(out), drops)
	}
	for _, s := range out {
		if l := len(s.frame) - header.EthernetLen; l > 1400 || s.port != 1 {
			t.Errorf("a %d-byte fragment left on port %d", l, s.port)
		}
	}

	// A later fragment whose TTL runs out here.
	frags = fragment(t, eth(bigUDP(ipClient, ipServer, 5401, 53), macClient, macEdgeIn), 0x52, 1280, 1280)
	h := header.IPv4(frags[1][header.EthernetLen:])
	h.SetTTL(1)
	h.SetChecksum(h.CalculateChecksum())
	out, drops = tp.sendFrames(0, frags...)
	if len(out) != 2 || drops[drop.TTLExceeded] != 1 || len(drops) != 1 {
		t.Fatalf("TTL 1: %d of 3 fragments left (want 2), drops %v (want ttl_exceeded x1)", len(out), drops)
	}
}

// The datagram a later fragment belongs to includes the port it arrived
// on: a fragment from the outside with an inside flow's addresses and
// identification (spoofed: loose uRPF lets it in) does not follow the
// inside datagram's verdict and translation; it waits for a first fragment
// of its own and expires.
func TestFragmentsKeyedByPort(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	spec := bigUDP(ipClient, ipServer, 5500, 53)
	frags := fragment(t, eth(spec, macClient, macEdgeIn), 0x53, 1480, 1480)
	if out, drops := tp.sendFrames(0, frags[0]); len(out) != 1 || len(drops) != 0 {
		t.Fatalf("first fragment: %d left, drops %v", len(out), drops)
	}
	spoofed := bytes.Clone(frags[1])
	copy(spoofed[:12], append(macEdgeOut[:], macServer[:]...))
	out, drops := tp.sendFrames(1, spoofed)
	if len(out) != 0 || len(drops) != 0 {
		t.Fatalf("a later fragment from the outside with the inside datagram's key: %d left, drops %v; want held", len(out), drops)
	}
	if _, held := tp.w.frags.Len(); held != 1 {
		t.Fatalf("%d frames held, want the spoofed one", held)
	}
	// The real later fragments still follow their first.
	if out, drops := tp.sendFrames(0, frags[1], frags[2]); len(out) != 2 || len(drops) != 0 {
		t.Fatalf("the inside datagram's later fragments: %d of 2 left, drops %v", len(out), drops)
	}
}

// Held fragments handed back when their first fragment is decided leave at
// once: the worker runs several RX batches (each port, the hand-off inbox)
// before it transmits, and a fragment held by a later batch takes the pool
// frame just freed.
func TestFragmentsHeldSentBeforeTheNextBatch(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	a := bigUDP(ipClient, ipServer, 5600, 53)
	b := bigUDP(ipClient, ipServer, 5601, 53)
	for i := range b.Payload {
		b.Payload[i] = 0xee
	}
	fa := fragment(t, eth(a, macClient, macEdgeIn), 0x61, 1480, 1480)
	fb := fragment(t, eth(b, macClient, macEdgeIn), 0x62, 1480, 1480)
	if out, drops := tp.sendFrames(0, fa[1]); len(out) != 0 || len(drops) != 0 {
		t.Fatalf("held: %d left, drops %v", len(out), drops)
	}
	// One worker loop iteration: two batches, then transmit.
	tp.out = tp.out[:0]
	tp.w.pipeline(0, [][]byte{bytes.Clone(fa[0])}, tp.now)
	tp.w.pipeline(0, [][]byte{bytes.Clone(fb[1])}, tp.now)
	tp.w.transmit(0)
	tp.w.transmit(1)
	tp.w.flush()
	iteration := slices.Clone(tp.out)
	out, drops := tp.sendFrames(0, fa[2])
	got := framesOf(append(iteration, out...), 1)
	if len(got) != 3 || len(drops) != 0 {
		t.Fatalf("%d of 3 fragments of the first datagram left, drops %v", len(got), drops)
	}
	want := a
	want.Src = ipSNAT
	want.SrcPort = tp.natPort(conntrack.MakeKey(header.ProtoUDP, netip.AddrPortFrom(ipClient, 5600), netip.AddrPortFrom(ipServer, 53)))
	checkUDP(t, reassemble(t, got), want)
}
