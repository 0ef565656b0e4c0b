package dataplane

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/frag"
	"github.com/edgegw/edge/snat"
)

// Status describes the running data plane (Engine.Status).
type Status struct {
	Started    time.Time // Engine.Start
	Interfaces [2]InterfaceStatus
	Workers    []WorkerStatus
	Flows      int64 // live flows
	Capacity   int64 // flow slots
	MemoryB    int64 // flow storage and index bytes
	Hugepages  bool  // flow storage on hugepages
	SNAT       *snat.Config
	Generation uint64
	NSXCompat  bool
	NSXShadow  bool // counting what NSXCompat would have failed (conntrack.Policy.NSXShadow)
}

// InterfaceStatus is one side of the gateway as bound.
type InterfaceStatus struct {
	Name     string
	Zone     firewall.Zone
	Ifindex  int
	MTU      int // the MTU edge enforces
	MAC      net.HardwareAddr
	Addrs    []netip.Addr // the interface's addresses now (at start if they cannot be read)
	Queues   int
	ZeroCopy bool // AF_XDP sockets bound in zero-copy mode (else copy mode)
}

// WorkerStatus is one worker: one queue on each interface, one shard.
type WorkerStatus struct {
	ID    int
	Queue int
	CPU   int // the CPU its thread is pinned to; -1 not pinned (or not yet)
}

// Start returns the wall-clock time of conntrack.Time 0 on the engine's
// clock: the time of a conntrack.Time t is Start().Add(time.Duration(t)).
func (e *Engine) Start() time.Time { return e.start }

// Now returns the engine's clock in conntrack units (for control-plane
// calls into the table: Dump, Flush, Explain).
func (e *Engine) Now() int64 { return int64(e.now()) }

// Status describes the engine. Safe from any goroutine; it reads the
// interfaces' addresses from the kernel.
func (e *Engine) Status() Status {
	cur := e.cur.Load()
	s := Status{
		Started:    e.start,
		Generation: e.gen.Load(),
		NSXCompat:  cur.Conntrack.Policy.NSXCompat,
		NSXShadow:  cur.Conntrack.Policy.NSXShadow,
	}
	if e.table != nil {
		st := e.table.Stats()
		s.Flows, s.Capacity = st.Flows, st.Capacity
		s.MemoryB, s.Hugepages = int64(e.table.MemoryBytes()), e.table.Hugepages()
		s.NSXCompat, s.NSXShadow = e.table.Policy().NSXCompat, e.table.Policy().NSXShadow
	}
	if e.nat != nil {
		if c, on := e.nat.Config(); on {
			s.SNAT = &c
		}
	}
	for i := range e.ports {
		p := &e.ports[i]
		is := InterfaceStatus{Name: p.name, Zone: p.zone, Ifindex: p.ifindex, MTU: p.mtu,
			MAC: net.HardwareAddr(append([]byte(nil), p.mac[:]...)), Queues: len(e.workers), ZeroCopy: p.zeroCopy}
		err := e.inNS(func() error {
			ifc, err := net.InterfaceByIndex(p.ifindex)
			if err != nil {
				return err
			}
			addrs, err := ifc.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
						is.Addrs = append(is.Addrs, ip.Unmap())
					}
				}
			}
			return err
		})
		if err != nil || len(is.Addrs) == 0 {
			is.Addrs = nil
			for _, a := range [][16]byte{p.addr4, p.addr6} {
				if a != [16]byte{} {
					is.Addrs = append(is.Addrs, netip.AddrFrom16(a).Unmap())
				}
			}
		}
		s.Interfaces[i] = is
	}
	for _, w := range e.workers {
		s.Workers = append(s.Workers, WorkerStatus{ID: w.id, Queue: w.id, CPU: int(w.pinned.Load())})
	}
	return s
}

// fragCounters publish a worker's frag.Stats (the table's plain counters,
// which only the worker may read) to other goroutines: flush copies them
// once per batch.
type fragCounters struct {
	noted, followed, held, released, expiredHeld, completed, refused, expiredState atomic.Uint64
}

// publish copies s. The owning worker only. held is stored before
// released and expiredHeld, so a reader loading them in the opposite order
// (load) never sees more frames leave than entered.
func (c *fragCounters) publish(s *frag.Stats) {
	storeChanged(&c.held, s.Held)
	storeChanged(&c.released, s.Released)
	storeChanged(&c.expiredHeld, s.ExpiredHeld)
	storeChanged(&c.noted, s.Noted)
	storeChanged(&c.followed, s.Followed)
	storeChanged(&c.completed, s.Completed)
	storeChanged(&c.refused, s.Refused)
	storeChanged(&c.expiredState, s.ExpiredState)
}

// storeChanged stores v in a unless a holds it already (the load of the
// worker's own cache line is cheaper than a store, and most batches see no
// fragment).
func storeChanged(a *atomic.Uint64, v uint64) {
	if a.Load() != v {
		a.Store(v)
	}
}

// load reads what publish stored. Any goroutine.
func (c *fragCounters) load() frag.Stats {
	var s frag.Stats
	s.Released, s.ExpiredHeld = c.released.Load(), c.expiredHeld.Load()
	s.Held = c.held.Load()
	s.Noted, s.Followed, s.Completed = c.noted.Load(), c.followed.Load(), c.completed.Load()
	s.Refused, s.ExpiredState = c.refused.Load(), c.expiredState.Load()
	return s
}
