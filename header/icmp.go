package header

import "encoding/binary"

// ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) share the layout of the first eight
// bytes; the meaning of bytes 4-7 depends on the type:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Identifier          |        Sequence Number        |  echo
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|             unused            |         Next-Hop MTU          |  v4 frag needed (RFC 1191)
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                              MTU                              |  v6 packet too big
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|    Data: for errors, as much of the invoking packet as fits   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	icmpType     = 0
	icmpCode     = 1
	icmpChecksum = 2
	icmpIdent    = 4
	icmpSeq      = 6
	icmpMTUv4    = 6
	icmpMTUv6    = 4

	// ICMPv4MinLen is the length of the ICMPv4 header.
	ICMPv4MinLen = 8
	// ICMPv6MinLen is the length of the ICMPv6 header.
	ICMPv6MinLen = 8
)

// ICMPv4 types (RFC 792, RFC 950).
const (
	ICMPv4EchoReply       uint8 = 0
	ICMPv4DestUnreachable uint8 = 3
	ICMPv4SourceQuench    uint8 = 4
	ICMPv4Redirect        uint8 = 5
	ICMPv4EchoRequest     uint8 = 8
	ICMPv4TimeExceeded    uint8 = 11
	ICMPv4ParamProblem    uint8 = 12
	ICMPv4Timestamp       uint8 = 13
	ICMPv4TimestampReply  uint8 = 14
)

// ICMPv4 codes for ICMPv4DestUnreachable (RFC 792, RFC 1191, RFC 1812).
const (
	ICMPv4NetUnreachable   uint8 = 0
	ICMPv4HostUnreachable  uint8 = 1
	ICMPv4ProtoUnreachable uint8 = 2
	ICMPv4PortUnreachable  uint8 = 3
	ICMPv4FragNeeded       uint8 = 4  // fragmentation needed and DF set; MTU in bytes 6-7
	ICMPv4AdminProhibited  uint8 = 13 // communication administratively prohibited
)

// ICMPv4 codes for ICMPv4TimeExceeded (RFC 792).
const (
	ICMPv4TTLExceeded        uint8 = 0 // time to live exceeded in transit
	ICMPv4ReassemblyExceeded uint8 = 1 // fragment reassembly time exceeded
)

// ICMPv6 types (RFC 4443, RFC 4861).
const (
	ICMPv6DestUnreachable uint8 = 1
	ICMPv6PacketTooBig    uint8 = 2
	ICMPv6TimeExceeded    uint8 = 3
	ICMPv6ParamProblem    uint8 = 4
	ICMPv6EchoRequest     uint8 = 128
	ICMPv6EchoReply       uint8 = 129
	ICMPv6RouterSolicit   uint8 = 133
	ICMPv6RouterAdvert    uint8 = 134
	ICMPv6NeighborSolicit uint8 = 135
	ICMPv6NeighborAdvert  uint8 = 136
	ICMPv6Redirect        uint8 = 137
)

// ICMPv6 codes for ICMPv6DestUnreachable and ICMPv6TimeExceeded (RFC 4443).
const (
	ICMPv6NoRoute          uint8 = 0 // no route to destination
	ICMPv6AdminProhibited  uint8 = 1 // communication administratively prohibited
	ICMPv6AddrUnreachable  uint8 = 3 // address unreachable
	ICMPv6PortUnreachable  uint8 = 4 // port unreachable
	ICMPv6HopLimitExceeded uint8 = 0 // time exceeded: hop limit exceeded in transit
)

// ICMPv4IsError reports whether typ is an ICMPv4 error message type (one that
// quotes the invoking packet): destination unreachable, source quench,
// redirect, time exceeded or parameter problem.
func ICMPv4IsError(typ uint8) bool {
	switch typ {
	case ICMPv4DestUnreachable, ICMPv4SourceQuench, ICMPv4Redirect,
		ICMPv4TimeExceeded, ICMPv4ParamProblem:
		return true
	}
	return false
}

// ICMPv4IsQuery reports whether typ is an echo request or reply, the query
// types whose identifier is tracked like a port.
func ICMPv4IsQuery(typ uint8) bool {
	return typ == ICMPv4EchoRequest || typ == ICMPv4EchoReply
}

// ICMPv6IsError reports whether typ is an ICMPv6 error message type (types
// 0-127, RFC 4443 §2.1).
func ICMPv6IsError(typ uint8) bool { return typ < 128 }

// ICMPv6IsQuery reports whether typ is an echo request or reply.
func ICMPv6IsQuery(typ uint8) bool {
	return typ == ICMPv6EchoRequest || typ == ICMPv6EchoReply
}

// ICMPv4 is a view of an ICMPv4 message at the start of b.
type ICMPv4 []byte

// IsValid reports whether b holds an ICMPv4 message of msgLen bytes with a
// complete 8-byte header: 8 <= msgLen <= len(b).
func (b ICMPv4) IsValid(msgLen int) bool {
	return msgLen >= ICMPv4MinLen && msgLen <= len(b)
}

// Type returns the message type.
func (b ICMPv4) Type() uint8 { return b[icmpType] }

// Code returns the message code.
func (b ICMPv4) Code() uint8 { return b[icmpCode] }

// Checksum returns the stored checksum field.
func (b ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[icmpChecksum:]) }

// Ident returns the identifier of an echo request or reply.
func (b ICMPv4) Ident() uint16 { return binary.BigEndian.Uint16(b[icmpIdent:]) }

// Seq returns the sequence number of an echo request or reply.
func (b ICMPv4) Seq() uint16 { return binary.BigEndian.Uint16(b[icmpSeq:]) }

// MTU returns the next-hop MTU of a fragmentation-needed message (RFC 1191).
func (b ICMPv4) MTU() uint16 { return binary.BigEndian.Uint16(b[icmpMTUv4:]) }

// Payload returns the bytes after the 8-byte header (for errors, the quoted
// invoking packet). Slice the view to the message length first.
func (b ICMPv4) Payload() []byte { return b[ICMPv4MinLen:] }

// SetType sets the message type.
func (b ICMPv4) SetType(v uint8) { b[icmpType] = v }

// SetCode sets the message code.
func (b ICMPv4) SetCode(v uint8) { b[icmpCode] = v }

// SetChecksum sets the checksum field.
func (b ICMPv4) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[icmpChecksum:], v) }

// SetIdent sets the identifier of an echo request or reply.
func (b ICMPv4) SetIdent(v uint16) { binary.BigEndian.PutUint16(b[icmpIdent:], v) }

// SetSeq sets the sequence number of an echo request or reply.
func (b ICMPv4) SetSeq(v uint16) { binary.BigEndian.PutUint16(b[icmpSeq:], v) }

// SetMTU sets the next-hop MTU of a fragmentation-needed message and clears
// the unused bytes 4-5.
func (b ICMPv4) SetMTU(v uint16) {
	binary.BigEndian.PutUint32(b[icmpIdent:], uint32(v))
}

// ICMPv6 is a view of an ICMPv6 message at the start of b.
type ICMPv6 []byte

// IsValid reports whether b holds an ICMPv6 message of msgLen bytes with a
// complete 8-byte header: 8 <= msgLen <= len(b).
func (b ICMPv6) IsValid(msgLen int) bool {
	return msgLen >= ICMPv6MinLen && msgLen <= len(b)
}

// Type returns the message type.
func (b ICMPv6) Type() uint8 { return b[icmpType] }

// Code returns the message code.
func (b ICMPv6) Code() uint8 { return b[icmpCode] }

// Checksum returns the stored checksum field.
func (b ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(b[icmpChecksum:]) }

// Ident returns the identifier of an echo request or reply.
func (b ICMPv6) Ident() uint16 { return binary.BigEndian.Uint16(b[icmpIdent:]) }

// Seq returns the sequence number of an echo request or reply.
func (b ICMPv6) Seq() uint16 { return binary.BigEndian.Uint16(b[icmpSeq:]) }

// MTU returns the MTU of a packet-too-big message (RFC 4443 §3.2).
func (b ICMPv6) MTU() uint32 { return binary.BigEndian.Uint32(b[icmpMTUv6:]) }

// Payload returns the bytes after the 8-byte header (for errors, the quoted
// invoking packet). Slice the view to the message length first.
func (b ICMPv6) Payload() []byte { return b[ICMPv6MinLen:] }

// SetType sets the message type.
func (b ICMPv6) SetType(v uint8) { b[icmpType] = v }

// SetCode sets the message code.
func (b ICMPv6) SetCode(v uint8) { b[icmpCode] = v }

// SetChecksum sets the checksum field.
func (b ICMPv6) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[icmpChecksum:], v) }

// SetIdent sets the identifier of an echo request or reply.
func (b ICMPv6) SetIdent(v uint16) { binary.BigEndian.PutUint16(b[icmpIdent:], v) }

// SetSeq sets the sequence number of an echo request or reply.
func (b ICMPv6) SetSeq(v uint16) { binary.BigEndian.PutUint16(b[icmpSeq:], v) }

// SetMTU sets the MTU of a packet-too-big message.
func (b ICMPv6) SetMTU(v uint32) { binary.BigEndian.PutUint32(b[icmpMTUv6:], v) }
