package dataplane_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/edgegw/edge/config"
	"github.com/edgegw/edge/dataplane"
)

// FuzzApply feeds configuration documents to Engine.Apply on the
// kernel-free test pipeline: valid documents with one or two lines' values
// replaced by fuzzed ones, parsed by config.Parse. It checks that a
// refused apply and a dry run change nothing (the configuration in force,
// the conntrack policy, the compiled rules, the routes, the SNAT snapshot,
// the interned addresses, the generation); that an accepted one is in
// force, bumps the generation when it changed something, and is a no-op
// when applied again; and that the worker forwards after each apply.
//
// CI smoke: go test -run XXX -fuzz FuzzApply -fuzztime 150000x ./dataplane
func FuzzApply(f *testing.F) {
	bases := []string{
		// 0: the lab's file, shaped to the harness.
		`interfaces: {inside: {name: in}, outside: {name: out}}
conntrack: {max_flows: 1024, history: 64}
routes:
  - {dst: 10.0.0.0/24, interface: inside}
  - {dst: 203.0.113.0/24, interface: outside}
snat: {mode: automap, address: 203.0.113.1, ports: "1024-65535"}
rules:
  - {name: no-telnet, zone: inside, proto: tcp, dst_ports: ["23"], action: reject}
  - {name: outbound, zone: inside, action: allow}
default_action: drop
`,
		// 1: pools, profiles, management, liberal.
		`interfaces:
  inside:
    name: in
  outside:
    name: out
conntrack:
  max_flows: 1024
  history: 64
  liberal: true
  pickup: false
management: [192.0.2.10, "2001:db8::10"]
routes:
  - dst: 10.0.0.0/24
    interface: inside
  - dst: 0.0.0.0/0
    via: 203.0.113.254
    interface: outside
profiles:
  - name: short-udp
    udp_multiple: 30s
    udp_first: 10s
  - name: long-tcp
    established: 24h
snat:
  mode: pools
  pool: ["198.51.100.10-198.51.100.12", "198.51.100.20"]
  ports: "2000-3000"
  quarantine: 60s
rules:
  - name: dns
    zone: inside
    proto: udp
    dst: [203.0.113.2]
    dst_ports: ["53"]
    action: allow
    profile: short-udp
  - name: web
    zone: inside
    proto: tcp
    dst_ports: ["80", "443"]
    action: allow
    profile: long-tcp
    log: true
  - name: ping
    zone: any
    proto: icmp
    icmp_types: [8]
    action: allow
default_action: drop
nsx_compat: false
`,
		// 2: SNAT off, allow by default.
		`interfaces: {inside: {name: in}, outside: {name: out}}
conntrack: {max_flows: 1024, history: 64, pickup: true}
routes: [{dst: 10.0.0.0/24, interface: inside}, {dst: 203.0.113.0/24, interface: outside}, {dst: "2001:db8::/32", interface: outside}]
rules: [{name: in-ssh, zone: outside, proto: tcp, dst_ports: ["22"], action: allow}]
default_action: allow
nsx_compat: true
`,
	}
	f.Add(uint8(0), uint8(0), "", uint8(0), "", false)
	f.Add(uint8(1), uint8(0), "", uint8(0), "", true)
	f.Add(uint8(2), uint8(0), "", uint8(0), "", false)
	f.Add(uint8(0), uint8(5), "{mode: automap, address: 203.0.113.9, ports: \"3000-3001\"}", uint8(9), "allow", false)
	f.Add(uint8(0), uint8(5), "{mode: automap}", uint8(0), "", false)
	f.Add(uint8(0), uint8(5), "{mode: pools, pool: [\"203.0.113.1\"]}", uint8(0), "", true)
	f.Add(uint8(1), uint8(26), "\"2000-2001\"", uint8(25), "[\"198.51.100.30-198.51.100.31\"]", false)
	f.Add(uint8(1), uint8(19), "5s", uint8(35), "long-tcp", true)
	f.Add(uint8(1), uint8(18), "renamed", uint8(0), "", false)
	f.Add(uint8(1), uint8(10), "[192.0.2.10, 192.0.2.10]", uint8(0), "", false)
	f.Add(uint8(1), uint8(10), "[198.51.100.11]", uint8(0), "", false)
	f.Add(uint8(1), uint8(25), "[\"10.1.0.0-10.1.15.255\"]", uint8(8), "true", false)
	f.Add(uint8(2), uint8(1), "{max_flows: 2048}", uint8(0), "", false)
	f.Add(uint8(2), uint8(3), "[{name: x, action: allow, profile: nope}]", uint8(4), "reject", true)
	f.Add(uint8(2), uint8(2), "[{dst: 0.0.0.0/0, interface: outside}]", uint8(5), "false", false)

	// One harness for the whole run (a fuzz target may not register
	// cleanups). Once conntrack's table of interned addresses is full,
	// applies that bring new SNAT addresses are refused: still checked.
	h := dataplane.NewApplyHarness(f)
	var execs int
	f.Fuzz(func(t *testing.T, base, line1 uint8, value1 string, line2 uint8, value2 string, dryRun bool) {
		doc := mutate(bases[int(base)%len(bases)], line1, value1, line2, value2)
		cfg, err := config.Parse([]byte(doc))
		if err != nil {
			return
		}
		execs++
		e := h.Engine()
		before := h.State()
		changed, err := e.Apply(cfg, dryRun)
		after := h.State()
		switch {
		case err != nil:
			if d := after.Diff(before); d != "" {
				t.Fatalf("refused apply (%v) changed the %s\n%s", err, d, doc)
			}
		case dryRun:
			if d := after.Diff(before); d != "" {
				t.Fatalf("dry run changed the %s\n%s", d, doc)
			}
		default:
			if want := before.Gen + uint64(min(len(changed), 1)); after.Gen != want {
				t.Fatalf("generation %d after an apply that changed %v, want %d", after.Gen, changed, want)
			}
			if after.NATOn != (cfg.SNAT != nil) || !slices.Equal(after.Cfg.Routes, cfg.Routes) || after.Cfg.Rules.Default != cfg.Rules.Default {
				t.Fatalf("accepted configuration not in force\n%s", doc)
			}
			if again, err := e.Apply(cfg, true); err != nil || len(again) != 0 {
				t.Fatalf("the configuration in force applied again: %v %v\n%s", again, err, doc)
			}
			if d := h.State().Diff(after); d != "" {
				t.Fatalf("dry run of the configuration in force changed the %s", d)
			}
		}
		h.Forward(uint16(1000 + execs%50000))
	})
}

// mutate replaces the value of lines l1 and l2 of doc (after the first
// ": " or "- ", keeping the key and the indentation) by v1 and v2; an
// empty value leaves the line.
func mutate(doc string, l1 uint8, v1 string, l2 uint8, v2 string) string {
	lines := strings.Split(strings.TrimSuffix(doc, "\n"), "\n")
	for _, m := range []struct {
		l uint8
		v string
	}{{l1, v1}, {l2, v2}} {
		if m.v == "" {
			continue
		}
		i := int(m.l) % len(lines)
		s := lines[i]
		if j := strings.Index(s, ": "); j >= 0 {
			lines[i] = s[:j+2] + m.v
		} else if j := strings.Index(s, "- "); j >= 0 {
			lines[i] = s[:j+2] + m.v
		} else {
			lines[i] = s + " " + m.v
		}
	}
	return strings.Join(lines, "\n") + "\n"
}
