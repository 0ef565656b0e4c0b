package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edge/internal/netnstest"
)

const e2eConfig = `
interfaces: {inside: {name: in}, outside: {name: out}}
routes:
  - {dst: 10.0.0.0/24, interface: inside}
  - {dst: 203.0.113.0/24, interface: outside}
%[1]ssnat: {mode: automap}
conntrack: {max_flows: 4096}
rules:
%[2]s  - {name: outbound, zone: inside, action: allow}
`

// runDaemon writes config to dir/edge.yaml and runs `edge run` in
// namespace ns with its control socket in dir (and extra arguments) until
// the test ends, or until stop (SIGINT, then a clean exit expected) is
// called; it waits until edge forwards and serves its socket. It returns the socket and a
// function that reads edge's log so far.
func runDaemon(t *testing.T, bin, dir string, ns *netnstest.NS, config string, extra ...string) (sock string, logText func() string, stop func()) {
	t.Helper()
	cfg := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	sock = filepath.Join(dir, "edge.sock")
	logf, err := os.Create(filepath.Join(dir, "edge.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	logText = func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	args := append([]string{"netns", "exec", ns.Name, bin, "run", "--config", cfg, "--socket", sock}, extra...)
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("edge run after SIGINT: %v\n%s", err, logText())
		}
	}
	t.Cleanup(stop)
	// The control socket is made after forwarding starts: wait for both.
	if !netnstest.WaitFor(10*time.Second, func() bool {
		l := logText()
		return strings.Contains(l, "forwarding between") && strings.Contains(l, "control plane on")
	}) {
		t.Fatalf("edge did not start:\n%s", logText())
	}
	return sock, logText, stop
}

// e2eFamily is what TestDaemonEndToEnd needs of one address family.
type e2eFamily struct {
	name                 string
	udp                  string // Go network name
	client, server, snat netip.Addr
	dualStack            bool   // the lab has IPv6 too (netnstest.DualStack)
	routes               string // the configuration's routes beyond the IPv4 ones
}

var e2eFamilies = []e2eFamily{
	{name: "ipv4", udp: "udp4", client: netip.MustParseAddr("10.0.0.2"), server: netip.MustParseAddr("203.0.113.2"),
		snat: netip.MustParseAddr("203.0.113.1")},
	{name: "ipv6", udp: "udp6", client: netip.MustParseAddr(netnstest.ClientIPv6), server: netip.MustParseAddr(netnstest.ServerIPv6),
		snat: netip.MustParseAddr(netnstest.EdgeOutsideIPv6), dualStack: true,
		routes: "  - {dst: \"" + netnstest.InsidePrefixIPv6 + "\", interface: inside}\n" +
			"  - {dst: \"" + netnstest.OutsidePrefixIPv6 + "\", interface: outside}\n"},
}

// config is e2eConfig for the family with rules before the outbound one.
func (f e2eFamily) config(rules string) string { return fmt.Sprintf(e2eConfig, f.routes, rules) }

// hp is addr:port as edge's CLI prints it ([addr]:port for IPv6).
func hp(a netip.Addr, port int) string { return netip.AddrPortFrom(a, uint16(port)).String() }

// TestDaemonEndToEnd runs the real daemon in namespaces and drives it only
// through the CLI, as an operator would: status, flows, explain, a live
// rule change that drops a flow, events, stats, flush, metrics, and the
// refusals (invalid config, no daemon); in each family (IPv6: a dual-stack
// lab and configuration, automap taking both addresses).
func TestDaemonEndToEnd(t *testing.T) {
	netnstest.Require(t)
	bin := netnstest.BuildEdge(t, ".")
	for _, fam := range e2eFamilies {
		t.Run(fam.name, func(t *testing.T) { testDaemonEndToEnd(t, bin, fam) })
	}
}

func testDaemonEndToEnd(t *testing.T, bin string, fam e2eFamily) {
	dir := t.TempDir()
	client, edge, server := netnstest.Gateway(t, "cp")
	if fam.dualStack {
		netnstest.DualStack(t, client, edge, server)
	}

	cfg := filepath.Join(dir, "edge.yaml")
	sock, logText, _ := runDaemon(t, bin, dir, edge, fam.config(""), "--metrics", "127.0.0.1:9100")

	// cli runs a client command against the daemon.
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"--socket", sock}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("edge %s: %v\n%s\nlog:\n%s", strings.Join(args, " "), err, out, logText())
		}
		return out
	}

	// Socket permissions: the control socket is the daemon's only door.
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket %s: %v, mode %v (want 0600)", sock, err, fi.Mode().Perm())
	}
	if out := mustCLI("status"); !strings.Contains(out, "in ") || !strings.Contains(out, "automap") ||
		!strings.Contains(out, "mapping endpoint-independent, filtering address-and-port-dependent") {
		t.Fatalf("status lacks the interfaces or SNAT:\n%s", out)
	}
	if out := mustCLI("status"); !regexp.MustCompile(`(?m)^  pool automap: .*\b` + regexp.QuoteMeta(fam.snat.String()) + `( |$)`).MatchString(out) {
		t.Fatalf("status: automap did not take the outside interface's %s address %v:\n%s", fam.name, fam.snat, out)
	}

	// Events are watched from the start (JSON lines).
	events := startEvents(t, bin, sock)

	// A UDP sink on the server and a sender on the client.
	sink := func(port int) *counter { return newSink(t, server, fam.udp, fam.server, port) }
	sinks := map[int]*counter{9000: sink(9000), 9001: sink(9001)}
	send := func(port, n int) {
		t.Helper()
		err := client.Do(func() error {
			c, err := net.DialUDP(fam.udp, net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.client, uint16(40000+port-9000))),
				net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.server, uint16(port))))
			if err != nil {
				return err
			}
			defer c.Close()
			for range n {
				c.Write([]byte("x"))
				time.Sleep(2 * time.Millisecond)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// edge drops a packet whose next hop is not resolved yet (it asks the
	// kernel to resolve it): warm the neighbour entries up first.
	if !netnstest.WaitFor(3*time.Second, func() bool { send(9000, 1); return sinks[9000].get() > 0 }) {
		t.Fatalf("nothing crossed edge\n%s", logText())
	}
	base := sinks[9000].get()
	send(9000, 20-base)
	if !netnstest.WaitFor(2*time.Second, func() bool { return sinks[9000].get() == 20 }) {
		t.Fatalf("before the rule change 9000 got %d of 20\n%s", sinks[9000].get(), logText())
	}
	send(9001, 5)
	if !netnstest.WaitFor(2*time.Second, func() bool { return sinks[9001].get() == 5 }) {
		t.Fatalf("before the rule change 9001 got %d of 5", sinks[9001].get())
	}

	// The client's two sockets have a mapping each, their ports kept
	// (RFC 4787 endpoint-independent mapping, port preservation).
	out := mustCLI("mappings")
	if !strings.Contains(out, hp(fam.client, 40000)) || !strings.Contains(out, hp(fam.snat, 40000)) || !strings.Contains(out, "2 mappings") {
		t.Fatalf("mappings:\n%s", out)
	}

	// flows and explain.
	out = mustCLI("flows", "proto=udp", "port=9000")
	if !strings.Contains(out, hp(fam.client, 40000)+" -> "+hp(fam.server, 9000)) || !strings.Contains(out, "1 flows") {
		t.Fatalf("flows:\n%s", out)
	}
	out = mustCLI("flows", "explain", "udp", hp(fam.client, 40000), hp(fam.server, 9000))
	snatPrefix := strings.TrimSuffix(hp(fam.snat, 1), "1") // "203.0.113.1:", "[2001:db8:113::1]:"
	if !strings.Contains(out, "live flow") || !strings.Contains(out, "SNAT        "+snatPrefix) || !strings.Contains(out, "rule outbound") {
		t.Fatalf("explain:\n%s", out)
	}

	// A live rule change: drop UDP toward 9002 (a new flow), keep the rest.
	bad := fam.config("  - {name: block, zone: inside, proto: udp, dst_ports: [\"9002\"], action: drop}\n  - {name: typo, zone: inside, dst: [\"10.0.0.0/33\"], action: allow}\n")
	next := filepath.Join(dir, "next.yaml")
	os.WriteFile(next, []byte(bad), 0o644)
	if out, err := cli("config", "apply", "-f", next); err == nil || !strings.Contains(out, "rules[1].dst[0]") {
		t.Fatalf("an invalid document was not refused by field name: %v\n%s", err, out)
	}
	good := fam.config("  - {name: block, zone: inside, proto: udp, dst_ports: [\"9002\"], action: drop}\n")
	os.WriteFile(next, []byte(good), 0o644)
	if out := mustCLI("config", "apply", "-f", next); !strings.Contains(out, "generation 2") || !strings.Contains(out, "rules") ||
		!strings.Contains(out, "saved to "+cfg) {
		t.Fatalf("apply:\n%s", out)
	}
	if out := mustCLI("config", "get"); !strings.Contains(out, "name: block") {
		t.Fatalf("config get does not show the applied document:\n%s", out)
	}
	if b, _ := os.ReadFile(cfg); string(b) != good {
		t.Fatalf("the daemon's config file does not hold the applied document:\n%s", b)
	}
	sinks[9002] = sink(9002)
	send(9002, 5)
	send(9000, 5) // the existing flow still crosses
	if !netnstest.WaitFor(2*time.Second, func() bool { return sinks[9000].get() == 25 }) {
		t.Fatalf("after the rule change the existing flow got %d of 25", sinks[9000].get())
	}
	// The 9002 datagrams went out before the last 9000 ones, which have
	// arrived: once edge counts all five as dropped, none can still cross.
	if !netnstest.WaitFor(2*time.Second, func() bool { return regexpLine(mustCLI("stats"), "firewall_drop", 5) }) {
		t.Fatalf("stats do not count 5 firewall_drop:\n%s", mustCLI("stats"))
	}
	if n := sinks[9002].get(); n != 0 {
		t.Fatalf("%d datagrams crossed a drop rule", n)
	}
	// The datagrams that crossed went through a neighbour entry.
	if out := mustCLI("stats"); !regexp.MustCompile(`(?m)^NEIGHBOURS[^\n]*\n(  .*\n)*  entries +[1-9]`).MatchString(out) {
		t.Fatalf("stats show no neighbour entry:\n%s", out)
	}
	if !events.waitFor(5*time.Second, func(e map[string]any) bool {
		return e["kind"] == "dropped" && e["reason"] == "firewall_drop" && tupleDst(e) == 9002
	}) {
		t.Fatalf("no dropped/firewall_drop event for port 9002; events seen:\n%s", events.dump())
	}
	if !events.waitFor(time.Second, func(e map[string]any) bool { return e["kind"] == "opened" && tupleDst(e) == 9001 }) {
		t.Fatalf("no opened event for port 9001; events seen:\n%s", events.dump())
	}

	// Flush and see it in the history.
	if out := mustCLI("flush", "port=9001"); !strings.Contains(out, "flushed 1 flows") {
		t.Fatalf("flush:\n%s", out)
	}
	out = mustCLI("flows", "explain", "udp "+hp(fam.client, 40001)+" -> "+hp(fam.server, 9001))
	if !strings.Contains(out, "no live flow") || !strings.Contains(out, "flushed") {
		t.Fatalf("explain after flush:\n%s", out)
	}
	if out, err := cli("flush"); err == nil || !strings.Contains(out, "--all") {
		t.Fatalf("flush without a filter was not refused: %v\n%s", err, out)
	}

	// Metrics, from the daemon's namespace.
	var body string
	if err := edge.Do(func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:9100", 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /metrics HTTP/1.0\r\n\r\n")
		b, err := io.ReadAll(c)
		body = string(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, `edge_worker_drops_total{reason="firewall_drop",worker="0"} 5`) ||
		!strings.Contains(body, "edge_conntrack_flows ") {
		t.Fatalf("metrics lack the drop counter:\n%.3000s", body)
	}
	for _, m := range []string{`edge_neighbour_entries `, `edge_neighbour_events_total{counter="resolutions_refused"} 0`,
		`edge_worker_fragments_total{counter="held",worker="0"} 0`, `edge_worker_fragments_held{worker="0"} 0`,
		`edge_kernel_routes_refused_total 0`} {
		if !strings.Contains(body, m) {
			t.Errorf("metrics lack %s", m)
		}
	}

	// JSON output is one object per line.
	out = mustCLI("flows", "-o", "json")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("flows -o json line %q: %v", l, err)
		}
	}

	// edge trace: the path of a datagram the rule drops (sent until the
	// trace, started meanwhile, has recorded one).
	trace := exec.Command(bin, "--socket", sock, "trace", "port=9002", "--count", "1", "--for", "10s")
	traceOut, _ := trace.StdoutPipe()
	trace.Start()
	traced := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(traceOut); trace.Wait(); traced <- b }()
	var tb []byte
	netnstest.WaitFor(10*time.Second, func() bool {
		send(9002, 1)
		select {
		case tb = <-traced:
			return true
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	if !strings.Contains(string(tb), "udp "+hp(fam.client, 40002)+" -> "+hp(fam.server, 9002)+" new(rule block: drop) -> dropped(firewall_drop)") {
		t.Fatalf("edge trace port=9002:\n%s", tb)
	}

	// No daemon: a clear error.
	b, err := exec.Command(bin, "--socket", filepath.Join(dir, "nothing.sock"), "status").CombinedOutput()
	if err == nil || !strings.Contains(string(b), "not running") {
		t.Fatalf("status without a daemon: %v\n%s", err, b)
	}
}

// regexpLine reports whether a line of out names key with value n.
func regexpLine(out, key string, n int) bool {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == key && f[1] == strconv.Itoa(n) {
			return true
		}
	}
	return false
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) get() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// newSink counts the datagrams to addr:port (network: "udp4" or "udp6") in ns.
func newSink(t *testing.T, ns *netnstest.NS, network string, addr netip.Addr, port int) *counter {
	var conn *net.UDPConn
	if err := ns.Do(func() (err error) {
		conn, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port))))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &counter{}
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := conn.ReadFromUDP(buf); err != nil {
				return
			}
			c.mu.Lock()
			c.n++
			c.mu.Unlock()
		}
	}()
	return c
}

// eventLog collects `edge events -o json` lines.
type eventLog struct {
	mu     sync.Mutex
	events []map[string]any
	raw    bytes.Buffer
}

func startEvents(t *testing.T, bin, sock string) *eventLog {
	cmd := exec.Command(bin, "--socket", sock, "events", "-o", "json", "-v")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	l := &eventLog{}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			json.Unmarshal(sc.Bytes(), &m)
			l.mu.Lock()
			l.events = append(l.events, m)
			l.raw.Write(sc.Bytes())
			l.raw.WriteByte('\n')
			l.mu.Unlock()
		}
	}()
	// "subscribed" (stderr) once the daemon registered the subscription.
	sc := bufio.NewScanner(stderr)
	if !sc.Scan() || sc.Text() != "subscribed" {
		t.Fatalf("edge events -v: want \"subscribed\" on stderr, got %q (%v)", sc.Text(), sc.Err())
	}
	go io.Copy(os.Stderr, stderr)
	return l
}

func (l *eventLog) waitFor(d time.Duration, match func(map[string]any) bool) bool {
	return netnstest.WaitFor(d, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, e := range l.events {
			if match(e) {
				return true
			}
		}
		return false
	})
}

func (l *eventLog) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

func tupleDst(e map[string]any) int {
	t, _ := e["tuple"].(map[string]any)
	p, _ := t["dst_port"].(float64)
	return int(p)
}
