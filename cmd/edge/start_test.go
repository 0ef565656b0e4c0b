package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegw/edge/internal/netnstest"
)

// startConfig is a configuration whose interfaces are inside and outside.
func startConfig(inside, outside string) string {
	return fmt.Sprintf(`
interfaces: {inside: {name: %s}, outside: {name: %s}}
routes: [{dst: 10.0.0.0/24, interface: inside}]
conntrack: {max_flows: 4096}
`, inside, outside)
}

// TestRunRefusesToStart starts the real binary where the data plane cannot
// start and checks that each refusal is one line naming the interface,
// exit code 1, nothing left attached, and the kernel's forwarding switch
// as it was.
func TestRunRefusesToStart(t *testing.T) {
	netnstest.Require(t)
	bin := netnstest.BuildEdge(t, ".")
	for _, tc := range []struct {
		name            string
		inside, outside string
		setup           func(t *testing.T, ns *netnstest.NS) // before edge starts
		want            []string                             // in the error line
		invalid         bool                                 // edge validate refuses it too
	}{
		{name: "missing interface", inside: "nosuch", outside: "out",
			want: []string{"interfaces.inside", `"nosuch"`}},
		{name: "loopback", inside: "in", outside: "lo",
			want: []string{"interfaces.outside", "lo is a loopback"}},
		{name: "inside is outside", inside: "in", outside: "in", invalid: true,
			want: []string{"interfaces.outside.name", `"in" is the inside interface too`}},
		{name: "MTU too large", inside: "in", outside: "out",
			setup: func(t *testing.T, ns *netnstest.NS) { ns.Run(t, "ip", "link", "set", "out", "mtu", "3000") },
			want:  []string{"interfaces.outside.mtu", "out's MTU 3000"}},
		{name: "second instance", inside: "in", outside: "out",
			setup: func(t *testing.T, ns *netnstest.NS) { startDaemon(t, bin, ns) },
			want:  []string{"interfaces.inside", "in queue 0 already has an AF_XDP socket"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := netnstest.New(t, "start")
			netnstest.Veth(t, ns, "in", "10.0.0.1/24", ns, "out", "203.0.113.1/24")
			ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
			if tc.setup != nil {
				tc.setup(t, ns)
			}
			attachedBefore := xdpAttached(t, ns)
			fwdBefore := ns.Run(t, "sysctl", "-n", "net.ipv4.ip_forward") // 0 with a first edge running
			dir := t.TempDir()
			cfg := filepath.Join(dir, "edge.yaml")
			os.WriteFile(cfg, []byte(startConfig(tc.inside, tc.outside)), 0o644)
			out, err := exec.Command("ip", "netns", "exec", ns.Name, bin, "run", "--config", cfg,
				"--socket", filepath.Join(dir, "edge.sock")).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("edge run: %v (want exit code 1)\n%s", err, out)
			}
			line := strings.TrimSuffix(string(out), "\n")
			if strings.Contains(line, "\n") || !strings.HasPrefix(line, "edge: ") {
				t.Fatalf("want one line \"edge: ...\", got:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("error %q does not say %q", line, w)
				}
			}
			if tc.invalid {
				out, err := exec.Command(bin, "validate", "--config", cfg).CombinedOutput()
				if err == nil || !strings.Contains(string(out), tc.want[len(tc.want)-1]) {
					t.Errorf("edge validate: %v\n%s", err, out)
				}
			}
			if got := xdpAttached(t, ns); got != attachedBefore {
				t.Errorf("XDP programs attached: %q before, %q after the refusal", attachedBefore, got)
			}
			if fwd := ns.Run(t, "sysctl", "-n", "net.ipv4.ip_forward"); fwd != fwdBefore {
				t.Errorf("net.ipv4.ip_forward is %q after the refusal, was %q", fwd, fwdBefore)
			}
		})
	}
}

// TestRunRestoresForwarding runs edge to a clean exit and checks that the
// kernel's forwarding switches are back to what edge found (edge turns them
// off while it runs, so the kernel cannot forward around it) and that no
// XDP program is left.
func TestRunRestoresForwarding(t *testing.T) {
	netnstest.Require(t)
	bin := netnstest.BuildEdge(t, ".")
	for _, was := range []string{"1", "0"} {
		ns := netnstest.New(t, "fwd")
		netnstest.Veth(t, ns, "in", "10.0.0.1/24", ns, "out", "203.0.113.1/24")
		ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward="+was)
		stop := startDaemon(t, bin, ns)
		if fwd := strings.TrimSpace(ns.Run(t, "sysctl", "-n", "net.ipv4.ip_forward")); fwd != "0" {
			t.Fatalf("net.ipv4.ip_forward is %s while edge runs", fwd)
		}
		if xdpAttached(t, ns) == "" {
			t.Fatal("no XDP program attached while edge runs")
		}
		stop()
		if fwd := strings.TrimSpace(ns.Run(t, "sysctl", "-n", "net.ipv4.ip_forward")); fwd != was {
			t.Errorf("net.ipv4.ip_forward is %s after a clean exit, was %s", fwd, was)
		}
		if got := xdpAttached(t, ns); got != "" {
			t.Errorf("XDP programs left attached after a clean exit: %s", got)
		}
	}
}

// startDaemon runs edge on in and out of ns until the test ends, or until
// the function it returns (SIGINT, wait for a clean exit) is called.
func startDaemon(t *testing.T, bin string, ns *netnstest.NS) (stop func()) {
	t.Helper()
	_, _, stop = runDaemon(t, bin, t.TempDir(), ns, startConfig("in", "out"))
	return stop
}

// xdpAttached lists the interfaces of ns that have an XDP program, with the
// program's id ("in:12 out:12"), or "" when none has.
func xdpAttached(t *testing.T, ns *netnstest.NS) string {
	t.Helper()
	var got []string
	for _, l := range strings.Split(ns.Run(t, "ip", "-o", "link", "show"), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		for i, w := range f {
			if strings.HasPrefix(w, "prog/xdp") && i+2 < len(f) && f[i+1] == "id" {
				got = append(got, name+":"+f[i+2])
			}
		}
	}
	return strings.Join(got, " ")
}
