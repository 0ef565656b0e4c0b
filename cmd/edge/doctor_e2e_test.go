package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edge/internal/netnstest"
)

const doctorE2EConfig = `
interfaces: {inside: {name: in}, outside: {name: out}}
routes:
  - {dst: 10.0.0.0/24, interface: inside}
  - {dst: 203.0.113.0/24, interface: outside}
%ssnat: {mode: automap}
conntrack: {max_flows: 4096}
profiles:
  - {name: short, established: 2s}
rules:
  - {name: idle, zone: inside, proto: tcp, dst_ports: ["7001"], action: allow, profile: short}
  - {name: outbound, zone: inside, action: allow}
`

// TestDoctorEndToEnd runs the daemon in namespaces with real TCP traffic
// and `edge doctor --window` beside it: clean traffic gives no finding;
// a connection idle past its profile's established timer and then used is
// idle_expiry, and a burst of connections to a listener with a backlog of
// 1 that never accepts is syn_unanswered (listen backlog), and requests on
// connections a backend closed idle a moment before are keepalive_race,
// each toward its own server port, while clean traffic to a fourth port
// stays clean; in each family (IPv6: the destinations as "[addr]:port").
func TestDoctorEndToEnd(t *testing.T) {
	netnstest.Require(t)
	bin := netnstest.BuildEdge(t, ".")
	for _, fam := range e2eFamilies {
		t.Run(fam.name, func(t *testing.T) { testDoctorEndToEnd(t, bin, fam) })
	}
}

// tcp is the family's Go network name for TCP.
func (f e2eFamily) tcp() string { return "tcp" + strings.TrimPrefix(f.udp, "udp") }

// gateway is netnstest.Gateway, dual-stack for a family that needs it.
func (f e2eFamily) gateway(t *testing.T, prefix string) (client, edge, server *netnstest.NS) {
	client, edge, server = netnstest.Gateway(t, prefix)
	if f.dualStack {
		netnstest.DualStack(t, client, edge, server)
	}
	return client, edge, server
}

// listenBacklog listens on addr:port with the kernel's backlog set to
// backlog (net.Listen takes somaxconn) and never accepts; closed when the
// test ends.
func listenBacklog(t *testing.T, ns *netnstest.NS, addr netip.Addr, port, backlog int) {
	t.Helper()
	domain, sa := syscall.AF_INET6, syscall.Sockaddr(&syscall.SockaddrInet6{Port: port, Addr: addr.As16()})
	if addr.Is4() {
		domain, sa = syscall.AF_INET, &syscall.SockaddrInet4{Port: port, Addr: addr.As4()}
	}
	var fd int
	if err := ns.Do(func() (err error) {
		if fd, err = syscall.Socket(domain, syscall.SOCK_STREAM, 0); err != nil {
			return err
		}
		if err := syscall.Bind(fd, sa); err != nil {
			syscall.Close(fd)
			return err
		}
		return syscall.Listen(fd, backlog)
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
}

func testDoctorEndToEnd(t *testing.T, bin string, fam e2eFamily) {
	dir := t.TempDir()
	client, edge, server := fam.gateway(t, "dr")
	sock, _, _ := runDaemon(t, bin, dir, edge, fmt.Sprintf(doctorE2EConfig, fam.routes))

	echo := func(port int) {
		var l net.Listener
		if err := server.Do(func() (err error) { l, err = net.Listen(fam.tcp(), hp(fam.server, port)); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
	}
	echo(7001)
	echo(7004)
	// A backend that closes a connection idle for 1 s (a keep-alive
	// timeout shorter than its client's reuse).
	var ka net.Listener
	if err := server.Do(func() (err error) { ka, err = net.Listen(fam.tcp(), hp(fam.server, 7002)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ka.Close() })
	go func() {
		for {
			c, err := ka.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 100)
				for {
					c.SetReadDeadline(time.Now().Add(time.Second))
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	// A listener with a backlog of 1 that never accepts: its accept queue
	// fills with two connections and the kernel drops the SYNs after.
	listenBacklog(t, server, fam.server, 7003, 1)

	dial := func(port int, timeout time.Duration) (net.Conn, error) {
		var c net.Conn
		err := client.Do(func() (err error) {
			c, err = net.DialTimeout(fam.tcp(), hp(fam.server, port), timeout)
			return err
		})
		return c, err
	}
	roundTrip := func(c net.Conn, msg string) error {
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		_, err := io.ReadFull(c, buf)
		return err
	}
	clean := func(n int) {
		for range n {
			c, err := dial(7004, 5*time.Second)
			if err != nil {
				t.Errorf("clean connection: %v", err)
				return
			}
			if err := roundTrip(c, "hello"); err != nil {
				t.Errorf("clean round trip: %v", err)
			}
			c.Close()
		}
	}
	clean(1) // edge resolves its neighbours: the first SYN may be dropped

	doctor := func(window string, traffic func()) []map[string]any {
		t.Helper()
		return watchDoctor(t, bin, sock, window, traffic)
	}

	if fs := doctor("2s", func() { clean(5) }); len(fs) != 0 {
		t.Fatalf("clean traffic: %d findings", len(fs))
	}

	fs := doctor("6s", func() {
		var wg sync.WaitGroup
		idle, err := dial(7001, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
		if err := roundTrip(idle, "a"); err != nil {
			t.Fatal(err)
		}
		// The accept queue filled first (two connections for a backlog of
		// 1): SYNs that all arrive while it still has room are each
		// answered, and the overflow is then at the handshake's last ACK,
		// which edge cannot see. Full, the listener drops the burst's SYNs.
		for range 2 {
			c, err := dial(7003, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		time.Sleep(100 * time.Millisecond)
		for range 8 {
			wg.Go(func() {
				if c, err := dial(7003, 5*time.Second); err == nil {
					c.Close()
				}
			})
		}
		clean(3)
		// The client reuses its kept-alive connections after 1.5 s: the
		// backend closed them at 1 s and resets the request.
		var kept []net.Conn
		for range 2 {
			c, err := dial(7002, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := roundTrip(c, "req1"); err != nil {
				t.Fatal(err)
			}
			kept = append(kept, c)
		}
		time.Sleep(1500 * time.Millisecond)
		for _, c := range kept {
			if err := roundTrip(c, "req2"); err == nil {
				t.Errorf("the backend answered a request on a connection idle past its keep-alive timeout")
			}
		}
		time.Sleep(2000 * time.Millisecond) // past the 2 s established timer
		idle.SetWriteDeadline(time.Now().Add(time.Second))
		idle.Write([]byte("b")) // dropped: edge forgot the connection
		wg.Wait()
	})
	byDest := map[string]map[string]any{}
	for _, f := range fs {
		byDest[f["destination"].(string)+" "+f["pattern"].(string)] = f
	}
	// finding: the one for the server's port and pattern (nil if none).
	finding := func(port int, pattern string) map[string]any { return byDest[hp(fam.server, port)+" "+pattern] }
	if f := finding(7001, "idle_expiry"); f == nil || f["count"] != 1.0 || f["severity"] != "failing" {
		t.Errorf("no idle_expiry finding for %s with count 1", hp(fam.server, 7001))
	}
	if f := finding(7003, "syn_unanswered"); f == nil || f["count"].(float64) < 2 ||
		!strings.Contains(f["fix"].(string), "listen backlog") {
		t.Errorf("no syn_unanswered finding for %s naming the listen backlog", hp(fam.server, 7003))
	}
	if f := finding(7002, "keepalive_race"); f == nil || f["count"] != 2.0 ||
		!strings.Contains(f["fix"].(string), "keep-alive timeout") {
		t.Errorf("no keepalive_race finding for %s with count 2", hp(fam.server, 7002))
	}
	for k := range byDest {
		if strings.HasPrefix(k, hp(fam.server, 7004)+" ") {
			t.Errorf("finding for the clean destination: %s", k)
		}
	}
	if len(byDest) != 3 {
		t.Errorf("%d findings, want 3", len(byDest))
	}
}

// watchDoctor runs `edge doctor --window window -o json` against the daemon
// at sock beside traffic and returns its findings. Started first, it
// subscribes well before traffic starts.
func watchDoctor(t *testing.T, bin, sock, window string, traffic func()) []map[string]any {
	t.Helper()
	cmd := exec.Command(bin, "--socket", sock, "doctor", "--window", window, "-o", "json")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	traffic()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("edge doctor: %v\n%s%s", err, out.String(), errb.String())
	}
	var fs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l == "" {
			continue
		}
		var f map[string]any
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		fs = append(fs, f)
	}
	t.Logf("edge doctor --window %s: %d findings\n%s%s", window, len(fs), out.String(), errb.String())
	return fs
}
