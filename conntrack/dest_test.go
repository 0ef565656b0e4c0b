package conntrack

import (
	"context"
	"net/netip"
	"runtime"
	"testing"

	"github.com/edgegw/edge/header"
)

// destSignals returns shard s's signals for destination k (owner side), and
// whether it tracks k.
func destSignals(s *Shard, k DestKey) (DestSignals, bool) {
	var d DestSignals
	for i := range s.dests.e {
		e := &s.dests.e[i]
		if e.used && e.key == k {
			for c := range e.ctr {
				d.Counters[c] = uint64(e.ctr[c])
			}
			for h := range e.hist {
				for b := range e.hist[h] {
					d.Hists[h][b] = uint64(e.hist[h][b])
				}
			}
			return d, true
		}
	}
	return d, false
}

var serverDest = DestKey{Addr: server.As16(), Port: 80, Proto: header.ProtoTCP}

// destStep is one step of a per-destination transition table: advance the
// clock, then send a packet (or run the expiry sweep) and expect an action.
type destStep struct {
	wait  Time
	p     func(c *conn) Packet // nil: sweep expired flows
	act   Action
	state State // after the packet (StateNone: not checked)
}

func out(fl uint8, seq, ack uint32, n int) func(c *conn) Packet {
	return func(c *conn) Packet { return c.out(fl, c.cisn+seq, c.sisn+ack, n) }
}

func in(fl uint8, seq, ack uint32, n int) func(c *conn) Packet {
	return func(c *conn) Packet { return c.in(fl, c.sisn+seq, c.cisn+ack, n) }
}

// Sequence numbers below are offsets from the client's ISN (out) and the
// server's (in); ack offsets from the other side's.
var handshake = []destStep{
	{p: out(SYN, 0, 0, 0), act: Forward, state: TCPSynSent},
	{wait: 3 * Millisecond, p: func(c *conn) Packet { return c.in(SYNACK, c.sisn, c.cisn+1, 0) }, act: Forward, state: TCPSynRecv},
	{p: func(c *conn) Packet { return c.out(ACK, c.cisn+1, c.sisn+1, 0) }, act: Forward, state: TCPEstablished},
}

func steps(prefix []destStep, rest ...destStep) []destStep {
	return append(append([]destStep(nil), prefix...), rest...)
}

// Each counter and distribution of a destination, packet by packet. want
// lists the counters that must be non-zero (others must be 0); hist the
// distribution buckets that must hold one count each.
func TestDestSignalTransitions(t *testing.T) {
	type bucket struct {
		h DestHist
		b int
	}
	est := DefaultProfile.Established
	cases := []struct {
		name  string
		steps []destStep
		want  map[DestCounter]uint64
		hist  []bucket
	}{
		{"SYN only", []destStep{{p: out(SYN, 0, 0, 0), act: Forward}},
			map[DestCounter]uint64{DestFlows: 1}, nil},
		{"SYN retransmitted, same ISN", []destStep{
			{p: out(SYN, 0, 0, 0), act: Forward},
			{wait: Second, p: out(SYN, 0, 0, 0), act: Forward, state: TCPSynSent},
			{wait: 2 * Second, p: out(SYN, 0, 0, 0), act: Forward, state: TCPSynSent},
		}, map[DestCounter]uint64{DestFlows: 1, DestSYNRetransmits: 2, DestSYNRetried: 1}, nil},
		{"SYN retried with a new ISN", []destStep{
			{p: out(SYN, 0, 0, 0), act: Forward},
			{wait: Second, p: out(SYN, 1000, 0, 0), act: Forward, state: TCPSynSent},
		}, map[DestCounter]uint64{DestFlows: 1, DestSYNRetransmits: 1, DestSYNRetried: 1}, nil},
		{"SYN never answered: expired", []destStep{
			{p: out(SYN, 0, 0, 0), act: Forward},
			{wait: DefaultProfile.SynSent + Second},
		}, map[DestCounter]uint64{DestFlows: 1, DestHandshakeTimeouts: 1}, nil},
		{"SYN refused by the server", []destStep{
			{p: out(SYN, 0, 0, 0), act: Forward},
			{p: func(c *conn) Packet { return c.in(RSTACK, 0, c.cisn+1, 0) }, act: Forward, state: TCPClose},
		}, map[DestCounter]uint64{DestFlows: 1, DestHandshakeRefused: 1, DestResetsServer: 1}, nil},
		{"handshake abandoned by the client", []destStep{
			{p: out(SYN, 0, 0, 0), act: Forward},
			{p: out(RST, 1, 0, 0), act: Forward, state: TCPClose},
		}, map[DestCounter]uint64{DestFlows: 1, DestResetsClient: 1}, nil},
		{"handshake completed", handshake,
			map[DestCounter]uint64{DestFlows: 1, DestHandshakes: 1}, []bucket{{HistHandshakeRTT, 2}}},
		{"handshake time from the last SYN", []destStep{
			{p: out(SYN, 0, 0, 0), act: Forward},
			{wait: Second, p: out(SYN, 0, 0, 0), act: Forward},
			{wait: 40 * Millisecond, p: func(c *conn) Packet { return c.in(SYNACK, c.sisn, c.cisn+1, 0) }, act: Forward},
		}, map[DestCounter]uint64{DestFlows: 1, DestSYNRetransmits: 1, DestSYNRetried: 1}, []bucket{{HistHandshakeRTT, 6}}},
		{"server closes after 5 s idle", steps(handshake,
			destStep{wait: 5 * Second, p: in(FINACK, 1, 1, 0), act: Forward, state: TCPFinWait},
		), map[DestCounter]uint64{DestFlows: 1, DestHandshakes: 1, DestServerCloses: 1},
			[]bucket{{HistHandshakeRTT, 2}, {HistServerIdleClose, 13}}},
		{"client closes: no server close", steps(handshake,
			destStep{wait: 5 * Second, p: out(FINACK, 1, 1, 0), act: Forward, state: TCPFinWait},
			destStep{p: in(FINACK, 1, 2, 0), act: Forward, state: TCPLastAck},
			destStep{p: out(ACK, 2, 2, 0), act: Forward, state: TCPTimeWait},
		), map[DestCounter]uint64{DestFlows: 1, DestHandshakes: 1}, []bucket{{HistHandshakeRTT, 2}}},
		{"keep-alive race after the server's FIN", steps(handshake,
			destStep{wait: 5 * Second, p: in(FINACK, 1, 1, 0), act: Forward, state: TCPFinWait},
			destStep{wait: 10 * Millisecond, p: out(ACK|PSH, 1, 2, 100), act: Forward},
			destStep{wait: Millisecond, p: out(ACK|PSH, 101, 2, 100), act: Forward},
		), map[DestCounter]uint64{DestFlows: 1, DestHandshakes: 1, DestServerCloses: 1, DestRaces: 1},
			[]bucket{{HistHandshakeRTT, 2}, {HistServerIdleClose, 13}, {HistRaceDelay, 4}}},
		{"keep-alive race after the server's RST", steps(handshake,
			destStep{wait: 5 * Second, p: in(RSTACK, 1, 1, 0), act: Forward, state: TCPClose},
			destStep{wait: 10 * Millisecond, p: out(ACK|PSH, 1, 1, 100), act: Drop},
			destStep{wait: Millisecond, p: out(ACK|PSH, 1, 1, 100), act: Drop},
		), map[DestCounter]uint64{DestFlows: 1, DestHandshakes: 1, DestServerCloses: 1, DestResetsServer: 1, DestRaces: 1},
			[]bucket{{HistHandshakeRTT, 2}, {HistServerIdleClose, 13}, {HistRaceDelay, 4}}},
		// A challenge ACK in SYN_SENT sets a flag whose bit later marks
		// a counted race: the handshake clears it.
		{"keep-alive race after a challenge ACK in the handshake", []destStep{
			{p: out(SYN, 0, 0, 0), act: Forward},
			{p: in(ACK, 77, 12345, 0), act: Forward, state: TCPSynSent},
			{wait: 3 * Millisecond, p: func(c *conn) Packet { return c.in(SYNACK, c.sisn, c.cisn+1, 0) }, act: Forward, state: TCPSynRecv},
			{p: func(c *conn) Packet { return c.out(ACK, c.cisn+1, c.sisn+1, 0) }, act: Forward, state: TCPEstablished},
			{wait: 5 * Second, p: in(FINACK, 1, 1, 0), act: Forward, state: TCPFinWait},
			{wait: 10 * Millisecond, p: out(ACK|PSH, 1, 2, 100), act: Forward},
		}, map[DestCounter]uint64{DestFlows: 1, DestHandshakes: 1, DestServerCloses: 1, DestRaces: 1},
			[]bucket{{HistHandshakeRTT, 2}, {HistServerIdleClose, 13}, {HistRaceDelay, 4}}},
		{"client resets an established connection", steps(handshake,
			destStep{wait: Second, p: out(RSTACK, 1, 1, 0), act: Forward, state: TCPClose},
			destStep{p: in(ACK|PSH, 1, 1, 10), act: Drop},
		), map[DestCounter]uint64{DestFlows: 1, DestHandshakes: 1, DestResetsClient: 1}, []bucket{{HistHandshakeRTT, 2}}},
		// 7440 s idle (the ESTABLISHED timer) and more: [2^22, 2^23) ms.
		{"expired, then the client sends", steps(handshake,
			destStep{wait: est + 60*Second},
			destStep{wait: 4 * Second, p: out(ACK|PSH, 1, 1, 100), act: Drop},
			destStep{p: in(ACK, 1, 1, 0), act: Drop},
		), map[DestCounter]uint64{DestFlows: 1, DestHandshakes: 1, DestExpiredLate: 1},
			[]bucket{{HistHandshakeRTT, 2}, {HistExpiredIdle, 23}}},
		{"expired unswept, then the server sends", steps(handshake,
			destStep{wait: est + Second, p: in(ACK|PSH, 1, 1, 100), act: Drop},
		), map[DestCounter]uint64{DestFlows: 1, DestHandshakes: 1, DestExpiredLate: 1},
			[]bucket{{HistHandshakeRTT, 2}, {HistExpiredIdle, 23}}},
		// A connection that had closed when it expired: its late FIN (a
		// retransmission, or one a path delayed) is no idle expiry.
		{"closed, expired in TIME_WAIT, then a late FIN: not late", steps(handshake,
			destStep{p: out(FINACK, 1, 1, 0), act: Forward, state: TCPFinWait},
			destStep{p: in(FINACK, 1, 2, 0), act: Forward, state: TCPLastAck},
			destStep{p: out(ACK, 2, 2, 0), act: Forward, state: TCPTimeWait},
			destStep{wait: DefaultProfile.TimeWait + Second},
			destStep{wait: Second, p: in(FINACK, 1, 2, 0), act: Drop},
		), map[DestCounter]uint64{DestFlows: 1, DestHandshakes: 1}, []bucket{{HistHandshakeRTT, 2}}},
		{"closed, expired in LAST_ACK, then the last ACK: not late", steps(handshake,
			destStep{p: out(FINACK, 1, 1, 0), act: Forward, state: TCPFinWait},
			destStep{p: in(FINACK, 1, 2, 0), act: Forward, state: TCPLastAck},
			destStep{wait: DefaultProfile.LastAck + Second},
			destStep{wait: Second, p: out(ACK, 2, 2, 0), act: Drop},
		), map[DestCounter]uint64{DestFlows: 1, DestHandshakes: 1}, []bucket{{HistHandshakeRTT, 2}}},
		{"a SYN after expiry opens a flow: not late", steps(handshake,
			destStep{wait: est + Second},
			destStep{p: out(SYN, 7, 0, 0), act: Forward},
		), map[DestCounter]uint64{DestFlows: 2, DestHandshakes: 1}, []bucket{{HistHandshakeRTT, 2}}},
		{"client reuses the connection after 3 s idle", steps(handshake,
			destStep{wait: 10 * Millisecond, p: out(ACK|PSH, 1, 1, 100), act: Forward},
			destStep{wait: 3 * Second, p: out(ACK|PSH, 101, 1, 100), act: Forward, state: TCPEstablished},
		), map[DestCounter]uint64{DestFlows: 1, DestHandshakes: 1, DestClientReuses: 1},
			[]bucket{{HistHandshakeRTT, 2}, {HistClientReuseIdle, 12}}},
		{"not reuse: a short pause, the server's data, a bare ACK", steps(handshake,
			destStep{wait: 999 * Millisecond, p: out(ACK|PSH, 1, 1, 100), act: Forward},
			destStep{wait: 2 * Second, p: in(ACK|PSH, 1, 101, 100), act: Forward},
			destStep{wait: 2 * Second, p: out(ACK, 101, 101, 0), act: Forward},
			destStep{wait: 10 * Millisecond, p: out(ACK|PSH, 101, 101, 50), act: Forward},
		), map[DestCounter]uint64{DestFlows: 1, DestHandshakes: 1}, []bucket{{HistHandshakeRTT, 2}}},
		{"a new incarnation counts as a flow", steps(handshake,
			destStep{p: out(RSTACK, 1, 1, 0), act: Forward, state: TCPClose},
			destStep{wait: Second, p: out(SYN, 5000, 0, 0), act: Reopened, state: TCPSynSent},
		), map[DestCounter]uint64{DestFlows: 2, DestHandshakes: 1, DestResetsClient: 1}, []bucket{{HistHandshakeRTT, 2}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Policy{})
			c := &conn{t: t, cport: 40000, sport: 50000, cisn: 1000, sisn: 900000}
			for i, st := range tc.steps {
				h.clk.Advance(st.wait)
				if st.p == nil {
					h.s.Expire(h.clk.now, 1<<12)
					continue
				}
				v := h.send(st.p(c), c.sport)
				if v.Action != st.act || (st.state != StateNone && v.State != st.state) {
					t.Fatalf("step %d: %v %v %v, want %v %v", i, v.Action, v.State, v.Reason, st.act, st.state)
				}
			}
			got, ok := destSignals(h.s, serverDest)
			if !ok {
				t.Fatal("destination not tracked")
			}
			for ctr := range NumDestCounters {
				if got.Counters[ctr] != tc.want[ctr] {
					t.Errorf("%v = %d, want %d", ctr, got.Counters[ctr], tc.want[ctr])
				}
			}
			var want [NumDestHists][HistBuckets]uint64
			for _, b := range tc.hist {
				want[b.h][b.b]++
			}
			for hh := range NumDestHists {
				if got.Hists[hh] != want[hh] {
					t.Errorf("%v = %v, want %v", hh, got.Hists[hh], want[hh])
				}
			}
		})
	}
}

// A SYN_SENT flow evicted under table pressure is a handshake timeout.
func TestDestHandshakeEvicted(t *testing.T) {
	tb, err := New(Config{MaxFlows: 64, Memory: MemoryHeap, HistorySize: 16, EventRingSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	s := tb.Shard(0)
	now := Second
	for i := 0; i < 64+10; i++ {
		p := Packet{Key: MakeKey(header.ProtoTCP, netip.AddrPortFrom(client, uint16(1000+i)), netip.AddrPortFrom(server, 80)),
			Flags: SYN, Seq: 1, WScale: -1}
		if v := s.Track(&p, now); v.Action != Open {
			t.Fatalf("%d: %+v", i, v)
		}
		if v := s.Create(&p, NewFlow{}, now); v.Action != Forward {
			t.Fatalf("%d: %+v", i, v)
		}
	}
	got, _ := destSignals(s, serverDest)
	if got.Counters[DestFlows] != 74 || got.Counters[DestHandshakeTimeouts] != 10 {
		t.Fatalf("flows %d, handshake timeouts %d; want 74, 10", got.Counters[DestFlows], got.Counters[DestHandshakeTimeouts])
	}
}

// More destinations than a shard tracks: memory stays what New allocated,
// the busiest destinations keep their exact counts, and the replaced ones
// are counted.
func TestDestBounded(t *testing.T) {
	tb, err := New(Config{MaxFlows: 1 << 14, Memory: MemoryHeap, HistorySize: 16, EventRingSize: 16, Destinations: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	s := tb.Shard(0)
	if len(s.dests.e) != 16 {
		t.Fatalf("%d entries, want 16", len(s.dests.e))
	}
	now := Second
	port := uint16(1000)
	open := func(dst netip.Addr) {
		port++
		p := Packet{Key: MakeKey(header.ProtoTCP, netip.AddrPortFrom(client, port), netip.AddrPortFrom(dst, 80)),
			Flags: SYN, Seq: 1, WScale: -1}
		if v := s.Track(&p, now); v.Action != Open {
			t.Fatalf("%+v", v)
		}
		if v := s.Create(&p, NewFlow{}, now); v.Action != Forward {
			t.Fatalf("%+v", v)
		}
	}
	busy := netip.MustParseAddr("192.0.2.1")
	for i := 0; i < 100; i++ {
		open(busy)
	}
	for i := 0; i < 1000; i++ {
		open(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}))
	}
	used := 0
	for i := range s.dests.e {
		if s.dests.e[i].used {
			used++
		}
	}
	if used != 16 {
		t.Fatalf("%d destinations tracked, want 16", used)
	}
	if s.dests.replaced < 1000-15 {
		t.Fatalf("replaced %d, want at least %d", s.dests.replaced, 1000-15)
	}
	got, ok := destSignals(s, DestKey{Addr: busy.As16(), Port: 80, Proto: header.ProtoTCP})
	if !ok || got.Counters[DestFlows] != 100 {
		t.Fatalf("busiest destination: tracked %v, flows %d; want 100", ok, got.Counters[DestFlows])
	}
	if n := testing.AllocsPerRun(100, func() { open(netip.AddrFrom4([4]byte{198, 18, 0, byte(port)})) }); n != 0 {
		t.Fatalf("%v allocs per new destination, want 0", n)
	}
}

// The paths that count (SYN retransmit, SYN-ACK, server FIN, race, RST,
// late packet after expiry) do not allocate.
func TestDestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	h := newHarness(t, Policy{})
	isn := uint32(1)
	run := func() {
		isn += 1 << 20
		c := &conn{t: t, cport: uint16(isn >> 20), sport: uint16(isn>>20) + 20000, cisn: isn, sisn: isn * 3}
		ps := []Packet{
			c.out(SYN, c.cisn, 0, 0), c.out(SYN, c.cisn, 0, 0),
			c.in(SYNACK, c.sisn, c.cisn+1, 0), c.out(ACK, c.cisn+1, c.sisn+1, 0),
			c.in(FINACK, c.sisn+1, c.cisn+1, 0), c.out(ACK|PSH, c.cisn+1, c.sisn+2, 10),
			c.in(RSTACK, c.sisn+2, 0, 0), c.out(ACK|PSH, c.cisn+11, c.sisn+2, 10),
		}
		n := testing.AllocsPerRun(20, func() {
			for i := range ps {
				h.send(ps[i], c.sport)
			}
			h.s.Delete(mustLookup(t, h, &ps[0].Key), h.clk.now)
		})
		if n != 0 {
			t.Fatalf("%v allocs per connection, want 0", n)
		}
	}
	run()
	got, _ := destSignals(h.s, serverDest)
	if got.Counters[DestRaces] == 0 || got.Counters[DestResetsServer] == 0 || got.Counters[DestSYNRetransmits] == 0 {
		t.Fatalf("the allocation test did not reach the counters: %v", got.Counters)
	}
	// A late packet after expiry.
	late := &conn{t: t, cport: 7, sport: 7, cisn: 5, sisn: 50}
	for _, p := range []Packet{late.out(SYN, 5, 0, 0), late.in(SYNACK, 50, 6, 0), late.out(ACK, 6, 51, 0)} {
		h.send(p, late.sport)
	}
	h.clk.Advance(DefaultProfile.Established + Second)
	h.s.Expire(h.clk.now, 1<<12)
	q := late.out(ACK|PSH, 6, 51, 10)
	if n := testing.AllocsPerRun(10, func() { h.s.Track(&q, h.clk.now) }); n != 0 {
		t.Fatalf("late packet: %v allocs, want 0", n)
	}
	if got, _ := destSignals(h.s, serverDest); got.Counters[DestExpiredLate] != 1 {
		t.Fatalf("expired_late %d, want 1", got.Counters[DestExpiredLate])
	}
}

func mustLookup(t testing.TB, h *harness, k *Key) Ref {
	r, _, ok := h.s.Lookup(k, h.clk.now)
	if !ok {
		t.Fatal("flow not found")
	}
	return r
}

// Table.Destinations sums a destination over shards, through the owners'
// mailboxes, in chunks.
func TestDestinationsControl(t *testing.T) {
	tb, err := New(Config{MaxFlows: 1 << 12, Shards: 2, Memory: MemoryHeap, HistorySize: 16, EventRingSize: 1 << 12})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	now := Second
	perShard := [2]int{}
	other := netip.MustParseAddr("192.0.2.99")
	for i := 0; i < 400; i++ {
		dst := server
		if i%4 == 0 {
			dst = other
		}
		p := Packet{Key: MakeKey(header.ProtoTCP, netip.AddrPortFrom(client, uint16(1000+i)), netip.AddrPortFrom(dst, 80)),
			Flags: SYN, Seq: 1, WScale: -1}
		si := tb.ShardOfSrc(&p.Key)
		s := tb.Shard(si)
		perShard[si]++
		if v := s.Track(&p, now); v.Action != Open {
			t.Fatalf("%+v", v)
		}
		if v := s.Create(&p, NewFlow{}, now); v.Action != Forward {
			t.Fatalf("%+v", v)
		}
		p.Flags = SYN
		s.Track(&p, now) // a retransmission
	}
	if perShard[0] == 0 || perShard[1] == 0 {
		t.Fatalf("flows per shard %v: the test needs both", perShard)
	}
	type res struct {
		d   Destinations
		err error
	}
	ch := make(chan res, 1)
	go func() {
		d, err := tb.Destinations(context.Background(), now)
		ch <- res{d, err}
	}()
	var r res
	for done := false; !done; {
		select {
		case r = <-ch:
			done = true
		default:
			tb.Shard(0).Serve(now)
			tb.Shard(1).Serve(now)
			runtime.Gosched()
		}
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	d := r.d
	if len(d.Dests) != 2 || d.Capacity != 2*DefaultDestinations {
		t.Fatalf("%d destinations, capacity %d; want 2, %d", len(d.Dests), d.Capacity, 2*DefaultDestinations)
	}
	if d.Dests[0].Dest != serverDest || d.Dests[0].Counters[DestFlows] != 300 || d.Dests[0].Counters[DestSYNRetransmits] != 300 ||
		d.Dests[0].Counters[DestSYNRetried] != 300 {
		t.Fatalf("busiest %v flows %d retransmits %d, want %v 300 300", d.Dests[0].Dest, d.Dests[0].Counters[DestFlows],
			d.Dests[0].Counters[DestSYNRetransmits], serverDest)
	}
	if d.Dests[1].Dest.AddrPort() != netip.AddrPortFrom(other, 80) || d.Dests[1].Counters[DestFlows] != 100 {
		t.Fatalf("second %v flows %d", d.Dests[1].Dest, d.Dests[1].Counters[DestFlows])
	}
}

// A UDP flow a mapping's filter admitted (CreateInbound) counts toward its
// original destination: the remote end that sent the datagram. ICMP echo
// flows are not tracked per destination.
func TestDestInboundAndICMP(t *testing.T) {
	h := newHarness(t, Policy{})
	orig := MakeKey(header.ProtoUDP, netip.AddrPortFrom(client, 5000), netip.AddrPortFrom(server, 3478))
	nat := Translation{Addr: h.nat, Port: 5000}
	q := Packet{Kind: KindFlow, Key: h.s.ReplyKey(&orig, nat), WScale: -1}
	if v := h.s.CreateInbound(&q, &orig, NewFlow{NAT: nat}, h.clk.now); v.Action != Forward {
		t.Fatalf("CreateInbound: %+v", v)
	}
	got, ok := destSignals(h.s, DestKey{Addr: server.As16(), Port: 3478, Proto: header.ProtoUDP})
	if !ok || got.Counters[DestFlows] != 1 {
		t.Fatalf("inbound flow: tracked %v, flows %d; want 1", ok, got.Counters[DestFlows])
	}
	echo := Packet{Kind: KindFlow, Key: MakeKey(header.ProtoICMP, netip.AddrPortFrom(client, 7), netip.AddrPortFrom(server, 0)),
		ICMPType: header.ICMPv4EchoRequest, WScale: -1}
	if v := h.send(echo, 7); v.Action != Forward {
		t.Fatalf("echo: %+v", v)
	}
	for i := range h.s.dests.e {
		if e := &h.s.dests.e[i]; e.used && e.key.Proto == header.ProtoICMP {
			t.Fatalf("ICMP destination tracked: %+v", e.key)
		}
	}
}

// An RST the data plane sends (a reject rule) counts for the destination
// the rejected packet tried to reach.
func TestDestNoteRSTSent(t *testing.T) {
	h := newHarness(t, Policy{})
	c := &conn{t: t, cport: 40000}
	p := c.out(SYN, 1, 0, 0)
	h.s.NoteRSTSent(&p.Key)
	got, ok := destSignals(h.s, serverDest)
	if !ok || got.Counters[DestResetsEdge] != 1 || got.Counters[DestFlows] != 0 {
		t.Fatalf("tracked %v, counters %v", ok, got.Counters)
	}
	if n := testing.AllocsPerRun(100, func() { h.s.NoteRSTSent(&p.Key) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

// Expired and evicted events say how long the flow had been idle.
func TestEventIdle(t *testing.T) {
	h := newHarness(t, Policy{})
	c := &conn{t: t, cport: 40000, sport: 50000, cisn: 1000, sisn: 900000}
	for _, st := range handshake {
		h.send(st.p(c), c.sport)
	}
	h.tb.SkipEvents()
	h.clk.Advance(DefaultProfile.Established + 1500*Millisecond)
	h.s.Expire(h.clk.now, 1<<12)
	var ev [4]Event
	n := h.tb.ReadEvents(ev[:])
	if n != 1 || ev[0].Kind != EvExpired {
		t.Fatalf("%d events %+v, want one expired", n, ev[:n])
	}
	if want := uint32((DefaultProfile.Established + 1500*Millisecond) / Millisecond); ev[0].Idle != want {
		t.Fatalf("idle %d ms, want %d", ev[0].Idle, want)
	}
}

// destHash spreads destinations over the buckets: the IPv4 addresses of a
// /24, and one address's ports, fill every bucket of a 32-bucket table
// within twice the mean, and it depends on the seed.
func TestDestHashSpread(t *testing.T) {
	const buckets = 32
	for _, set := range []string{"addresses", "ports"} {
		var n [buckets]int
		for i := 0; i < 256; i++ {
			k := DestKey{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).As16(), Port: 80, Proto: header.ProtoTCP}
			if set == "ports" {
				k.Addr, k.Port = server.As16(), uint16(8000+i)
			}
			n[destHash(&k, 0x1234)%buckets]++
		}
		for b, c := range n {
			if c == 0 || c > 2*256/buckets {
				t.Fatalf("%s: bucket %d holds %d of 256: %v", set, b, c, n)
			}
		}
	}
	k := serverDest
	if destHash(&k, 1) == destHash(&k, 2) {
		t.Fatal("the hash ignores its seed")
	}
}
