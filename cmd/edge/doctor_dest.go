package main

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/edgegw/edge/ctl/edgepb"
	"github.com/edgegw/edge/diag"
)

// doctorMaxDests bounds the destinations doctor reads signals for.
const doctorMaxDests = 1000

// doctorDests reads the per-destination signals (edge destinations). A
// daemon without the service answers Unimplemented: no signals, no error
// (ok false), so doctor still works with events and counters.
func doctorDests(cc *grpc.ClientConn) (ds []diag.DestSignals, ok bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	r, err := pb.NewDestinationServiceClient(cc).ListDestinations(ctx, &pb.ListDestinationsRequest{Max: doctorMaxDests})
	if status.Code(err) == codes.Unimplemented {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, clientErr(err)
	}
	return destsFromPB(r), true, nil
}

func destsFromPB(r *pb.ListDestinationsResponse) []diag.DestSignals {
	out := make([]diag.DestSignals, 0, len(r.GetDestinations()))
	for _, d := range r.GetDestinations() {
		proto, _ := diag.ProtoByName(d.GetProtocol())
		s := diag.DestSignals{Dst: addrPort(d.GetAddress(), d.GetPort()), Proto: proto, Counters: d.GetCounters(),
			Hists: make(map[string][]uint64, len(d.GetHistograms()))}
		for _, h := range d.GetHistograms() {
			s.Hists[h.GetName()] = h.GetBuckets()
		}
		out = append(out, s)
	}
	return out
}

// destsWindow takes the per-destination signals at the start of doctor's
// window; its end method adds what was counted since to a.
type destsWindow struct {
	before []diag.DestSignals
	ok     bool
}

func startDests(cc *grpc.ClientConn) (*destsWindow, error) {
	ds, ok, err := doctorDests(cc)
	return &destsWindow{before: ds, ok: ok}, err
}

func (w *destsWindow) end(cc *grpc.ClientConn, a *diag.Analyzer) error {
	if !w.ok {
		return nil
	}
	after, ok, err := doctorDests(cc)
	if err != nil || !ok {
		return err
	}
	a.AddDestinations(w.before, after)
	return nil
}
