package header_test

import (
	"bytes"
	"encoding/binary"
	"math/rand"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// gpPacket is a random packet serialized by gopacket, with the layer structs
// (holding the values gopacket wrote, checksums included).
type gpPacket struct {
	raw    []byte // starting at the Ethernet header
	eth    *layers.Ethernet
	ip4    *layers.IPv4
	ip6    *layers.IPv6
	tcp    *layers.TCP
	udp    *layers.UDP
	icmp4  *layers.ICMPv4
	icmp6  *layers.ICMPv6
	echo6  *layers.ICMPv6Echo
	pay    []byte
	tcpOpt header.TCPSynOptions
}

func randAddr(rng *rand.Rand, n int) net.IP {
	ip := make(net.IP, n)
	rng.Read(ip)
	return ip
}

// gpRandom builds a random Ethernet/IP/L4 packet with gopacket.
func gpRandom(t testing.TB, rng *rand.Rand, v6 bool, kind int) *gpPacket {
	t.Helper()
	p := &gpPacket{}
	p.eth = &layers.Ethernet{
		SrcMAC: net.HardwareAddr(randAddr(rng, 6)),
		DstMAC: net.HardwareAddr(randAddr(rng, 6)),
	}
	p.pay = make([]byte, rng.Intn(200))
	rng.Read(p.pay)
	var netLayer gopacket.NetworkLayer
	var ipLayer gopacket.SerializableLayer
	var proto layers.IPProtocol
	switch kind {
	case 0:
		proto = layers.IPProtocolTCP
	case 1:
		proto = layers.IPProtocolUDP
	default:
		if v6 {
			proto = layers.IPProtocolICMPv6
		} else {
			proto = layers.IPProtocolICMPv4
		}
	}
	if v6 {
		p.eth.EthernetType = layers.EthernetTypeIPv6
		p.ip6 = &layers.IPv6{
			Version:      6,
			TrafficClass: uint8(rng.Intn(256)),
			FlowLabel:    uint32(rng.Intn(1 << 20)),
			NextHeader:   proto,
			HopLimit:     uint8(rng.Intn(256)),
			SrcIP:        randAddr(rng, 16),
			DstIP:        randAddr(rng, 16),
		}
		netLayer, ipLayer = p.ip6, p.ip6
	} else {
		p.eth.EthernetType = layers.EthernetTypeIPv4
		p.ip4 = &layers.IPv4{
			Version:  4,
			TOS:      uint8(rng.Intn(256)),
			Id:       uint16(rng.Intn(1 << 16)),
			Flags:    layers.IPv4Flag(rng.Intn(4)) << 0, // MF and DF, reserved clear
			TTL:      uint8(rng.Intn(256)),
			Protocol: proto,
			SrcIP:    randAddr(rng, 4),
			DstIP:    randAddr(rng, 4),
		}
		if rng.Intn(3) == 0 {
			p.ip4.FragOffset = uint16(rng.Intn(1 << 13))
		}
		if rng.Intn(4) == 0 {
			p.ip4.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		netLayer, ipLayer = p.ip4, p.ip4
	}
	ls := []gopacket.SerializableLayer{p.eth, ipLayer}
	switch proto {
	case layers.IPProtocolTCP:
		p.tcp = &layers.TCP{
			SrcPort: layers.TCPPort(rng.Intn(1 << 16)),
			DstPort: layers.TCPPort(rng.Intn(1 << 16)),
			Seq:     rng.Uint32(),
			Ack:     rng.Uint32(),
			Window:  uint16(rng.Intn(1 << 16)),
			Urgent:  uint16(rng.Intn(1 << 16)),
			FIN:     rng.Intn(2) == 0, SYN: rng.Intn(2) == 0, RST: rng.Intn(2) == 0, PSH: rng.Intn(2) == 0,
			ACK: rng.Intn(2) == 0, URG: rng.Intn(2) == 0, ECE: rng.Intn(2) == 0, CWR: rng.Intn(2) == 0,
		}
		p.tcpOpt = header.TCPSynOptions{WindowScale: -1}
		if rng.Intn(2) == 0 {
			mss := uint16(rng.Intn(1 << 16))
			p.tcp.Options = append(p.tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionData: []byte{byte(mss >> 8), byte(mss)}})
			p.tcpOpt.MSS = mss
		}
		if rng.Intn(2) == 0 {
			p.tcp.Options = append(p.tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindSACKPermitted})
			p.tcpOpt.SACKPermitted = true
		}
		if rng.Intn(2) == 0 {
			p.tcp.Options = append(p.tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindTimestamps, OptionData: make([]byte, 8)})
			p.tcpOpt.Timestamps = true
		}
		if rng.Intn(2) == 0 {
			ws := uint8(rng.Intn(20))
			p.tcp.Options = append(p.tcp.Options, layers.TCPOption{OptionType: layers.TCPOptionKindNop},
				layers.TCPOption{OptionType: layers.TCPOptionKindWindowScale, OptionData: []byte{ws}})
			p.tcpOpt.WindowScale = int8(min(ws, 14))
		}
		p.tcp.SetNetworkLayerForChecksum(netLayer)
		ls = append(ls, p.tcp)
	case layers.IPProtocolUDP:
		p.udp = &layers.UDP{SrcPort: layers.UDPPort(rng.Intn(1 << 16)), DstPort: layers.UDPPort(rng.Intn(1 << 16))}
		p.udp.SetNetworkLayerForChecksum(netLayer)
		ls = append(ls, p.udp)
	case layers.IPProtocolICMPv4:
		p.icmp4 = &layers.ICMPv4{
			TypeCode: layers.CreateICMPv4TypeCode(uint8(rng.Intn(256)), uint8(rng.Intn(256))),
			Id:       uint16(rng.Intn(1 << 16)),
			Seq:      uint16(rng.Intn(1 << 16)),
		}
		ls = append(ls, p.icmp4)
	case layers.IPProtocolICMPv6:
		p.icmp6 = &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
		p.echo6 = &layers.ICMPv6Echo{Identifier: uint16(rng.Intn(1 << 16)), SeqNumber: uint16(rng.Intn(1 << 16))}
		p.icmp6.SetNetworkLayerForChecksum(netLayer)
		ls = append(ls, p.icmp6, p.echo6)
	}
	ls = append(ls, gopacket.Payload(p.pay))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	p.raw = append([]byte(nil), buf.Bytes()...)
	return p
}

func TestCrossCheckGopacket(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	for i := 0; i < 3000; i++ {
		v6 := i%2 == 1
		p := gpRandom(t, rng, v6, (i/2)%3)

		eth := header.Ethernet(p.raw)
		if !eth.IsValid() || eth.Src() != [6]byte(p.eth.SrcMAC) || eth.Dst() != [6]byte(p.eth.DstMAC) ||
			eth.EtherType() != uint16(p.eth.EthernetType) {
			t.Fatalf("ethernet mismatch")
		}
		pkt := p.raw[header.EthernetLen:]
		var (
			l4       []byte
			src, dst []byte
			proto    uint8
		)
		if v6 {
			ip := header.IPv6(pkt)
			if !ip.IsValid(len(pkt)) {
				t.Fatal("IPv6 IsValid = false")
			}
			g := p.ip6
			if ip.TrafficClass() != g.TrafficClass || ip.FlowLabel() != g.FlowLabel || ip.PayloadLen() != g.Length ||
				ip.NextHeader() != uint8(g.NextHeader) || ip.HopLimit() != g.HopLimit ||
				ip.Src() != [16]byte(g.SrcIP) || ip.Dst() != [16]byte(g.DstIP) ||
				ip.SrcAddr() != netip.AddrFrom16([16]byte(g.SrcIP)) || ip.DstAddr() != netip.AddrFrom16([16]byte(g.DstIP)) {
				t.Fatalf("IPv6 field mismatch: %+v", g)
			}
			var off int
			var ok bool
			proto, off, _, ok = ip.Transport()
			if !ok || off != header.IPv6Len {
				t.Fatalf("Transport: %d %d %v", proto, off, ok)
			}
			l4 = ip.Payload()
			src, dst = g.SrcIP, g.DstIP
		} else {
			ip := header.IPv4(pkt)
			if !ip.IsValid(len(pkt)) {
				t.Fatal("IPv4 IsValid = false")
			}
			g := p.ip4
			if ip.HeaderLen() != int(g.IHL)*4 || ip.TOS() != g.TOS || ip.TotalLen() != g.Length || ip.ID() != g.Id ||
				ip.DontFragment() != (g.Flags&layers.IPv4DontFragment != 0) ||
				ip.MoreFragments() != (g.Flags&layers.IPv4MoreFragments != 0) ||
				ip.FragmentOffset() != g.FragOffset*8 ||
				ip.IsFragment() != (g.FragOffset != 0 || g.Flags&layers.IPv4MoreFragments != 0) ||
				ip.TTL() != g.TTL || ip.Protocol() != uint8(g.Protocol) || ip.Checksum() != g.Checksum ||
				ip.Src() != [4]byte(g.SrcIP) || ip.Dst() != [4]byte(g.DstIP) ||
				ip.SrcAddr() != netip.AddrFrom4([4]byte(g.SrcIP)) {
				t.Fatalf("IPv4 field mismatch: %+v", g)
			}
			if ip.CalculateChecksum() != g.Checksum || !ip.IsChecksumValid() {
				t.Fatalf("IPv4 checksum %#x, gopacket %#x", ip.CalculateChecksum(), g.Checksum)
			}
			l4 = ip.Payload()
			src, dst = g.SrcIP, g.DstIP
			proto = ip.Protocol()
		}
		switch {
		case p.tcp != nil:
			g := p.tcp
			tcp := header.TCP(l4)
			if proto != header.ProtoTCP || !tcp.IsValid(len(l4)) {
				t.Fatal("TCP invalid")
			}
			var flags uint8
			for i, f := range []bool{g.FIN, g.SYN, g.RST, g.PSH, g.ACK, g.URG, g.ECE, g.CWR} {
				if f {
					flags |= 1 << i
				}
			}
			if tcp.SrcPort() != uint16(g.SrcPort) || tcp.DstPort() != uint16(g.DstPort) || tcp.Seq() != g.Seq ||
				tcp.Ack() != g.Ack || tcp.HeaderLen() != int(g.DataOffset)*4 || tcp.Flags() != flags ||
				tcp.Window() != g.Window || tcp.UrgentPtr() != g.Urgent || tcp.Checksum() != g.Checksum ||
				!bytes.Equal(tcp.Payload(len(l4)), p.pay) {
				t.Fatalf("TCP field mismatch")
			}
			if got := header.TCPChecksum(src, dst, l4); got != g.Checksum {
				t.Fatalf("TCPChecksum = %#x, gopacket %#x", got, g.Checksum)
			}
			o, ok := header.ParseTCPOptions(tcp.Options())
			if !ok || o != p.tcpOpt {
				t.Fatalf("ParseTCPOptions = %+v %v, want %+v", o, ok, p.tcpOpt)
			}
		case p.udp != nil:
			g := p.udp
			u := header.UDP(l4)
			if proto != header.ProtoUDP || !u.IsValid(len(l4)) {
				t.Fatal("UDP invalid")
			}
			if u.SrcPort() != uint16(g.SrcPort) || u.DstPort() != uint16(g.DstPort) || u.Length() != g.Length ||
				u.Checksum() != g.Checksum || !bytes.Equal(u.Payload(), p.pay) {
				t.Fatalf("UDP field mismatch")
			}
			want := g.Checksum
			if want == 0 { // gopacket does not apply the RFC 768 0 -> 0xffff rule
				want = 0xffff
			}
			if got := header.UDPChecksum(src, dst, l4); got != want {
				t.Fatalf("UDPChecksum = %#x, gopacket %#x", got, g.Checksum)
			}
		case p.icmp4 != nil:
			g := p.icmp4
			m := header.ICMPv4(l4)
			if proto != header.ProtoICMP || !m.IsValid(len(l4)) {
				t.Fatal("ICMPv4 invalid")
			}
			if m.Type() != g.TypeCode.Type() || m.Code() != g.TypeCode.Code() || m.Ident() != g.Id || m.Seq() != g.Seq ||
				m.Checksum() != g.Checksum || m.MTU() != g.Seq || !bytes.Equal(m.Payload(), p.pay) {
				t.Fatalf("ICMPv4 field mismatch")
			}
			if got := header.ICMPv4Checksum(l4); got != g.Checksum {
				t.Fatalf("ICMPv4Checksum = %#x, gopacket %#x", got, g.Checksum)
			}
		case p.icmp6 != nil:
			g := p.icmp6
			m := header.ICMPv6(l4)
			if proto != header.ProtoICMPv6 || !m.IsValid(len(l4)) {
				t.Fatal("ICMPv6 invalid")
			}
			if m.Type() != g.TypeCode.Type() || m.Code() != g.TypeCode.Code() || m.Ident() != p.echo6.Identifier ||
				m.Seq() != p.echo6.SeqNumber || m.Checksum() != g.Checksum || !bytes.Equal(m.Payload(), p.pay) {
				t.Fatalf("ICMPv6 field mismatch")
			}
			if got := header.ICMPv6Checksum(src, dst, l4); got != g.Checksum {
				t.Fatalf("ICMPv6Checksum = %#x, gopacket %#x", got, g.Checksum)
			}
		}
	}
}

// TestIPv6TransportGopacket checks Transport's offset against gopacket's
// decoding of extension-header chains.
func TestIPv6TransportGopacket(t *testing.T) {
	tcp := make([]byte, 20)
	tcp[12] = 5 << 4
	binary.BigEndian.PutUint16(tcp[0:], 1234)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	chains := [][]ext{
		nil,
		{generic(header.ProtoHopByHop, 0)},
		{generic(header.ProtoHopByHop, 2), generic(header.ProtoDestOpts, 1)},
		{generic(header.ProtoDestOpts, 0), fragHdr(0, true, 77)},
		{generic(header.ProtoHopByHop, 0), generic(header.ProtoDestOpts, 3), generic(header.ProtoRouting, 2), fragHdr(0, false, 1)},
	}
	for i, chain := range chains {
		b := buildIPv6Ext(chain, header.ProtoTCP, tcp)
		proto, off, frag, ok := header.IPv6(b).Transport()
		if !ok || proto != header.ProtoTCP {
			t.Fatalf("chain %d: %d %v", i, proto, ok)
		}
		pkt := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.DecodeOptions{NoCopy: true})
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatalf("chain %d: gopacket: %v", i, el.Error())
		}
		// gopacket does not decode past a Fragment header with M set; then
		// compare with the fragment's payload.
		var l4 []byte
		if gt, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP); gt != nil {
			l4 = gt.Contents
		} else if gf, _ := pkt.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment); gf != nil {
			l4 = gf.Payload
		} else {
			t.Fatalf("chain %d: gopacket found no TCP; layers %v", i, pkt.Layers())
		}
		if !bytes.Equal(b[off:], l4) {
			t.Errorf("chain %d: offset %d disagrees with gopacket", i, off)
		}
		if gf, _ := pkt.Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment); gf != nil {
			if !frag.Present || frag.ID != gf.Identification || frag.More != gf.MoreFragments || frag.Offset != gf.FragmentOffset*8 {
				t.Errorf("chain %d: frag %+v, gopacket %+v", i, frag, gf)
			}
		} else if frag.Present {
			t.Errorf("chain %d: frag present but not in gopacket", i)
		}
	}
}

// TestHeadertestBuildGopacket decodes headertest.Build output with gopacket
// and re-serializes it from the decoded fields with gopacket computing the
// checksums: the bytes must be identical, i.e. every checksum is valid.
func TestHeadertestBuildGopacket(t *testing.T) {
	a4, b4 := headertest.MustAddr("192.0.2.1"), headertest.MustAddr("198.51.100.2")
	a6, b6 := headertest.MustAddr("2001:db8::1"), headertest.MustAddr("2001:db8:ffff::2")
	quote := headertest.Build(headertest.Spec{Src: b4, Dst: a4, Proto: header.ProtoUDP, SrcPort: 1, DstPort: 2, Payload: []byte("q")})
	specs := []headertest.Spec{
		{Src: a4, Dst: b4, Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 443, Flags: header.TCPFlagSYN, Seq: 1000,
			MSS: 1460, SACKPerm: true, HasWScale: true, WScale: 7, DF: true, ID: 99},
		{Src: a6, Dst: b6, Proto: header.ProtoTCP, SrcPort: 1, DstPort: 2, Flags: header.TCPFlagACK | header.TCPFlagPSH, Seq: 5, Ack: 7,
			Window: 100, Payload: []byte("hello world")},
		{Src: a4, Dst: b4, Proto: header.ProtoUDP, SrcPort: 5000, DstPort: 6000, Payload: []byte("abc")},
		{Src: a6, Dst: b6, Proto: header.ProtoUDP, SrcPort: 5000, DstPort: 6000, TTL: 3},
		{Src: a4, Dst: b4, Proto: header.ProtoICMP, ICMPType: header.ICMPv4EchoRequest, Ident: 0x1234, ICMPSeq: 3, Payload: []byte("ping")},
		{Src: a4, Dst: b4, Proto: header.ProtoICMP, ICMPType: header.ICMPv4DestUnreachable, ICMPCode: header.ICMPv4FragNeeded,
			MTU: 1400, Quote: quote},
		{Src: a6, Dst: b6, Proto: header.ProtoICMPv6, ICMPType: header.ICMPv6EchoReply, Ident: 9, ICMPSeq: 10, Payload: []byte("pong!")},
		{Src: a6, Dst: b6, Proto: header.ProtoICMPv6, ICMPType: header.ICMPv6PacketTooBig, MTU: 1280, Quote: []byte("quoted v6 packet")},
	}
	for i, s := range specs {
		raw := headertest.BuildEth(s, [6]byte{2, 0, 0, 0, 0, 1}, [6]byte{2, 0, 0, 0, 0, 2})
		pkt := gopacket.NewPacket(raw, layers.LayerTypeEthernet, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatalf("spec %d: gopacket: %v", i, el.Error())
		}
		var ls []gopacket.SerializableLayer
		ls = append(ls, pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet))
		var nl gopacket.NetworkLayer
		if s.Src.Is4() {
			ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if ip.TTL != 64 && s.TTL == 0 {
				t.Errorf("spec %d: TTL %d", i, ip.TTL)
			}
			nl = ip
			ls = append(ls, ip)
		} else {
			ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			nl = ip
			ls = append(ls, ip)
		}
		switch s.Proto {
		case header.ProtoTCP:
			l := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
			l.SetNetworkLayerForChecksum(nl)
			ls = append(ls, l, gopacket.Payload(l.Payload))
			wantWin := s.Window
			if wantWin == 0 {
				wantWin = 65535
			}
			if l.SYN != (s.Flags&header.TCPFlagSYN != 0) || l.Window != wantWin || l.Seq != s.Seq {
				t.Errorf("spec %d: TCP fields %+v", i, l)
			}
		case header.ProtoUDP:
			l := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
			l.SetNetworkLayerForChecksum(nl)
			ls = append(ls, l, gopacket.Payload(l.Payload))
		case header.ProtoICMP:
			l := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			ls = append(ls, l, gopacket.Payload(l.Payload))
		case header.ProtoICMPv6:
			l := pkt.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
			l.SetNetworkLayerForChecksum(nl)
			ls = append(ls, l, gopacket.Payload(l.Payload))
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
			t.Fatalf("spec %d: %v", i, err)
		}
		// gopacket pads Ethernet frames to 60 bytes.
		got := buf.Bytes()
		if len(got) > len(raw) && len(raw) < 60 && !bytes.ContainsFunc(got[len(raw):], func(r rune) bool { return r != 0 }) {
			got = got[:len(raw)]
		}
		if !bytes.Equal(got, raw) {
			t.Errorf("spec %d: gopacket re-serialization differs:\n got % x\nwant % x", i, got, raw)
		}
	}
}
