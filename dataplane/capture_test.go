package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// Tests of triggered capture over the test pipeline: which packets a
// capture keeps (the anomalous one and its flow's history), and its bounds.

const (
	capSYN = header.TCPFlagSYN
	capACK = header.TCPFlagACK
	capRST = header.TCPFlagRST
	capPSH = header.TCPFlagPSH
)

// captureSummary writes the fields of p a test checks.
func captureSummary(p *CapturedPacket) string {
	ap := func(a [16]byte, port uint16) string {
		return netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), port).String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#%d in%d %s>%s %s", p.Trigger, p.In, ap(p.Key.Src, p.Key.SrcPort), ap(p.Key.Dst, p.Key.DstPort), flagString(p.Flags))
	if p.Drop != drop.None {
		fmt.Fprintf(&b, " dropped %v", p.Drop)
	} else {
		b.WriteString(" passed")
	}
	if p.RST {
		b.WriteString(" rst_sent")
	}
	if p.HasFlow {
		fmt.Fprintf(&b, " flow(%s %v)", ap(p.Flow.Src, p.Flow.SrcPort), p.Dir)
	}
	if p.Anomalous {
		fmt.Fprintf(&b, " ANOMALY %v", p.Anomaly)
		if p.HasFlow {
			fmt.Fprintf(&b, " gen %d", p.Gen)
		}
		if p.Idle != 0 {
			fmt.Fprintf(&b, " idle %ds", p.Idle/conntrack.Second)
		}
	}
	return b.String()
}

func flagString(f uint8) string {
	s := ""
	for _, c := range []struct {
		bit  uint8
		name string
	}{{capSYN, "S"}, {header.TCPFlagFIN, "F"}, {capRST, "R"}, {capPSH, "P"}, {capACK, "."}} {
		if f&c.bit != 0 {
			s += c.name
		}
	}
	return s
}

// readKept reads every kept packet and checks each holds the start of its
// frame.
func readKept(t *testing.T, e *Engine) []CapturedPacket {
	t.Helper()
	var out []CapturedPacket
	var buf [64]CapturedPacket
	for n := e.ReadCapture(buf[:]); n > 0; n = e.ReadCapture(buf[:]) {
		out = append(out, buf[:n]...)
	}
	return out
}

func keptSummaries(t *testing.T, e *Engine) []string {
	t.Helper()
	var s []string
	for _, p := range readKept(t, e) {
		s = append(s, captureSummary(&p))
	}
	return s
}

func armCapture(t *testing.T, e *Engine, spec CaptureSpec) {
	t.Helper()
	if _, err := e.ArmCapture(spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.DisarmCapture() })
}

func capTCP(src netip.Addr, sport uint16, dst netip.Addr, dport uint16, flags uint8, seq, ack uint32, payload int) headertest.Spec {
	s := tcpSpec(src, sport, dst, dport, flags, seq, ack, 64)
	s.Payload = make([]byte, payload)
	return s
}

// c2s and s2c build segments of the client's connection 40000 -> 80
// through SNAT port nat.
func c2s(flags uint8, seq, ack uint32, payload int) []byte {
	return eth(capTCP(ipClient, 40000, ipServer, 80, flags, seq, ack, payload), macClient, macEdgeIn)
}

func s2c(nat uint16, flags uint8, seq, ack uint32, payload int) []byte {
	return eth(capTCP(ipServer, 80, ipSNAT, nat, flags, seq, ack, payload), macServer, macEdgeOut)
}

func clientKey() conntrack.Key {
	return conntrack.MakeKey(header.ProtoTCP, netip.AddrPortFrom(ipClient, 40000), netip.AddrPortFrom(ipServer, 80))
}

// TestCaptureTriggers: each anomaly keeps the anomalous packet after its
// flow's recent packets (as received, before translation); clean traffic,
// a late reset, a filtered-out flow and traffic before arming keep nothing.
func TestCaptureTriggers(t *testing.T) {
	rejectTelnet := firewall.RuleSet{Rules: []firewall.Rule{
		{Name: "no-telnet", Zone: firewall.Inside, Proto: header.ProtoTCP, DstPorts: []firewall.PortRange{{Lo: 23, Hi: 23}}, Action: firewall.Reject},
		{Name: "outbound", Zone: firewall.Inside, Action: firewall.Allow},
	}, Default: firewall.Drop}
	type step struct {
		in    int
		frame func(nat uint16) []byte
		wait  conntrack.Time // before the packet
	}
	syn := step{0, func(uint16) []byte { return c2s(capSYN, 1000, 0, 0) }, 0}
	synAck := step{1, func(n uint16) []byte { return s2c(n, capSYN|capACK, 5000, 1001, 0) }, 0}
	ack := step{0, func(uint16) []byte { return c2s(capACK, 1001, 5001, 0) }, 0}
	data := step{0, func(uint16) []byte { return c2s(capACK|capPSH, 1001, 5001, 100) }, 0}
	srvRST := step{1, func(n uint16) []byte { return s2c(n, capRST|capACK, 5001, 1101, 0) }, 0}
	for _, c := range []struct {
		name   string
		spec   CaptureSpec
		before []step // sent before the capture is armed
		steps  []step
		want   []string
	}{
		{"synack_bad_ack", CaptureSpec{}, nil,
			[]step{syn, {1, func(n uint16) []byte { return s2c(n, capSYN|capACK, 5000, 7777, 0) }, 0}},
			[]string{
				"#1 in0 10.0.0.2:40000>203.0.113.2:80 S passed flow(10.0.0.2:40000 original)",
				"#1 in1 203.0.113.2:80>203.0.113.1:40000 S. dropped synack_bad_ack flow(10.0.0.2:40000 reply) ANOMALY state_mismatch gen 0",
			}},
		{"no_state", CaptureSpec{}, nil,
			[]step{{0, func(uint16) []byte { return c2s(capACK, 1, 1, 0) }, 0}},
			[]string{"#1 in0 10.0.0.2:40000>203.0.113.2:80 . dropped no_state ANOMALY state_mismatch"}},
		{"edge_rst", CaptureSpec{}, nil,
			[]step{{0, func(uint16) []byte {
				return eth(capTCP(ipClient, 5, ipServer, 23, capSYN, 9, 0, 0), macClient, macEdgeIn)
			}, 0}},
			[]string{"#1 in0 10.0.0.2:5>203.0.113.2:23 S dropped firewall_reject rst_sent ANOMALY edge_rst"}},
		{"server_rst_after_synack", CaptureSpec{}, nil,
			[]step{syn, synAck, srvRST},
			[]string{
				"#1 in0 10.0.0.2:40000>203.0.113.2:80 S passed flow(10.0.0.2:40000 original)",
				"#1 in1 203.0.113.2:80>203.0.113.1:40000 S. passed flow(10.0.0.2:40000 reply)",
				"#1 in1 203.0.113.2:80>203.0.113.1:40000 R. passed flow(10.0.0.2:40000 reply) ANOMALY server_rst gen 0",
			}},
		{"server_rst_after_data", CaptureSpec{}, []step{syn, synAck, ack},
			[]step{{0, data.frame, 5 * conntrack.Second}, srvRST},
			[]string{
				"#1 in0 10.0.0.2:40000>203.0.113.2:80 P. passed flow(10.0.0.2:40000 original)",
				"#1 in1 203.0.113.2:80>203.0.113.1:40000 R. passed flow(10.0.0.2:40000 reply) ANOMALY server_rst gen 0",
			}},
		{"server_rst_late", CaptureSpec{}, nil,
			[]step{syn, synAck, ack, data, {1, srvRST.frame, 2 * conntrack.Second}}, nil},
		{"clean", CaptureSpec{}, nil, []step{syn, synAck, ack, data}, nil},
		{"filtered_out", CaptureSpec{Filter: conntrack.Filter{Port: 443}}, nil,
			[]step{syn, {1, func(n uint16) []byte { return s2c(n, capSYN|capACK, 5000, 7777, 0) }, 0}}, nil},
		{"filter_by_flow", CaptureSpec{Filter: addrFilter(ipClient)}, nil, // the reset's own key has the SNAT address
			[]step{syn, synAck, srvRST},
			[]string{
				"#1 in0 10.0.0.2:40000>203.0.113.2:80 S passed flow(10.0.0.2:40000 original)",
				"#1 in1 203.0.113.2:80>203.0.113.1:40000 S. passed flow(10.0.0.2:40000 reply)",
				"#1 in1 203.0.113.2:80>203.0.113.1:40000 R. passed flow(10.0.0.2:40000 reply) ANOMALY server_rst gen 0",
			}},
		// The ESTABLISHED timer is 7,440 s: the flow expires, then the
		// client sends on it.
		{"idle_expired", CaptureSpec{}, nil,
			[]step{syn, synAck, ack, {0, data.frame, 7500 * conntrack.Second}},
			[]string{
				"#1 in0 10.0.0.2:40000>203.0.113.2:80 S passed flow(10.0.0.2:40000 original)",
				"#1 in1 203.0.113.2:80>203.0.113.1:40000 S. passed flow(10.0.0.2:40000 reply)",
				"#1 in0 10.0.0.2:40000>203.0.113.2:80 . passed flow(10.0.0.2:40000 original)",
				"#1 in0 10.0.0.2:40000>203.0.113.2:80 P. dropped no_state ANOMALY idle_expired idle 7500s",
			}},
		{"not_armed_before", CaptureSpec{}, []step{{0, func(uint16) []byte { return c2s(capACK, 1, 1, 0) }, 0}}, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			tp := newTestPipeline(t, rejectTelnet, 1024)
			nat := uint16(0)
			run := func(steps []step) {
				for _, s := range steps {
					tp.now += s.wait
					f := s.frame(nat)
					tp.send(s.in, f)
					if nat == 0 {
						if r, _, ok := tp.w.shard.Lookup(&[]conntrack.Key{clientKey()}[0], tp.now); ok {
							_, nat = tp.w.shard.NAT(r)
						}
					}
				}
			}
			run(c.before)
			armCapture(t, tp.e, c.spec)
			run(c.steps)
			got := keptSummaries(t, tp.e)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("kept\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			st := tp.e.CaptureStatus()
			if wantAnomalies := uint64(min(len(c.want), 1)); st.Anomalies != wantAnomalies || st.Packets != uint64(len(c.want)) {
				t.Fatalf("status %+v, want %d anomalies, %d packets", st, wantAnomalies, len(c.want))
			}
		})
	}
}

// A kept packet holds the frame as it arrived (before translation), its
// length and the capture's session.
func TestCaptureData(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	id, err := tp.e.ArmCapture(CaptureSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.e.DisarmCapture()
	long := c2s(capACK, 1, 1, 400) // no flow: no_state
	sent := append([]byte(nil), long...)
	tp.send(0, long)
	kept := readKept(t, tp.e)
	if len(kept) != 1 {
		t.Fatalf("%d packets kept, want 1", len(kept))
	}
	p := kept[0]
	if p.Session != id || int(p.Len) != len(sent) || p.CapLen != CaptureSnapLen || !bytes.Equal(p.Data[:p.CapLen], sent[:CaptureSnapLen]) || p.Payload != 400 {
		t.Fatalf("kept session %d len %d caplen %d payload %d data %x\nwant session %d len %d caplen %d start %x",
			p.Session, p.Len, p.CapLen, p.Payload, p.Data[:p.CapLen], id, len(sent), CaptureSnapLen, sent[:CaptureSnapLen])
	}
	short := c2s(capACK, 1, 1, 0)
	tp.send(0, short)
	if kept = readKept(t, tp.e); len(kept) != 1 || int(kept[0].CapLen) != len(short) || int(kept[0].Len) != len(short) {
		t.Fatalf("short frame: %+v", kept)
	}
}

// Bounds: a flow's history is at most captureHistMax packets, each
// history packet is kept once, anomalies beyond the rate are counted
// Limited, a full kept store loses packets (counted Lost), Count and For
// disarm, one capture at a time.
func TestCaptureBounds(t *testing.T) {
	t.Run("history", func(t *testing.T) {
		tp := newTestPipeline(t, allowOutbound, 1024)
		tp.send(0, c2s(capSYN, 1000, 0, 0))
		nat := tp.natPort(clientKey())
		tp.send(1, s2c(nat, capSYN|capACK, 5000, 1001, 0))
		armCapture(t, tp.e, CaptureSpec{})
		seq := uint32(1001)
		for i := 0; i < 40; i++ {
			tp.send(0, c2s(capACK|capPSH, seq, 5001, 10))
			seq += 10
		}
		tp.send(1, s2c(nat, capRST|capACK, 5001, seq, 0))
		kept := readKept(t, tp.e)
		if len(kept) != captureHistMax+1 || !kept[len(kept)-1].Anomalous {
			t.Fatalf("%d packets kept, want %d (history bound) ending with the anomalous one", len(kept), captureHistMax+1)
		}
		// The newest history: the last captureHistMax data segments, in order.
		for i, p := range kept[:captureHistMax] {
			if p.Anomalous || p.Trigger != 1 || p.Payload != 10 || i > 0 && kept[i-1].Time > p.Time {
				t.Fatalf("history packet %d: %s", i, captureSummary(&p))
			}
		}
		// A second anomaly of the flow does not keep the same history again.
		tp.send(1, s2c(nat, capRST|capACK, 5001, seq, 0))
		if kept = readKept(t, tp.e); len(kept) != 1 {
			t.Fatalf("second anomaly: %d packets kept, want 1 (the history was kept already)", len(kept))
		}
	})
	t.Run("rate", func(t *testing.T) {
		tp := newTestPipeline(t, allowOutbound, 1024)
		armCapture(t, tp.e, CaptureSpec{})
		for i := 0; i < 100; i++ {
			tp.send(0, eth(capTCP(ipClient, uint16(1000+i), ipServer, 80, capACK, 1, 1, 0), macClient, macEdgeIn))
		}
		st := tp.e.CaptureStatus()
		if st.Anomalies != captureBurst || st.Limited != 100-captureBurst || len(readKept(t, tp.e)) != captureBurst {
			t.Fatalf("100 anomalies at once: %+v, want %d kept, %d limited", st, captureBurst, 100-captureBurst)
		}
	})
	t.Run("kept_full", func(t *testing.T) {
		tp := newTestPipeline(t, allowOutbound, 1024)
		armCapture(t, tp.e, CaptureSpec{})
		const n = captureKeptSize + 100
		for i := 0; i < n; i++ {
			tp.now += conntrack.Second / captureRate
			tp.send(0, eth(capTCP(ipClient, uint16(1000+i), ipServer, 80, capACK, 1, 1, 0), macClient, macEdgeIn))
		}
		st := tp.e.CaptureStatus()
		if st.Anomalies != n || st.Limited != 0 || st.Packets != captureKeptSize || st.Lost != n-captureKeptSize {
			t.Fatalf("%d anomalies unread: %+v, want %d kept, %d lost", n, st, captureKeptSize, n-captureKeptSize)
		}
		if got := len(readKept(t, tp.e)); got != captureKeptSize {
			t.Fatalf("read %d, want %d", got, captureKeptSize)
		}
	})
	t.Run("count_for_busy", func(t *testing.T) {
		tp := newTestPipeline(t, allowOutbound, 1024)
		if _, err := tp.e.ArmCapture(CaptureSpec{Count: 2}); err != nil {
			t.Fatal(err)
		}
		if _, err := tp.e.ArmCapture(CaptureSpec{}); !errors.Is(err, ErrCaptureArmed) {
			t.Fatalf("second capture: %v, want ErrCaptureArmed", err)
		}
		for i := 0; i < 5; i++ {
			tp.send(0, eth(capTCP(ipClient, uint16(1000+i), ipServer, 80, capACK, 1, 1, 0), macClient, macEdgeIn))
		}
		if st := tp.e.CaptureStatus(); st.Armed || st.Anomalies != 2 || len(readKept(t, tp.e)) != 2 {
			t.Fatalf("count 2: %+v", st)
		}
		// A used-up capture does not block the next one.
		if _, err := tp.e.ArmCapture(CaptureSpec{For: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		tp.e.start = tp.e.start.Add(-time.Second) // the engine's clock a second on
		tp.now = tp.e.now()
		tp.send(0, c2s(capACK, 1, 1, 0))
		if st := tp.e.CaptureStatus(); st.Armed || st.Anomalies != 0 {
			t.Fatalf("after its time: %+v", st)
		}
		if tp.e.DisarmCapture() {
			t.Fatal("DisarmCapture of an expired capture reported it armed")
		}
		if _, err := tp.e.ArmCapture(CaptureSpec{}); err != nil {
			t.Fatal(err)
		}
		if !tp.e.DisarmCapture() || tp.e.CaptureStatus().Armed {
			t.Fatal("DisarmCapture did not disarm")
		}
		tp.send(0, c2s(capACK, 1, 1, 0))
		if n := len(readKept(t, tp.e)); n != 0 {
			t.Fatalf("disarmed capture kept %d packets", n)
		}
	})
}

// A capture's memory per worker is fixed and small: the ring and the kept
// store, whatever the traffic.
func TestCaptureMemoryBound(t *testing.T) {
	ring := unsafe.Sizeof(captureSlot{}) * captureHistSize
	kept := unsafe.Sizeof(CapturedPacket{}) * captureKeptSize
	t.Logf("per worker: ring %d B, kept store %d B", ring, kept)
	if ring+kept > 450<<10 {
		t.Fatalf("capture memory per worker %d B, over the 450 KiB the docs promise", ring+kept)
	}
}

// History is of the capture armed now: packets recorded under an earlier
// capture are not kept as the history of a later one's anomaly.
func TestCaptureHistoryPerSession(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	if _, err := tp.e.ArmCapture(CaptureSpec{}); err != nil {
		t.Fatal(err)
	}
	tp.send(0, c2s(capSYN, 1000, 0, 0))
	nat := tp.natPort(clientKey())
	tp.send(1, s2c(nat, capSYN|capACK, 5000, 1001, 0))
	tp.e.DisarmCapture()
	armCapture(t, tp.e, CaptureSpec{})
	tp.send(1, s2c(nat, capRST|capACK, 5001, 1001, 0))
	if got := keptSummaries(t, tp.e); len(got) != 0 {
		t.Fatalf("a reset after a SYN-ACK of an earlier capture kept %q: its window is of this capture's packets", got)
	}
	tp.send(1, s2c(nat, capSYN|capACK, 5000, 7777, 0))
	want := []string{
		"#1 in1 203.0.113.2:80>203.0.113.1:40000 R. passed flow(10.0.0.2:40000 reply)",
		"#1 in1 203.0.113.2:80>203.0.113.1:40000 S. dropped synack_bad_ack flow(10.0.0.2:40000 reply) ANOMALY state_mismatch gen 0",
	}
	if got := keptSummaries(t, tp.e); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("kept %q, want this capture's reset then the anomalous SYN-ACK", got)
	}
}

// A ring slot is wholly rewritten for each packet: the record of a packet
// in a slot full of another's bytes is the record it gets in a clean slot
// (Data past CapLen aside).
func TestCaptureSlotReuse(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	tp.send(0, c2s(capSYN, 1000, 0, 0))
	nat := tp.natPort(clientKey())
	tp.send(1, s2c(nat, capSYN|capACK, 5000, 1001, 0))
	armCapture(t, tp.e, CaptureSpec{})
	for _, pkt := range []struct {
		in    int
		frame []byte
	}{
		{0, c2s(capACK, 1001, 5001, 0)},  // of a flow
		{0, c2s(capACK|capPSH, 7, 7, 0)}, // out of window
		{0, eth(capTCP(ipClient, 41000, ipServer, 80, capACK, 1, 1, 0), macClient, macEdgeIn)}, // no flow
	} {
		var recs [2]CapturedPacket
		for i, fill := range []byte{0, 0xff} {
			c := &tp.w.cap
			for j := range c.hist {
				b := unsafe.Slice((*byte)(unsafe.Pointer(&c.hist[j])), unsafe.Sizeof(c.hist[j]))
				for k := range b {
					b[k] = fill
				}
			}
			c.next = 0
			tp.send(pkt.in, append([]byte(nil), pkt.frame...)) // translated in place
			recs[i] = c.hist[0].pkt
			clear(recs[i].Data[recs[i].CapLen:])
			recs[i].Trigger = 0 // an anomaly's number: one more the second time
			readKept(t, tp.e)
		}
		if recs[0] != recs[1] {
			t.Fatalf("clean slot %+v\ndirty slot %+v", recs[0], recs[1])
		}
	}
}

// The pipeline allocates nothing per packet with a capture armed:
// established traffic recorded in the ring, anomalies kept and read.
func TestCaptureZeroAllocs(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	tp.w.testTX = func(int, []byte) {}
	tp.send(0, c2s(capSYN, 1000, 0, 0))
	nat := tp.natPort(clientKey())
	tp.send(1, s2c(nat, capSYN|capACK, 5000, 1001, 0))
	templates := []struct {
		in    int
		frame []byte
	}{
		{0, c2s(capACK, 1001, 5001, 0)},
		{1, s2c(nat, capACK, 5001, 1001, 0)},
		{0, eth(capTCP(ipClient, 41000, ipServer, 80, capACK, 1, 1, 0), macClient, macEdgeIn)}, // no_state
		{0, c2s(capACK, 1001+1<<30, 5001, 0)},                                                  // out_of_window: an anomaly of a flow
	}
	frames := [][]byte{make([]byte, 256)}
	var buf [64]CapturedPacket
	read := 0
	reasons := map[drop.Reason]int{}
	run := func() {
		for _, tm := range templates {
			frames[0] = frames[0][:copy(frames[0][:cap(frames[0])], tm.frame)]
			tp.now += conntrack.Second / captureRate
			tp.w.pipeline(tm.in, frames, tp.now)
			tp.w.transmit(0)
			tp.w.transmit(1)
		}
		n := tp.e.ReadCapture(buf[:])
		for _, p := range buf[:n] {
			if p.Anomalous {
				reasons[p.Drop]++ // no allocation once both keys are in
			}
		}
		read += n
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("no capture: %v allocs per run", n)
	}
	armCapture(t, tp.e, CaptureSpec{})
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Fatalf("capture armed: %v allocs per run", n)
	}
	if st := tp.e.CaptureStatus(); read == 0 || st.Anomalies != 2*102 || st.Lost != 0 || st.Limited != 0 ||
		reasons[drop.NoState] != 102 || reasons[drop.OutOfWindow] != 102 {
		t.Fatalf("read %d, status %+v, anomalous drops %v; want 102 no_state and 102 out_of_window kept", read, st, reasons)
	}
}

// BenchmarkPipelineCapture: established UDP flows (1,000, both directions,
// batches of 32) with no capture and with one armed (every packet recorded
// in the ring; nothing anomalous).
func BenchmarkPipelineCapture(b *testing.B) {
	const flows = 1000
	for _, mode := range []string{"off", "armed"} {
		b.Run(mode, func(b *testing.B) {
			tp := benchPipeline(b, allowOutbound, flows)
			frames := openBenchFlows(tp, flows)
			if mode == "armed" {
				if _, err := tp.e.ArmCapture(CaptureSpec{}); err != nil {
					b.Fatal(err)
				}
				defer tp.e.DisarmCapture()
			}
			runBatches(b, tp, frames, nil)
			if st := tp.e.CaptureStatus(); st.Anomalies != 0 {
				b.Fatalf("clean traffic kept %d anomalies", st.Anomalies)
			}
		})
	}
}
