package dataplane

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/icmp"
)

// idleResetProfile: established flows expire after 30 s idle, with resets.
var idleResetProfile = func() conntrack.Profile {
	p := conntrack.DefaultProfile
	p.Name, p.Established, p.IdleExpiry = "short-reset", 30*conntrack.Second, conntrack.IdleReset
	return p
}()

// idleConn opens a TCP connection from the client's port cport through tp
// (SYN, SYN-ACK, ACK, a 100-byte request, a 1000-byte response) with the
// client's ISN cisn and the server's sisn, and returns its SNAT port.
func idleConn(t testing.TB, tp *testPipeline, fam pipeFamily, cport uint16, cisn, sisn uint32) uint16 {
	t.Helper()
	const SYN, ACK, PSH = header.TCPFlagSYN, header.TCPFlagACK, header.TCPFlagPSH
	seg := func(src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32, n int) headertest.Spec {
		return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoTCP, SrcPort: sport, DstPort: dport,
			Flags: flags, Seq: seq, Ack: ack, Window: 64240, Payload: make([]byte, n)}
	}
	if out, r := tp.send(0, eth(seg(fam.client, fam.server, cport, 80, SYN, cisn, 0, 0), macClient, macEdgeIn)); out == nil {
		t.Fatalf("SYN dropped (%v)", r)
	}
	port := tp.natPort(conntrack.MakeKey(header.ProtoTCP, netip.AddrPortFrom(fam.client, cport), netip.AddrPortFrom(fam.server, 80)))
	for i, s := range []struct {
		in   int
		spec headertest.Spec
	}{
		{1, seg(fam.server, fam.snat, 80, port, SYN|ACK, sisn, cisn+1, 0)},
		{0, seg(fam.client, fam.server, cport, 80, ACK, cisn+1, sisn+1, 0)},
		{0, seg(fam.client, fam.server, cport, 80, ACK|PSH, cisn+1, sisn+1, 100)},
		{1, seg(fam.server, fam.snat, 80, port, ACK|PSH, sisn+1, cisn+101, 1000)},
	} {
		src, dst := macClient, macEdgeIn
		if s.in == 1 {
			src, dst = macServer, macEdgeOut
		}
		if out, r := tp.send(s.in, eth(s.spec, src, dst)); out == nil {
			t.Fatalf("segment %d dropped (%v)", i+1, r)
		}
	}
	return port
}

// expireAndReset runs the worker's expiry step as its loop does: the sweep,
// then the resets of what it expired; it returns what left.
func expireAndReset(tp *testPipeline) []sent {
	tp.out = tp.out[:0]
	tp.w.shard.Expire(tp.now, 1<<16)
	tp.w.sendExpiredResets(tp.now)
	tp.w.flush()
	return tp.out
}

// TestPipelineIdleExpiryReset: an established connection through SNAT that
// expires idle under a profile with idle_expiry reset gets one RST+ACK to
// each end, byte for byte: to the client from the server's address and
// port with the server's next sequence number; to the server from the
// SNAT address and port with the client's next; checksums right, in each
// family (the client's sequence numbers wrap 2^32 on the way).
func TestPipelineIdleExpiryReset(t *testing.T) { forEachPipeFamily(t, testPipelineIdleExpiryReset) }

func testPipelineIdleExpiryReset(t *testing.T, fam pipeFamily) {
	const RSTACK = header.TCPFlagRST | header.TCPFlagACK
	tp := fam.newPipeline(t, allowOutbound)
	if err := tp.e.table.SetPolicy(conntrack.Policy{Profiles: []conntrack.Profile{idleResetProfile}}); err != nil {
		t.Fatal(err)
	}
	var cisn, sisn uint32 = 0xffffffc0, 7000
	port := idleConn(t, tp, fam, 40000, cisn, sisn)

	tp.now += idleResetProfile.Established - conntrack.Second
	if out := expireAndReset(tp); len(out) != 0 {
		t.Fatalf("%d frames before the timer ran out", len(out))
	}
	tp.now += 2 * conntrack.Second
	out := expireAndReset(tp)
	rst := func(src, dst netip.Addr, sport, dport uint16, seq, ack uint32) headertest.Spec {
		return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoTCP, SrcPort: sport, DstPort: dport,
			Flags: RSTACK, Seq: seq, Ack: ack, Window: 0, NoWindowDefault: true, TTL: icmp.TTL, DF: true}
	}
	want := []sent{
		{0, eth(rst(fam.server, fam.client, 80, 40000, sisn+1001, cisn+101), macEdgeIn, macClient)},
		{1, eth(rst(fam.snat, fam.server, port, 80, cisn+101, sisn+1001), macEdgeOut, macServer)},
	}
	if len(out) != len(want) {
		t.Fatalf("%d frames out, want 2", len(out))
	}
	for i := range want {
		if out[i].port != want[i].port || !bytes.Equal(out[i].frame, want[i].frame) {
			t.Errorf("reset %d on port %d:\n got %s\nwant %s (port %d)", i, out[i].port,
				hex.EncodeToString(out[i].frame), hex.EncodeToString(want[i].frame), want[i].port)
		}
		checkGopacket(t, "reset", out[i].frame)
	}
	st := tp.e.table.Stats()
	if st.Counters[conntrack.CtrIdleRSTClient] != 1 || st.Counters[conntrack.CtrIdleRSTServer] != 1 ||
		st.Counters[conntrack.CtrIdleReset] != 1 || st.Counters[conntrack.CtrExpired] != 1 {
		t.Fatalf("counters %v", st.Counters)
	}
	if n := len(tp.w.shard.ExpiredResets()); n != 0 {
		t.Fatalf("%d resets still queued", n)
	}
	// Nothing more on the next sweep; the client's next segment finds no
	// state (its stack has aborted the connection anyway).
	tp.now += conntrack.Second
	if out := expireAndReset(tp); len(out) != 0 {
		t.Fatalf("%d frames on the next sweep", len(out))
	}
	late := eth(headertest.Spec{Src: fam.client, Dst: fam.server, Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 80,
		Flags: header.TCPFlagACK, Seq: cisn + 101, Ack: sisn + 1001, Window: 64240}, macClient, macEdgeIn)
	if out, r := tp.send(0, late); out != nil || r != drop.NoState {
		t.Fatalf("late segment: out %v, %v", out != nil, r)
	}
}

// The silent default: the same connection expires without a frame.
func TestPipelineIdleExpirySilent(t *testing.T) {
	forEachPipeFamily(t, func(t *testing.T, fam pipeFamily) {
		tp := fam.newPipeline(t, allowOutbound)
		silent := idleResetProfile
		silent.IdleExpiry = conntrack.IdleSilent
		if err := tp.e.table.SetPolicy(conntrack.Policy{Profiles: []conntrack.Profile{silent}}); err != nil {
			t.Fatal(err)
		}
		idleConn(t, tp, fam, 40000, 1000, 7000)
		tp.now += silent.Established + conntrack.Second
		if out := expireAndReset(tp); len(out) != 0 {
			t.Fatalf("%d frames from a silent expiry", len(out))
		}
		if st := tp.e.table.Stats(); st.Counters[conntrack.CtrExpired] != 1 || st.Counters[conntrack.CtrIdleReset] != 0 {
			t.Fatalf("counters %v", st.Counters)
		}
	})
}

// More flows expire at once than one batch has buffers for generated
// packets: the first 32 are reset at once, the rest at the next sweep,
// each flow's two resets exactly once.
func TestPipelineIdleExpiryResetBatches(t *testing.T) {
	fam := pipeFamilies[0]
	tp := fam.newPipeline(t, allowOutbound)
	if err := tp.e.table.SetPolicy(conntrack.Policy{Profiles: []conntrack.Profile{idleResetProfile}}); err != nil {
		t.Fatal(err)
	}
	const flows = 40
	for i := range flows {
		idleConn(t, tp, fam, uint16(41000+i), 1000, 7000)
	}
	tp.now += idleResetProfile.Established + conntrack.Second
	seen := map[[2]uint16]int{} // (port, client port or SNAT port side) -> resets
	out := append([]sent(nil), expireAndReset(tp)...)
	if len(out) != 2*len(tp.w.errBufs)/2 {
		t.Fatalf("first sweep: %d frames, want %d", len(out), len(tp.w.errBufs))
	}
	tp.now += conntrack.Millisecond
	out = append(out, expireAndReset(tp)...)
	for _, s := range out {
		tcp := header.TCP(s.frame[header.EthernetLen+header.IPv4MinLen:])
		if tcp.Flags() != header.TCPFlagRST|header.TCPFlagACK {
			t.Fatalf("not a reset: %x", s.frame)
		}
		p := tcp.DstPort()
		if s.port == 1 {
			p = tcp.SrcPort()
		}
		seen[[2]uint16{uint16(s.port), p}]++
	}
	if len(out) != 2*flows || len(seen) != 2*flows {
		t.Fatalf("%d resets to %d ends, want %d to %d", len(out), len(seen), 2*flows, 2*flows)
	}
}

// idleResetRound opens an untranslated flow on tp's worker shard directly,
// lets it expire and runs the worker's expiry step: the resets of one flow.
type idleResetRound struct {
	tp   *testPipeline
	pkts [3]conntrack.Packet
}

func newIdleResetRound(t testing.TB) *idleResetRound {
	fam := pipeFamilies[0]
	tp := fam.newPipeline(t, allowOutbound)
	if err := tp.e.table.SetPolicy(conntrack.Policy{Profiles: []conntrack.Profile{idleResetProfile}}); err != nil {
		t.Fatal(err)
	}
	const SYN, ACK = header.TCPFlagSYN, header.TCPFlagACK
	r := &idleResetRound{tp: tp}
	for i, s := range []headertest.Spec{
		{Src: fam.client, Dst: fam.server, SrcPort: 40000, DstPort: 80, Flags: SYN, Seq: 1000},
		{Src: fam.server, Dst: fam.client, SrcPort: 80, DstPort: 40000, Flags: SYN | ACK, Seq: 7000, Ack: 1001},
		{Src: fam.client, Dst: fam.server, SrcPort: 40000, DstPort: 80, Flags: ACK, Seq: 1001, Ack: 7001},
	} {
		s.Proto, s.Window = header.ProtoTCP, 64240
		if res := conntrack.Parse(headertest.Build(s), 0, &r.pkts[i]); res != drop.None {
			t.Fatal(res)
		}
	}
	return r
}

func (r *idleResetRound) run() {
	tp, sh := r.tp, r.tp.w.shard
	for i := range r.pkts {
		if v := sh.Track(&r.pkts[i], tp.now); v.Action == conntrack.Open {
			sh.Create(&r.pkts[i], conntrack.NewFlow{}, tp.now)
		}
	}
	tp.now += idleResetProfile.Established + conntrack.Second
	sh.Expire(tp.now, 4) // the flow is in one of the first slots
	tp.w.sendExpiredResets(tp.now)
	tp.w.flush()
}

func TestPipelineIdleExpiryResetZeroAllocs(t *testing.T) {
	r := newIdleResetRound(t)
	frames := 0
	r.tp.w.testTX = func(int, []byte) { frames++ }
	if allocs := testing.AllocsPerRun(100, r.run); allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
	if frames < 200 {
		t.Fatalf("%d resets sent in 101 rounds", frames)
	}
}

// BenchmarkIdleExpiryReset: a flow opened, expired by the sweep and both
// its ends reset (the two RSTs built, routed, addressed and queued).
func BenchmarkIdleExpiryReset(b *testing.B) {
	r := newIdleResetRound(b)
	r.tp.w.testTX = func(int, []byte) {}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.run()
	}
}
