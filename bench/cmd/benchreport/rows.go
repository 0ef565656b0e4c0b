package main

import (
	"fmt"
	"strings"
	"time"
)

// verdict is a target's state in one run.
type verdict int

const (
	noData verdict = iota // a figure the target needs is missing
	met
	notMet
)

func (v verdict) String() string {
	return [...]string{"no data", "met", "NOT met"}[v]
}

// figure is a measured value, or missing.
type figure struct {
	v  float64
	ok bool
}

func some(v float64) figure { return figure{v, true} }

var missing = figure{}

// row is one target of the table. floor, linux and edge are what the
// three middles measured (text: a figure, "missing", or "n/a" when the
// target has no such column); ratio is the quantity the target is about.
type row struct {
	name                string
	floor, linux, edge  string
	ratio, target, note string
	verdict             verdict
	// evidence for the bounds section: the profiled cells (perf/*.top
	// names) and figures that say what limits this target.
	profiles []string
	evidence []string
}

const na = "n/a"

func (f figure) fmt(format string) string {
	if !f.ok {
		return "missing"
	}
	return fmt.Sprintf(format, f.v)
}

// judge is the verdict of a target that needs every figure in need and
// holds when ok.
func judge(ok bool, need ...figure) verdict {
	for _, f := range need {
		if !f.ok {
			return noData
		}
	}
	if ok {
		return met
	}
	return notMet
}

// ratio is a/b, missing when either is or b is not positive.
func ratio(a, b figure) figure {
	if !a.ok || !b.ok || b.v <= 0 {
		return missing
	}
	return some(a.v / b.v)
}

var flowCounts = []int{1, 1000, 100000, 1000000}

// flowName: "1 flow", "1k flows", "1M flows".
func flowName(n int) string {
	switch {
	case n == 1:
		return "1 flow"
	case n >= 1000000 && n%1000000 == 0:
		return fmt.Sprintf("%dM flows", n/1000000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk flows", n/1000)
	}
	return fmt.Sprintf("%d flows", n)
}

// pps returns the median cell of pps.json for test, size, flows, middle.
func (in inputs) ppsCell(test, size string, flows int, middle string) (ppsCell, bool) {
	if in.pps == nil {
		return ppsCell{}, false
	}
	for _, c := range in.pps.Medians {
		if c.Test == test && c.Size == size && c.Flows == flows && c.Middle == middle {
			return c, true
		}
	}
	return ppsCell{}, false
}

func (in inputs) ppsField(test, size string, flows int, middle string, get func(ppsCell) (float64, bool)) figure {
	c, ok := in.ppsCell(test, size, flows, middle)
	if !ok {
		return missing
	}
	v, ok := get(c)
	if !ok {
		return missing
	}
	return some(v)
}

func getPPS(c ppsCell) (float64, bool) { return c.PPS, true }
func getCPU(c ppsCell) (float64, bool) { return c.CPUOwnNs, c.CPUOwnNs > 0 }
func getAddedP50(c ppsCell) (float64, bool) {
	if c.AddedP50 == nil {
		return 0, false
	}
	return *c.AddedP50, true
}

func (in inputs) tcpCell(streams int, mode string) (tcpCell, bool) {
	if in.tcp == nil {
		return tcpCell{}, false
	}
	for _, c := range in.tcp.Medians {
		if c.Streams == streams && c.Mode == mode {
			return c, true
		}
	}
	return tcpCell{}, false
}

// middles of pps.sh in the table's columns.
const (
	floorMid = "nullfwd"
	linuxMid = "linux-nft"
	edgeMid  = "edge-1w"
	ceilMid  = "direct"
)

func profileNames(test, size string, flows int) []string {
	var p []string
	for _, m := range []string{edgeMid, floorMid, linuxMid} {
		p = append(p, fmt.Sprintf("%s-%s-%s-%d", m, test, size, flows))
	}
	return p
}

// lossEvidence: the delivered rate, offered rate and loss of each middle in
// a pps cell.
func (in inputs) lossEvidence(test, size string, flows int) []string {
	var ev []string
	for _, m := range []string{edgeMid, floorMid, linuxMid, ceilMid} {
		if c, ok := in.ppsCell(test, size, flows, m); ok {
			ev = append(ev, fmt.Sprintf("%s: %.3f Mpps delivered of %.3f offered, loss %.1f%%, cpu %.0f ns/pkt, p50 %.0f us",
				m, c.PPS/1e6, c.OfferedPS/1e6, c.LossPct, c.CPUOwnNs, c.P50us))
		}
	}
	return ev
}

// buildRows computes the table: one row per target of issue #10.
func buildRows(in inputs) []row {
	var rows []row
	// iperf3 TCP.
	for _, s := range []int{1, 8} {
		l, lok := in.tcpCell(s, "linux-nft")
		e, eok := in.tcpCell(s, "edge")
		lf, ef := missing, missing
		if lok {
			lf = some(l.Gbps)
		}
		if eok {
			ef = some(e.Gbps)
		}
		r := ratio(ef, lf)
		rw := row{name: fmt.Sprintf("iperf3 TCP, %d stream(s), Gbit/s", s), floor: na,
			linux: lf.fmt("%.2f"), edge: ef.fmt("%.2f"), ratio: r.fmt("%.2fx"), target: ">= 1.00x Linux (aim 1.5x)",
			verdict: judge(r.ok && r.v >= 1, r), profiles: []string{fmt.Sprintf("edge-tcp-%d", s), fmt.Sprintf("linux-nft-tcp-%d", s)}}
		for _, c := range []struct {
			name string
			c    tcpCell
			ok   bool
		}{{"edge", e, eok}, {"linux-nft", l, lok}} {
			if c.ok {
				rw.evidence = append(rw.evidence, fmt.Sprintf("%s: %.2f Gbit/s, mean RTT %s us, middle CPU %s%% (%s ns per segment), retransmissions %s, veth drops %s, fill_ring_empty %s, tx_full %s, %d of %d tests failed",
					c.name, c.c.Gbps, opt(c.c.RTTus), opt(c.c.CPUPct), opt(c.c.NsPerSeg), opt(c.c.Retrans), opt(c.c.VethDrops), opt(c.c.FillRingEmpty), opt(c.c.TxFull), c.c.Failed, c.c.Tests))
			}
		}
		rows = append(rows, rw)
	}
	// 64 B: share of the generator's ceiling.
	for _, n := range flowCounts {
		d := in.ppsField("pps", "64", n, ceilMid, getPPS)
		z := in.ppsField("pps", "64", n, floorMid, getPPS)
		l := in.ppsField("pps", "64", n, linuxMid, getPPS)
		e := in.ppsField("pps", "64", n, edgeMid, getPPS)
		share := func(f figure) string {
			if !f.ok {
				return "missing"
			}
			if r := ratio(f, d); r.ok {
				return fmt.Sprintf("%.3f (%.0f%%)", f.v/1e6, 100*r.v)
			}
			return fmt.Sprintf("%.3f", f.v/1e6)
		}
		r := ratio(e, d)
		rows = append(rows, row{name: fmt.Sprintf("64 B, %s: Mpps (%% of the ceiling)", flowName(n)),
			floor: share(z), linux: share(l), edge: share(e), ratio: pct(r), target: ">= 90% of " + d.fmtMpps(),
			verdict: judge(r.ok && r.v >= 0.90, r), profiles: profileNames("pps", "64", n), evidence: in.lossEvidence("pps", "64", n)})
	}
	// 64 B: CPU per packet against Linux and against the floor.
	for _, n := range flowCounts {
		z := in.ppsField("pps", "64", n, floorMid, getCPU)
		l := in.ppsField("pps", "64", n, linuxMid, getCPU)
		e := in.ppsField("pps", "64", n, edgeMid, getCPU)
		rl, rz := ratio(e, l), ratio(e, z)
		base := row{floor: z.fmt("%.0f"), linux: l.fmt("%.0f"), edge: e.fmt("%.0f"),
			profiles: profileNames("pps", "64", n), evidence: in.lossEvidence("pps", "64", n)}
		a, b := base, base
		a.name = fmt.Sprintf("64 B, %s: CPU ns/pkt, edge vs Linux", flowName(n))
		a.ratio, a.target, a.verdict = rl.fmt("%.2fx"), "<= 0.50x Linux", judge(rl.ok && rl.v <= 0.5, rl)
		b.name = fmt.Sprintf("64 B, %s: CPU ns/pkt, edge vs floor", flowName(n))
		b.ratio, b.target, b.verdict = rz.fmt("%.2fx"), "<= 1.20x floor", judge(rz.ok && rz.v <= 1.2, rz)
		rows = append(rows, a, b)
	}
	// IMIX against Linux.
	for _, n := range flowCounts {
		z := in.ppsField("pps", "imix", n, floorMid, getPPS)
		l := in.ppsField("pps", "imix", n, linuxMid, getPPS)
		e := in.ppsField("pps", "imix", n, edgeMid, getPPS)
		r := ratio(e, l)
		rows = append(rows, row{name: fmt.Sprintf("IMIX, %s: Mpps", flowName(n)),
			floor: z.fmtMpps(), linux: l.fmtMpps(), edge: e.fmtMpps(), ratio: r.fmt("%.2fx"),
			target: ">= 1.00x Linux (aim 1.5x)", verdict: judge(r.ok && r.v >= 1, r),
			profiles: profileNames("pps", "imix", n), evidence: in.lossEvidence("pps", "imix", n)})
	}
	// The pipeline's microbenchmarks.
	for _, b := range []struct {
		name, bench, profile string
		limit                float64
	}{
		{"pipeline, established flow at 1M flows, ns/pkt", "BenchmarkPipelineEstablished/1048576", "pipeline-established", 100},
		{"pipeline, new flow, 1k rules + SNAT, ns/pkt", "BenchmarkPipelineNewFlow", "pipeline-newflow", 500},
	} {
		res, ok := in.pipeline[b.bench]
		f, unit := missing, "ns/op"
		if ok {
			f = some(res.nsOp)
			if res.cpuNsOp > 0 {
				// The thread's own CPU time per packet: not inflated
				// by other tenants' turns on a shared CPU.
				f, unit = some(res.cpuNsOp), "cpu-ns/op"
			}
		}
		rw := row{name: b.name, floor: na, linux: na, edge: f.fmt("%.0f"), ratio: unit,
			target: fmt.Sprintf("<= %.0f ns", b.limit), verdict: judge(f.ok && f.v <= b.limit, f), profiles: []string{b.profile}}
		if ok {
			rw.evidence = []string{fmt.Sprintf("%s: %.1f ns/op, %.1f cpu-ns/op, %.0f allocs/op, median of %d run(s)", b.bench, res.nsOp, res.cpuNsOp, res.allocsOp, res.runs)}
		}
		rows = append(rows, rw)
	}
	if len(in.pipeline) > 0 {
		worst, from := 0.0, ""
		for name, res := range in.pipeline {
			if strings.HasPrefix(name, "BenchmarkPipeline") && res.allocsOp >= worst {
				worst, from = res.allocsOp, name
			}
		}
		f := missing
		if from != "" {
			f = some(worst)
		}
		rows = append(rows, row{name: "pipeline allocations per packet (most of any Pipeline benchmark)", floor: na, linux: na,
			edge: f.fmt("%.0f"), ratio: "allocs/op", target: "0", verdict: judge(f.ok && f.v == 0, f)})
	} else {
		rows = append(rows, row{name: "pipeline allocations per packet (most of any Pipeline benchmark)", floor: na, linux: na,
			edge: "missing", ratio: "allocs/op", target: "0", verdict: noData})
	}
	// 50 kpps, 1 flow (pps.sh's paced latency trial).
	{
		z := in.ppsField("lat", "64", 1, floorMid, getCPU)
		l := in.ppsField("lat", "64", 1, linuxMid, getCPU)
		e := in.ppsField("lat", "64", 1, edgeMid, getCPU)
		r := ratio(e, l)
		rows = append(rows, row{name: "paced 1 flow (50 kpps): CPU ns/pkt", floor: z.fmt("%.0f"), linux: l.fmt("%.0f"),
			edge: e.fmt("%.0f"), ratio: r.fmt("%.2fx"), target: "<= 1.00x Linux", verdict: judge(r.ok && r.v <= 1, r),
			profiles: profileNames("lat", "64", 1), evidence: in.lossEvidence("lat", "64", 1)})
		z = in.ppsField("lat", "64", 1, floorMid, getAddedP50)
		l = in.ppsField("lat", "64", 1, linuxMid, getAddedP50)
		e = in.ppsField("lat", "64", 1, edgeMid, getAddedP50)
		diff := missing
		if e.ok && l.ok {
			diff = some(e.v - l.v)
		}
		rows = append(rows, row{name: "paced 1 flow (50 kpps): added p50 latency, us", floor: z.fmt("%+.1f"), linux: l.fmt("%+.1f"),
			edge: e.fmt("%+.1f"), ratio: diff.fmt("%+.1f us"), target: "<= Linux", verdict: judge(diff.ok && diff.v <= 0, diff),
			profiles: profileNames("lat", "64", 1), evidence: in.lossEvidence("lat", "64", 1)})
	}
	// Control-plane load.
	{
		var enc *ctlEncoding
		if in.ctl != nil {
			for i := range in.ctl.Encodings {
				if e := &in.ctl.Encodings[i]; enc == nil || e.Encoding == "packed" {
					enc = e
				}
			}
		}
		name := "ctl-load (dumps every 100 ms, apply every 1 s): % of the rate without"
		f := missing
		rw := row{floor: na, linux: na, target: ">= 95%", profiles: []string{"edge-ctl-load-without", "edge-ctl-load-with"}}
		if enc != nil {
			f = some(enc.Ratio)
			name = fmt.Sprintf("ctl-load, %s (%s dumps every 100 ms): %% of the rate without", flowName(enc.Flows), enc.Encoding)
			rw.evidence = []string{fmt.Sprintf("at the sink %.3f Mpps without, %.3f with (median of %d pairs); edge's own sent rate %.1f%% of without (its counters); %d control-plane errors",
				enc.BasePPS/1e6, enc.LoadedPPS/1e6, enc.Pairs, 100*enc.EdgeTxRatio, enc.Errors)}
		}
		rw.name, rw.edge, rw.ratio, rw.verdict = name, pct(f), pct(f), judge(f.ok && f.v >= 0.95, f)
		rows = append(rows, rw)
	}
	return rows
}

func (f figure) fmtMpps() string {
	if !f.ok {
		return "missing"
	}
	return fmt.Sprintf("%.3f", f.v/1e6)
}

// pct formats a fraction as a percentage.
func pct(f figure) string {
	if !f.ok {
		return "missing"
	}
	return fmt.Sprintf("%.1f%%", 100*f.v)
}

func opt(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%g", *v)
}

// header names the run and the sources.
func header(in inputs) string {
	var b strings.Builder
	fmt.Fprintf(&b, "issue #10 benchmark table (bench/report.sh), printed %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	if in.pps != nil {
		fmt.Fprintf(&b, "edge: %s\n", in.pps.Edge)
	}
	fmt.Fprintf(&b, "sources: %s\n", strings.Join(in.sources, "; "))
	b.WriteString("floor = bench/cmd/nullfwd (edge's sockets, rings and idle policy, no processing); Linux = nftables masquerade + conntrack;\n" +
		"edge = 1 worker. CPU = the middle's own threads per delivered packet. Ratios are edge's. missing: no figure in this run.\n\n")
	return b.String()
}

// table lays rows out in aligned columns.
func table(rows []row) string {
	cols := [][]string{{"target", "floor", "Linux", "edge", "ratio", "target", "verdict"}}
	for _, r := range rows {
		cols = append(cols, []string{r.name, r.floor, r.linux, r.edge, r.ratio, r.target, r.verdict.String()})
	}
	width := make([]int, len(cols[0]))
	for _, c := range cols {
		for i, s := range c {
			width[i] = max(width[i], len(s))
		}
	}
	var b strings.Builder
	for j, c := range cols {
		for i, s := range c {
			if i > 0 {
				b.WriteString(" | ")
			}
			if i == 0 || i == len(c)-1 {
				fmt.Fprintf(&b, "%-*s", width[i], s)
			} else {
				fmt.Fprintf(&b, "%*s", width[i], s)
			}
		}
		b.WriteString("\n")
		if j == 0 {
			for i, w := range width {
				if i > 0 {
					b.WriteString("-+-")
				}
				b.WriteString(strings.Repeat("-", w))
			}
			b.WriteString("\n")
		}
	}
	n := map[verdict]int{}
	for _, r := range rows {
		n[r.verdict]++
	}
	fmt.Fprintf(&b, "\n%d targets: %d met, %d NOT met, %d no data\n", len(rows), n[met], n[notMet], n[noData])
	return b.String()
}

// markdown is the table as a Markdown table, verdicts not met in bold.
func markdown(rows []row) string {
	var b strings.Builder
	b.WriteString("| target | floor (nullfwd) | Linux nftables | edge | ratio | target | verdict |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		v := r.verdict.String()
		if r.verdict != met {
			v = "**" + v + "**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", r.name, r.floor, r.linux, r.edge, r.ratio, r.target, v)
	}
	return b.String()
}

// bounds prints, for every target not met or without data, the figures
// and profiles that say what limits it.
func bounds(in inputs, rows []row, profiles map[string]profile) string {
	var b strings.Builder
	b.WriteString("\nWhat bounds the targets not met (the run's own figures; profiles from the profiling pass, perf/*.top):\n")
	shown := map[string]bool{}
	var none []string
	for _, r := range rows {
		if r.verdict == noData {
			none = append(none, r.name)
		}
		if r.verdict != notMet {
			continue
		}
		fmt.Fprintf(&b, "\n* %s: %s (edge %s, ratio %s, target %s)\n", r.name, r.verdict, r.edge, r.ratio, r.target)
		for _, e := range r.evidence {
			fmt.Fprintf(&b, "    %s\n", e)
		}
		for _, name := range r.profiles {
			p, ok := profiles[name]
			if !ok {
				continue
			}
			if shown[name] {
				fmt.Fprintf(&b, "    profile %s: above\n", name)
				continue
			}
			shown[name] = true
			if p.kernel >= 0 {
				fmt.Fprintf(&b, "    profile %s: %.0f%% kernel, %.0f%% user; top symbols:\n", name, p.kernel, p.user)
			} else {
				fmt.Fprintf(&b, "    profile %s (pprof -top: flat flat%% sum%% cum cum%%):\n", name)
			}
			for _, t := range p.top {
				fmt.Fprintf(&b, "      %s\n", t)
			}
		}
	}
	if len(none) > 0 {
		fmt.Fprintf(&b, "\nNo data (not measured in this run, or its benchmark failed):\n    %s\n", strings.Join(none, "\n    "))
	}
	return b.String()
}
