package main

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
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

// TestProbeHairpin: without a NAT every mapping is the host's own address,
// so B's datagram reaches A, from B's mapping.
func TestProbeHairpin(t *testing.T) {
	srv := stunServer(t, func(a netip.AddrPort) netip.AddrPort { return a })
	r, err := Probe(context.Background(), srv, loopback, loopback, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Hairpin || r.SeenFrom != r.BMapped || r.SourceKind != "external" || r.AMapped != r.ALocal {
		t.Fatalf("%+v", r)
	}
}

// TestProbeNoHairpin: A's reported mapping leads nowhere (a port nothing
// listens on), as when the NAT drops B's datagram: no hairpin, no error.
func TestProbeNoHairpin(t *testing.T) {
	dead, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := localOf(dead)
	dead.Close()
	var aPort uint16
	srv := stunServer(t, func(a netip.AddrPort) netip.AddrPort {
		if aPort == 0 || a.Port() == aPort { // the first request is A's
			aPort = a.Port()
			return deadAddr
		}
		return a
	})
	r, err := Probe(context.Background(), srv, loopback, loopback, 400*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Hairpin || r.SeenFrom != "" || r.AMapped != deadAddr.String() {
		t.Fatalf("%+v", r)
	}
}

// TestProbeOtherSource: B's mapping toward the server is not what A sees
// (an endpoint-dependent mapping for the hairpin destination).
func TestProbeOtherSource(t *testing.T) {
	var aPort uint16
	srv := stunServer(t, func(a netip.AddrPort) netip.AddrPort {
		if aPort == 0 || a.Port() == aPort {
			aPort = a.Port()
			return a
		}
		return netip.AddrPortFrom(a.Addr(), a.Port()^1) // B "mapped" elsewhere
	})
	r, err := Probe(context.Background(), srv, loopback, loopback, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Hairpin || r.SourceKind != "internal" || r.SeenFrom != r.BLocal {
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
	if _, err := Probe(context.Background(), localOf(mute), loopback, loopback, 200*time.Millisecond); !errors.Is(err, errNoAnswer) {
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
