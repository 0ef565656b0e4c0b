package dataplane

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Neighbours mirrors the kernel's neighbour (ARP / NDP) table for edge's
// interfaces. Workers read an immutable snapshot through an atomic pointer;
// one goroutine (Run) rebuilds it from netlink: on every neighbour update
// the kernel sends, and once a second as a safety net.
//
// A worker that finds no usable entry for a next hop drops the packet
// (counted as drop.NoNeighbour) and calls Resolve, which asks the kernel to
// resolve the address; the packet is never sent to a wrong or stale MAC.
type Neighbours struct {
	ifindexes []int
	cur       atomic.Pointer[map[neighKey][6]byte]

	mu      sync.Mutex
	pending map[netip.Addr]time.Time // resolutions asked recently (rate limit)
	resolve chan netip.Addr
}

type neighKey struct {
	ifindex int32
	addr    [16]byte
}

// NewNeighbours mirrors the neighbours of the given interfaces. Call Run
// from a goroutine on a thread in their network namespace.
func NewNeighbours(ifindexes ...int) *Neighbours {
	n := &Neighbours{ifindexes: ifindexes, pending: map[netip.Addr]time.Time{}, resolve: make(chan netip.Addr, 64)}
	empty := map[neighKey][6]byte{}
	n.cur.Store(&empty)
	return n
}

// Lookup returns the MAC address of addr (16-byte form, IPv4-mapped for
// IPv4) on interface ifindex. Any goroutine; no allocation.
func (n *Neighbours) Lookup(ifindex int, addr [16]byte) ([6]byte, bool) {
	m := *n.cur.Load()
	mac, ok := m[neighKey{int32(ifindex), addr}]
	return mac, ok
}

// Resolve asks for addr to be resolved (at most once a second per address).
// It never blocks: when the request queue is full the request is dropped.
func (n *Neighbours) Resolve(addr [16]byte) {
	a := netip.AddrFrom16(addr).Unmap()
	n.mu.Lock()
	last, seen := n.pending[a]
	now := time.Now()
	if seen && now.Sub(last) < time.Second {
		n.mu.Unlock()
		return
	}
	n.pending[a] = now
	n.mu.Unlock()
	select {
	case n.resolve <- a:
	default:
	}
}

// Refresh rebuilds the snapshot from the kernel's table now.
func (n *Neighbours) Refresh() error {
	m := map[neighKey][6]byte{}
	for _, ifindex := range n.ifindexes {
		for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
			list, err := netlink.NeighList(ifindex, fam)
			if err != nil {
				return err
			}
			for _, e := range list {
				// Usable states only: never INCOMPLETE or FAILED.
				if e.State&(netlink.NUD_REACHABLE|netlink.NUD_STALE|netlink.NUD_DELAY|netlink.NUD_PROBE|netlink.NUD_PERMANENT|netlink.NUD_NOARP) == 0 ||
					len(e.HardwareAddr) != 6 {
					continue
				}
				a, ok := netip.AddrFromSlice(e.IP)
				if !ok {
					continue
				}
				var mac [6]byte
				copy(mac[:], e.HardwareAddr)
				m[neighKey{int32(ifindex), a.As16()}] = mac
			}
		}
	}
	n.cur.Store(&m)
	return nil
}

// Run keeps the snapshot current and performs resolutions until done is
// closed. It must run on a thread in the interfaces' network namespace
// (the netlink socket and the probe sockets are opened there).
func (n *Neighbours) Run(done <-chan struct{}) error {
	updates := make(chan netlink.NeighUpdate, 256)
	if err := netlink.NeighSubscribe(updates, done); err != nil {
		return err
	}
	if err := n.Refresh(); err != nil {
		return err
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return nil
		case _, ok := <-updates:
			if !ok {
				// The subscription died (netlink closes the channel on a
				// receive error such as ENOBUFS in an update storm): fall
				// back to the periodic refresh rather than spin.
				updates = nil
				continue
			}
			// Coalesce a burst of updates into one rebuild.
			for len(updates) > 0 {
				<-updates
			}
			_ = n.Refresh()
		case <-tick.C:
			_ = n.Refresh()
			n.mu.Lock()
			for a, at := range n.pending {
				if time.Since(at) > time.Second {
					delete(n.pending, a)
				}
			}
			n.mu.Unlock()
		case a := <-n.resolve:
			probe(a)
		}
	}
}

// probe makes the kernel resolve a by sending one datagram toward it on the
// discard port (RFC 863): the kernel queues it, resolves the neighbour, and
// the netlink update refreshes the snapshot.
func probe(a netip.Addr) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 9)))
	if err != nil {
		return
	}
	_, _ = c.Write(nil)
	c.Close()
}
