package dataplane

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
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
	cur       atomic.Pointer[neighTable]

	pending map[resolveReq]time.Time // resolutions asked recently (rate limit; Run's goroutine only)
	resolve chan resolveReq
}

type neighKey struct {
	ifindex int32
	addr    [16]byte
}

// NewNeighbours mirrors the neighbours of the given interfaces. Call Run
// from a goroutine on a thread in their network namespace.
func NewNeighbours(ifindexes ...int) *Neighbours {
	n := &Neighbours{ifindexes: ifindexes, pending: map[resolveReq]time.Time{}, resolve: make(chan resolveReq, 64)}
	n.store(nil)
	return n
}

// Lookup returns the MAC address of addr (16-byte form, IPv4-mapped for
// IPv4) on interface ifindex. Any goroutine; no allocation, no lock.
func (n *Neighbours) Lookup(ifindex int, addr [16]byte) ([6]byte, bool) {
	return n.cur.Load().lookup(int32(ifindex), &addr)
}

// neighTable is an immutable open-addressing table (linear probing, load
// at most 1/2) of a snapshot: a per-packet lookup is a multiply, one or two
// slot reads and a compare, where a Go map cost several times that.
type neighTable struct {
	slots []neighSlot
	mask  uint64
}

type neighSlot struct {
	addr    [16]byte
	ifindex int32
	mac     [6]byte
	used    bool
}

func neighHash(ifindex int32, a *[16]byte) uint64 {
	lo := binary.LittleEndian.Uint64(a[0:8])
	hi := binary.LittleEndian.Uint64(a[8:16])
	// splitmix64's finalizer over the folded words: every input bit
	// reaches every output bit (IPv4-mapped addresses vary only in their
	// top 32 bits, which a bare multiply never carries downward).
	h := lo*0x9e3779b97f4a7c15 ^ hi ^ uint64(uint32(ifindex))<<1
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

func newNeighTable(m map[neighKey][6]byte) *neighTable {
	n := 8
	for n < 2*len(m) {
		n <<= 1
	}
	t := &neighTable{slots: make([]neighSlot, n), mask: uint64(n - 1)}
	for k, mac := range m {
		i := neighHash(k.ifindex, &k.addr) & t.mask
		for t.slots[i].used {
			i = (i + 1) & t.mask
		}
		t.slots[i] = neighSlot{addr: k.addr, ifindex: k.ifindex, mac: mac, used: true}
	}
	return t
}

func (t *neighTable) lookup(ifindex int32, a *[16]byte) ([6]byte, bool) {
	i := neighHash(ifindex, a) & t.mask
	for {
		s := &t.slots[i]
		if !s.used {
			return [6]byte{}, false
		}
		if s.ifindex == ifindex && s.addr == *a {
			return s.mac, true
		}
		i = (i + 1) & t.mask
	}
}

// store publishes a new snapshot built from m.
func (n *Neighbours) store(m map[neighKey][6]byte) { n.cur.Store(newNeighTable(m)) }

// Resolve asks for addr to be resolved on interface ifindex. It never
// blocks and takes no lock of edge's: a full request queue drops the
// request; the neighbour goroutine rate-limits (once a second per address).
func (n *Neighbours) Resolve(ifindex int, addr [16]byte) {
	select {
	case n.resolve <- resolveReq{ifindex: ifindex, addr: addr}:
	default:
	}
}

type resolveReq struct {
	ifindex int
	addr    [16]byte
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
					len(e.HardwareAddr) != 6 || e.HardwareAddr[0]&1 != 0 {
					// Never a group address: the kernel keeps ff:ff:ff:ff:ff:ff
					// NOARP entries for subnet broadcasts, and forwarding to
					// them would be a directed broadcast (RFC 2644).
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
	n.store(m)
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
			for r, at := range n.pending {
				if time.Since(at) > time.Second {
					delete(n.pending, r)
				}
			}
		case r := <-n.resolve:
			if at, seen := n.pending[r]; seen && time.Since(at) < time.Second {
				continue
			}
			n.pending[r] = time.Now()
			probe(r)
		}
	}
}

// probe makes the kernel resolve r's address on r's interface by sending
// one datagram toward it on the discard port (RFC 863), bound to that
// interface (and, for a link-local address, with its zone): the kernel
// queues it, resolves the neighbour, and the netlink update refreshes the
// snapshot.
func probe(r resolveReq) {
	ifc, err := net.InterfaceByIndex(r.ifindex)
	if err != nil {
		return
	}
	a := netip.AddrFrom16(r.addr).Unmap()
	if a.Is6() && a.IsLinkLocalUnicast() {
		a = a.WithZone(ifc.Name)
	}
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifc.Name)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("udp", netip.AddrPortFrom(a, 9).String())
	if err != nil {
		return
	}
	_, _ = c.Write(nil)
	c.Close()
}
