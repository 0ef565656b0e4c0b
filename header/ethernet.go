package header

import "encoding/binary"

// Ethernet II header (IEEE 802.3 / RFC 894):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination MAC (6 bytes)                  |
//	+                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                               |                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//	|                      Source MAC (6 bytes)                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           EtherType           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
const (
	ethDst  = 0
	ethSrc  = 6
	ethType = 12

	// EthernetLen is the length of an untagged Ethernet II header.
	EthernetLen = 14
)

// EtherType values (IEEE registry).
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeVLAN uint16 = 0x8100 // IEEE 802.1Q C-tag
	EtherTypeQinQ uint16 = 0x88A8 // IEEE 802.1ad S-tag
	EtherTypeIPv6 uint16 = 0x86DD
)

// Ethernet is a view of an Ethernet II header at the start of a frame.
type Ethernet []byte

// IsValid reports whether b is long enough to hold an Ethernet header.
func (b Ethernet) IsValid() bool { return len(b) >= EthernetLen }

// Dst returns the destination MAC address.
func (b Ethernet) Dst() [6]byte { return [6]byte(b[ethDst : ethDst+6]) }

// Src returns the source MAC address.
func (b Ethernet) Src() [6]byte { return [6]byte(b[ethSrc : ethSrc+6]) }

// EtherType returns the EtherType field (which is a TPID such as
// [EtherTypeVLAN] for tagged frames).
func (b Ethernet) EtherType() uint16 { return binary.BigEndian.Uint16(b[ethType:]) }

// Payload returns the bytes following the untagged header.
func (b Ethernet) Payload() []byte { return b[EthernetLen:] }

// SetDst sets the destination MAC address.
func (b Ethernet) SetDst(a [6]byte) { copy(b[ethDst:ethDst+6], a[:]) }

// SetSrc sets the source MAC address.
func (b Ethernet) SetSrc(a [6]byte) { copy(b[ethSrc:ethSrc+6], a[:]) }

// SetEtherType sets the EtherType field.
func (b Ethernet) SetEtherType(t uint16) { binary.BigEndian.PutUint16(b[ethType:], t) }
