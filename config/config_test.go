package config

import (
	"strings"
	"testing"

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
	if len(c.Rules.Rules) != 3 || c.Rules.Rules[0].Action != firewall.Reject || c.Rules.Default != firewall.Drop {
		t.Fatalf("rules %+v", c.Rules)
	}
	if c, err := Parse([]byte(good + "routes_from_kernel: true\nroutes_from_kernel_max: 1000000\n")); err != nil || !c.KernelRoutes || c.MaxKernelRoutes != 1000000 {
		t.Fatalf("routes_from_kernel_max: %v %+v", err, c)
	}
	if !c.Conntrack.Policy.Liberal || len(c.Conntrack.Policy.Profiles) != 3 {
		t.Fatalf("conntrack %+v", c.Conntrack)
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
		{good + "xdp: {frames: 256}\n", "xdp.frames"},                                  // against the default ring of 2048
		{strings.Replace(good, "mtu: 1400", "mtu: 2000", 1), "interfaces.outside.mtu"}, // > what a frame holds
		{"interfaces: {inside: {name: a}, outside: {name: b}}\nsnat: {mode: automap, ports: \"2000-1000\"}\n", "snat"},
		{good + "bogus: 1\n", "field bogus not found"},
		{strings.Replace(good, "10.0.0.0/24, interface: inside", "10.0.0.0/33, interface: inside", 1), "routes[0].dst"},
		{strings.Replace(good, "interface: outside}", "interface: sideways}", 1), "routes[1].interface"},
		{strings.Replace(good, "via: 203.0.113.254", "via: nowhere", 1), "routes[1].via"},
		{strings.Replace(good, "[192.0.2.10]", "[192.0.2.300]", 1), "management[0]"},
		{strings.Replace(good, "udp_multiple: 30s", "udp_multiple: soon", 1), "profiles[0].udp_multiple"},
		{strings.Replace(good, "udp_multiple: 30s", "udp_multiple: 0s", 1), "profiles[0]"},
		{strings.Replace(good, "name: short-udp", "name: default", 1), "profiles[0].name"},
		{strings.Replace(good, `"2000-3000"`, `"3000-x"`, 1), "snat.ports"},
		{strings.Replace(good, "mode: pools", "mode: magic", 1), "snat.mode"},
		{strings.Replace(good, `"198.51.100.20"`, `"198.51.100.x"`, 1), "snat.pool[1]"},
		{strings.Replace(good, "zone: inside, proto: tcp", "zone: upstairs, proto: tcp", 1), "rules[0].zone"},
		{strings.Replace(good, "action: reject", "action: maybe", 1), "rules[0].action"},
		{strings.Replace(good, "proto: udp", "proto: carrier-pigeon", 1), "rules[1].proto"},
		{strings.Replace(good, "[192.0.2.53]", "[192.0.2.530]", 1), "rules[1].dst[0]"},
		{strings.Replace(good, `dst_ports: ["53"]`, `dst_ports: ["99999"]`, 1), "rules[1].dst_ports[0]"},
		{strings.Replace(good, "profile: short-udp", "profile: nope", 1), "rules[1].profile"},
		{strings.Replace(good, "default_action: drop", "default_action: shrug", 1), "default_action"},
		{good + "routes_from_kernel_max: -1\n", "routes_from_kernel_max"},
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
		if err == nil || err.Error() != "config: only one YAML document is allowed" {
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
