package main

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"

	pb "github.com/edgegw/edge/ctl/edgepb"
)

// edge stats prints the neighbour mirror's, the fragment tables' and the
// kernel routes' counters; zero ones only with --zero.
func TestPrintStatsNeighboursFragmentsRoutes(t *testing.T) {
	r := &pb.GetStatsResponse{
		Flows: 1, Capacity: 8, KernelRoutesRefused: 32,
		Neighbours: &pb.NeighbourStats{Entries: 21, Kept: 22, Unanswered: 23, KeptTotal: 24, KeptRecovered: 25,
			KeptExpired: 26, KeptFailed: 27, ResolutionsRequested: 28, ResolutionsRefused: 29, ResolutionsGivenUp: 30},
		Fragments: &pb.FragmentStats{FirstNoted: 41, Followed: 42, Held: 43, Released: 44, ExpiredHeld: 45,
			Completed: 46, Refused: 47, ExpiredState: 48, HeldNow: 49},
		Workers: []*pb.WorkerStats{{Id: 0, Fragments: &pb.FragmentStats{HeldNow: 7}}, {Id: 1}},
	}
	var out bytes.Buffer
	printStats(&out, r, false)
	got := out.String()
	for _, line := range []string{
		`^flows 1 of 8, kernel route refreshes refused 32$`,
		`^NEIGHBOURS`, `^  entries +21$`, `^  kept_entries +22$`, `^  resolutions_outstanding +23$`, `^  kept +24$`,
		`^  kept_recovered +25$`, `^  kept_expired +26$`, `^  kept_failed +27$`, `^  resolutions_requested +28$`,
		`^  resolutions_refused +29$`, `^  resolutions_given_up +30$`,
		`^FRAGMENTS`, `^  first_noted +41$`, `^  followed +42$`, `^  held +43$`, `^  released +44$`, `^  expired_held +45$`,
		`^  completed +46$`, `^  refused +47$`, `^  expired_state +48$`, `^  held_now +49$`,
		`^WORKER .* FRAGMENTS HELD$`, `^0( +0){8} +7$`, `^1( +0){9}$`,
	} {
		if !regexp.MustCompile("(?m)" + line).MatchString(got) {
			t.Errorf("no line %s in:\n%s", line, got)
		}
	}
	if strings.Contains(got, "kernel_entries_deleted") {
		t.Errorf("a zero counter printed without --zero:\n%s", got)
	}
	out.Reset()
	printStats(&out, r, true)
	if !regexp.MustCompile(`(?m)^  kernel_entries_deleted +0$`).MatchString(out.String()) {
		t.Errorf("--zero: no kernel_entries_deleted 0 in:\n%s", out.String())
	}

	// A daemon without these fields (older): no section, no error.
	out.Reset()
	printStats(&out, &pb.GetStatsResponse{Flows: 1, Capacity: 8}, false)
	if s := out.String(); strings.Contains(s, "NEIGHBOURS") || strings.Contains(s, "FRAGMENTS (") || strings.Contains(s, "refused") {
		t.Errorf("empty response:\n%s", s)
	}
}

// Drop reasons complete by name, the ones counted for floods, fragments,
// neighbours and header checks among them.
func TestDropReasonCompletion(t *testing.T) {
	rs := dropReasons()
	for _, name := range []string{"probe_limit", "snat_probe_limit", "fragment_no_room", "fragment_expired",
		"neighbour_resolve_limited", "bad_ip_checksum", "urpf"} {
		if !slices.Contains(rs, name) {
			t.Errorf("--reason completion lacks %s", name)
		}
	}
}
