package config

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/dataplane"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/snat"
)

const good = `
interfaces:
  inside: {name: in}
  outside: {name: out, mtu: 1400}
queues: 1
management: [192.0.2.10]
routes:
  - {dst: 10.0.0.0/24, interface: inside}
  - {dst: 0.0.0.0/0, via: 203.0.113.254, interface: outside}
conntrack: {max_flows: 65536, liberal: true}
profiles:
  - {name: short-udp, udp_multiple: 30s}
snat: {mode: pools, pool: ["198.51.100.10-198.51.100.12", "198.51.100.20"], ports: "2000-3000", quarantine: 60s}
rules:
  - {name: no-telnet, zone: inside, proto: tcp, dst_ports: ["23"], action: reject}
  - {name: dns, zone: inside, proto: udp, dst: [192.0.2.53], dst_ports: ["53"], action: allow, profile: short-udp}
  - {name: outbound, zone: inside, action: allow, log: true}
default_action: drop
`

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Outside.MTU != 1400 || len(c.Routes) != 2 || !c.Routes[1].Via.IsValid() || len(c.Management) != 1 {
		t.Fatalf("%+v", c)
	}
	if c.SNAT == nil || c.SNAT.Mode != snat.Pools || c.SNAT.Ports != (snat.PortRange{Start: 2000, End: 3000}) ||
		len(c.SNAT.Pools[0].Ranges) != 1 || len(c.SNAT.Pools[0].Addrs) != 1 {
		t.Fatalf("snat %+v", c.SNAT)
	}
	if c.SNAT.Mapping != snat.MappingDefault || c.SNAT.Filtering != snat.FilteringDefault {
		t.Fatalf("snat behaviour %v %v, want the defaults", c.SNAT.Mapping, c.SNAT.Filtering)
	}
	eimCfg := strings.Replace(good, "quarantine: 60s", "mapping: endpoint-dependent, filtering: address-dependent, mapping_timeout: 5m", 1)
	if c, err := Parse([]byte(eimCfg)); err != nil || c.SNAT.Mapping != snat.EndpointDependent || c.SNAT.Filtering != snat.AddressDependent ||
		c.SNAT.MappingTimeout != 5*time.Minute {
		t.Fatalf("snat behaviour: %v %+v", err, c)
	}
	if c.SNAT.NoAddress != snat.NoAddressDrop {
		t.Fatalf("snat no_address %v, want drop by default", c.SNAT.NoAddress)
	}
	for _, na := range []struct {
		yaml string
		want snat.NoAddress
	}{{"no_address: drop", snat.NoAddressDrop}, {"no_address: forward", snat.NoAddressForward}} {
		if c, err := Parse([]byte(strings.Replace(good, "quarantine: 60s", na.yaml, 1))); err != nil || c.SNAT.NoAddress != na.want {
			t.Fatalf("snat %s: %v %+v", na.yaml, err, c)
		}
	}
	if len(c.Rules.Rules) != 3 || c.Rules.Rules[0].Action != firewall.Reject || c.Rules.Default != firewall.Drop {
		t.Fatalf("rules %+v", c.Rules)
	}
	if c, err := Parse([]byte(good + "routes_from_kernel: true\nroutes_from_kernel_max: 1000000\n")); err != nil || !c.KernelRoutes || c.MaxKernelRoutes != 1000000 {
		t.Fatalf("routes_from_kernel_max: %v %+v", err, c)
	}
	if c.BusyPoll.On {
		t.Fatalf("busy polling on by default: %+v", c.BusyPoll)
	}
	if c, err := Parse([]byte(good + "xdp: {busy_poll: true, busy_poll_budget: 16, busy_poll_usec: 200}\n")); err != nil ||
		c.BusyPoll != (dataplane.BusyPoll{On: true, Usec: 200, Budget: 16}) {
		t.Fatalf("xdp.busy_poll: %v %+v", err, c.BusyPoll)
	}
	if !c.Conntrack.Policy.Liberal || len(c.Conntrack.Policy.Profiles) != 3 {
		t.Fatalf("conntrack %+v", c.Conntrack)
	}
	if c.Conntrack.Policy.NSXShadow || c.Conntrack.Policy.Profiles[2].IdleExpiry != conntrack.IdleSilent {
		t.Fatalf("nsx_shadow or idle_expiry reset by default: %+v", c.Conntrack.Policy)
	}
	edited := strings.Replace(good, "udp_multiple: 30s}", "udp_multiple: 30s, idle_expiry: reset}", 1) + "nsx_shadow: true\n"
	if c, err := Parse([]byte(edited)); err != nil || !c.Conntrack.Policy.NSXShadow || c.Conntrack.Policy.NSXCompat ||
		c.Conntrack.Policy.Profiles[2].IdleExpiry != conntrack.IdleReset || c.Conntrack.Policy.Profiles[0].IdleExpiry != conntrack.IdleSilent {
		t.Fatalf("nsx_shadow, idle_expiry: %v %+v", err, c.Conntrack.Policy)
	}
}

// Every refusal names the field it is about; nothing is half-applied
// (Parse returns no config on error).
func TestParseErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ edit, want string }{
		{"interfaces:\n  inside: {name: in}\n  outside: {}\n", "interfaces.outside.name"},
		{strings.Replace(good, "outside: {name: out", "outside: {name: in", 1), "interfaces.outside.name: \"in\" is the inside interface too"},
		{strings.Replace(good, "mtu: 1400", "mtu: -1", 1), "interfaces.outside.mtu"},
		{good + "xdp: {ring: 1000}\n", "xdp.ring"},
		{good + "xdp: {ring: 1024, frames: 1024}\n", "xdp.frames"},
		{good + "xdp: {frames: 256}\n", "xdp.frames"}, // against the default ring of 2048
		{good + "xdp: {busy_poll: true, busy_poll_budget: 2000}\n", "xdp.busy_poll_budget"},
		{good + "xdp: {busy_poll: true, busy_poll_usec: -1}\n", "xdp.busy_poll_usec"},
		{good + "xdp: {busy_poll_budget: 16}\n", "xdp.busy_poll_budget: is set but busy_poll is not true"},
		{good + "xdp: {busy_poll: false, busy_poll_usec: 50}\n", "xdp.busy_poll_usec: is set but busy_poll is not true"},
		{good + "xdp: {busy_poll: yes please}\n", "xdp.busy_poll"},
		{strings.Replace(good, "mtu: 1400", "mtu: 2000", 1), "interfaces.outside.mtu"}, // > what a frame holds
		{"interfaces: {inside: {name: a}, outside: {name: b}}\nsnat: {mode: automap, ports: \"2000-1000\"}\n", "snat"},
		{good + "bogus: 1\n", "config:19: bogus: unknown field"},
		{strings.Replace(good, "10.0.0.0/24, interface: inside", "10.0.0.0/33, interface: inside", 1), "routes[0].dst"},
		{strings.Replace(good, "interface: outside}", "interface: sideways}", 1), "routes[1].interface"},
		{strings.Replace(good, "via: 203.0.113.254", "via: nowhere", 1), "routes[1].via"},
		{strings.Replace(good, "[192.0.2.10]", "[192.0.2.300]", 1), "management[0]"},
		{strings.Replace(good, "udp_multiple: 30s", "udp_multiple: soon", 1), "profiles[0].udp_multiple"},
		{strings.Replace(good, "udp_multiple: 30s", "udp_multiple: 0s", 1), "profiles[0]"},
		{strings.Replace(good, "name: short-udp", "name: default", 1), "profiles[0].name"},
		{strings.Replace(good, `"2000-3000"`, `"3000-x"`, 1), "snat.ports"},
		{strings.Replace(good, "mode: pools", "mode: magic", 1), "snat.mode"},
		{strings.Replace(good, "quarantine: 60s", "mapping: symmetric", 1), "snat.mapping"},
		{strings.Replace(good, "quarantine: 60s", "filtering: open", 1), "snat.filtering"},
		{strings.Replace(good, "quarantine: 60s", "mapping_timeout: long", 1), "snat.mapping_timeout"},
		{strings.Replace(good, "quarantine: 60s", "no_address: translate", 1), "snat.no_address: \"translate\": must be drop or forward"},
		{strings.Replace(good, `"198.51.100.20"`, `"198.51.100.x"`, 1), "snat.pool[1]"},
		{strings.Replace(good, "zone: inside, proto: tcp", "zone: upstairs, proto: tcp", 1), "rules[0].zone"},
		{strings.Replace(good, "action: reject", "action: maybe", 1), "rules[0].action"},
		{strings.Replace(good, "proto: udp", "proto: carrier-pigeon", 1), "rules[1].proto"},
		{strings.Replace(good, "[192.0.2.53]", "[192.0.2.530]", 1), "rules[1].dst[0]"},
		{strings.Replace(good, `dst_ports: ["53"]`, `dst_ports: ["99999"]`, 1), "rules[1].dst_ports[0]"},
		{strings.Replace(good, "profile: short-udp", "profile: nope", 1), "rules[1].profile"},
		{strings.Replace(good, "default_action: drop", "default_action: shrug", 1), "default_action"},
		{good + "routes_from_kernel_max: -1\n", "routes_from_kernel_max"},
		{strings.Replace(good, "udp_multiple: 30s", "udp_multiple: 30s, idle_expiry: rst", 1), "profiles[0].idle_expiry"},
		{good + "nsx_shadow: maybe\n", "nsx_shadow"},
	} {
		c, err := Parse([]byte(tc.edit))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error naming %q, got %v", tc.want, err)
		}
		if err != nil && (c.Inside.Name != "" || c.SNAT != nil || len(c.Rules.Rules) != 0) {
			t.Errorf("%s: a refused config came back partly filled: %+v", tc.want, c)
		}
	}
}

// A stream of several YAML documents is refused whole: the ones after the
// first would otherwise be ignored without a word.
func TestParseOneDocument(t *testing.T) {
	for _, doc := range []string{
		good + "---\nrules: [{action: nonsense}]\n",
		"interfaces: {inside: {name: in}, outside: {name: out}}\n---\nrules: [{action: nonsense}]\n",
		good + "---\n" + good,
		good + "---\n",
		good + "...\n---\ndefault_action: allow\n",
	} {
		c, err := Parse([]byte(doc))
		if err == nil || !strings.HasSuffix(err.Error(), ": only one YAML document is allowed") {
			t.Errorf("%q: want the one-document error, got %v", doc, err)
		}
		if c.Inside.Name != "" || len(c.Rules.Rules) != 0 {
			t.Errorf("refused stream came back partly filled: %+v", c)
		}
	}
	// One document, with the optional markers, is fine.
	for _, doc := range []string{"---\n" + good, good + "...\n", "---\n" + good + "...\n", good + "# comment\n"} {
		if _, err := Parse([]byte(doc)); err != nil {
			t.Errorf("%q: %v", doc, err)
		}
	}
}

// Every error names the file, the line and the field, in the schema's words
// (no Go type), with the line an editor shows.
func TestParseErrorMessages(t *testing.T) {
	block := `interfaces:
  inside:
    name: in
  outside:
    name: out
snat:
  ports: "2000-1000"
rules:
  - name: web
    protocol: tcp
    action: allow
`
	small := "interfaces: {inside: {name: a}, outside: {name: b}}\n"
	for _, tc := range []struct{ doc, want string }{
		{"", "edge.yaml: empty document (interfaces.inside and interfaces.outside are required)"},
		{"# nothing yet\n", "edge.yaml: empty document (interfaces.inside and interfaces.outside are required)"},
		{"---\n", "edge.yaml: empty document (interfaces.inside and interfaces.outside are required)"},
		{block, "edge.yaml:10: rules[0].protocol: unknown field"},
		{strings.Replace(block, "protocol", "proto", 1), "edge.yaml:7: snat.ports: start after end"},
		{strings.Replace(good, "queues: 1", "queues: many", 1), "edge.yaml:5: queues: want a whole number"},
		{good + "queues: 2\n", "edge.yaml:19: queues: given twice"},
		{strings.Replace(good, "log: true", "log: maybe", 1), "edge.yaml:17: rules[2].log: want true or false"},
		{strings.Replace(good, "[192.0.2.53]", "[192.0.2.530]", 1), `edge.yaml:16: rules[1].dst[0]: "192.0.2.530" is not a valid prefix`},
		{good + "rules: x\n", "edge.yaml:19: rules: given twice"},
		{small + "rules: [{action: allow, icmp_types: [300]}]\n", "edge.yaml:2: rules[0].icmp_types[0]: 300 is out of range"},
		{small + "rules: {a: 1}\n", "edge.yaml:2: rules: want a list"},
		{small + "routes:\n  - dst: 10.0.0.0/8\n    interface: upstairs\n", "edge.yaml:4: routes[0].interface: must be inside or outside"},
		{small + "conntrack:\n  max_flows: [1]\n", "edge.yaml:3: conntrack.max_flows: want a whole number"},
		{"- a\n- b\n", "edge.yaml:1: want a mapping of fields (name: value)"},
		{small + "---\nrules: []\n", "edge.yaml:2: only one YAML document is allowed"},
		{"interfaces:\n  inside: {name: a}\n   outside: {name: b}\n", "edge.yaml:2: did not find expected key (in the block or list that starts on this line)"},
		{small + "rules:\n  - {name: x, action: allow\n  - {name: y}\n", "edge.yaml:3: did not find expected ',' or '}' (in the block or list that starts on this line)"},
		{small + "rules:\n  - name: x\n    action: allow: 3\n", "edge.yaml:4: mapping values are not allowed in this context"},
		{small + "rules:\n\t- name: x\n", "edge.yaml:3: found character that cannot start any token"},
	} {
		_, err := ParseFile("edge.yaml", []byte(tc.doc))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got  %v\n want %s", tc.doc, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "config.") {
			t.Errorf("%q: the error names a Go type: %v", tc.doc, err)
		}
	}
	// Load names the file it read.
	path := filepath.Join(t.TempDir(), "gw.yaml")
	os.WriteFile(path, []byte(block), 0o644)
	if _, err := Load(path); err == nil || err.Error() != path+":10: rules[0].protocol: unknown field" {
		t.Errorf("Load: %v", err)
	}
}

// A document is bounded before it is parsed (a YAML parser holds some 30
// times its size): one over MaxDocument costs nothing to refuse, and a list
// longer than any list may be is refused before it is decoded.
func TestParseBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("interfaces: {inside: {name: in}, outside: {name: out}}\nrules:\n")
	for i := 0; b.Len() <= MaxDocument; i++ {
		fmt.Fprintf(&b, "  - {name: r%d, zone: inside, proto: tcp, dst: [10.%d.%d.0/24], dst_ports: [\"443\"], action: allow}\n", i, i/256%256, i%256)
	}
	huge := []byte(b.String())
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	_, err := ParseFile("big.yaml", huge)
	runtime.ReadMemStats(&m1)
	if err == nil || err.Error() != "big.yaml: more than 4 MiB; a configuration may have no more" {
		t.Fatalf("a %d-byte document: %v", len(huge), err)
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 1<<20 {
		t.Errorf("refusing a %d-byte document allocated %d bytes", len(huge), alloc)
	}

	b.Reset()
	b.WriteString("interfaces: {inside: {name: in}, outside: {name: out}}\nrules:\n")
	for range firewall.MaxRules + 1 {
		b.WriteString("- {action: allow}\n")
	}
	if _, err := ParseFile("many.yaml", []byte(b.String())); err == nil ||
		err.Error() != "many.yaml:3: rules: 65536 entries, more than 65535" {
		t.Fatalf("%d rules: %v", firewall.MaxRules+1, err)
	}
}

// FuzzParse: any document is either refused with an error or accepted;
// never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("interfaces: {inside: {name: a}, outside: {name: b}}\nrules: [{action: allow, src: ['::/0']}]"))
	f.Add([]byte("interfaces: {inside: {name: a}, outside: {name: b}}\n---\nrules: [{action: nonsense}]"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		_, _ = Parse(doc)
	})
}
