package header

// IP protocol numbers and IPv6 next-header values (IANA "Assigned Internet
// Protocol Numbers").
const (
	ProtoHopByHop uint8 = 0  // IPv6 Hop-by-Hop Options (RFC 8200 §4.3)
	ProtoICMP     uint8 = 1  // ICMP for IPv4 (RFC 792)
	ProtoTCP      uint8 = 6  // TCP (RFC 9293)
	ProtoUDP      uint8 = 17 // UDP (RFC 768)
	ProtoRouting  uint8 = 43 // IPv6 Routing header (RFC 8200 §4.4)
	ProtoFragment uint8 = 44 // IPv6 Fragment header (RFC 8200 §4.5)
	ProtoESP      uint8 = 50 // Encapsulating Security Payload (RFC 4303)
	ProtoAH       uint8 = 51 // Authentication Header (RFC 4302)
	ProtoICMPv6   uint8 = 58 // ICMP for IPv6 (RFC 4443)
	ProtoNoNext   uint8 = 59 // IPv6 No Next Header (RFC 8200 §4.7)
	ProtoDestOpts uint8 = 60 // IPv6 Destination Options (RFC 8200 §4.6)
)
