package diag

import (
	"strings"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
)

// nsx_shadow: the connections whose SYN-ACK NSX compatibility mode would
// have dropped are a prevented stray_fin_port_reuse finding that says so,
// counted once per connection, from events and from the destination
// counter alike.
func TestNSXShadowFinding(t *testing.T) {
	const sentence = "would have failed behind an NSX-style firewall"
	wouldDrop := func(sec float64, g uint16) Event {
		return ev(sec, KindNSXWouldDrop, client, flags(fSA), state(conntrack.TCPSynRecv), gen(g),
			reason(drop.NSXSynAckOnClosing), withNAT(nat), dir(DirReply))
	}
	cases := []struct {
		name    string
		events  []Event
		signals []DestSignals
		count   uint64
		summary string
	}{
		{"a stray FIN, the port reused, its SYN-ACK judged in shadow", cat(conn(0, client), []Event{
			ev(130, KindDropped, client, flags(fFA), reason(drop.NoState), zone(ZoneInside)),
			ev(131, KindOpened, client, flags(fS), state(conntrack.TCPSynSent), withNAT(nat)),
			wouldDrop(131.1, 0),
		}), nil, 1, "1 connection to 10.2.0.2:8080 " + sentence + ": edge forwarded their SYN-ACKs, which NSX compatibility mode (judging in shadow) would have dropped on a CLOSING entry left by an earlier connection on the same port; edge dropped 1 delayed FINs"},
		{"port reuse on TIME_WAIT, twice", []Event{
			ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent), withNAT(nat)),
			ev(0.5, KindClosed, client, flags(fA), state(conntrack.TCPTimeWait), withNAT(nat)),
			ev(1, KindReopened, client, flags(fS), gen(1), state(conntrack.TCPSynSent), withNAT(nat)),
			wouldDrop(1.1, 1),
			wouldDrop(1.2, 1), // its SYN-ACK again: the same connection
			ev(1.5, KindClosed, client, flags(fA), gen(1), state(conntrack.TCPTimeWait), withNAT(nat)),
			ev(2, KindReopened, client, flags(fS), gen(2), state(conntrack.TCPSynSent), withNAT(nat)),
			wouldDrop(2.1, 2),
		}, nil, 2, "2 connections to 10.2.0.2:8080 " + sentence},
		{"the destination counter alone", nil,
			[]DestSignals{sig(map[string]uint64{"flows": 50, "handshakes": 50, "nsx_would_fail": 4}, nil)},
			4, "4 connections to 10.2.0.2:8080 " + sentence},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := signalsReport(nil, tc.signals, tc.events...)
			f := find(&r, StrayFINPortReuse, Prevented, backend)
			if f == nil || len(r.Findings) != 1 {
				t.Fatalf("want one prevented stray_fin_port_reuse finding:\n%s", describe(&r))
			}
			if f.Count != tc.count || f.Evidence.Counts["nsx_would_fail"] != tc.count {
				t.Fatalf("count %d, nsx_would_fail %d; want %d:\n%s", f.Count, f.Evidence.Counts["nsx_would_fail"], tc.count, describe(&r))
			}
			if !strings.Contains(f.Evidence.Summary, tc.summary) || !strings.Contains(f.Fix, "nothing to do on edge") {
				t.Fatalf("summary %q\nfix %q\nwant %q", f.Evidence.Summary, f.Fix, tc.summary)
			}
		})
	}
}
