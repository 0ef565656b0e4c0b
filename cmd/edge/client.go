package main

// The client half of the binary: each command dials the daemon's control
// socket (or its mutual-TLS address), makes one call and prints a table,
// or JSON with -o json (protojson, one object per line for streams).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/edgegw/edge/config"
	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl"
	pb "github.com/edgegw/edge/ctl/edgepb"
	"github.com/edgegw/edge/drop"
)

// clientFlags are the flags every client command shares (persistent on root).
type clientFlags struct {
	socket, addr       string
	cert, key, ca      string
	serverName, output string
	timeout            time.Duration
}

var cf clientFlags

func addClientFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&cf.socket, "socket", ctl.DefaultSocket, "control socket of the daemon")
	f.StringVar(&cf.addr, "addr", "", "clients: the daemon's TCP address (mutual TLS; needs --tls-cert, --tls-key, --tls-ca)")
	f.StringVar(&cf.cert, "tls-cert", "", "certificate (PEM): a client's for --addr; the daemon's for edge run --listen")
	f.StringVar(&cf.key, "tls-key", "", "private key (PEM) of --tls-cert")
	f.StringVar(&cf.ca, "tls-ca", "", "CA (PEM): clients verify the daemon with it; edge run --listen verifies client certificates with it (dedicate it to edge)")
	f.StringVar(&cf.serverName, "tls-server-name", "", "clients: name to verify in the daemon's certificate (default: the host of --addr)")
	f.StringVarP(&cf.output, "output", "o", "table", "clients: output format, table or json")
	f.DurationVar(&cf.timeout, "timeout", 10*time.Second, "clients: deadline for a call (not for streams)")
}

// dial connects to the daemon; the error says plainly when it is not running.
func dial(ctx context.Context) (*grpc.ClientConn, error) {
	if cf.output != "table" && cf.output != "json" {
		return nil, fmt.Errorf("--output: %q is not table or json", cf.output)
	}
	c, err := ctl.Dial(ctx, ctl.DialOptions{
		Socket: cf.socket, Addr: cf.addr,
		CertFile: cf.cert, KeyFile: cf.key, CAFile: cf.ca, ServerName: cf.serverName,
	})
	if err != nil {
		return nil, err
	}
	return c.Conn(), nil
}

// call runs fn with a connection and a deadline, turning gRPC status errors
// into their message.
func call(fn func(ctx context.Context, cc *grpc.ClientConn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	return stream(ctx, fn)
}

// stream is call without the deadline, ended by SIGINT/SIGTERM.
func stream(ctx context.Context, fn func(ctx context.Context, cc *grpc.ClientConn) error) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cc, err := dial(ctx)
	if err != nil {
		return err
	}
	defer cc.Close()
	err = fn(ctx, cc)
	if err != nil && errors.Is(ctx.Err(), context.Canceled) &&
		(errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled) {
		return nil // interrupted
	}
	if s, ok := status.FromError(err); ok && err != nil {
		if s.Code() == codes.DeadlineExceeded {
			return fmt.Errorf("no answer from edge within %s (--timeout)", cf.timeout)
		}
		return errors.New(s.Message())
	}
	return err
}

var jsonOut = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false}

func printJSON(m proto.Message) error {
	b, err := jsonOut.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(os.Stdout, "%s\n", b)
	return err
}

func table() *tabwriter.Writer { return tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0) }

// ---- status

func statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the running data plane: interfaces, workers, table, SNAT",
		Example: `  edge status
  edge status -o json | jq .flows`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return call(func(ctx context.Context, cc *grpc.ClientConn) error {
				r, err := pb.NewStatusServiceClient(cc).GetStatus(ctx, &pb.GetStatusRequest{})
				if err != nil {
					return err
				}
				if cf.output == "json" {
					return printJSON(r)
				}
				printStatus(os.Stdout, r)
				return nil
			})
		},
	}
}

func printStatus(w io.Writer, r *pb.GetStatusResponse) {
	fmt.Fprintf(w, "edge %s, up %s (since %s), config generation %d\n",
		r.GetVersion(), r.GetUptime().AsDuration().Round(time.Second), r.GetStarted().AsTime().Local().Format(time.RFC3339), r.GetConfigGeneration())
	fill := 0.0
	if r.GetCapacity() > 0 {
		fill = 100 * float64(r.GetFlows()) / float64(r.GetCapacity())
	}
	huge := ""
	if r.GetHugepages() {
		huge = ", hugepages"
	}
	fmt.Fprintf(w, "flows %d of %d (%.1f%%), %d MiB%s\n", r.GetFlows(), r.GetCapacity(), fill, r.GetMemoryBytes()>>20, huge)
	if r.GetNsxCompat() {
		fmt.Fprintln(w, "NSX compatibility mode: ON (stray FINs create CLOSING entries; lab use only)")
	} else if r.GetNsxShadow() {
		fmt.Fprintln(w, "NSX shadow mode: ON (edge's own behaviour; counting the connections NSX compatibility mode would have failed: nsx_would_fail)")
	}
	if s := r.GetSnat(); s != nil {
		fmt.Fprintf(w, "SNAT %s, ports %d-%d, quarantine %s, mapping %s, filtering %s\n", s.GetMode(), s.GetPortFirst(), s.GetPortLast(),
			s.GetQuarantine().AsDuration(), s.GetMapping(), s.GetFiltering())
		for _, p := range s.GetPools() {
			as := p.GetRanges()
			if len(as) == 0 {
				as = p.GetAddresses()
			}
			fmt.Fprintf(w, "  pool %s: %s\n", p.GetName(), strings.Join(as, " "))
		}
	} else {
		fmt.Fprintln(w, "SNAT off")
	}
	fmt.Fprintln(w)
	t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(t, "INTERFACE\tZONE\tIFINDEX\tMTU\tMAC\tQUEUES\tXDP\tADDRESSES")
	for _, i := range r.GetInterfaces() {
		fmt.Fprintf(t, "%s\t%s\t%d\t%d\t%s\t%d\t%s\t%s\n", i.GetName(), i.GetZone(), i.GetIfindex(), i.GetMtu(),
			i.GetMac(), i.GetQueues(), i.GetXdpMode(), strings.Join(i.GetAddresses(), " "))
	}
	t.Flush()
	fmt.Fprintln(w)
	t = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(t, "WORKER\tQUEUE\tCPU")
	for _, x := range r.GetWorkers() {
		cpu := "-"
		if x.GetCpu() >= 0 {
			cpu = strconv.Itoa(int(x.GetCpu()))
		}
		fmt.Fprintf(t, "%d\t%d\t%s\n", x.GetId(), x.GetQueue(), cpu)
	}
	t.Flush()
}

// ---- flows

// flowFilterFlags fills a FlowFilter from flags and key=value arguments.
type flowFilterFlags struct{ pb.FlowFilter }

func (f *flowFilterFlags) add(c *cobra.Command) {
	fs := c.Flags()
	fs.StringVar(&f.Address, "address", "", "address or prefix (either endpoint, either direction)")
	fs.Uint32Var(&f.Port, "port", 0, "port (either endpoint, either direction)")
	fs.StringVar(&f.Protocol, "proto", "", "protocol: tcp, udp, icmp, icmpv6 or a number")
	fs.StringVar(&f.State, "state", "", "conntrack state: syn_sent, established, time_wait, ...")
	fs.Uint32Var(&f.Zone, "zone", 0, "conntrack zone")
	c.RegisterFlagCompletionFunc("state", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return states(), cobra.ShellCompDirectiveNoFileComp
	})
	c.RegisterFlagCompletionFunc("proto", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"tcp", "udp", "icmp", "icmpv6"}, cobra.ShellCompDirectiveNoFileComp
	})
}

// addEvents is add without the flags events cannot filter on.
func (f *flowFilterFlags) addEvents(c *cobra.Command) {
	fs := c.Flags()
	fs.StringVar(&f.Address, "address", "", "address or prefix (either endpoint, either direction, or the SNAT address)")
	fs.Uint32Var(&f.Port, "port", 0, "port (either endpoint, either direction, or the SNAT port)")
	fs.StringVar(&f.Protocol, "proto", "", "protocol: tcp, udp, icmp, icmpv6 or a number")
}

// parseArgs takes `key=value` filter arguments (address= port= proto= state= zone=).
func (f *flowFilterFlags) parseArgs(args []string) error {
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("filter %q: want key=value (address=, port=, proto=, state=, zone=)", a)
		}
		switch k {
		case "address", "addr":
			f.Address = v
		case "proto", "protocol":
			f.Protocol = v
		case "state":
			f.State = v
		case "port", "zone":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return fmt.Errorf("filter %s: %q is not a number", k, v)
			}
			if k == "port" {
				f.Port = uint32(n)
			} else {
				f.Zone = uint32(n)
			}
		default:
			return fmt.Errorf("filter %q: unknown key %q (address, port, proto, state, zone)", a, k)
		}
	}
	return nil
}

func (f *flowFilterFlags) filter() *pb.FlowFilter {
	return &pb.FlowFilter{Address: f.Address, Port: f.Port, Protocol: f.Protocol, State: f.State, Zone: f.Zone}
}

func (f *flowFilterFlags) empty() bool {
	return f.Address == "" && f.Port == 0 && f.Protocol == "" && f.State == "" && f.Zone == 0
}

func flowsCmd() *cobra.Command {
	var ff flowFilterFlags
	var limit uint32
	c := &cobra.Command{
		Use:   "flows [key=value ...]",
		Short: "List live flows (streamed; filters: address, port, proto, state, zone)",
		Example: `  edge flows
  edge flows proto=tcp port=80 state=established
  edge flows --address 10.0.0.0/24 --limit 100
  edge flows -o json | jq -c .original
  edge flows explain tcp 10.0.0.2:40000 203.0.113.2:80`,
		RunE: func(_ *cobra.Command, args []string) error {
			if err := ff.parseArgs(args); err != nil {
				return err
			}
			return stream(context.Background(), func(ctx context.Context, cc *grpc.ClientConn) error {
				// Packed records: the daemon makes them far more cheaply than
				// messages; decoded here into the same Flow messages (a daemon
				// that does not know the encoding sends messages).
				s, err := pb.NewFlowServiceClient(cc).ListFlows(ctx, &pb.ListFlowsRequest{Filter: ff.filter(), Limit: limit,
					Encoding: ctl.FlowEncodingPacked})
				if err != nil {
					return err
				}
				// Rows are printed as batches arrive (a table of millions is
				// never held), so columns have fixed widths, not fitted ones.
				tab := cf.output == "table"
				w := bufio.NewWriter(os.Stdout)
				defer w.Flush()
				const row = "%-6s %-45s %-45s %-11s %3s %-21s %15s %8s %s\n"
				if tab {
					fmt.Fprintf(w, row, "PROTO", "ORIGINAL", "REPLY", "STATE", "GEN", "NAT", "PKTS", "EXPIRES", "RULE")
				}
				n := 0
				for {
					r, err := s.Recv()
					if err == io.EOF {
						break
					}
					if err != nil {
						return err
					}
					flows, err := ctl.FlowsOf(r)
					if err != nil {
						return err
					}
					for _, f := range flows {
						n++
						if !tab {
							b, err := jsonOut.Marshal(f)
							if err != nil {
								return err
							}
							w.Write(b)
							w.WriteByte('\n')
							continue
						}
						o, rp := f.GetOriginal(), f.GetReply()
						nat := "-"
						if f.GetNatAddress() != "" {
							nat = hostPort(f.GetNatAddress(), f.GetNatPort())
						}
						fmt.Fprintf(w, row, o.GetProtocol(),
							hostPort(o.GetSrc(), o.GetSrcPort())+" -> "+hostPort(o.GetDst(), o.GetDstPort()),
							hostPort(rp.GetSrc(), rp.GetSrcPort())+" -> "+hostPort(rp.GetDst(), rp.GetDstPort()),
							f.GetState(), strconv.Itoa(int(f.GetGeneration())), nat,
							strconv.FormatUint(f.GetPacketsOriginal(), 10)+"/"+strconv.FormatUint(f.GetPacketsReply(), 10),
							f.GetExpiresIn().AsDuration().Round(time.Second), dash(f.GetRule()))
					}
					w.Flush()
				}
				if tab {
					fmt.Fprintf(w, "%d flows\n", n)
				}
				return nil
			})
		},
	}
	ff.add(c)
	c.Flags().Uint32Var(&limit, "limit", 0, "list at most this many (0: all)")
	c.AddCommand(explainCmd())
	return c
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func hostPort(a string, p uint32) string { return net.JoinHostPort(a, strconv.Itoa(int(p))) }

// parseTuple reads "PROTO SRC:PORT [->] DST:PORT [zone N]" from args
// (one quoted argument or several), the form `edge flows` and events print.
func parseTuple(args []string) (*pb.Tuple, error) {
	var toks []string
	for _, a := range args {
		toks = append(toks, strings.Fields(a)...)
	}
	var rest []string
	for _, t := range toks {
		if t != "->" {
			rest = append(rest, t)
		}
	}
	usage := errors.New(`want a tuple: PROTO SRC:PORT DST:PORT [zone N], e.g. tcp 10.0.0.2:40000 203.0.113.2:80`)
	if len(rest) != 3 && len(rest) != 5 {
		return nil, usage
	}
	t := &pb.Tuple{Protocol: rest[0]}
	for i, s := range rest[1:3] {
		host, port, err := splitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", s, err)
		}
		if i == 0 {
			t.Src, t.SrcPort = host, port
		} else {
			t.Dst, t.DstPort = host, port
		}
	}
	if len(rest) == 5 {
		if rest[3] != "zone" {
			return nil, usage
		}
		z, err := strconv.ParseUint(rest[4], 10, 8)
		if err != nil {
			return nil, fmt.Errorf("zone %q: not a number 0-255", rest[4])
		}
		t.Zone = uint32(z)
	}
	return t, nil
}

func splitHostPort(s string) (string, uint32, error) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", 0, errors.New("want ADDRESS:PORT ([v6]:port for IPv6)")
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s[:i], "["), "]")
	p, err := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q is not 0-65535", s[i+1:])
	}
	return host, uint32(p), nil
}

func explainCmd() *cobra.Command {
	var history uint32
	c := &cobra.Command{
		Use:   "explain PROTO SRC:PORT DST:PORT",
		Short: "Explain a tuple: its live flow and the incarnations before it",
		Long: `Explain looks a tuple up in either direction (the client's view or the
translated one) and prints the live flow, if any, and its ended incarnations,
newest first: how each was created, what state it reached, why it ended.
The tuple may also be given as one quoted argument in the form flows and
events print ("tcp 10.0.0.2:40000 -> 203.0.113.2:80"; unquoted, the shell
would take > as a redirection).`,
		Example: `  edge flows explain tcp 10.0.0.2:40000 203.0.113.2:80
  edge flows explain "udp [2001:db8::2]:5353 -> [2001:db8::1]:53" --history 4`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			tu, err := parseTuple(args)
			if err != nil {
				return err
			}
			return call(func(ctx context.Context, cc *grpc.ClientConn) error {
				r, err := pb.NewFlowServiceClient(cc).ExplainFlow(ctx, &pb.ExplainFlowRequest{Tuple: tu, MaxHistory: history})
				if err != nil {
					return err
				}
				if cf.output == "json" {
					return printJSON(r)
				}
				if cur := r.GetCurrent(); cur != nil {
					fmt.Printf("live flow (matched as %s):\n", r.GetMatchedDirection())
					printIncarnation(cur, true)
				} else {
					fmt.Println("no live flow")
				}
				if len(r.GetHistory()) == 0 {
					fmt.Println("no earlier incarnations in the history")
				}
				for i, h := range r.GetHistory() {
					fmt.Printf("incarnation -%d:\n", i+1)
					printIncarnation(h, false)
				}
				return nil
			})
		},
	}
	c.Flags().Uint32Var(&history, "history", 16, "ended incarnations to show at most")
	return c
}

func printIncarnation(f *pb.Flow, live bool) {
	o, r := f.GetOriginal(), f.GetReply()
	t := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(t, "  original\t%s %s -> %s\n", o.GetProtocol(), hostPort(o.GetSrc(), o.GetSrcPort()), hostPort(o.GetDst(), o.GetDstPort()))
	fmt.Fprintf(t, "  reply\t%s %s -> %s\n", r.GetProtocol(), hostPort(r.GetSrc(), r.GetSrcPort()), hostPort(r.GetDst(), r.GetDstPort()))
	fmt.Fprintf(t, "  generation\t%d, created by %s, rule %s, profile %s\n", f.GetGeneration(), f.GetCreator(), dash(f.GetRule()), dash(f.GetProfile()))
	fmt.Fprintf(t, "  state\t%s\n", f.GetState())
	fmt.Fprintf(t, "  packets\t%d original, %d reply\n", f.GetPacketsOriginal(), f.GetPacketsReply())
	if f.GetIsnOriginal() != 0 || f.GetIsnReply() != 0 {
		fmt.Fprintf(t, "  ISN\t%d original, %d reply\n", f.GetIsnOriginal(), f.GetIsnReply())
	}
	if f.GetNatAddress() != "" {
		fmt.Fprintf(t, "  SNAT\t%s\n", hostPort(f.GetNatAddress(), f.GetNatPort()))
	}
	fmt.Fprintf(t, "  opened\t%s\n", f.GetOpened().AsTime().Local().Format(time.RFC3339))
	if live {
		fmt.Fprintf(t, "  expires in\t%s\n", f.GetExpiresIn().AsDuration().Round(time.Second))
	} else {
		fmt.Fprintf(t, "  closed\t%s (%s)\n", f.GetClosed().AsTime().Local().Format(time.RFC3339), f.GetCloseReason())
	}
	t.Flush()
}

// ---- flush

func flushCmd() *cobra.Command {
	var ff flowFilterFlags
	var all bool
	c := &cobra.Command{
		Use:   "flush [key=value ...]",
		Short: "Remove live flows matching a filter (--all for every flow)",
		Long: `Flush removes the matching flows from the connection-tracking table; each
removal is recorded in the history (edge flows explain) and reported as a
"flushed" event. Their next packet is treated as a new flow: firewall rules
decide again, and for TCP only a SYN opens one.`,
		Example: `  edge flush address=10.0.0.2
  edge flush --proto udp --port 53
  edge flush --all`,
		RunE: func(_ *cobra.Command, args []string) error {
			if err := ff.parseArgs(args); err != nil {
				return err
			}
			if ff.empty() && !all {
				return errors.New("no filter: give one (address=, port=, proto=, state=, zone=) or --all to flush every flow")
			}
			return call(func(ctx context.Context, cc *grpc.ClientConn) error {
				r, err := pb.NewFlowServiceClient(cc).FlushFlows(ctx, &pb.FlushFlowsRequest{Filter: ff.filter(), All: all})
				if err != nil {
					return err
				}
				if cf.output == "json" {
					return printJSON(r)
				}
				fmt.Printf("flushed %d flows\n", r.GetFlushed())
				return nil
			})
		},
	}
	ff.add(c)
	c.Flags().BoolVar(&all, "all", false, "flush every flow (required without a filter)")
	return c
}

// ---- config

func configCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Get or apply the running configuration",
		Long: `The running configuration is the configuration file's document (YAML).
"apply" replaces it whole, live: rules, routes, SNAT, timer profiles and
management addresses change without a restart; a change to interfaces, queues,
CPUs, XDP or table size is refused (it needs a restart). The document is
validated whole first: on any error nothing changes and the error names the
field.

Applied documents are saved to the daemon's --config file (atomically), so
edge starts with them next time; the reply says where it saved, or that it
could not.`,
		Example: `  edge config get > running.yaml
  edge config apply -f running.yaml --dry-run
  edge config apply -f running.yaml`,
	}
	get := &cobra.Command{
		Use:     "get",
		Short:   "Print the running configuration document",
		Example: "  edge config get > running.yaml",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return call(func(ctx context.Context, cc *grpc.ClientConn) error {
				r, err := pb.NewConfigServiceClient(cc).GetConfig(ctx, &pb.GetConfigRequest{})
				if err != nil {
					return err
				}
				if cf.output == "json" {
					return printJSON(r)
				}
				fmt.Print(r.GetYaml())
				if !strings.HasSuffix(r.GetYaml(), "\n") {
					fmt.Println()
				}
				fmt.Fprintf(os.Stderr, "# generation %d\n", r.GetGeneration())
				return nil
			})
		},
	}
	var file string
	var dry bool
	apply := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Validate and apply a whole configuration document",
		Example: `  edge config get > running.yaml; $EDITOR running.yaml; edge config apply -f running.yaml
  edge config apply -f new.yaml --dry-run
  cat new.yaml | edge config apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			var doc []byte
			var err error
			name := file
			if file == "-" {
				name = "stdin"
				doc, err = io.ReadAll(io.LimitReader(os.Stdin, config.MaxDocument+1))
			} else {
				doc, err = config.ReadFile(file)
			}
			if err != nil {
				return err
			}
			// Checked here first, so that errors name the file (the daemon
			// sees a document without a name).
			if _, err := config.ParseFile(name, doc); err != nil {
				return err
			}
			return call(func(ctx context.Context, cc *grpc.ClientConn) error {
				r, err := pb.NewConfigServiceClient(cc).ApplyConfig(ctx, &pb.ApplyConfigRequest{Yaml: string(doc), DryRun: dry})
				if err != nil {
					return err
				}
				if cf.output == "json" {
					return printJSON(r)
				}
				what := "nothing changed"
				if len(r.GetChanged()) > 0 {
					what = "changed: " + strings.Join(r.GetChanged(), ", ")
				}
				switch {
				case dry:
					fmt.Printf("valid; would apply (%s)\n", what)
				case r.GetSavedTo() != "":
					fmt.Printf("applied: generation %d (%s); saved to %s\n", r.GetGeneration(), what, r.GetSavedTo())
				default:
					fmt.Printf("applied: generation %d (%s)\n", r.GetGeneration(), what)
					fmt.Fprintf(os.Stderr, "WARNING: the configuration is in force but was NOT saved (%s): a restart brings back the old file\n",
						dash(r.GetSaveError()))
				}
				return nil
			})
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "configuration document (YAML; - for stdin)")
	apply.Flags().BoolVar(&dry, "dry-run", false, "validate only")
	apply.MarkFlagRequired("file")
	c.AddCommand(get, apply)
	return c
}

// ---- events

func eventsCmd() *cobra.Command {
	var ff flowFilterFlags
	var kinds, reasons []string
	var count int
	var dur time.Duration
	var verbose bool
	c := &cobra.Command{
		Use:   "events [key=value ...]",
		Short: "Stream events: flows opened/reopened/closed/expired, drops, ICMP/RST sent, SNAT exhaustion",
		Long: `Events streams what happens in the data plane until interrupted. A client
that does not keep up loses events (reported as "lost N"): it never slows
forwarding. Filters: --kind, --reason, and address=, port=, proto=.`,
		Example: `  edge events
  edge events --kind opened,reopened,closed
  edge events --kind dropped --reason firewall_drop,no_route
  edge events address=203.0.113.2 port=80 -o json
  edge events --count 10 --for 30s`,
		RunE: func(_ *cobra.Command, args []string) error {
			if err := ff.parseArgs(args); err != nil {
				return err
			}
			if ff.State != "" || ff.Zone != 0 {
				return errors.New("events cannot be filtered by state or zone (filters: address=, port=, proto=, --kind, --reason)")
			}
			ctx := context.Background()
			if dur > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, dur)
				defer cancel()
			}
			return stream(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
				s, err := pb.NewEventServiceClient(cc).Subscribe(ctx, &pb.SubscribeRequest{Filter: &pb.EventFilter{
					Kinds: kinds, Reasons: reasons, Flow: ff.filter()}})
				if err != nil {
					return err
				}
				// The server sends its headers once the subscription is
				// registered: from here on no event is missed.
				if _, err := s.Header(); err != nil {
					return err
				}
				if verbose {
					fmt.Fprintln(os.Stderr, "subscribed")
				}
				n := 0
				for {
					r, err := s.Recv()
					if err != nil {
						if status.Code(err) == codes.DeadlineExceeded && dur > 0 {
							return nil
						}
						return err
					}
					if l := r.GetLost(); l > 0 {
						fmt.Fprintf(os.Stderr, "lost %d events (this client did not keep up)\n", l)
					}
					for _, e := range r.GetEvents() {
						if cf.output == "json" {
							if err := printJSON(e); err != nil {
								return err
							}
						} else {
							fmt.Println(formatEvent(e))
						}
						if n++; count > 0 && n >= count {
							return nil
						}
					}
				}
			})
		},
	}
	ff.addEvents(c)
	c.Flags().StringSliceVar(&kinds, "kind", nil, "event kinds: "+strings.Join(eventKinds(), ", "))
	c.Flags().StringSliceVar(&reasons, "reason", nil, "drop reasons (see edge stats)")
	c.Flags().IntVar(&count, "count", 0, "exit after this many events")
	c.Flags().DurationVar(&dur, "for", 0, "exit after this long")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, `print "subscribed" on stderr once no later event can be missed`)
	c.RegisterFlagCompletionFunc("reason", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return dropReasons(), cobra.ShellCompDirectiveNoFileComp
	})
	c.RegisterFlagCompletionFunc("kind", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return eventKinds(), cobra.ShellCompDirectiveNoFileComp
	})
	return c
}

func dropReasons() []string {
	var rs []string
	for r := drop.Reason(1); r < drop.NumReasons; r++ {
		rs = append(rs, r.String())
	}
	return rs
}

func states() []string {
	var ss []string
	for s := conntrack.State(1); s < conntrack.NumStates; s++ {
		ss = append(ss, s.String())
	}
	return ss
}

func eventKinds() []string {
	var ks []string
	for k := ctl.EventKind(1); k < ctl.NumEventKinds; k++ {
		ks = append(ks, k.String())
	}
	return ks
}

func formatEvent(e *pb.Event) string {
	var b strings.Builder
	b.WriteString(e.GetTime().AsTime().Local().Format("15:04:05.000000"))
	b.WriteString(" ")
	b.WriteString(e.GetKind())
	if t := e.GetTuple(); t != nil {
		fmt.Fprintf(&b, " %s %s -> %s", t.GetProtocol(), hostPort(t.GetSrc(), t.GetSrcPort()), hostPort(t.GetDst(), t.GetDstPort()))
	}
	if e.GetNatAddress() != "" {
		fmt.Fprintf(&b, " snat %s", hostPort(e.GetNatAddress(), e.GetNatPort()))
	}
	if e.GetGeneration() != 0 {
		fmt.Fprintf(&b, " gen %d", e.GetGeneration())
	}
	if e.GetState() != "" && e.GetState() != "none" {
		fmt.Fprintf(&b, " state %s", e.GetState())
	}
	if e.GetReason() != "" && e.GetReason() != "none" {
		fmt.Fprintf(&b, " reason %s", e.GetReason())
	}
	if e.GetIcmp() != "" {
		fmt.Fprintf(&b, " icmp %s", e.GetIcmp())
	}
	if f := e.GetTcpFlags(); f != 0 {
		fmt.Fprintf(&b, " flags %s", tcpFlags(uint8(f)))
	}
	if z := e.GetZone(); z != "" {
		fmt.Fprintf(&b, " from %s", z)
	}
	if d := e.GetDirection(); d != "" {
		fmt.Fprintf(&b, " dir %s", d)
	}
	if x := e.GetIdleExpiry(); x != "" {
		fmt.Fprintf(&b, " %s", x) // expired: reset or silent
	}
	fmt.Fprintf(&b, " worker %d", e.GetWorker())
	return b.String()
}

func tcpFlags(f uint8) string {
	const names = "FSRPAUEC"
	var b []byte
	for i := range 8 {
		if f&(1<<i) != 0 {
			b = append(b, names[i])
		}
	}
	return string(b)
}

// ---- stats

func statsCmd() *cobra.Command {
	var dests, zero bool
	var maxDests uint32
	c := &cobra.Command{
		Use:   "stats",
		Short: "Show counters: drops by reason, per worker, per interface, SNAT by destination",
		Example: `  edge stats
  edge stats --snat        # also port usage per SNAT destination
  edge stats -o json | jq .drops`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return call(func(ctx context.Context, cc *grpc.ClientConn) error {
				r, err := pb.NewStatsServiceClient(cc).GetStats(ctx, &pb.GetStatsRequest{SnatDestinations: dests, MaxDestinations: maxDests})
				if err != nil {
					return err
				}
				if cf.output == "json" {
					return printJSON(r)
				}
				printStats(os.Stdout, r, zero)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&dests, "snat", false, "include port usage per SNAT destination (the busiest --max)")
	c.Flags().Uint32Var(&maxDests, "max", 0, "with --snat: this many destinations, busiest first (0: 1000)")
	c.Flags().BoolVar(&zero, "zero", false, "also list counters that are zero")
	return c
}

func printStats(w io.Writer, r *pb.GetStatsResponse, zero bool) {
	for _, warn := range r.GetWarnings() {
		fmt.Fprintf(os.Stderr, "warning: %s\n", warn)
	}
	fmt.Fprintf(w, "flows %d of %d", r.GetFlows(), r.GetCapacity())
	if r.GetEventsLost() > 0 {
		fmt.Fprintf(w, ", events lost %d", r.GetEventsLost())
	}
	if n := r.GetKernelRoutesRefused(); n > 0 {
		fmt.Fprintf(w, ", kernel route refreshes refused %d", n)
	}
	fmt.Fprintln(w)
	t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(t, "\nINTERFACE\tZONE\tRX\tTX\tXDP REDIRECTED\tNO SOCKET\tPASSED\tOTHER\tLOST: FILL EMPTY\tRX FULL\tTX DEVICE")
	for _, i := range r.GetInterfaces() {
		fmt.Fprintf(t, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", i.GetName(), i.GetZone(), i.GetRxPackets(), i.GetTxPackets(),
			i.GetXdpRedirected(), i.GetXdpNoSocket(), i.GetXdpPassed(), i.GetXdpOther(),
			i.GetXskFillRingEmpty(), i.GetXskRxRingFull(), i.GetXskTxDeviceDrops())
	}
	fmt.Fprintln(t, "\nWORKER\tRX IN\tRX OUT\tTX IN\tTX OUT\tCREATED\tHANDOFF\tFLOWS\tDROPS\tFRAGMENTS HELD")
	for _, x := range r.GetWorkers() {
		var d uint64
		for _, n := range x.GetDrops() {
			d += n
		}
		fmt.Fprintf(t, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", x.GetId(), x.GetRxInside(), x.GetRxOutside(),
			x.GetTxInside(), x.GetTxOutside(), x.GetCreated(), x.GetHandoff(), x.GetFlows(), d, x.GetFragments().GetHeldNow())
	}
	t.Flush()
	section := func(title string, m map[string]uint64) {
		keys := make([]string, 0, len(m))
		for k, v := range m {
			if v != 0 || zero {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			return
		}
		sort.Strings(keys)
		t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(t, "\n%s\t\n", title)
		for _, k := range keys {
			fmt.Fprintf(t, "  %s\t%d\n", k, m[k])
		}
		t.Flush()
	}
	section("DROPS (reason)", r.GetDrops())
	section("CONNTRACK", r.GetConntrack())
	section("SNAT", r.GetSnat())
	icmp := r.GetIcmpSent()
	if r.GetRstSent() > 0 {
		icmp = clone(icmp)
		icmp["tcp_rst"] = r.GetRstSent()
	}
	section("SENT BY EDGE (ICMP errors, TCP resets)", icmp)
	n := r.GetNeighbours()
	section("NEIGHBOURS", map[string]uint64{
		"entries": n.GetEntries(), "kept_entries": n.GetKept(), "resolutions_outstanding": n.GetUnanswered(),
		"kept": n.GetKeptTotal(), "kept_recovered": n.GetKeptRecovered(), "kept_expired": n.GetKeptExpired(),
		"kept_failed": n.GetKeptFailed(), "resolutions_requested": n.GetResolutionsRequested(),
		"resolutions_refused": n.GetResolutionsRefused(), "resolutions_given_up": n.GetResolutionsGivenUp(),
		"kernel_entries_deleted": n.GetKernelEntriesDeleted(), "held": n.GetHeld(), "held_sent": n.GetHeldSent(),
		"held_dropped": n.GetHeldDropped(),
	})
	f := r.GetFragments()
	section("FRAGMENTS (all workers)", map[string]uint64{
		"first_noted": f.GetFirstNoted(), "followed": f.GetFollowed(), "held": f.GetHeld(), "released": f.GetReleased(),
		"expired_held": f.GetExpiredHeld(), "completed": f.GetCompleted(), "refused": f.GetRefused(),
		"expired_state": f.GetExpiredState(), "held_now": f.GetHeldNow(),
	})
	if ds := r.GetSnatDestinations(); len(ds) > 0 {
		if tot := int(r.GetSnatDestinationsTotal()); tot > len(ds) {
			fmt.Fprintf(w, "\n(the %d busiest of %d SNAT destinations; --max to see more)\n", len(ds), tot)
		}
		t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(t, "\nSNAT ADDRESS\tDESTINATION\tPROTO\tIN USE\tQUARANTINED\tFREE\tRANGE\tEXHAUSTED\tOVERRIDES")
		for _, d := range ds {
			fmt.Fprintf(t, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", d.GetAddress(), hostPort(d.GetDestination(), d.GetPort()),
				d.GetProtocol(), d.GetInUse(), d.GetQuarantined(), d.GetFree(), d.GetRange(), d.GetExhausted(), d.GetOverrides())
		}
		t.Flush()
	}
}

func clone(m map[string]uint64) map[string]uint64 {
	c := make(map[string]uint64, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	return c
}
