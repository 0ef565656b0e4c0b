package config

import (
	"strings"
	"testing"

	"github.com/edgegw/edge/dataplane"
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

// interfaces.*.urpf: strict, loose or off; unset is the data plane's
// default (strict inside, loose outside).
func TestParseURPF(t *testing.T) {
	for _, c := range []struct {
		inside, outside string
		want            [2]dataplane.URPFMode
		err             string
	}{
		{"", "", [2]dataplane.URPFMode{dataplane.URPFDefault, dataplane.URPFDefault}, ""},
		{"off", "strict", [2]dataplane.URPFMode{dataplane.URPFOff, dataplane.URPFStrict}, ""},
		{"loose", "off", [2]dataplane.URPFMode{dataplane.URPFLoose, dataplane.URPFOff}, ""},
		{"feasible", "", [2]dataplane.URPFMode{}, "interfaces.inside.urpf: must be strict, loose or off"},
		{"", "on", [2]dataplane.URPFMode{}, "interfaces.outside.urpf: must be strict, loose or off"},
	} {
		doc := good
		if c.inside != "" {
			doc = strings.Replace(doc, "inside: {name: in}", "inside: {name: in, urpf: "+c.inside+"}", 1)
		}
		if c.outside != "" {
			doc = strings.Replace(doc, "outside: {name: out,", "outside: {name: out, urpf: "+c.outside+",", 1)
		}
		cfg, err := Parse([]byte(doc))
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s/%s: error %v, want %q", c.inside, c.outside, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%s/%s: %v", c.inside, c.outside, err)
		case c.err == "" && [2]dataplane.URPFMode{cfg.Inside.URPF, cfg.Outside.URPF} != c.want:
			t.Errorf("%s/%s: got %v/%v", c.inside, c.outside, cfg.Inside.URPF, cfg.Outside.URPF)
		}
	}
}
