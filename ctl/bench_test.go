package ctl

import (
	"io"
	"testing"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
)

// BenchmarkListFlows measures a full dump of 10,000 flows over bufconn:
// conversion, marshalling and the client's unmarshalling (the cost
// bench/ctl-load.sh puts on the box every 100 ms). Reported per flow.
// messages: Flow messages; packed: packed records, each decoded into a
// FlowRecord (what a client that dumps often does); packed-pb: packed
// records decoded into Flow messages (what `edge flows` does).
func BenchmarkListFlows(b *testing.B) {
	for _, enc := range []string{"messages", "packed", "packed-pb"} {
		b.Run(enc, func(b *testing.B) { benchListFlows(b, enc) })
	}
}

func benchListFlows(b *testing.B, enc string) {
	const n = 10000
	f := newFake()
	f.flows = make([]conntrack.FlowInfo, n) // served from a slice: the fake costs little
	for i := range f.flows {
		f.flows[i] = genFlow(i)
	}
	f.flowsDone = make(chan struct{}, 1<<20)
	ts := newTestServer(&testing.T{}, f)
	req := &edgepb.ListFlowsRequest{}
	if enc != "messages" {
		req.Encoding = FlowEncodingPacked
	}
	var fr FlowRecord
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s, err := ts.client.Flows.ListFlows(b.Context(), req)
		if err != nil {
			b.Fatal(err)
		}
		got := 0
		for {
			m, err := s.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			switch enc {
			case "messages":
				got += len(m.GetFlows())
			case "packed":
				recs, err := OpenFlowRecords(m.GetPacked())
				if err != nil {
					b.Fatal(err)
				}
				for i := range recs.Len() {
					recs.Record(i, &fr)
				}
				got += recs.Len()
			case "packed-pb":
				fs, err := FlowsOf(m)
				if err != nil {
					b.Fatal(err)
				}
				got += len(fs)
			}
		}
		if got != n {
			b.Fatalf("got %d flows", got)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/flow")
}
