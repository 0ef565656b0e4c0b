package diag

import (
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
)

func reset(e *Event) { e.Reset = true }

func idle(d time.Duration) evOpt { return func(e *Event) { e.Idle = d } }

// idle_expiry says whether edge reset the expired connections' ends or
// removed them silently (the expired event's idle_expiry).
func TestIdleExpiryResetOrSilent(t *testing.T) {
	open := ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent), withNAT(nat))
	late := ev(32, KindDropped, client, flags(fPA), reason(drop.NoState), zone(ZoneInside))
	cases := []struct {
		name    string
		events  []Event
		want    []want
		summary string // in the first finding's summary
		fix     string // in the first finding's fix
	}{
		{"reset, nothing after: prevented", []Event{open,
			ev(30, KindExpired, client, state(conntrack.TCPEstablished), withNAT(nat), idle(30*time.Second), reset)},
			[]want{{IdleExpiry, Prevented, backend, 1}, {IdleExpiry, Failing, backend, 0}},
			"removed 1 established connection to 10.2.0.2:8080 after 30s idle (median) and reset both ends (idle_expiry: reset)",
			"nothing to do on edge if connections to 10.2.0.2:8080 are meant to close when idle"},
		{"silent, then the client's data: failing, says silent", []Event{open,
			ev(30, KindExpired, client, state(conntrack.TCPEstablished), withNAT(nat)), late},
			[]want{{IdleExpiry, Failing, backend, 1}, {IdleExpiry, Prevented, backend, 0}},
			"edge removed them silently (idle_expiry: silent)",
			"set idle_expiry: reset on the profile"},
		{"reset, yet a packet after: failing, says reset", []Event{open,
			ev(30, KindExpired, client, state(conntrack.TCPEstablished), withNAT(nat), reset), late},
			[]want{{IdleExpiry, Failing, backend, 1}, {IdleExpiry, Prevented, backend, 1}},
			"edge reset both ends when it removed them (idle_expiry: reset), and packets still came", ""},
		{"a handshake that expired is no idle expiry, reset or not", []Event{open,
			ev(120, KindExpired, client, state(conntrack.TCPSynSent), withNAT(nat))},
			[]want{{IdleExpiry, Prevented, backend, 0}, {IdleExpiry, Failing, backend, 0}}, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := analyze(Options{}, tc.events)
			for _, w := range tc.want {
				f := find(&r, w.p, w.s, w.dst)
				switch {
				case w.count == 0 && f != nil:
					t.Fatalf("unexpected %v %v finding:\n%s", w.p, w.s, describe(&r))
				case w.count > 0 && (f == nil || f.Count != w.count):
					t.Fatalf("want %v %v count %d:\n%s", w.p, w.s, w.count, describe(&r))
				}
			}
			if tc.summary == "" {
				return
			}
			f := &r.Findings[0]
			if !strings.Contains(f.Evidence.Summary, tc.summary) || !strings.Contains(f.Fix, tc.fix) {
				t.Fatalf("summary %q\nfix %q\nwant %q and %q", f.Evidence.Summary, f.Fix, tc.summary, tc.fix)
			}
		})
	}
}
