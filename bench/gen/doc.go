// Package gen is edge's packet generator and sink: UDP or TCP SYN frames, IPv4 or IPv6, built
// from a template (no per-packet allocation, no gopacket, no fmt), sent and
// received over AF_XDP (copy mode on veth) or AF_PACKET, with the statistics
// a forwarding benchmark needs.
//
// What a generated frame carries: Ethernet, IPv4 (DF, TTL 64) or IPv6 (hop
// limit 64, no extension header; frames of at least MinFrame6 = 82 bytes),
// UDP with a complete checksum, and a payload holding a magic (Magic), a 32-bit
// sequence number and the CLOCK_MONOTONIC time of sending (Now). The
// monotonic clock is system-wide, so a sink in another network namespace of
// the same machine computes one-way latency from it.
//
// Pieces:
//
//   - Builder (frame.go) patches a per-size template: sequence number,
//     timestamp, UDP ports, UDP checksum (the template's partial sum plus the
//     changed words). Frame sizes are Ethernet frame lengths including the
//     4-byte FCS, as in RFC 2544 (a 64-byte frame is 60 bytes handed to the
//     kernel); "imix" is the simple IMIX 7:4:1 of 64-, 576- and 1500-byte
//     frames in a fixed 12-packet pattern (imix.go); over IPv6 (IMIX6) its
//     64-byte frames are MinFrame6.
//   - Ports (ports.go) maps a flow index to pseudorandom UDP ports as RFC 4814
//     section 4.5 asks (source 1024-65535, destination 1-49151, uniform,
//     repeatable from a seed): a keyed Feistel permutation of the 32-bit
//     space, cycle-walked into the 64512 x 49151 port-pair domain, so the
//     first N flow indexes give N distinct port pairs. In "new flows" mode
//     every packet takes the next index, i.e. a new 5-tuple (RFC 9693-style
//     connection setup rate).
//   - SYN mode (FrameConfig.SYN, frame.go) builds TCP SYNs instead (IPv4 in
//     64-byte frames, IPv6 in MinSYNFrame6 = 78), each of a new flow: a SYN
//     flood. The source port comes from
//     Ports.Src, a keyed permutation of the 64,512 source ports (so
//     consecutive SYNs toward one destination port are distinct flows),
//     or both ports from Ports.Pair. With SYNSrcPrefix the source address
//     is drawn per SYN from a prefix too (a keyed hash of the flow index).
//   - Hist (hist.go) is a fixed-size log-linear latency histogram (32
//     sub-buckets per power of two, <= 3.2% error), no allocation per record.
//   - Transmit (tx.go) runs the send loop with optional rate pacing; Sink
//     (rx.go) runs the receive loop: counts, sequence bitmap for duplicates,
//     reorder, loss against an expected count, latency.
//
// Concurrency: a Builder, Hist or Recorder belongs to one goroutine. Transmit
// and Sink each run their loop on the calling goroutine (locked to its OS
// thread); the only cross-goroutine inputs are the stop and snapshot
// requests, which are atomics checked once per batch. Zero values: the zero
// Hist is empty and ready; Builder, Ports and Recorder must come from their
// constructors (NewBuilder, NewPorts, NewRecorder).
package gen
