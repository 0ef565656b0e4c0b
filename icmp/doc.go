// Package icmp generates the ICMP errors edge sends (time exceeded,
// fragmentation needed / packet too big, administratively prohibited, and
// port unreachable for the NSX-compatibility mode), decides when none may be
// sent, rate-limits them with an injected clock, and translates ICMP errors
// that quote a translated flow (RFC 5508).
//
// It imports only the standard library and edge's header, drop and
// conntrack packages. Per-packet functions never allocate, take no lock,
// read no clock (time is a conntrack.Time argument) and report failure as a
// drop.Reason for the caller to count, never as an error value.
//
// # Sending an error
//
// The data plane, per packet it routes (ip starts at the IP header):
//
//	k, fwd := icmp.Check(ip, egressMTU) // a reject rule instead sets k = icmp.AdminProhibited
//	if fwd { forward; return }
//	count(the packet's drop reason); if k == icmp.NoError { return } // too big without DF
//	if r := icmp.MaySend(ip, k); r != drop.None { count(r); return }
//	if !limiter.Allow(now) { count(drop.ICMPRateLimited); return }
//	n, r := icmp.Build(tx[14:], k, ifaceAddr, ip, egressMTU) // ifaceAddr: where the error leaves
//
// MaySend is RFC 1812 4.3.2.7 and RFC 4443 2.4(e) (never about an ICMP error
// or redirect, a non-first fragment, an unspecified, loopback, multicast,
// broadcast or class E source, a multicast or broadcast destination except
// for an IPv6 Packet Too Big) plus edge's rule N3: never an error about a
// TCP segment that is not a SYN, so a TCP state mismatch never meets an
// ICMP answer. FragNeeded is exempt from N3: it is how path MTU discovery
// learns the path's MTU, and the segments that need it are data segments;
// refusing it would black-hole every TCP connection whose path is narrower
// than its ends (RFC 2923 2.1). Each refusal is its own drop reason:
// icmp_not_sent_error, icmp_not_sent_fragment, icmp_not_sent_source,
// icmp_not_sent_multicast, icmp_not_sent_tcp_not_syn; then
// icmp_rate_limited, and icmp_build_failed for a buffer or argument Build
// cannot use. These count errors not sent; the packet itself is counted
// once, under the reason it was dropped for. Two cases need the caller: a packet received as a link-layer
// broadcast or multicast, and one sent to a directed (subnet) broadcast
// address, which only the routing table can recognise.
//
// Build quotes as much of the offending packet as fits in 576 bytes for
// IPv4 (RFC 1812 4.3.2.3) and 1280 for IPv6 (RFC 4443 2.4(c)) and writes
// every checksum. IPv4 errors have TOS 0xc0 (RFC 1812 4.3.2.5), DF set and
// ID 0 (an atomic datagram, RFC 6864), TTL 64; IPv6 errors hop limit 64,
// traffic class and flow label 0. ICMP extensions (RFC 4884) are not added.
//
// # Rate limiting
//
// Limiter is a token bucket (DefaultRate 100 per second, DefaultBurst 50,
// NewLimiter to change them) per worker. There is no per-destination
// limiter: the per-worker bucket bounds what edge emits, which is what RFC
// 1812 4.3.2.8 (SHOULD) and RFC 4443 2.4(f) (MUST) ask for; one busy
// destination can use a worker's whole budget, which a later per-prefix
// bucket array could prevent.
//
// # Translating errors about translated flows
//
// conntrack.Parse turns an ICMP error into a KindRelated packet whose Key
// is the quoted tuple reversed, i.e. the key of the flow the error is about,
// in the direction the error travels; Shard.Track finds the flow and the
// direction without touching it (an error never refreshes or deletes a flow,
// RFC 5508 REQ-6); errors of no flow are dropped by conntrack
// (drop.ICMPNoFlow). TranslateRelated then rewrites the error for the flow's
// original key orig (client C:c -> server S:s) and translation (SNAT address
// N, port n):
//
//	Reply direction: the error comes from outside (a router R, or S itself),
//	about a packet edge translated on its way out. RFC 5508 REQ-4.
//
//	  C:c ──► edge ── N:n ──► R ──► S:s
//	  C ◄──── edge ◄───────── R          ICMP R→N [ IP N→S | n→s ]
//	                                     becomes R→C [ IP C→S | c→s ]
//
//	Original direction: the error comes from inside (C itself, or a router
//	R' between C and edge), about a reply edge translated on its way in.
//	RFC 5508 REQ-5.
//
//	  S:s ── N:n ──► edge ── C:c ──► R' ──► C
//	  S ◄───────────  edge ◄──────── R'    ICMP R'→S [ IP S→C | s→c ]
//	                                       becomes N→S [ IP S→N | s→n ]
//
//	field                          Reply (outside -> in)   Original (inside -> out)
//	-----------------------------  ----------------------  ------------------------
//	outer source                   R, unchanged            R' -> N (REQ-5(c): "its
//	                                                       own public IP address")
//	outer destination              N -> C (REQ-4(c))       S, unchanged
//	quoted source address          N -> C                  S, unchanged
//	quoted destination address     S, unchanged            C -> N
//	quoted source port             n -> c                  s, unchanged
//	quoted destination port        s, unchanged            c -> n
//	quoted echo identifier         n -> c (echo request)   c -> n (echo reply)
//	ICMP type and code             unchanged (REQ-4(b), REQ-5(b))
//	outer IPv4 header checksum     updated                 updated
//	ICMP checksum                  updated (ICMPv6: its pseudo-header too)
//	quoted IPv4 header checksum    updated                 updated
//	quoted UDP checksum            updated unless 0 (RFC 768: none)
//	quoted TCP checksum            updated only if bytes 16-17 are quoted
//	quoted echo checksum           updated (ICMPv6: pseudo-header too)
//
// All updates are incremental (RFC 1624 equation 3, package header), after
// the ICMP checksum and the quoted IPv4 header checksum were verified
// (RFC 5508 REQ-3, REQ-3(a); otherwise drop.ICMPBadChecksum).
//
// # Concurrency
//
// Build, MaySend, Check and TranslateRelated are pure functions of their
// arguments: safe from any goroutine, as long as no two goroutines write
// the same buffer. A Limiter belongs to one worker (one goroutine): its
// methods must not be called concurrently and it holds no lock.
//
// # Zero values
//
// The zero Kind is NoError, which Build and MaySend refuse
// (drop.ICMPBuildFailed). The zero Limiter is ready to use with the default
// rate and burst.
package icmp
