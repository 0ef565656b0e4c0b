package dataplane

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edge/internal/netnstest"
)

// TestKill9FailsClosed runs the real edge binary in the lab, checks that it
// forwards, kills it with SIGKILL under traffic, and checks that nothing
// crosses the box afterwards: the XDP program stays attached and drops IP
// for want of a socket, and the kernel's forwarding is off.
func TestKill9FailsClosed(t *testing.T) {
	netnstest.Require(t)
	bin := netnstest.BuildEdge(t, "../cmd/edge")
	dir := t.TempDir()
	client, edge, server := netnstest.Gateway(t, "k9")
	cfg := filepath.Join(dir, "edge.yaml")
	os.WriteFile(cfg, []byte(`
interfaces: {inside: {name: in}, outside: {name: out}}
routes:
  - {dst: 10.0.0.0/24, interface: inside}
  - {dst: 203.0.113.0/24, interface: outside}
snat: {mode: automap}
rules: [{name: outbound, zone: inside, action: allow}]
conntrack: {max_flows: 4096}
`), 0o644)
	logf, err := os.Create(filepath.Join(dir, "edge.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	logText := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	// Its own control socket: the default one may be another edge's.
	cmd := exec.Command("ip", "netns", "exec", edge.Name, bin, "run", "--config", cfg, "--socket", filepath.Join(dir, "edge.sock"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if !waitFor(5*time.Second, func() bool { return strings.Contains(logText(), "forwarding between") }) {
		t.Fatalf("edge did not start:\n%s", logText())
	}

	// A UDP sink on the server counts what arrives.
	var sink *net.UDPConn
	if err := server.Do(func() (err error) {
		sink, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(203, 0, 113, 2), Port: 9000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	received := make(chan struct{}, 1<<16)
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := sink.ReadFromUDP(buf); err != nil {
				return
			}
			received <- struct{}{}
		}
	}()
	blast := func(d time.Duration) {
		t.Helper()
		err := client.Do(func() error {
			c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(203, 0, 113, 2), Port: 9000})
			if err != nil {
				return err
			}
			defer c.Close()
			for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
				c.Write([]byte("x"))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	drain := func() int {
		n := 0
		for {
			select {
			case <-received:
				n++
			case <-time.After(200 * time.Millisecond):
				return n
			}
		}
	}

	blast(500 * time.Millisecond)
	if n := drain(); n == 0 {
		t.Fatalf("nothing crossed edge while it ran:\n%s", logText())
	}

	// Kill it mid-traffic.
	done := make(chan struct{})
	go func() { blast(1500 * time.Millisecond); close(done) }()
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	time.Sleep(100 * time.Millisecond)
	drain() // what crossed before the kill
	<-done
	if n := drain(); n != 0 {
		t.Fatalf("%d datagrams crossed the box after edge was killed", n)
	}
	if out := edge.Run(t, "ip", "link", "show", "in"); !strings.Contains(out, "prog/xdp") {
		t.Fatalf("the XDP program is gone after SIGKILL (it must stay and drop):\n%s", out)
	}
	if v := strings.TrimSpace(edge.Run(t, "sysctl", "-n", "net.ipv4.ip_forward")); v != "0" {
		t.Fatalf("kernel forwarding is %s in edge's namespace", v)
	}
}
