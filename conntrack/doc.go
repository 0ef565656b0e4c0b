// Package conntrack is edge's connection-tracking table: flow keys, a sharded
// flow table with no lock on the packet path, TCP/UDP/ICMP-echo trackers,
// timer profiles, incremental expiry, and the history of every tuple's
// recent incarnations. It imports only the standard library, xxhash, the
// header views, the drop reasons, internal/spsc and internal/mailbox; it
// never reads the clock (time is passed in as Time) and never allocates per
// packet.
//
// # Table design: single-writer shards
//
// A Table is split into shards, one per data-plane worker, and each Shard is
// owned by exactly one goroutine. This is VPP's model (ownership, not
// sharing) rather than a shared table updated with CAS, for three reasons:
//
//   - A TCP flow's state is several words (two sequence windows, state,
//     flags, timer) updated together by both directions. With one writer per
//     flow these updates are plain stores; with a shared table they would
//     need a per-flow lock or a multi-word CAS on every packet.
//   - Expiry, eviction and deletion are then trivially race-free: the owner
//     frees a slot and no other thread can hold a pointer to it.
//   - SNAT needs it anyway: to keep a flow's two directions on one worker,
//     a flow belongs to the shard of its inside endpoint (Table.ShardOfSrc
//     for packets from the inside, ShardOfDst from the outside), and the
//     snat package picks translated ports whose endpoint lands on the same
//     shard, so all flows of one inside endpoint and its NAT mapping live
//     on one worker. A packet that arrives on another worker's queue is
//     handed to the owner over a lock-free ring (package dataplane).
//
// A shard's storage is preallocated at New and holds no pointers, so the Go
// garbage collector never scans it. It lives outside the Go heap (mmap),
// on hugepages when scripts/hugepages.sh reserved them (else normal pages,
// with transparent hugepages advised, and a log line saying so). Under the
// race detector it is on the Go heap so that every access is checked.
//
//   - Flows: an array of 104-byte records (flow.go). The reply key is not
//     stored; it is the original key reversed with the destination replaced
//     by the translated address (a 16-bit index into the interned SNAT
//     addresses) and port.
//   - Index: open addressing with linear probing over 8-byte entries (32
//     bits of hash tag, a direction bit, the slot), 3 entries per flow slot,
//     so the load factor never exceeds 2/3; deletion shifts entries back
//     instead of leaving tombstones (index.go). Each flow has two entries,
//     original and reply key. Memory: 104 + 24 = 128 bytes per flow slot.
//   - Free slots are threaded through the records themselves.
//
// # Hashing
//
// Every tuple is chosen by whoever sends the packet, so both hashes are
// keyed with secrets drawn per table at New:
//
//   - The flow index hashes all 38 bytes of a key with hash/maphash (the
//     Go runtime's map hash: AES rounds where the CPU has AES-NI, wyhash
//     otherwise), built to resist hash flooding with a random seed per
//     table as Go maps use it: without the seed nobody can pick keys that
//     collide, and no set of keys collides under every seed. It costs a
//     few nanoseconds and never allocates; SipHash, which Linux conntrack
//     keys its table with, is a PRF and stronger on paper but costs
//     several times more per key. As a second line, probe runs are
//     bounded (index.go): a flow whose key would pass the bound is refused
//     (drop.ProbeLimit), so lookups stay bounded whatever happens.
//   - The shard of a flow (Table.ShardOfEndpoint) is XXH64 (cespare/xxhash)
//     of its inside endpoint (address, port, protocol, zone), under a
//     second secret seed shared by all workers of the table: both
//     directions land on one shard and a sender cannot aim at a shard. This choice spreads work
//     over at most 255 workers, each with its own flooding-resistant
//     index, so a keyed fast hash suffices there.
//
// # Concurrency contract
//
// Shard methods that take a Packet or a Ref (Track, TrackBatch, Create,
// Lookup, Delete, Expire, Serve, Info, NAT) must be called only by the
// shard's owner goroutine. Table methods may be called from any goroutine
// at any time: Stats, Len and the event reader use atomics; SetPolicy and
// InternAddr publish immutable snapshots through atomic.Pointer; Dump,
// Flush and Explain leave a request in the shard's mailbox, which the owner
// serves in bounded chunks (at most 4,096 slots scanned) from Serve between
// batches, so control-plane reads never stop forwarding. If no owner calls
// Serve, they fail with ErrNotServed when their context ends.
//
// # Time and expiry
//
// Every per-packet call takes now (Time, nanoseconds on the caller's
// monotonic clock). A flow's deadline is set from its timer profile and
// state each time a packet passes. Lookups treat an expired entry as absent
// (and release it on the spot); Expire sweeps a bounded number of slots per
// call to reclaim the rest. When the table is full, Create evicts, from a
// bounded scan of 64 slots, an expired entry, else a closing TCP entry or an
// unanswered UDP/ICMP flow past half its timer, else the oldest unanswered
// SYN_SENT entry seen (so a SYN flood cannot hold the table for the
// SYN_SENT timer), counting and reporting each removal (evicted,
// evicted_syn_sent, EvEvicted). It never evicts an established flow. If the
// scan finds nothing, the new flow is refused (drop.TableFull) and existing
// flows are unaffected.
//
// # TCP state machine
//
// Only a SYN creates TCP state (mid-stream pick-up only with Policy.PickUp).
// "Acks the SYN" means ack == ISN+1, or the end of the SYN's data (TCP Fast
// Open).
// O is the originator's direction, R the reply's; "next" is the sender's
// next sequence number; a segment must also pass the window check (tcp.go,
// skipped with Policy.Liberal) except where the table says otherwise.
//
//	state        packet                              result
//	-----------  ----------------------------------  ---------------------------------------------
//	(none)       O SYN                               Open: Create -> SYN_SENT
//	(none)       anything else                       drop no_state (ACK or SYN-ACK: Open if PickUp,
//	                                                 Create -> ESTABLISHED, liberal)
//	SYN_SENT     O SYN, same ISN / new ISN           pass / re-seed ISN (syn_new_isn)
//	SYN_SENT     R SYN                               SYN_SENT2 (simultaneous open)
//	SYN_SENT     R SYN-ACK, ack == ISN+1             SYN_RECV
//	SYN_SENT     R SYN-ACK, other ack                drop synack_bad_ack (stale_incarnation if gen>0)
//	SYN_SENT     R pure ACK, first since the SYN     pass, state kept: RFC 5961 challenge ACK of an
//	                                                 old connection (challenge_ack)
//	SYN_SENT     O RST, seq == that ACK's ack        pass, state kept (rst_to_challenge)
//	SYN_SENT     R RST+ACK acking ISN+1; O RST next  CLOSE
//	SYN_SENT2    SYN-ACK acking the other's SYN      SYN_RECV (O SYN-ACK: only in a simultaneous open)
//	SYN_RECV     O ACK acking R's SYN                ESTABLISHED (either side after SYN_SENT2)
//	SYN_RECV,    O SYN with a new ISN                pass, noted (syn_on_open); nothing changes
//	ESTABLISHED
//	any          R SYN-ACK acking the noted SYN      Reopened: new incarnation, SYN_RECV
//	after        R SYN-ACK acking this incarnation's pass, no change (synack_retransmit): never
//	SYN_RECV     SYN (a late repeat)                 dropped
//	ESTABLISHED  FIN from X                          FIN_WAIT (X initiated the close)
//	FIN_WAIT     ACK from the other side of X's FIN  CLOSE_WAIT
//	FIN_WAIT,    FIN from the other side             LAST_ACK
//	CLOSE_WAIT
//	LAST_ACK     X ACKs the other side's FIN         TIME_WAIT
//	FIN_WAIT ..  O SYN                               Reopened: new incarnation, SYN_SENT
//	CLOSE
//	closing,     R SYN-ACK on an entry created by    entry released (replaced), packet judged as
//	pick-up      pick-up (the NSX orphan)            new: Open or drop no_state
//	TIME_WAIT,   R SYN                               entry released, packet judged as new
//	CLOSE
//	any synced   RST, seq == next                    CLOSE (TIME_WAIT: pass, kept; RFC 1337)
//	any synced   RST in window, seq after next       pass, state kept (rst_inexact; RFC 5961 3.2)
//	any synced   RST before next or past the window  drop rst_out_of_window
//	CLOSE        pure ACK; RST in window             pass; data or FIN: drop data_on_closed
//
// A SYN-ACK that acknowledges the SYN edge forwarded is never dropped as a
// state mismatch, and nothing here ever asks for an ICMP error: a packet
// that does not fit is dropped silently and counted by drop.Reason. Packets
// of an older incarnation (a delayed FIN, an old ACK) fail the new
// incarnation's checks and are dropped as stale_incarnation without
// changing it; the single exception is the challenge ACK above, which is
// forwarded (never changing state) because the client's RST to it is what
// clears the server's stale connection.
//
// # NSX compatibility mode
//
// Policy.NSXCompat (off by default; for A/B labs against an NSX-T edge, never
// for production) reproduces the NSX-T gateway firewall's behaviour instead
// of the rules above: a FIN without state creates a CLOSING (FIN_WAIT)
// entry, a SYN on a closing entry passes without a new incarnation, and a
// SYN-ACK that meets a closing entry is dropped as nsx_synack_on_closing,
// which the data plane answers with ICMP port unreachable: the 502 incident.
//
// Policy.NSXShadow keeps edge's own behaviour and judges, on the same
// packets, the SYN-ACKs NSX compatibility mode would have dropped: counted
// per packet and per connection (nsx_would_drop, nsx_would_fail, per
// destination) and reported once per connection (EvNSXWouldDrop), from a
// bounded cache of the closing entries only NSX would hold (nsxshadow.go).
// It costs nothing on the established path.
//
// # Idle expiry
//
// A flow whose timer runs out is released by the sweep (Shard.Expire) or
// by the lookup that finds it expired. Under a profile with IdleExpiry =
// IdleReset an ESTABLISHED TCP flow is also queued, bounded, with both keys
// and each side's next sequence number, for the data plane to send each end
// an RST it accepts (RFC 5961: exactly its RCV.NXT): Shard.ExpiredResets
// (idlereset.go). EvExpired says which (Event.Expiry).
//
// # History and events
//
// When an incarnation ends (superseded by a new one, expired, evicted,
// flushed, deleted, replaced) its summary (creating packet kind, ISNs,
// open/close time, close reason, packet counts) is pushed into the shard's
// history ring: bounded memory, newest kept. Table.Explain returns a tuple's
// live flow and its past incarnations. Each shard also writes lifecycle and
// drop events into a single-producer ring read by Table.ReadEvents; a full
// ring loses events (counted), it never blocks the owner.
//
// # Per-destination signals
//
// Each shard also counts, per destination (a flow's original destination:
// the server), what explains failed connections: SYNs resent, handshakes
// timed out, refused and completed, resets by side, server closes and their
// idle time, client data after a server close (the keep-alive race), and
// late packets of expired flows. It counts where those events already leave
// the established fast path, in a bounded table that keeps the busiest
// destinations (dest.go); Table.Destinations sums the shards.
//
// # Zero values
//
// The zero Key, Packet, Verdict and Filter are valid values (the zero
// Filter matches every flow). A Table must be made with New; a Shard comes
// from Table.Shard.
package conntrack
