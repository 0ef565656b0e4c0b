package conntrack

import (
	"net/netip"
	"testing"

	"github.com/edgegw/edge/header"
)

// BenchmarkDestGet measures counting one event for a destination: the
// cost each flow's opening and each signal adds.
func BenchmarkDestGet(b *testing.B) {
	var t destTable
	t.init(DefaultDestinations, 12345)
	keys := make([]DestKey, 64)
	for i := range keys {
		keys[i] = DestKey{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).As16(), Port: 80, Proto: header.ProtoTCP}
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		t.get(&keys[i&63]).ctr[DestFlows]++
	}
}
