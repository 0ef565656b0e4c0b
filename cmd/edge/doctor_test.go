package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl"
	pb "github.com/edgegw/edge/ctl/edgepb"
	"github.com/edgegw/edge/diag"
	"github.com/edgegw/edge/drop"
)

// doctor reads exactly what `edge events -o json` prints: the lines
// printJSON writes for events are parsed back field by field.
func TestDoctorReadsEventLines(t *testing.T) {
	when := time.Date(2026, 12, 6, 8, 0, 1, 234567000, time.UTC)
	in := []*pb.Event{
		{Time: timestamppb.New(when), Kind: "dropped", Tuple: &pb.Tuple{Protocol: "tcp", Src: "10.0.0.2", SrcPort: 40000,
			Dst: "10.2.0.2", DstPort: 8080, Zone: 3}, NatAddress: "192.0.2.1", NatPort: 1025, Generation: 2, State: "close",
			Reason: "data_on_closed", TcpFlags: 0x18, Worker: 1, Zone: "inside", Direction: "reply"},
		{Time: timestamppb.New(when), Kind: "icmp_sent", Tuple: &pb.Tuple{Protocol: "tcp", Src: "2001:db8::2", SrcPort: 80,
			Dst: "2001:db8:1::1", DstPort: 1025}, Reason: "nsx_synack_on_closing", Icmp: "port_unreachable", Zone: "outside"},
		{Kind: "a_kind_of_the_future", Reason: "a_reason_of_the_future"},
	}
	var lines bytes.Buffer
	for _, e := range in {
		b, err := jsonOut.Marshal(e) // what printJSON prints
		if err != nil {
			t.Fatal(err)
		}
		lines.Write(b)
		lines.WriteByte('\n')
	}
	var got []diag.Event
	if err := readEvents(&lines, func(e *diag.Event) { got = append(got, *e) }); err != nil {
		t.Fatal(err)
	}
	want := []diag.Event{
		{Time: when, Kind: diag.KindDropped, Tuple: diag.Tuple{Proto: 6, Src: netip.MustParseAddrPort("10.0.0.2:40000"),
			Dst: netip.MustParseAddrPort("10.2.0.2:8080"), Zone: 3}, NAT: netip.MustParseAddrPort("192.0.2.1:1025"), Gen: 2,
			State: conntrack.TCPClose, Reason: drop.DataOnClosed, Flags: 0x18, Worker: 1, Zone: diag.ZoneInside, Dir: diag.DirReply},
		{Time: when, Kind: diag.KindICMPSent, Tuple: diag.Tuple{Proto: 6, Src: netip.MustParseAddrPort("[2001:db8::2]:80"),
			Dst: netip.MustParseAddrPort("[2001:db8:1::1]:1025")}, Reason: drop.NSXSynAckOnClosing, ICMP: "port_unreachable",
			Zone: diag.ZoneOutside},
		{Kind: diag.KindOther},
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].Time.Equal(want[i].Time) {
			t.Errorf("event %d time %v, want %v", i, got[i].Time, want[i].Time)
		}
		got[i].Time = want[i].Time
		if got[i] != want[i] {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if err := readEvents(strings.NewReader("12:00:01.000000 opened tcp ...\n"), func(*diag.Event) {}); err == nil ||
		!strings.Contains(err.Error(), "line 1") {
		t.Errorf("table output accepted: %v", err)
	}
}

// Every event kind the control plane reports has its name in diag, the
// drop reasons and states parse by their API names.
func TestDoctorKnowsEventKinds(t *testing.T) {
	for k := ctl.EventKind(1); k < ctl.NumEventKinds; k++ {
		if dk, ok := diag.KindByName(k.String()); !ok || dk.String() != k.String() {
			t.Errorf("event kind %s unknown to diag", k)
		}
	}
	for s := conntrack.State(1); s < conntrack.NumStates; s++ {
		if got := stateFromPB(strings.ToLower(s.String())); got != s {
			t.Errorf("state %s parsed as %s", s, got)
		}
	}
}

func runDoctor(t *testing.T, output string, args ...string) string {
	t.Helper()
	old := cf.output
	cf.output = output
	defer func() { cf.output = old }()
	c := doctorCmd()
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&out)
	c.SetArgs(args)
	if err := c.Execute(); err != nil {
		t.Fatalf("edge doctor %s: %v", strings.Join(args, " "), err)
	}
	return out.String()
}

// edge doctor --events over a recording names the keep-alive race toward
// the backend, and finds nothing in clean traffic.
func TestDoctorOffline(t *testing.T) {
	out := runDoctor(t, "json", "--events", "testdata/doctor-keepalive.jsonl")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one finding, got:\n%s", out)
	}
	var f struct {
		Pattern, Destination, Fix string
		Count                     int
		FirstSeen                 time.Time `json:"first_seen"`
		LastSeen                  time.Time `json:"last_seen"`
		Examples                  []struct{ Tuple string }
	}
	if err := json.Unmarshal([]byte(lines[0]), &f); err != nil {
		t.Fatal(err)
	}
	if f.Pattern != "keepalive_race" || f.Destination != "10.2.0.2:8080" || f.Count != 1 || f.Fix == "" ||
		len(f.Examples) != 1 || f.Examples[0].Tuple != "tcp 10.0.0.2:40000 -> 10.2.0.2:8080" ||
		!f.FirstSeen.Equal(time.Date(2026, 12, 6, 8, 0, 5, 310000000, time.UTC)) {
		t.Errorf("finding %+v", f)
	}

	text := runDoctor(t, "table", "--events", "testdata/doctor-keepalive.jsonl")
	for _, s := range []string{"1. keepalive_race  tcp 10.2.0.2:8080  failing: 1 connection", "fix: backend 10.2.0.2:8080",
		"example tcp 10.0.0.2:40000 -> 10.2.0.2:8080 snat 192.0.2.1:40000", "dropped state close reason data_on_closed flags PA"} {
		if !strings.Contains(text, s) {
			t.Errorf("no %q in:\n%s", s, text)
		}
	}

	if out := runDoctor(t, "json", "--events", "testdata/doctor-clean.jsonl"); out != "" {
		t.Errorf("clean traffic: %s", out)
	}
	if out := runDoctor(t, "table", "--events", "testdata/doctor-clean.jsonl"); !strings.Contains(out, "no finding") {
		t.Errorf("clean traffic: %s", out)
	}
}

// --stats-before and --stats-after read `edge stats --snat -o json`: the
// table's and a SNAT destination's fill become warnings, refusals counted
// between them failures.
func TestDoctorOfflineStats(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, r *pb.GetStatsResponse) string {
		b, err := jsonOut.Marshal(r) // what edge stats -o json prints
		if err != nil {
			t.Fatal(err)
		}
		p := dir + "/" + name
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := write("before.json", &pb.GetStatsResponse{Flows: 10, Capacity: 100, Drops: map[string]uint64{"snat_exhausted": 2},
		SnatDestinations: []*pb.SNATDestination{{Address: "192.0.2.1", Destination: "10.2.0.2", Port: 8080, Protocol: "tcp",
			InUse: 10, Range: 100, Exhausted: 2}}})
	after := write("after.json", &pb.GetStatsResponse{Flows: 95, Capacity: 100, Drops: map[string]uint64{"snat_exhausted": 7},
		SnatDestinations: []*pb.SNATDestination{
			{Address: "192.0.2.1", Destination: "10.2.0.2", Port: 8080, Protocol: "tcp", InUse: 100, Range: 100, Exhausted: 7},
			{Address: "192.0.2.1", Destination: "10.2.0.5", Port: 443, Protocol: "tcp", InUse: 81, Range: 100}}})
	out := runDoctor(t, "json", "--events", "testdata/doctor-clean.jsonl", "--stats-before", before, "--stats-after", after)
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var f struct {
			Pattern, Severity, Destination string
			Count                          int
		}
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		got = append(got, fmt.Sprintf("%s %s %s %d", f.Pattern, f.Severity, f.Destination, f.Count))
	}
	want := []string{"snat_exhaustion failing 10.2.0.2:8080 5", "table_full warning * 95", "snat_exhaustion warning 10.2.0.5:443 81"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
