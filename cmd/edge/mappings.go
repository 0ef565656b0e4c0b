package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	pb "github.com/edgegw/edge/ctl/edgepb"
)

func mappingsCmd() *cobra.Command {
	var flushIdle bool
	var maxN uint32
	c := &cobra.Command{
		Use:   "mappings",
		Short: "Show the NAT's endpoint-independent mappings (inside endpoint -> external endpoint)",
		Long: `mappings lists the NAT mappings: one external address and port per inside
endpoint (address, port, protocol) while any of its flows lives, used toward
every destination (RFC 4787 endpoint-independent mapping). FLOWS is how many
live flows use a mapping; an idle UDP mapping (0 flows) is kept for the time
shown (snat.mapping_timeout). --flush-idle ends the idle ones at once; a
mapping in use ends with its flows (edge flush).`,
		Example: `  edge mappings
  edge mappings --flush-idle
  edge mappings -o json | jq '.mappings[] | select(.flows == 0)'`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return call(func(ctx context.Context, cc *grpc.ClientConn) error {
				c := pb.NewNATServiceClient(cc)
				if flushIdle {
					r, err := c.FlushMappings(ctx, &pb.FlushMappingsRequest{})
					if err != nil {
						return err
					}
					fmt.Printf("idle mappings ended; %d in use left\n", r.GetLeft())
					return nil
				}
				r, err := c.ListMappings(ctx, &pb.ListMappingsRequest{Max: maxN})
				if err != nil {
					return err
				}
				if cf.output == "json" {
					return printJSON(r)
				}
				printMappings(os.Stdout, r)
				return nil
			})
		},
	}
	c.Flags().BoolVar(&flushIdle, "flush-idle", false, "end every mapping no flow uses")
	c.Flags().Uint32Var(&maxN, "max", 0, "at most this many (0: all)")
	return c
}

func printMappings(w io.Writer, r *pb.ListMappingsResponse) {
	t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(t, "PROTO\tINSIDE\tEXTERNAL\tFLOWS\tIDLE LEFT\tFILTERING\tWORKER")
	for _, m := range r.GetMappings() {
		idle := "-"
		if m.GetFlows() == 0 {
			idle = m.GetIdleLeft().AsDuration().String()
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%d\t%s\t%s\t%d\n", m.GetProtocol(), hostPort(m.GetInsideAddress(), m.GetInsidePort()),
			hostPort(m.GetExternalAddress(), m.GetExternalPort()), m.GetFlows(), idle, m.GetFiltering(), m.GetWorker())
	}
	t.Flush()
	if n := uint64(len(r.GetMappings())); r.GetTotal() > n {
		fmt.Fprintf(w, "(%d of %d mappings; --max to see more)\n", n, r.GetTotal())
	} else {
		fmt.Fprintf(w, "%d mappings\n", n)
	}
}
