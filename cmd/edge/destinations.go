package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	pb "github.com/edgegw/edge/ctl/edgepb"
)

func destinationsCmd() *cobra.Command {
	var maxN uint32
	c := &cobra.Command{
		Use:   "destinations",
		Short: "Show connection signals per destination (server ip:port): failed handshakes, resets, server closes, keep-alive races",
		Long: `destinations lists, for the busiest destinations (a server endpoint as the
inside sees it), what conntrack counted about their connections:

  FLOWS      flows opened toward it
  HS         handshakes completed, and the median SYN to SYN-ACK time
  SYN-RETX   SYNs sent again before any answer (a backlog or a black hole),
             and in how many connections
  HS-TIMEOUT handshakes whose SYN was never answered (expired or evicted)
  REFUSED    handshakes the server answered with an RST
  RST C/S/E  resets that ended a flow, sent by the client / by the server,
             and resets edge sent toward the client (reject rules, and
             idle expiry under a profile with idle_expiry: reset)
  SRV-CLOSE  connections the server closed first, and their median idle time
  RACES      connections where the client sent data after the server closed
             (the keep-alive race), and the median delay after the close
  EXP-LATE   flows edge expired by their idle timer that later got a packet,
             and their median idle time
  NSX-FAIL   with nsx_shadow: connections that would have failed behind an
             NSX-style firewall (their SYN-ACK dropped on a closing entry)

Times are log2 buckets: "(~4s)" means between 4 and 8 s. -o json prints the
full distributions.`,
		Example: `  edge destinations
  edge destinations --max 20
  edge destinations -o json | jq '.destinations[] | select(.counters.keepalive_races > 0)'`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return call(func(ctx context.Context, cc *grpc.ClientConn) error {
				r, err := pb.NewDestinationServiceClient(cc).ListDestinations(ctx, &pb.ListDestinationsRequest{Max: maxN})
				if err != nil {
					return err
				}
				if cf.output == "json" {
					return printJSON(r)
				}
				printDestinations(os.Stdout, r)
				return nil
			})
		},
	}
	c.Flags().Uint32Var(&maxN, "max", 0, "at most this many, busiest first (0: 1000)")
	return c
}

func printDestinations(w io.Writer, r *pb.ListDestinationsResponse) {
	t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(t, "PROTO\tDESTINATION\tFLOWS\tHS\tSYN-RETX\tHS-TIMEOUT\tREFUSED\tRST C/S/E\tSRV-CLOSE\tRACES\tEXP-LATE\tNSX-FAIL")
	for _, d := range r.GetDestinations() {
		c := d.GetCounters()
		hist := map[string][]uint64{}
		for _, h := range d.GetHistograms() {
			hist[h.GetName()] = h.GetBuckets()
		}
		with := func(n uint64, h string) string {
			if n == 0 {
				return "0"
			}
			return fmt.Sprintf("%d %s", n, histMedian(hist[h]))
		}
		dest := hostPort(d.GetAddress(), d.GetPort())
		if d.GetZone() != 0 {
			dest += fmt.Sprintf(" zone %d", d.GetZone())
		}
		retx := "0"
		if n := c["syn_retransmits"]; n > 0 {
			retx = fmt.Sprintf("%d (%d conns)", n, c["syn_retried"])
		}
		fmt.Fprintf(t, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d/%d/%d\t%s\t%s\t%s\t%d\n", d.GetProtocol(), dest, c["flows"],
			with(c["handshakes"], "handshake_rtt"), retx, c["handshake_timeouts"], c["handshake_refused"],
			c["resets_client"], c["resets_server"], c["resets_edge"], with(c["server_closes"], "server_idle_close"),
			with(c["keepalive_races"], "race_delay"), with(c["expired_late"], "expired_idle"), c["nsx_would_fail"])
	}
	t.Flush()
	n := uint32(len(r.GetDestinations()))
	switch {
	case r.GetTotal() > n:
		fmt.Fprintf(w, "(%d of %d destinations; --max to see more)\n", n, r.GetTotal())
	default:
		fmt.Fprintf(w, "%d destinations\n", n)
	}
	if r.GetReplaced() > 0 {
		fmt.Fprintf(w, "%d destinations took the place of less active ones (the workers track %d at most)\n",
			r.GetReplaced(), r.GetCapacity())
	}
}

// histMedian returns "~D", the lower bound of the bucket that holds the
// median of a log2 distribution of milliseconds (bucket 0: under 1 ms,
// bucket i: [2^(i-1), 2^i) ms), or "" for an empty one.
func histMedian(b []uint64) string {
	var total uint64
	for _, n := range b {
		total += n
	}
	if total == 0 {
		return ""
	}
	var seen uint64
	for i, n := range b {
		seen += n
		if 2*seen >= total {
			if i == 0 {
				return "(<1ms)"
			}
			return "(~" + (time.Duration(1<<(i-1)) * time.Millisecond).String() + ")"
		}
	}
	return ""
}
