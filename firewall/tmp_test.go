package firewall

import "testing"

func TestTmpInfo(t *testing.T) {
	for _, n := range []int{10, 1000, 10000} {
		rs, _, _ := benchSet(t, n)
		c := mustCompile(t, rs)
		t.Logf("n=%d mem=%d", n, c.MemoryBytes())
		for z := range numZones {
			for pc := range numProtoClasses {
				cl := &c.classes[z][pc]
				if cl.n == 0 {
					continue
				}
				t.Logf("  z=%v pc=%d n=%d blocks=%d arenaKB=%d dport=%d sport=%d src4=%d dst4=%d src6=%d dst6=%d icmp=%v", z, pc, cl.n,
					len(cl.arena)/(cl.a+(cl.n+63)/64), len(cl.arena)*8/1024, len(cl.dport.starts), len(cl.sport.starts), len(cl.src4.starts), len(cl.dst4.starts), len(cl.src6.starts), len(cl.dst6.starts), cl.icmp != nil)
			}
		}
	}
}
