// Command edge is the edge gateway, daemon and client in one binary.
//
// `edge run --config FILE` starts the data plane (AF_XDP workers, XDP
// program, conntrack, firewall, SNAT) from a declarative configuration file
// and serves the control plane (package ctl) on a unix socket, optionally on
// TCP with mutual TLS, and Prometheus metrics on a management address.
//
// The other commands are clients of a running daemon: status, flows (and
// flows explain), flush, config get|apply, events, stats.
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegw/edge/config"
	"github.com/edgegw/edge/ctl"
	"github.com/edgegw/edge/dataplane"
	"github.com/edgegw/edge/drop"
)

var version = "dev"

func main() {
	root := &cobra.Command{
		Use:   "edge",
		Short: "edge: stateful firewall + SNAT gateway on AF_XDP",
		Long: `edge is a stateful firewall + SNAT gateway whose packet path is AF_XDP.
The same binary is the daemon (edge run) and its client (every other
command), which talks to the daemon over its control socket, or over TCP
with mutual TLS (--addr, --tls-cert, --tls-key, --tls-ca).`,
		Example: `  ip netns exec gw edge run -c /etc/edge/edge.yaml --metrics 192.0.2.10:9100
  edge status
  edge flows proto=tcp state=established --limit 20
  edge events --kind dropped,reopened
  edge config get > running.yaml && edge config apply -f running.yaml
  edge stats --snat
  edge --addr gw.example:7443 --tls-cert me.pem --tls-key me.key --tls-ca edge-ca.pem status`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	addClientFlags(root)
	root.AddCommand(runCmd(), validateCmd(), versionCmd(),
		statusCmd(), flowsCmd(), flushCmd(), configCmd(), eventsCmd(), statsCmd(), mappingsCmd(), doctorCmd(),
		destinationsCmd(), traceCmd(), captureCmd())
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
	var path, cpuProfile, listen, metrics string
	var tlsAllow []string
	var statsEvery time.Duration
	c := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Start the data plane and its control plane (the daemon)",
		Long: `Start the data plane in the current network namespace: attach edge's XDP
program to the inside and outside interfaces, bind one AF_XDP socket per
queue, and forward until SIGINT or SIGTERM. On exit the program is detached
and the interfaces are left as found. If edge dies, the XDP program stays and
drops all IP traffic (fail closed) until edge is started again or the program
is removed (ip link set dev IF xdp off).

The control plane listens on --socket (a unix socket, mode 0600, in a
directory owned by edge's user and writable by no one else) and, with
--listen, on TCP with mutual TLS only (TLS 1.3; --tls-cert and --tls-key are
the daemon's certificate, --tls-ca the CA client certificates must chain to:
dedicate a CA to edge, or name the allowed identities with --tls-allow).
--metrics serves Prometheus metrics over plain HTTP: give it a management
address. Configurations applied with edge config apply are saved to --config
(atomically), so a restart starts with them.`,
		Example: `  ip netns exec edge edge run --config lab.yaml
  edge run -c edge.yaml --metrics 192.0.2.10:9100
  edge run -c edge.yaml --listen 192.0.2.10:7443 --tls-cert edge.pem --tls-key edge.key --tls-ca ops-ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			doc, err := config.ReadFile(path)
			if err != nil {
				return err
			}
			cfg, err := config.ParseFile(path, doc)
			if err != nil {
				return err
			}
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
			// What the data plane logs while it starts is printed once it
			// has started: a refusal is the error line alone.
			var startLog heldLog
			cfg.Logf = startLog.Logf
			e, err := dataplane.New(cfg)
			if err != nil {
				return err
			}
			defer e.Close()
			startLog.release()

			// The control plane is up before forwarding starts, and stops
			// after it (deferred calls run last in, first out).
			// Shutdown runs the defers in reverse: metrics server, then the
			// gRPC server (in-flight calls finish, 5 s grace), then the
			// backend (refuses what is left, waits for an apply in
			// progress), then the engine.
			backend := ctl.NewEngineBackend(e, doc, version, log.Printf, ctl.WithSavePath(path))
			defer backend.Close()
			srv := ctl.NewServer(backend)
			defer srv.GracefulStop()
			ul, err := ctl.ListenUnix(cf.socket)
			if err != nil {
				return fmt.Errorf("--socket: %w", err)
			}
			go serve(srv, ul, "unix "+cf.socket)
			if listen != "" {
				tl, err := ctl.ListenTLS(listen, cf.cert, cf.key, cf.ca, tlsAllow...)
				if err != nil {
					return fmt.Errorf("--listen: %w", err)
				}
				go serve(srv, tl, "tcp "+listen+" (mutual TLS)")
			}
			if metrics != "" {
				ml, err := net.Listen("tcp", metrics)
				if err != nil {
					return fmt.Errorf("--metrics: %w", err)
				}
				hs := &http.Server{Handler: metricsMux(backend), ReadHeaderTimeout: 5 * time.Second}
				defer hs.Close()
				go hs.Serve(ml)
				log.Printf("edge: metrics on http://%s/metrics", ml.Addr())
			}

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
					logStats(e)
					return nil
				case <-tick:
					logStats(e)
				case <-logTick.C:
					printRuleLogs(e, logs)
				}
			}
		},
	}
	c.Flags().StringVarP(&path, "config", "c", "", "configuration file (YAML)")
	c.Flags().DurationVar(&statsEvery, "stats", 0, "log counters at this interval (0: only on exit)")
	c.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file until exit")
	c.Flags().StringVar(&listen, "listen", "", "also serve the control plane on this TCP address, mutual TLS only")
	c.Flags().StringVar(&metrics, "metrics", "", "serve Prometheus metrics on this address (host:port), path /metrics; plain HTTP: bind it to a management address")
	c.Flags().StringSliceVar(&tlsAllow, "tls-allow", nil, "with --listen: client certificate identities allowed (DNS/URI SAN or CN; default: any certificate from --tls-ca)")
	c.MarkFlagRequired("config")
	return c
}

// heldLog holds log lines until release, then prints them and logs
// directly.
type heldLog struct {
	mu    sync.Mutex
	held  []string
	ready bool
}

func (l *heldLog) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ready {
		log.Printf(format, args...)
		return
	}
	l.held = append(l.held, fmt.Sprintf(format, args...))
}

func (l *heldLog) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.held {
		log.Print(s)
	}
	l.held, l.ready = nil, true
}

func serve(srv *ctl.Server, l net.Listener, what string) {
	log.Printf("edge: control plane on %s", what)
	if err := srv.Serve(l); err != nil {
		log.Printf("edge: control plane on %s: %v", what, err)
	}
}

func metricsMux(b ctl.Backend) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", ctl.MetricsHandler(ctl.NewCollector(b, 5*time.Second)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "edge: metrics at /metrics")
	})
	return mux
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

// logStats logs the data plane's counters, one line per non-zero drop.
func logStats(e *dataplane.Engine) {
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
