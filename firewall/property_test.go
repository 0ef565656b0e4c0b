package firewall

import (
	"testing"
)

// checkAgainstRef compares Match with the linear reference on n probes.
func checkAgainstRef(t *testing.T, g *gen, rs *RuleSet, c *Compiled, n int) {
	t.Helper()
	bad := 0
	for range n {
		p := g.probe()
		got := c.Match(p.zone, &p.k, p.typ)
		want := refMatch(rs, p.zone, &p.k, p.typ)
		if got != want {
			t.Errorf("%d rules: zone %v %v icmp type %d: Match = %+v, reference %+v", len(rs.Rules), p.zone, p.k, p.typ, got, want)
			if bad++; bad == 5 {
				t.FailNow()
			}
		}
	}
}

// TestMatchEqualsLinearScan: for random rule sets of up to 300 rules and
// 20,000 random keys each, Match returns what a linear first-match scan
// returns. The keys are drawn near the rules' prefixes and port-range edges,
// so most of them meet several partial matches.
func TestMatchEqualsLinearScan(t *testing.T) {
	sizes := []int{0, 1, 2, 5, 17, 63, 64, 65, 128, 300}
	keys := 20000
	if testing.Short() {
		keys = 4000
	}
	hits := 0
	for i, n := range sizes {
		g := &gen{r: newRand(uint64(100 + i))}
		rs := g.ruleSet(n)
		c := mustCompile(t, rs)
		checkAgainstRef(t, g, &rs, c, keys)
		for range 200 {
			p := g.probe()
			if c.Match(p.zone, &p.k, p.typ).Rule >= 0 {
				hits++
			}
		}
	}
	if hits < 500 {
		t.Errorf("only %d of %d probes matched a rule: the generator is too sparse to test much", hits, 200*len(sizes))
	}
}

// Rule sets whose sizes straddle the aggregate-word boundaries (4,096 rules
// = 64 bitmap words = one aggregate word).
func TestMatchEqualsLinearScanLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	sizes := []int{4096, 4097}
	keys := 3000
	if raceEnabled {
		sizes, keys = []int{4097}, 500
	}
	for i, n := range sizes {
		g := &gen{r: newRand(uint64(900 + i))}
		rs := g.ruleSet(n)
		// Most random rules match little: make the last ones broad so that
		// first matches land in the second aggregate word too.
		for j := n - 20; j < n; j++ {
			rs.Rules[j].Src, rs.Rules[j].Dst = nil, nil
		}
		c := mustCompile(t, rs)
		checkAgainstRef(t, g, &rs, c, keys)
	}
}
