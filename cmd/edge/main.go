// Command edge is the edge gateway: `edge run --config FILE` starts the data
// plane (AF_XDP workers, XDP program, conntrack, firewall, SNAT) from a
// declarative configuration file. The control-plane client commands
// (status, flows, stats, events) arrive with the gRPC API (issue #4).
package main

import (
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edge/config"
	"github.com/edgegw/edge/dataplane"
	"github.com/edgegw/edge/drop"
)

var version = "dev"

func main() {
	root := &cobra.Command{
		Use:           "edge",
		Short:         "edge: stateful firewall + SNAT gateway on AF_XDP",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(runCmd(), validateCmd(), versionCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}

func versionCmd() *cobra.Command {
	return &cobra.Command{Use: "version", Short: "Print the version", Args: cobra.NoArgs,
		Run: func(*cobra.Command, []string) { fmt.Println("edge", version) }}
}

func validateCmd() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:     "validate --config FILE",
		Short:   "Check a configuration file without starting anything",
		Example: "  edge validate --config /etc/edge/edge.yaml",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if _, err := config.Load(path); err != nil {
				return err
			}
			fmt.Println("ok")
			return nil
		},
	}
	c.Flags().StringVarP(&path, "config", "c", "", "configuration file (YAML)")
	c.MarkFlagRequired("config")
	return c
}

func runCmd() *cobra.Command {
	var path, cpuProfile string
	var statsEvery time.Duration
	c := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Start the data plane",
		Long: `Start the data plane in the current network namespace: attach edge's XDP
program to the inside and outside interfaces, bind one AF_XDP socket per
queue, and forward until SIGINT or SIGTERM. On exit the program is detached
and the interfaces are left as found. If edge dies, the XDP program stays and
drops all IP traffic (fail closed) until edge is started again or the program
is removed (ip link set dev IF xdp off).`,
		Example: "  ip netns exec edge edge run --config lab.yaml",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := config.Load(path)
			if err != nil {
				return err
			}
			cfg.Logf = log.Printf
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			e, err := dataplane.New(cfg)
			if err != nil {
				return err
			}
			defer e.Close()
			if err := e.Run(); err != nil {
				return err
			}
			log.Printf("edge: forwarding between %s (inside) and %s (outside), %d queue(s)",
				cfg.Inside.Name, cfg.Outside.Name, max(cfg.Queues, 1))
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			logTick := time.NewTicker(time.Second)
			defer logTick.Stop()
			logs := make([]dataplane.RuleLog, 256)
			var tick <-chan time.Time
			if statsEvery > 0 {
				t := time.NewTicker(statsEvery)
				defer t.Stop()
				tick = t.C
			}
			for {
				select {
				case s := <-sig:
					log.Printf("edge: %v: stopping", s)
					printStats(e)
					return nil
				case <-tick:
					printStats(e)
				case <-logTick.C:
					printRuleLogs(e, logs)
				}
			}
		},
	}
	c.Flags().StringVarP(&path, "config", "c", "", "configuration file (YAML)")
	c.Flags().DurationVar(&statsEvery, "stats", 0, "print counters at this interval (0: only on exit)")
	c.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file until exit")
	c.MarkFlagRequired("config")
	return c
}

// printRuleLogs prints the flows that met rules with log set.
func printRuleLogs(e *dataplane.Engine, buf []dataplane.RuleLog) {
	for {
		n := e.ReadRuleLogs(buf)
		for _, r := range buf[:n] {
			log.Printf("rule %q %v: %v (from %v)", e.RuleName(r.Rule), r.Action, r.Key, r.Zone)
		}
		if n < len(buf) {
			return
		}
	}
}

// printStats logs the data plane's counters, one line per non-zero drop.
func printStats(e *dataplane.Engine) {
	s := e.Stats()
	ct := e.Table().Stats()
	log.Printf("stats: rx inside %d outside %d, tx inside %d outside %d, flows %d (created %d), xdp %+v",
		s.RX[0], s.RX[1], s.TX[0], s.TX[1], ct.Flows, s.Created, s.XDP)
	for r := drop.Reason(1); r < drop.NumReasons; r++ {
		if n := s.Drops[r]; n > 0 {
			log.Printf("stats: drop %s %d", r, n)
		}
	}
}
