// Package dataplane is edge's packet path: AF_XDP sockets bound to NIC
// queues, one worker goroutine per queue owning its sockets, its conntrack
// shard and its SNAT allocator, the XDP program that steers IP to the
// sockets and fails closed, static routes, and a mirror of the kernel's
// neighbour table (netlink).
//
// worker.go opens with the pipeline, stage by stage. Engine (engine.go)
// sets it up from a Config: kernel forwarding off, one XDP program per
// interface, sockets, workers; Close detaches the programs and leaves the
// interfaces as found. If the process dies instead, the programs stay and
// drop all IP (fail closed, TestKill9FailsClosed).
//
// Concurrency: each worker's state is its own; counters are published with
// atomics once per batch and summed by Engine.Stats from any goroutine. The
// firewall rule set and the routes are immutable values swapped through
// atomic pointers. The neighbour mirror's goroutine publishes snapshots the
// same way. New and Attach/Detach must run on a thread in the interfaces'
// network namespace (edge runs wholly inside it).
//
// Live configuration (apply.go): Engine.Apply may run from any goroutine
// while the workers forward (applies are serialized). It builds every new
// snapshot off to the side (compiled rules against the new profile
// indexes, routes, conntrack policy, SNAT settings), and only when all are
// valid swaps them in, one atomic pointer store each; the configuration in
// force is itself an immutable Config behind an atomic pointer
// (Engine.Config). Workers see new rules, routes and policy from their next
// packet and new SNAT settings from their next new flow; nothing a worker
// owns is touched, and the per-packet path gained no lock and no
// allocation. Fields that size or bind resources at start are refused
// (ErrRestartRequired). Apply, Status and kernel-route refreshes that read
// the kernel run on a thread moved into the namespace New ran in.
//
// Events (events.go): each worker records its drops and the ICMP errors and
// resets it sends in its own lossy single-producer ring, published once
// per batch; Engine.ReadEvents is the one reader. Conntrack's and SNAT's
// events stay in their own rings (Table.ReadEvents, NAT.ReadEvents).
// Status, Stats and ReadEvents read what workers published; nothing is
// counted per packet for them.
//
// With several queues, each worker owns one conntrack shard; a packet that
// arrives on another worker's queue (the NIC's RSS hash is not edge's shard
// hash) is copied to the owner over a single-producer single-consumer
// hand-off ring (handoff.go). A flow belongs to the shard of its inside
// endpoint (conntrack.Table.ShardOfSrc from the inside, ShardOfDst from
// the outside), so all flows of an endpoint and its NAT mapping meet on one
// worker; SNAT chooses ports whose endpoint lands there too. A packet from
// the inside toward a NAT mapping is hairpinned: translated, then handed
// (through the owner's ring, or the worker's own loop ring) to the worker
// of the destination mapping as if it arrived on the outside. The zero
// Engine is not usable: call New.
package dataplane
