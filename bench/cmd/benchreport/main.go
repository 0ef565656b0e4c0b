// Command benchreport prints issue #10's benchmark table: one row per
// target, the null AF_XDP forwarder (the floor), Linux nftables and edge
// side by side, the ratio the target is about, the target and whether it
// is met. It reads what the benchmark scripts wrote into one directory
// (bench/report.sh runs them):
//
//	pps.json       bench/pps.sh: 64 B and IMIX Mpps, CPU per packet, the
//	               50 kpps latency trial (medians)
//	tcp.json       bench/tcp.sh: iperf3 TCP, 1 and 8 streams (medians)
//	ctl-load.json  bench/ctl-load.sh: forwarding with control-plane load
//	pipeline.txt   go test -bench Pipeline ./dataplane output
//	perf/*.top     optional: perf report (or pprof -top) per profiled cell,
//	               summarised under the table for the targets not met
//
// A figure whose source is missing or lacks the cell is printed as
// "missing" and its target as "no data": never a figure from elsewhere.
//
//	benchreport [-dir bench/out] [-perf bench/out/perf] [-markdown]
//
// -markdown prints only the table, as Markdown (for the README).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	dir := flag.String("dir", "bench/out", "directory of pps.json, tcp.json, ctl-load.json, pipeline.txt")
	perf := flag.String("perf", "", "directory of perf summaries (*.top; default DIR/perf)")
	md := flag.Bool("markdown", false, "print only the table, as Markdown")
	flag.Parse()
	if *perf == "" {
		*perf = filepath.Join(*dir, "perf")
	}
	in, errs := load(*dir)
	for _, err := range errs {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
	}
	rows := buildRows(in)
	if *md {
		fmt.Print(markdown(rows))
		return
	}
	write(os.Stdout, in, rows, loadProfiles(*perf))
}

// write prints the header, the table and the bounds of the targets not met.
func write(w io.Writer, in inputs, rows []row, profiles map[string]profile) {
	fmt.Fprint(w, header(in))
	fmt.Fprint(w, table(rows))
	fmt.Fprint(w, bounds(in, rows, profiles))
}
