package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ppsCell is one median row of pps.json.
type ppsCell struct {
	Test      string   `json:"test"`
	Size      string   `json:"size"`
	Flows     int      `json:"flows"`
	Middle    string   `json:"middle"`
	PPS       float64  `json:"pps"`
	LossPct   float64  `json:"loss_pct"`
	P50us     float64  `json:"p50_us"`
	AddedP50  *float64 `json:"added_p50_us"`
	CPUOwnNs  float64  `json:"cpu_own_ns"`
	Trials    int      `json:"trials"`
	OfferedPS float64  `json:"offered_pps"`
}

type ppsFile struct {
	Medians []ppsCell `json:"medians"`
	Edge    string    `json:"edge"`
	Elapsed int       `json:"elapsed_s"`
}

// tcpCell is one median row of tcp.json.
type tcpCell struct {
	Streams       int      `json:"streams"`
	Mode          string   `json:"mode"`
	Gbps          float64  `json:"gbps"`
	Tests         int      `json:"tests"`
	Failed        int      `json:"failed"`
	Retrans       *float64 `json:"retrans"`
	RTTus         *float64 `json:"rtt_us"`
	CPUPct        *float64 `json:"cpu_pct"`
	NsPerSeg      *float64 `json:"ns_per_seg"`
	FillRingEmpty *float64 `json:"fill_ring_empty"`
	TxFull        *float64 `json:"tx_full"`
	VethDrops     *float64 `json:"veth_drops"`
}

type tcpFile struct {
	Medians []tcpCell `json:"medians"`
	Edge    string    `json:"edge"`
	Runs    int       `json:"runs"`
	Dur     int       `json:"duration_s"`
}

// ctlEncoding is one encoding's result in ctl-load.json.
type ctlEncoding struct {
	Encoding    string  `json:"encoding"`
	Pairs       int     `json:"pairs"`
	Flows       int     `json:"flows"`
	BasePPS     float64 `json:"base_pps"`
	LoadedPPS   float64 `json:"loaded_pps"`
	Ratio       float64 `json:"ratio"`
	EdgeTxRatio float64 `json:"edge_tx_ratio"`
	Errors      int     `json:"errors"`
}

type ctlFile struct {
	Date      string        `json:"date"`
	Load      string        `json:"load"`
	Encodings []ctlEncoding `json:"encodings"`
}

// benchResult is the median of one benchmark's runs in pipeline.txt.
type benchResult struct {
	runs     int
	nsOp     float64
	cpuNsOp  float64 // 0: not reported
	allocsOp float64
}

// inputs is everything read; a nil file was missing or unreadable.
type inputs struct {
	pps      *ppsFile
	tcp      *tcpFile
	ctl      *ctlFile
	pipeline map[string]benchResult // by benchmark name without the -GOMAXPROCS suffix
	sources  []string               // one line per file read: name and modification time
}

// load reads dir's files; each one missing or unreadable is an error
// returned beside what could be read.
func load(dir string) (in inputs, errs []error) {
	readJSON := func(name string, v any) bool {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if err == nil {
			err = json.Unmarshal(b, v)
		}
		if err != nil {
			errs = append(errs, err)
			return false
		}
		in.sources = append(in.sources, stamp(p))
		return true
	}
	// pps.json, or one per round (pps-rN/pps.json: report.sh runs the
	// middles in a different order each round), merged.
	ppsNames := []string{"pps.json"}
	if rounds, _ := filepath.Glob(filepath.Join(dir, "pps-r*", "pps.json")); len(rounds) > 0 {
		ppsNames = nil
		for _, r := range rounds {
			rel, _ := filepath.Rel(dir, r)
			ppsNames = append(ppsNames, rel)
		}
	}
	var rounds []ppsFile
	for _, name := range ppsNames {
		var pf ppsFile
		if readJSON(name, &pf) {
			rounds = append(rounds, pf)
		}
	}
	if len(rounds) > 0 {
		m := mergePPS(rounds)
		in.pps = &m
	}
	var tf tcpFile
	if readJSON("tcp.json", &tf) {
		in.tcp = &tf
	}
	var cf ctlFile
	if readJSON("ctl-load.json", &cf) {
		in.ctl = &cf
	}
	p := filepath.Join(dir, "pipeline.txt")
	if f, err := os.Open(p); err != nil {
		errs = append(errs, err)
	} else {
		in.pipeline = parseBench(f)
		f.Close()
		in.sources = append(in.sources, stamp(p))
		if len(in.pipeline) == 0 {
			errs = append(errs, fmt.Errorf("%s: no benchmark results", p))
		}
	}
	return in, errs
}

// mergePPS merges rounds of pps.sh: each cell's figures are the median of
// its rounds' medians (a cell missing from a round is left out of it).
func mergePPS(rounds []ppsFile) ppsFile {
	if len(rounds) == 1 {
		return rounds[0]
	}
	type key struct {
		test, size string
		flows      int
		middle     string
	}
	var order []key
	cells := map[key][]ppsCell{}
	var edges []string
	for _, r := range rounds {
		if !slices.Contains(edges, r.Edge) {
			edges = append(edges, r.Edge)
		}
		for _, c := range r.Medians {
			k := key{c.Test, c.Size, c.Flows, c.Middle}
			if _, ok := cells[k]; !ok {
				order = append(order, k)
			}
			cells[k] = append(cells[k], c)
		}
	}
	out := ppsFile{Edge: strings.Join(edges, ", ")}
	for _, k := range order {
		cs := cells[k]
		med := func(get func(ppsCell) float64) float64 {
			v := make([]float64, len(cs))
			for i, c := range cs {
				v[i] = get(c)
			}
			return median(v)
		}
		m := ppsCell{Test: k.test, Size: k.size, Flows: k.flows, Middle: k.middle,
			PPS:       med(func(c ppsCell) float64 { return c.PPS }),
			LossPct:   med(func(c ppsCell) float64 { return c.LossPct }),
			P50us:     med(func(c ppsCell) float64 { return c.P50us }),
			CPUOwnNs:  med(func(c ppsCell) float64 { return c.CPUOwnNs }),
			OfferedPS: med(func(c ppsCell) float64 { return c.OfferedPS })}
		var added []float64
		for _, c := range cs {
			m.Trials += c.Trials
			if c.AddedP50 != nil {
				added = append(added, *c.AddedP50)
			}
		}
		if len(added) > 0 {
			a := median(added)
			m.AddedP50 = &a
		}
		out.Medians = append(out.Medians, m)
	}
	return out
}

func stamp(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return filepath.Base(path)
	}
	return filepath.Base(path) + " " + st.ModTime().UTC().Format("2006-01-02 15:04 UTC")
}

// parseBench reads `go test -bench` output and returns, per benchmark, the
// median of its runs (-count) of ns/op, cpu-ns/op and allocs/op.
func parseBench(r io.Reader) map[string]benchResult {
	type acc struct{ ns, cpu, allocs []float64 }
	all := map[string]*acc{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		a := all[name]
		if a == nil {
			a = &acc{}
		}
		seen := false
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				a.ns, seen = append(a.ns, v), true
			case "cpu-ns/op":
				a.cpu = append(a.cpu, v)
			case "allocs/op":
				a.allocs = append(a.allocs, v)
			}
		}
		if seen {
			all[name] = a
		}
	}
	out := map[string]benchResult{}
	for name, a := range all {
		out[name] = benchResult{runs: len(a.ns), nsOp: median(a.ns), cpuNsOp: median(a.cpu), allocsOp: median(a.allocs)}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// profile is a perf (or pprof) summary of one profiled cell.
type profile struct {
	name         string
	kernel, user float64 // % of the samples (perf only)
	top          []string
}

// loadProfiles reads dir/*.top: `perf report --no-children --sort dso,sym
// --stdio` output (or `go tool pprof -top`'s, kept as text), by file name
// without .top.
func loadProfiles(dir string) map[string]profile {
	out := map[string]profile{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintln(os.Stderr, "benchreport:", err)
		}
		return out
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".top") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		p := parseProfile(f, 8)
		f.Close()
		p.name = strings.TrimSuffix(e.Name(), ".top")
		out[p.name] = p
	}
	return out
}

// parseProfile summarises a perf report: the share of kernel ([k]) and
// user ([.]) samples and the n heaviest symbols. Text that is not a perf
// report (pprof -top) is kept as its first n lines after the header.
func parseProfile(r io.Reader, n int) profile {
	var p profile
	var pprofLines []string
	inPprof := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.HasPrefix(line, "flat ") || strings.HasPrefix(line, "flat\t") {
			inPprof = true
			continue
		}
		if inPprof {
			if len(pprofLines) < n {
				pprofLines = append(pprofLines, line)
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasSuffix(f[0], "%") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil {
			continue
		}
		dso, kind, sym := f[1], f[2], strings.Join(f[3:], " ")
		switch kind {
		case "[k]":
			p.kernel += pct
		case "[.]":
			p.user += pct
		default:
			continue
		}
		if len(p.top) < n {
			where := "user"
			if kind == "[k]" {
				where = "kernel"
			}
			p.top = append(p.top, fmt.Sprintf("%5.1f%% %s (%s, %s)", pct, sym, where, filepath.Base(dso)))
		}
	}
	if inPprof {
		p.top = pprofLines
		p.kernel, p.user = -1, -1
	}
	return p
}
