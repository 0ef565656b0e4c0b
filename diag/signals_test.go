package diag

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
)

// sig builds one destination's signals toward the backend.
func sig(counters map[string]uint64, hists map[string][]uint64) DestSignals {
	return DestSignals{Dst: netip.MustParseAddrPort(backend), Proto: protoTCP, Counters: counters, Hists: hists}
}

// bucket returns log2 ms buckets with n counts in bucket i.
func bucket(i int, n uint64) []uint64 {
	b := make([]uint64, i+1)
	b[i] = n
	return b
}

func signalsReport(before, after []DestSignals, evs ...Event) Report {
	a := New(Options{})
	for i := range evs {
		a.Add(&evs[i])
	}
	a.AddDestinations(before, after)
	return a.Report(nil, nil)
}

// Each pattern the per-destination signals show, alone (no events), over
// the window between two snapshots.
func TestDestinationSignals(t *testing.T) {
	idle5s := bucket(13, 9)   // [4.096, 8.192) s
	delay10ms := bucket(4, 7) // [8, 16) ms
	cases := []struct {
		name          string
		before, after []DestSignals
		want          []want
		summary, fix  string // substrings of the first finding's
		durs          []string
	}{
		{"clean traffic", nil,
			[]DestSignals{sig(map[string]uint64{"flows": 100, "handshakes": 100, "server_closes": 40, "resets_client": 3},
				map[string][]uint64{"handshake_rtt": bucket(2, 100), "server_idle_close": idle5s})},
			[]want{{KeepaliveRace, Failing, backend, 0}, {SYNUnanswered, Failing, backend, 0}, {SYNUnanswered, Warning, backend, 0}},
			"", "", nil},
		{"keep-alive race",
			[]DestSignals{sig(map[string]uint64{"flows": 10, "keepalive_races": 5, "server_closes": 6}, nil)},
			[]DestSignals{sig(map[string]uint64{"flows": 60, "keepalive_races": 12, "server_closes": 15},
				map[string][]uint64{"server_idle_close": idle5s, "race_delay": delay10ms})},
			[]want{{KeepaliveRace, Failing, backend, 7}},
			"the client sent data on 7 connections to 10.2.0.2:8080 the server had closed, up to 16ms after the server's last packet, its FIN or a retransmission of it (median 12ms); the server closed 9 connections after ~6.1s (4.1s-8.2s) idle",
			"closes idle connections after ~6.1s (4.1s-8.2s) while clients",
			[]string{"server_idle_close", "server_close_to_client_data"}},
		{"keep-alive race with the clients' reuse times",
			nil,
			[]DestSignals{sig(map[string]uint64{"flows": 60, "keepalive_races": 7, "server_closes": 9, "client_reuses": 20},
				map[string][]uint64{"server_idle_close": idle5s, "race_delay": delay10ms, "client_reuse_idle": bucket(16, 20)})},
			[]want{{KeepaliveRace, Failing, backend, 7}},
			"; clients reused 20 connections to 10.2.0.2:8080 after ~49.2s (32.8s-1m5.5s) idle, up to 1m5.5s",
			"while clients (the proxy) still reuse them after up to 1m5.5s idle:",
			[]string{"server_idle_close", "client_reuse_idle"}},
		{"counts that went down start from zero",
			[]DestSignals{sig(map[string]uint64{"keepalive_races": 50}, nil)},
			[]DestSignals{sig(map[string]uint64{"keepalive_races": 4}, nil)},
			[]want{{KeepaliveRace, Failing, backend, 4}}, "4 connections", "", nil},
		{"SYNs resent, answered late: a backlog",
			nil,
			[]DestSignals{sig(map[string]uint64{"flows": 100, "syn_retransmits": 12, "syn_retried": 10, "handshakes": 100},
				map[string][]uint64{"handshake_rtt": bucket(11, 10)})},
			[]want{{SYNUnanswered, Failing, backend, 10}, {SYNUnanswered, Warning, backend, 0}},
			"10 needed their SYN sent again (12 SYNs resent), 0 timed out", "listen backlog", []string{"handshake_time"}},
		{"SYNs never answered, some connections fine: a backlog",
			nil,
			[]DestSignals{sig(map[string]uint64{"flows": 100, "syn_retransmits": 40, "syn_retried": 10, "handshake_timeouts": 8, "handshakes": 90}, nil)},
			[]want{{SYNUnanswered, Failing, backend, 10}, {SYNUnanswered, Warning, backend, 0}},
			"8 timed out unanswered", "listen backlog", nil},
		{"no SYN answered: down",
			nil,
			[]DestSignals{sig(map[string]uint64{"flows": 5, "syn_retransmits": 20, "syn_retried": 5, "handshake_timeouts": 5}, nil)},
			[]want{{SYNUnanswered, Failing, backend, 5}},
			"", "answered none", nil},
		{"idle expiry",
			nil,
			[]DestSignals{sig(map[string]uint64{"flows": 3, "expired_late": 2}, map[string][]uint64{"expired_idle": bucket(23, 2)})},
			[]want{{IdleExpiry, Failing, backend, 2}},
			"a packet of each came afterwards and was dropped, idle ~", "", []string{"idle_before_late_packet"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := signalsReport(tc.before, tc.after)
			for _, w := range tc.want {
				f := find(&r, w.p, w.s, w.dst)
				switch {
				case w.count == 0 && f != nil:
					t.Errorf("unexpected %v %v: %s", w.p, w.s, describe(&r))
				case w.count != 0 && f == nil:
					t.Errorf("no %v %v at %s: %s", w.p, w.s, w.dst, describe(&r))
				case w.count != 0 && f.Count != w.count:
					t.Errorf("%v count %d, want %d", w.p, f.Count, w.count)
				}
			}
			if tc.summary == "" && tc.fix == "" && tc.durs == nil {
				return
			}
			if len(r.Findings) == 0 {
				t.Fatal("no finding")
			}
			f := r.Findings[0]
			if !strings.Contains(f.Evidence.Summary, tc.summary) {
				t.Errorf("summary %q lacks %q", f.Evidence.Summary, tc.summary)
			}
			if !strings.Contains(f.Fix, tc.fix) {
				t.Errorf("fix %q lacks %q", f.Fix, tc.fix)
			}
			for _, d := range tc.durs {
				if f.Evidence.Durations[d].N == 0 {
					t.Errorf("no distribution %s: %v", d, f.Evidence.Durations)
				}
			}
		})
	}
}

// Events and signals about the same connections: the larger count wins,
// and the evidence of both is kept.
func TestDestinationSignalsMergeWithEvents(t *testing.T) {
	evs := []Event{
		ev(0, KindOpened, client, flags(fS), state(3), withNAT(nat)),
		ev(5, KindClosed, client, flags(fRA), dir(DirReply), withNAT(nat)),
	}
	r := signalsReport(nil, []DestSignals{sig(map[string]uint64{"keepalive_races": 3, "server_closes": 3, "resets_server": 1},
		map[string][]uint64{"server_idle_close": bucket(13, 3)})}, evs...)
	f := find(&r, KeepaliveRace, Failing, backend)
	if f == nil {
		t.Fatalf("no keepalive_race: %s", describe(&r))
	}
	if f.Count != 3 || f.Evidence.Counts["server_resets"] != 1 || f.Evidence.Counts["client_data_after_server_close"] != 3 ||
		len(f.Examples) != 1 || f.Evidence.Durations["server_idle_close"].N != 3 {
		t.Fatalf("merged finding %+v", f)
	}
}

// At most MaxDestinations destinations are kept from the signals.
func TestDestinationSignalsBounded(t *testing.T) {
	a := New(Options{MaxDestinations: 2})
	var after []DestSignals
	for i := 0; i < 5; i++ {
		after = append(after, DestSignals{Dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, 0, byte(i)}), 80), Proto: protoTCP,
			Counters: map[string]uint64{"keepalive_races": 1}})
	}
	a.AddDestinations(nil, after)
	a.AddDestinations(nil, after)
	r := a.Report(nil, nil)
	if len(r.Findings) != 2 || r.Findings[0].Count != 2 {
		t.Fatalf("%d findings (want 2, the first two destinations, counted twice): %s", len(r.Findings), describe(&r))
	}
}

func TestBucketDist(t *testing.T) {
	if _, ok := bucketDist([]uint64{0, 0}); ok {
		t.Fatal("empty buckets summarised")
	}
	d, _ := bucketDist([]uint64{1, 0, 0, 2, 0, 1}) // <1ms, [4,8)ms x2, [16,32)ms
	want := Dist{N: 4, Min: 0, P50: 0.006, P90: 0.024, Max: 0.032}
	if d != want {
		t.Fatalf("%+v, want %+v", d, want)
	}
}

// An expired event's idle time names the timer and how long the
// connection really stayed idle.
func TestIdleExpiryWithIdleTime(t *testing.T) {
	idle := func(d time.Duration) evOpt { return func(e *Event) { e.Idle = d } }
	r := analyze(Options{}, []Event{
		ev(0, KindOpened, client, flags(fS), state(conntrack.TCPSynSent), withNAT(nat)),
		ev(400, KindExpired, client, state(conntrack.TCPEstablished), withNAT(nat), idle(350500*time.Millisecond)),
		ev(430, KindDropped, client, flags(fPA), reason(drop.NoState), zone(ZoneInside)),
	})
	f := find(&r, IdleExpiry, Failing, backend)
	if f == nil {
		t.Fatalf("no idle_expiry: %s", describe(&r))
	}
	if d := f.Evidence.Durations; d["idle_at_expiry"].P50 != 350.5 || d["idle_before_next_packet"].Max != 380.5 {
		t.Fatalf("durations %+v", d)
	}
	if !strings.Contains(f.Fix, "stay idle up to 6m20.5s, longer than edge's idle timeout (~5m50.5s)") || len(f.Evidence.Missing) != 0 {
		t.Fatalf("fix %q, missing %v", f.Fix, f.Evidence.Missing)
	}
}

// Live SYN_SENT flows (AddFlows) and the signals about the same
// destination make one finding that carries both.
func TestSYNUnansweredFlowsAndSignals(t *testing.T) {
	a := New(Options{})
	a.AddFlows([]Flow{{Orig: client, State: conntrack.TCPSynSent, Opened: at(0), PacketsOrig: 3}}, at(10))
	a.AddDestinations(nil, []DestSignals{sig(map[string]uint64{"flows": 10, "syn_retransmits": 9, "syn_retried": 4, "handshakes": 6},
		map[string][]uint64{"handshake_rtt": bucket(11, 6)})})
	r := a.Report(nil, nil)
	f := find(&r, SYNUnanswered, Failing, backend)
	if f == nil || len(r.Findings) != 1 {
		t.Fatalf("want one syn_unanswered: %s", describe(&r))
	}
	if f.Count != 4 || f.Evidence.Counts["live_in_syn_sent"] != 1 || f.Evidence.Counts["handshakes_syn_retried"] != 4 ||
		f.Evidence.Durations["handshake_time"].N != 6 || len(f.Evidence.Missing) != 0 || !strings.Contains(f.Fix, "listen backlog") {
		t.Fatalf("%+v", f)
	}
}

func TestAround(t *testing.T) {
	for _, c := range []struct {
		b    []uint64
		want string
	}{
		{[]uint64{3}, "under 1ms"},
		{bucket(1, 1), "~2ms (1ms-2ms)"},
		{bucket(13, 1), "~6.1s (4.1s-8.2s)"},
	} {
		d, _ := bucketDist(c.b)
		if got := around(d); got != c.want {
			t.Errorf("around(%v) = %q, want %q", c.b, got, c.want)
		}
	}
}
