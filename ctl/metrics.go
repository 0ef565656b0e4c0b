package ctl

import (
	"context"
	"net/http"
	"strconv"
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

// Collector exports a Backend's counters in the Prometheus exposition
// format. It reads them at scrape time (Backend.Stats), never per packet:
// the data plane publishes its counters once per batch whatever scrapes.
// Concurrent scrapes are safe; each costs one Stats call.
type Collector struct {
	b       Backend
	timeout time.Duration

	up, info, start                        *prometheus.Desc
	drops, rx, tx, created, handoff, flows *prometheus.Desc
	ifRX, ifTX, xdp                        *prometheus.Desc
	ctFlows, ctCap, ctCounter, ctDrops     *prometheus.Desc
	snatCounter, snatPorts, snatExhausted  *prometheus.Desc
	snatOverrides                          *prometheus.Desc
	icmpSent, rstSent, eventsLost          *prometheus.Desc
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
		ctFlows:       d("conntrack_flows", "Live flows."),
		ctCap:         d("conntrack_capacity", "Flow slots."),
		ctCounter:     d("conntrack_events_total", "Connection-tracking counters (opened, reopened, closed, expired, ...).", "counter"),
		ctDrops:       d("conntrack_drops_total", "Packets conntrack refused, by reason (included in worker_drops_total).", "reason"),
		snatCounter:   d("snat_events_total", "SNAT allocator counters.", "counter"),
		snatPorts:     d("snat_ports", "Ports toward a destination, by use (in_use, quarantined, free).", "address", "destination", "protocol", "use"),
		snatExhausted: d("snat_exhausted_total", "Flows refused for lack of a port toward a destination.", "address", "destination", "protocol"),
		snatOverrides: d("snat_quarantine_overrides_total", "Quarantined ports reused toward a destination.", "address", "destination", "protocol"),
		icmpSent:      d("icmp_errors_sent_total", "ICMP errors edge generated, by kind.", "kind"),
		rstSent:       d("tcp_resets_sent_total", "TCP resets edge generated for reject rules."),
		eventsLost:    d("events_lost_total", "Events the data plane could not queue (full rings)."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.info, c.start, c.drops, c.rx, c.tx, c.created,
		c.handoff, c.flows, c.ifRX, c.ifTX, c.xdp, c.ctFlows, c.ctCap, c.ctCounter, c.ctDrops,
		c.snatCounter, c.snatPorts, c.snatExhausted, c.snatOverrides, c.icmpSent, c.rstSent, c.eventsLost} {
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
	st, err := c.b.Status(ctx)
	if err != nil {
		gauge(c.up, 0)
		return
	}
	s, err := c.b.Stats(ctx)
	if err != nil {
		gauge(c.up, 0)
		return
	}
	gauge(c.up, 1)
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
		dests := s.SNATDestinations
		if len(dests) > MaxMetricDestinations {
			dests = busiest(dests, MaxMetricDestinations)
		}
		for _, d := range dests {
			a, dst, p := d.Addr.String(), d.Dst.String(), protoLabel(d.Proto)
			gauge(c.snatPorts, float64(d.InUse), a, dst, p, "in_use")
			gauge(c.snatPorts, float64(d.Quarantined), a, dst, p, "quarantined")
			gauge(c.snatPorts, float64(d.Free), a, dst, p, "free")
			counter(c.snatExhausted, d.Exhausted, a, dst, p)
			counter(c.snatOverrides, d.Overrides, a, dst, p)
		}
	}
	for k := icmp.Kind(1); k < icmp.NumKinds; k++ {
		counter(c.icmpSent, icmpSent[k], k.String())
	}
	counter(c.rstSent, rst)
	counter(c.eventsLost, s.EventsLost)
}

// busiest returns the n destinations with the most ports in use (ties:
// the most exhausted), keeping their order otherwise.
func busiest(ds []snat.DestStat, n int) []snat.DestStat {
	out := make([]snat.DestStat, len(ds))
	copy(out, ds)
	// Partial selection is enough: n is small and this runs per scrape.
	for i := 0; i < n; i++ {
		m := i
		for j := i + 1; j < len(out); j++ {
			if out[j].InUse > out[m].InUse || (out[j].InUse == out[m].InUse && out[j].Exhausted > out[m].Exhausted) {
				m = j
			}
		}
		out[i], out[m] = out[m], out[i]
	}
	return out[:n]
}

func protoLabel(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	}
	return strconv.Itoa(int(p))
}

// MetricsHandler returns an HTTP handler serving c (and Go runtime
// metrics) in the Prometheus exposition format.
func MetricsHandler(c *Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
