package diag

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// recorder drives a real conntrack table with packets, as a worker does,
// and records its events as the control plane reports them (ctl's
// conversion: names, NAT address, wall time), so the rules are checked
// against the state machine's own event stream.
type recorder struct {
	t      *testing.T
	tb     *conntrack.Table
	s      *conntrack.Shard
	nat    uint16
	now    conntrack.Time
	events []Event
}

var (
	recClient = netip.MustParseAddr("10.0.0.2")
	recServer = netip.MustParseAddr("203.0.113.2")
	recNAT    = netip.MustParseAddr("198.51.100.1")
)

func newRecorder(t *testing.T, pol conntrack.Policy) *recorder {
	tb, err := conntrack.New(conntrack.Config{MaxFlows: 1024, HistorySize: 64, Memory: conntrack.MemoryHeap, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tb.Close() })
	nat, err := tb.InternAddr(recNAT)
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{t: t, tb: tb, s: tb.Shard(0), nat: nat, now: 1000 * conntrack.Second}
}

// seg builds a TCP segment; toServer: client -> server, else server ->
// NAT address (or -> client with natPort 0: an untranslated flow).
func (r *recorder) seg(toServer bool, cport, natPort uint16, flags uint8, seq, ack uint32, payload int) conntrack.Packet {
	s := headertest.Spec{Src: recClient, Dst: recServer, Proto: header.ProtoTCP, SrcPort: cport, DstPort: 80,
		Flags: flags, Seq: seq, Ack: ack, Window: 65535, Payload: make([]byte, payload)}
	if !toServer {
		s.Src, s.Dst, s.SrcPort, s.DstPort = recServer, recNAT, 80, natPort
		if natPort == 0 {
			s.Dst, s.DstPort = recClient, cport
		}
	}
	var p conntrack.Packet
	if rs := conntrack.Parse(headertest.Build(s), 0, &p); rs != drop.None {
		r.t.Fatalf("parse: %v", rs)
	}
	return p
}

// send tracks p (creating its flow, translated to natPort when not 0) and
// records the events.
func (r *recorder) send(p conntrack.Packet, natPort uint16) conntrack.Verdict {
	v := r.s.Track(&p, r.now)
	if v.Action == conntrack.Open {
		var tr conntrack.Translation
		if natPort != 0 {
			tr = conntrack.Translation{Addr: r.nat, Port: natPort}
		}
		v = r.s.Create(&p, conntrack.NewFlow{NAT: tr}, r.now)
	}
	r.read()
	return v
}

func (r *recorder) advance(d conntrack.Time) {
	r.now += d
	r.s.Expire(r.now, 1024)
	r.read()
}

var epoch = time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)

func (r *recorder) read() {
	buf := make([]conntrack.Event, 64)
	for _, e := range buf[:r.tb.ReadEvents(buf)] {
		k, ok := KindByName(e.Kind.String())
		if !ok {
			r.t.Fatalf("conntrack event kind %s unknown to diag", e.Kind)
		}
		ev := Event{Time: epoch.Add(time.Duration(e.Time)), Kind: k, Gen: e.Gen, State: e.State, Reason: e.Reason,
			Flags: e.Flags, Tuple: Tuple{Proto: e.Key.Proto, Src: netip.AddrPortFrom(e.Key.SrcAddr(), e.Key.SrcPort),
				Dst: netip.AddrPortFrom(e.Key.DstAddr(), e.Key.DstPort), Zone: e.Key.Zone}}
		if e.NATAddr != 0 {
			ev.NAT = netip.AddrPortFrom(r.tb.NATAddr(e.NATAddr), e.NATPort)
		}
		r.events = append(r.events, ev)
	}
}

// handshake opens a connection from client port cport (translated to
// natPort) with ISNs ci and si, and exchanges a request and its answer.
func (r *recorder) handshake(cport, natPort uint16, ci, si uint32) {
	const S, A, P = header.TCPFlagSYN, header.TCPFlagACK, header.TCPFlagPSH
	for _, p := range []struct {
		out      bool
		flags    uint8
		seq, ack uint32
		payload  int
	}{{true, S, ci, 0, 0}, {false, S | A, si, ci + 1, 0}, {true, A, ci + 1, si + 1, 0},
		{true, P | A, ci + 1, si + 1, 100}, {false, P | A, si + 1, ci + 101, 1000}, {true, A, ci + 101, si + 1001, 0}} {
		if v := r.send(r.seg(p.out, cport, natPort, p.flags, p.seq, p.ack, p.payload), natPort); v.Action == conntrack.Drop {
			r.t.Fatalf("handshake: dropped %v", v.Reason)
		}
	}
}

func (r *recorder) report() Report {
	a := New(Options{})
	for i := range r.events {
		a.Add(&r.events[i])
	}
	return a.Report(nil, nil)
}

const (
	cS  = header.TCPFlagSYN
	cA  = header.TCPFlagACK
	cF  = header.TCPFlagFIN
	cR  = header.TCPFlagRST
	cP  = header.TCPFlagPSH
	dst = "203.0.113.2:80"
)

func TestRecordedFromConntrack(t *testing.T) {
	t.Run("edge: the backend's delayed FIN after the port's reuse", func(t *testing.T) {
		r := newRecorder(t, conntrack.Policy{Profiles: []conntrack.Profile{conntrack.NSXGatewayProfile}})
		const ci, si = 1000, 5000
		r.handshake(40000, 1025, ci, si)
		for _, p := range []conntrack.Packet{ // the backend closes first
			r.seg(false, 40000, 1025, cF|cA, si+1001, ci+101, 0), r.seg(true, 40000, 1025, cA, ci+101, si+1002, 0),
			r.seg(true, 40000, 1025, cF|cA, ci+101, si+1002, 0), r.seg(false, 40000, 1025, cA, si+1002, ci+102, 0)} {
			r.send(p, 1025)
		}
		r.advance(conntrack.Second)
		r.send(r.seg(true, 40000, 1025, cS, 900000, 0, 0), 1025)           // reuse: reopened
		r.send(r.seg(false, 40000, 1025, cF|cA, si+1001, ci+101, 0), 1025) // the delayed FIN: stale
		r.send(r.seg(false, 40000, 1025, cS|cA, 7000000, 900001, 0), 1025) // the new SYN-ACK passes
		rep := r.report()
		if f := find(&rep, StrayFINPortReuse, Prevented, dst); f == nil || f.Count != 1 || len(rep.Findings) != 1 {
			t.Fatalf("want stray_fin_port_reuse prevented toward %s:\n%s", dst, describe(&rep))
		}
	})
	t.Run("nsx: the backend's stray FIN makes a CLOSING entry", func(t *testing.T) {
		r := newRecorder(t, conntrack.Policy{NSXCompat: true})
		r.handshake(40100, 0, 1000, 5000) // an earlier connection on the tuple, untranslated
		r.advance(3 * 3600 * conntrack.Second)
		r.send(r.seg(false, 40100, 0, cF|cA, 5, 6, 0), 0)                 // the stray FIN: CLOSING entry
		r.send(r.seg(true, 40100, 0, cS, 900000, 0, 0), 0)                // passes
		v := r.send(r.seg(false, 40100, 0, cS|cA, 7000000, 900001, 0), 0) // dropped
		if v.Reason != drop.NSXSynAckOnClosing {
			t.Fatalf("SYN-ACK: %+v", v)
		}
		rep := r.report()
		if f := find(&rep, StrayFINPortReuse, Failing, dst); f == nil || f.Count != 1 {
			t.Fatalf("want stray_fin_port_reuse failing toward %s:\n%s", dst, describe(&rep))
		}
	})
	t.Run("idle expiry, then the client's request", func(t *testing.T) {
		short := conntrack.DefaultProfile
		short.Established = 5 * conntrack.Second
		r := newRecorder(t, conntrack.Policy{Profiles: []conntrack.Profile{short}})
		r.handshake(40200, 2000, 1000, 5000)
		r.advance(6 * conntrack.Second)
		r.send(r.seg(true, 40200, 2000, cP|cA, 1101, 6001, 100), 2000)
		rep := r.report()
		if f := find(&rep, IdleExpiry, Failing, dst); f == nil || f.Count != 1 || len(rep.Findings) != 1 {
			t.Fatalf("want idle_expiry toward %s:\n%s", dst, describe(&rep))
		}
	})
	t.Run("keep-alive race: the backend closed, the client's request is reset", func(t *testing.T) {
		r := newRecorder(t, conntrack.Policy{})
		const ci, si = 1000, 5000
		r.handshake(40300, 3000, ci, si)
		r.advance(5 * conntrack.Second)
		r.send(r.seg(false, 40300, 3000, cF|cA, si+1001, ci+101, 0), 3000)  // idle close
		r.send(r.seg(true, 40300, 3000, cP|cA, ci+101, si+1001, 100), 3000) // the request, crossing the FIN
		r.send(r.seg(false, 40300, 3000, cR, si+1002, 0, 0), 3000)          // its answer
		rep := r.report()
		if f := find(&rep, KeepaliveRace, Failing, dst); f == nil || f.Count != 1 || len(rep.Findings) != 1 {
			t.Fatalf("want keepalive_race toward %s:\n%s", dst, describe(&rep))
		}
	})
	t.Run("clean: the client closes, then reuses the port", func(t *testing.T) {
		r := newRecorder(t, conntrack.Policy{})
		const ci, si = 1000, 5000
		r.handshake(40400, 4000, ci, si)
		for _, p := range []conntrack.Packet{
			r.seg(true, 40400, 4000, cF|cA, ci+101, si+1001, 0), r.seg(false, 40400, 4000, cF|cA, si+1001, ci+102, 0),
			r.seg(true, 40400, 4000, cA, ci+102, si+1002, 0)} {
			r.send(p, 4000)
		}
		r.advance(conntrack.Second)
		r.handshake(40400, 4000, 90000, 70000)
		r.advance(3 * 3600 * conntrack.Second)
		rep := r.report()
		if len(rep.Findings) != 0 {
			t.Fatalf("clean traffic:\n%s", describe(&rep))
		}
		var kinds []string
		for _, e := range r.events {
			kinds = append(kinds, e.Kind.String())
		}
		if got := strings.Join(kinds, " "); got != "opened closed reopened expired" {
			t.Fatalf("events: %s", got)
		}
	})
}
