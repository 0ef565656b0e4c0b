package main

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// rfc5769IPv4 is RFC 5769's sample IPv4 Binding response (2.2): SOFTWARE,
// XOR-MAPPED-ADDRESS 192.0.2.1:32853, MESSAGE-INTEGRITY, FINGERPRINT.
var rfc5769IPv4 = []byte{
	0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42,
	0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
	0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
	0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
	0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
	0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7,
	0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
}

// rfc5769IPv6Attr is the XOR-MAPPED-ADDRESS of RFC 5769's IPv6 sample
// (2.3): 2001:db8:1234:5678:11:2233:4455:6677 port 32853, same
// transaction ID as the IPv4 sample.
var rfc5769IPv6Attr = []byte{
	0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47,
	0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
}

func rfc5769Tx() txID { return txID(rfc5769IPv4[8:20]) }

func TestParseRFC5769IPv4(t *testing.T) {
	got, err := parseBindingResponse(rfc5769IPv4, rfc5769Tx())
	want := netip.MustParseAddrPort("192.0.2.1:32853")
	if err != nil || got != want {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
}

func TestParseRFC5769IPv6(t *testing.T) {
	msg := append([]byte{}, rfc5769IPv4[:20]...)
	binary.BigEndian.PutUint16(msg[2:], uint16(len(rfc5769IPv6Attr)))
	msg = append(msg, rfc5769IPv6Attr...)
	got, err := parseBindingResponse(msg, rfc5769Tx())
	want := netip.MustParseAddrPort("[2001:db8:1234:5678:11:2233:4455:6677]:32853")
	if err != nil || got != want {
		t.Fatalf("got %v, %v; want %v", got, err, want)
	}
}

// TestBindingSuccessRoundTrip: what the tests' server encodes, the client
// decodes, for both families.
func TestBindingSuccessRoundTrip(t *testing.T) {
	for _, s := range []string{"203.0.113.1:1024", "10.0.0.2:65535", "[2001:db8::1]:3478"} {
		id := newTxID()
		want := netip.MustParseAddrPort(s)
		got, err := parseBindingResponse(bindingSuccess(id, want), id)
		if err != nil || got != want {
			t.Errorf("%s: got %v, %v", s, got, err)
		}
	}
}

func TestBindingRequest(t *testing.T) {
	id := newTxID()
	b := bindingRequest(id)
	if len(b) != 20 || binary.BigEndian.Uint16(b) != stunBindingReq || binary.BigEndian.Uint16(b[2:]) != 0 ||
		!isSTUN(b) || txID(b[8:]) != id {
		t.Fatalf("bad Binding request % x", b)
	}
}

func TestParseRejects(t *testing.T) {
	id := rfc5769Tx()
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, rfc5769IPv4...)) }
	cases := []struct {
		name string
		msg  []byte
		id   txID
		want error
	}{
		{"short", rfc5769IPv4[:19], id, errNotSTUN},
		{"no cookie", mod(func(b []byte) []byte { b[4] = 0; return b }), id, errNotSTUN},
		{"other transaction", rfc5769IPv4, newTxID(), errOtherTx},
		{"error response", mod(func(b []byte) []byte { b[1] = 0x11; return b }), id, errErrorReply},
		{"a request", mod(func(b []byte) []byte { b[1] = 0x01; b[0] = 0; return b }), id, errNotBinding},
		{"length past the datagram", rfc5769IPv4[:60], id, errBadAttrsLen},
		{"length not a multiple of 4", mod(func(b []byte) []byte { b[3] = 0x3b; return b }), id, errBadAttrsLen},
		{"attribute past the message", mod(func(b []byte) []byte { b[22] = 0x40; return b }), id, errBadAttr},
		{"bad family", mod(func(b []byte) []byte { b[41] = 3; return b }), id, errBadFamily},
		{"no address", mod(func(b []byte) []byte { b[37] = 0x30; return b }), id, errNoMapped},
	}
	for _, c := range cases {
		if _, err := parseBindingResponse(c.msg, c.id); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

// TestParseTruncations: every prefix and every one-byte corruption of the
// sample is either parsed or refused, never a panic.
func TestParseTruncations(t *testing.T) {
	id := rfc5769Tx()
	for n := 0; n <= len(rfc5769IPv4); n++ {
		_, _ = parseBindingResponse(rfc5769IPv4[:n], id)
	}
	for i := range rfc5769IPv4 {
		for _, v := range []byte{0, 0xff, 0x7f} {
			b := append([]byte{}, rfc5769IPv4...)
			b[i] = v
			_, _ = parseBindingResponse(b, id)
		}
	}
}

// stunServer answers Binding requests on loopback with mapping(source) as
// the mapped address: a NAT's view that the test chooses.
func stunServer(t *testing.T, mapping func(netip.AddrPort) netip.AddrPort) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n < 20 || !isSTUN(buf[:n]) || binary.BigEndian.Uint16(buf) != stunBindingReq {
				continue
			}
			_, _ = c.WriteToUDPAddrPort(bindingSuccess(txID(buf[8:20]), mapping(from)), from)
		}
	}()
	return localOf(c)
}

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

// fast is the tests' pacing: three datagrams per direction.
var fast = Timing{STUN: time.Second, Count: 3, Interval: 20 * time.Millisecond, Wait: 200 * time.Millisecond}

// natBehaviour is what fakeNAT does with what reaches a mapping.
type natBehaviour int

const (
	filterAPD    natBehaviour = iota // address-and-port-dependent: only from endpoints the mapping sent to
	filterEI                         // endpoint-independent: from anyone
	noHairpin                        // drops every hairpinned datagram
	onlyToFirst                      // hairpins only toward the first host that asked the STUN server (A)
	strayToFirst                     // hairpins toward A from a port that is not B's mapping
)

// fakeNAT is a hairpinning NAT on loopback as the probe sees it: the STUN
// server hands each host a mapping, a socket of the NAT (made at the
// host's first request). A datagram that host S sends to host R's mapping
// arrives at that socket; it opens S's mapping toward R's mapping, and is
// delivered to R, from S's mapping, when R's mapping's filter admits S's
// mapping.
type fakeNAT struct {
	t         *testing.T
	behaviour natBehaviour
	mu        sync.Mutex
	mappingOf map[netip.AddrPort]*net.UDPConn   // host's local address -> its mapping
	ownerOf   map[netip.AddrPort]netip.AddrPort // mapping -> host's local address
	sentTo    map[[2]netip.AddrPort]bool        // {mapping, remote}: the mapping sent to remote
	first     netip.AddrPort                    // the first host's local address
	stray     *net.UDPConn                      // strayToFirst's source
	delivered int
}

func newFakeNAT(t *testing.T, f natBehaviour) (*fakeNAT, netip.AddrPort) {
	n := &fakeNAT{t: t, behaviour: f, mappingOf: map[netip.AddrPort]*net.UDPConn{},
		ownerOf: map[netip.AddrPort]netip.AddrPort{}, sentTo: map[[2]netip.AddrPort]bool{}}
	stray, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stray.Close() })
	n.stray = stray
	return n, stunServer(t, n.mapping)
}

// mapping is the STUN server's view: host's mapping, made at its first
// request.
func (n *fakeNAT) mapping(host netip.AddrPort) netip.AddrPort {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c, ok := n.mappingOf[host]; ok {
		return localOf(c)
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		n.t.Error(err)
		return netip.AddrPort{}
	}
	n.t.Cleanup(func() { c.Close() })
	n.mappingOf[host], n.ownerOf[localOf(c)] = c, host
	if !n.first.IsValid() {
		n.first = host
	}
	go n.serve(c)
	return localOf(c)
}

// serve hairpins what reaches mapping c.
func (n *fakeNAT) serve(c *net.UDPConn) {
	buf := make([]byte, 1500)
	for {
		k, sender, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		n.mu.Lock()
		senderMapping, ok := n.mappingOf[sender]
		if !ok {
			n.mu.Unlock()
			continue
		}
		from, to := localOf(senderMapping), localOf(c)
		n.sentTo[[2]netip.AddrPort{from, to}] = true
		owner := n.ownerOf[to]
		admit := n.behaviour == filterEI || n.behaviour == filterAPD && n.sentTo[[2]netip.AddrPort{to, from}] ||
			n.behaviour == onlyToFirst && owner == n.first || n.behaviour == strayToFirst
		if n.behaviour == strayToFirst && owner == n.first {
			senderMapping = n.stray
		}
		if admit {
			n.delivered++
		}
		n.mu.Unlock()
		if admit {
			_, _ = senderMapping.WriteToUDPAddrPort(buf[:k], owner)
		}
	}
}

func (n *fakeNAT) deliveredCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.delivered
}

func probe(t *testing.T, srv netip.AddrPort) Result {
	t.Helper()
	r, err := Probe(context.Background(), srv, loopback, loopback, fast)
	if err != nil {
		t.Fatal(err)
	}
	if r.OneWay.Sent != fast.Count || r.AToB.Sent != fast.Count || r.BToA.Sent != fast.Count {
		t.Fatalf("sent %d, %d, %d; want %d each: %+v", r.OneWay.Sent, r.AToB.Sent, r.BToA.Sent, fast.Count, r)
	}
	return r
}

// TestProbeNoNAT: without a NAT every mapping is the host's own address,
// so everything arrives, from the sender's mapping.
func TestProbeNoNAT(t *testing.T) {
	r := probe(t, stunServer(t, func(a netip.AddrPort) netip.AddrPort { return a }))
	if !r.Hairpin || !r.OneWayHairpin || r.AMapped != r.ALocal || r.BToA.SeenFrom != r.BMapped ||
		r.AToB.SeenFrom != r.AMapped || r.OneWay.Received != fast.Count || r.AToB.Received != fast.Count {
		t.Fatalf("%+v", r)
	}
}

// TestProbeDependentFiltering: a NAT that hairpins under address-and-port-
// dependent filtering drops the one-way datagrams and lets the two-way
// exchange through, each from the sender's mapping.
func TestProbeDependentFiltering(t *testing.T) {
	nat, srv := newFakeNAT(t, filterAPD)
	r := probe(t, srv)
	if r.OneWay.Received != 0 || r.OneWayHairpin || r.OneWay.SeenFrom != "" {
		t.Fatalf("one-way got through a dependent filter: %+v", r)
	}
	if !r.Hairpin || r.AToB.SeenFrom != r.AMapped || r.BToA.SeenFrom != r.BMapped || r.AMapped == r.ALocal ||
		r.AToB.Received+r.BToA.Received != nat.deliveredCount() {
		t.Fatalf("two-way: %+v (the NAT delivered %d)", r, nat.deliveredCount())
	}
}

// TestProbeIndependentFiltering: under endpoint-independent filtering the
// one-way datagrams arrive too.
func TestProbeIndependentFiltering(t *testing.T) {
	_, srv := newFakeNAT(t, filterEI)
	r := probe(t, srv)
	if !r.OneWayHairpin || r.OneWay.Received != fast.Count || r.OneWay.SeenFrom != r.BMapped || !r.Hairpin {
		t.Fatalf("%+v", r)
	}
}

// TestProbeNoHairpin: a NAT that drops hairpinned datagrams: nothing
// arrives, no hairpin, no error.
func TestProbeNoHairpin(t *testing.T) {
	_, srv := newFakeNAT(t, noHairpin)
	r := probe(t, srv)
	if r.Hairpin || r.OneWayHairpin || r.OneWay.Received+r.AToB.Received+r.BToA.Received != 0 || r.BToA.SeenFrom != "" {
		t.Fatalf("%+v", r)
	}
}

// TestProbeOneDirection: a NAT that hairpins toward A only: B's datagrams
// arrive, A's do not, and that is no hairpin.
func TestProbeOneDirection(t *testing.T) {
	_, srv := newFakeNAT(t, onlyToFirst)
	r := probe(t, srv)
	if r.Hairpin || !r.OneWayHairpin || r.BToA.SourceKind != "external" || r.AToB.Received != 0 {
		t.Fatalf("%+v", r)
	}
}

// TestProbeStraySource: both directions arrive, but A sees B's datagrams
// from a port that is not B's mapping: no hairpin.
func TestProbeStraySource(t *testing.T) {
	_, srv := newFakeNAT(t, strayToFirst)
	r := probe(t, srv)
	if r.Hairpin || r.OneWayHairpin || r.BToA.SourceKind != "other" || r.AToB.SourceKind != "external" {
		t.Fatalf("%+v", r)
	}
}

// TestProbeInternalSource: B's datagrams reach A from B's local address,
// not from the mapping the server reported (a NAT hairpinning without
// translating the source): not a hairpin in REQ-9's sense.
func TestProbeInternalSource(t *testing.T) {
	dead, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := localOf(dead)
	dead.Close()
	var mu sync.Mutex
	var aPort uint16
	srv := stunServer(t, func(a netip.AddrPort) netip.AddrPort {
		mu.Lock()
		defer mu.Unlock()
		if aPort == 0 || a.Port() == aPort { // the first request is A's
			aPort = a.Port()
			return a
		}
		return deadAddr // B "mapped" where nothing listens
	})
	r := probe(t, srv)
	if r.Hairpin || r.OneWayHairpin || r.OneWay.SourceKind != "internal" || r.BToA.SeenFrom != r.BLocal ||
		r.AToB.Received != 0 {
		t.Fatalf("%+v", r)
	}
	if got := sourceKind(netip.MustParseAddrPort("203.0.113.1:2000"), netip.MustParseAddrPort("10.0.0.3:5000"),
		netip.MustParseAddrPort("203.0.113.1:1999")); got != "other" {
		t.Fatalf("sourceKind: %s, want other", got)
	}
}

// TestMappingNoAnswer: a server that never answers is an error, not a
// mapping, and Mapping gives up after its timeout.
func TestMappingNoAnswer(t *testing.T) {
	mute, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = Mapping(context.Background(), c, localOf(mute), 300*time.Millisecond)
	if !errors.Is(err, errNoAnswer) {
		t.Fatalf("err %v, want no answer", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("gave up after %v", d)
	}
	if _, err := Probe(context.Background(), localOf(mute), loopback, loopback, Timing{STUN: 200 * time.Millisecond, Count: 1}); !errors.Is(err, errNoAnswer) {
		t.Fatalf("Probe: err %v, want no answer", err)
	}
}

func TestParseLocal(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.2": "10.0.0.2:0", "10.0.0.3:4000": "10.0.0.3:4000", "::1": "[::1]:0", "[::1]:5": "[::1]:5"} {
		got, err := parseLocal(in)
		if err != nil || got.String() != want {
			t.Errorf("%s: %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := parseLocal("host"); err == nil {
		t.Error("parseLocal(host): no error")
	}
}
