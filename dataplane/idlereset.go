package dataplane

import (
	"encoding/binary"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/icmp"
)

// Resets for flows that expired idle under a timer profile with
// idle_expiry: reset (conntrack/idlereset.go). After each expiry sweep the
// worker sends, for every ESTABLISHED flow conntrack queued, one RST+ACK
// to each end, each as the other end would have sent it:
//
//	to the client (inside):  server -> client as the client sees them
//	                         (the original key reversed), seq = the
//	                         server's next, ack = the client's next
//	to the server (outside): client -> server as the server sees them
//	                         (the reply key reversed: from the SNAT address
//	                         and port), seq = the client's next, ack = the
//	                         server's next
//
// Each end accepts it (its sequence number is exactly that end's RCV.NXT,
// RFC 5961 3.2) and aborts the connection, so neither keeps one that would
// fail on its next use. The resets use the batch's buffers for generated
// packets without the ICMP rate limit (one sweep step expires at most
// expireSlots flows, and only flows that lived a whole timer); flows left
// when the buffers run out wait for the next sweep, in conntrack's
// bounded queue. Sent resets are counted by side in conntrack
// (idle_rst_client, idle_rst_server); a reset that cannot leave (no
// route, no neighbour) is a counted drop like any generated packet's.

// sendExpiredResets sends the resets of the flows conntrack queued at the
// last expiry sweep, and transmits them.
func (w *worker) sendExpiredResets(now conntrack.Time) {
	rs := w.shard.ExpiredResets()
	if len(rs) == 0 {
		return
	}
	w.now = now
	done := 0
	for i := range rs {
		if len(w.errBufs)-w.nerr < 2 {
			break
		}
		r := &rs[i]
		o, rk := &r.Orig, &r.Reply
		w.sendFlowRST(&o.Dst, &o.Src, o.DstPort, o.SrcPort, r.Next[conntrack.Reply], r.Next[conntrack.Original], o, true)
		w.sendFlowRST(&rk.Dst, &rk.Src, rk.DstPort, rk.SrcPort, r.Next[conntrack.Original], r.Next[conntrack.Reply], o, false)
		done++
	}
	w.shard.ConsumeExpiredResets(done)
	for pi := range w.ports {
		w.transmit(pi)
		if w.ports[pi].sock != nil {
			w.kick(pi, now)
		}
	}
}

// sendFlowRST builds an RST+ACK from src:sport to dst:dport with seq and
// ack into the next buffer for generated packets and queues it toward dst,
// for the expired flow with original key orig (toClient: the reset goes to
// its client).
func (w *worker) sendFlowRST(src, dst *[16]byte, sport, dport uint16, seq, ack uint32, orig *conntrack.Key, toClient bool) {
	w.nerr++
	buf := w.errBufs[w.nerr-1][:]
	p := &w.errPkt
	*p = conntrack.Packet{}
	p.Key = conntrack.Key{Src: *src, Dst: *dst, SrcPort: sport, DstPort: dport, Proto: header.ProtoTCP, Zone: orig.Zone}
	p.Flags = header.TCPFlagRST | header.TCPFlagACK
	n, r := icmp.BuildFlowRST(buf[header.EthernetLen:], src, dst, sport, dport, seq, ack)
	if r != drop.None {
		w.dropPkt(r, -1, p)
		return
	}
	et := uint16(header.EtherTypeIPv6)
	if buf[header.EthernetLen]>>4 == 4 {
		et = header.EtherTypeIPv4
	}
	binary.BigEndian.PutUint16(buf[12:], et)
	out, hop, ok := w.env.routes.Load().Lookup(dst)
	if !ok {
		w.dropPkt(drop.NoRoute, -1, p)
		return
	}
	if w.queue(out, p, buf[:header.EthernetLen+n], out, hop) {
		w.shard.NoteResetSent(orig, toClient)
	}
}
