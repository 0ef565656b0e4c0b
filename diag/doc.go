// Package diag explains connection failures from what edge already
// records: it reads a time-ordered stream of data-plane events over a
// window, the counters at its start and end, and optionally a snapshot of
// live flows and the incarnation history of example tuples, and names the
// cause per destination (the server, ip:port, as the inside sees it), with
// the evidence and the fix in one sentence. `edge doctor` is its command.
//
// It imports only the standard library and the leaf packages conntrack and
// drop (for state and reason names): its inputs are its own plain types,
// which the command fills from the control plane's API (live) or from the
// JSON lines `edge events -o json` printed (offline), so every rule is
// tested against recorded streams without a data plane.
//
// # Patterns
//
//   - stray_fin_port_reuse: in NSX compatibility mode, SYN-ACKs dropped as
//     nsx_synack_on_closing (failing); in edge's own mode, FINs dropped
//     without state (no_state) shortly before a SYN reuses their tuple, or
//     dropped as stale_incarnation after it (prevented: an NSX-style
//     firewall would have failed those connections); with nsx_shadow, the
//     connections whose SYN-ACK NSX compatibility mode would have dropped
//     (nsx_would_drop events, the nsx_would_fail destination counter):
//     "N connections to X would have failed behind an NSX-style firewall".
//   - idle_expiry: a flow removed by its idle timer in a synchronized state
//     (established, half-closed, answered UDP), then a packet of it dropped.
//   - keepalive_race: a connection closed by a reset without ACK (the
//     answer to a segment that found the connection closed at the other
//     end: the backend closed it idle, the client sent on it), or by any
//     reset followed by a packet of it within Options.ReuseWindow; a fresh
//     SYN on the tuple settles it (port reuse is not a race), and a lone
//     RST+ACK (an abort) is not counted. When events carry the closing
//     packet's direction (Event.Dir), a reset from the server is enough.
//   - syn_unanswered: flows expired or evicted in SYN_SENT, and live flows
//     still in SYN_SENT after Options.SYNAge or with their SYN sent twice;
//     some answered connections to the same destination point at a full
//     listen backlog, none at a server that is down.
//   - snat_exhaustion: new flows refused for lack of a SNAT port (events
//     and per-destination counters), or a destination's ports at
//     Options.FillWarning (warning).
//   - table_full: new flows refused for lack of a slot, or the table at
//     Options.FillWarning (warning).
//
// Findings are ranked failing, then warning, then prevented, and within a
// severity by connections affected. Each finding lists what edge does not
// observe yet that would sharpen it (Evidence.Missing).
//
// # Bounds
//
// The Analyzer follows at most Options.MaxTuples tuples (forgetting the
// least recently seen quarter when full) and Options.MaxDestinations
// destinations (forgetting the one with the least evidence, so the busiest
// stay), keeps Options.Examples examples per finding, 8 events per tuple and
// 512 samples per distribution; the report says when a bound was reached.
//
// # New inputs
//
// A new signal of the data plane (per-destination counters, trace records,
// captured packets) is a new input method beside Add and AddFlows that
// feeds the same per-destination tallies, or a new Pattern with its rule
// in rules.go and its sentence in report.go; the rules above need no
// change.
package diag
