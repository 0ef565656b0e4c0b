package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edge/internal/netnstest"
)

const doctorResetConfig = `
interfaces: {inside: {name: in}, outside: {name: out}}
routes:
  - {dst: 10.0.0.0/24, interface: inside}
  - {dst: 203.0.113.0/24, interface: outside}
%ssnat: {mode: automap}
conntrack: {max_flows: 4096}
profiles:
  - {name: short-reset, established: 2s, idle_expiry: reset}
rules:
  - {name: idle, zone: inside, proto: tcp, dst_ports: ["7005"], action: allow, profile: short-reset}
  - {name: outbound, zone: inside, action: allow}
`

// TestDoctorIdleExpiryReset runs the daemon with a profile whose
// established timer is 2 s and idle_expiry reset: a connection left idle
// past it is reset at both ends (both sockets see ECONNRESET), `edge
// events` says the expiry was a reset, and `edge doctor` reports a
// prevented idle_expiry finding for the destination that says so; in
// each family (IPv6: edge's resets are IPv6 segments).
func TestDoctorIdleExpiryReset(t *testing.T) {
	netnstest.Require(t)
	bin := netnstest.BuildEdge(t, ".")
	for _, fam := range e2eFamilies {
		t.Run(fam.name, func(t *testing.T) { testDoctorIdleExpiryReset(t, bin, fam) })
	}
}

func testDoctorIdleExpiryReset(t *testing.T, bin string, fam e2eFamily) {
	dir := t.TempDir()
	client, edge, server := fam.gateway(t, "dx")
	sock, logText, _ := runDaemon(t, bin, dir, edge, fmt.Sprintf(doctorResetConfig, fam.routes))
	dst := hp(fam.server, 7005)

	var l net.Listener
	if err := server.Do(func() (err error) { l, err = net.Listen(fam.tcp(), dst); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	serverErr := make(chan error, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				buf := make([]byte, 16)
				for {
					n, err := c.Read(buf)
					if err != nil {
						serverErr <- err
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	// A first connection lets edge resolve its neighbours (its SYN may be
	// resent), before the window.
	if err := client.Do(func() error {
		c, err := net.DialTimeout(fam.tcp(), dst, 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("first connection: %v\n%s", err, logText())
	}
	events := exec.Command(bin, "--socket", sock, "events", "--kind", "expired", "--for", "8s")
	var evOut strings.Builder
	events.Stdout, events.Stderr = &evOut, &evOut
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	var clientErr error
	fs := watchDoctor(t, bin, sock, "6s", func() {
		err := client.Do(func() error {
			c, err := net.DialTimeout(fam.tcp(), dst, 3*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(8 * time.Second))
			if _, err := c.Write([]byte("hello")); err != nil {
				return err
			}
			if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
				return err
			}
			_, clientErr = c.Read(make([]byte, 1)) // quiet until edge's reset
			return nil
		})
		if err != nil {
			t.Errorf("connection through edge: %v\n%s", err, logText())
		}
	})
	events.Wait()
	if !errors.Is(clientErr, syscall.ECONNRESET) {
		t.Errorf("client: %v, want ECONNRESET", clientErr)
	}
	for ended := false; !ended; {
		select {
		case err := <-serverErr:
			if errors.Is(err, io.EOF) {
				continue // the first connection, closed by the client
			}
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("server: %v, want ECONNRESET", err)
			}
			ended = true
		case <-time.After(5 * time.Second):
			t.Errorf("the server's connection did not end")
			ended = true
		}
	}
	// "expired tcp CLIENT:PORT ...": the client's address as hp writes it, before any port.
	if !strings.Contains(evOut.String(), "expired tcp "+strings.TrimSuffix(hp(fam.client, 0), "0")) || !strings.Contains(evOut.String(), " reset ") {
		t.Errorf("edge events: no expired event saying reset:\n%s", evOut.String())
	}
	var found bool
	for _, f := range fs {
		if f["pattern"] == "idle_expiry" {
			ev, _ := f["evidence"].(map[string]any)
			sum, _ := ev["summary"].(string)
			found = f["destination"] == dst && f["severity"] == "prevented" && f["count"] == 1.0 &&
				strings.Contains(sum, "reset both ends")
		}
	}
	if !found || len(fs) != 1 {
		t.Errorf("want one prevented idle_expiry finding for %s saying the ends were reset, got %v", dst, fs)
	}
}
