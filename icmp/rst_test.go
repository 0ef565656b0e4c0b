package icmp

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// The reset a reject rule sends is the one a closed port would send
// (RFC 9293 3.10.7.1), byte for byte, for IPv4 and IPv6.
func TestBuildRST(t *testing.T) {
	for _, fam := range []struct{ c, s string }{{"10.0.0.2", "192.0.2.80"}, {"fd00::2", "2001:db8::80"}} {
		c, s := netip.MustParseAddr(fam.c), netip.MustParseAddr(fam.s)
		syn := headertest.Build(headertest.Spec{Src: c, Dst: s, Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 23,
			Flags: header.TCPFlagSYN, Seq: 1000, Window: 64240, MSS: 1460})
		out := make([]byte, 128)
		n, r := BuildRST(out, syn)
		if r != drop.None {
			t.Fatal(r)
		}
		want := headertest.Build(headertest.Spec{Src: s, Dst: c, Proto: header.ProtoTCP, SrcPort: 23, DstPort: 40000,
			Flags: header.TCPFlagRST | header.TCPFlagACK, Seq: 0, Ack: 1001, Window: 0, NoWindowDefault: true, TTL: TTL, DF: true})
		if !bytes.Equal(out[:n], want) {
			t.Errorf("%s: RST to a SYN\n got %x\nwant %x", fam.c, out[:n], want)
		}
		// A segment with ACK is answered with seq = its ack, no ACK flag.
		data := headertest.Build(headertest.Spec{Src: c, Dst: s, Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 23,
			Flags: header.TCPFlagACK | header.TCPFlagPSH, Seq: 1001, Ack: 777, Payload: []byte("hi")})
		n, _ = BuildRST(out, data)
		want = headertest.Build(headertest.Spec{Src: s, Dst: c, Proto: header.ProtoTCP, SrcPort: 23, DstPort: 40000,
			Flags: header.TCPFlagRST, Seq: 777, Window: 0, NoWindowDefault: true, TTL: TTL, DF: true})
		if !bytes.Equal(out[:n], want) {
			t.Errorf("%s: RST to data\n got %x\nwant %x", fam.c, out[:n], want)
		}
		// Never a reset about a reset.
		rst := headertest.Build(headertest.Spec{Src: c, Dst: s, Proto: header.ProtoTCP, SrcPort: 1, DstPort: 2, Flags: header.TCPFlagRST})
		if _, r := BuildRST(out, rst); r == drop.None {
			t.Errorf("%s: answered an RST", fam.c)
		}
		if a := testing.AllocsPerRun(100, func() { BuildRST(out, syn) }); a != 0 {
			t.Errorf("BuildRST allocates %v", a)
		}
	}
}

// The reset that aborts an expired flow: RST+ACK with the given sequence
// and acknowledgement numbers, byte for byte what headertest builds, for
// IPv4 and IPv6; mixed families are refused.
func TestBuildFlowRST(t *testing.T) {
	for _, fam := range []struct{ c, s string }{{"10.0.0.2", "192.0.2.80"}, {"fd00::2", "2001:db8::80"}} {
		c, s := netip.MustParseAddr(fam.c), netip.MustParseAddr(fam.s)
		c16, s16 := c.As16(), s.As16()
		out := make([]byte, 128)
		n, r := BuildFlowRST(out, &s16, &c16, 8080, 40000, 0xfffffff5, 1101)
		if r != drop.None {
			t.Fatal(r)
		}
		want := headertest.Build(headertest.Spec{Src: s, Dst: c, Proto: header.ProtoTCP, SrcPort: 8080, DstPort: 40000,
			Flags: header.TCPFlagRST | header.TCPFlagACK, Seq: 0xfffffff5, Ack: 1101, Window: 0, NoWindowDefault: true, TTL: TTL, DF: true})
		if !bytes.Equal(out[:n], want) {
			t.Errorf("%s: flow RST\n got %x\nwant %x", fam.c, out[:n], want)
		}
		if _, r := BuildFlowRST(out[:n-1], &s16, &c16, 8080, 40000, 1, 2); r == drop.None {
			t.Errorf("%s: built into a short buffer", fam.c)
		}
		if a := testing.AllocsPerRun(100, func() { BuildFlowRST(out, &s16, &c16, 8080, 40000, 1, 2) }); a != 0 {
			t.Errorf("BuildFlowRST allocates %v", a)
		}
	}
	v4, v6 := netip.MustParseAddr("10.0.0.2").As16(), netip.MustParseAddr("2001:db8::80").As16()
	if _, r := BuildFlowRST(make([]byte, 128), &v4, &v6, 1, 2, 3, 4); r == drop.None {
		t.Errorf("built a reset from an IPv4 to an IPv6 address")
	}
}

func BenchmarkBuildFlowRST(b *testing.B) {
	c, s := netip.MustParseAddr("10.0.0.2").As16(), netip.MustParseAddr("192.0.2.80").As16()
	out := make([]byte, 128)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		BuildFlowRST(out, &s, &c, 8080, 40000, uint32(i), 1101)
	}
}
