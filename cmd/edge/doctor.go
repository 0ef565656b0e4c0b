package main

// edge doctor: the diag package's findings over a live window of the
// daemon's events and counters, or over recorded `edge events -o json`
// lines.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/edgegw/edge/conntrack"
	pb "github.com/edgegw/edge/ctl/edgepb"
	"github.com/edgegw/edge/diag"
	"github.com/edgegw/edge/drop"
)

// doctor's bounds on what it asks the daemon for after the window.
const (
	doctorMaxSynSent  = 10000 // live SYN_SENT flows listed
	doctorExplained   = 10    // findings whose examples are explained
	doctorHistory     = 8     // incarnations per example
	doctorMaxLineSize = 1 << 20
)

func doctorCmd() *cobra.Command {
	var window time.Duration
	var eventsFile, statsBefore, statsAfter string
	var opt diag.Options
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Explain connection failures: causes per destination, with evidence and the fix",
		Long: `doctor watches the data plane for a window (--window: its events, and its
counters at both ends) and names what makes connections fail, per
destination (the server as the inside sees it), ranked by impact: the
pattern, the evidence (counts, durations, example tuples with their events
and incarnations) and the fix in one sentence.

Patterns: stray_fin_port_reuse (a delayed FIN of an old connection against a
new one on the same port; prevented by edge unless nsx_compat is on; with
nsx_shadow, the connections that would have failed behind an NSX-style
firewall), idle_expiry (a flow's idle timer ended it while it was still in
use; silently, or with a reset to both ends under idle_expiry: reset),
keepalive_race (a backend reset a kept-alive connection its client reused),
syn_unanswered (SYNs without SYN-ACK: a full listen backlog or a server
down), snat_exhaustion and table_full (refused, or near the limit).

--events analyses a recording of "edge events -o json" instead (with
--stats-before and --stats-after, recordings of "edge stats --snat -o json").
On clean traffic it prints no finding. -o json prints one object per
finding.`,
		Example: `  edge doctor --window 60s
  edge doctor -o json | jq 'select(.severity == "failing")'
  edge events -o json --for 5m > events.jsonl; edge doctor --events events.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cf.output != "table" && cf.output != "json" {
				return fmt.Errorf("--output: %q is not table or json", cf.output)
			}
			var r diag.Report
			var err error
			if eventsFile != "" {
				r, err = doctorOffline(opt, eventsFile, statsBefore, statsAfter)
			} else {
				if statsBefore != "" || statsAfter != "" {
					return errors.New("--stats-before and --stats-after go with --events")
				}
				if cf.output == "table" {
					fmt.Fprintf(cmd.ErrOrStderr(), "watching edge for %s (interrupt to stop early)\n", window)
				}
				r, err = doctorLive(opt, window)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if cf.output == "json" {
				for _, n := range r.Notes {
					fmt.Fprintf(cmd.ErrOrStderr(), "note: %s\n", n)
				}
				return diag.WriteJSON(out, &r)
			}
			return diag.WriteText(out, &r)
		},
	}
	f := c.Flags()
	f.DurationVar(&window, "window", 30*time.Second, "how long to watch the live daemon (interrupt to stop early)")
	f.StringVar(&eventsFile, "events", "", `analyse this recording of "edge events -o json" (- for stdin) instead of the daemon`)
	f.StringVar(&statsBefore, "stats-before", "", `with --events: "edge stats --snat -o json" at the recording's start`)
	f.StringVar(&statsAfter, "stats-after", "", `with --events: "edge stats --snat -o json" at its end`)
	f.IntVar(&opt.MaxTuples, "max-tuples", 0, "tuples followed at once (0: 65536)")
	f.IntVar(&opt.MaxDestinations, "max-destinations", 0, "destinations with evidence kept, busiest first (0: 1024)")
	f.DurationVar(&opt.ReuseWindow, "reuse-window", 0, "a packet this soon after a reset closed its connection is a keep-alive race (0: 10s)")
	return c
}

// doctorOffline analyses recorded event lines and counters.
func doctorOffline(opt diag.Options, eventsFile, statsBefore, statsAfter string) (diag.Report, error) {
	var in io.Reader = os.Stdin
	if eventsFile != "-" {
		f, err := os.Open(eventsFile)
		if err != nil {
			return diag.Report{}, err
		}
		defer f.Close()
		in = f
	}
	a := diag.New(opt)
	if err := readEvents(in, a.Add); err != nil {
		return diag.Report{}, fmt.Errorf("%s: %w", eventsFile, err)
	}
	var before, after *diag.Counters
	for _, s := range []struct {
		file string
		to   **diag.Counters
	}{{statsBefore, &before}, {statsAfter, &after}} {
		if s.file == "" {
			continue
		}
		b, err := os.ReadFile(s.file)
		if err != nil {
			return diag.Report{}, err
		}
		var r pb.GetStatsResponse
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &r); err != nil {
			return diag.Report{}, fmt.Errorf("%s: not the output of edge stats -o json: %v", s.file, err)
		}
		*s.to = countersFromPB(&r, time.Time{})
	}
	return a.Report(before, after), nil
}

// readEvents parses the JSON lines `edge events -o json` prints (protojson
// of edgepb.Event) and passes each event to add.
func readEvents(in io.Reader, add func(*diag.Event)) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), doctorMaxLineSize)
	un := protojson.UnmarshalOptions{DiscardUnknown: true}
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var e pb.Event
		if err := un.Unmarshal(b, &e); err != nil {
			return fmt.Errorf("line %d: not an event of edge events -o json: %v", line, err)
		}
		ev := eventFromPB(&e)
		add(&ev)
	}
	return sc.Err()
}

// doctorLive watches the daemon for window.
func doctorLive(opt diag.Options, window time.Duration) (diag.Report, error) {
	if window <= 0 {
		return diag.Report{}, errors.New("--window must be positive")
	}
	cc, err := dial(context.Background())
	if err != nil {
		return diag.Report{}, err
	}
	defer cc.Close()
	a := diag.New(opt)
	before, err := doctorStats(cc)
	if err != nil {
		return diag.Report{}, err
	}
	dests, err := startDests(cc) // per-destination signals (doctor_dest.go)
	if err != nil {
		return diag.Report{}, err
	}
	if err := watch(cc, window, a); err != nil {
		return diag.Report{}, err
	}
	after, err := doctorStats(cc)
	if err != nil {
		return diag.Report{}, err
	}
	if err := dests.end(cc, a); err != nil {
		return diag.Report{}, err
	}
	flows, at, err := synSentFlows(cc)
	if err != nil {
		return diag.Report{}, err
	}
	a.AddFlows(flows, at)
	r := a.Report(before, after)
	if err := r.AttachHistory(func(t diag.Tuple) ([]diag.Flow, error) { return explainTuple(cc, t) }, doctorExplained); err != nil {
		r.Notes = append(r.Notes, "examples without history: "+clientErr(err).Error())
	}
	return r, nil
}

// clientErr turns a gRPC status into its message, as the other commands do.
func clientErr(err error) error {
	if s, ok := status.FromError(err); ok && err != nil {
		if s.Code() == codes.DeadlineExceeded {
			return fmt.Errorf("no answer from edge within %s (--timeout)", cf.timeout)
		}
		return errors.New(s.Message())
	}
	return err
}

func doctorStats(cc *grpc.ClientConn) (*diag.Counters, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	r, err := pb.NewStatsServiceClient(cc).GetStats(ctx, &pb.GetStatsRequest{SnatDestinations: true})
	if err != nil {
		return nil, clientErr(err)
	}
	return countersFromPB(r, time.Now()), nil
}

// watch feeds the daemon's events to a for window, or until interrupted.
func watch(cc *grpc.ClientConn, window time.Duration, a *diag.Analyzer) error {
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(sig, window)
	defer cancel()
	s, err := pb.NewEventServiceClient(cc).Subscribe(ctx, &pb.SubscribeRequest{})
	if err != nil {
		return clientErr(err)
	}
	if _, err := s.Header(); err != nil {
		return clientErr(err)
	}
	for {
		r, err := s.Recv()
		if err != nil {
			// The window ended, or an interrupt ended it early. The stream
			// may report the window's deadline (DEADLINE_EXCEEDED, the
			// server's side of it) before ctx itself says so.
			if ctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded {
				return nil
			}
			return clientErr(err)
		}
		a.LostEvents(r.GetLost())
		for _, e := range r.GetEvents() {
			ev := eventFromPB(e)
			a.Add(&ev)
		}
	}
}

// synSentFlows lists the live flows waiting for their SYN-ACK.
func synSentFlows(cc *grpc.ClientConn) ([]diag.Flow, time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	s, err := pb.NewFlowServiceClient(cc).ListFlows(ctx, &pb.ListFlowsRequest{
		Filter: &pb.FlowFilter{State: "syn_sent"}, Limit: doctorMaxSynSent})
	if err != nil {
		return nil, time.Time{}, clientErr(err)
	}
	var out []diag.Flow
	for {
		r, err := s.Recv()
		if err == io.EOF {
			return out, time.Now(), nil
		}
		if err != nil {
			return nil, time.Time{}, clientErr(err)
		}
		for _, f := range r.GetFlows() {
			out = append(out, flowFromPB(f))
		}
	}
}

// explainTuple returns tuple t's incarnations: the live one first, then
// the ended ones, newest first.
func explainTuple(cc *grpc.ClientConn, t diag.Tuple) ([]diag.Flow, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	r, err := pb.NewFlowServiceClient(cc).ExplainFlow(ctx, &pb.ExplainFlowRequest{Tuple: &pb.Tuple{
		Protocol: diag.ProtoName(t.Proto), Src: t.Src.Addr().String(), SrcPort: uint32(t.Src.Port()),
		Dst: t.Dst.Addr().String(), DstPort: uint32(t.Dst.Port()), Zone: uint32(t.Zone)}, MaxHistory: doctorHistory})
	if err != nil {
		return nil, err
	}
	var out []diag.Flow
	if c := r.GetCurrent(); c != nil {
		out = append(out, flowFromPB(c))
	}
	for _, h := range r.GetHistory() {
		out = append(out, flowFromPB(h))
	}
	return out, nil
}

// ---- conversions from the API's messages to diag's inputs

func addrPort(addr string, port uint32) netip.AddrPort {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port))
}

func tupleFromPB(t *pb.Tuple) diag.Tuple {
	if t == nil {
		return diag.Tuple{}
	}
	p, _ := diag.ProtoByName(strings.ToLower(t.GetProtocol()))
	return diag.Tuple{Proto: p, Src: addrPort(t.GetSrc(), t.GetSrcPort()), Dst: addrPort(t.GetDst(), t.GetDstPort()),
		Zone: uint8(t.GetZone())}
}

func stateFromPB(s string) conntrack.State {
	st, _ := conntrack.StateByName(strings.ToUpper(s))
	return st
}

// eventFromPB converts one event as the API sends it (and `edge events -o
// json` prints it). Names it does not know become zero values, so a newer
// daemon's events still parse.
func eventFromPB(e *pb.Event) diag.Event {
	k, _ := diag.KindByName(e.GetKind())
	r, _ := drop.ByName(e.GetReason())
	ev := diag.Event{Kind: k, Tuple: tupleFromPB(e.GetTuple()), Gen: uint16(e.GetGeneration()),
		State: stateFromPB(e.GetState()), Reason: r, ICMP: e.GetIcmp(), Flags: uint8(e.GetTcpFlags()),
		Worker: int(e.GetWorker())}
	if e.GetTime() != nil {
		ev.Time = e.GetTime().AsTime()
	}
	if e.GetNatAddress() != "" {
		ev.NAT = addrPort(e.GetNatAddress(), e.GetNatPort())
	}
	switch e.GetZone() {
	case "inside":
		ev.Zone = diag.ZoneInside
	case "outside":
		ev.Zone = diag.ZoneOutside
	}
	switch e.GetDirection() {
	case "original":
		ev.Dir = diag.DirOriginal
	case "reply":
		ev.Dir = diag.DirReply
	}
	ev.Idle = e.GetIdle().AsDuration()
	ev.Reset = e.GetIdleExpiry() == "reset"
	return ev
}

func countersFromPB(r *pb.GetStatsResponse, at time.Time) *diag.Counters {
	c := &diag.Counters{Time: at, Drops: r.GetDrops(), Conntrack: r.GetConntrack(), SNAT: r.GetSnat(),
		Flows: r.GetFlows(), Capacity: r.GetCapacity(), EventsLost: r.GetEventsLost()}
	for _, d := range r.GetSnatDestinations() {
		a, _ := netip.ParseAddr(d.GetAddress())
		p, _ := diag.ProtoByName(d.GetProtocol())
		c.Destinations = append(c.Destinations, diag.DestUsage{Addr: a.Unmap(), Dst: addrPort(d.GetDestination(), d.GetPort()),
			Proto: p, InUse: int(d.GetInUse()), Quarantined: int(d.GetQuarantined()), Free: int(d.GetFree()),
			Range: int(d.GetRange()), Exhausted: d.GetExhausted(), Overrides: d.GetOverrides()})
	}
	return c
}

func flowFromPB(f *pb.Flow) diag.Flow {
	out := diag.Flow{Orig: tupleFromPB(f.GetOriginal()), State: stateFromPB(f.GetState()), Gen: uint16(f.GetGeneration()),
		Creator: f.GetCreator(), PacketsOrig: f.GetPacketsOriginal(), PacketsReply: f.GetPacketsReply(),
		CloseReason: f.GetCloseReason()}
	if f.GetNatAddress() != "" {
		out.NAT = addrPort(f.GetNatAddress(), f.GetNatPort())
	}
	if f.GetOpened() != nil {
		out.Opened = f.GetOpened().AsTime()
	}
	if f.GetClosed() != nil {
		out.Closed = f.GetClosed().AsTime()
	}
	return out
}
