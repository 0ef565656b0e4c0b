package main

import (
	"bytes"
	"strings"
	"testing"

	pb "github.com/edgegw/edge/ctl/edgepb"
)

func TestHistMedian(t *testing.T) {
	cases := []struct {
		b    []uint64
		want string
	}{
		{nil, ""},
		{[]uint64{0, 0}, ""},
		{[]uint64{3}, "(<1ms)"},
		{[]uint64{0, 0, 1}, "(~2ms)"},
		{append(make([]uint64, 13), 5), "(~4.096s)"},
		{[]uint64{1, 0, 0, 0, 1, 1}, "(~8ms)"},
	}
	for _, c := range cases {
		if got := histMedian(c.b); got != c.want {
			t.Errorf("histMedian(%v) = %q, want %q", c.b, got, c.want)
		}
	}
}

func TestPrintDestinations(t *testing.T) {
	r := &pb.ListDestinationsResponse{Total: 3, Capacity: 512, Replaced: 2, Destinations: []*pb.Destination{{
		Address: "10.2.0.2", Port: 8080, Protocol: "tcp",
		Counters: map[string]uint64{"flows": 40, "handshakes": 40, "server_closes": 9, "keepalive_races": 7, "resets_server": 7,
			"syn_retransmits": 5, "syn_retried": 4, "nsx_would_fail": 3},
		Histograms: []*pb.Histogram{{Name: "server_idle_close", Buckets: append(make([]uint64, 13), 9)}, {Name: "race_delay", Buckets: []uint64{0, 0, 0, 0, 7}}},
	}}}
	var b bytes.Buffer
	printDestinations(&b, r)
	out := b.String()
	for _, want := range []string{"10.2.0.2:8080", "9 (~4.096s)", "7 (~8ms)", "0/7/0", "5 (4 conns)", "NSX-FAIL", "(1 of 3 destinations", "2 destinations took the place"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if row := strings.Split(out, "\n")[1]; !strings.HasSuffix(strings.TrimSpace(row), " 3") {
		t.Errorf("the NSX-FAIL column (last) is not 3: %q", row)
	}
}

// doctor reads `edge destinations` into diag's signals: names, counts and
// buckets carried over, the protocol by name.
func TestDestsFromPB(t *testing.T) {
	r := &pb.ListDestinationsResponse{Destinations: []*pb.Destination{{
		Address: "2001:db8::1", Port: 443, Protocol: "tcp",
		Counters:   map[string]uint64{"keepalive_races": 3},
		Histograms: []*pb.Histogram{{Name: "race_delay", Buckets: []uint64{0, 1, 2}}},
	}}}
	ds := destsFromPB(r)
	if len(ds) != 1 {
		t.Fatalf("%d destinations", len(ds))
	}
	d := ds[0]
	if d.Dst.String() != "[2001:db8::1]:443" || d.Proto != 6 || d.Counters["keepalive_races"] != 3 ||
		len(d.Hists["race_delay"]) != 3 || d.Hists["race_delay"][2] != 2 {
		t.Fatalf("%+v", d)
	}
}
