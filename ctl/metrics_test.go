package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/snat"
)

// statsBackend serves Status and Stats; the rest is unused by metrics.
type statsBackend struct {
	Backend     // nil: any other method panics
	stats       Stats
	status      Status
	err         error
	calls       int
	statusCalls int
	dests       bool // the last Stats call asked for destinations
	unanswered  bool // the workers do not answer for destinations
	signals     conntrack.Destinations
	signalsErr  error
}

func (b *statsBackend) Destinations(context.Context) (conntrack.Destinations, error) {
	return b.signals, b.signalsErr
}

func (b *statsBackend) Status(context.Context) (Status, error) {
	b.statusCalls++
	return b.status, b.err
}

func (b *statsBackend) Stats(_ context.Context, destinations bool) (Stats, error) {
	b.calls++
	b.dests = destinations
	s := b.stats
	if !destinations || b.unanswered {
		s.SNATDestinations = nil
	}
	if destinations && b.unanswered {
		s.Warnings = []string{"snat destinations: the data plane did not answer"}
	}
	return s, b.err
}

func TestMetricsExposition(t *testing.T) {
	b := &statsBackend{
		status: Status{Version: "v-test", Started: time.Unix(1000, 0), SNAT: &SNATStatus{Mode: "automap"}},
	}
	w := WorkerStats{ID: 0, RX: [2]uint64{10, 20}, TX: [2]uint64{19, 9}, Created: 3, Flows: 2, RST: 1}
	w.Drops[drop.FirewallDrop] = 4
	w.ICMP[icmp.TimeExceeded] = 2
	b.stats = Stats{
		Workers:    []WorkerStats{w, {ID: 1, RX: [2]uint64{1, 1}}},
		Interfaces: []InterfaceStats{{Name: "in", Zone: "inside", RX: 11, TX: 20, XDPRedirected: 14, XSKFillRingEmpty: 3}},
		Conntrack:  conntrack.Stats{Flows: 2, Capacity: 1024},
		SNATDestinations: []snat.DestStat{{Addr: netip.MustParseAddr("203.0.113.1"),
			Dst: netip.MustParseAddrPort("203.0.113.2:80"), Proto: 6, InUse: 5, Free: 10, Range: 15, Exhausted: 7}},
		EventsLost: 9,
	}
	b.stats.SNAT.Counters[snat.CtrExhausted] = 7
	c := NewCollector(b, time.Second)
	want := `
# HELP edge_worker_drops_total Packets dropped by a worker, by reason (see ` + "`edge stats`" + `).
# TYPE edge_worker_drops_total counter
edge_worker_drops_total{reason="firewall_drop",worker="0"} 4
# HELP edge_snat_exhausted_total Flows refused for lack of a port toward a destination.
# TYPE edge_snat_exhausted_total counter
edge_snat_exhausted_total{address="203.0.113.1",destination="203.0.113.2:80",protocol="tcp",zone="0"} 7
# HELP edge_events_lost_total Events the data plane could not queue (full rings).
# TYPE edge_events_lost_total counter
edge_events_lost_total 9
# HELP edge_up 1 when the data plane answered this scrape.
# TYPE edge_up gauge
edge_up 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"edge_worker_drops_total", "edge_snat_exhausted_total", "edge_events_lost_total", "edge_up"); err != nil {
		t.Fatal(err)
	}

	// Through HTTP, as a scraper sees it; counters are read per scrape.
	srv := httptest.NewServer(MetricsHandler(c))
	defer srv.Close()
	before := b.calls
	body := scrape(t, srv.URL)
	for _, s := range []string{`edge_worker_rx_packets_total{worker="0",zone="outside"} 20`,
		`edge_xdp_packets_total{interface="in",verdict="redirected"} 14`,
		`edge_xsk_lost_total{interface="in",reason="fill_ring_empty"} 3`,
		`edge_snat_ports{address="203.0.113.1",destination="203.0.113.2:80",protocol="tcp",use="in_use",zone="0"} 5`,
		`edge_snat_destinations 1`, `edge_scrape_partial 0`,
		`edge_build_info{version="v-test"} 1`, `edge_icmp_errors_sent_total{kind="time_exceeded"} 2`,
		`edge_tcp_resets_sent_total 1`, "go_goroutines"} {
		if !strings.Contains(body, s) {
			t.Errorf("scrape lacks %s", s)
		}
	}
	if b.calls != before+1 || !b.dests {
		t.Errorf("one scrape made %d Stats calls (destinations %v), want 1 with destinations", b.calls-before, b.dests)
	}
	// Status is read once, not per scrape (it reads the kernel).
	scrape(t, srv.URL)
	if b.statusCalls != 1 {
		t.Errorf("%d Status calls for %d scrapes, want 1 (cached)", b.statusCalls, b.calls)
	}

	// Workers that do not answer for the destinations: the counters are
	// still exported, edge_up 1, edge_scrape_partial 1.
	b.unanswered = true
	body = scrape(t, srv.URL)
	for _, s := range []string{"edge_up 1", "edge_scrape_partial 1", `edge_worker_drops_total{reason="firewall_drop",worker="0"} 4`,
		`edge_snat_events_total{counter="snat_exhausted"} 7`} {
		if !strings.Contains(body, s) {
			t.Errorf("partial scrape lacks %s", s)
		}
	}
	if strings.Contains(body, "edge_snat_ports{") || strings.Contains(body, "edge_snat_destinations ") {
		t.Error("partial scrape has destination series")
	}
	b.unanswered = false

	// A data plane that does not answer: edge_up 0, nothing else.
	b.err = errors.New("workers not serving")
	if err := testutil.CollectAndCompare(c, strings.NewReader("# HELP edge_up 1 when the data plane answered this scrape.\n# TYPE edge_up gauge\nedge_up 0\n"), "edge_up"); err != nil {
		t.Fatal(err)
	}
}

// Without SNAT the workers are not asked for destinations.
func TestMetricsWithoutSNAT(t *testing.T) {
	b := &statsBackend{status: Status{Version: "v"}}
	c := NewCollector(b, time.Second)
	if n := testutil.CollectAndCount(c, "edge_up"); n != 1 {
		t.Fatalf("edge_up: %d series", n)
	}
	if b.calls != 1 || b.dests {
		t.Fatalf("%d Stats calls, destinations %v", b.calls, b.dests)
	}
}

// A status that cannot be read at first: edge_up 0; later it is cached.
func TestMetricsStatusCache(t *testing.T) {
	b := &statsBackend{status: Status{Version: "v", SNAT: &SNATStatus{}}, err: errors.New("not yet")}
	c := NewCollector(b, time.Second)
	if err := testutil.CollectAndCompare(c, strings.NewReader("# HELP edge_up 1 when the data plane answered this scrape.\n# TYPE edge_up gauge\nedge_up 0\n"), "edge_up"); err != nil {
		t.Fatal(err)
	}
	b.err = nil
	for range 3 {
		testutil.CollectAndCount(c)
	}
	if b.statusCalls != 2 {
		t.Fatalf("%d Status calls, want 2 (one failed, one cached)", b.statusCalls)
	}
	// An old status is read again.
	c.mu.Lock()
	c.statusAt = time.Now().Add(-statusTTL)
	c.mu.Unlock()
	testutil.CollectAndCount(c)
	if b.statusCalls != 3 {
		t.Fatalf("%d Status calls after the TTL, want 3", b.statusCalls)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBusiestDestinations(t *testing.T) {
	var ds []snat.DestStat
	for i := range 10 {
		ds = append(ds, snat.DestStat{InUse: i % 5, Exhausted: uint64(i)})
	}
	got := busiest(ds, 3)
	if len(got) != 3 || got[0].InUse != 4 || got[0].Exhausted != 9 || got[1].Exhausted != 4 || got[2].InUse != 3 {
		t.Fatalf("busiest = %+v", got)
	}
	if ds[0].InUse != 0 {
		t.Fatal("busiest reordered its input")
	}
	if got := busiest(ds, 100); len(got) != len(ds) || got[len(got)-1].InUse != 0 {
		t.Fatalf("busiest of fewer than n = %+v", got)
	}
	if got := busiest(nil, 5); len(got) != 0 {
		t.Fatalf("busiest(nil) = %+v", got)
	}
	// Many destinations: sorted, not quadratic (this would take minutes
	// with a selection of 200,000 among 200,000).
	big := make([]snat.DestStat, 200_000)
	for i := range big {
		big[i].InUse = (i * 7919) % 1000
	}
	start := time.Now()
	top := busiest(big, len(big))
	for i := 1; i < len(top); i++ {
		if top[i].InUse > top[i-1].InUse {
			t.Fatalf("not sorted at %d", i)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("busiest of 200,000 took %v", d)
	}
}

// The neighbour mirror's, the fragment tables' and the kernel routes'
// counters, with the fake backend's values (all distinct).
func TestMetricsNeighboursFragmentsRoutes(t *testing.T) {
	b := &statsBackend{status: Status{Version: "v"}, stats: newFake().stats}
	c := NewCollector(b, time.Second)
	want := `
# HELP edge_neighbour_entries Neighbour (ARP, NDP) entries the workers use, both interfaces.
# TYPE edge_neighbour_entries gauge
edge_neighbour_entries 21
# HELP edge_neighbour_kept_entries Neighbour entries in use served from memory because the kernel's dump lacks them.
# TYPE edge_neighbour_kept_entries gauge
edge_neighbour_kept_entries 22
# HELP edge_neighbour_resolutions_outstanding Neighbour resolutions asked of the kernel and not answered yet.
# TYPE edge_neighbour_resolutions_outstanding gauge
edge_neighbour_resolutions_outstanding 23
# HELP edge_neighbour_events_total Neighbour mirror counters (kept, kept_recovered, kept_expired, kept_failed, resolutions_requested, resolutions_refused, resolutions_given_up, kernel_entries_deleted, held, held_sent, held_dropped).
# TYPE edge_neighbour_events_total counter
edge_neighbour_events_total{counter="kept"} 24
edge_neighbour_events_total{counter="kept_recovered"} 25
edge_neighbour_events_total{counter="kept_expired"} 26
edge_neighbour_events_total{counter="kept_failed"} 27
edge_neighbour_events_total{counter="resolutions_requested"} 28
edge_neighbour_events_total{counter="resolutions_refused"} 29
edge_neighbour_events_total{counter="resolutions_given_up"} 30
edge_neighbour_events_total{counter="kernel_entries_deleted"} 31
edge_neighbour_events_total{counter="held"} 32
edge_neighbour_events_total{counter="held_sent"} 33
edge_neighbour_events_total{counter="held_dropped"} 34
# HELP edge_kernel_routes_refused_total Refreshes of routes_from_kernel refused (more than routes_from_kernel_max, netlink errors).
# TYPE edge_kernel_routes_refused_total counter
edge_kernel_routes_refused_total 32
# HELP edge_worker_fragments_total A worker's fragment table counters (first_noted, followed, held, released, expired_held, completed, refused, expired_state).
# TYPE edge_worker_fragments_total counter
edge_worker_fragments_total{counter="first_noted",worker="0"} 41
edge_worker_fragments_total{counter="followed",worker="0"} 42
edge_worker_fragments_total{counter="held",worker="0"} 43
edge_worker_fragments_total{counter="released",worker="0"} 14
edge_worker_fragments_total{counter="expired_held",worker="0"} 15
edge_worker_fragments_total{counter="completed",worker="0"} 46
edge_worker_fragments_total{counter="refused",worker="0"} 47
edge_worker_fragments_total{counter="expired_state",worker="0"} 48
edge_worker_fragments_total{counter="first_noted",worker="1"} 1
edge_worker_fragments_total{counter="followed",worker="1"} 2
edge_worker_fragments_total{counter="held",worker="1"} 3
edge_worker_fragments_total{counter="released",worker="1"} 1
edge_worker_fragments_total{counter="expired_held",worker="1"} 1
edge_worker_fragments_total{counter="completed",worker="1"} 6
edge_worker_fragments_total{counter="refused",worker="1"} 7
edge_worker_fragments_total{counter="expired_state",worker="1"} 8
# HELP edge_worker_fragments_held Later fragments a worker holds now for their datagram's first fragment.
# TYPE edge_worker_fragments_held gauge
edge_worker_fragments_held{worker="0"} 14
edge_worker_fragments_held{worker="1"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "edge_neighbour_entries", "edge_neighbour_kept_entries",
		"edge_neighbour_resolutions_outstanding", "edge_neighbour_events_total", "edge_kernel_routes_refused_total",
		"edge_worker_fragments_total", "edge_worker_fragments_held"); err != nil {
		t.Fatal(err)
	}
}

// Drop reasons and SNAT counters are exported by name, whichever they
// are: the ones added for floods, fragments, neighbours and header checks
// among them, in the metrics and in GetStats.
func TestMetricsEveryDropReasonAndSNATCounter(t *testing.T) {
	b := &statsBackend{status: Status{Version: "v", SNAT: &SNATStatus{Mode: "automap"}}}
	w := WorkerStats{ID: 3}
	for r := drop.Reason(1); r < drop.NumReasons; r++ {
		w.Drops[r] = 1000 + uint64(r)
	}
	b.stats.Workers = []WorkerStats{w}
	for i := snat.Counter(0); i < snat.NumCounters; i++ {
		b.stats.SNAT.Counters[i] = 2000 + uint64(i)
	}
	body := exposition(t, NewCollector(b, time.Second))
	r := statsToPB(&b.stats, 0)
	for _, name := range []string{"probe_limit", "snat_probe_limit", "fragment_no_room", "fragment_expired",
		"neighbour_resolve_limited", "bad_ip_checksum", "urpf", "own_address_source", "oversize"} {
		reason, ok := drop.ByName(name)
		if !ok {
			t.Errorf("no drop reason %s", name)
			continue
		}
		line := fmt.Sprintf(`edge_worker_drops_total{reason="%s",worker="3"} %d`, name, 1000+int(reason))
		if !strings.Contains(body, line) {
			t.Errorf("metrics lack %s", line)
		}
		if r.Drops[name] != 1000+uint64(reason) || r.Workers[0].Drops[name] != 1000+uint64(reason) {
			t.Errorf("GetStats drops[%s] = %d, worker %d", name, r.Drops[name], r.Workers[0].Drops[name])
		}
	}
	for _, name := range []string{"snat_probe_limit", "released_unheld", "probes", "scans"} {
		var ctr snat.Counter
		for ctr = 0; ctr < snat.NumCounters && ctr.String() != name; ctr++ {
		}
		if ctr == snat.NumCounters {
			t.Errorf("no SNAT counter %s", name)
			continue
		}
		line := fmt.Sprintf(`edge_snat_events_total{counter="%s"} %d`, name, 2000+int(ctr))
		if !strings.Contains(body, line) {
			t.Errorf("metrics lack %s", line)
		}
		if r.Snat[name] != 2000+uint64(ctr) {
			t.Errorf("GetStats snat[%s] = %d", name, r.Snat[name])
		}
	}
}

// exposition is what a scrape of c returns.
func exposition(t *testing.T, c *Collector) string {
	t.Helper()
	srv := httptest.NewServer(MetricsHandler(c))
	defer srv.Close()
	return scrape(t, srv.URL)
}

// TestMetricsDestinationSignals: conntrack's per-destination counts and
// distributions are exported for the busiest destinations only, the
// distributions as Prometheus histograms whose bounds are conntrack's
// bucket bounds; a data plane that does not answer for them makes the
// scrape partial, the rest intact.
func TestMetricsDestinationSignals(t *testing.T) {
	b := &statsBackend{status: Status{Version: "v", Started: time.Unix(1, 0)}}
	var busy conntrack.DestStat
	busy.Dest = conntrack.DestKey{Addr: netip.MustParseAddr("::ffff:10.2.0.2").As16(), Port: 8080, Proto: 6}
	busy.Counters[conntrack.DestFlows] = 40
	busy.Counters[conntrack.DestRaces] = 3
	busy.Hists[conntrack.HistServerIdleClose][13] = 2 // [4096, 8192) ms
	busy.Hists[conntrack.HistServerIdleClose][0] = 1  // under 1 ms
	busy.Hists[conntrack.HistServerIdleClose][conntrack.HistBuckets-1] = 1
	b.signals.Dests = append(b.signals.Dests, busy)
	for i := range MaxMetricSignalDestinations + 5 {
		var d conntrack.DestStat
		d.Dest = conntrack.DestKey{Addr: netip.AddrFrom4([4]byte{10, 3, byte(i >> 8), byte(i)}).As16(), Port: 80, Proto: 17}
		d.Counters[conntrack.DestFlows] = 1
		b.signals.Dests = append(b.signals.Dests, d)
	}
	b.signals.Replaced = 7
	srv := httptest.NewServer(MetricsHandler(NewCollector(b, time.Second)))
	defer srv.Close()
	body := scrape(t, srv.URL)
	lastBound := time.Duration(conntrack.HistBucketLow(conntrack.HistBuckets - 1)).Seconds()
	for _, want := range []string{
		`edge_destination_events_total{counter="flows",destination="10.2.0.2:8080",protocol="tcp",zone="0"} 40`,
		`edge_destination_events_total{counter="keepalive_races",destination="10.2.0.2:8080",protocol="tcp",zone="0"} 3`,
		`edge_destination_events_total{counter="handshake_timeouts",destination="10.2.0.2:8080",protocol="tcp",zone="0"} 0`,
		`edge_destination_signal_seconds_bucket{destination="10.2.0.2:8080",protocol="tcp",signal="server_idle_close",zone="0",le="0.001"} 1`,
		`edge_destination_signal_seconds_bucket{destination="10.2.0.2:8080",protocol="tcp",signal="server_idle_close",zone="0",le="4.096"} 1`,
		`edge_destination_signal_seconds_bucket{destination="10.2.0.2:8080",protocol="tcp",signal="server_idle_close",zone="0",le="8.192"} 3`,
		fmt.Sprintf(`edge_destination_signal_seconds_bucket{destination="10.2.0.2:8080",protocol="tcp",signal="server_idle_close",zone="0",le="%g"} 3`, lastBound),
		`edge_destination_signal_seconds_bucket{destination="10.2.0.2:8080",protocol="tcp",signal="server_idle_close",zone="0",le="+Inf"} 4`,
		`edge_destination_signal_seconds_count{destination="10.2.0.2:8080",protocol="tcp",signal="server_idle_close",zone="0"} 4`,
		`edge_destinations_tracked 70`, `edge_destinations_replaced_total 7`, `edge_scrape_partial 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	// The sum is the lower bounds': 2 x 4.096 s + 0 + 1 x 2^23 ms.
	wantSum := 2*4.096 + lastBound
	if !strings.Contains(body, fmt.Sprintf(`edge_destination_signal_seconds_sum{destination="10.2.0.2:8080",protocol="tcp",signal="server_idle_close",zone="0"} %g`, wantSum)) {
		t.Errorf("scrape lacks the histogram sum %g", wantSum)
	}
	if strings.Contains(body, `signal="handshake_rtt"`) {
		t.Error("an empty distribution is exported")
	}
	if n := strings.Count(body, `edge_destination_events_total{counter="flows"`); n != MaxMetricSignalDestinations {
		t.Errorf("%d destinations exported, want the %d busiest", n, MaxMetricSignalDestinations)
	}
	if strings.Contains(body, `destination="10.3.0.63:80"`) { // the 65th in the list
		t.Error("a destination beyond the busiest is exported")
	}

	b.signalsErr = errors.New("workers not serving")
	body = scrape(t, srv.URL)
	for _, want := range []string{"edge_up 1", "edge_scrape_partial 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape without destinations lacks %s", want)
		}
	}
	if strings.Contains(body, "edge_destination_events_total{") {
		t.Error("destination series exported while the data plane did not answer for them")
	}
}
