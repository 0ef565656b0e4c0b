package ctl

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edge/config"
	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/dataplane"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/internal/netnstest"
)

// engineDoc is the configuration the EngineBackend tests start from.
const engineDoc = `
interfaces:
  inside: {name: in}
  outside: {name: out}
routes:
  - {dst: 10.0.0.0/24, interface: inside}
  - {dst: 203.0.113.0/24, interface: outside}
snat: {mode: automap}
rules:
  - {name: outbound, zone: inside, action: allow}
conntrack: {max_flows: 4096}
xdp: {frames: 512, ring: 256}
`

// startBackend runs a real engine between a client and a server namespace
// (client 10.0.0.2 -- in 10.0.0.1 | out 203.0.113.1 -- server 203.0.113.2)
// and serves it through an EngineBackend.
func startBackend(t *testing.T, opts ...EngineOption) (*EngineBackend, *netnstest.NS) {
	netnstest.Require(t)
	client, edge, server := netnstest.New(t, "cli"), netnstest.New(t, "edge"), netnstest.New(t, "srv")
	netnstest.Veth(t, client, "c0", "10.0.0.2/24", edge, "in", "10.0.0.1/24")
	netnstest.Veth(t, edge, "out", "203.0.113.1/24", server, "s0", "203.0.113.2/24")
	client.Run(t, "ip", "route", "add", "default", "via", "10.0.0.1")
	cfg, err := config.Parse([]byte(engineDoc))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logf = t.Logf
	var e *dataplane.Engine
	if err := edge.Do(func() (err error) {
		if e, err = dataplane.New(cfg); err != nil {
			return err
		}
		return e.Run()
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = edge.Do(e.Close) })
	b := NewEngineBackend(e, []byte(engineDoc), "test", t.Logf, opts...)
	t.Cleanup(func() { b.Close() })
	return b, client
}

// TestEngineBackendApply applies configurations to a running engine
// through the Backend: dry run, live change, fixed field, invalid field,
// management addresses in the XDP program, and a denied packet's event.
func TestEngineBackendApply(t *testing.T) {
	saved := filepath.Join(t.TempDir(), "edge.yaml")
	if err := os.WriteFile(saved, []byte(engineDoc), 0o640); err != nil {
		t.Fatal(err)
	}
	b, client := startBackend(t, WithSavePath(saved))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	doc, gen, _ := b.Config(ctx)
	if gen != 1 || string(doc) != engineDoc {
		t.Fatalf("config at start: generation %d", gen)
	}
	denyDNS := strings.Replace(engineDoc, "rules:\n", "rules:\n  - {name: no-dns, zone: inside, proto: udp, dst_ports: [\"53\"], action: drop}\n", 1)
	res, err := b.ApplyConfig(ctx, []byte(denyDNS), true)
	if err != nil || res.Generation != 1 || !slices.Equal(res.Changed, []string{"rules"}) || res.SavedTo != "" {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	if doc, gen, _ := b.Config(ctx); gen != 1 || string(doc) != engineDoc {
		t.Fatal("dry run changed the running document")
	}
	res, err = b.ApplyConfig(ctx, []byte(denyDNS), false)
	if err != nil || res.Generation != 2 || !slices.Equal(res.Changed, []string{"rules"}) || res.SavedTo != saved {
		t.Fatalf("apply: %+v %v", res, err)
	}
	if got, _ := os.ReadFile(saved); string(got) != denyDNS {
		t.Fatalf("saved file:\n%s", got)
	}
	if doc, gen, _ := b.Config(ctx); gen != 2 || string(doc) != denyDNS {
		t.Fatal("the running document is not the applied one")
	}

	_, err = b.ApplyConfig(ctx, []byte(denyDNS+"queues: 2\n"), false)
	if !errors.Is(err, ErrImmutable) || !errors.Is(err, dataplane.ErrRestartRequired) || !strings.HasPrefix(err.Error(), "queues: ") {
		t.Fatalf("queues change: %v", err)
	}
	_, err = b.ApplyConfig(ctx, []byte(strings.Replace(denyDNS, "10.0.0.0/24, interface", "10.0.0.0/33, interface", 1)), false)
	if err == nil || errors.Is(err, ErrImmutable) || !strings.Contains(err.Error(), "routes[0].dst") {
		t.Fatalf("invalid route: %v", err)
	}
	if _, gen, _ := b.Config(ctx); gen != 2 {
		t.Fatal("a refused apply changed the generation")
	}

	// Management addresses go into the XDP program's maps and out again.
	withMgmt := denyDNS + "management: [203.0.113.99]\n"
	if res, err := b.ApplyConfig(ctx, []byte(withMgmt), false); err != nil || !slices.Equal(res.Changed, []string{"management"}) {
		t.Fatalf("management: %+v %v", res, err)
	}
	if res, err := b.ApplyConfig(ctx, []byte(denyDNS), false); err != nil || res.Generation != 4 {
		t.Fatalf("management removed: %+v %v", res, err)
	}

	// A datagram the new rule denies: a worker event with its reason.
	var events []Event
	buf := make([]Event, 64)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !slices.ContainsFunc(events, func(e Event) bool { return e.Reason == drop.FirewallDrop }) {
		_ = client.Do(func() error {
			c, err := net.Dial("udp4", "203.0.113.2:53")
			if err == nil {
				c.Write([]byte("q"))
				c.Close()
			}
			return err
		})
		time.Sleep(50 * time.Millisecond)
		events = append(events, buf[:b.ReadEvents(buf)]...)
	}
	i := slices.IndexFunc(events, func(e Event) bool { return e.Reason == drop.FirewallDrop })
	if i < 0 {
		t.Fatalf("no firewall_drop event; got %+v", events)
	}
	if e := events[i]; e.Kind != EvDropped || e.Zone != 1 || e.Key.DstPort != 53 {
		t.Fatalf("event %+v", e)
	}
	for j := 1; j < len(events); j++ {
		if events[j].Time < events[j-1].Time && j%len(buf) != 0 {
			t.Fatalf("events out of time order within a read: %+v", events)
		}
	}

	st, err := b.Status(ctx)
	if err != nil || len(st.Interfaces) != 2 || st.Interfaces[0].Name != "in" || st.Interfaces[1].Zone != "outside" ||
		len(st.Workers) != 1 || st.Generation != 4 || st.SNAT == nil || st.SNAT.Mode != "automap" ||
		st.SNAT.Pools[0].Addrs[0].String() != "203.0.113.1" || st.Capacity != 4096 {
		t.Fatalf("status: %+v %v", st, err)
	}
	if !slices.Contains(st.Interfaces[1].Addrs, st.SNAT.Pools[0].Addrs[0]) {
		t.Fatalf("outside addresses %v", st.Interfaces[1].Addrs)
	}
	stats, err := b.Stats(ctx, true)
	if err != nil || len(stats.Workers) != 1 || stats.Drops()[drop.FirewallDrop] == 0 || stats.Interfaces[0].RX == 0 ||
		stats.Interfaces[0].XDPRedirected == 0 || len(stats.Warnings) != 0 {
		t.Fatalf("stats: %+v %v", stats, err)
	}
	if err := b.Flows(ctx, conntrack.Filter{}, func(*conntrack.FlowInfo) bool { return true }); err != nil {
		t.Fatal(err)
	}
	// Rule 1 of the first rule set (epoch 0) and of the applied one (epoch
	// 1: the management applies did not change the rules).
	if b.RuleName(1) != "outbound" || b.RuleName(1<<16|1) != "no-dns" || b.RuleName(0) != "default" || b.ProfileName(1) != "nsx-gateway" {
		t.Fatalf("names: %q %q %q %q", b.RuleName(1), b.RuleName(1<<16|1), b.RuleName(0), b.ProfileName(1))
	}
	if time.Since(b.Epoch()) > time.Minute {
		t.Fatalf("epoch %v", b.Epoch())
	}

	// Closed: everything refuses, after the calls in progress.
	b.Close()
	if _, err := b.ApplyConfig(ctx, []byte(denyDNS), false); !errors.Is(err, ErrStopping) {
		t.Fatalf("apply after Close: %v", err)
	}
	if _, err := b.Stats(ctx, false); !errors.Is(err, ErrStopping) {
		t.Fatalf("stats after Close: %v", err)
	}
	if n := b.ReadEvents(buf); n != 0 {
		t.Fatalf("%d events after Close", n)
	}
}
