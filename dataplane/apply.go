package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"slices"

	"github.com/vishvananda/netns"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/snat"
)

// Live configuration.
//
// Apply replaces the configuration in force while the workers forward. What
// the workers read per packet is already an immutable snapshot behind an
// atomic pointer (the compiled rules, the routes, conntrack's policy, the
// SNAT settings), so applying is: build and validate every new snapshot
// off to the side, and only when all of them are good, swap them in, one
// pointer store each. A worker sees each new snapshot from its next packet
// (SNAT: its next new flow). Nothing a worker owns is touched. A dry run
// stops after the validation and changes nothing at all.
//
// All or nothing. Only two commit steps can fail, and they go first: the
// XDP programs' management maps (an addition can fail; the additions made
// are then removed) and interning the new SNAT addresses in conntrack
// (fails only if the table of 65,535 addresses filled since validation);
// if the second fails, the management change is undone. Then the swaps,
// which cannot fail, in this order: conntrack policy, compiled rules,
// routes and the configuration returned by Config, SNAT settings.
//
// Each swap is atomic, the set of them is not: a packet handled while
// Apply runs may see some new snapshots and some old ones, e.g. a new flow
// allowed by the new rules but translated with the old SNAT settings, or
// judged by the old rules with the new profiles. Every mix is safe, because
// each snapshot is complete and valid on its own and the ones that refer
// to each other are swapped so that every reference resolves: the policy
// goes before the rules, and in the stable layout (below) every profile
// index of the old rules names the same profile in the new policy, so a
// rule never names a missing or another profile; the SNAT addresses are
// interned and known before the SNAT settings that use them, and stay so,
// so a flow translated by the old settings a moment after the new rules
// took over is tracked, rewritten and released like any flow created
// just before the apply (it keeps its translation until it ends, as those
// do). Management addresses are looked up per packet by the XDP programs,
// each map update atomic; SNAT never translates to one (checked against
// the new SNAT settings).
//
// What changes live: rules and default_action, routes and
// routes_from_kernel, management (the XDP programs' maps), the conntrack
// policy (profiles, liberal, pickup, nsx_compat, nsx_shadow) and snat (on, off, mode,
// addresses, ports, quarantine), the interfaces' urpf modes and
// source_route (read per batch by the workers). What is fixed while
// running, refused with an error naming the field and wrapping
// ErrRestartRequired: the interfaces (names, MTU), queues, cpus, hugepages, xdp.*,
// conntrack.max_flows and conntrack.history (they size or bind resources
// made at start).
//
// Existing flows after an apply:
//
//   - Rules: a firewall decides a flow's first packet only (the flow's
//     later packets match its conntrack entry), so flows that existed
//     before the apply keep forwarding even when the new rules would now
//     deny them, as established connections do on any stateful firewall
//     (nftables' "ct state established accept" first, pf's "keep state").
//     Flush them (conntrack.Table.Flush, `edge flush`) to make the new
//     rules judge them again: their next packet is then a new flow (TCP:
//     only a SYN opens one, so a mid-stream packet is dropped as no_state).
//     A flow's rule index (FlowInfo.Rule) names a rule of the rule set it
//     was created under.
//   - Profiles: a flow stores its profile by index, so Apply keeps every
//     profile name at the index it had (stable layout), whatever the order
//     of the new list: a flow keeps its profile, and a changed profile's
//     timers apply to its flows from their next packet. A profile the new
//     configuration drops stays in its slot, which rules cannot name, so
//     its flows keep their timers until they end; its slot is reused only
//     when the 255 slots run out (refused if none is free). The first
//     profile (index 0: flows of rules naming none and of default_action) is
//     fixed while running: a list that puts another one first is refused
//     (ErrRestartRequired), since the flows holding index 0 would
//     otherwise move to its timers. (Configuration files always put
//     "default" first.)
//   - SNAT: a flow keeps the translation it was created with until it ends,
//     whatever the new configuration (its address stays interned in
//     conntrack); its port is then released and quarantined as usual. New
//     flows take the new addresses, range and quarantine. Turning SNAT off
//     stops translating new flows only; turning it on translates new flows
//     from the inside from then on.
//   - Routes, management addresses: per packet, so existing flows follow
//     them at once.

// ErrRestartRequired is wrapped by Apply's error for a field that cannot
// change while edge runs (the control plane maps it to its own
// ctl.ErrImmutable).
var ErrRestartRequired = errors.New("cannot change while edge runs; restart edge")

// defaults fills c's defaults and checks the fields New and Apply both
// need in range.
func (c *Config) defaults() error {
	if c.Queues == 0 {
		c.Queues = 1
	}
	if c.Queues < 1 || c.Queues > 16 {
		return errors.New("queues: must be between 1 and 16")
	}
	if c.Ring == 0 {
		c.Ring = 2048
	}
	if c.Frames == 0 {
		// One UMEM per queue serves both ports: two fill rings and two
		// TX rings, full (fillTarget).
		c.Frames = 4 * c.Ring
	}
	if c.Frames < 2*c.Ring {
		return fmt.Errorf("xdp.frames: %d frames cannot serve two %d-descriptor fill rings and transmit too (need at least %d)",
			c.Frames, c.Ring, 2*c.Ring)
	}
	if c.Conntrack.MaxFlows == 0 {
		c.Conntrack.MaxFlows = 1 << 20
	}
	if c.Conntrack.HistorySize == 0 {
		c.Conntrack.HistorySize = 16384
	}
	return nil
}

// checkImmutable returns the first field that differs between the
// configuration in force and c among those fixed while running.
func checkImmutable(old, c *Config) error {
	for _, f := range []struct {
		field    string
		was, now any
	}{
		{"interfaces.inside.name", old.Inside.Name, c.Inside.Name},
		{"interfaces.inside.mtu", old.Inside.MTU, c.Inside.MTU},
		{"interfaces.outside.name", old.Outside.Name, c.Outside.Name},
		{"interfaces.outside.mtu", old.Outside.MTU, c.Outside.MTU},
		{"queues", old.Queues, c.Queues},
		{"cpus", fmt.Sprint(old.CPUs), fmt.Sprint(c.CPUs)},
		{"hugepages", old.Hugepages, c.Hugepages},
		{"xdp.frames", old.Frames, c.Frames},
		{"xdp.ring", old.Ring, c.Ring},
		{"xdp.need_wakeup", old.NeedWakeup, c.NeedWakeup},
		{"xdp.busy_poll", old.BusyPoll, c.BusyPoll},
		{"conntrack.max_flows", old.Conntrack.MaxFlows, c.Conntrack.MaxFlows},
		{"conntrack.history", old.Conntrack.HistorySize, c.Conntrack.HistorySize},
		{"conntrack.event_ring_size", old.Conntrack.EventRingSize, c.Conntrack.EventRingSize},
		{"conntrack.memory", old.Conntrack.Memory, c.Conntrack.Memory},
	} {
		if f.was != f.now {
			return fmt.Errorf("%s: %w (running with %v, asked for %v)", f.field, ErrRestartRequired, f.was, f.now)
		}
	}
	return nil
}

// checkManagement checks the management addresses: valid, each once, and
// no more per family than the XDP program's maps hold.
func checkManagement(ms []netip.Addr) error {
	var n4, n6 int
	seen := map[netip.Addr]bool{}
	for i, a := range ms {
		field := fmt.Sprintf("management[%d]", i)
		switch {
		case !a.IsValid():
			return errors.New(field + ": not an address")
		case a.Is4In6() || a.Zone() != "":
			return fmt.Errorf("%s: %v: write IPv4 addresses as IPv4, without a zone", field, a)
		case seen[a]:
			return fmt.Errorf("%s: %v appears twice", field, a)
		}
		seen[a] = true
		if a.Is4() {
			n4++
		} else {
			n6++
		}
	}
	if n4 > maxManagement || n6 > maxManagement {
		return fmt.Errorf("management: at most %d addresses per family", maxManagement)
	}
	return nil
}

// checkManagementSNAT refuses management addresses that SNAT translates to:
// replies to translated flows are addressed to them, and the XDP program
// would hand them all to the kernel.
func checkManagementSNAT(ms []netip.Addr, sc *snat.Config) error {
	if sc == nil {
		return nil
	}
	for _, m := range ms {
		if sc.Mode == snat.Automap && (m == sc.Automap || m == sc.Automap6) {
			return fmt.Errorf("management: %v is the SNAT automap address; use another address for management", m)
		}
		for _, pool := range sc.Pools {
			for _, a := range pool.Addrs {
				if a == m {
					return fmt.Errorf("management: %v is in SNAT pool %q", m, pool.Name)
				}
			}
			for _, r := range pool.Ranges {
				if m.Compare(r.Start) >= 0 && m.Compare(r.End) <= 0 {
					return fmt.Errorf("management: %v is in SNAT pool %q", m, pool.Name)
				}
			}
		}
	}
	return nil
}

// resolveSNAT returns a copy of c with the automap addresses filled in from
// interface outside when c names none: its first IPv4 address and its
// first global IPv6 address, either or both (a dual-stack outside
// interface translates both families).
func (e *Engine) resolveSNAT(c *snat.Config, outside string) (*snat.Config, error) {
	sc := *c
	sc.Pools = slices.Clone(c.Pools)
	if sc.Mode == snat.Automap && !sc.Automap.IsValid() {
		err := e.inNS(func() (err error) {
			sc.Automap, sc.Automap6, err = automapAddrs(outside)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("snat.address: automap: %w", err)
		}
	}
	return &sc, nil
}

// followAutomap re-reads the outside interface's addresses when SNAT
// automap takes them from it (no address configured) and, when they
// changed, puts a configuration with the new ones in force, as Apply would:
// new flows take the new addresses; flows translated to an old one keep it
// until they end (snat keeps every address it ever had known). It runs on
// a thread in the interfaces' namespace, once a second; a failure is
// logged and the addresses in force are kept.
func (e *Engine) followAutomap() {
	want := e.cur.Load().SNAT
	if want == nil || want.Mode != snat.Automap || want.Automap.IsValid() || e.nat == nil {
		return
	}
	v4, v6, err := automapAddrs(e.cfg.Outside.Name)
	if err != nil {
		return // no address now: keep the last ones until one comes back
	}
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	cur := e.natCfg
	if cur == nil || cur.Mode != snat.Automap || cur.Automap == v4 && cur.Automap6 == v6 {
		return
	}
	sc := *cur
	sc.Automap, sc.Automap6 = v4, v6
	if err := checkManagementSNAT(e.cur.Load().Management, &sc); err != nil {
		e.cfg.Logf("dataplane: snat automap: the outside interface's addresses changed to %v %v: %v (keeping %v %v)", v4, v6, err, cur.Automap, cur.Automap6)
		return
	}
	snap, err := e.nat.Prepare(&sc)
	if err == nil {
		err = e.nat.Install(snap)
	}
	if err != nil {
		e.cfg.Logf("dataplane: snat automap: %v (keeping %v %v)", err, cur.Automap, cur.Automap6)
		return
	}
	e.natCfg = &sc
	e.cfg.Logf("dataplane: snat automap: the outside interface's addresses are now %v %v (were %v %v): new flows take them", v4, v6, cur.Automap, cur.Automap6)
}

// inNS runs fn on a thread in the interfaces' network namespace (on the
// caller's thread in kernel-free tests). The thread used is discarded.
func (e *Engine) inNS(fn func() error) error {
	if !e.hasNS {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := netns.Set(e.ns); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// stablePolicy lays want's profiles out so that every profile of the
// policy in force keeps its index (flows store the index): profile 0 keeps
// its name with want's timers (it must be want's first: it is the profile
// of flows that name none, so it cannot become another profile while
// flows hold index 0), names both policies have keep their slots with
// want's timers, new names take new slots, and a name want drops keeps its
// slot and timers (its flows run out under them) until slots run out. It
// returns the policy to install and the index of each of want's names,
// for compiling rules; a retired profile is not one of them, so rules
// cannot name it. There is no other layout: when this one is impossible
// (the first profile changes, or more than 255 slots would be needed) it
// fails, and the apply is refused.
func stablePolicy(cur, want conntrack.Policy) (conntrack.Policy, func(string) (uint8, bool), error) {
	wantP := want.Profiles
	if len(wantP) == 0 {
		wantP = []conntrack.Profile{conntrack.DefaultProfile}
	}
	if err := conntrack.ValidatePolicy(conntrack.Policy{Profiles: wantP}); err != nil {
		return conntrack.Policy{}, nil, err
	}
	old := cur.Profiles
	if len(old) == 0 {
		old = []conntrack.Profile{conntrack.DefaultProfile}
	}
	if wantP[0].Name != old[0].Name {
		return conntrack.Policy{}, nil, fmt.Errorf("the first profile is the one of flows that name none: it is %q while edge runs, so %q cannot take its place (put %q first): %w",
			old[0].Name, wantP[0].Name, old[0].Name, ErrRestartRequired)
	}
	wantIdx := make(map[string]int, len(wantP))
	for i, p := range wantP {
		wantIdx[p.Name] = i
	}
	out := slices.Clone(old)
	out[0] = wantP[0]
	placed := map[string]int{wantP[0].Name: 0}
	var retired []int
	for i := 1; i < len(old); i++ {
		if j, ok := wantIdx[old[i].Name]; ok {
			out[i] = wantP[j] // j != 0: names are unique in old
			placed[old[i].Name] = i
		} else {
			retired = append(retired, i)
		}
	}
	for _, p := range wantP[1:] {
		if _, done := placed[p.Name]; done {
			continue
		}
		switch {
		case len(out) < 255:
			out = append(out, p)
			placed[p.Name] = len(out) - 1
		case len(retired) > 0:
			out[retired[0]] = p
			placed[p.Name] = retired[0]
			retired = retired[1:]
		default:
			return conntrack.Policy{}, nil, fmt.Errorf("%d profiles and the %d slots of retired profiles whose flows may still live: more than 255 (restart edge to free them)",
				len(wantP), len(out)-len(wantP))
		}
	}
	pol := want
	pol.Profiles = out
	if err := conntrack.ValidatePolicy(pol); err != nil {
		return conntrack.Policy{}, nil, err // not reached: want's names are unique, retired ones are not among them
	}
	index := func(name string) (uint8, bool) {
		i, ok := placed[name]
		return uint8(i), ok
	}
	return pol, index, nil
}

// testAfterManagement, if set (tests only), runs between Apply's
// management step and the next, to make a later step fail.
var testAfterManagement func()

// Apply validates cfg whole against the running engine and, unless dryRun,
// puts it in force; see the top of apply.go for what changes live and what
// happens to existing flows. On any error nothing changed; the error names
// the field, and wraps ErrRestartRequired for fields fixed while running.
// A dry run changes nothing at all (not even the SNAT addresses interned
// in conntrack). changed lists the top-level configuration-file fields
// that differ from the configuration in force ("interfaces" for their
// urpf, "rules", "default_action", "routes", "routes_from_kernel",
// "management", "conntrack", "profiles", "nsx_compat", "nsx_shadow", "snat",
// "source_route"), in the file's order; with dryRun they are what would
// change. cfg.Logf is ignored (New's stays). Safe from any goroutine
// while the workers run; applies are serialized.
func (e *Engine) Apply(cfg Config, dryRun bool) (changed []string, err error) {
	e.applyMu.Lock()
	defer e.applyMu.Unlock()
	old := e.cur.Load()
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	cfg.Logf = old.Logf
	if err := checkImmutable(old, &cfg); err != nil {
		return nil, err
	}
	if err := checkManagement(cfg.Management); err != nil {
		return nil, err
	}
	pol, profileIndex, err := stablePolicy(e.table.Policy(), cfg.Conntrack.Policy)
	if err != nil {
		return nil, fmt.Errorf("profiles: %w", err)
	}
	fw, err := firewall.Compile(cfg.Rules, profileIndex)
	if err != nil {
		return nil, err
	}
	var rt *Routes
	if err := e.inNS(func() (err error) { rt, err = e.compileRoutes(&cfg); return err }); err != nil {
		return nil, err
	}
	var sc *snat.Config
	if cfg.SNAT != nil {
		if sc, err = e.resolveSNAT(cfg.SNAT, e.cfg.Outside.Name); err != nil {
			return nil, err
		}
	}
	if err := checkManagementSNAT(cfg.Management, sc); err != nil {
		return nil, err
	}
	var snap *snat.Snapshot
	switch {
	case e.nat != nil:
		// Validation only: nothing is interned before the commit.
		if snap, err = e.nat.Prepare(sc); err != nil {
			if errors.Is(err, snat.ErrFixedSize) {
				return nil, fmt.Errorf("%w: %w", err, ErrRestartRequired)
			}
			return nil, err
		}
	case sc != nil:
		return nil, fmt.Errorf("snat: %w (this engine has no NAT)", ErrRestartRequired)
	}
	changed = diff(old, &cfg, e.natCfg, sc)
	if dryRun {
		return changed, nil
	}

	// Commit: the steps that can fail first, each undone if a later one
	// fails; then the swaps, which cannot fail (see the top of apply.go for
	// their order and why any mix of old and new is safe).
	undoManagement, err := e.setManagement(old.Management, cfg.Management)
	if err != nil {
		return nil, err
	}
	if testAfterManagement != nil {
		testAfterManagement()
	}
	if snap != nil {
		if err := e.nat.Intern(snap); err != nil {
			undoManagement()
			return nil, fmt.Errorf("snat: %w", err)
		}
	}
	// The policy before the rules: every index the new rules give a flow
	// exists in it, and every index of the old rules still names the same
	// profile (stable layout).
	if err := e.table.SetPolicy(pol); err != nil {
		undoManagement() // validated above: not reached
		return nil, fmt.Errorf("profiles: %w", err)
	}
	if slices.Contains(changed, "rules") || slices.Contains(changed, "default_action") {
		e.ruleSets.add(fw) // a new epoch: flows name their rules by it
	} else {
		fw.SetEpoch(e.fw.Load().Epoch()) // same rules, same names
	}
	e.fw.Store(fw)
	e.routeMu.Lock()
	next := cfg
	e.cur.Store(&next)
	e.routes.Store(rt)
	e.routeMu.Unlock()
	if snap != nil {
		if err := e.nat.Install(snap); err != nil {
			// Not reached: Intern readied snap, so Install only stores it.
			e.cfg.Logf("dataplane: snat: %v", err)
		}
		e.natCfg = sc
	}
	if len(changed) > 0 {
		e.gen.Add(1)
	}
	return changed, nil
}

// setManagement updates both XDP programs' management maps from old to
// want: new addresses first, then the ones no longer wanted. If an addition
// fails, the additions made are undone and nothing changed. It returns a
// function that puts old back (for a later step of Apply that fails).
func (e *Engine) setManagement(old, want []netip.Addr) (undo func(), err error) {
	var add, del []netip.Addr
	for _, a := range want {
		if !slices.Contains(old, a) {
			add = append(add, a)
		}
	}
	for _, a := range old {
		if !slices.Contains(want, a) {
			del = append(del, a)
		}
	}
	var done []func()
	for _, p := range e.progs {
		if p == nil {
			continue
		}
		for _, a := range add {
			if err := p.AddManagement(a); err != nil {
				for _, undo := range done {
					undo()
				}
				return nil, fmt.Errorf("management: %v: %w", a, err)
			}
			done = append(done, func() { _ = p.RemoveManagement(a) })
		}
	}
	for _, p := range e.progs {
		if p == nil {
			continue
		}
		for _, a := range del {
			if err := p.RemoveManagement(a); err != nil {
				e.cfg.Logf("dataplane: management: removing %v: %v", a, err)
			}
		}
	}
	undo = func() {
		for _, p := range e.progs {
			if p == nil {
				continue
			}
			for _, a := range del {
				if err := p.AddManagement(a); err != nil {
					e.cfg.Logf("dataplane: management: undoing the removal of %v: %v", a, err)
				}
			}
		}
		for _, u := range done {
			u()
		}
	}
	return undo, nil
}

// diff lists the configuration-file fields that differ between the
// configuration in force and c (sc: c's SNAT, resolved).
func diff(old, c *Config, oldNAT, sc *snat.Config) []string {
	var out []string
	add := func(field string, differs bool) {
		if differs {
			out = append(out, field)
		}
	}
	sameSet := func(a, b []netip.Addr) bool {
		if len(a) != len(b) {
			return false
		}
		for _, x := range a {
			if !slices.Contains(b, x) {
				return false
			}
		}
		return true
	}
	op, cp := old.Conntrack.Policy, c.Conntrack.Policy
	add("interfaces", old.Inside.URPF != c.Inside.URPF || old.Outside.URPF != c.Outside.URPF) // the rest is fixed
	add("management", !sameSet(old.Management, c.Management))
	add("routes", !slices.Equal(old.Routes, c.Routes))
	add("routes_from_kernel", old.KernelRoutes != c.KernelRoutes)
	add("conntrack", op.Liberal != cp.Liberal || op.PickUp != cp.PickUp)
	add("profiles", !slices.Equal(op.Profiles, cp.Profiles))
	add("snat", !reflect.DeepEqual(oldNAT, sc))
	add("rules", !(len(old.Rules.Rules) == 0 && len(c.Rules.Rules) == 0) && !reflect.DeepEqual(old.Rules.Rules, c.Rules.Rules))
	add("default_action", old.Rules.Default != c.Rules.Default)
	add("nsx_compat", op.NSXCompat != cp.NSXCompat)
	add("nsx_shadow", op.NSXShadow != cp.NSXShadow)
	add("source_route", old.ForwardSourceRouted != c.ForwardSourceRouted)
	return out
}

// Config returns the configuration in force (do not modify it).
func (e *Engine) Config() *Config { return e.cur.Load() }

// Generation returns the configuration generation: 1 from New, +1 per
// Apply that changed something.
func (e *Engine) Generation() uint64 { return e.gen.Load() }
