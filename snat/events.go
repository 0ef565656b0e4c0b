package snat

import (
	"sync/atomic"

	"github.com/edgegw/edge/conntrack"
)

// Counter names an allocator count.
type Counter uint8

const (
	CtrAllocated           Counter = iota // translations handed out
	CtrAbandoned                          // translations given back unused (Abandon)
	CtrReleased                           // translated flows released by conntrack
	CtrExhausted                          // flows refused: no free port toward the destination (drop.SNATExhausted)
	CtrQuarantineOverride                 // quarantined ports reused because no other port was free
	CtrQuarantineForgotten                // quarantine entries dropped, still running, because the quarantine was full
	CtrDestOverflow                       // allocations not counted per destination: the destination table was full
	CtrEventsLost                         // events not recorded because the event ring was full
	CtrScans                              // allocations that fell back to the pass over the range (ScanProbes ports of it)
	CtrProbes                             // candidate ports examined (probes / allocated: the cost of a new flow)
	CtrProbeLimit                         // flows refused: no free port within MaxProbes candidates (drop.SNATProbeLimit)
	CtrReleasedUnheld                     // released ports not quarantined: their flows carried no connection
	CtrMappingsMade                       // endpoint-independent mappings made
	CtrMappingsEnded                      // mappings ended (their last flow ended; UDP: MappingTimeout later)
	CtrMappingReused                      // new flows that took their endpoint's existing mapping
	CtrPortPreserved                      // mappings whose external port is the inside port
	CtrMappingConflict                    // flows refused: the mapping's port is in use toward the destination by another flow (drop.SNATMappingConflict)
	CtrMappingsFull                       // flows refused: the mapping table was full (drop.SNATMappingsFull)
	CtrAdmitted                           // unsolicited datagrams a mapping's filter let in (a flow was made for each)
	CtrFiltered                           // unsolicited datagrams a mapping's filter refused (drop.SNATFiltered)
	CtrFilterOverflow                     // flows not counted for address-dependent filtering: its table was full (their address is not let in)
	CtrHairpinned                         // packets from the inside toward a mapping, translated and looped back (RFC 4787 REQ-9)
	CtrUntranslated                       // flows let through untranslated: no address of their family and Config.NoAddress is NoAddressForward
	NumCounters
)

var counterNames = [NumCounters]string{
	"allocated", "abandoned", "released", "snat_exhausted", "quarantine_override",
	"quarantine_forgotten", "dest_overflow", "events_lost", "scans", "probes",
	"snat_probe_limit", "released_unheld", "mappings_made", "mappings_ended", "mapping_reused",
	"port_preserved", "snat_mapping_conflict", "snat_mappings_full", "filter_admitted", "snat_filtered",
	"filter_overflow", "hairpinned", "untranslated",
}

// String returns the counter's name, e.g. "quarantine_override".
func (c Counter) String() string {
	if c < NumCounters {
		return counterNames[c]
	}
	return "unknown"
}

// Stats is a snapshot of allocator counters (one worker's, or summed).
type Stats struct {
	Counters [NumCounters]uint64
}

// counters are written by the owner only (a load and a store, no locked
// instruction) and read by anyone; padded so that workers never share a
// cache line.
type counters struct {
	_ [64]byte
	c [NumCounters]atomic.Uint64
	_ [64]byte
}

func (c *counters) add(k Counter, n uint64) { c.c[k].Store(c.c[k].Load() + n) }

func (c *counters) addTo(s *Stats) {
	for i := range c.c {
		s.Counters[i] += c.c[i].Load()
	}
}

// EventKind is the kind of an allocator event.
type EventKind uint8

const (
	EvExhausted          EventKind = iota + 1 // a new flow was refused: no free port (drop.SNATExhausted)
	EvQuarantineOverride                      // a quarantined port was reused: no other port was free
)

// String returns "exhausted" or "quarantine_override".
func (k EventKind) String() string {
	switch k {
	case EvExhausted:
		return "exhausted"
	case EvQuarantineOverride:
		return "quarantine_override"
	}
	return "unknown"
}

// Event is one allocator event: fixed size, no pointers.
type Event struct {
	Time    conntrack.Time
	Key     conntrack.Key // the new flow's original key
	NATAddr uint16        // interned translated address (conntrack.Table.NATAddr)
	NATPort uint16        // EvQuarantineOverride: the port reused
	Kind    EventKind
	Shard   uint8
}
