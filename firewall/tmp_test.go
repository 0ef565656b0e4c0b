package firewall

import "testing"

func TestTmpInfo(t *testing.T) {
	for _, n := range []int{10, 1000, 10000} {
		rs := realistic(n, uint64(n))
		c := mustCompile(t, rs)
		t.Logf("n=%d w=%d a=%d arena=%d blocks=%d src4=%d dst4=%d src6=%d dst6=%d sport=%d dport=%d icmp=%v mem=%d",
			n, c.w, c.a, len(c.arena), len(c.arena)/c.b, len(c.src4.starts), len(c.dst4.starts), len(c.src6.starts), len(c.dst6.starts),
			len(c.sport.starts), len(c.dport.starts), c.icmp != nil, c.MemoryBytes())
		if n == 10000 {
			t.Logf("%+v", rs.Rules[1033])
		}
	}
}
