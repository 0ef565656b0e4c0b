package conntrack

import (
	"net/netip"
	"testing"
)

func TestKeyReverseAndEndpointHash(t *testing.T) {
	k := MakeKey(6, netip.MustParseAddrPort("10.0.0.1:1234"), netip.MustParseAddrPort("192.0.2.1:80"))
	if k.Reverse().Reverse() != k {
		t.Fatal("Reverse is not an involution")
	}
	r := k.Reverse()
	if endpointHash(&k.Src, k.SrcPort, k.Proto, k.Zone, 7) != endpointHash(&r.Dst, r.DstPort, r.Proto, r.Zone, 7) {
		t.Fatal("endpointHash differs between directions")
	}
	if endpointHash(&k.Src, k.SrcPort, k.Proto, k.Zone, 7) == endpointHash(&k.Src, k.SrcPort+1, k.Proto, k.Zone, 7) {
		t.Fatal("endpointHash ignores the port")
	}
	if !k.IsIPv4() || k.String() != "tcp 10.0.0.1:1234 -> 192.0.2.1:80" {
		t.Fatalf("%v %v", k.IsIPv4(), k)
	}
	var a, b Key = k, k
	b.Zone = 1
	if !a.equal(&k) || a.equal(&b) {
		t.Fatal("equal")
	}
}
