package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asavie/xdp"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/frag"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/internal/spsc"
	"github.com/edgegw/edge/snat"
)

// Interface names one side of the gateway.
type Interface struct {
	Name string
	MTU  int      // 0: the link's MTU
	URPF URPFMode // reverse-path check of what arrives here; zero: strict inside, loose outside
}

// Config is everything the data plane needs, as plain Go values (the
// config file and the control plane translate into it).
type Config struct {
	Inside, Outside Interface
	Queues          int   // AF_XDP queues (= workers) per interface; default 1
	CPUs            []int // CPU for each worker's thread (by queue); empty: not pinned
	Routes          []Route
	KernelRoutes    bool         // also use the kernel's main table for the two interfaces (re-read every second)
	MaxKernelRoutes int          // refuse a kernel table with more routes than this (0: DefaultMaxKernelRoutes)
	Management      []netip.Addr // addresses whose IP traffic goes to the kernel
	Rules           firewall.RuleSet
	SNAT            *snat.Config // nil: no translation
	Conntrack       conntrack.Config
	// ForwardSourceRouted forwards IPv4 packets with a loose or strict
	// source route option; by default they are dropped (source_routed).
	ForwardSourceRouted bool

	Frames     int  // UMEM frames per queue, shared by its two sockets (xsk.go); default 4 x Ring
	Ring       int  // descriptors per ring; default 2048
	NeedWakeup bool // honour AF_XDP need_wakeup (default on via DefaultConfig)
	Hugepages  bool // UMEM on hugepages when reserved
	Logf       func(format string, args ...any)

	// BusyPoll: busy polling of the sockets (poll.go); off by default.
	BusyPoll BusyPoll
}

// MaxMTU is the largest IP packet a 2,048-byte AF_XDP frame receives: the
// kernel keeps 256 bytes of headroom (XDP_PACKET_HEADROOM) and the
// Ethernet header takes 14.
const MaxMTU = 2048 - 256 - 14

// Engine is a running data plane: the XDP program on both interfaces, one
// AF_XDP socket per queue and interface, one worker per queue.
type Engine struct {
	cfg           Config                 // as given to New, defaults applied: the fields fixed while running
	cur           atomic.Pointer[Config] // the configuration in force (Apply replaces it whole)
	natCfg        *snat.Config           // SNAT in force, automap address resolved; nil: off (under applyMu)
	gen           atomic.Uint64          // configuration generation: 1 at New, +1 per Apply that changed something
	applyMu       sync.Mutex             // serializes Apply (and SetRules)
	routeMu       sync.Mutex             // serializes route compilation and swap (Apply, kernel refresh)
	loadedCfg     *Config                // the configuration loadRoutes last built the table from (under routeMu)
	loadedKernel  []Route                // the kernel routes it last built the table with (under routeMu)
	routesRefused atomic.Uint64          // kernel-route refreshes refused (too many routes, netlink errors)
	table         *conntrack.Table
	fw            firewall.Active
	ruleSets      ruleSets // names of the recent rule sets, by epoch
	routes        atomic.Pointer[Routes]
	neigh         *Neighbours
	progs         [2]*Program // one per interface: an xsks slot serves one (interface, queue)
	nat           *snat.NAT
	ns            netns.NsHandle   // the namespace New ran in
	hasNS         bool             // ns is open (false in kernel-free tests)
	forwarding    kernelForwarding // the kernel's forwarding switches as New found them
	logMu         sync.Mutex       // one rule-log reader at a time
	logFanIn      spsc.FanIn       // ReadRuleLogs' reader state (under logMu)
	evMu          sync.Mutex       // one event reader at a time
	evFanIn       spsc.FanIn       // ReadEvents' reader state (under evMu)
	trace         traceControl     // edge trace (trace.go)
	capture       captureControl   // edge capture (capture.go)
	ports         [2]port
	workers       []*worker
	start         time.Time
	stop          chan struct{}
	wg            sync.WaitGroup
}

// now is the engine's monotonic clock in conntrack units.
func (e *Engine) now() conntrack.Time { return conntrack.Time(time.Since(e.start)) }

// New sets the data plane up: it must run on a thread in the network
// namespace of the interfaces (edge runs wholly inside it). On error
// everything done so far is undone (Close), and the error is one line that
// names the interface at fault.
func New(cfg Config) (_ *Engine, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if err := checkManagement(cfg.Management); err != nil {
		return nil, err
	}
	if cfg.Inside.Name == cfg.Outside.Name {
		return nil, fmt.Errorf("interfaces: inside and outside are both %q; edge forwards between two interfaces", cfg.Inside.Name)
	}
	e := &Engine{cfg: cfg, start: time.Now(), stop: make(chan struct{})}
	cur := cfg
	e.cur.Store(&cur)
	e.gen.Store(1)
	if e.ns, err = netns.Get(); err != nil {
		return nil, err
	}
	e.hasNS = true
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	// Fail closed: the kernel must not forward around edge. Close puts back
	// what was there.
	if err := e.forwarding.turnOff(); err != nil {
		return nil, err
	}
	for i, ic := range []Interface{cfg.Inside, cfg.Outside} {
		side := [2]string{"inside", "outside"}[i]
		ifc, err := net.InterfaceByName(ic.Name)
		if err != nil {
			return nil, fmt.Errorf("interfaces.%s: no interface %q in this network namespace", side, ic.Name)
		}
		if ifc.Flags&net.FlagLoopback != 0 {
			return nil, fmt.Errorf("interfaces.%s: %s is a loopback interface; edge forwards between two network interfaces", side, ic.Name)
		}
		// Only queue 0 gets a socket (see Queues): an interface with more
		// receive queues would drop (fail closed) what RSS puts elsewhere.
		if rxq, _ := filepath.Glob("/sys/class/net/" + ic.Name + "/queues/rx-*"); len(rxq) > cfg.Queues {
			return nil, fmt.Errorf("interfaces.%s: %s has %d receive queues and edge serves %d; reduce them (ethtool -L %s combined %d)",
				side, ic.Name, len(rxq), cfg.Queues, ic.Name, cfg.Queues)
		}
		p := &e.ports[i]
		p.name, p.ifindex, p.mtu = ic.Name, ifc.Index, ifc.MTU
		if ic.MTU != 0 {
			p.mtu = ic.MTU
		}
		if p.mtu > MaxMTU {
			return nil, fmt.Errorf("interfaces.%s.mtu: %s's MTU %d is larger than an AF_XDP frame holds (%d); set mtu: %d or lower the link's",
				side, ic.Name, p.mtu, MaxMTU, MaxMTU)
		}
		// Router advertisements reach the kernel (the XDP program passes
		// ND): the box must not take routes or addresses from them.
		_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+ic.Name+"/accept_ra", []byte("0\n"), 0)
		copy(p.mac[:], ifc.HardwareAddr)
		p.addr4, p.addr6 = ifaceAddrs(ifc)
		p.zone = [2]firewall.Zone{firewall.Inside, firewall.Outside}[i]
	}
	if err := e.loadRoutes(); err != nil {
		return nil, err
	}
	cfg.Conntrack.Shards = cfg.Queues
	if cfg.Conntrack.Logf == nil {
		cfg.Conntrack.Logf = cfg.Logf
	}
	if e.table, err = conntrack.New(cfg.Conntrack); err != nil {
		return nil, err
	}
	fw, err := firewall.Compile(cfg.Rules, e.table.ProfileIndex)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	e.ruleSets.add(fw)
	e.fw.Store(fw)
	for i := range e.progs {
		if e.progs[i], err = NewProgram(cfg.Queues); err != nil {
			return nil, err
		}
		for _, a := range cfg.Management {
			if err := e.progs[i].AddManagement(a); err != nil {
				return nil, err
			}
		}
	}
	// The NAT exists even without SNAT (off: it translates nothing), so
	// Apply can turn SNAT on and off while flows run.
	if cfg.SNAT != nil {
		sc, err := e.resolveSNAT(cfg.SNAT, cfg.Outside.Name)
		if err != nil {
			return nil, err
		}
		if err := checkManagementSNAT(cfg.Management, sc); err != nil {
			return nil, err
		}
		if e.nat, err = snat.New(*sc, e.table); err != nil {
			return nil, err
		}
		e.natCfg = sc
		cfg.Logf("dataplane: SNAT %v", sc.Mode)
	} else {
		e.nat = snat.NewOff(e.table)
	}
	e.neigh = NewNeighbours(e.ports[0].ifindex, e.ports[1].ifindex)
	for q := 0; q < cfg.Queues; q++ {
		w := newWorker(e, q)
		e.workers = append(e.workers, w) // now, so Close releases its sockets on error
		if q < len(cfg.CPUs) {
			w.cpu = cfg.CPUs[q]
		}
		for i := range e.ports {
			// Each worker has its own socket per port; its two sockets
			// share one UMEM of cfg.Frames frames (xsk.go), each with its
			// own fill and completion rings. The RX ring is twice the
			// fill ring: the fill ring is topped up every loop while
			// frames still wait in the RX ring, so a worker descheduled
			// with a backlog still finds room for a whole fill ring's
			// worth of frames (with equal rings the RX ring overflowed
			// first: rx_ring_full).
			pc := e.ports[i]
			opts := socketOptions(cfg.Frames, cfg.Ring, cfg.NeedWakeup, cfg.Hugepages)
			if i == 0 {
				pc.sock, err = xdp.NewSocket(pc.ifindex, q, &opts)
			} else {
				pc.sock, err = xdp.NewSharedSocket(pc.ifindex, q, w.ports[0].sock, &opts)
			}
			if err != nil {
				side := [2]string{"inside", "outside"}[i]
				if errors.Is(err, unix.EBUSY) {
					return nil, fmt.Errorf("interfaces.%s: %s queue %d already has an AF_XDP socket (is another edge running on %s?)",
						side, pc.name, q, pc.name)
				}
				if i == 1 {
					return nil, fmt.Errorf("interfaces.%s: AF_XDP socket on %s queue %d sharing the UMEM of %s's (XDP_SHARED_UMEM across interfaces needs Linux 5.10 or later): %w",
						side, pc.name, q, e.ports[0].name, err)
				}
				return nil, fmt.Errorf("interfaces.%s: AF_XDP socket on %s queue %d: %w", side, pc.name, q, err)
			}
			if q == 0 {
				e.ports[i].zeroCopy = pc.sock.ZeroCopy()
				if !e.ports[i].zeroCopy {
					cfg.Logf("dataplane: %s: AF_XDP in copy mode (the driver has no zero-copy support)", pc.name)
				}
			}
			w.ports[i] = &pc
			if err := pc.setSocketOptions(cfg.BusyPoll, q); err != nil {
				return nil, err
			}
		}
		// Hand the kernel receive frames before any packet can be
		// redirected to the sockets.
		w.initFrames(cfg.Ring)
		w.nat = e.nat.Allocator(q)
	}
	// Every worker can hand frames to every other one, and to itself (the
	// loop ring of hairpinned packets).
	for _, w := range e.workers {
		w.outbox = make([]*handoff, len(e.workers))
		w.inbox = make([]*handoff, len(e.workers))
		w.peers = e.workers
	}
	for _, from := range e.workers {
		for _, to := range e.workers {
			// 1,024 frames of 2 KiB (2 MiB) per ordered pair of
			// workers: 128 filled in under half a millisecond at
			// the rates a worker forwards, less than one
			// scheduling slice of the owner's CPU (handoff_full).
			// A worker's own loop ring takes only hairpinned packets.
			n := handoffSlots(cfg.Queues)
			if from == to {
				n = loopSlots
			}
			r := newHandoff(n)
			from.outbox[to.id], to.inbox[from.id] = r, r
		}
	}
	if len(e.workers) > 1 {
		// A worker sleeping in poll() is woken by the workers handing it
		// frames (worker.wakeIfSleeping) through this eventfd.
		for _, w := range e.workers {
			if w.wakeFD, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
				return nil, fmt.Errorf("eventfd: %w", err)
			}
		}
	}
	for _, w := range e.workers {
		for i, p := range w.ports {
			if err := e.progs[i].Register(w.id, p.sock.FD()); err != nil {
				return nil, err
			}
		}
	}
	for i := range e.ports {
		if err := e.progs[i].Attach(e.ports[i].ifindex); err != nil {
			return nil, fmt.Errorf("interfaces.%s: %w", [2]string{"inside", "outside"}[i], err)
		}
	}
	return e, nil
}

// loadRoutes compiles the routes of the configuration in force (and the
// kernel's, when it asks) and swaps them in. It runs on a thread in the
// interfaces' namespace.
// The table is rebuilt only when the configuration or the kernel's routes
// changed since the last load (a refresh of a large kernel table that did
// not change costs the netlink dump alone).
func (e *Engine) loadRoutes() error {
	e.routeMu.Lock()
	defer e.routeMu.Unlock()
	c := e.cur.Load()
	var kernel []Route
	if c.KernelRoutes {
		var err error
		if kernel, err = kernelRoutes([2]int{e.ports[0].ifindex, e.ports[1].ifindex}, maxKernelRoutes(c)); err != nil {
			return fmt.Errorf("routes_from_kernel: %w", err)
		}
	}
	if c == e.loadedCfg && slices.Equal(kernel, e.loadedKernel) && e.routes.Load() != nil {
		return nil
	}
	rt, err := NewRoutes(append(slices.Clone(c.Routes), kernel...), 2)
	if err != nil {
		return err
	}
	e.routes.Store(rt)
	e.loadedCfg, e.loadedKernel = c, kernel
	return nil
}

// compileRoutes compiles c's routes, with the kernel's when c asks. On a
// thread in the interfaces' namespace.
func (e *Engine) compileRoutes(c *Config) (*Routes, error) {
	routes := c.Routes
	if c.KernelRoutes {
		var err error
		if routes, err = withKernelRoutes(routes, [2]int{e.ports[0].ifindex, e.ports[1].ifindex}, maxKernelRoutes(c)); err != nil {
			return nil, fmt.Errorf("routes_from_kernel: %w", err)
		}
	}
	return NewRoutes(routes, 2)
}

func maxKernelRoutes(c *Config) int {
	if c.MaxKernelRoutes > 0 {
		return c.MaxKernelRoutes
	}
	return DefaultMaxKernelRoutes
}

// Run starts the workers and the neighbour mirror and returns at once.
func (e *Engine) Run() error {
	{
		// Kernel routes are re-read every second while the configuration
		// in force asks for them (Apply may turn them on or off), and so
		// are the outside interface's addresses SNAT automap translates to
		// (followAutomap).
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			runtime.LockOSThread() // discarded with the goroutine
			if err := netns.Set(e.ns); err != nil {
				e.cfg.Logf("dataplane: kernel routes: %v", err)
				return
			}
			t := time.NewTicker(time.Second)
			defer t.Stop()
			lastErr := "" // logged when it changes, not every second
			for {
				select {
				case <-e.stop:
					return
				case <-t.C:
					e.followAutomap()
					if !e.cur.Load().KernelRoutes {
						continue
					}
					err := e.loadRoutes()
					switch {
					case err != nil:
						e.routesRefused.Add(1)
						if err.Error() != lastErr {
							e.cfg.Logf("dataplane: %v (keeping the previous routes)", err)
							lastErr = err.Error()
						}
					case lastErr != "":
						e.cfg.Logf("dataplane: routes_from_kernel: imported again")
						lastErr = ""
					}
				}
			}
		}()
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		// Netlink and probe sockets must be opened in the interfaces'
		// namespace: the one New ran in. The thread stays locked and is
		// discarded when the goroutine ends.
		runtime.LockOSThread()
		if err := netns.Set(e.ns); err != nil {
			e.cfg.Logf("dataplane: neighbour mirror: %v", err)
			return
		}
		if err := e.neigh.Run(e.stop); err != nil {
			e.cfg.Logf("dataplane: neighbour mirror stopped: %v", err)
		}
	}()
	// Each worker's goroutine is locked to its thread and never blocks
	// in the Go scheduler, so it holds a P for good. With GOMAXPROCS equal
	// to the workers (the usual case: the process is confined to the
	// workers' CPUs, and Go sizes GOMAXPROCS by the affinity mask), every
	// other goroutine (neighbour mirror, control plane, stats, signal
	// handling, the garbage collector's workers) ran only when sysmon
	// preempted a worker (10 ms slices), and a worker coming back from
	// poll() had to wait for its P: stalls of milliseconds with packets
	// waiting. One spare P lets them run on their own thread; the kernel
	// shares the CPU between threads in microseconds.
	// An operator's GOMAXPROCS (the environment variable) is left alone.
	if n := len(e.workers) + 1; runtime.GOMAXPROCS(0) < n && os.Getenv("GOMAXPROCS") == "" {
		e.cfg.Logf("dataplane: GOMAXPROCS %d -> %d (one P per worker and one for the rest)", runtime.GOMAXPROCS(0), n)
		runtime.GOMAXPROCS(n)
	}
	for _, w := range e.workers {
		e.wg.Add(1)
		go func(w *worker) {
			defer e.wg.Done()
			w.run(e.stop)
		}(w)
	}
	return nil
}

// Close stops the workers, detaches the XDP program (leaving the interfaces
// as found), releases sockets and the flow table, and sets the kernel's
// forwarding switches back to what New found. New calls it on a partly
// built engine when it fails.
func (e *Engine) Close() error {
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	e.wg.Wait()
	var errs []error
	for _, p := range e.progs {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	for _, w := range e.workers {
		for _, p := range w.ports {
			if p != nil && p.sock != nil {
				if st, err := p.sock.Stats(); err == nil {
					k := st.KernelStats
					if k.Rx_dropped|k.Rx_ring_full|k.Rx_fill_ring_empty_descs|k.Rx_invalid_descs|k.Tx_invalid_descs != 0 || p.sock.TxBusy() != 0 {
						e.cfg.Logf("dataplane: %s queue %d: AF_XDP socket: rx_dropped %d rx_ring_full %d fill_ring_empty %d rx_invalid %d tx_invalid %d tx_device_drops %d",
							p.name, w.id, k.Rx_dropped, k.Rx_ring_full, k.Rx_fill_ring_empty_descs, k.Rx_invalid_descs, k.Tx_invalid_descs, p.sock.TxBusy())
					}
				}
				p.sock.Close()
			}
		}
		if w.wakeFD >= 0 {
			unix.Close(w.wakeFD)
			w.wakeFD = -1
		}
	}
	if e.table != nil {
		e.table.Close()
	}
	if e.ns.IsOpen() {
		// In the interfaces' namespace: the caller's thread may be elsewhere.
		errs = append(errs, e.inNS(e.forwarding.restore))
		e.ns.Close()
	}
	return errors.Join(errs...)
}

// forwardingFiles are the kernel's forwarding switches New turns off.
var forwardingFiles = [2]string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"}

// kernelForwarding remembers the kernel's forwarding switches as New found
// them, so that Close leaves them as they were.
type kernelForwarding struct {
	found [2][]byte // nil: not read (or absent, e.g. IPv6 disabled)
}

// turnOff records each switch and writes 0 to it.
func (k *kernelForwarding) turnOff() error {
	for i, f := range forwardingFiles {
		old, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading kernel forwarding (%s): %w", f, err)
		}
		k.found[i] = old
		if err := os.WriteFile(f, []byte("0\n"), 0); err != nil {
			return fmt.Errorf("turning kernel forwarding off (%s): %w", f, err)
		}
	}
	return nil
}

// restore writes back what turnOff found; on a thread in the namespace
// turnOff ran in (/proc/sys/net is the calling thread's namespace's).
func (k *kernelForwarding) restore() error {
	var errs []error
	for i, f := range forwardingFiles {
		if k.found[i] == nil {
			continue
		}
		if err := os.WriteFile(f, k.found[i], 0); err != nil {
			errs = append(errs, fmt.Errorf("restoring kernel forwarding (%s): %w", f, err))
		}
		k.found[i] = nil
	}
	return errors.Join(errs...)
}

// automapAddrs returns the addresses SNAT automap translates to on
// interface name: its first IPv4 address and its first global IPv6 one
// (v6 zero without both), or the IPv6 one alone.
func automapAddrs(name string) (v4, v6 netip.Addr, err error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return v4, v6, err
	}
	a4, a6 := ifaceAddrs(ifc)
	switch {
	case a4 != [16]byte{} && a6 != [16]byte{}:
		return netip.AddrFrom16(a4).Unmap(), netip.AddrFrom16(a6), nil
	case a4 != [16]byte{}:
		return netip.AddrFrom16(a4).Unmap(), v6, nil
	case a6 != [16]byte{}:
		return netip.AddrFrom16(a6), v6, nil
	}
	return v4, v6, errors.New("interface " + name + " has no address")
}

// ifaceAddrs returns the first IPv4 and the first global IPv6 address of
// ifc in 16-byte form (zero when absent): the sources of ICMP errors edge
// sends out of it.
func ifaceAddrs(ifc *net.Interface) (v4, v6 [16]byte) {
	addrs, _ := ifc.Addrs()
	var have4, have6 bool
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, _ := netip.AddrFromSlice(ipn.IP)
		ip = ip.Unmap()
		switch {
		case ip.Is4() && !have4:
			v4, have4 = ip.As16(), true
		case ip.Is6() && ip.IsGlobalUnicast() && !have6:
			v6, have6 = ip.As16(), true
		}
	}
	return v4, v6
}

// NAT returns the SNAT state (nil without SNAT), for the control plane.
func (e *Engine) NAT() *snat.NAT { return e.nat }

// Table returns the connection-tracking table (for the control plane).
func (e *Engine) Table() *conntrack.Table { return e.table }

// SetRules compiles and swaps in a new rule set; on error nothing changes.
// It is Apply of the configuration in force with rs as its rules.
func (e *Engine) SetRules(rs firewall.RuleSet) error {
	c := *e.Config()
	c.Rules = rs
	_, err := e.Apply(c, false)
	return err
}

// ReadRuleLogs moves the queued rule-log records of the workers into out
// and returns how many, every worker getting a fair share of out
// (spsc.Drain). One reader at a time.
func (e *Engine) ReadRuleLogs(out []RuleLog) int {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return spsc.Drain(&e.logFanIn, out, len(e.workers), func(i int, dst []RuleLog) int {
		return e.workers[i].ruleLog.Read(dst)
	})
}

// RuleName returns the name of rule i of the current rule set.
func (e *Engine) RuleName(i int32) string { return e.fw.Load().RuleName(i) }

// FlowRuleName names a flow's rule (FlowInfo.Rule, Incarnation.Rule): the
// rule of the rule set the flow was created under, "default" for the
// default action, or "rules[i] (rule set n)" once that rule set is older
// than the last maxRuleSets applied.
func (e *Engine) FlowRuleName(rule uint32) string { return e.ruleSets.name(rule) }

// handoffSlots sizes the hand-off ring of each ordered pair of workers:
// 1,024 frames (2 MiB) with 2 queues, fewer with more queues so that all
// rings together stay within 64 MiB (q*(q-1) rings), never below 128.
// loopSlots is the size of a worker's own loop ring: hairpinned packets
// looped back within one loop (256 frames of 2 KiB: 512 KiB per worker).
const loopSlots = 256

func handoffSlots(queues int) int {
	n := 1024
	for n > 128 && queues*(queues-1)*n*2048 > 64<<20 {
		n /= 2
	}
	return n
}

// maxRuleSets is how many rule sets' names FlowRuleName remembers.
const maxRuleSets = 1024

// ruleSets numbers the rule sets the engine compiles (firewall epochs) and
// keeps the names of the last maxRuleSets. Control plane only: New and
// Apply add, FlowRuleName reads; the workers only carry the epoch.
type ruleSets struct {
	mu    sync.Mutex
	next  uint16
	names map[uint16][]string
	order []uint16 // epochs, oldest first
}

func (r *ruleSets) add(c *firewall.Compiled) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names == nil {
		r.names = make(map[uint16][]string)
	}
	ep := r.next
	r.next++
	c.SetEpoch(ep)
	if len(r.order) == maxRuleSets {
		delete(r.names, r.order[0])
		r.order = r.order[1:]
	}
	r.names[ep] = c.Names()
	r.order = append(r.order, ep)
}

func (r *ruleSets) name(rule uint32) string {
	idx, ep := int(rule&0xffff)-1, uint16(rule>>16)
	if idx < 0 {
		return "default"
	}
	r.mu.Lock()
	names, ok := r.names[ep]
	r.mu.Unlock()
	if ok && idx < len(names) {
		return names[idx]
	}
	return "rules[" + strconv.Itoa(idx) + "] (rule set " + strconv.Itoa(int(ep)) + ")"
}

// Stats are the data plane's counters summed over workers.
type Stats struct {
	RX, TX      [2]uint64 // per port: 0 inside, 1 outside
	Drops       [drop.NumReasons]uint64
	Created     uint64
	ICMP        [icmp.NumKinds]uint64 // errors sent, indexed by icmp.Kind
	RST         uint64                // TCP resets sent for reject rules
	RuleLogLost uint64                // rule-log records lost to a full ring
	Handoff     uint64                // frames handed to the worker owning their flow
	EventsLost  uint64                // worker events lost to full rings
	XDP         ProgStats             // both interfaces' programs summed

	KernelRoutesRefused uint64 // refreshes of routes_from_kernel refused (more than routes_from_kernel_max, netlink errors)

	Neighbours NeighbourStats // the neighbour mirror (fragments: per worker)

	Workers []WorkerStats // by worker
	Ports   [2]PortStats  // 0 inside, 1 outside
}

// WorkerStats are one worker's counters.
type WorkerStats struct {
	ID          int
	RX, TX      [2]uint64 // per port: 0 inside, 1 outside
	Drops       [drop.NumReasons]uint64
	Created     uint64
	ICMP        [icmp.NumKinds]uint64
	RST         uint64
	RuleLogLost uint64
	Handoff     uint64
	EventsLost  uint64
	Flows       int64      // live flows in the worker's conntrack shard
	Fragments   frag.Stats // its fragment table's counters (published once per batch)
}

// PortStats are one interface's counters.
type PortStats struct {
	Name   string
	RX, TX uint64    // summed over workers
	XDP    ProgStats // its XDP program's verdicts
	XSK    XSKStats  // its AF_XDP sockets' kernel counters, summed over workers
}

// XSKStats are the kernel's counters of AF_XDP sockets (XDP_STATISTICS):
// frames the XDP program redirected that never reached a worker. With a
// worker that keeps up they stay zero; FillRingEmpty is what a worker too
// slow to drain its RX ring shows (the received frames are the fill ring's
// share of the UMEM, so a backlog empties the fill ring before the RX ring
// is full).
type XSKStats struct {
	RxDropped     uint64 // the kernel's rx_dropped: oversize frames and FillRingEmpty (not RxRingFull)
	RxRingFull    uint64 // RX ring full
	FillRingEmpty uint64 // no frame in the fill ring
	RxInvalid     uint64 // invalid fill descriptors
	TxInvalid     uint64 // invalid TX descriptors
	TxDeviceDrops uint64 // copy mode: frames the device dropped when handed over (sendto EBUSY)
}

// Stats must not run concurrently with Close (the control plane's
// EngineBackend.Close makes sure of it).
//
// Stats reads every worker's counters (published once per batch) and the
// XDP programs' and sums them; safe from any goroutine until Close. Nothing is
// counted for it on the packet path.
func (e *Engine) Stats() Stats {
	var s Stats
	for _, w := range e.workers {
		ws := w.stats()
		for i := range s.RX {
			s.RX[i] += ws.RX[i]
			s.TX[i] += ws.TX[i]
			s.Ports[i].RX += ws.RX[i]
			s.Ports[i].TX += ws.TX[i]
		}
		for r := range s.Drops {
			s.Drops[r] += ws.Drops[r]
		}
		s.Created += ws.Created
		for k := range s.ICMP {
			s.ICMP[k] += ws.ICMP[k]
		}
		s.RST += ws.RST
		s.RuleLogLost += ws.RuleLogLost
		s.Handoff += ws.Handoff
		s.EventsLost += ws.EventsLost
		s.Workers = append(s.Workers, ws)
	}
	for _, w := range e.workers {
		for i, p := range w.ports {
			if p == nil || p.sock == nil {
				continue
			}
			// A getsockopt; the socket's user-space state is not touched,
			// so any goroutine may ask while the worker runs.
			if st, err := p.sock.Stats(); err == nil {
				k, x := st.KernelStats, &s.Ports[i].XSK
				x.RxDropped += k.Rx_dropped
				x.RxRingFull += k.Rx_ring_full
				x.FillRingEmpty += k.Rx_fill_ring_empty_descs
				x.RxInvalid += k.Rx_invalid_descs
				x.TxInvalid += k.Tx_invalid_descs
			}
			s.Ports[i].XSK.TxDeviceDrops += p.sock.TxBusy()
		}
	}
	s.KernelRoutesRefused = e.routesRefused.Load()
	if e.neigh != nil {
		s.Neighbours = e.neigh.Stats()
	}
	for i, p := range e.progs {
		s.Ports[i].Name = e.ports[i].name
		if p == nil {
			continue
		}
		ps, _ := p.Stats()
		s.Ports[i].XDP = ps
		s.XDP.Redirected += ps.Redirected
		s.XDP.NoSocket += ps.NoSocket
		s.XDP.Passed += ps.Passed
		s.XDP.Other += ps.Other
	}
	return s
}

// stats reads w's published counters. Any goroutine.
func (w *worker) stats() WorkerStats {
	ws := WorkerStats{ID: w.id}
	c := &w.ctr
	for i := range ws.RX {
		ws.RX[i] = c.rx[i].Load()
		ws.TX[i] = c.tx[i].Load()
	}
	for r := range ws.Drops {
		ws.Drops[r] = c.drops[r].Load()
	}
	for k := range ws.ICMP {
		ws.ICMP[k] = c.icmp[k].Load()
	}
	ws.Created, ws.RST, ws.RuleLogLost = c.created.Load(), c.rst.Load(), c.ruleLogLost.Load()
	ws.Handoff, ws.EventsLost = c.handoff.Load(), c.eventsLost.Load()
	ws.Fragments = c.frags.load()
	if w.shard != nil {
		ws.Flows = w.env.table.ShardStats(w.shard.ID()).Flows
	}
	return ws
}

// newWorker makes worker q of e (sockets, SNAT allocator, hand-off rings
// and peers are set by the caller).
func newWorker(e *Engine, q int) *worker {
	env := workerEnv{cfg: &e.cfg, cur: &e.cur, table: e.table, routes: &e.routes, fw: &e.fw,
		neigh: e.neigh, trace: &e.trace, capture: &e.capture, clock: e.now}
	w := &worker{env: env, id: q, shard: e.table.Shard(q), cpu: -1, wakeFD: -1}
	w.pinned.Store(-1)
	w.ruleLog.Init(1024)
	w.events.Init(eventRingSize)
	w.frags = newFragTable()
	w.held.frames = make([]heldFrame, holdSlots)
	return w
}
