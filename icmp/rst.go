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
	n = hl + header.TCPMinLen
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
		copy(out[12:16], dst) // from the address the segment was sent to
		copy(out[16:20], src)
		o.SetChecksum(o.CalculateChecksum())
	} else {
		o := header.IPv6(out)
		out[0] = 0x60
		o.SetPayloadLen(header.TCPMinLen)
		o.SetNextHeader(header.ProtoTCP)
		o.SetHopLimit(TTL)
		copy(out[8:24], dst)
		copy(out[24:40], src)
	}
	rst := header.TCP(out[hl:])
	rst.SetSrcPort(t.DstPort())
	rst.SetDstPort(t.SrcPort())
	out[hl+12] = 5 << 4 // data offset: 20 bytes
	if t.Flags()&header.TCPFlagACK != 0 {
		rst.SetSeq(t.Ack())
		rst.SetFlags(header.TCPFlagRST)
	} else {
		segLen := uint32(len(seg) - t.HeaderLen())
		if t.Flags()&header.TCPFlagSYN != 0 {
			segLen++
		}
		if t.Flags()&header.TCPFlagFIN != 0 {
			segLen++
		}
		rst.SetAck(t.Seq() + segLen)
		rst.SetFlags(header.TCPFlagRST | header.TCPFlagACK)
	}
	binary.BigEndian.PutUint16(out[hl+16:], 0)
	nsrc, ndst := out[12:16], out[16:20]
	if hl == header.IPv6Len {
		nsrc, ndst = out[8:24], out[24:40]
	}
	rst.SetChecksum(header.TCPChecksum(nsrc, ndst, out[hl:]))
	return n, drop.None
}
