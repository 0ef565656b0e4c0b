package dataplane

import (
	"bufio"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
)

// TestIdleExpiryResetOnTheWire: a real TCP connection through edge (SNAT)
// under a profile whose established timer is 2 s, with idle_expiry reset,
// goes quiet; when edge expires it, both ends' sockets see ECONNRESET (the
// kernels accepted the resets' sequence numbers, and the server's came from
// the SNAT address and port), in each family.
func TestIdleExpiryResetOnTheWire(t *testing.T) { forEachLabFamily(t, testIdleExpiryResetOnTheWire) }

func testIdleExpiryResetOnTheWire(t *testing.T, fam labFamily) {
	short := conntrack.DefaultProfile
	short.Name, short.Established, short.IdleExpiry = "idle-reset", 2*conntrack.Second, conntrack.IdleReset
	l := newFamilyLab(t, fam, allowOutbound, func(c *Config) {
		c.Conntrack.Policy = conntrack.Policy{Profiles: []conntrack.Profile{short}}
	})
	var ln net.Listener
	if err := l.server.Do(func() (err error) {
		ln, err = net.Listen(fam.tcp, fam.serverAddr(8081))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err == nil {
			_, err = c.Write([]byte(line))
		}
		if err != nil {
			serverErr <- err
			return
		}
		// Quiet from here: the next read ends with edge's reset.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = r.ReadByte()
		serverErr <- err
	}()
	var clientErr error
	start := time.Now()
	err := l.client.Do(func() error {
		c, err := net.DialTimeout(fam.tcp, fam.serverAddr(8081), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		if _, err := c.Write([]byte("hello\n")); err != nil {
			return err
		}
		if _, err := r.ReadString('\n'); err != nil {
			return err
		}
		_, clientErr = r.ReadByte()
		return nil
	})
	if err != nil {
		t.Fatalf("TCP through edge: %v; stats %+v", err, l.engine.Stats())
	}
	took := time.Since(start)
	sErr := <-serverErr
	st := l.engine.table.Stats()
	if !errors.Is(clientErr, syscall.ECONNRESET) || !errors.Is(sErr, syscall.ECONNRESET) {
		t.Fatalf("client read: %v, server read: %v (want ECONNRESET both) after %v; conntrack %v", clientErr, sErr, took, st.Counters)
	}
	if took < 2*time.Second {
		t.Fatalf("reset after %v, before the 2 s idle timer", took)
	}
	if st.Counters[conntrack.CtrIdleRSTClient] != 1 || st.Counters[conntrack.CtrIdleRSTServer] != 1 {
		t.Fatalf("idle resets counted: %v", st.Counters)
	}
}
