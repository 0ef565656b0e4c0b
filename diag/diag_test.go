package diag

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
)

var t0 = time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func tcp(src, dst string) Tuple {
	return Tuple{Proto: protoTCP, Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst)}
}

// Tuples of the examples: a client behind SNAT 192.0.2.1 and a backend.
var (
	client  = tcp("10.0.0.2:40000", "10.2.0.2:8080")
	client2 = tcp("10.0.0.2:40001", "10.2.0.2:8080")
	nat     = netip.MustParseAddrPort("192.0.2.1:40000")
	// fromServer is a reply packet of client as it arrives: server -> NAT.
	fromServer = Tuple{Proto: protoTCP, Src: client.Dst, Dst: nat}
)

const backend = "10.2.0.2:8080"

type evOpt func(*Event)

func flags(f uint8) evOpt            { return func(e *Event) { e.Flags = f } }
func state(s conntrack.State) evOpt  { return func(e *Event) { e.State = s } }
func reason(r drop.Reason) evOpt     { return func(e *Event) { e.Reason = r } }
func gen(g uint16) evOpt             { return func(e *Event) { e.Gen = g } }
func withNAT(n netip.AddrPort) evOpt { return func(e *Event) { e.NAT = n } }
func dir(d Dir) evOpt                { return func(e *Event) { e.Dir = d } }
func zone(z Zone) evOpt              { return func(e *Event) { e.Zone = z } }

func ev(sec float64, k Kind, t Tuple, opts ...evOpt) Event {
	e := Event{Time: at(sec), Kind: k, Tuple: t}
	for _, o := range opts {
		o(&e)
	}
	return e
}

const (
	fS  = FlagSYN
	fA  = FlagACK
	fPA = FlagPSH | FlagACK
	fFA = FlagFIN | FlagACK
	fRA = FlagRST | FlagACK
	fSA = FlagSYN | FlagACK
)

// conn is a whole normal connection on tuple t from sec: SYN, FIN close,
// TIME_WAIT expiry.
func conn(sec float64, t Tuple) []Event {
	return []Event{
		ev(sec, KindOpened, t, flags(fS), state(conntrack.TCPSynSent), withNAT(nat)),
		ev(sec+0.5, KindClosed, t, flags(fA), state(conntrack.TCPTimeWait), withNAT(nat)),
		ev(sec+120.5, KindExpired, t, state(conntrack.TCPTimeWait), withNAT(nat)),
	}
}

func cat(parts ...[]Event) []Event {
	var out []Event
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func analyze(opt Options, evs []Event) Report {
	a := New(opt)
	for i := range evs {
		a.Add(&evs[i])
	}
	return a.Report(nil, nil)
}

// want is a finding expected (or, with count 0, expected absent).
type want struct {
	p     Pattern
	s     Severity
	dst   string
	count uint64
}

func find(r *Report, p Pattern, s Severity, dst string) *Finding {
	for i := range r.Findings {
		f := &r.Findings[i]
		if f.Pattern == p && f.Severity == s && f.Destination == dst {
			return f
		}
	}
	return nil
}

func describe(r *Report) string {
	var b bytes.Buffer
	WriteText(&b, r)
	return b.String()
}

func TestPatterns(t *testing.T) {
	cases := []struct {
		name   string
		events []Event
		want   []want             // exactly these findings
		durs   map[string]float64 // finding 0's duration p50 (seconds)
		fix    string             // in finding 0's fix
	}{
		{
			name: "nsx stray FIN: SYN-ACK dropped on a CLOSING entry",
			events: cat(conn(0, client), []Event{
				ev(200, KindOpened, client, flags(fFA), state(conntrack.TCPFinWait), withNAT(nat)),
				ev(201, KindDropped, client, flags(fSA), state(conntrack.TCPFinWait), reason(drop.NSXSynAckOnClosing), withNAT(nat)),
				ev(201, KindICMPSent, fromServer, reason(drop.NSXSynAckOnClosing), zone(ZoneOutside)),
				ev(202, KindDropped, client, flags(fSA), state(conntrack.TCPFinWait), reason(drop.NSXSynAckOnClosing), withNAT(nat)),
			}),
			want: []want{{StrayFINPortReuse, Failing, backend, 1}},
			fix:  "turn nsx_compat off",
		},
		{
			name: "nsx stray FIN from the server: its CLOSING entry drops the new connection's SYN-ACK",
			events: cat(conn(0, client), []Event{
				ev(200, KindOpened, fromServer, flags(fFA), state(conntrack.TCPFinWait)),
				ev(201, KindDropped, fromServer, flags(fSA), state(conntrack.TCPFinWait), reason(drop.NSXSynAckOnClosing)),
				ev(201, KindICMPSent, fromServer, reason(drop.NSXSynAckOnClosing), zone(ZoneOutside)),
			}),
			want: []want{{StrayFINPortReuse, Failing, backend, 1}},
		},
		{
			name: "edge: stray FIN without state, then the port reused",
			events: cat(conn(0, client), []Event{
				ev(130, KindDropped, client, flags(fFA), reason(drop.NoState), zone(ZoneInside)),
				ev(131, KindOpened, client, flags(fS), state(conntrack.TCPSynSent), withNAT(nat)),
			}),
			want: []want{{StrayFINPortReuse, Prevented, backend, 1}},
			durs: map[string]float64{"stray_fin_to_reuse": 1},
			fix:  "nothing to do on edge",
		},
		{
			name: "edge: stray FIN from the server side (translated), then the port reused",
			events: cat(conn(0, client), []Event{
				ev(130, KindDropped, fromServer, flags(fFA), reason(drop.NoState), zone(ZoneOutside)),
				ev(135, KindOpened, client, flags(fS), state(conntrack.TCPSynSent), withNAT(nat)),
			}),
			want: []want{{StrayFINPortReuse, Prevented, backend, 1}},
			durs: map[string]float64{"stray_fin_to_reuse": 5},
		},
		{
			name: "edge: FIN of the previous incarnation after the reuse",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent)),
				ev(1, KindReopened, client, flags(fS), gen(1), state(conntrack.TCPSynSent)),
				ev(1.2, KindDropped, client, flags(fFA), gen(1), state(conntrack.TCPSynRecv), reason(drop.StaleIncarnation)),
			},
			want: []want{{StrayFINPortReuse, Prevented, backend, 1}},
		},
		{
			name: "edge: FIN of the previous connection in the new one's handshake (old entry gone)",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent), withNAT(nat)),
				ev(0.2, KindDropped, client, flags(fFA), state(conntrack.TCPSynSent), reason(drop.InvalidState), withNAT(nat)),
			},
			want: []want{{StrayFINPortReuse, Prevented, backend, 1}},
		},
		{
			name: "a FIN out of window on an established connection is not a stray FIN",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent)),
				ev(5, KindDropped, client, flags(fFA), state(conntrack.TCPEstablished), reason(drop.OutOfWindow)),
			},
		},
		{
			name: "stray FIN long before the port's reuse is not the pattern",
			events: []Event{
				ev(0, KindDropped, client, flags(fFA), reason(drop.NoState)),
				ev(300, KindOpened, client, flags(fS), state(conntrack.TCPSynSent)),
			},
		},
		{
			name:   "stray FIN alone is not the pattern",
			events: []Event{ev(0, KindDropped, client, flags(fFA), reason(drop.NoState))},
		},
		{
			name: "idle expiry, then the client's data",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent), withNAT(nat)),
				ev(30, KindExpired, client, state(conntrack.TCPEstablished), withNAT(nat)),
				ev(32, KindDropped, client, flags(fPA), reason(drop.NoState), zone(ZoneInside)),
				ev(33, KindDropped, client, flags(fPA), reason(drop.NoState), zone(ZoneInside)),
			},
			want: []want{{IdleExpiry, Failing, backend, 1}},
			durs: map[string]float64{"expiry_to_next_packet": 2},
			fix:  "raise the established (or UDP) timeout",
		},
		{
			name: "idle expiry, then the server's data (translated)",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent), withNAT(nat)),
				ev(30, KindExpired, client, state(conntrack.TCPEstablished), withNAT(nat)),
				ev(30, KindDropped, fromServer, flags(fPA), reason(drop.NoState), zone(ZoneOutside)),
			},
			want: []want{{IdleExpiry, Failing, backend, 1}},
		},
		{
			name: "a closed connection expired in LAST_ACK, then its last ACK, is not idle expiry",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent), withNAT(nat)),
				ev(30, KindExpired, client, state(conntrack.TCPLastAck), withNAT(nat)),
				ev(31, KindDropped, client, flags(fA), reason(drop.NoState), zone(ZoneInside)),
			},
		},
		{
			name: "idle expiry, then a new connection on the tuple, is not a failure",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent)),
				ev(30, KindExpired, client, state(conntrack.TCPEstablished)),
				ev(31, KindOpened, client, flags(fS), state(conntrack.TCPSynSent)),
			},
		},
		{
			name: "idle expiry, then a new connection's SYN refused by policy, is not idle expiry",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent)),
				ev(30, KindExpired, client, state(conntrack.TCPEstablished)),
				ev(31, KindDropped, client, flags(fS), reason(drop.FirewallDrop), zone(ZoneInside)),
			},
		},
		{
			name: "TIME_WAIT expiry, then a late ACK, is not idle expiry",
			events: cat(conn(0, client), []Event{
				ev(121, KindDropped, client, flags(fA), reason(drop.NoState)),
			}),
		},
		{
			name: "keep-alive race: reset, then the client's request",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent), withNAT(nat)),
				ev(5, KindClosed, client, flags(fRA), state(conntrack.TCPClose), withNAT(nat)),
				ev(5.25, KindDropped, client, flags(fPA), state(conntrack.TCPClose), reason(drop.DataOnClosed), withNAT(nat)),
				ev(5.5, KindDropped, client, flags(fPA), state(conntrack.TCPClose), reason(drop.DataOnClosed), withNAT(nat)),
				ev(10, KindOpened, client2, flags(fS), state(conntrack.TCPSynSent)),
				ev(15, KindClosed, client2, flags(fRA), state(conntrack.TCPClose)),
				ev(15.75, KindDropped, client2, flags(fA), reason(drop.NoState)),
			},
			want: []want{{KeepaliveRace, Failing, backend, 2}},
			durs: map[string]float64{"reset_to_next_packet": 0.75},
			fix:  "raise the backend's keep-alive timeout",
		},
		{
			name: "keep-alive race: a reset without ACK answers the client's request",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent), withNAT(nat)),
				ev(6.5, KindClosed, client, flags(FlagRST), state(conntrack.TCPClose), withNAT(nat)),
				ev(7, KindOpened, client2, flags(fS), state(conntrack.TCPSynSent), withNAT(nat)),
				ev(13, KindClosed, client2, flags(FlagRST), state(conntrack.TCPClose), withNAT(nat)),
			},
			want: []want{{KeepaliveRace, Failing, backend, 2}},
			durs: map[string]float64{"connection_age_at_reset": 6.5},
			fix:  "raise the backend's keep-alive timeout",
		},
		{
			name: "keep-alive race: the server's reset, direction known",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent)),
				ev(5, KindClosed, client, flags(fRA), state(conntrack.TCPClose), dir(DirReply)),
			},
			want: []want{{KeepaliveRace, Failing, backend, 1}},
		},
		{
			name: "a normal close followed by a fresh SYN is not a keep-alive race",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent)),
				ev(5, KindClosed, client, flags(fA), state(conntrack.TCPTimeWait)),
				ev(5.1, KindReopened, client, flags(fS), gen(1), state(conntrack.TCPSynSent)),
			},
		},
		{
			name: "a reset followed by a fresh SYN on the tuple is not a keep-alive race",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent)),
				ev(5, KindClosed, client, flags(fRA), state(conntrack.TCPClose)),
				ev(5.1, KindReopened, client, flags(fS), gen(1), state(conntrack.TCPSynSent)),
				ev(5.2, KindDropped, client, flags(fA), gen(1), state(conntrack.TCPSynSent), reason(drop.InvalidState)),
			},
		},
		{
			name: "an abort (RST+ACK) alone, or data long after it, is not a keep-alive race",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent)),
				ev(5, KindClosed, client, flags(fRA), state(conntrack.TCPClose)),
				ev(0, KindOpened, client2, flags(fS), state(conntrack.TCPSynSent)),
				ev(5, KindClosed, client2, flags(fRA), state(conntrack.TCPClose)),
				ev(60, KindDropped, client2, flags(fPA), state(conntrack.TCPClose), reason(drop.DataOnClosed)),
			},
		},
		{
			name: "SYNs unanswered while others are answered: listen backlog",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent)),
				ev(0, KindOpened, client2, flags(fS), state(conntrack.TCPSynSent)),
				ev(0, KindOpened, tcp("10.0.0.2:40002", backend), flags(fS), state(conntrack.TCPSynSent)),
				ev(0.5, KindClosed, tcp("10.0.0.2:40002", backend), flags(fA), state(conntrack.TCPTimeWait)),
				ev(120, KindExpired, client, state(conntrack.TCPSynSent)),
				ev(125, KindEvicted, client2, state(conntrack.TCPSynSent)),
			},
			want: []want{{SYNUnanswered, Failing, backend, 2}},
			durs: map[string]float64{"syn_unanswered_for": 125},
			fix:  "listen backlog",
		},
		{
			name: "SYNs none answered: the server is down",
			events: []Event{
				ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent)),
				ev(120, KindExpired, client, state(conntrack.TCPSynSent)),
			},
			want: []want{{SYNUnanswered, Failing, backend, 1}},
			fix:  "answered none",
		},
		{
			name: "SNAT ports exhausted",
			events: []Event{
				ev(0, KindSNATExhausted, client, reason(drop.SNATExhausted), zone(ZoneInside)),
				ev(1, KindSNATExhausted, client2, reason(drop.SNATExhausted), zone(ZoneInside)),
				ev(2, KindSNATExhausted, client2, reason(drop.SNATExhausted), zone(ZoneInside)),
				ev(3, KindDropped, tcp("10.0.0.2:40009", backend), flags(fS), reason(drop.SNATProbeLimit), zone(ZoneInside)),
			},
			want: []want{{SNATExhaustion, Failing, backend, 3}},
			fix:  "add addresses to the SNAT pool",
		},
		{
			name: "flow table full",
			events: []Event{
				ev(0, KindRefused, client, flags(fS), reason(drop.TableFull)),
				ev(1, KindRefused, client2, flags(fS), reason(drop.TableFull)),
				ev(1, KindRefused, client2, flags(fS), reason(drop.KeyInUse)),
			},
			want: []want{{TableFull, Failing, AllDestinations, 2}},
			fix:  "conntrack.max_flows",
		},
		{
			name: "clean traffic: closes, reuses, UDP",
			events: cat(conn(0, client), conn(1, client2), conn(130, client), []Event{
				ev(0, KindOpened, Tuple{Proto: protoUDP, Src: netip.MustParseAddrPort("10.0.0.2:5353"), Dst: netip.MustParseAddrPort("10.2.0.3:53")}),
				ev(30, KindExpired, Tuple{Proto: protoUDP, Src: netip.MustParseAddrPort("10.0.0.2:5353"), Dst: netip.MustParseAddrPort("10.2.0.3:53")}, state(conntrack.UDPMultiple)),
				ev(40, KindDropped, tcp("203.0.113.9:5555", "192.0.2.1:22"), flags(fS), reason(drop.FirewallDrop), zone(ZoneOutside)),
			}),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := analyze(Options{}, c.events)
			if len(r.Findings) != len(c.want) {
				t.Fatalf("%d findings, want %d:\n%s", len(r.Findings), len(c.want), describe(&r))
			}
			for _, w := range c.want {
				f := find(&r, w.p, w.s, w.dst)
				if f == nil {
					t.Fatalf("no %s %s finding for %s:\n%s", w.p, w.s, w.dst, describe(&r))
				}
				if f.Count != w.count {
					t.Errorf("%s count %d, want %d:\n%s", w.p, f.Count, w.count, describe(&r))
				}
				if len(f.Examples) == 0 || f.Fix == "" || f.Evidence.Summary == "" || f.FirstSeen.IsZero() {
					t.Errorf("%s: incomplete finding %+v", w.p, f)
				}
			}
			if c.fix != "" && !strings.Contains(r.Findings[0].Fix, c.fix) {
				t.Errorf("fix %q lacks %q", r.Findings[0].Fix, c.fix)
			}
			for name, p50 := range c.durs {
				d, ok := r.Findings[0].Evidence.Durations[name]
				if !ok || d.P50 != p50 {
					t.Errorf("duration %s = %+v, want p50 %v", name, d, p50)
				}
			}
		})
	}
}

func TestLiveSynSent(t *testing.T) {
	now := at(10)
	flows := []Flow{
		{Orig: client, State: conntrack.TCPSynSent, Opened: at(5), PacketsOrig: 3},                       // retransmitted, old
		{Orig: client2, State: conntrack.TCPSynSent, Opened: at(9.9), PacketsOrig: 2},                    // retransmitted, young
		{Orig: tcp("10.0.0.2:3", backend), State: conntrack.TCPSynSent, Opened: at(9.9), PacketsOrig: 1}, // just sent
		{Orig: tcp("10.0.0.2:4", backend), State: conntrack.TCPEstablished, Opened: at(1)},
	}
	a := New(Options{})
	a.AddFlows(flows, now)
	r := a.Report(nil, nil)
	f := find(&r, SYNUnanswered, Failing, backend)
	if f == nil || f.Count != 2 || f.Evidence.Counts["syn_retransmitted"] != 2 || f.Evidence.Counts["syns_sent"] != 5 {
		t.Fatalf("want 2 unanswered connections, 5 SYNs:\n%s", describe(&r))
	}
}

func TestCounters(t *testing.T) {
	dst := netip.MustParseAddrPort("10.2.0.9:443")
	before := &Counters{Time: at(0), Drops: map[string]uint64{"table_full": 5}, Capacity: 1000, Flows: 500,
		Destinations: []DestUsage{{Addr: nat.Addr(), Dst: dst, Proto: protoTCP, Range: 100, Exhausted: 7}}}
	after := &Counters{Time: at(30), Drops: map[string]uint64{"table_full": 5}, Capacity: 1000, Flows: 850, EventsLost: 3,
		Destinations: []DestUsage{
			{Addr: nat.Addr(), Dst: dst, Proto: protoTCP, InUse: 60, Quarantined: 25, Free: 15, Range: 100, Exhausted: 7},
			{Addr: nat.Addr(), Dst: netip.MustParseAddrPort(backend), Proto: protoTCP, InUse: 100, Range: 100, Exhausted: 4},
			{Addr: nat.Addr(), Dst: netip.MustParseAddrPort("10.2.0.7:80"), Proto: protoTCP, InUse: 10, Range: 100},
		}}
	a := New(Options{})
	r := a.Report(before, after)
	checks := []want{
		{TableFull, Warning, AllDestinations, 850},
		{SNATExhaustion, Warning, dst.String(), 85},
		{SNATExhaustion, Failing, backend, 4},
	}
	if len(r.Findings) != len(checks) {
		t.Fatalf("%d findings, want %d:\n%s", len(r.Findings), len(checks), describe(&r))
	}
	for _, w := range checks {
		if f := find(&r, w.p, w.s, w.dst); f == nil || f.Count != w.count {
			t.Errorf("want %s %s %s count %d:\n%s", w.p, w.s, w.dst, w.count, describe(&r))
		}
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "3 events were lost") {
		t.Errorf("notes %q", r.Notes)
	}

	// Refusals seen as events and counted: one finding, the larger count,
	// no warning beside it.
	after.Drops["table_full"] = 8
	a = New(Options{})
	evs := []Event{ev(1, KindRefused, client, flags(fS), reason(drop.TableFull)), ev(2, KindRefused, client2, flags(fS), reason(drop.TableFull))}
	for i := range evs {
		a.Add(&evs[i])
	}
	r = a.Report(before, after)
	if f := find(&r, TableFull, Failing, AllDestinations); f == nil || f.Count != 3 {
		t.Errorf("want table_full failing count 3 (counters):\n%s", describe(&r))
	}
	if find(&r, TableFull, Warning, AllDestinations) != nil {
		t.Errorf("warning beside the failure:\n%s", describe(&r))
	}
}

func TestRanking(t *testing.T) {
	evs := []Event{
		// prevented, 3 connections
		ev(0, KindDropped, tcp("10.0.0.3:1", "10.2.0.5:80"), flags(fFA), reason(drop.NoState)),
		ev(1, KindOpened, tcp("10.0.0.3:1", "10.2.0.5:80"), flags(fS)),
		ev(0, KindDropped, tcp("10.0.0.3:2", "10.2.0.5:80"), flags(fFA), reason(drop.NoState)),
		ev(1, KindOpened, tcp("10.0.0.3:2", "10.2.0.5:80"), flags(fS)),
		ev(0, KindDropped, tcp("10.0.0.3:3", "10.2.0.5:80"), flags(fFA), reason(drop.NoState)),
		ev(1, KindOpened, tcp("10.0.0.3:3", "10.2.0.5:80"), flags(fS)),
		// failing, 1 connection
		ev(2, KindOpened, client, flags(fS)),
		ev(3, KindExpired, client, state(conntrack.TCPEstablished)),
		ev(4, KindDropped, client, flags(fPA), reason(drop.NoState)),
		// failing, 2 connections
		ev(5, KindSNATExhausted, tcp("10.0.0.4:1", "10.2.0.6:443")),
		ev(5, KindSNATExhausted, tcp("10.0.0.4:2", "10.2.0.6:443")),
	}
	a := New(Options{})
	for i := range evs {
		a.Add(&evs[i])
	}
	after := &Counters{Time: at(10), Flows: 90, Capacity: 100}
	r := a.Report(nil, after)
	var got []string
	for _, f := range r.Findings {
		got = append(got, fmt.Sprintf("%s/%s/%s", f.Pattern, f.Severity, f.Destination))
	}
	want := []string{
		"snat_exhaustion/failing/10.2.0.6:443",
		"idle_expiry/failing/" + backend,
		"table_full/warning/*",
		"stray_fin_port_reuse/prevented/10.2.0.5:80",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ranked\n %v\nwant\n %v", got, want)
	}
}

func TestBounds(t *testing.T) {
	a := New(Options{MaxTuples: 100, MaxDestinations: 10, Examples: 2})
	// One destination with failures, then many with only traffic.
	for i := range 5 {
		tu := tcp(fmt.Sprintf("10.0.0.2:%d", 1000+i), backend)
		evs := []Event{
			ev(float64(i), KindOpened, tu, flags(fS)),
			ev(float64(i)+1, KindExpired, tu, state(conntrack.TCPSynSent)),
		}
		for j := range evs {
			a.Add(&evs[j])
		}
	}
	for i := range 1000 {
		e := ev(10+float64(i)/100, KindOpened, tcp(fmt.Sprintf("10.0.1.%d:2000", i%250), fmt.Sprintf("10.3.%d.%d:80", i/250, i%250)), flags(fS))
		a.Add(&e)
		if len(a.tuples) > 100 || len(a.dests) > 10 || len(a.replies) > 100 {
			t.Fatalf("bounds passed: %d tuples, %d destinations", len(a.tuples), len(a.dests))
		}
	}
	r := a.Report(nil, nil)
	f := find(&r, SYNUnanswered, Failing, backend)
	if f == nil || f.Count != 5 || len(f.Examples) != 2 {
		t.Fatalf("the destination with evidence was not kept:\n%s", describe(&r))
	}
	if len(r.Notes) != 2 {
		t.Errorf("notes %q, want the two bounds", r.Notes)
	}
}

func TestJSON(t *testing.T) {
	evs := []Event{
		ev(0, KindOpened, client, flags(fS), withNAT(nat)),
		ev(5, KindClosed, client, flags(fRA), state(conntrack.TCPClose), withNAT(nat)),
		ev(5.1, KindDropped, client, flags(fPA), state(conntrack.TCPClose), reason(drop.DataOnClosed), withNAT(nat)),
	}
	r := analyze(Options{}, evs)
	var b bytes.Buffer
	if err := WriteJSON(&b, &r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines: %s", len(lines), b.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pattern", "destination", "count", "first_seen", "last_seen", "examples", "fix", "evidence"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, lines[0])
		}
	}
	if m["pattern"] != "keepalive_race" || m["destination"] != backend || m["count"] != 1.0 {
		t.Errorf("got %s", lines[0])
	}
	ex := m["examples"].([]any)[0].(map[string]any)
	if ex["tuple"] != "tcp 10.0.0.2:40000 -> 10.2.0.2:8080" || ex["nat"] != "192.0.2.1:40000" || len(ex["events"].([]any)) != 3 {
		t.Errorf("example %v", ex)
	}
}
