// Command ctlload loads edge's control plane the way a busy operator
// station would, to show that control-plane work never stops forwarding
// (bench/ctl-load.sh measures forwarding with and without it): a full flow
// dump every --dump-every (default 100 ms) and a config apply every
// --apply-every (default 1 s), alternating between two documents that
// differ in one rule so every apply recompiles and swaps the rule set.
//
//	ctlload --socket /run/edge/edge.sock --config edge.yaml --for 10s
//
// It prints one line of JSON: dumps, flows per dump, dump latency p50/max,
// applies, apply latency p50/max, errors.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
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
	flag.Parse()
	if err := run(*sock, *cfgPath, *dumpEvery, *applyEvery, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "ctlload:", err)
		os.Exit(1)
	}
}

type result struct {
	Dumps         int     `json:"dumps"`
	FlowsPerDump  float64 `json:"flows_per_dump"`
	DumpP50ms     float64 `json:"dump_p50_ms"`
	DumpMaxms     float64 `json:"dump_max_ms"`
	Applies       int     `json:"applies"`
	ApplyP50ms    float64 `json:"apply_p50_ms"`
	ApplyMaxms    float64 `json:"apply_max_ms"`
	Errors        int     `json:"errors"`
	FirstErrorMsg string  `json:"first_error,omitempty"`
}

func run(sock, cfgPath string, dumpEvery, applyEvery, dur time.Duration) error {
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
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	cc, err := ctl.Dial(ctx, ctl.DialOptions{Socket: sock})
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
		if ctx.Err() != nil {
			return
		}
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
			case <-ctx.Done():
				return
			case <-t.C:
			}
			start := time.Now()
			if _, err := conf.ApplyConfig(ctx, &pb.ApplyConfigRequest{Yaml: docs[n%2]}); err != nil {
				fail(err)
				continue
			}
			applyT = append(applyT, time.Since(start))
		}
	}()
	if dumpEvery > 0 {
		t := time.NewTicker(dumpEvery)
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-t.C:
			}
			start := time.Now()
			s, err := flows.ListFlows(ctx, &pb.ListFlowsRequest{})
			if err != nil {
				fail(err)
				continue
			}
			n := 0
			for {
				m, err := s.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					fail(err)
					break
				}
				n += len(m.GetFlows())
			}
			totalFlows += n
			dumpT = append(dumpT, time.Since(start))
		}
		t.Stop()
	}
	<-ctx.Done()
	<-done
	r.Dumps, r.Applies = len(dumpT), len(applyT)
	if r.Dumps > 0 {
		r.FlowsPerDump = float64(totalFlows) / float64(r.Dumps)
	}
	r.DumpP50ms, r.DumpMaxms = p50max(dumpT)
	r.ApplyP50ms, r.ApplyMaxms = p50max(applyT)
	return json.NewEncoder(os.Stdout).Encode(r)
}

func p50max(ds []time.Duration) (float64, float64) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return ms(ds[len(ds)/2]), ms(ds[len(ds)-1])
}
