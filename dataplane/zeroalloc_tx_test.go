package dataplane

import (
	"net"
	"testing"
	"time"

	"github.com/asavie/xdp"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/internal/netnstest"
)

// TestPipelineZeroAllocsRealTX is TestPipelineZeroAllocs through the
// transmit path edge runs: the outside port is a real AF_XDP socket on a
// veth (copy mode), each packet is parsed, tracked, translated, copied
// into the socket's UMEM, submitted, kicked and completed, as the worker
// loop does, and the server at the other end of the veth must receive
// every datagram; then the same with each packet received into a frame of
// the socket's UMEM, which must be sent from that frame (shared UMEM). A packet that is dropped anywhere (no route, no
// neighbour, tx_full) fails it, whatever it allocates.
func TestPipelineZeroAllocsRealTX(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation test")
	}
	netnstest.Require(t)
	_, edgeNS, server := netnstest.Gateway(t, "za")

	// The server counts the datagrams it receives on 203.0.113.2:7011.
	srv := listenCounting(t, server, net.IPv4(203, 0, 113, 2), 7011)

	// The worker's outside port is an AF_XDP socket on edge's "out".
	var sock *xdp.Socket
	if err := edgeNS.Do(func() error {
		ifc, err := net.InterfaceByName("out")
		if err != nil {
			return err
		}
		opts := xdp.SocketOptions{NumFrames: 128, FrameSize: 2048, FillRingNumDescs: 64,
			CompletionRingNumDescs: 64, RxRingNumDescs: 64, TxRingNumDescs: 64, NeedWakeup: true}
		sock, err = xdp.NewSocket(ifc.Index, 0, &opts)
		return err
	}); err != nil {
		t.Fatalf("AF_XDP socket on out: %v", err)
	}
	t.Cleanup(func() { sock.Close() })

	tp := newTestPipeline(t, allowOutbound, 1024)
	out := tp.w.ports[1]
	out.sock, out.mac = sock, ifaceMAC(t, edgeNS, "out")
	tp.w.ledger.init(128, 2048, 64, fillTarget(128, 64))
	tp.w.testTX = func(int, []byte) { t.Error("a frame bypassed the socket") }
	tp.e.neigh.store(map[neighKey][6]byte{
		{1, ipClient.As16()}: macClient,
		{2, ipServer.As16()}: ifaceMAC(t, server, "s0"),
	})

	frame := eth(headertest.Spec{Src: ipClient, Dst: ipServer, Proto: header.ProtoUDP, SrcPort: 5000, DstPort: 7011,
		Payload: []byte("x")}, macClient, macEdgeIn)
	buf := make([]byte, len(frame))
	frames := [][]byte{buf}
	sent := 0
	// One packet through the pipeline and the socket, as the worker loop
	// handles a batch: pipeline, transmit (UMEM copy, submit), completions,
	// kick (sendto).
	run := func() {
		copy(buf, frame)
		tp.w.pipeline(0, frames, tp.now)
		tp.w.transmit(1)
		tp.w.complete(1)
		tp.w.kick(1, tp.now)
		sent++
	}
	// The same with the packet received into a frame of the UMEM (as if on
	// the inside port, whose socket shares it): sent from that frame.
	inPlace, copied := [][]byte{nil}, 0
	runInPlace := func() {
		d := sock.GetDescs(1)[0]
		tp.w.ledger.move(d.Addr, frameFree, frameFill)
		tp.w.ledger.move(d.Addr, frameFill, frameHeld)
		d.Addr, d.Len = d.Addr+256, uint32(len(frame)) // the kernel's RX headroom
		inPlace[0] = sock.GetFrame(d)
		copy(inPlace[0], frame)
		tp.w.pipeline(0, inPlace, tp.now)
		tp.w.transmit(1)
		if tp.w.ledger.state[d.Addr>>tp.w.ledger.shift] != frameTx+1 {
			copied++
		}
		tp.w.complete(1)
		tp.w.kick(1, tp.now)
		sent++
	}
	run() // opens the flow
	allocs := testing.AllocsPerRun(200, run)
	allocsInPlace := testing.AllocsPerRun(200, runInPlace)
	if copied != 0 {
		t.Errorf("%d received frames were not sent from the frame they arrived in", copied)
	}
	for r, n := range tp.w.drops {
		if n != 0 {
			t.Errorf("%d packets dropped: %v", n, drop.Reason(r))
		}
	}
	if tp.w.tx[1] != uint32(sent) {
		t.Errorf("%d of %d packets submitted to the socket", tp.w.tx[1], sent)
	}
	if !waitFor(2*time.Second, func() bool { return srv.got.Load() >= int64(sent) }) {
		t.Errorf("the server received %d of the %d datagrams", srv.got.Load(), sent)
	}
	t.Logf("%d datagrams through the socket, %d received, %v allocs per packet (copied), %v (in place)", sent, srv.got.Load(), allocs, allocsInPlace)
	if allocs != 0 || allocsInPlace != 0 {
		t.Errorf("established-flow pipeline through the AF_XDP socket: %v allocs per packet copied, %v in place", allocs, allocsInPlace)
	}
}
