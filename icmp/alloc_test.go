package icmp_test

import (
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/icmp"
)

// Every per-packet function must not allocate: these tests fail if one does.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	syn4, syn6 := synPkt(c4, s4, 1), synPkt(c6, s6, 1)
	big4, big6 := bigUDP(c4, s4), bigUDP(c6, s6)
	out := make([]byte, 1500)
	src4, src6 := r4.As16(), r6.As16()
	var l icmp.Limiter
	var now conntrack.Time
	tr4 := newToggle(t, families[0], header.ProtoUDP)
	tr6 := newToggle(t, families[1], header.ProtoTCP)
	for _, c := range []struct {
		name string
		fn   func()
	}{
		{"Build/v4-time-exceeded", func() { icmp.Build(out, icmp.TimeExceeded, src4, syn4, 0) }},
		{"Build/v4-frag-needed", func() { icmp.Build(out, icmp.FragNeeded, src4, big4, 1280) }},
		{"Build/v6-packet-too-big", func() { icmp.Build(out, icmp.FragNeeded, src6, big6, 1280) }},
		{"Build/refused", func() { icmp.Build(out[:10], icmp.TimeExceeded, src4, syn4, 0) }},
		{"MaySend/v4-syn", func() { icmp.MaySend(syn4, icmp.TimeExceeded) }},
		{"MaySend/v6-udp", func() { icmp.MaySend(big6, icmp.FragNeeded) }},
		{"MaySend/v6-syn", func() { icmp.MaySend(syn6, icmp.AdminProhibited) }},
		{"Check", func() { icmp.Check(big4, 1280) }},
		{"Limiter.Allow", func() { now += conntrack.Millisecond; l.Allow(now) }},
		{"TranslateRelated/v4-udp", func() { tr4.step() }},
		{"TranslateRelated/v6-tcp", func() { tr6.step() }},
	} {
		if n := testing.AllocsPerRun(200, c.fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", c.name, n)
		}
	}
	if tr4.fails+tr6.fails != 0 {
		t.Errorf("translations failed: %d", tr4.fails+tr6.fails)
	}
}

// toggle holds an ICMP error about a translated flow (reply direction) and
// translates it back and forth in place: step i translates N -> C, step i+1
// the result C -> N (the same rewrite with client and NAT endpoints
// swapped), so a benchmark needs no copy per iteration.
type toggle struct {
	pkt   []byte
	p     conntrack.Packet
	fwd   bool
	orig  [2]conntrack.Key
	tr    [2]conntrack.Translation
	nat   [2][16]byte
	fails int
}

func newToggle(t testing.TB, f family, proto uint8) *toggle {
	sent := snat(outbound(f, proto, false, 1), f.n, nport)
	tg := &toggle{pkt: build(t, icmp.TimeExceeded, f.r, sent, 0)}
	if r := conntrack.Parse(tg.pkt, 0, &tg.p); r != drop.None || tg.p.Kind != conntrack.KindRelated {
		t.Fatalf("Parse: %v", r)
	}
	k := tg.p.Key // server -> N:nport
	tg.orig[0] = conntrack.Key{Src: f.c.As16(), Dst: k.Src, SrcPort: cport, DstPort: k.SrcPort, Proto: proto}
	tg.tr[0] = conntrack.Translation{Addr: 1, Port: nport}
	tg.nat[0] = f.n.As16()
	tg.orig[1] = conntrack.Key{Src: f.n.As16(), Dst: k.Src, SrcPort: nport, DstPort: k.SrcPort, Proto: proto}
	tg.tr[1] = conntrack.Translation{Addr: 1, Port: cport}
	tg.nat[1] = f.c.As16()
	return tg
}

func (tg *toggle) step() {
	i := 0
	if tg.fwd {
		i = 1
	}
	tg.fwd = !tg.fwd
	if icmp.TranslateRelated(tg.pkt, &tg.p, conntrack.Reply, tg.orig[i], tg.tr[i], tg.nat[i]) != drop.None {
		tg.fails++
	}
}
