package config

import (
	"strings"
	"testing"
)

// The router checks' settings: source_route (drop by default).
func TestParseSourceRoute(t *testing.T) {
	for _, c := range []struct {
		line    string
		forward bool
		err     string
	}{
		{"", false, ""},
		{"source_route: drop\n", false, ""},
		{"source_route: forward\n", true, ""},
		{"source_route: accept\n", false, "source_route: must be drop or forward"},
	} {
		cfg, err := Parse([]byte(good + c.line))
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want %q", c.line, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.line, err)
		case c.err == "" && cfg.ForwardSourceRouted != c.forward:
			t.Errorf("%q: ForwardSourceRouted = %v", c.line, cfg.ForwardSourceRouted)
		}
	}
}
