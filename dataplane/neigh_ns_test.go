package dataplane

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edge/internal/netnstest"
)

// neighFamily is the neighbour tests' addressing in one family: ARP for
// IPv4, neighbour discovery for IPv6, both through the kernel.
type neighFamily struct {
	name           string
	local, peer    string                 // v0's and v1's addresses (with prefix length)
	addr           func(i int) netip.Addr // the i-th address of the link's prefix (i >= 3: nobody's)
	prefix         string                 // how `ip neigh show` prints the prefix's addresses
	udpNoPortsStat string                 // the nstat counter of datagrams to closed ports
}

var neighFamilies = []neighFamily{
	{"ipv4", "10.77.0.1/16", "10.77.0.2/16",
		func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 77, byte(i / 200), byte(i % 200)}) }, "10.77.", "UdpNoPorts"},
	{"ipv6", "fd77::1/64", "fd77::2/64",
		func(i int) netip.Addr { return netip.AddrFrom16([16]byte{0xfd, 0x77, 14: byte(i >> 8), 15: byte(i)}) }, "fd77::", "Udp6NoPorts"},
}

// forEachNeighFamily runs f as a subtest per family.
func forEachNeighFamily(t *testing.T, f func(t *testing.T, fam neighFamily)) {
	for _, fam := range neighFamilies {
		t.Run(fam.name, func(t *testing.T) { f(t, fam) })
	}
}

// neighLab is a namespace with interface v0 (fam.local) linked to a peer
// namespace (v1, fam.peer), and a mirror of v0's neighbours; it returns
// the peer's namespace too.
func neighLab(t *testing.T, fam neighFamily) (*netnstest.NS, *netnstest.NS, *Neighbours, int) {
	netnstest.Require(t)
	a, b := netnstest.New(t, "nb"), netnstest.New(t, "nb")
	if fam.name == "ipv4" {
		netnstest.Veth(t, a, "v0", fam.local, b, "v1", fam.peer)
	} else {
		netnstest.Veth(t, a, "v0", "", b, "v1", "")
		netnstest.AddIPv6(t, a, "v0", fam.local)
		netnstest.AddIPv6(t, b, "v1", fam.peer)
	}
	var ifindex int
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
// its last good MAC and asks the kernel to resolve it again. In each family.
func TestNeighboursKernelLosesInUse(t *testing.T) {
	forEachNeighFamily(t, testNeighboursKernelLosesInUse)
}

func testNeighboursKernelLosesInUse(t *testing.T, fam neighFamily) {
	ns, _, n, ifindex := neighLab(t, fam)
	const mac = "02:00:00:00:00:09"
	a9 := fam.addr(9)
	addr := a9.As16()
	ns.Run(t, "ip", "neigh", "replace", a9.String(), "lladdr", mac, "dev", "v0", "nud", "reachable")
	if err := ns.Do(n.Refresh); err != nil {
		t.Fatal(err)
	}
	if got, ok := n.Lookup(ifindex, addr); !ok || net.HardwareAddr(got[:]).String() != mac {
		t.Fatalf("before: %v %v", got, ok)
	}
	ns.Run(t, "ip", "neigh", "del", a9.String(), "dev", "v0")
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
// edge deletes the entries of the resolutions it gave up. In each family
// (the kernel keeps one table per family).
func TestNeighboursKernelResolveFlood(t *testing.T) {
	forEachNeighFamily(t, testNeighboursKernelResolveFlood)
}

func testNeighboursKernelResolveFlood(t *testing.T, fam neighFamily) {
	ns, _, n, ifindex := neighLab(t, fam)
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
		return strings.Count(out, fam.prefix)
	}
	worst := 0
	for i := 0; i < 400; i++ {
		n.Resolve(ifindex, fam.addr((1+i/200)*200+1+i%200).As16()) // 10.77.1.1-10.77.2.200, fd77::c9-fd77::258
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
// icmp_no_flow. In each family (IPv6: neighbour discovery).
func TestNeighboursKernelProbeResolves(t *testing.T) {
	forEachNeighFamily(t, testNeighboursKernelProbeResolves)
}

func testNeighboursKernelProbeResolves(t *testing.T, fam neighFamily) {
	a, b, n, ifindex := neighLab(t, fam)
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
		for _, l := range strings.Split(b.Run(t, "nstat", "-az", fam.udpNoPortsStat), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == fam.udpNoPortsStat {
				return f[1]
			}
		}
		return "?"
	}
	before := noPorts()
	peer := fam.addr(2)
	addr := peer.As16()
	if !n.Resolve(ifindex, addr) {
		t.Fatal("request refused")
	}
	if !netnstest.WaitFor(3*time.Second, func() bool { _, ok := n.Lookup(ifindex, addr); return ok }) {
		t.Fatalf("%v not resolved in 3 s: %s", peer, a.Run(t, "ip", "neigh", "show", "dev", "v0"))
	}
	time.Sleep(100 * time.Millisecond)
	if after := noPorts(); after != before {
		t.Fatalf("the resolution sent the neighbour a datagram (its UdpNoPorts %s -> %s)", before, after)
	}
}
