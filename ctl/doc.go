// Package ctl will be edge's control plane: a protobuf/gRPC API over a unix
// socket (or mutual TLS), turning protobuf into plain Go types at its edge.
// conntrack already exposes what it will serve: Table.Dump, Flush, Explain,
// Stats and ReadEvents, all safe while workers forward.
//
// Status: not implemented yet (issue #4).
package ctl
