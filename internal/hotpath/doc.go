// Package hotpath holds no code: its test guards the per-packet packages'
// imports. Nothing on the hot path may import grpc, protobuf or gopacket
// (they allocate and reflect per message), and the leaf packages may not
// import fmt or log either: a bad packet is a drop.Reason, not a formatted
// error.
package hotpath
