package header_test

import (
	"net/netip"
	"testing"

	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// Sinks keep the compiler from discarding results.
var (
	sinkBool  bool
	sinkU8    uint8
	sinkU16   uint16
	sinkU32   uint32
	sinkInt   int
	sinkBytes []byte
	sinkAddr  netip.Addr
	sink4     [4]byte
	sink6     [6]byte
	sink16    [16]byte
	sinkOpts  header.TCPSynOptions
	sinkFrag  header.IPv6Frag
)

func assertNoAllocs(t *testing.T, name string, f func()) {
	t.Helper()
	if n := testing.AllocsPerRun(100, f); n != 0 {
		t.Errorf("%s: %v allocs per run, want 0", name, n)
	}
}

func TestZeroAllocs(t *testing.T) {
	a4, b4 := headertest.MustAddr("192.0.2.1"), headertest.MustAddr("198.51.100.2")
	a6, b6 := headertest.MustAddr("2001:db8::1"), headertest.MustAddr("2001:db8::2")
	eth4 := headertest.BuildEth(headertest.Spec{Src: a4, Dst: b4, Proto: header.ProtoTCP, SrcPort: 1, DstPort: 2,
		Flags: header.TCPFlagSYN, MSS: 1460, SACKPerm: true, HasWScale: true, WScale: 7, Payload: make([]byte, 100)},
		[6]byte{1}, [6]byte{2})
	p4 := eth4[header.EthernetLen:]
	p6 := buildIPv6Ext([]ext{generic(header.ProtoHopByHop, 0), generic(header.ProtoDestOpts, 1), fragHdr(0, true, 3)},
		header.ProtoUDP, make([]byte, 30))
	u6 := headertest.Build(headertest.Spec{Src: a6, Dst: b6, Proto: header.ProtoUDP, SrcPort: 1, DstPort: 2, Payload: []byte("x")})
	ic4 := headertest.Build(headertest.Spec{Src: a4, Dst: b4, Proto: header.ProtoICMP, ICMPType: header.ICMPv4EchoRequest})[20:]
	ic6 := headertest.Build(headertest.Spec{Src: a6, Dst: b6, Proto: header.ProtoICMPv6, ICMPType: header.ICMPv6EchoRequest})[40:]
	eth := header.Ethernet(eth4)
	ip4 := header.IPv4(p4)
	ip6 := header.IPv6(p6)
	tcp := header.TCP(ip4.Payload())
	udp := header.UDP(header.IPv6(u6).Payload())
	m4, m6 := header.ICMPv4(ic4), header.ICMPv6(ic6)
	big := make([]byte, 1500)
	s4, d4 := ip4.Src(), ip4.Dst()
	s6, d6 := ip6.Src(), ip6.Dst()

	assertNoAllocs(t, "Ethernet", func() {
		sinkBool = eth.IsValid()
		sink6 = eth.Src()
		sink6 = eth.Dst()
		sinkU16 = eth.EtherType()
		sinkBytes = eth.Payload()
		eth.SetSrc(sink6)
		eth.SetDst(sink6)
		eth.SetEtherType(header.EtherTypeIPv4)
	})
	assertNoAllocs(t, "IPv4", func() {
		sinkBool = ip4.IsValid(len(p4))
		sinkInt = ip4.HeaderLen()
		sinkU8 = ip4.TOS() + ip4.TTL() + ip4.Protocol()
		sinkU16 = ip4.TotalLen() + ip4.ID() + ip4.FragmentOffset() + ip4.Checksum()
		sinkBool = ip4.DontFragment() || ip4.MoreFragments() || ip4.IsFragment()
		sink4 = ip4.Src()
		sink4 = ip4.Dst()
		sinkAddr = ip4.SrcAddr()
		sinkAddr = ip4.DstAddr()
		sinkBytes = ip4.Payload()
		sinkU16 = ip4.CalculateChecksum()
		sinkBool = ip4.IsChecksumValid()
		ip4.SetTTL(ip4.TTL())
		ip4.SetSrc(ip4.Src())
		ip4.SetDst(ip4.Dst())
		ip4.SetTOS(ip4.TOS())
		ip4.SetID(ip4.ID())
		ip4.SetProtocol(ip4.Protocol())
		ip4.SetTotalLen(ip4.TotalLen())
		ip4.SetFlagsFragment(ip4.DontFragment(), ip4.MoreFragments(), ip4.FragmentOffset())
		ip4.SetChecksum(ip4.Checksum())
	})
	assertNoAllocs(t, "IPv6", func() {
		sinkBool = ip6.IsValid(len(p6))
		sinkU8 = ip6.TrafficClass() + ip6.NextHeader() + ip6.HopLimit()
		sinkU32 = ip6.FlowLabel()
		sinkU16 = ip6.PayloadLen()
		sink16 = ip6.Src()
		sink16 = ip6.Dst()
		sinkAddr = ip6.SrcAddr()
		sinkAddr = ip6.DstAddr()
		sinkBytes = ip6.Payload()
		ip6.SetHopLimit(ip6.HopLimit())
		ip6.SetSrc(ip6.Src())
		ip6.SetDst(ip6.Dst())
		ip6.SetPayloadLen(ip6.PayloadLen())
		ip6.SetNextHeader(ip6.NextHeader())
		ip6.SetTrafficClass(ip6.TrafficClass())
		ip6.SetFlowLabel(ip6.FlowLabel())
	})
	assertNoAllocs(t, "IPv6.Transport", func() {
		sinkU8, sinkInt, sinkFrag, sinkBool = ip6.Transport()
	})
	assertNoAllocs(t, "TCP", func() {
		sinkBool = tcp.IsValid(len(tcp))
		sinkU16 = tcp.SrcPort() + tcp.DstPort() + tcp.Window() + tcp.Checksum() + tcp.UrgentPtr()
		sinkU32 = tcp.Seq() + tcp.Ack()
		sinkInt = tcp.HeaderLen()
		sinkU8 = tcp.Flags()
		sinkBytes = tcp.Options()
		sinkBytes = tcp.Payload(len(tcp))
		tcp.SetSrcPort(tcp.SrcPort())
		tcp.SetDstPort(tcp.DstPort())
		tcp.SetSeq(tcp.Seq())
		tcp.SetAck(tcp.Ack())
		tcp.SetFlags(tcp.Flags())
		tcp.SetWindow(tcp.Window())
		tcp.SetChecksum(tcp.Checksum())
	})
	assertNoAllocs(t, "ParseTCPOptions", func() {
		sinkOpts, sinkBool = header.ParseTCPOptions(tcp.Options())
	})
	assertNoAllocs(t, "UDP", func() {
		sinkBool = udp.IsValid(len(udp))
		sinkU16 = udp.SrcPort() + udp.DstPort() + udp.Length() + udp.Checksum()
		sinkBytes = udp.Payload()
		udp.SetSrcPort(udp.SrcPort())
		udp.SetDstPort(udp.DstPort())
		udp.SetLength(udp.Length())
		udp.SetChecksum(udp.Checksum())
	})
	assertNoAllocs(t, "ICMPv4", func() {
		sinkBool = m4.IsValid(len(m4))
		sinkU8 = m4.Type() + m4.Code()
		sinkU16 = m4.Checksum() + m4.Ident() + m4.Seq() + m4.MTU()
		sinkBytes = m4.Payload()
		m4.SetType(m4.Type())
		m4.SetCode(m4.Code())
		m4.SetIdent(m4.Ident())
		m4.SetSeq(m4.Seq())
		m4.SetChecksum(m4.Checksum())
		sinkBool = header.ICMPv4IsError(m4.Type()) || header.ICMPv4IsQuery(m4.Type())
	})
	assertNoAllocs(t, "ICMPv6", func() {
		sinkBool = m6.IsValid(len(m6))
		sinkU8 = m6.Type() + m6.Code()
		sinkU16 = m6.Checksum() + m6.Ident() + m6.Seq()
		sinkU32 = m6.MTU()
		sinkBytes = m6.Payload()
		m6.SetType(m6.Type())
		m6.SetCode(m6.Code())
		m6.SetIdent(m6.Ident())
		m6.SetSeq(m6.Seq())
		m6.SetChecksum(m6.Checksum())
		sinkBool = header.ICMPv6IsError(m6.Type()) || header.ICMPv6IsQuery(m6.Type())
	})
	assertNoAllocs(t, "Checksum", func() {
		sinkU16 = header.Checksum(big, 0)
		sinkU16 = header.ChecksumCombine(sinkU16, 1)
		sinkU16 = header.PseudoHeaderChecksum(header.ProtoTCP, s6[:], d6[:], 100)
	})
	assertNoAllocs(t, "ChecksumUpdate", func() {
		sinkU16 = header.ChecksumUpdate16(sinkU16, 1, 2)
		sinkU16 = header.ChecksumUpdate32(sinkU16, 1, 2)
		sinkU16 = header.ChecksumUpdateBytes(sinkU16, s4[:], d4[:])
		sinkU16 = header.ChecksumUpdateBytes(sinkU16, s6[:], d6[:])
		sinkU16 = header.UDPChecksumUpdate16(sinkU16, 1, 2)
		sinkU16 = header.UDPChecksumUpdate32(sinkU16, 1, 2)
		sinkU16 = header.UDPChecksumUpdateBytes(sinkU16, s6[:], d6[:])
	})
	assertNoAllocs(t, "L4 checksums", func() {
		sinkU16 = header.TCPChecksum(s4[:], d4[:], tcp)
		sinkU16 = header.UDPChecksum(s6[:], d6[:], udp)
		sinkU16 = header.ICMPv4Checksum(m4)
		sinkU16 = header.ICMPv6Checksum(s6[:], d6[:], m6)
	})
}
