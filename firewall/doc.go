// Package firewall is edge's stateful firewall policy: an ordered list of
// rules, first match wins, evaluated once per flow on its first packet
// (when conntrack answers Open). Replies and later packets of an allowed
// flow pass by conntrack state and never reach it. A verdict says Allow
// (the data plane goes on to choose a SNAT port and create the flow), Drop,
// or Reject (the data plane, not this package, answers with a TCP RST or an
// ICMP administratively-prohibited error); it also carries the timer profile
// index for the new flow (conntrack.NewFlow.Profile), the rule index
// (conntrack.NewFlow.Rule, -1 for the default action) and whether to log.
// Verdict.Reason gives the drop reason to count (drop.FirewallDrop,
// drop.FirewallReject).
//
// It imports only the standard library and edge's conntrack and drop
// packages.
//
// # Rules
//
// A Rule matches a flow when every field does; an empty field matches
// anything: Zone (the interface side the first packet arrived on), source
// and destination prefixes (IPv4 prefixes match only IPv4 flows, IPv6 only
// IPv6: a list of IPv4 prefixes alone never matches an IPv6 flow), the
// protocol (TCP, UDP, ICMP, ICMPv6), inclusive source and destination port
// ranges (TCP and UDP rules only) and ICMP types (ICMP and ICMPv6 rules
// only). Ports are never consulted for other protocols (an ICMP echo's
// identifier, stored in the key's port field, is not a port); the key's
// conntrack zone is not consulted at all. A flow no rule matches gets
// RuleSet.Default, which is Drop when unset (the zero Action is Drop).
//
// Compile validates the whole RuleSet before building anything and refuses
// it with an *Error naming the exact field: "rules[3].dst[1]: ...",
// "rules[2].dst_ports[0]: 9000-80: low above high", "rules[4].src_ports:
// ports need proto tcp or udp", "rules[1].profile: unknown timer profile
// \"foo\"". Prefixes must be valid, canonical (no host bits: 10.1.2.3/8 is a
// typo more often than not) and not IPv4-mapped IPv6 (write those as IPv4).
// Timer profile names are resolved to conntrack indices at Compile time, so
// a conntrack policy change that renumbers profiles needs a new Compile.
//
// # Concurrency contract and zero values
//
// A *Compiled is immutable: any number of goroutines may call Match on it at
// once. The rule set in force lives in an Active, an atomic.Pointer: the
// control plane Compiles a new rule set off the packet path and Stores it;
// each worker Loads it (once per batch is enough) and matches against what
// it loaded, so a batch sees one whole rule set, old or new, never a mix
// (Tailscale's wgengine/filter works the same way). Match takes no lock,
// never allocates, and uses no fmt or error values.
//
// The zero Active holds no rule set: Load returns nil, and Match on a nil
// *Compiled answers Drop with rule -1, so a gateway that has not been given
// a policy yet forwards no new flow. The zero RuleSet compiles to "drop
// everything".
//
// # Classifier
//
// A linear scan compares the key with every rule before the one that
// matches: about 3 us for a match near the end of 1,000 rules on the project
// VM (BenchmarkLinearScan, a compiled scan), six times the whole new-flow
// budget of 500 ns (parse, conntrack miss, firewall, SNAT port choice).
// Match instead uses the bit-vector scheme of Lakshman and Stiliadis
// ("High-speed policy-based packet forwarding using efficient
// multi-dimensional range matching", SIGCOMM 1998) with the aggregate words
// of Baboescu and Varghese ("Scalable packet classification", SIGCOMM 2001),
// after a first split by exact-match fields:
//
//  1. Classes. The interface side and the protocol are exact-match fields
//     with few values, so rules are first split into 3 x 5 classes (zone
//     any/inside/outside x TCP, UDP, ICMP, ICMPv6, other). A class holds,
//     renumbered in rule order, the rules that can match it: those whose
//     Zone is AnyZone or the class's zone and whose Proto is ProtoAny or the
//     class's protocol. A lookup picks its class by direct index and never
//     looks at the other rules: with a realistic 1,000-rule set the largest
//     class (inside, TCP) has 447 rules, so bitmaps are 7 words, not 16.
//  2. Dimensions. Within a class, each remaining field is a dimension:
//     destination port, source port, ICMP type, and the source and
//     destination address, kept as two interval sets per side, one for
//     IPv4 (compared as uint32) and one for IPv6 (two uint64 halves), since
//     keys hold IPv4 addresses IPv4-mapped and the families never match each
//     other. The endpoints of every rule's ranges (a prefix is a range) cut
//     each dimension into elementary intervals, and each interval gets the
//     bitmap of the class's rules that match anywhere (hence everywhere) in
//     it. Compile builds them with one sweep per dimension over the sorted
//     endpoints.
//  3. Lookup. Match binary-searches each dimension for the key's interval
//     (the ICMP type indexes a 256-entry table directly), then ANDs the
//     bitmaps word by word, lowest word first: the lowest set bit of the
//     first non-zero word is the first matching rule. Each bitmap block
//     starts with aggregate words (bit j: bitmap word j is not zero); ANDing
//     those first skips words where some dimension has no rule at all.
//     A dimension no rule of the class constrains is dropped at Compile
//     time (no search, no AND); a class where no dimension is constrained
//     answers with its first rule.
//
// Cost per lookup: at most 4 binary searches (over about twice the distinct
// prefixes or port ranges of one class) and at most 4 x ceil(n/64) word
// loads for a class of n rules, wherever the first match is. On the project
// VM (BenchmarkMatch, realistic rule sets) a key matching rule 998 of 1,000
// takes about 45 ns, a key matching none about 33 ns, a stream of varied
// keys about 100 ns (cache misses in the interval tables); at 10,000 rules
// about 110, 45 and 280 ns. The aggregate words rarely skip anything in such
// sets (most 64-rule words hold some rule with a wildcard in each
// dimension); they pay when a dimension is selective.
//
// Why not the alternatives: tuple space search (one hash probe per distinct
// prefix-length and port-range shape, as in Open vSwitch) degrades with the
// number of shapes, which mixed /8-/32 prefixes and port ranges make large,
// and needs range-to-prefix expansion for ports; decision trees (HiCuts,
// HyperSplit) are faster at lookup in theory but their memory depends on
// rule overlap in ways that are hard to bound, and their build is
// heuristic. Bit vectors have a lookup cost that depends only on the class
// size and a memory that is computed exactly before anything is allocated.
//
// Memory. Every distinct bitmap of a class is stored once in the class's
// arena, whatever dimension uses it; intervals refer to it by offset. A
// class of n rules with E range endpoints in its rules has at most about
// 2E + 7 intervals and as many distinct bitmaps, each ceil(n/64) +
// ceil(n/4096) words: the worst case grows as E x n / 32 bytes, quadratic in
// the rule count. Compile counts the distinct bitmaps first (by a Zobrist
// hash: each rule has a random key, a bitmap's hash is the XOR of its rules'
// keys, updated in O(1) per endpoint during the sweep) and refuses a rule
// set whose tables would pass MaxMemory (256 MiB) before allocating them.
// Compiled.MemoryBytes reports what a rule set holds: about 280 KB for the
// realistic 1,000-rule benchmark set, 15 MB for 10,000 rules.
package firewall
