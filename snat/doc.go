// Package snat is edge's source NAT: address pools, the choice of a
// translated address and port for each new flow, the quarantine of released
// ports, and the rewrite of packets in both directions with incremental
// checksums.
//
// # What it does
//
// A Config names the translated addresses: Automap (one address, the outside
// interface's, given by the caller) or Pools (named lists and ranges of IPv4
// and IPv6 addresses), a port range (default 1024-65535), the quarantine
// time (default 120 s) and whether ICMP echo identifiers are translated
// (default yes). New validates it whole and makes one Allocator per
// conntrack shard. For a flow that conntrack answered Open and policy wants
// translated, the shard's worker calls Allocator.Allocate (or AllocateFrom
// with a pool index) and passes the Translation to conntrack.Shard.Create;
// then, per packet, RewriteOriginal on packets from inside and RewriteReply
// on their answers.
//
// Mapping behaviour (RFC 4787 section 4.1) is chosen per pool
// (Config.Mapping, Pool.Mapping):
//
//   - Endpoint-independent (the default; RFC 4787 REQ-1, RFC 5382 REQ-1;
//     mapping.go): one external address and port per inside endpoint
//     (address, port, protocol, zone) while any of its flows lives, for
//     every destination; a UDP mapping outlives its last flow by
//     Config.MappingTimeout (REQ-5). The inside port is kept when it is
//     free (port preservation), else a random one is chosen as below. An
//     external endpoint belongs to one mapping at a time, so unsolicited
//     UDP toward it can be filtered per mapping (Allocator.Admit,
//     Config.Filtering: address-and-port-dependent by default,
//     address-dependent, endpoint-independent; RFC 4787 section 5) and a
//     packet from the inside toward it can be hairpinned (REQ-9; the data
//     plane loops it back). When a mapping that carried a connection ends,
//     its port is quarantined for every other inside endpoint. Conntrack
//     puts all flows of an inside endpoint on one shard
//     (conntrack.Table.ShardOfSrc), and the external port is chosen so
//     that its endpoint lands there too, so the mapping table is per
//     worker. Ports are never shared between mappings, so one address
//     serves at most its port range of inside endpoints per protocol.
//   - Endpoint-dependent (address-and-port-dependent mapping): each flow
//     gets a port of its own, unique per destination, as described below.
//     Good for many flows of few hosts toward few backends (a proxy's
//     connection pool toward its upstreams): each destination offers the
//     whole range.
//
// Allocation (alloc.go) enforces, beside the code:
//
//   - Endpoint-dependent uniqueness: a (translated address, port) is unique
//     per destination address, port and protocol, not globally, so each
//     pool address offers the whole port range to each backend. Uniqueness
//     is checked against conntrack itself: a candidate port is free when
//     the reply key it would give (conntrack.Shard.ReplyKey) is not a live
//     flow (conntrack.Shard.Lookup). No port is ever shared by two live
//     flows toward one destination: no port overloading (RFC 4787 REQ-3);
//     when nothing is free the flow is refused with drop.SNATExhausted,
//     counted, per destination too, and reported as an event.
//   - Paired pooling (RFC 4787 REQ-2, "It is RECOMMENDED that a NAT have an
//     'IP address pooling' behavior of 'Paired'"): the pool address is a
//     keyed hash of the inside source address, the same on every worker,
//     so one inside host keeps one outside address.
//   - Randomized ports (RFC 6056): up to RandomProbes uniformly random
//     ports (section 3.3.2, Algorithm 2), then a linear scan (section
//     3.3.1, Algorithm 1) spread over allocations (below). The generator
//     is a per-allocator ChaCha8 (math/rand/v2) seeded from getrandom(2):
//     cryptographically strong, so ports cannot be predicted from earlier
//     ones.
//   - Shard ownership: a port qualifies only if its reply key lands on the
//     allocating worker's shard (conntrack.Table.ShardOf), so both
//     directions of a flow are handled by one worker; with n shards about
//     1/n of the range qualifies for each destination on each worker.
//   - Quarantine (RFC 6888 REQ-8, "Once an external port is deallocated, it
//     SHOULD NOT be reallocated to a new mapping until at least 120 seconds
//     have passed"): a released port is not reused toward the same
//     destination for the quarantine time unless no other port is free;
//     then the least recently released one is reused (counted:
//     quarantine_override, and an event). Releases are learned from
//     conntrack's release hook (Allocator.Release). Both the time and the
//     number of ports held (Config.QuarantinePorts) are configurable; when
//     the quarantine is full its oldest entries are forgotten (counted:
//     quarantine_forgotten). Only ports of flows that carried a
//     connection are held (conntrack.ReleaseFunc: TCP that reached
//     ESTABLISHED, UDP or ICMP echo that saw a reply). REQ-8's rationale
//     is that the far end of a mapping that carried a connection may
//     still send toward its port (late or retransmitted segments, a peer
//     in TIME_WAIT), and a new mapping must not receive them; a SYN that
//     was never answered, refused with an RST or evicted, or an
//     unanswered datagram, left no state beyond the NAT that can, so its
//     port is free at once (counted: released_unheld). Otherwise a flood
//     of unanswered flows would fill the quarantine with ports that
//     protect nothing. The exception REQ-8 allows for TCP connections
//     that closed properly is not taken: every port that carried one is
//     held.
//   - ICMP echo: the identifier is the port (Key.SrcPort of a request) and
//     follows the same rules; with Config.KeepEchoID only the address is
//     translated and the identifier kept.
//
// The work of Allocate is bounded whatever the quarantine holds: at most
// MaxProbes candidate ports (each a ShardOf hash with several shards, a
// conntrack lookup and a quarantine lookup): RandomProbes random ones;
// the port last given back toward the destination without quarantine
// (Abandon, or a flow that carried no connection, hands its port on in
// O(1)); ScanProbes ports of the destination's pass over the range; and,
// when its counts say that every port is in use or quarantined, up to
// ReuseProbes entries of its quarantine list. Beyond that the flow is
// refused with drop.SNATProbeLimit (counted: snat_probe_limit; the
// counters probes and allocated give the cost per new flow). The pass
// keeps its position in the destination's entry, so the next allocations
// toward it continue where this one stopped: a port free for the whole
// pass is found within it (about 250 allocations over the default
// range), and a nearly full range costs each new flow a bounded number
// of probes instead of a scan of 64,512 ports. When a pass ends it counts
// the ports of the range that land on the worker's shard and those in
// use; while the destination's counts then say that every such port is
// in use or in quarantine, the least recently released port is taken
// from the head of its quarantine list in O(1) (so under churn faster
// than the quarantine drains, ports are reused oldest first, not at
// random), and the counts are trusted for 10 s before a new pass
// recounts them. A destination a pass found exhausted is refused after a
// table lookup until one of its ports is released or a second has
// passed. The recount also bounds the effect of counts that drift (a
// caller that forgot Abandon) to 10 s.
//
// # Memory
//
// Each Allocator preallocates, at New, two pointer-free open-addressing
// tables (tables.go) that the garbage collector never scans:
//
//   - the quarantine: a ring of (translated address and port, destination,
//     protocol, zone, release time) entries in release order, indexed by
//     a hash table, each destination's entries chained oldest first;
//     expiry and "forget the oldest" pop the ring's head in O(1). 56 bytes
//     per entry (40 in the ring, 16 of index): 3.5 MiB for the default
//     65,536 entries.
//   - the destination counts: ports in use and in quarantine, refusals and
//     overrides, the head and tail of the quarantine list, and the
//     position of its pass over the range (see above), per (translated
//     address, destination address and port, protocol, zone):
//     at most Config.Destinations entries of 104 bytes at load <= 1/2
//     (3.25 MiB for the default 16,384). An entry lives while it counts a
//     port. Allocations toward destinations beyond that are still correct
//     (uniqueness comes from conntrack) but not counted (dest_overflow).
//   - the mappings (mapping.go): Config.Mappings entries of 48 bytes, two
//     indexes of 4-byte slots at load <= 1/2 (by inside and by external
//     endpoint), and the address-dependent filter's counts (Config.Mappings
//     entries of 28 bytes at load <= 1/2): about 7.5 MiB for the default
//     65,536. A new mapping beyond that is refused (snat_mappings_full).
//
// # Concurrency contract
//
// A NAT's configuration is an immutable snapshot behind an atomic pointer:
// Reconfigure (or Prepare, then Install) validates a new Config whole and
// swaps it in from any goroutine while workers allocate; nil turns SNAT
// off (NewOff starts that way). Prepare has no side effect (dry runs);
// the addresses are interned in conntrack, in one batch, by Intern or
// Install. After a change of port range a destination's counts (and
// DestStat) are of the new range: ports quarantined under the old one are
// neither counted nor reused, and flows still live with old ports are
// counted apart (DestStat.OutOfRange). Each Allocator picks the snapshot up at
// its owner's next Allocate or Serve (one atomic load), so new flows use
// the new addresses, range and quarantine time, while existing flows keep
// the translation stored in their conntrack entry and, when they end,
// release their port as before: every address any configuration had stays
// known, so its port is counted out and quarantined whatever the new
// configuration says. Counts of full passes made under an older
// configuration are no longer trusted. The sizes of the preallocated
// tables (QuarantinePorts, Destinations, EventRingSize) are fixed at New
// (ErrFixedSize). Apart from that, its counters, event rings and
// mailboxes, a NAT does not change; its methods (Stats, ReadEvents,
// Destinations, Addr, PoolIndex, Allocator, Config) are safe from any
// goroutine. An Allocator belongs to
// the worker that owns its conntrack shard: Allocate, AllocateFrom,
// Abandon, Serve and Release (conntrack's release hook, which New installs
// and which conntrack calls on the owner's goroutine) run on that goroutine
// only, without locks. Allocator.Stats reads atomics and is safe anywhere.
//
// The control plane reads per-destination counts with NAT.Destinations
// and mappings with NAT.Mappings (NAT.FlushIdleMappings ends idle ones),
// which leaves a request in each allocator's mailbox (internal/mailbox);
// the owner copies a bounded chunk of its table into the request from
// Serve, called between batches, like conntrack's Dump. The owner never
// waits and the control plane never reads memory the owner writes. Events
// (refusals, overrides) go into a lossy single-producer ring per allocator
// read by NAT.ReadEvents: a full ring loses events (counted), it never
// blocks the owner.
//
// RewriteOriginal and RewriteReply are pure functions of their arguments
// and safe from any goroutine that owns the packet buffer.
//
// # Per packet
//
// Allocate, AllocateFrom, Admit, Abandon, Release, Serve, RewriteOriginal,
// RewriteReply and NAT.Addr take time as a conntrack.Time argument (never
// the clock), never allocate (tests assert it) and report problems as a
// drop.Reason, never an error value.
//
// # Zero values
//
// The zero Config is Automap without an address: Validate rejects it, and
// every other zero field means its default. The zero Stats, Event and
// DestStat are valid values. A NAT must be made with New, and an Allocator
// comes from NAT.Allocator.
package snat
