package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// Fragments of UDP and ICMP datagrams follow their first fragment's verdict
// and translation (dataplane/fragment.go). Each test fragments a datagram
// built whole, sends the fragments in some order, reassembles what left the
// box and checks it against the datagram, translated, with its UDP checksum
// recomputed independently.

// fragment splits the IP datagram in frame (Ethernet + IPv4 or IPv6) into
// fragments whose data (IP payload) lengths are sizes (multiples of 8; the
// rest goes in a last fragment), with identification id.
func fragment(t *testing.T, frame []byte, id uint32, sizes ...int) [][]byte {
	t.Helper()
	ethHdr, ip := frame[:header.EthernetLen], frame[header.EthernetLen:]
	v4 := ip[0]>>4 == 4
	hl := header.IPv6Len
	if v4 {
		hl = header.IPv4(ip).HeaderLen()
	}
	hdr, payload := ip[:hl], ip[hl:]
	var out [][]byte
	for off := 0; off < len(payload); {
		n := len(payload) - off
		if len(out) < len(sizes) {
			n = sizes[len(out)]
		}
		more := off+n < len(payload)
		f := slices.Concat(ethHdr, hdr)
		fip := f[header.EthernetLen:]
		if v4 {
			h := header.IPv4(fip)
			h.SetID(uint16(id))
			h.SetFlagsFragment(false, more, uint16(off))
			h.SetTotalLen(uint16(hl + n))
			f = append(f, payload[off:off+n]...)
			h = header.IPv4(f[header.EthernetLen:])
			h.SetChecksum(h.CalculateChecksum())
		} else {
			nh := header.IPv6(fip).NextHeader()
			fo := uint16(off)
			if more {
				fo |= 1
			}
			fh := []byte{nh, 0, byte(fo >> 8), byte(fo), 0, 0, 0, 0}
			binary.BigEndian.PutUint32(fh[4:], id)
			f = append(append(f, fh...), payload[off:off+n]...)
			h := header.IPv6(f[header.EthernetLen:])
			h.SetNextHeader(header.ProtoFragment)
			h.SetPayloadLen(uint16(8 + n))
		}
		out = append(out, f)
		off += n
	}
	return out
}

// reassemble puts the fragments' data back together (they must cover the
// datagram exactly once) and returns the whole IP datagram, with the first
// fragment's header (IPv4 flags and offset cleared; IPv6 Fragment header
// removed). It checks each IPv4 fragment's header checksum.
func reassemble(t *testing.T, frames [][]byte) []byte {
	t.Helper()
	type piece struct {
		off  int
		data []byte
	}
	var pieces []piece
	var hdr []byte
	for _, f := range frames {
		ip := f[header.EthernetLen:]
		if ip[0]>>4 == 4 {
			h := header.IPv4(ip)
			if h.CalculateChecksum() != h.Checksum() {
				t.Fatalf("fragment at %d: IPv4 header checksum %#04x, want %#04x", h.FragmentOffset(), h.Checksum(), h.CalculateChecksum())
			}
			if h.FragmentOffset() == 0 {
				hdr = slices.Clone(ip[:h.HeaderLen()])
				header.IPv4(hdr).SetFlagsFragment(false, false, 0)
			}
			pieces = append(pieces, piece{int(h.FragmentOffset()), ip[h.HeaderLen():h.TotalLen()]})
			continue
		}
		h := header.IPv6(ip)
		_, off, fr, ok := h.Transport()
		if !ok || !fr.Present {
			t.Fatalf("IPv6 output without a Fragment header")
		}
		dataAt := header.IPv6Len + 8 // the tests put the Fragment header first
		if fr.Offset == 0 {
			hdr = slices.Clone(ip[:header.IPv6Len])
			header.IPv6(hdr).SetNextHeader(ip[header.IPv6Len])
		}
		_ = off
		pieces = append(pieces, piece{int(fr.Offset), ip[dataAt : header.IPv6Len+int(h.PayloadLen())]})
	}
	if hdr == nil {
		t.Fatal("no first fragment left the box")
	}
	slices.SortFunc(pieces, func(a, b piece) int { return a.off - b.off })
	var data []byte
	for _, p := range pieces {
		if p.off != len(data) {
			t.Fatalf("fragment at %d after %d bytes: gap or overlap", p.off, len(data))
		}
		data = append(data, p.data...)
	}
	ip := append(hdr, data...)
	if ip[0]>>4 == 4 {
		h := header.IPv4(ip)
		h.SetTotalLen(uint16(len(ip)))
		h.SetChecksum(h.CalculateChecksum())
	} else {
		header.IPv6(ip).SetPayloadLen(uint16(len(data)))
	}
	return ip
}

// sendFrames runs frames, received on port in, through the pipeline one
// batch each and returns every frame that left and the drops counted.
func (tp *testPipeline) sendFrames(in int, frames ...[]byte) ([]sent, map[drop.Reason]int) {
	tp.out = tp.out[:0]
	before := tp.w.drops
	drops := map[drop.Reason]int{}
	for _, f := range frames {
		tp.w.pipeline(in, [][]byte{slices.Clone(f)}, tp.now)
		tp.w.transmit(0)
		tp.w.transmit(1)
		for r := range tp.w.drops {
			if d := tp.w.drops[r] - before[r]; d != 0 {
				drops[drop.Reason(r)] += int(d)
			}
		}
		tp.w.flush()
		before = tp.w.drops
	}
	return slices.Clone(tp.out), drops
}

func framesOf(out []sent, port int) [][]byte {
	var fs [][]byte
	for _, s := range out {
		if s.port == port {
			fs = append(fs, s.frame)
		}
	}
	return fs
}

// bigUDP is a 3,000-byte UDP datagram (a DNS answer with EDNS0, say).
func bigUDP(src, dst netip.Addr, sport, dport uint16) headertest.Spec {
	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	return headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoUDP, SrcPort: sport, DstPort: dport, Payload: payload}
}

// checkUDP checks the reassembled datagram ip: addresses and ports as
// translated, the payload unchanged, the TTL decremented once and a valid
// UDP checksum.
func checkUDP(t *testing.T, ip []byte, want headertest.Spec) {
	t.Helper()
	var src, dst []byte
	var l4 []byte
	if ip[0]>>4 == 4 {
		h := header.IPv4(ip)
		s, d := h.Src(), h.Dst()
		src, dst, l4 = s[:], d[:], ip[h.HeaderLen():]
		if h.TTL() != 63 {
			t.Errorf("TTL %d, want 63", h.TTL())
		}
	} else {
		h := header.IPv6(ip)
		s, d := h.Src(), h.Dst()
		src, dst, l4 = s[:], d[:], ip[header.IPv6Len:]
		if h.HopLimit() != 63 {
			t.Errorf("hop limit %d, want 63", h.HopLimit())
		}
	}
	if a, _ := netip.AddrFromSlice(src); a.Unmap() != want.Src {
		t.Errorf("source %v, want %v", a, want.Src)
	}
	if a, _ := netip.AddrFromSlice(dst); a.Unmap() != want.Dst {
		t.Errorf("destination %v, want %v", a, want.Dst)
	}
	u := header.UDP(l4)
	if u.SrcPort() != want.SrcPort || u.DstPort() != want.DstPort {
		t.Errorf("ports %d -> %d, want %d -> %d", u.SrcPort(), u.DstPort(), want.SrcPort, want.DstPort)
	}
	if int(u.Length()) != len(l4) || !bytes.Equal(l4[header.UDPLen:], want.Payload) {
		t.Errorf("UDP length %d of %d bytes, payload changed: %v", u.Length(), len(l4), !bytes.Equal(l4[header.UDPLen:], want.Payload))
	}
	if got, exp := u.Checksum(), header.UDPChecksum(src, dst, l4); got != exp {
		t.Errorf("UDP checksum %#04x, want %#04x", got, exp)
	}
}

func TestFragmentsFollowTheirFirst(t *testing.T) {
	for _, order := range []struct {
		name  string
		order []int
	}{
		{"in order", []int{0, 1, 2}},
		{"last first", []int{2, 1, 0}},
		{"first in the middle", []int{1, 0, 2}},
	} {
		t.Run(order.name, func(t *testing.T) {
			tp := newTestPipeline(t, allowOutbound, 1024)
			spec := bigUDP(ipClient, ipServer, 5353, 53)
			frags := fragment(t, eth(spec, macClient, macEdgeIn), 0x4242, 1480, 1480)
			var in [][]byte
			for _, i := range order.order {
				in = append(in, frags[i])
			}
			out, drops := tp.sendFrames(0, in...)
			if len(drops) != 0 || len(out) != 3 {
				t.Fatalf("%d of 3 fragments left, drops %v", len(out), drops)
			}
			got := reassemble(t, framesOf(out, 1))
			want := spec
			want.Src = ipSNAT
			want.SrcPort = tp.natPort(conntrack.MakeKey(header.ProtoUDP,
				netip.AddrPortFrom(ipClient, 5353), netip.AddrPortFrom(ipServer, 53)))
			checkUDP(t, got, want)
			if d, h := tp.w.frags.Len(); d != 0 || h != 0 {
				t.Errorf("after the whole datagram: %d datagrams tracked, %d frames held; want 0, 0", d, h)
			}

			// The answer, fragmented too, goes back to the client.
			reply := bigUDP(ipServer, ipSNAT, 53, want.SrcPort)
			out, drops = tp.sendFrames(1, fragment(t, eth(reply, macServer, macEdgeOut), 0x77, 1480, 1480)...)
			if len(drops) != 0 || len(out) != 3 {
				t.Fatalf("reply: %d of 3 fragments left, drops %v", len(out), drops)
			}
			back := reply
			back.Dst, back.DstPort = ipClient, 5353
			checkUDP(t, reassemble(t, framesOf(out, 0)), back)
		})
	}
}

// IPv6 (Fragment header), inbound to a host the rules open (no NAT), the
// first fragment last.
func TestFragmentsIPv6(t *testing.T) {
	tp := v6Pipeline(t)
	host, far := netip.MustParseAddr("fd00::2"), netip.MustParseAddr("2001:db8::5")
	spec := bigUDP(far, host, 53, 5353)
	frags := fragment(t, eth(spec, macServer, macEdgeOut), 0xabcdef01, 1232, 1232)
	out, drops := tp.sendFrames(1, frags[2], frags[1], frags[0])
	if len(out) != 3 || len(drops) != 0 {
		t.Fatalf("%d of 3 fragments left, drops %v", len(out), drops)
	}
	checkUDP(t, reassemble(t, framesOf(out, 0)), spec)
}

// A first fragment's drop is its datagram's: later fragments are dropped
// for the same reason, counted, and hold nothing.
func TestFragmentsOfADroppedFirst(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	// Unsolicited from the outside: the firewall drops the first fragment.
	spec := bigUDP(ipServer, ipSNAT, 53, 40000)
	frags := fragment(t, eth(spec, macServer, macEdgeOut), 9, 1480, 1480)
	out, drops := tp.sendFrames(1, frags...)
	if len(out) != 0 || drops[drop.FirewallDrop] != 3 || len(drops) != 1 {
		t.Fatalf("%d frames left, drops %v; want none and firewall_drop x3", len(out), drops)
	}
	// The same with the later fragments first: held, then dropped with it.
	frags = fragment(t, eth(spec, macServer, macEdgeOut), 10, 1480, 1480)
	out, drops = tp.sendFrames(1, frags[1], frags[2], frags[0])
	if len(out) != 0 || drops[drop.FirewallDrop] != 3 || len(drops) != 1 {
		t.Fatalf("later ones first: %d frames left, drops %v; want none and firewall_drop x3", len(out), drops)
	}
	if d, h := tp.w.frags.Len(); h != 0 || d != 0 {
		t.Errorf("%d datagrams, %d frames still held", d, h)
	}
}

// Later fragments whose first never comes are held until the timeout, then
// freed and counted; TCP fragments are not followed.
func TestFragmentsExpireAndTCP(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	spec := bigUDP(ipClient, ipServer, 6000, 53)
	frags := fragment(t, eth(spec, macClient, macEdgeIn), 11, 1480, 1480)
	out, drops := tp.sendFrames(0, frags[1], frags[2])
	if len(out) != 0 || len(drops) != 0 {
		t.Fatalf("held fragments: %d left, drops %v", len(out), drops)
	}
	tp.now += fragTimeout
	buckets := fragDatagrams / 8
	for range buckets/fragExpire + 1 {
		tp.w.pipeline(0, nil, tp.now)
	}
	if tp.w.drops[drop.FragmentExpired] != 2 {
		t.Errorf("fragment_expired = %d after the timeout, want 2", tp.w.drops[drop.FragmentExpired])
	}
	// The first fragment alone now: forwarded (its flow is new), nothing
	// held for it any more.
	out, _ = tp.sendFrames(0, frags[0])
	if len(out) != 1 {
		t.Errorf("first fragment after its later ones expired: %d left, want 1", len(out))
	}

	tcp := headertest.Spec{Src: ipClient, Dst: ipServer, Proto: header.ProtoTCP, SrcPort: 7000, DstPort: 80,
		Flags: header.TCPFlagACK, Payload: make([]byte, 2000)}
	out, drops = tp.sendFrames(0, fragment(t, eth(tcp, macClient, macEdgeIn), 12, 1480)...)
	if len(out) != 0 || drops[drop.Fragment] != 2 {
		t.Errorf("TCP fragments: %d left, drops %v; want drop fragment x2", len(out), drops)
	}
	// Their drop events name the packets' addresses and protocol.
	n := 0
	for _, e := range tp.readEvents() {
		if e.Reason != drop.Fragment {
			continue
		}
		n++
		if e.Key.SrcAddr() != ipClient || e.Key.DstAddr() != ipServer || e.Key.Proto != header.ProtoTCP {
			t.Errorf("fragment drop event without the packet's tuple: %+v", e.Key)
		}
	}
	if n != 2 {
		t.Errorf("%d fragment drop events, want 2", n)
	}
}

func TestFragmentZeroAllocs(t *testing.T) {
	tp := newTestPipeline(t, allowOutbound, 1024)
	tp.w.testTX = func(int, []byte) {}
	spec := bigUDP(ipClient, ipServer, 5354, 53)
	frags := fragment(t, eth(spec, macClient, macEdgeIn), 1, 1480, 1480)
	work := make([][]byte, 3)
	id := uint16(0)
	before := tp.w.tx[1]
	allocs := testing.AllocsPerRun(200, func() {
		id++
		for i, f := range frags {
			work[i] = append(work[i][:0], f...)
			h := header.IPv4(work[i][header.EthernetLen:])
			h.SetID(id)
			h.SetChecksum(h.CalculateChecksum())
		}
		tp.w.pipeline(0, work[2:3], tp.now) // held
		tp.w.pipeline(0, work[:2], tp.now)  // first, then one following it
		tp.w.transmit(1)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per fragmented datagram, want 0", allocs)
	}
	if sent := tp.w.tx[1] - before; sent < 3*200 {
		t.Errorf("%d fragments sent in 200 datagrams, want 600: the measured path dropped", sent)
	}
}
