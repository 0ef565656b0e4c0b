package main

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/edgegw/edge/ctl/edgepb"
)

// One line per packet path, as the daemon describes it.
func TestFormatTrace(t *testing.T) {
	at := time.Date(2026, 1, 2, 12, 0, 1, 123456000, time.Local)
	tuple := func(proto, src string, sport uint32, dst string, dport uint32) *pb.Tuple {
		return &pb.Tuple{Protocol: proto, Src: src, SrcPort: sport, Dst: dst, DstPort: dport}
	}
	orig := tuple("tcp", "10.0.0.2", 40000, "203.0.113.2", 80)
	cases := []struct {
		p    *pb.TracePacket
		want string
	}{
		{&pb.TracePacket{Time: timestamppb.New(at), Ingress: "inside", Tuple: orig, TcpFlags: 0x02, Tracked: true,
			Verdict: "open", Direction: "original", StateAfter: "syn_sent", Flow: orig, Rule: "outbound", RuleAction: "allow",
			NatAddress: "203.0.113.1", NatPort: 40000, Action: "forwarded", Egress: "outside", NextHop: "203.0.113.2"},
			"12:00:01.123456 w0 in tcp 10.0.0.2:40000 -> 203.0.113.2:80 S new(rule outbound) -> syn_sent snat 203.0.113.1:40000 route out via 203.0.113.2 -> forwarded"},
		{&pb.TracePacket{Time: timestamppb.New(at), Worker: 1, Ingress: "outside", Tuple: tuple("tcp", "203.0.113.2", 80, "203.0.113.1", 40000),
			TcpFlags: 0x12, Tracked: true, StateBefore: "syn_sent", Verdict: "forward", Direction: "reply", StateAfter: "syn_recv",
			Flow: orig, NatAddress: "203.0.113.1", NatPort: 40000, Action: "forwarded", Egress: "inside", NextHop: "10.0.0.2"},
			"12:00:01.123456 w1 out tcp 203.0.113.2:80 -> 203.0.113.1:40000 SA reply syn_sent -> syn_recv unsnat 10.0.0.2:40000 route in via 10.0.0.2 -> forwarded"},
		{&pb.TracePacket{Time: timestamppb.New(at), Ingress: "outside", Tuple: tuple("tcp", "203.0.113.2", 80, "203.0.113.1", 22),
			TcpFlags: 0x02, Tracked: true, Verdict: "open", Direction: "original", Rule: "no-ssh", RuleAction: "reject",
			Action: "dropped", DropReason: "firewall_reject", RstSent: true},
			"12:00:01.123456 w0 out tcp 203.0.113.2:80 -> 203.0.113.1:22 S new(rule no-ssh: reject) -> dropped(firewall_reject), sent rst"},
		{&pb.TracePacket{Time: timestamppb.New(at), Ingress: "outside", Tuple: tuple("udp", "203.0.113.2", 3479, "203.0.113.1", 40000),
			Tracked: true, Verdict: "open", Direction: "original", TowardMapping: true, Action: "dropped", DropReason: "snat_filtered"},
			"12:00:01.123456 w0 out udp 203.0.113.2:3479 -> 203.0.113.1:40000 toward mapping new -> dropped(snat_filtered)"},
		{&pb.TracePacket{Time: timestamppb.New(at), Ingress: "inside", Parse: "truncated", Action: "dropped", DropReason: "truncated"},
			"12:00:01.123456 w0 in (not parsed) parse truncated -> dropped(truncated)"},
		{&pb.TracePacket{Time: timestamppb.New(at), Ingress: "inside", Tuple: tuple("udp", "10.0.0.2", 5000, "203.0.113.1", 6000),
			Action: "handed_off", HandoffWorker: 1},
			"12:00:01.123456 w0 in udp 10.0.0.2:5000 -> 203.0.113.1:6000 -> handed off to w1"},
	}
	for _, c := range cases {
		if got := formatTrace(c.p); got != c.want {
			t.Errorf("\n got %s\nwant %s", got, c.want)
		}
	}
}
