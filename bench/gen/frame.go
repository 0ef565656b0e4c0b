package gen

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Magic opens the UDP payload of every generated packet ("EGEN").
const Magic = 0x4547454e

// Layout of a generated frame (offsets into the frame).
const (
	ethLen     = 14
	ipLen      = 20
	ip6Len     = 40 // IPv6 frames: every offset below after offIP is ip6Len-ipLen further
	udpLen     = 8
	HeaderLen  = ethLen + ipLen + udpLen // 42: payload offset
	offIP      = ethLen
	offUDP     = ethLen + ipLen
	offSrcPort = offUDP
	offDstPort = offUDP + 2
	offUDPSum  = offUDP + 6
	offMagic   = HeaderLen
	offSeq     = HeaderLen + 4
	offTS      = HeaderLen + 8
	// TCP SYN frames (FrameConfig.SYN): a 20-byte TCP header, no payload,
	// padded to the 60-byte minimum frame.
	tcpLen    = 20
	offTCPSeq = offUDP + 4
	offTCPSum = offUDP + 16
	synLen    = ethLen + ipLen + tcpLen // 54 bytes of headers, IPv4 total length 40
	// PayloadMin is the payload the sink reads: magic, sequence, timestamp.
	PayloadMin = 16
)

// FrameConfig describes the packets to build.
type FrameConfig struct {
	SrcMAC, DstMAC [6]byte
	Src, Dst       netip.Addr // both IPv4 or both IPv6
	Sizes          []int      // frame sizes (FCS included), used in turn; default {64}
	Flows          int        // distinct flows, visited in index order from FlowOffset; default 1
	FlowOffset     uint64     // first flow index
	NewFlows       bool       // every packet a new flow (index = FlowOffset + sequence)
	Seed           uint64     // port permutation seed
	Queues         int        // transmit queues to spread flows over; default 1
	// SYN makes every packet a TCP SYN of a new flow (index FlowOffset +
	// sequence) in a 64-byte frame (IPv6: MinSYNFrame6, the headers
	// unpadded; Sizes, Flows and NewFlows are ignored):
	// a SYN flood. The source port is pseudorandom (Ports.Src: 64,512
	// consecutive packets have distinct ones) toward SYNDstPort, or both
	// ports pseudorandom (Ports.Pair) when SYNDstPort is 0. The TCP sequence
	// number is pseudorandom too; no timestamp is carried (ParsePacket does
	// not read SYNs).
	SYN        bool
	SYNDstPort uint16
	// SYNSrcPrefix, when valid (IPv4 /8 to /30, or IPv6 /96 to /126, of
	// Src's family), replaces Src in SYN mode: each SYN's source address
	// is drawn pseudorandomly (from Seed and the flow index, so
	// repeatable) from the prefix's hosts, never its first or last
	// address: a flood from many addresses of a subnet, as from a
	// misbehaving or spoofing host behind the gateway. (IPv6: the last 32
	// bits vary, hence at least /96.)
	SYNSrcPrefix netip.Prefix
}

// Builder writes generated frames. Not safe for concurrent use.
type Builder struct {
	tmpl    [][]byte // per size class: the frame with seq, ts, ports and UDP checksum zero
	base    []uint32 // per size class: UDP checksum partial sum of the template
	class   []uint8  // size class of packet k: class[k % len]
	ports   *Ports
	pairs   []uint32 // per flow: src<<16 | dst (flows mode)
	queue   []uint8  // per flow: transmit queue (flows mode)
	nflows  uint64
	offset  uint64
	newFlow bool
	syn     bool
	synDst  uint16 // SYN mode: fixed destination port, 0 pseudorandom
	// SYN mode with SYNSrcPrefix: source addresses are srcNet + 1 +
	// (a hash of the flow index, keyed by srcKey) mod srcHosts, in the
	// address's last 32 bits; those bits are zero in the template and
	// ipBase is its IPv4 header's partial checksum (IPv6 has none).
	srcNet   uint32
	srcHosts uint32 // 0: the fixed Src
	srcKey   uint64
	ipBase   uint32
	queues   uint32
	slots    []int16 // per caller frame slot: the size class its bytes hold, -1 none
	l3       int     // bytes the IP header has beyond IPv4's 20: 0, or 20 for IPv6
}

// MinFrame6 is the smallest IPv6 frame (FCS included) the generator builds:
// Ethernet, IPv6, UDP and the payload the sink reads.
const MinFrame6 = ethLen + ip6Len + udpLen + PayloadMin + fcsLen

// MinSYNFrame6 is the size (FCS included) of an IPv6 SYN frame: Ethernet,
// IPv6 and a 20-byte TCP header, no padding (above the 64-byte minimum).
const MinSYNFrame6 = ethLen + ip6Len + tcpLen + fcsLen

// NewBuilder prepares templates and the flow table; slots is the number of
// frame buffers the caller rotates through (Build copies a template into a
// slot only when the slot holds another size class).
func NewBuilder(c FrameConfig, slots int) (*Builder, error) {
	v6 := c.Src.Is6() && !c.Src.Is4In6() && c.Dst.Is6() && !c.Dst.Is4In6()
	if !(c.Src.Is4() && c.Dst.Is4()) && !v6 {
		return nil, errors.New("gen: source and destination must be both IPv4 or both IPv6 addresses")
	}
	if v6 && len(c.Sizes) == 0 {
		c.Sizes = []int{MinFrame6}
	}
	if len(c.Sizes) == 0 || c.SYN {
		c.Sizes = []int{MinFrame}
	}
	if v6 && c.SYN {
		c.Sizes = []int{MinSYNFrame6}
	}
	if c.SYN {
		c.NewFlows, c.Flows = true, 1
	}
	var srcNet, srcHosts uint32
	if c.SYN && c.SYNSrcPrefix.IsValid() {
		p := c.SYNSrcPrefix.Masked()
		switch {
		case !v6 && p.Addr().Is4() && p.Bits() >= 8 && p.Bits() <= 30:
			a := p.Addr().As4()
			srcNet = binary.BigEndian.Uint32(a[:])
			srcHosts = 1<<(32-p.Bits()) - 2
			c.Src = netip.IPv4Unspecified()
		case v6 && p.Addr().Is6() && !p.Addr().Is4In6() && p.Bits() >= 96 && p.Bits() <= 126:
			a := p.Addr().As16()
			srcNet = binary.BigEndian.Uint32(a[12:])
			srcHosts = 1<<(128-p.Bits()) - 2
			clear(a[12:])
			c.Src = netip.AddrFrom16(a)
		default:
			return nil, errors.New("gen: the SYN source prefix must be of the destination's family: IPv4 /8 to /30, or IPv6 /96 to /126")
		}
	}
	if c.Flows <= 0 {
		c.Flows = 1
	}
	if uint64(c.Flows) > PortPairs {
		return nil, errors.New("gen: more flows than port pairs")
	}
	if c.Queues <= 0 {
		c.Queues = 1
	}
	b := &Builder{ports: NewPorts(c.Seed), nflows: uint64(c.Flows), offset: c.FlowOffset,
		newFlow: c.NewFlows, syn: c.SYN, synDst: c.SYNDstPort, queues: uint32(c.Queues), slots: make([]int16, slots),
		srcNet: srcNet, srcHosts: srcHosts, srcKey: mix64(c.Seed ^ 0x5bd1e9955bd1e995)}
	if v6 {
		b.l3 = ip6Len - ipLen
	}
	for i := range b.slots {
		b.slots[i] = -1
	}
	classOf := map[int]uint8{}
	for _, sz := range c.Sizes {
		if sz < MinFrame || sz > MaxFrame {
			return nil, errors.New("gen: frame size out of range 64..1518")
		}
		if v6 && !c.SYN && sz < MinFrame6 {
			return nil, errors.New("gen: an IPv6 frame is at least 82 bytes (Ethernet, IPv6, UDP, the 16-byte payload, FCS)")
		}
		cl, ok := classOf[sz]
		if !ok {
			cl = uint8(len(b.tmpl))
			classOf[sz] = cl
			var t []byte
			var sum uint32
			switch {
			case v6 && c.SYN:
				t, sum = synTemplate6(c, sz-fcsLen)
			case v6:
				t, sum = template6(c, sz-fcsLen)
			case c.SYN:
				t, sum = synTemplate(c, sz-fcsLen)
			default:
				t, sum = template(c, sz-fcsLen)
			}
			if c.SYN && srcHosts != 0 && !v6 {
				// The header's words but its checksum (the source address is zero).
				b.ipBase = sum16(t[offIP+12:offIP+ipLen], sum16(t[offIP:offIP+10], 0))
			}
			b.tmpl = append(b.tmpl, t)
			b.base = append(b.base, sum)
		}
		b.class = append(b.class, cl)
	}
	if !c.NewFlows {
		b.pairs = make([]uint32, c.Flows)
		b.queue = make([]uint8, c.Flows)
		for i := range b.pairs {
			s, d := b.ports.Pair(uint64(i))
			b.pairs[i] = uint32(s)<<16 | uint32(d)
			b.queue[i] = uint8(queueOf(s, d, b.queues))
		}
	}
	return b, nil
}

func queueOf(s, d uint16, n uint32) uint32 {
	if n == 1 {
		return 0
	}
	h := (uint32(s)<<16 | uint32(d)) * 0x9e3779b1
	return (h >> 16) % n
}

// ethFrame returns a zeroed frame of n bytes with c's Ethernet header
// (destination, source, etherType) written.
func ethFrame(c FrameConfig, n int, etherType uint16) []byte {
	f := make([]byte, n)
	copy(f[0:6], c.DstMAC[:])
	copy(f[6:12], c.SrcMAC[:])
	binary.BigEndian.PutUint16(f[12:], etherType)
	return f
}

// template builds the frame of length n with variable fields zero and
// returns it with its UDP checksum partial sum (pseudo-header included).
func template(c FrameConfig, n int) ([]byte, uint32) {
	f := ethFrame(c, n, 0x0800)
	ip := f[offIP:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(n-ethLen))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = 64
	ip[9] = 17
	s4, d4 := c.Src.As4(), c.Dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(ip[:ipLen], 0)))
	ulen := n - offUDP
	binary.BigEndian.PutUint16(f[offUDP+4:], uint16(ulen))
	binary.BigEndian.PutUint32(f[offMagic:], Magic)
	// Pseudo-header: addresses, protocol, UDP length; then header and payload.
	var ph [12]byte
	copy(ph[0:4], s4[:])
	copy(ph[4:8], d4[:])
	ph[9] = 17
	binary.BigEndian.PutUint16(ph[10:], uint16(ulen))
	sum := sum16(ph[:], 0)
	sum = sum16(f[offUDP:], sum)
	return f, sum
}

// template6 is template for IPv6 (hop limit 64, no extension header).
func template6(c FrameConfig, n int) ([]byte, uint32) {
	f := ethFrame(c, n, 0x86dd)
	ip := f[offIP:]
	ip[0] = 0x60
	ulen := n - offIP - ip6Len
	binary.BigEndian.PutUint16(ip[4:], uint16(ulen))
	ip[6] = 17
	ip[7] = 64
	s16, d16 := c.Src.As16(), c.Dst.As16()
	copy(ip[8:24], s16[:])
	copy(ip[24:40], d16[:])
	u := f[offIP+ip6Len:]
	binary.BigEndian.PutUint16(u[4:], uint16(ulen))
	binary.BigEndian.PutUint32(u[udpLen:], Magic)
	// Pseudo-header (RFC 8200 8.1): addresses, length, next header; then
	// header and payload.
	var ph [40]byte
	copy(ph[0:16], s16[:])
	copy(ph[16:32], d16[:])
	binary.BigEndian.PutUint32(ph[32:], uint32(ulen))
	ph[39] = 17
	return f, sum16(u, sum16(ph[:], 0))
}

// synTemplate builds a TCP SYN frame of length n (padded after the TCP
// header) with ports, sequence number and TCP checksum zero, and returns it
// with its TCP checksum partial sum (pseudo-header included).
func synTemplate(c FrameConfig, n int) ([]byte, uint32) {
	f := ethFrame(c, n, 0x0800)
	ip := f[offIP:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], ipLen+tcpLen)
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8] = 64
	ip[9] = 6
	s4, d4 := c.Src.As4(), c.Dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(ip[:ipLen], 0)))
	tcp := f[offUDP : offUDP+tcpLen]
	tcp[12] = tcpLen / 4 << 4 // data offset
	tcp[13] = 0x02            // SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	var ph [12]byte
	copy(ph[0:4], s4[:])
	copy(ph[4:8], d4[:])
	ph[9] = 6
	binary.BigEndian.PutUint16(ph[10:], tcpLen)
	return f, sum16(tcp, sum16(ph[:], 0))
}

// synTemplate6 is synTemplate for IPv6 (hop limit 64, no extension
// header): n is MinSYNFrame6 without the FCS.
func synTemplate6(c FrameConfig, n int) ([]byte, uint32) {
	f := ethFrame(c, n, 0x86dd)
	ip := f[offIP:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], tcpLen)
	ip[6] = 6
	ip[7] = 64
	s16, d16 := c.Src.As16(), c.Dst.As16()
	copy(ip[8:24], s16[:])
	copy(ip[24:40], d16[:])
	tcp := f[offIP+ip6Len : offIP+ip6Len+tcpLen]
	tcp[12] = tcpLen / 4 << 4 // data offset
	tcp[13] = 0x02            // SYN
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	var ph [40]byte
	copy(ph[0:16], s16[:])
	copy(ph[16:32], d16[:])
	binary.BigEndian.PutUint32(ph[32:], tcpLen)
	ph[39] = 6
	return f, sum16(tcp, sum16(ph[:], 0))
}

// sum16 adds b as big-endian 16-bit words to sum (odd tail padded).
func sum16(b []byte, sum uint32) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(s uint32) uint16 {
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s)
}

// Len returns the length (bytes handed to the kernel, FCS excluded) of
// packet seq.
func (b *Builder) Len(seq uint64) int {
	return len(b.tmpl[b.class[seq%uint64(len(b.class))]])
}

// Queue returns the transmit queue of packet seq.
func (b *Builder) Queue(seq uint64) int {
	if b.queues == 1 {
		return 0
	}
	if b.newFlow {
		s, d := b.flowPorts(b.offset + seq)
		return int(queueOf(s, d, b.queues))
	}
	return int(b.queue[(b.offset+seq)%b.nflows])
}

// Build writes packet seq, stamped ts, into frame (at least Len(seq) bytes)
// and returns its length. slot identifies the caller's buffer (0 <= slot <
// the slots given to NewBuilder): the template is copied only when the slot
// last held another size class. It allocates nothing.
func (b *Builder) Build(frame []byte, slot int, seq uint64, ts int64) int {
	cl := b.class[seq%uint64(len(b.class))]
	t := b.tmpl[cl]
	n := len(t)
	f := frame[:n]
	if b.slots[slot] != int16(cl) {
		copy(f, t)
		b.slots[slot] = int16(cl)
	}
	var sp, dp uint16
	if b.syn {
		return b.buildSYN(f, cl, b.offset+seq)
	}
	if b.newFlow {
		sp, dp = b.ports.Pair(b.offset + seq)
	} else {
		p := b.pairs[(b.offset+seq)%b.nflows]
		sp, dp = uint16(p>>16), uint16(p)
	}
	s32 := uint32(seq)
	u := uint64(ts)
	l3 := b.l3
	binary.BigEndian.PutUint16(f[offSrcPort+l3:], sp)
	binary.BigEndian.PutUint16(f[offDstPort+l3:], dp)
	binary.BigEndian.PutUint32(f[offSeq+l3:], s32)
	binary.BigEndian.PutUint64(f[offTS+l3:], u)
	sum := b.base[cl] + uint32(sp) + uint32(dp) + s32>>16 + s32&0xffff +
		uint32(u>>48) + uint32(u>>32)&0xffff + uint32(u>>16)&0xffff + uint32(u)&0xffff
	c := ^fold(sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(f[offUDPSum+l3:], c)
	return n
}

// flowPorts returns the ports of new flow i.
func (b *Builder) flowPorts(i uint64) (src, dst uint16) {
	if b.syn && b.synDst != 0 {
		return b.ports.Src(i), b.synDst
	}
	return b.ports.Pair(i)
}

// buildSYN patches the SYN of flow i into f (holding template class cl).
func (b *Builder) buildSYN(f []byte, cl uint8, i uint64) int {
	sp, dp := b.flowPorts(i)
	isn := uint32(i) * 0x9e3779b1
	l3 := b.l3
	binary.BigEndian.PutUint16(f[offSrcPort+l3:], sp)
	binary.BigEndian.PutUint16(f[offDstPort+l3:], dp)
	binary.BigEndian.PutUint32(f[offTCPSeq+l3:], isn)
	sum := b.base[cl] + uint32(sp) + uint32(dp) + isn>>16 + isn&0xffff
	if b.srcHosts != 0 {
		src := b.synSrc(i)
		if l3 == 0 {
			binary.BigEndian.PutUint32(f[offIP+12:], src)
			binary.BigEndian.PutUint16(f[offIP+10:], ^fold(b.ipBase+src>>16+src&0xffff))
		} else {
			binary.BigEndian.PutUint32(f[offIP+20:], src) // the source address's last 32 bits
		}
		sum += src>>16 + src&0xffff // the pseudo-header's source address
	}
	binary.BigEndian.PutUint16(f[offTCPSum+l3:], ^fold(sum))
	return len(f)
}

// synSrc returns the source address of SYN flow i drawn from the prefix
// (SYNSrcPrefix): neither its first nor its last address.
func (b *Builder) synSrc(i uint64) uint32 {
	return b.srcNet + 1 + uint32(mix64(i^b.srcKey)%uint64(b.srcHosts))
}

// mix64 is a 64-bit finalizer (splitmix64's): consecutive inputs give
// unrelated outputs.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// Packet is what the sink reads from a generated frame.
type Packet struct {
	Seq uint32
	TS  int64
}

// ParsePacket reads a generated packet from an Ethernet frame: IPv4 or IPv6
// (no extension header), UDP, payload opening with Magic. ok is false for
// anything else.
func ParsePacket(f []byte) (p Packet, ok bool) {
	if len(f) < HeaderLen+PayloadMin {
		return p, false
	}
	var pl int
	switch {
	case f[12] == 0x08 && f[13] == 0x00:
		ihl := int(f[offIP]&0x0f) * 4
		if f[offIP]>>4 != 4 || ihl < ipLen || f[offIP+9] != 17 {
			return p, false
		}
		pl = ethLen + ihl + udpLen
	case f[12] == 0x86 && f[13] == 0xdd:
		if len(f) < offIP+ip6Len || f[offIP]>>4 != 6 || f[offIP+6] != 17 {
			return p, false
		}
		pl = ethLen + ip6Len + udpLen
	default:
		return p, false
	}
	if len(f) < pl+PayloadMin || binary.BigEndian.Uint32(f[pl:]) != Magic {
		return p, false
	}
	p.Seq = binary.BigEndian.Uint32(f[pl+4:])
	p.TS = int64(binary.BigEndian.Uint64(f[pl+8:]))
	return p, true
}
