package header

import "encoding/binary"

// TCP header (RFC 9293 §3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Sequence Number                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Acknowledgment Number                      |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	|       |       |R|E|G|K|H|T|N|N|                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           Checksum            |         Urgent Pointer        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                           [Options]                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	tcpSrcPort  = 0
	tcpDstPort  = 2
	tcpSeq      = 4
	tcpAck      = 8
	tcpDataOff  = 12
	tcpFlags    = 13
	tcpWindow   = 14
	tcpChecksum = 16
	tcpUrgent   = 18

	// TCPMinLen is the length of a TCP header without options.
	TCPMinLen = 20
	// TCPMaxLen is the length of a TCP header with 40 bytes of options.
	TCPMaxLen = 60
)

// TCP flag bits, as found in byte 13 of the header and returned by
// [TCP.Flags].
const (
	TCPFlagFIN uint8 = 0x01
	TCPFlagSYN uint8 = 0x02
	TCPFlagRST uint8 = 0x04
	TCPFlagPSH uint8 = 0x08
	TCPFlagACK uint8 = 0x10
	TCPFlagURG uint8 = 0x20
	TCPFlagECE uint8 = 0x40
	TCPFlagCWR uint8 = 0x80
)

// TCP option kinds (IANA "TCP Option Kind Numbers").
const (
	TCPOptEOL           uint8 = 0 // End of Option List (RFC 9293)
	TCPOptNOP           uint8 = 1 // No-Operation (RFC 9293)
	TCPOptMSS           uint8 = 2 // Maximum Segment Size (RFC 9293), length 4
	TCPOptWindowScale   uint8 = 3 // Window Scale (RFC 7323 §2), length 3
	TCPOptSACKPermitted uint8 = 4 // SACK Permitted (RFC 2018), length 2
	TCPOptSACK          uint8 = 5 // SACK (RFC 2018)
	TCPOptTimestamps    uint8 = 8 // Timestamps (RFC 7323 §3), length 10

	// TCPMaxWindowScale is the largest window scale shift (RFC 7323 §2.3);
	// larger values are treated as this one.
	TCPMaxWindowScale = 14
)

// TCP is a view of a TCP header at the start of b, followed by its payload.
type TCP []byte

// IsValid reports whether b starts with a well-formed TCP header of a segment
// that is segLen bytes long (the IP payload length): data offset >= 5 and
// DataOffset*4 <= segLen <= len(b).
func (b TCP) IsValid(segLen int) bool {
	if len(b) < TCPMinLen {
		return false
	}
	hl := int(b[tcpDataOff]>>4) * 4
	return hl >= TCPMinLen && hl <= segLen && segLen <= len(b)
}

// SrcPort returns the source port.
func (b TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(b[tcpSrcPort:]) }

// DstPort returns the destination port.
func (b TCP) DstPort() uint16 { return binary.BigEndian.Uint16(b[tcpDstPort:]) }

// Seq returns the sequence number.
func (b TCP) Seq() uint32 { return binary.BigEndian.Uint32(b[tcpSeq:]) }

// Ack returns the acknowledgment number.
func (b TCP) Ack() uint32 { return binary.BigEndian.Uint32(b[tcpAck:]) }

// HeaderLen returns the header length in bytes (data offset * 4).
func (b TCP) HeaderLen() int { return int(b[tcpDataOff]>>4) * 4 }

// Flags returns the eight flag bits of byte 13 (TCPFlagFIN ... TCPFlagCWR).
func (b TCP) Flags() uint8 { return b[tcpFlags] }

// Window returns the (unscaled) window field.
func (b TCP) Window() uint16 { return binary.BigEndian.Uint16(b[tcpWindow:]) }

// Checksum returns the stored checksum field.
func (b TCP) Checksum() uint16 { return binary.BigEndian.Uint16(b[tcpChecksum:]) }

// UrgentPtr returns the urgent pointer.
func (b TCP) UrgentPtr() uint16 { return binary.BigEndian.Uint16(b[tcpUrgent:]) }

// Options returns the options area, bytes 20 to HeaderLen.
func (b TCP) Options() []byte { return b[TCPMinLen:b.HeaderLen()] }

// Payload returns the segment data, from HeaderLen to segLen.
func (b TCP) Payload(segLen int) []byte { return b[b.HeaderLen():segLen] }

// SetSrcPort sets the source port.
func (b TCP) SetSrcPort(v uint16) { binary.BigEndian.PutUint16(b[tcpSrcPort:], v) }

// SetDstPort sets the destination port.
func (b TCP) SetDstPort(v uint16) { binary.BigEndian.PutUint16(b[tcpDstPort:], v) }

// SetSeq sets the sequence number.
func (b TCP) SetSeq(v uint32) { binary.BigEndian.PutUint32(b[tcpSeq:], v) }

// SetAck sets the acknowledgment number.
func (b TCP) SetAck(v uint32) { binary.BigEndian.PutUint32(b[tcpAck:], v) }

// SetFlags sets the eight flag bits of byte 13.
func (b TCP) SetFlags(v uint8) { b[tcpFlags] = v }

// SetWindow sets the window field.
func (b TCP) SetWindow(v uint16) { binary.BigEndian.PutUint16(b[tcpWindow:], v) }

// SetChecksum sets the checksum field.
func (b TCP) SetChecksum(v uint16) { binary.BigEndian.PutUint16(b[tcpChecksum:], v) }

// SetUrgentPtr sets the urgent pointer.
func (b TCP) SetUrgentPtr(v uint16) { binary.BigEndian.PutUint16(b[tcpUrgent:], v) }

// TCPSynOptions holds the TCP options that matter during connection setup.
type TCPSynOptions struct {
	MSS           uint16 // 0 when absent
	WindowScale   int8   // shift count, -1 when absent, capped at 14 (RFC 7323 §2.3)
	SACKPermitted bool
	Timestamps    bool
}

// ParseTCPOptions parses a TCP options area (see [TCP.Options]). It stops at
// End of Option List, skips No-Operation, and walks every other option by
// its length byte. ok is false (and o holds no options) if an option has a
// length below 2 or runs past the end of opts. Known options with a wrong
// length are ignored, as Linux does; if an option appears twice the last one
// wins.
func ParseTCPOptions(opts []byte) (o TCPSynOptions, ok bool) {
	o.WindowScale = -1
	for i := 0; i < len(opts); {
		kind := opts[i]
		switch kind {
		case TCPOptEOL:
			return o, true
		case TCPOptNOP:
			i++
			continue
		}
		if i+1 >= len(opts) {
			return TCPSynOptions{WindowScale: -1}, false
		}
		l := int(opts[i+1])
		if l < 2 || l > len(opts)-i {
			return TCPSynOptions{WindowScale: -1}, false
		}
		opt := opts[i : i+l]
		switch kind {
		case TCPOptMSS:
			if l == 4 {
				o.MSS = binary.BigEndian.Uint16(opt[2:4])
			}
		case TCPOptWindowScale:
			if l == 3 {
				ws := opt[2]
				if ws > TCPMaxWindowScale {
					ws = TCPMaxWindowScale
				}
				o.WindowScale = int8(ws)
			}
		case TCPOptSACKPermitted:
			if l == 2 {
				o.SACKPermitted = true
			}
		case TCPOptTimestamps:
			if l == 10 {
				o.Timestamps = true
			}
		}
		i += l
	}
	return o, true
}
