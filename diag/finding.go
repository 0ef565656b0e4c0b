package diag

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// Pattern names a cause of connection failures doctor recognises.
type Pattern uint8

const (
	StrayFINPortReuse Pattern = iota // a delayed FIN of an old connection meets a new one on the same port (NSX incident)
	IdleExpiry                       // state dropped by an idle timer, then a packet of the connection
	KeepaliveRace                    // the server closed a kept-alive connection the client reused
	SYNUnanswered                    // SYNs without SYN-ACK: a full listen backlog, or a server that is down
	SNATExhaustion                   // no SNAT port toward a destination
	TableFull                        // no flow slot
	numPatterns
)

var patternNames = [numPatterns]string{
	"stray_fin_port_reuse", "idle_expiry", "keepalive_race", "syn_unanswered", "snat_exhaustion", "table_full",
}

func (p Pattern) String() string {
	if p < numPatterns {
		return patternNames[p]
	}
	return "unknown"
}

// MarshalText makes a Pattern its name in JSON.
func (p Pattern) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// PatternByName is the inverse of Pattern.String.
func PatternByName(s string) (Pattern, bool) {
	for i, n := range patternNames {
		if n == s {
			return Pattern(i), true
		}
	}
	return 0, false
}

// Severity orders findings: connections failed, a limit is near, or edge
// prevented a failure another middlebox would have caused.
type Severity uint8

const (
	Failing Severity = iota
	Warning
	Prevented
)

var severityNames = [...]string{"failing", "warning", "prevented"}

func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "unknown"
}

func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// AllDestinations is the Destination of findings about the whole box
// (the flow table).
const AllDestinations = "*"

// Finding is one diagnosed cause, for one destination.
type Finding struct {
	Pattern  Pattern  `json:"pattern"`
	Severity Severity `json:"severity"`
	// Destination is the server as the inside sees it, "ip:port", or
	// AllDestinations.
	Destination string `json:"destination"`
	Protocol    string `json:"protocol,omitempty"`
	// Count is the number of connections affected (for a warning: the
	// resource's use).
	Count     uint64    `json:"count"`
	Packets   uint64    `json:"packets,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Evidence  Evidence  `json:"evidence"`
	Examples  []Example `json:"examples,omitempty"`
	Fix       string    `json:"fix"`

	dst netip.AddrPort
}

// Evidence is what a finding rests on.
type Evidence struct {
	Summary   string            `json:"summary"`
	Counts    map[string]uint64 `json:"counts,omitempty"`
	Durations map[string]Dist   `json:"durations,omitempty"`
	// Missing names what edge does not observe yet and would make the
	// finding sharper (a counter or event field of the data plane).
	Missing []string `json:"missing,omitempty"`
}

// Dist summarises a distribution of durations, in seconds (to the
// millisecond).
type Dist struct {
	N   int     `json:"n"`
	Min float64 `json:"min_s"`
	P50 float64 `json:"p50_s"`
	P90 float64 `json:"p90_s"`
	Max float64 `json:"max_s"`
}

// Example is one affected tuple with what happened to it.
type Example struct {
	Tuple Tuple          `json:"tuple"`
	NAT   netip.AddrPort `json:"nat,omitzero"`
	// Events are the tuple's events in the window up to the finding
	// (the most recent ones, oldest first).
	Events []ExampleEvent `json:"events,omitempty"`
	// History is the tuple's incarnations as edge keeps them (newest
	// first; live mode only, from edge flows explain).
	History []Incarnation `json:"history,omitempty"`
}

// Incarnation is a Flow as an Example shows it.
type Incarnation struct {
	Gen          uint16    `json:"gen"`
	State        string    `json:"state"`
	Creator      string    `json:"creator,omitempty"`
	Opened       time.Time `json:"opened,omitzero"`
	Closed       time.Time `json:"closed,omitzero"`
	CloseReason  string    `json:"close_reason,omitempty"`
	PacketsOrig  uint64    `json:"packets_original"`
	PacketsReply uint64    `json:"packets_reply"`
}

func incarnation(f *Flow) Incarnation {
	return Incarnation{Gen: f.Gen, State: stateName(f.State), Creator: f.Creator, Opened: f.Opened, Closed: f.Closed,
		CloseReason: f.CloseReason, PacketsOrig: f.PacketsOrig, PacketsReply: f.PacketsReply}
}

// MarshalText makes a Tuple its printed form in JSON.
func (t Tuple) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// ExampleEvent is one event of an Example's tuple.
type ExampleEvent struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Gen    uint16    `json:"gen,omitempty"`
	State  string    `json:"state,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Flags  string    `json:"flags,omitempty"`
}

// Report is doctor's answer: findings ranked by impact, and notes on what
// limited the analysis (events lost, bounds reached).
type Report struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Events   uint64    `json:"events"`
	Findings []Finding `json:"findings"`
	Notes    []string  `json:"notes,omitempty"`
}

// rank sorts findings by impact: failures first, then warnings, then what
// edge prevented; within a severity by connections, then packets.
func rank(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(a.Severity, b.Severity),
			cmp.Compare(b.Count, a.Count),
			cmp.Compare(b.Packets, a.Packets),
			cmp.Compare(a.Pattern, b.Pattern),
			cmp.Compare(a.Destination, b.Destination),
		)
	})
}

// TCPFlags formats TCP flag bits as `edge events` does ("FSRPAUEC" order).
func TCPFlags(f uint8) string {
	const names = "FSRPAUEC"
	var b []byte
	for i := range 8 {
		if f&(1<<i) != 0 {
			b = append(b, names[i])
		}
	}
	return string(b)
}

// dist computes a Dist from samples (sorted in place).
func dist(s *sampler) Dist {
	v := s.v
	if len(v) == 0 {
		return Dist{}
	}
	slices.Sort(v)
	ms := func(d time.Duration) float64 { return float64(d.Round(time.Millisecond)) / float64(time.Second) }
	q := func(p float64) float64 { return ms(v[min(len(v)-1, int(p*float64(len(v))))]) }
	return Dist{N: int(s.seen), Min: ms(s.min), P50: q(0.5), P90: q(0.9), Max: ms(s.max)}
}

// sampler keeps a bounded sample of durations and their exact extremes.
type sampler struct {
	v        []time.Duration
	seen     uint64
	min, max time.Duration
}

const maxSamples = 512

func (s *sampler) add(d time.Duration) {
	if s.seen == 0 || d < s.min {
		s.min = d
	}
	if d > s.max {
		s.max = d
	}
	s.seen++
	if len(s.v) < maxSamples {
		s.v = append(s.v, d)
		return
	}
	// Past the bound, replace a slot chosen by the count: a deterministic
	// spread over the stream (the extremes are exact anyway).
	s.v[(s.seen*2654435761)%maxSamples] = d
}
