package dataplane

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edge/internal/netnstest"
)

// neighLab is a namespace with interface v0 (10.77.0.1/16) linked to a
// peer namespace (10.77.0.2), and a mirror of v0's neighbours.
func neighLab(t *testing.T) (*netnstest.NS, *Neighbours, int) {
	a, _, n, ifindex := neighLabPeer(t)
	return a, n, ifindex
}

// neighLabPeer is neighLab that also returns the peer namespace.
func neighLabPeer(t *testing.T) (a, b *netnstest.NS, n *Neighbours, ifindex int) {
	netnstest.Require(t)
	a, b = netnstest.New(t, "nb"), netnstest.New(t, "nb")
	netnstest.Veth(t, a, "v0", "10.77.0.1/16", b, "v1", "10.77.0.2/16")
	if err := a.Do(func() error {
		ifc, err := net.InterfaceByName("v0")
		if ifc != nil {
			ifindex = ifc.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return a, b, NewNeighbours(ifindex), ifindex
}

// TestNeighboursKernelLosesInUse: the kernel drops the entry of a neighbour
// edge is sending to (its forced garbage collection does so to entries not
// confirmed in 5 s, REACHABLE or not, once the table is full); edge keeps
// its last good MAC and asks the kernel to resolve it again.
func TestNeighboursKernelLosesInUse(t *testing.T) {
	ns, n, ifindex := neighLab(t)
	const mac = "02:00:00:00:00:09"
	addr := netip.MustParseAddr("10.77.0.9").As16()
	ns.Run(t, "ip", "neigh", "replace", "10.77.0.9", "lladdr", mac, "dev", "v0", "nud", "reachable")
	if err := ns.Do(n.Refresh); err != nil {
		t.Fatal(err)
	}
	if got, ok := n.Lookup(ifindex, addr); !ok || net.HardwareAddr(got[:]).String() != mac {
		t.Fatalf("before: %v %v", got, ok)
	}
	ns.Run(t, "ip", "neigh", "del", "10.77.0.9", "dev", "v0")
	if err := ns.Do(n.Refresh); err != nil {
		t.Fatal(err)
	}
	if got, ok := n.Lookup(ifindex, addr); !ok || net.HardwareAddr(got[:]).String() != mac {
		t.Fatalf("the kernel dropped an entry in use and edge forgot it: %v %v", got, ok)
	}
	t.Logf("%+v", n.Stats())
}

// TestNeighboursKernelResolveFlood asks the mirror to resolve 400 distinct
// addresses that never answer (the SYN-ACKs of a flood from random inside
// sources) and counts the kernel's neighbour entries on the interface:
// each resolution costs one (INCOMPLETE, then FAILED), and the kernel's
// table, shared by all namespaces, evicts the entries of live neighbours
// when it reaches gc_thresh3. edge's share stays within maxUnanswered, and
// edge deletes the entries of the resolutions it gave up.
func TestNeighboursKernelResolveFlood(t *testing.T) {
	ns, n, ifindex := neighLab(t)
	done := make(chan struct{})
	ran := make(chan error, 1)
	go func() { ran <- ns.Do(func() error { return n.Run(done) }) }()
	t.Cleanup(func() {
		close(done)
		if err := <-ran; err != nil {
			t.Error(err)
		}
	})
	count := func() int {
		out := ns.Run(t, "ip", "neigh", "show", "dev", "v0")
		return strings.Count(out, "10.77.")
	}
	worst := 0
	for i := 0; i < 400; i++ {
		n.Resolve(ifindex, netip.AddrFrom4([4]byte{10, 77, byte(1 + i/200), byte(1 + i%200)}).As16())
		if i%20 == 19 {
			time.Sleep(5 * time.Millisecond) // a worker's pace: the queue holds 64
		}
	}
	end := time.Now().Add(6 * time.Second)
	last := 0
	for time.Now().Before(end) {
		last = count()
		worst = max(worst, last)
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("kernel entries: worst %d, after 6 s %d; %+v", worst, last, n.Stats())
	if worst > maxUnanswered {
		t.Errorf("%d kernel neighbour entries from 400 unanswered resolutions, bound %d", worst, maxUnanswered)
	}
	if last != 0 {
		t.Errorf("%d kernel entries of given-up resolutions left after 6 s", last)
	}
}

// TestNeighboursKernelProbeResolves: a resolution request makes the kernel
// resolve the neighbour (ARP) without sending the neighbour anything else.
// The old probe, a datagram to its discard port, drew an ICMP port
// unreachable (the peer's Udp NoPorts counter) that edge then counted as
// icmp_no_flow.
func TestNeighboursKernelProbeResolves(t *testing.T) {
	a, b, n, ifindex := neighLabPeer(t)
	done := make(chan struct{})
	ran := make(chan error, 1)
	go func() { ran <- a.Do(func() error { return n.Run(done) }) }()
	t.Cleanup(func() {
		close(done)
		if err := <-ran; err != nil {
			t.Error(err)
		}
	})
	noPorts := func() string {
		for _, l := range strings.Split(b.Run(t, "nstat", "-az", "UdpNoPorts"), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "UdpNoPorts" {
				return f[1]
			}
		}
		return "?"
	}
	before := noPorts()
	addr := netip.MustParseAddr("10.77.0.2").As16()
	if !n.Resolve(ifindex, addr) {
		t.Fatal("request refused")
	}
	if !netnstest.WaitFor(3*time.Second, func() bool { _, ok := n.Lookup(ifindex, addr); return ok }) {
		t.Fatalf("10.77.0.2 not resolved in 3 s: %s", a.Run(t, "ip", "neigh", "show", "dev", "v0"))
	}
	time.Sleep(100 * time.Millisecond)
	if after := noPorts(); after != before {
		t.Fatalf("the resolution sent the neighbour a datagram (its UdpNoPorts %s -> %s)", before, after)
	}
}
