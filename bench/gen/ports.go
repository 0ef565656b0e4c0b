package gen

// RFC 4814 section 4.5 port ranges: pseudorandom source ports over
// 1024-65535 and destination ports over 1-49151, uniformly distributed and
// repeatable from a seed.
const (
	SrcPortMin = 1024
	SrcPortMax = 65535
	DstPortMin = 1
	DstPortMax = 49151

	srcSpan = SrcPortMax - SrcPortMin + 1 // 64512
	dstSpan = DstPortMax - DstPortMin + 1 // 49151
	// PortPairs is the number of distinct (source, destination) port pairs.
	PortPairs = uint64(srcSpan) * uint64(dstSpan)
)

// Ports maps flow indexes to distinct pseudorandom port pairs. It is a keyed
// 4-round Feistel permutation of the 32-bit space, cycle-walked into
// [0, PortPairs), so index i < PortPairs always gives a pair no other index
// gives. Read-only after NewPorts: safe for concurrent use.
type Ports struct {
	keys [4]uint32
}

// NewPorts returns the permutation for seed.
func NewPorts(seed uint64) *Ports {
	p := &Ports{}
	s := seed
	for i := range p.keys {
		s += 0x9e3779b97f4a7c15
		z := s
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		p.keys[i] = uint32(z)
	}
	return p
}

func (p *Ports) permute32(x uint32) uint32 {
	l, r := uint16(x>>16), uint16(x)
	for _, k := range p.keys {
		f := uint32(r)*0x9e3b + k
		f ^= f >> 15
		f *= 0x2c1b3c6d
		f ^= f >> 12
		l, r = r, l^uint16(f>>8)
	}
	return uint32(l)<<16 | uint32(r)
}

// Pair returns the source and destination ports of flow index i (taken
// modulo PortPairs).
func (p *Ports) Pair(i uint64) (src, dst uint16) {
	x := uint32(i % PortPairs)
	for {
		x = p.permute32(x)
		if uint64(x) < PortPairs {
			break
		}
	}
	return uint16(SrcPortMin + x%srcSpan), uint16(DstPortMin + x/srcSpan)
}

// permute16 is permute32's Feistel network on 16 bits (8-bit halves).
func (p *Ports) permute16(x uint16) uint16 {
	l, r := uint8(x>>8), uint8(x)
	for _, k := range p.keys {
		f := uint32(r)*0x9e3b + k
		f ^= f >> 15
		f *= 0x2c1b3c6d
		f ^= f >> 12
		l, r = r, l^uint8(f>>8)
	}
	return uint16(l)<<8 | uint16(r)
}

// Src returns a pseudorandom source port for index i (taken modulo the
// 64,512 source ports): a keyed permutation of the 16-bit space cycle-walked
// into the source range, so the first 64,512 indexes give distinct ports
// (for flows whose other fields are fixed: a SYN flood toward one port).
func (p *Ports) Src(i uint64) uint16 {
	x := uint16(i % srcSpan)
	for {
		x = p.permute16(x)
		if x < srcSpan {
			break
		}
	}
	return SrcPortMin + x
}
