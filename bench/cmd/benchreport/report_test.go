package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func rowsByName(t *testing.T, rows []row) map[string]row {
	t.Helper()
	m := map[string]row{}
	for _, r := range rows {
		if _, dup := m[r.name]; dup {
			t.Fatalf("two rows named %q", r.name)
		}
		m[r.name] = r
	}
	return m
}

// TestVerdicts: the fixtures' figures give each target the verdict its
// threshold says, on both sides of it.
func TestVerdicts(t *testing.T) {
	in, errs := load("testdata/run")
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	rows := rowsByName(t, buildRows(in))
	for _, c := range []struct {
		name         string
		edge, ratio  string
		want         verdict
		floor, linux string
	}{
		{"iperf3 TCP, 1 stream(s), Gbit/s", "3.30", "1.10x", met, na, "3.00"},
		{"iperf3 TCP, 8 stream(s), Gbit/s", "2.40", "0.80x", notMet, na, "3.00"},
		{"64 B, 1 flow: Mpps (% of the ceiling)", "0.665 (95%)", "95.0%", met, "0.680 (97%)", "0.400 (57%)"},
		{"64 B, 1k flows: Mpps (% of the ceiling)", "0.420 (60%)", "60.0%", notMet, "0.650 (93%)", "0.350 (50%)"},
		{"64 B, 1 flow: CPU ns/pkt, edge vs Linux", "1100", "0.55x", notMet, "1000", "2000"},
		{"64 B, 1 flow: CPU ns/pkt, edge vs floor", "1100", "1.10x", met, "1000", "2000"},
		{"64 B, 1k flows: CPU ns/pkt, edge vs floor", "2100", "2.10x", notMet, "1000", "2800"},
		{"IMIX, 1 flow: Mpps", "0.450", "1.50x", met, "missing", "0.300"},
		{"pipeline, established flow at 1M flows, ns/pkt", "95", "cpu-ns/op", met, na, na},
		{"pipeline, new flow, 1k rules + SNAT, ns/pkt", "620", "ns/op", notMet, na, na},
		{"pipeline allocations per packet (most of any Pipeline benchmark)", "0", "allocs/op", met, na, na},
		{"paced 1 flow (50 kpps): CPU ns/pkt", "6000", "0.94x", met, "5000", "6400"},
		{"paced 1 flow (50 kpps): added p50 latency, us", "+53.0", "+8.0 us", notMet, "+35.0", "+45.0"},
		{"ctl-load, 10k flows (packed dumps every 100 ms): % of the rate without", "98.0%", "98.0%", met, na, na},
	} {
		r, ok := rows[c.name]
		if !ok {
			t.Errorf("no row %q", c.name)
			continue
		}
		if r.edge != c.edge || r.ratio != c.ratio || r.verdict != c.want || r.floor != c.floor || r.linux != c.linux {
			t.Errorf("%s: floor %q linux %q edge %q ratio %q %v; want %q %q %q %q %v",
				c.name, r.floor, r.linux, r.edge, r.ratio, r.verdict, c.floor, c.linux, c.edge, c.ratio, c.want)
		}
	}
	// Cells the fixtures lack are missing, never a figure.
	for _, name := range []string{"64 B, 100k flows: Mpps (% of the ceiling)", "64 B, 1M flows: CPU ns/pkt, edge vs floor", "IMIX, 1k flows: Mpps"} {
		r := rows[name]
		if r.verdict != noData || r.edge != "missing" || r.ratio != "missing" {
			t.Errorf("%s: edge %q ratio %q %v; want missing, no data", name, r.edge, r.ratio, r.verdict)
		}
	}
}

// TestNoInputs: with nothing measured every target is "no data" and no
// cell holds a number.
func TestNoInputs(t *testing.T) {
	in, errs := load(t.TempDir())
	if len(errs) != 4 {
		t.Fatalf("%d errors for four missing files: %v", len(errs), errs)
	}
	rows := buildRows(in)
	if len(rows) != 24 {
		t.Fatalf("%d rows: want 24: every target has one even without data", len(rows))
	}
	for _, r := range rows {
		if r.verdict != noData {
			t.Errorf("%s: %v without data", r.name, r.verdict)
		}
		for _, cell := range []string{r.floor, r.linux, r.edge} {
			if cell != "missing" && cell != na {
				t.Errorf("%s: cell %q without data", r.name, cell)
			}
		}
	}
	var b bytes.Buffer
	write(&b, in, rows, nil)
	if !strings.Contains(b.String(), "0 met, 0 NOT met, ") {
		t.Fatalf("summary line:\n%s", b.String())
	}
}

// TestCellOfAnotherMiddle: a missing middle is not replaced by another
// middle's figure (edge-2w's for edge-1w).
func TestCellOfAnotherMiddle(t *testing.T) {
	d := t.TempDir()
	pps := `{"medians": [
 {"test": "pps", "size": "64", "flows": 1, "middle": "direct", "pps": 700000, "cpu_own_ns": 0},
 {"test": "pps", "size": "64", "flows": 1, "middle": "edge-2w", "pps": 690000, "cpu_own_ns": 900}]}`
	if err := os.WriteFile(filepath.Join(d, "pps.json"), []byte(pps), 0o644); err != nil {
		t.Fatal(err)
	}
	in, _ := load(d)
	r := rowsByName(t, buildRows(in))["64 B, 1 flow: Mpps (% of the ceiling)"]
	if r.edge != "missing" || r.verdict != noData {
		t.Fatalf("edge-1w absent: edge %q %v", r.edge, r.verdict)
	}
}

// TestBoundsSection: targets not met list their evidence and the profile
// of their cell, summarised; met ones are not listed.
func TestBoundsSection(t *testing.T) {
	in, _ := load("testdata/run")
	var b bytes.Buffer
	write(&b, in, buildRows(in), loadProfiles("testdata/run/perf"))
	out := b.String()
	for _, want := range []string{
		"* 64 B, 1k flows: CPU ns/pkt, edge vs floor: NOT met (edge 2100, ratio 2.10x, target <= 1.20x floor)",
		"edge-1w: 0.420 Mpps delivered of 0.700 offered, loss 40.0%",
		"profile edge-1w-pps-64-1000: 55% kernel, 25% user; top symbols:",
		"30.0% memcpy_orig (kernel, [kernel.kallsyms])",
		"profile edge-1w-pps-64-1000: above",
		"profile pipeline-newflow (pprof -top",
		"snat.(*Allocator).probe",
		"edge: 2.40 Gbit/s, mean RTT 850 us, middle CPU 99% (- ns per segment), retransmissions 300, veth drops 0, fill_ring_empty 1200",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(out, "* iperf3 TCP, 1 stream(s)") {
		t.Error("a met target is listed among those not met")
	}
	if !strings.Contains(out, "No data (not measured in this run, or its benchmark failed):\n    64 B, 100k flows: Mpps (% of the ceiling)\n") {
		t.Error("the targets without data are not listed")
	}
}

func TestParseBench(t *testing.T) {
	r := parseBench(strings.NewReader(`BenchmarkX/10-2   100   5.0 ns/op   0 allocs/op
BenchmarkX/10-2   100   7.0 ns/op   1 allocs/op
BenchmarkX/10-2   100   6.0 ns/op   0 allocs/op
BenchmarkY   10   9 ns/op   4.5 cpu-ns/op
BenchmarkZ-2   --- FAIL
`))
	if x := r["BenchmarkX/10"]; x.runs != 3 || x.nsOp != 6 || x.allocsOp != 0 {
		t.Errorf("X: %+v", x)
	}
	if y := r["BenchmarkY"]; y.runs != 1 || y.nsOp != 9 || y.cpuNsOp != 4.5 {
		t.Errorf("Y: %+v", y)
	}
	if _, ok := r["BenchmarkZ"]; ok {
		t.Error("a failed benchmark has a result")
	}
}

// TestRoundsMerged: pps.sh rounds (pps-rN/pps.json) are merged cell by cell
// into the median of the rounds that have the cell.
func TestRoundsMerged(t *testing.T) {
	d := t.TempDir()
	cell := func(mid string, pps, cpu float64, added string) string {
		return `{"test": "pps", "size": "64", "flows": 1000, "middle": "` + mid + `", "pps": ` + ftoa(pps) +
			`, "cpu_own_ns": ` + ftoa(cpu) + `, "added_p50_us": ` + added + `, "trials": 1}`
	}
	rounds := []string{
		cell("direct", 700000, 0, "null") + "," + cell("edge-1w", 100000, 3000, "10") + "," + cell("linux-nft", 300000, 2000, "5"),
		cell("direct", 600000, 0, "null") + "," + cell("edge-1w", 300000, 2000, "30"),
		cell("direct", 650000, 0, "null") + "," + cell("edge-1w", 200000, 1000, "null") + "," + cell("linux-nft", 100000, 4000, "7"),
	}
	for i, r := range rounds {
		dir := filepath.Join(d, "pps-r"+ftoa(float64(i+1)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pps.json"), []byte(`{"edge": "x", "medians": [`+r+`]}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in, errs := load(d)
	if in.pps == nil {
		t.Fatal(errs)
	}
	for _, c := range []struct {
		mid      string
		pps, cpu float64
		added    float64
		trials   int
	}{{"direct", 650000, 0, -1, 3}, {"edge-1w", 200000, 2000, 20, 3}, {"linux-nft", 200000, 3000, 6, 2}} {
		m, ok := in.ppsCell("pps", "64", 1000, c.mid)
		if !ok || m.PPS != c.pps || m.CPUOwnNs != c.cpu || m.Trials != c.trials {
			t.Errorf("%s: %+v, want pps %v cpu %v trials %d", c.mid, m, c.pps, c.cpu, c.trials)
		}
		if got := m.AddedP50; (c.added < 0) != (got == nil) || got != nil && *got != c.added {
			t.Errorf("%s: added p50 %v, want %v", c.mid, got, c.added)
		}
	}
	r := rowsByName(t, buildRows(in))["64 B, 1k flows: Mpps (% of the ceiling)"]
	if r.edge != "0.200 (31%)" || r.verdict != notMet {
		t.Errorf("merged row: %q %v", r.edge, r.verdict)
	}
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func TestMarkdown(t *testing.T) {
	in, _ := load("testdata/run")
	md := markdown(buildRows(in))
	for _, want := range []string{
		"| iperf3 TCP, 1 stream(s), Gbit/s | n/a | 3.00 | 3.30 | 1.10x | >= 1.00x Linux (aim 1.5x) | met |\n",
		"| iperf3 TCP, 8 stream(s), Gbit/s | n/a | 3.00 | 2.40 | 0.80x | >= 1.00x Linux (aim 1.5x) | **NOT met** |\n",
		"| IMIX, 1k flows: Mpps | missing | missing | missing | missing | >= 1.00x Linux (aim 1.5x) | **no data** |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if n := strings.Count(md, "\n"); n != 2+24 {
		t.Errorf("%d lines, want a header of 2 and 24 rows", n)
	}
}
