package ctl

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/snat"
)

// MaxMetricDestinations bounds the per-destination SNAT series a scrape
// exports (the busiest by ports in use); the sums over all destinations
// are exported regardless.
const MaxMetricDestinations = 256

// MaxMetricSignalDestinations bounds the destinations whose failure
// signals (conntrack's per-destination counts and distributions, `edge
// destinations`) a scrape exports: the busiest, in that command's order.
const MaxMetricSignalDestinations = 64

// statusTTL is how long a Collector reuses a Status: it is read for the
// version, the start time and whether SNAT is on, and Backend.Status may be
// expensive (EngineBackend's reads the interfaces' addresses from the
// kernel), so it is not read at every scrape.
const statusTTL = 30 * time.Second

// Collector exports a Backend's counters in the Prometheus exposition
// format. It reads them at scrape time (Backend.Stats), never per packet:
// the data plane publishes its counters once per batch whatever scrapes.
// Concurrent scrapes are safe; each costs one Stats call (with the SNAT
// destinations when SNAT is on) and one Destinations call (conntrack's
// per-destination signals, copied by the workers between batches), plus a
// Status call every 30 s.
//
// Counters the data plane publishes without its workers' help are exported
// even when the workers do not answer for the SNAT destinations: edge_up
// stays 1 and edge_scrape_partial is 1 (the per-destination series are
// then missing). edge_up is 0, with nothing else, only when the backend
// answers nothing.
type Collector struct {
	b       Backend
	timeout time.Duration

	mu       sync.Mutex // guards status and statusAt
	status   Status
	statusAt time.Time // zero: no status yet

	up, partial, info, start               *prometheus.Desc
	drops, rx, tx, created, handoff, flows *prometheus.Desc
	ifRX, ifTX, xdp, xsk                   *prometheus.Desc
	ctFlows, ctCap, ctCounter, ctDrops     *prometheus.Desc
	snatCounter, snatPorts, snatExhausted  *prometheus.Desc
	snatOverrides, snatDests               *prometheus.Desc
	icmpSent, rstSent, eventsLost          *prometheus.Desc
	neighEntries, neighKept, neighPending  *prometheus.Desc
	neighEvents, kernelRoutesRefused       *prometheus.Desc
	fragEvents, fragHeld                   *prometheus.Desc
	destEvents, destDurations              *prometheus.Desc
	destTracked, destReplaced              *prometheus.Desc
}

// NewCollector returns a collector over b; a scrape waits at most timeout
// for the workers (SNAT destinations are copied by them).
func NewCollector(b Backend, timeout time.Duration) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("edge_"+name, help, labels, nil)
	}
	return &Collector{
		b: b, timeout: timeout,
		up:            d("up", "1 when the data plane answered this scrape."),
		partial:       d("scrape_partial", "1 when part of this scrape could not be collected (the workers did not answer for the SNAT destinations); the counters are complete."),
		info:          d("build_info", "Always 1; the labels describe the running edge.", "version"),
		start:         d("start_time_seconds", "When the data plane started (Unix time)."),
		drops:         d("worker_drops_total", "Packets dropped by a worker, by reason (see `edge stats`).", "worker", "reason"),
		rx:            d("worker_rx_packets_total", "Packets a worker received, by zone of the interface.", "worker", "zone"),
		tx:            d("worker_tx_packets_total", "Packets a worker transmitted, by zone of the interface.", "worker", "zone"),
		created:       d("worker_flows_created_total", "Flows a worker created.", "worker"),
		handoff:       d("worker_handoff_total", "Frames handed to the worker owning their flow.", "worker"),
		flows:         d("worker_flows", "Live flows in a worker's conntrack shard.", "worker"),
		ifRX:          d("interface_rx_packets_total", "Packets received on an interface by the workers.", "interface", "zone"),
		ifTX:          d("interface_tx_packets_total", "Packets transmitted on an interface by the workers.", "interface", "zone"),
		xdp:           d("xdp_packets_total", "XDP program verdicts on an interface.", "interface", "verdict"),
		xsk:           d("xsk_lost_total", "Frames lost in an interface's AF_XDP sockets (fill_ring_empty: a worker did not keep up; rx_ring_full; tx_device_drop).", "interface", "reason"),
		ctFlows:       d("conntrack_flows", "Live flows."),
		ctCap:         d("conntrack_capacity", "Flow slots."),
		ctCounter:     d("conntrack_events_total", "Connection-tracking counters (opened, reopened, closed, expired, ...).", "counter"),
		ctDrops:       d("conntrack_drops_total", "Packets conntrack refused, by reason (included in worker_drops_total).", "reason"),
		snatCounter:   d("snat_events_total", "SNAT allocator counters.", "counter"),
		snatPorts:     d("snat_ports", "Ports toward a destination, by use (in_use, quarantined, free); the 256 busiest destinations.", "address", "destination", "protocol", "zone", "use"),
		snatExhausted: d("snat_exhausted_total", "Flows refused for lack of a port toward a destination.", "address", "destination", "protocol", "zone"),
		snatOverrides: d("snat_quarantine_overrides_total", "Quarantined ports reused toward a destination.", "address", "destination", "protocol", "zone"),
		snatDests:     d("snat_destinations", "Destinations SNAT tracks ports toward (all of them, not only the exported busiest)."),
		icmpSent:      d("icmp_errors_sent_total", "ICMP errors edge generated, by kind.", "kind"),
		rstSent:       d("tcp_resets_sent_total", "TCP resets edge generated for reject rules."),
		eventsLost:    d("events_lost_total", "Events the data plane could not queue (full rings)."),
		neighEntries:  d("neighbour_entries", "Neighbour (ARP, NDP) entries the workers use, both interfaces."),
		neighKept:     d("neighbour_kept_entries", "Neighbour entries in use served from memory because the kernel's dump lacks them."),
		neighPending:  d("neighbour_resolutions_outstanding", "Neighbour resolutions asked of the kernel and not answered yet."),
		neighEvents: d("neighbour_events_total", "Neighbour mirror counters (kept, kept_recovered, kept_expired, kept_failed, "+
			"resolutions_requested, resolutions_refused, resolutions_given_up, kernel_entries_deleted, held, held_sent, held_dropped).", "counter"),
		kernelRoutesRefused: d("kernel_routes_refused_total", "Refreshes of routes_from_kernel refused (more than routes_from_kernel_max, netlink errors)."),
		fragEvents: d("worker_fragments_total", "A worker's fragment table counters (first_noted, followed, held, released, "+
			"expired_held, completed, refused, expired_state).", "worker", "counter"),
		fragHeld: d("worker_fragments_held", "Later fragments a worker holds now for their datagram's first fragment.", "worker"),
		destEvents: d("destination_events_total", "Failure signals per destination, the server ip:port as the inside sees it (see `edge destinations`): "+
			"flows, syn_retransmits, handshake_timeouts, keepalive_races, expired_late, ...; the 64 busiest destinations.", "destination", "protocol", "zone", "counter"),
		destDurations: d("destination_signal_seconds", "Distributions per destination (handshake_rtt, server_idle_close, race_delay, expired_idle, client_reuse_idle) in log2 buckets "+
			"of milliseconds; the sum is a lower bound (each observation at its bucket's lower bound); the 64 busiest destinations.", "destination", "protocol", "zone", "signal"),
		destTracked:  d("destinations_tracked", "Destinations conntrack counts failure signals for (all of them, not only the exported busiest)."),
		destReplaced: d("destinations_replaced_total", "Tracked destinations that took the place of a less active one (the table is bounded)."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.partial, c.snatDests, c.info, c.start, c.drops, c.rx, c.tx, c.created,
		c.handoff, c.flows, c.ifRX, c.ifTX, c.xdp, c.xsk, c.ctFlows, c.ctCap, c.ctCounter, c.ctDrops,
		c.snatCounter, c.snatPorts, c.snatExhausted, c.snatOverrides, c.icmpSent, c.rstSent, c.eventsLost,
		c.neighEntries, c.neighKept, c.neighPending, c.neighEvents, c.kernelRoutesRefused, c.fragEvents, c.fragHeld,
		c.destEvents, c.destDurations, c.destTracked, c.destReplaced} {
		ch <- d
	}
}

var zoneNames = [2]string{"inside", "outside"}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	st, ok := c.cachedStatus(ctx)
	if !ok {
		gauge(c.up, 0)
		return
	}
	s, err := c.b.Stats(ctx, st.SNAT != nil)
	if err != nil {
		gauge(c.up, 0)
		return
	}
	gauge(c.up, 1)
	partial := len(s.Warnings) > 0
	defer func() {
		if partial {
			gauge(c.partial, 1)
		} else {
			gauge(c.partial, 0)
		}
	}()
	gauge(c.info, 1, st.Version)
	gauge(c.start, float64(st.Started.UnixNano())/1e9)

	var icmpSent [icmp.NumKinds]uint64
	var rst uint64
	for _, w := range s.Workers {
		id := strconv.Itoa(w.ID)
		for r := drop.Reason(1); r < drop.NumReasons; r++ {
			if w.Drops[r] != 0 {
				counter(c.drops, w.Drops[r], id, r.String())
			}
		}
		for z := range zoneNames {
			counter(c.rx, w.RX[z], id, zoneNames[z])
			counter(c.tx, w.TX[z], id, zoneNames[z])
		}
		counter(c.created, w.Created, id)
		counter(c.handoff, w.Handoff, id)
		gauge(c.flows, float64(w.Flows), id)
		f := &w.Fragments
		for _, x := range [...]struct {
			name string
			n    uint64
		}{{"first_noted", f.Noted}, {"followed", f.Followed}, {"held", f.Held}, {"released", f.Released},
			{"expired_held", f.ExpiredHeld}, {"completed", f.Completed}, {"refused", f.Refused}, {"expired_state", f.ExpiredState}} {
			counter(c.fragEvents, x.n, id, x.name)
		}
		gauge(c.fragHeld, float64(fragFramesHeld(f)), id)
		for k := range w.ICMP {
			icmpSent[k] += w.ICMP[k]
		}
		rst += w.RST
	}
	for _, i := range s.Interfaces {
		counter(c.ifRX, i.RX, i.Name, i.Zone)
		counter(c.ifTX, i.TX, i.Name, i.Zone)
		counter(c.xdp, i.XDPRedirected, i.Name, "redirected")
		counter(c.xdp, i.XDPNoSocket, i.Name, "no_socket")
		counter(c.xdp, i.XDPPassed, i.Name, "passed")
		counter(c.xdp, i.XDPOther, i.Name, "other")
		counter(c.xsk, i.XSKFillRingEmpty, i.Name, "fill_ring_empty")
		counter(c.xsk, i.XSKRxRingFull, i.Name, "rx_ring_full")
		counter(c.xsk, i.XSKTxDeviceDrops, i.Name, "tx_device_drop")
	}
	gauge(c.ctFlows, float64(s.Conntrack.Flows))
	gauge(c.ctCap, float64(s.Conntrack.Capacity))
	for i := conntrack.Counter(0); i < conntrack.NumCounters; i++ {
		counter(c.ctCounter, s.Conntrack.Counters[i], i.String())
	}
	for r := drop.Reason(1); r < drop.NumReasons; r++ {
		if s.Conntrack.Drops[r] != 0 {
			counter(c.ctDrops, s.Conntrack.Drops[r], r.String())
		}
	}
	if st.SNAT != nil {
		for i := snat.Counter(0); i < snat.NumCounters; i++ {
			counter(c.snatCounter, s.SNAT.Counters[i], i.String())
		}
		if len(s.Warnings) == 0 {
			gauge(c.snatDests, float64(len(s.SNATDestinations)))
		}
		dests := s.SNATDestinations
		if len(dests) > MaxMetricDestinations {
			dests = busiest(dests, MaxMetricDestinations)
		}
		for _, d := range dests {
			a, dst, p, z := d.Addr.String(), d.Dst.String(), pbProto(d.Proto), strconv.Itoa(int(d.Zone))
			gauge(c.snatPorts, float64(d.InUse), a, dst, p, z, "in_use")
			gauge(c.snatPorts, float64(d.Quarantined), a, dst, p, z, "quarantined")
			gauge(c.snatPorts, float64(d.Free), a, dst, p, z, "free")
			counter(c.snatExhausted, d.Exhausted, a, dst, p, z)
			counter(c.snatOverrides, d.Overrides, a, dst, p, z)
		}
	}
	for k := icmp.Kind(1); k < icmp.NumKinds; k++ {
		counter(c.icmpSent, icmpSent[k], k.String())
	}
	counter(c.rstSent, rst)
	counter(c.eventsLost, s.EventsLost)
	n := &s.Neighbours
	gauge(c.neighEntries, float64(n.Entries))
	gauge(c.neighKept, float64(n.Kept))
	gauge(c.neighPending, float64(n.Unanswered))
	for _, x := range [...]struct {
		name string
		n    uint64
	}{{"kept", n.KeptTotal}, {"kept_recovered", n.KeptRecovered}, {"kept_expired", n.KeptExpired}, {"kept_failed", n.KeptFailed},
		{"resolutions_requested", n.Requests}, {"resolutions_refused", n.Refused}, {"resolutions_given_up", n.GivenUp},
		{"kernel_entries_deleted", n.Deleted}, {"held", n.Held}, {"held_sent", n.HeldSent}, {"held_dropped", n.HeldDropped}} {
		counter(c.neighEvents, x.n, x.name)
	}
	counter(c.kernelRoutesRefused, s.KernelRoutesRefused)
	if ds, err := c.b.Destinations(ctx); err != nil {
		partial = true
	} else {
		c.collectDestinations(ch, &ds)
	}
}

// collectDestinations exports the failure signals of the busiest
// MaxMetricSignalDestinations destinations (ds lists them busiest first).
func (c *Collector) collectDestinations(ch chan<- prometheus.Metric, ds *conntrack.Destinations) {
	ch <- prometheus.MustNewConstMetric(c.destTracked, prometheus.GaugeValue, float64(len(ds.Dests)))
	ch <- prometheus.MustNewConstMetric(c.destReplaced, prometheus.CounterValue, float64(ds.Replaced))
	list := ds.Dests[:min(len(ds.Dests), MaxMetricSignalDestinations)]
	for i := range list {
		d := &list[i]
		dst, proto, zone := d.Dest.String(), pbProto(d.Dest.Proto), strconv.Itoa(int(d.Dest.Zone))
		for k := range conntrack.NumDestCounters {
			ch <- prometheus.MustNewConstMetric(c.destEvents, prometheus.CounterValue, float64(d.Counters[k]), dst, proto, zone, k.String())
		}
		for h := range conntrack.NumDestHists {
			count, sum, buckets := histogram(&d.Hists[h])
			if count == 0 {
				continue
			}
			ch <- prometheus.MustNewConstHistogram(c.destDurations, count, sum, buckets, dst, proto, zone, h.String())
		}
	}
}

// histogram converts one of conntrack's log2 distributions to Prometheus's
// form: cumulative counts by upper bound in seconds (bucket i of conntrack
// ends at 2^i ms; its last bucket has no bound: it is the +Inf bucket, the
// count), and the sum of each observation's bucket lower bound.
func histogram(h *[conntrack.HistBuckets]uint64) (count uint64, sum float64, buckets map[float64]uint64) {
	buckets = make(map[float64]uint64, conntrack.HistBuckets-1)
	for i, n := range h {
		count += n
		sum += float64(n) * time.Duration(conntrack.HistBucketLow(i)).Seconds()
		if i < conntrack.HistBuckets-1 {
			buckets[time.Duration(conntrack.HistBucketLow(i+1)).Seconds()] = count
		}
	}
	return count, sum, buckets
}

// cachedStatus returns the backend's Status, read again when the one it
// has is older than statusTTL; when that read fails it keeps the old one.
// ok is false when it has none.
func (c *Collector) cachedStatus(ctx context.Context) (st Status, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.statusAt.IsZero() || time.Since(c.statusAt) >= statusTTL {
		if st, err := c.b.Status(ctx); err == nil {
			c.status, c.statusAt = st, time.Now()
		}
	}
	return c.status, !c.statusAt.IsZero()
}

// busiest returns the min(n, len(ds)) destinations with the most ports in
// use (ties: the most exhausted), busiest first, keeping ds's order among
// equals. ds is not modified. O(len(ds) log len(ds)).
func busiest(ds []snat.DestStat, n int) []snat.DestStat {
	out := slices.Clone(ds)
	slices.SortStableFunc(out, func(x, y snat.DestStat) int {
		return cmp.Or(cmp.Compare(y.InUse, x.InUse), cmp.Compare(y.Exhausted, x.Exhausted))
	})
	return out[:min(n, len(out))]
}

// MetricsHandler returns an HTTP handler serving c (and Go runtime
// metrics) in the Prometheus exposition format.
func MetricsHandler(c *Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
