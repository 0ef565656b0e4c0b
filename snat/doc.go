// Package snat will allocate source ports and addresses for translated flows:
// automap and pools, endpoint-dependent allocation (RFC 4787 REQ-1 style
// uniqueness per destination), randomized choice (RFC 6056), quarantine of
// released ports (RFC 6888 REQ-8), and ports chosen so replies reach the
// worker owning the flow (conntrack.Table.ShardOf).
//
// Status: not implemented yet (issue #3).
package snat
