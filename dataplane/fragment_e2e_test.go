package dataplane

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/edgegw/edge/drop"
)

// TestFragmentedUDPOnTheWire: a 4,000-byte UDP datagram (a DNS answer with
// EDNS0, an IKE message), which the client's kernel sends as three
// fragments, crosses edge with SNAT, and the server's 4,000-byte answer,
// fragmented by the server's kernel, comes back. Before fragments were
// followed, both were dropped (fragment). In each family (IPv6: fragment
// headers, the kernels fragmenting at the source).
func TestFragmentedUDPOnTheWire(t *testing.T) { forEachLabFamily(t, testFragmentedUDPOnTheWire) }

func testFragmentedUDPOnTheWire(t *testing.T, fam labFamily) {
	l := newFamilyLab(t, fam, allowOutbound)
	var udp *net.UDPConn
	if err := l.server.Do(func() (err error) {
		udp, err = net.ListenUDP(fam.udp, net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.server, 7053)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	seen := make(chan string, 64)
	go func() {
		buf := make([]byte, 8192)
		for {
			n, from, err := udp.ReadFromUDP(buf)
			if err != nil {
				return
			}
			select {
			case seen <- from.IP.String():
			default:
			}
			udp.WriteToUDP(buf[:n], from)
		}
	}()
	msg := make([]byte, 4000)
	for i := range msg {
		msg[i] = byte(i * 13)
	}
	err := l.client.Do(func() error {
		c, err := net.DialUDP(fam.udp, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.server, 7053)))
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 8192)
		// The first datagrams may be lost while edge resolves the
		// server's MAC (no_neighbour): retry, bounded.
		for try := 0; try < 20; try++ {
			c.Write(msg)
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, err := c.Read(buf); err == nil {
				if !bytes.Equal(buf[:n], msg) {
					t.Errorf("echo of %d bytes differs from the %d sent", n, len(msg))
				}
				return nil
			}
		}
		return io.ErrNoProgress
	})
	st := l.engine.Stats()
	if err != nil {
		t.Fatalf("no fragmented UDP echo through edge: %v; drops %v", err, st.Drops)
	}
	if from := <-seen; from != fam.snat.String() {
		t.Errorf("server saw the datagram from %s, want the SNAT address %v", from, fam.snat)
	}
	for _, r := range []drop.Reason{drop.Fragment, drop.FragmentNoRoom, drop.BadL4Header, drop.BadIPChecksum} {
		if st.Drops[r] != 0 {
			t.Errorf("%d packets dropped as %v", st.Drops[r], r)
		}
	}
}
