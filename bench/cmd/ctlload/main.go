// Command ctlload loads edge's control plane the way a busy operator
// station would, to show that control-plane work never stops forwarding
// (bench/ctl-load.sh measures forwarding with and without it): a full flow
// dump every --dump-every (default 100 ms) and a config apply every
// --apply-every (default 1 s), alternating between two documents that
// differ in one rule so every apply recompiles and swaps the rule set.
// Dumps ask for --encoding packed (the default: fixed-size records, each
// decoded into a ctl.FlowRecord, as a client that dumps often would) or
// messages (a Flow message per flow, what grpcurl and older clients get).
//
//	ctlload --socket /run/edge/edge.sock --config edge.yaml --for 10s
//
// It prints one line of JSON: dumps, flows per dump, dump latency p50/max,
// applies, apply latency p50/max, errors, its own CPU time and run time.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgegw/edge/ctl"
	pb "github.com/edgegw/edge/ctl/edgepb"
)

func main() {
	sock := flag.String("socket", ctl.DefaultSocket, "edge's control socket")
	cfgPath := flag.String("config", "", "the running configuration document (YAML); applies alternate it with a copy carrying one extra rule")
	dumpEvery := flag.Duration("dump-every", 100*time.Millisecond, "interval between full flow dumps (0: none)")
	applyEvery := flag.Duration("apply-every", time.Second, "interval between config applies (0: none)")
	dur := flag.Duration("for", 10*time.Second, "how long to run")
	enc := flag.String("encoding", ctl.FlowEncodingPacked, "flow dump encoding: packed or messages")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of ctlload to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "ctlload: --cpuprofile:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *enc != ctl.FlowEncodingPacked && *enc != ctl.FlowEncodingMessages {
		fmt.Fprintf(os.Stderr, "ctlload: --encoding %q: packed or messages\n", *enc)
		os.Exit(2)
	}
	if err := run(*sock, *cfgPath, *enc, *dumpEvery, *applyEvery, *dur); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "ctlload:", err)
		os.Exit(1)
	}
}

// callTimeout bounds one dump or apply: one that takes longer is an error.
const callTimeout = 10 * time.Second

type result struct {
	Dumps         int     `json:"dumps"`
	FlowsPerDump  float64 `json:"flows_per_dump"`
	DumpP50ms     float64 `json:"dump_p50_ms"`
	DumpMaxms     float64 `json:"dump_max_ms"`
	Applies       int     `json:"applies"`
	ApplyP50ms    float64 `json:"apply_p50_ms"`
	ApplyMaxms    float64 `json:"apply_max_ms"`
	Errors        int     `json:"errors"`
	CPUms         float64 `json:"cpu_ms"`  // ctlload's own CPU time (user + system)
	Seconds       float64 `json:"seconds"` // how long it ran
	FirstErrorMsg string  `json:"first_error,omitempty"`
}

func run(sock, cfgPath, enc string, dumpEvery, applyEvery, dur time.Duration) error {
	var docs [2]string
	if applyEvery > 0 {
		b, err := os.ReadFile(cfgPath)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		docs[0] = string(b)
		// An extra rule that matches nothing the benchmark sends, placed
		// first so the whole rule set is recompiled.
		extra := "  - {name: ctlload-toggle, zone: outside, proto: udp, dst_ports: [\"7\"], action: drop}\n"
		i := strings.Index(docs[0], "rules:\n")
		if i < 0 {
			return fmt.Errorf("--config: the document needs a block-style \"rules:\" list")
		}
		i += len("rules:\n")
		docs[1] = docs[0][:i] + extra + docs[0][i:]
	}
	began := time.Now()
	// Calls run under their own timeout, not the run's end: a call cut
	// short by the end of the run is not an error, a slow one is.
	end, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	ctx := context.Background()
	cc, err := ctl.Dial(end, ctl.DialOptions{Socket: sock})
	if err != nil {
		return err
	}
	defer cc.Close()
	flows, conf := pb.NewFlowServiceClient(cc), pb.NewConfigServiceClient(cc)

	var r result
	var dumpT, applyT []time.Duration
	var totalFlows int
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		r.Errors++
		if r.FirstErrorMsg == "" {
			r.FirstErrorMsg = err.Error()
		}
	}
	done := make(chan struct{})
	go func() { // applies, on their own schedule
		defer close(done)
		if applyEvery <= 0 {
			return
		}
		t := time.NewTicker(applyEvery)
		defer t.Stop()
		for n := 1; ; n++ {
			select {
			case <-end.Done():
				return
			case <-t.C:
			}
			start := time.Now()
			cctx, ccancel := context.WithTimeout(ctx, callTimeout)
			_, err := conf.ApplyConfig(cctx, &pb.ApplyConfigRequest{Yaml: docs[n%2]})
			ccancel()
			if err != nil {
				fail(err)
				continue
			}
			applyT = append(applyT, time.Since(start))
		}
	}()
	if dumpEvery > 0 {
		var rec ctl.FlowRecord // packed: every record is decoded into it
		t := time.NewTicker(dumpEvery)
	loop:
		for {
			select {
			case <-end.Done():
				break loop
			case <-t.C:
			}
			start := time.Now()
			n, err := dump(ctx, flows, enc, &rec)
			if err != nil {
				fail(err)
				continue
			}
			totalFlows += n
			dumpT = append(dumpT, time.Since(start))
		}
		t.Stop()
	}
	<-end.Done()
	<-done
	r.Dumps, r.Applies = len(dumpT), len(applyT)
	if r.Dumps > 0 {
		r.FlowsPerDump = float64(totalFlows) / float64(r.Dumps)
	}
	r.DumpP50ms, r.DumpMaxms = p50max(dumpT)
	r.ApplyP50ms, r.ApplyMaxms = p50max(applyT)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		r.CPUms = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
	}
	r.Seconds = time.Since(began).Seconds()
	return json.NewEncoder(os.Stdout).Encode(r)
}

// dump lists every flow once and returns how many there were.
func dump(ctx context.Context, flows pb.FlowServiceClient, enc string, rec *ctl.FlowRecord) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel() // ends the stream if it is left early
	s, err := flows.ListFlows(ctx, &pb.ListFlowsRequest{Encoding: enc})
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		m, err := s.Recv()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if enc == ctl.FlowEncodingMessages {
			n += len(m.GetFlows())
			continue
		}
		recs, err := ctl.OpenFlowRecords(m.GetPacked())
		if err != nil {
			return n, err
		}
		for i := range recs.Len() {
			recs.Record(i, rec)
		}
		n += recs.Len()
	}
}

func p50max(ds []time.Duration) (float64, float64) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return ms(ds[len(ds)/2]), ms(ds[len(ds)-1])
}
