package snat

import (
	"net/netip"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// harness is a conntrack table with a NAT over it and a fake clock: tests
// advance it, never sleep.
type harness struct {
	t   testing.TB
	tb  *conntrack.Table
	n   *NAT
	now conntrack.Time
}

// The allocator's per-destination machinery (ports unique per destination,
// the pass over the range, the quarantine lists) is endpoint-dependent
// mapping's: a cfg that leaves Mapping to its default gets
// EndpointDependent here, and the tests of endpoint-independent mapping
// (mapping_test.go) ask for it.
func newHarness(t testing.TB, shards, maxFlows int, cfg Config) *harness {
	t.Helper()
	if cfg.Mapping == MappingDefault {
		cfg.Mapping = EndpointDependent
	}
	tb, err := conntrack.New(conntrack.Config{MaxFlows: maxFlows, Shards: shards, Memory: conntrack.MemoryHeap,
		HistorySize: 16, EventRingSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	n, err := New(cfg, tb)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n.allocs {
		n.allocs[i].rng.Seed([32]byte{byte(i), 1, 2, 3})
	}
	return &harness{t: t, tb: tb, n: n, now: conntrack.Second}
}

func (h *harness) advance(d conntrack.Time) { h.now += d }

// packet returns the first packet of a flow with key k, as Parse would.
func packet(k conntrack.Key) conntrack.Packet {
	p := conntrack.Packet{Key: k, WScale: -1}
	switch k.Proto {
	case header.ProtoTCP:
		p.Flags, p.Seq = header.TCPFlagSYN, 1
	case header.ProtoICMP:
		p.ICMPType = header.ICMPv4EchoRequest
	case header.ProtoICMPv6:
		p.ICMPType = header.ICMPv6EchoRequest
	}
	return p
}

// open allocates a translation for k on the shard that owns k, creates the
// flow and answers it (a completed TCP handshake, a UDP or ICMP reply), so
// that its port carried a connection and is quarantined when it ends. It
// returns the translation, the flow and the drop reason.
func (h *harness) open(k conntrack.Key) (conntrack.Translation, conntrack.Ref, drop.Reason) {
	h.t.Helper()
	tr, ref, r := h.openUnanswered(k)
	if r == drop.None {
		h.answer(k, tr)
	}
	return tr, ref, r
}

// openUnanswered is open without the answer: the flow stays SYN_SENT (UDP
// or ICMP: unanswered), and its port is not quarantined when it ends.
func (h *harness) openUnanswered(k conntrack.Key) (conntrack.Translation, conntrack.Ref, drop.Reason) {
	h.t.Helper()
	s := h.tb.ShardOfSrc(&k)
	a := h.n.Allocator(s)
	tr, r := a.Allocate(&k, h.now)
	if r != drop.None {
		return tr, 0, r
	}
	p := packet(k)
	v := h.tb.Shard(s).Create(&p, conntrack.NewFlow{NAT: tr}, h.now)
	if v.Action != conntrack.Forward {
		a.Abandon(&k, tr)
		h.t.Fatalf("create %v with %+v: %v", k, tr, v.Reason)
	}
	return tr, v.Flow, drop.None
}

// answer sends the far side's reply to flow k translated to tr (and, for
// TCP, the handshake's final ACK).
func (h *harness) answer(k conntrack.Key, tr conntrack.Translation) {
	h.t.Helper()
	sh := h.tb.Shard(h.tb.ShardOfSrc(&k))
	rep := conntrack.Packet{Key: sh.ReplyKey(&k, tr), WScale: -1, Window: 1000}
	switch k.Proto {
	case header.ProtoTCP:
		rep.Flags, rep.Seq, rep.Ack = header.TCPFlagSYN|header.TCPFlagACK, 1000, 2
	case header.ProtoICMP:
		rep.ICMPType = header.ICMPv4EchoReply
	case header.ProtoICMPv6:
		rep.ICMPType = header.ICMPv6EchoReply
	}
	if v := sh.Track(&rep, h.now); v.Action != conntrack.Forward {
		h.t.Fatalf("reply to %v: %v %v", k, v.Action, v.Reason)
	}
	if k.Proto == header.ProtoTCP {
		ack := conntrack.Packet{Key: k, WScale: -1, Window: 1000, Flags: header.TCPFlagACK, Seq: 2, Ack: 1001}
		if v := sh.Track(&ack, h.now); v.Action != conntrack.Forward || v.State != conntrack.TCPEstablished {
			h.t.Fatalf("ack of %v: %v %v %v", k, v.Action, v.Reason, v.State)
		}
	}
}

// mustOpen is open that fails the test on a drop.
func (h *harness) mustOpen(k conntrack.Key) (conntrack.Translation, conntrack.Ref) {
	h.t.Helper()
	tr, ref, r := h.open(k)
	if r != drop.None {
		h.t.Fatalf("allocate %v: %v", k, r)
	}
	return tr, ref
}

// close deletes flow ref of key k (its port is released and quarantined).
func (h *harness) close(k conntrack.Key, ref conntrack.Ref) {
	h.tb.Shard(h.tb.ShardOfSrc(&k)).Delete(ref, h.now)
}

func tcpKey(src netip.Addr, sport uint16, dst netip.Addr, dport uint16) conntrack.Key {
	return conntrack.MakeKey(header.ProtoTCP, netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport))
}

func automap(ports PortRange) Config {
	return Config{Mode: Automap, Automap: natIP, Ports: ports}
}

func (h *harness) stats() Stats { return h.n.Stats() }
