package icmp

import (
	"encoding/binary"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
)

// BuildRST writes into out the TCP reset that answers the TCP segment in ip
// (IPv4 or IPv6) the way a closed port would (RFC 9293 3.10.7.1, "If the
// state is CLOSED"): if the segment carries ACK, the reset has seq = SEG.ACK
// and no ACK; otherwise seq = 0 and ACK = SEG.SEQ + SEG.LEN, SYN and FIN
// counting one each. A reject rule answers TCP with it and everything else
// with ICMP administratively prohibited. It never answers a reset or a
// fragment. It returns the IP packet's length, or a reason. No allocation.
func BuildRST(out []byte, ip []byte) (n int, r drop.Reason) {
	var src, dst, seg []byte
	hl := header.IPv4MinLen
	switch {
	case len(ip) >= header.IPv4MinLen && ip[0]>>4 == 4:
		h := header.IPv4(ip)
		if !h.IsValid(len(ip)) || h.Protocol() != header.ProtoTCP || h.IsFragment() {
			return 0, drop.ICMPBuildFailed
		}
		src, dst, seg = ip[12:16], ip[16:20], ip[h.HeaderLen():h.TotalLen()]
	case len(ip) >= header.IPv6Len && ip[0]>>4 == 6:
		h := header.IPv6(ip)
		if !h.IsValid(len(ip)) {
			return 0, drop.ICMPBuildFailed
		}
		proto, off, frag, ok := h.Transport()
		if !ok || frag.IsFragment() || proto != header.ProtoTCP {
			return 0, drop.ICMPBuildFailed
		}
		hl = header.IPv6Len
		src, dst, seg = ip[8:24], ip[24:40], ip[off:header.IPv6Len+int(h.PayloadLen())]
	default:
		return 0, drop.ICMPBuildFailed
	}
	t := header.TCP(seg)
	if !t.IsValid(len(seg)) || t.Flags()&header.TCPFlagRST != 0 {
		return 0, drop.ICMPBuildFailed
	}
	// From the address the segment was sent to, back to its sender.
	if t.Flags()&header.TCPFlagACK != 0 {
		return writeRST(out, hl, dst, src, t.DstPort(), t.SrcPort(), t.Ack(), 0, header.TCPFlagRST)
	}
	segLen := uint32(len(seg) - t.HeaderLen())
	if t.Flags()&header.TCPFlagSYN != 0 {
		segLen++
	}
	if t.Flags()&header.TCPFlagFIN != 0 {
		segLen++
	}
	return writeRST(out, hl, dst, src, t.DstPort(), t.SrcPort(), 0, t.Seq()+segLen, header.TCPFlagRST|header.TCPFlagACK)
}

// BuildFlowRST writes into out the RST+ACK that aborts a connection, as an
// end sends it (RFC 9293 3.10.7.1, ABORT: seq = SND.NXT): from src:srcPort
// to dst:dstPort (IPv4 when both addresses are IPv4-mapped, else IPv6),
// with sequence number seq, which the receiver accepts only if it is
// exactly its RCV.NXT (RFC 5961 3.2), and acknowledgement ack. It returns
// the IP packet's length, or a reason. No allocation.
func BuildFlowRST(out []byte, src, dst *[16]byte, srcPort, dstPort uint16, seq, ack uint32) (n int, r drop.Reason) {
	v4 := isMapped(src)
	if v4 != isMapped(dst) {
		return 0, drop.ICMPBuildFailed
	}
	if v4 {
		return writeRST(out, header.IPv4MinLen, src[12:], dst[12:], srcPort, dstPort, seq, ack, header.TCPFlagRST|header.TCPFlagACK)
	}
	return writeRST(out, header.IPv6Len, src[:], dst[:], srcPort, dstPort, seq, ack, header.TCPFlagRST|header.TCPFlagACK)
}

func isMapped(a *[16]byte) bool {
	return [12]byte(a[:12]) == [12]byte{10: 0xff, 11: 0xff}
}

// writeRST writes into out an IP packet (header length hl: IPv4 or IPv6)
// from src to dst carrying a bare TCP segment with the given ports,
// sequence and acknowledgement numbers and flags, checksums set.
func writeRST(out []byte, hl int, src, dst []byte, srcPort, dstPort uint16, seq, ack uint32, flags uint8) (int, drop.Reason) {
	n := hl + header.TCPMinLen
	if len(out) < n {
		return 0, drop.ICMPBuildFailed
	}
	out = out[:n]
	clear(out)
	if hl == header.IPv4MinLen {
		o := header.IPv4(out)
		out[0] = 0x45
		o.SetTotalLen(uint16(n))
		o.SetFlagsFragment(true, false, 0)
		o.SetTTL(TTL)
		o.SetProtocol(header.ProtoTCP)
		copy(out[12:16], src)
		copy(out[16:20], dst)
		o.SetChecksum(o.CalculateChecksum())
	} else {
		o := header.IPv6(out)
		out[0] = 0x60
		o.SetPayloadLen(header.TCPMinLen)
		o.SetNextHeader(header.ProtoTCP)
		o.SetHopLimit(TTL)
		copy(out[8:24], src)
		copy(out[24:40], dst)
	}
	rst := header.TCP(out[hl:])
	rst.SetSrcPort(srcPort)
	rst.SetDstPort(dstPort)
	out[hl+12] = 5 << 4 // data offset: 20 bytes
	rst.SetSeq(seq)
	rst.SetAck(ack)
	rst.SetFlags(flags)
	binary.BigEndian.PutUint16(out[hl+16:], 0)
	nsrc, ndst := out[12:16], out[16:20]
	if hl == header.IPv6Len {
		nsrc, ndst = out[8:24], out[24:40]
	}
	rst.SetChecksum(header.TCPChecksum(nsrc, ndst, out[hl:]))
	return n, drop.None
}
