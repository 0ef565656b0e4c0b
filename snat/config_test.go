package snat

import (
	"net/netip"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
)

func TestConfigValidate(t *testing.T) {
	a := netip.MustParseAddr
	pool := func(addrs ...string) Pool {
		p := Pool{}
		for _, s := range addrs {
			p.Addrs = append(p.Addrs, a(s))
		}
		return p
	}
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Automap: natIP}, ""},
		{Config{Automap: natIP6, Ports: PortRange{1, 1}, Quarantine: time.Second}, ""},
		{Config{Mode: Pools, Pools: []Pool{{Name: "a", Ranges: []AddrRange{{a("10.0.0.0"), a("10.0.15.255")}}}}}, ""},
		{Config{}, "snat: automap: no address"},
		{Config{Automap: natIP, Automap6: natIP6}, ""},
		{Config{Automap: natIP6, Automap6: natIP6}, "snat: automap6: must be IPv6, beside an IPv4 automap address"},
		{Config{Automap: natIP, Automap6: natIP}, "snat: automap6: must be IPv6, beside an IPv4 automap address"},
		{Config{Mode: Pools, Automap6: natIP6, Pools: []Pool{pool("1.2.3.4")}}, "snat: automap: set in pools mode"},
		{Config{Mode: 7}, "snat: mode: unknown mode 7"},
		{Config{Automap: natIP, NoAddress: NoAddressForward}, ""},
		{Config{Automap: natIP, NoAddress: 2}, "snat: no_address: unknown choice 2"},
		{Config{Automap: a("::ffff:1.2.3.4")}, "snat: automap: ::ffff:1.2.3.4 is IPv4-mapped: write it as IPv4"},
		{Config{Automap: a("224.0.0.1")}, "snat: automap: 224.0.0.1 is not a unicast address"},
		{Config{Automap: a("fe80::1%eth0")}, "snat: automap: fe80::1%eth0 has a zone"},
		{Config{Automap: natIP, Pools: []Pool{pool("1.2.3.4")}}, "snat: pools: set in automap mode"},
		{Config{Mode: Pools}, "snat: pools: no pool"},
		{Config{Mode: Pools, Automap: natIP, Pools: []Pool{pool("1.2.3.4")}}, "snat: automap: set in pools mode"},
		{Config{Automap: natIP, Ports: PortRange{0, 5}}, "snat: ports: start must be at least 1"},
		{Config{Automap: natIP, Ports: PortRange{6, 5}}, "snat: ports: start after end"},
		{Config{Automap: natIP, Quarantine: -time.Second}, "snat: quarantine: negative"},
		{Config{Automap: natIP, Quarantine: time.Duration(conntrack.MaxTimeout) + 1}, "snat: quarantine: longer than 480h0m0s"},
		{Config{Automap: natIP, QuarantinePorts: -1}, "snat: quarantine_ports: negative"},
		{Config{Automap: natIP, Destinations: MaxDestinations + 1}, "snat: destinations: more than 4194304"},
		{Config{Mode: Pools, Pools: []Pool{pool("1.2.3.4"), pool("1.2.3.5")}}, `snat: pools[1].name: duplicate name ""`},
		{Config{Mode: Pools, Pools: []Pool{{Name: "x"}}}, "snat: pools[0]: no address"},
		{Config{Mode: Pools, Pools: []Pool{{Name: "x"}, {Name: "y", Addrs: []netip.Addr{{}}}}}, "snat: pools[0]: no address"},
		{Config{Mode: Pools, Pools: []Pool{pool("1.2.3.4"), {Name: "y", Addrs: []netip.Addr{{}}}}}, "snat: pools[1].addrs[0]: no address"},
		{Config{Mode: Pools, Pools: []Pool{pool("1.2.3.4", "1.2.3.4")}}, "snat: pools[0].addrs[1]: address 1.2.3.4 appears twice"},
		{Config{Mode: Pools, Pools: []Pool{pool("1.2.3.4"), {Name: "b", Ranges: []AddrRange{{a("10.0.0.1"), a("10.0.0.3")}, {a("10.0.0.9"), a("10.0.0.8")}}}}},
			"snat: pools[1].ranges[1]: start after end"},
		{Config{Mode: Pools, Pools: []Pool{{Ranges: []AddrRange{{a("10.0.0.1"), a("2001:db8::1")}}}}}, "snat: pools[0].ranges[0]: start and end of different families"},
		{Config{Mode: Pools, Pools: []Pool{{Ranges: []AddrRange{{Start: a("10.0.0.1")}}}}}, "snat: pools[0].ranges[0].end: no address"},
		{Config{Mode: Pools, Pools: []Pool{{Ranges: []AddrRange{{a("10.0.0.1"), a("10.0.0.2")}, {a("10.0.0.2"), a("10.0.0.3")}}}}},
			"snat: pools[0].ranges[1]: address 10.0.0.2 appears twice"},
		{Config{Mode: Pools, Pools: []Pool{{Ranges: []AddrRange{{a("2001:db8::"), a("2001:db8::ffff:ffff")}}}}},
			"snat: pools[0].ranges[0]: more than 4096 addresses in all pools"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%+v:\n got %q\nwant %q", c.cfg, got, c.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	r, err := (&Config{Automap: natIP}).resolve()
	if err != nil {
		t.Fatal(err)
	}
	c := r.cfg
	if c.Ports != (PortRange{1024, 65535}) || c.Quarantine != 120*time.Second || r.quarantine != 120*conntrack.Second ||
		c.QuarantinePorts != DefaultQuarantinePorts || c.Destinations != DefaultDestinations ||
		c.EventRingSize != DefaultEventRingSize || c.KeepEchoID {
		t.Fatalf("defaults %+v", c)
	}
	if Automap.String() != "automap" || Pools.String() != "pools" {
		t.Fatal("mode names")
	}
	for c := Counter(0); c < NumCounters; c++ {
		if c.String() == "unknown" || c.String() == "" {
			t.Fatalf("counter %d has no name", c)
		}
	}
}
