package conntrack

import (
	"context"
	"net/netip"
	"runtime"
	"testing"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// Test fixtures: a client inside, a server outside, SNAT to snatAddr.
var (
	client   = netip.MustParseAddr("10.0.0.2")
	server   = netip.MustParseAddr("192.0.2.80")
	snatAddr = netip.MustParseAddr("198.51.100.1")
	client6  = netip.MustParseAddr("fd00::2")
	server6  = netip.MustParseAddr("2001:db8::80")
	snat6    = netip.MustParseAddr("2001:db8:100::1")
)

// family is one address family's fixtures. The state tests run once per
// family (forEachFamily): the tracker keys, windows and timers IPv4 and IPv6
// flows alike, and any difference between the two runs is a bug.
type family struct {
	name                 string
	client, server, snat netip.Addr
	router               netip.Addr // a router on the way, the source of ICMP errors
	icmp                 uint8      // its ICMP protocol
	echoRequest          uint8      // ICMP types
	echoReply            uint8
	timeExceeded         uint8
	quoteLen             int // an ICMP error's quote: the IP header and 8 bytes
}

var families = []family{
	{"ipv4", client, server, snatAddr, netip.MustParseAddr("203.0.113.1"), header.ProtoICMP,
		header.ICMPv4EchoRequest, header.ICMPv4EchoReply, header.ICMPv4TimeExceeded, 20 + 8},
	{"ipv6", client6, server6, snat6, netip.MustParseAddr("2001:db8:ff::1"), header.ProtoICMPv6,
		header.ICMPv6EchoRequest, header.ICMPv6EchoReply, header.ICMPv6TimeExceeded, 40 + 8},
}

// forEachFamily runs f as a subtest per family.
func forEachFamily(t *testing.T, f func(t *testing.T, fam family)) {
	t.Helper()
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) { f(t, fam) })
	}
}

// clock is a fake clock: tests advance it, never sleep.
type clock struct{ now Time }

func (c *clock) Now() Time           { return c.now }
func (c *clock) Advance(d Time) Time { c.now += d; return c.now }

// newTestTable returns a one-shard heap-backed table and its shard.
func newTestTable(t testing.TB, pol Policy) (*Table, *Shard) {
	t.Helper()
	tb, err := New(Config{MaxFlows: 1024, Memory: MemoryHeap, HistorySize: 64, EventRingSize: 256, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	return tb, tb.Shard(0)
}

// pkt parses a packet built from spec, failing the test on a parse drop.
func pkt(t testing.TB, s headertest.Spec) Packet {
	t.Helper()
	var p Packet
	if r := Parse(headertest.Build(s), 0, &p); r != drop.None {
		t.Fatalf("parse %+v: %v", s, r)
	}
	return p
}

// conn describes one TCP connection through the SNAT box: the client's
// view (orig) and the server's view (after SNAT) share sequence numbers.
type conn struct {
	t          testing.TB
	cport      uint16 // client source port
	sport      uint16 // SNAT port seen by the server
	cisn, sisn uint32
	fam        *family // nil: IPv4 (families[0])
}

func (c *conn) family() *family {
	if c.fam == nil {
		return &families[0]
	}
	return c.fam
}

// out builds a client->server segment as it arrives from inside.
func (c *conn) out(flags uint8, seq, ack uint32, payload int) Packet {
	f := c.family()
	return pkt(c.t, headertest.Spec{Src: f.client, Dst: f.server, Proto: header.ProtoTCP, SrcPort: c.cport, DstPort: 80,
		Flags: flags, Seq: seq, Ack: ack, Window: 65535, Payload: make([]byte, payload)})
}

// in builds a server->SNAT-address segment as it arrives from outside.
func (c *conn) in(flags uint8, seq, ack uint32, payload int) Packet {
	f := c.family()
	return pkt(c.t, headertest.Spec{Src: f.server, Dst: f.snat, Proto: header.ProtoTCP, SrcPort: 80, DstPort: c.sport,
		Flags: flags, Seq: seq, Ack: ack, Window: 65535, Payload: make([]byte, payload)})
}

const (
	SYN    = header.TCPFlagSYN
	ACK    = header.TCPFlagACK
	FIN    = header.TCPFlagFIN
	RST    = header.TCPFlagRST
	PSH    = header.TCPFlagPSH
	SYNACK = SYN | ACK
	FINACK = FIN | ACK
	RSTACK = RST | ACK
)

// harness drives one shard like a data-plane worker would: Track, and on
// Open, Create with the SNAT translation.
type harness struct {
	t   testing.TB
	tb  *Table
	s   *Shard
	clk clock
	nat uint16 // the interned SNAT address of fam
	fam family
}

// newHarness is an IPv4 harness; newFamilyHarness one of either family.
func newHarness(t testing.TB, pol Policy) *harness { return newFamilyHarness(t, pol, families[0]) }

func newFamilyHarness(t testing.TB, pol Policy, fam family) *harness {
	tb, s := newTestTable(t, pol)
	nat, err := tb.InternAddr(fam.snat)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, tb: tb, s: s, clk: clock{now: 1000 * Second}, nat: nat, fam: fam}
}

// conn is a TCP connection of h's family.
func (h *harness) conn(cport, sport uint16, cisn, sisn uint32) *conn {
	return &conn{t: h.t, cport: cport, sport: sport, cisn: cisn, sisn: sisn, fam: &h.fam}
}

// send tracks p, creating the flow (translated to c.sport) when allowed.
func (h *harness) send(p Packet, natPort uint16) Verdict {
	v := h.s.Track(&p, h.clk.now)
	if v.Action == Open {
		v = h.s.Create(&p, NewFlow{NAT: Translation{Addr: h.nat, Port: natPort}}, h.clk.now)
	}
	return v
}

func (h *harness) state(k Key) State {
	r, _, ok := h.s.Lookup(&k, h.clk.now)
	if !ok {
		return StateNone
	}
	return h.s.flows[r].state
}

func netip4(s string) netip.Addr { return netip.MustParseAddr(s) }

// explain runs Table.Explain while serving the shard from the test's own
// goroutine, as the owning worker would between batches.
func (h *harness) explain(k Key) Explanation {
	h.t.Helper()
	type res struct {
		ex  Explanation
		err error
	}
	ch := make(chan res, 1)
	now := h.clk.now
	go func() {
		ex, err := h.tb.Explain(context.Background(), k, 8, now)
		ch <- res{ex, err}
	}()
	for {
		select {
		case r := <-ch:
			if r.err != nil {
				h.t.Fatal(r.err)
			}
			return r.ex
		default:
			h.s.Serve(now)
			runtime.Gosched()
		}
	}
}

func runtimeGosched() { runtime.Gosched() }
