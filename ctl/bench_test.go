package ctl

import (
	"io"
	"testing"

	"github.com/edgegw/edge/ctl/edgepb"
)

// BenchmarkListFlows measures a full dump of 10,000 flows over bufconn:
// conversion, marshalling and the client's unmarshalling (the cost
// bench/ctl-load.sh puts on the box every 100 ms). Reported per flow.
func BenchmarkListFlows(b *testing.B) {
	const n = 10000
	f := newFake()
	f.nGen = n
	f.flowsDone = make(chan struct{}, 1<<20)
	ts := newTestServer(&testing.T{}, f)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s, err := ts.client.Flows.ListFlows(b.Context(), &edgepb.ListFlowsRequest{})
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
			got += len(m.GetFlows())
		}
		if got != n {
			b.Fatalf("got %d flows", got)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/flow")
}
