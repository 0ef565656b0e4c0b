package main

// edge trace: the path of live packets through the pipeline.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/edgegw/edge/ctl/edgepb"
)

func traceCmd() *cobra.Command {
	var ff flowFilterFlags
	var count uint32
	var dur time.Duration
	c := &cobra.Command{
		Use:   "trace [key=value ...]",
		Short: "Show the path of live packets through edge: parse, flow state, rule, SNAT, route, verdict",
		Long: `Trace prints one line per packet matching the filter (address=, port=,
proto=, zone=, as for flows) with its path through the data plane: how it
parsed, the flow's state before and after it (or the rule that decided a
new flow), its NAT translation, its route and what became of it (forwarded,
dropped and why, hairpinned, handed to the worker owning its flow, and any
ICMP error or reset sent back). A packet matches by its own addresses and
ports or, once tracked, by its flow's: replies to a NAT address trace under
the inside host's address.

The trace ends after --count packets, after --for (default 60 s, at most
1 h) or on Ctrl-C. One trace runs at a time. While none runs, tracing costs
the data plane nothing measurable; while one runs, every packet is matched
and the matching ones recorded. A worker's records are lost (reported) when
this client falls behind; forwarding never waits.`,
		Example: `  edge trace address=10.0.0.2 port=80
  edge trace proto=udp --count 20
  edge trace address=203.0.113.0/24 --for 10s -o json`,
		RunE: func(_ *cobra.Command, args []string) error {
			if err := ff.parseArgs(args); err != nil {
				return err
			}
			if ff.State != "" {
				return errors.New("a trace cannot filter by state (filters: address=, port=, proto=, zone=)")
			}
			req := &pb.TraceRequest{Filter: ff.filter(), Count: count}
			if dur > 0 {
				req.Duration = durationpb.New(dur)
			}
			return stream(context.Background(), func(ctx context.Context, cc *grpc.ClientConn) error {
				s, err := pb.NewTraceServiceClient(cc).Trace(ctx, req)
				if err != nil {
					return err
				}
				w := bufio.NewWriter(os.Stdout)
				defer w.Flush()
				var n, lost uint64
				defer func() {
					if lost > 0 {
						fmt.Fprintf(os.Stderr, "%d packets traced, %d lost (this client did not keep up)\n", n, lost)
					}
				}()
				for {
					r, err := s.Recv()
					if err != nil {
						if err == io.EOF {
							return nil
						}
						return err
					}
					lost = r.GetLost()
					for _, p := range r.GetPackets() {
						n++
						if cf.output == "json" {
							b, err := jsonOut.Marshal(p)
							if err != nil {
								return err
							}
							w.Write(b)
							w.WriteByte('\n')
						} else {
							w.WriteString(formatTrace(p))
							w.WriteByte('\n')
						}
					}
					w.Flush()
				}
			})
		},
	}
	ff.add(c) // --state is refused: a packet has none before it is tracked
	fs := c.Flags()
	fs.Uint32Var(&count, "count", 0, "stop after this many packets (0: no limit)")
	fs.DurationVar(&dur, "for", 0, "stop after this long (0: the daemon's default, 60s; at most 1h)")
	return c
}

// formatTrace is one packet's line, e.g.
//
//	12:00:01.123456 w0 in tcp 10.0.0.2:40000 -> 203.0.113.2:80 S new(rule outbound) -> syn_sent snat 203.0.113.1:40000 route out via 203.0.113.2 -> forwarded
func formatTrace(p *pb.TracePacket) string {
	var b strings.Builder
	b.WriteString(p.GetTime().AsTime().Local().Format("15:04:05.000000"))
	fmt.Fprintf(&b, " w%d %s", p.GetWorker(), sideShort(p.GetIngress()))
	if p.GetLooped() {
		b.WriteString(" (hairpin)")
	}
	if t := p.GetTuple(); t != nil {
		if p.GetIcmpError() {
			b.WriteString(" icmp error about")
		}
		fmt.Fprintf(&b, " %s %s -> %s", t.GetProtocol(), hostPort(t.GetSrc(), t.GetSrcPort()), hostPort(t.GetDst(), t.GetDstPort()))
		if t.GetProtocol() == "tcp" && !p.GetIcmpError() {
			fmt.Fprintf(&b, " %s", dashIfEmpty(tcpFlags(uint8(p.GetTcpFlags())), "."))
		}
	} else {
		b.WriteString(" (not parsed)")
	}
	if f := p.GetFragment(); f != "" {
		fmt.Fprintf(&b, " fragment %s", f)
	}
	if p.GetParse() != "" && p.GetParse() != "fragment" {
		fmt.Fprintf(&b, " parse %s", p.GetParse())
	}
	if p.GetTowardMapping() {
		b.WriteString(" toward mapping")
		if f := p.GetFlow(); f != nil {
			fmt.Fprintf(&b, " of %s", hostPort(f.GetSrc(), f.GetSrcPort()))
		}
	}
	if p.GetTracked() {
		switch {
		case p.GetStateBefore() != "":
			fmt.Fprintf(&b, " %s %s", p.GetDirection(), p.GetStateBefore())
			if after := p.GetStateAfter(); after != "" && (after != p.GetStateBefore() || p.GetGeneration() != p.GetGenerationBefore()) {
				fmt.Fprintf(&b, " -> %s", after)
				if p.GetGeneration() != p.GetGenerationBefore() {
					fmt.Fprintf(&b, " (gen %d)", p.GetGeneration())
				}
			}
			if v := p.GetVerdict(); v == "reopened" {
				b.WriteString(" reopened")
			}
		default:
			b.WriteString(" new")
			if p.GetRule() != "" {
				fmt.Fprintf(&b, "(rule %s", p.GetRule())
				if a := p.GetRuleAction(); a != "allow" {
					fmt.Fprintf(&b, ": %s", a)
				}
				b.WriteString(")")
			}
			if after := p.GetStateAfter(); after != "" {
				fmt.Fprintf(&b, " -> %s", after)
			}
		}
	}
	if p.GetNatAddress() != "" {
		if p.GetDirection() == "reply" {
			if f := p.GetFlow(); f != nil {
				fmt.Fprintf(&b, " unsnat %s", hostPort(f.GetSrc(), f.GetSrcPort()))
			}
		} else {
			fmt.Fprintf(&b, " snat %s", hostPort(p.GetNatAddress(), p.GetNatPort()))
		}
	}
	switch p.GetAction() {
	case "forwarded":
		fmt.Fprintf(&b, " route %s via %s -> forwarded", sideShort(p.GetEgress()), p.GetNextHop())
	case "held":
		fmt.Fprintf(&b, " route %s via %s -> held (next hop being resolved)", sideShort(p.GetEgress()), p.GetNextHop())
	case "dropped":
		fmt.Fprintf(&b, " -> dropped(%s)", p.GetDropReason())
	case "handed_off":
		fmt.Fprintf(&b, " -> handed off to w%d", p.GetHandoffWorker())
	case "hairpinned":
		b.WriteString(" -> hairpinned")
	case "followed":
		b.WriteString(" -> follows its first fragment")
	default:
		fmt.Fprintf(&b, " -> %s", p.GetAction())
	}
	if k := p.GetIcmpSent(); k != "" {
		fmt.Fprintf(&b, ", sent icmp %s", k)
	}
	if p.GetRstSent() {
		b.WriteString(", sent rst")
	}
	return b.String()
}

// sideShort is "in" or "out" for inside or outside.
func sideShort(zone string) string {
	switch zone {
	case "inside":
		return "in"
	case "outside":
		return "out"
	}
	return dash(zone)
}

func dashIfEmpty(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
