package dataplane

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edge/drop"
)

// TestOversizeAfterMTURaise raises the inside link's MTU to 3000 while edge
// runs (edge started at 1500), and the client sends a 2,500-byte UDP
// datagram with DF: the frame does not fit an AF_XDP frame. Before, it
// vanished in the kernel; now edge counts it (oversize) and answers with
// fragmentation needed (IPv6: packet too big), MTU 1500, which the client's
// kernel records as the path MTU to the server. In each family.
func TestOversizeAfterMTURaise(t *testing.T) { forEachLabFamily(t, testOversizeAfterMTURaise) }

func testOversizeAfterMTURaise(t *testing.T, fam labFamily) {
	l := newFamilyLab(t, fam, allowOutbound)
	l.edge.Run(t, "ip", "link", "set", "in", "mtu", "3000")
	l.client.Run(t, "ip", "link", "set", "c0", "mtu", "3000")
	pmtu := func() bool {
		return strings.Contains(l.client.Run(t, "ip", "route", "get", fam.server.String()), "mtu 1500")
	}
	err := l.client.Do(func() error {
		c, err := net.DialUDP(fam.udp, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.server, 7009)))
		if err != nil {
			return err
		}
		defer c.Close()
		// The first errors may be lost while edge resolves the client's
		// MAC (no_neighbour): retry, bounded.
		for try := 0; try < 20 && !pmtu(); try++ {
			if _, err := c.Write(make([]byte, 2500)); err != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st := l.engine.Stats()
	if st.Drops[drop.Oversize] == 0 || st.ICMP[fam.tooBig] == 0 {
		t.Fatalf("oversize %d, %v sent %d; stats %+v", st.Drops[drop.Oversize], fam.tooBig, st.ICMP[fam.tooBig], st)
	}
	if !pmtu() {
		t.Fatalf("the client did not learn path MTU 1500:\n%s", l.client.Run(t, "ip", "route", "get", fam.server.String()))
	}
}
