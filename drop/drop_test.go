package drop

import "testing"

func TestEveryReasonHasNameAndHelp(t *testing.T) {
	seen := map[string]Reason{}
	for r := None; r < NumReasons; r++ {
		if r.String() == "" || r.Help() == "" {
			t.Errorf("reason %d has no name or help", r)
		}
		if prev, dup := seen[r.String()]; dup {
			t.Errorf("reasons %d and %d share the name %q", prev, r, r.String())
		}
		seen[r.String()] = r
		if got, ok := ByName(r.String()); !ok || got != r {
			t.Errorf("ByName(%q) = %v, %v", r.String(), got, ok)
		}
	}
	if NumReasons.String() != "unknown" {
		t.Errorf("out-of-range reason should be unknown")
	}
}
