package snat

import (
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// Every per-packet function must not allocate: this test fails if one does.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	h := newHarness(t, 2, 1<<12, automap(PortRange{1024, 1099}))
	a := h.n.Allocator(0)
	k := tcpKey(client, 1000, server, 443)
	for h.tb.ShardOfSrc(&k) != 0 {
		k.SrcPort++
	}
	// Fill most of the range so that Allocate also scans and overrides.
	full := tcpKey(client, 2000, server, 8443)
	for range 200 {
		full.SrcPort++
		if h.tb.ShardOfSrc(&full) == 0 {
			h.open(full)
		}
	}
	pkts := map[string][]byte{}
	var ps = map[string]conntrack.Packet{}
	for name, spec := range map[string]headertest.Spec{
		"tcp4":  {Src: client, Dst: server, Proto: header.ProtoTCP, SrcPort: 1000, DstPort: 443, Flags: header.TCPFlagACK},
		"udp6":  {Src: client6, Dst: server6, Proto: header.ProtoUDP, SrcPort: 1000, DstPort: 53, Payload: []byte("q")},
		"icmp4": {Src: client, Dst: server, Proto: header.ProtoICMP, ICMPType: header.ICMPv4EchoRequest, Ident: 5},
		"icmp6": {Src: client6, Dst: server6, Proto: header.ProtoICMPv6, ICMPType: header.ICMPv6EchoRequest, Ident: 5},
	} {
		pkts[name] = headertest.Build(spec)
		ps[name] = parse(t, pkts[name])
	}
	now := h.now
	scanAt := now
	scans := a.Stats().Counters[CtrScans]
	port := uint16(2000)
	cases := []struct {
		name string
		fn   func()
	}{
		{"Allocate+Abandon", func() {
			tr, _ := a.Allocate(&k, now)
			a.Abandon(&k, tr)
		}},
		{"Allocate/full-scan", func() {
			// Past fullRetry each time: a full scan of the range (for
			// 119 of the 201 runs, until the filling SYN_SENT flows
			// expire after 120 s).
			scanAt += fullRetry + conntrack.Millisecond
			tr, r := a.Allocate(&full, scanAt)
			if r == 0 {
				a.Abandon(&full, tr)
			}
		}},
		{"Release", func() {
			port++
			a.Release(&k, conntrack.Translation{Addr: 1, Port: port}, true, now)
		}},
		{"Serve/idle", func() { a.Serve(now) }},
		{"NAT.Addr", func() { _ = h.n.Addr(1) }},
	}
	for name := range pkts {
		pkt, p := pkts[name], ps[name]
		nat := natIP.As16()
		if pkt[0]>>4 == 6 {
			nat = natIP6.As16()
		}
		orig := p.Key
		cases = append(cases,
			struct {
				name string
				fn   func()
			}{"RewriteOriginal/" + name, func() { RewriteOriginal(pkt, &p, conntrack.Translation{Addr: 1, Port: 7}, nat) }},
			struct {
				name string
				fn   func()
			}{"RewriteReply/" + name, func() { RewriteReply(pkt, &p, &orig) }},
		)
	}
	for _, c := range cases {
		if n := testing.AllocsPerRun(200, c.fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", c.name, n)
		}
	}
	if a.Stats().Counters[CtrScans]-scans < 100 {
		t.Errorf("the full-scan case did not scan")
	}
}
