package main

// edge capture: the packets of flows that met an anomaly, as pcapng.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/edgegw/edge/ctl/edgepb"
)

// capturePoll is how often edge capture reads what the daemon kept.
const capturePoll = 250 * time.Millisecond

func captureCmd() *cobra.Command {
	var ff flowFilterFlags
	var file string
	var count uint32
	var dur time.Duration
	var armOnly, disarm, readOnly bool
	c := &cobra.Command{
		Use:   "capture [key=value ...] -w FILE.pcapng",
		Short: "Capture the packets of flows that met an anomaly, with edge's verdict, as pcapng",
		Long: `Capture arms edge's triggered capture, waits, and writes what it kept to a
pcapng file that Wireshark and tshark read. While armed, edge records the
first 128 bytes of every packet it tracks in a small ring per worker; when
a flow meets an anomaly, the packet and that flow's recent packets are
kept:

  state_mismatch  conntrack dropped the packet for its flow's state
                  (no_state, invalid_state, stale_incarnation,
                  out_of_window, synack_bad_ack, rst_out_of_window,
                  data_on_closed, nsx_synack_on_closing)
  edge_icmp       edge answered the packet with an ICMP error
  edge_rst        edge answered the packet with a TCP reset (reject rule)
  server_rst      the server reset the connection within 1 s of its
                  SYN-ACK or of the client's data
  idle_expired    a packet of a connection edge had expired idle (its
                  idle time in the comment)

Each packet carries a comment with edge's verdict (passed, or dropped and
why, and what edge sent back), the anomaly and the flow, e.g.
"edge: dropped synack_bad_ack; anomaly state_mismatch #0.3; flow tcp
10.0.0.2:40000 > 203.0.113.2:80 gen 2 reply". Packets are as they arrived
(before translation), on interface "inside" or "outside".

The filter (address=, port=, proto=, zone=, as for flows) selects the
anomalies kept, by the packet's tuple or its flow's. The command stops after
--count anomalies, after --for, or on Ctrl-C, then disarms the capture it
armed and writes the file. When a capture is already armed, it reads what
that capture keeps instead (its filter applies). --arm arms and returns
(for --for, default 10 min), --read writes what is kept now, --disarm
disarms. Memory on the daemon is fixed (about 400 KB per worker); what does
not fit is counted as lost and reported.`,
		Example: `  edge capture -w anomalies.pcapng --for 30s
  edge capture address=10.2.0.2 port=8080 --count 5 -w backend.pcapng
  edge capture --arm --for 1h; edge capture --read -w night.pcapng
  tshark -r anomalies.pcapng -T fields -e frame.comment`,
		RunE: func(_ *cobra.Command, args []string) error {
			if err := ff.parseArgs(args); err != nil {
				return err
			}
			if ff.State != "" {
				return errors.New("a capture cannot filter by state (filters: address=, port=, proto=, zone=)")
			}
			if disarm {
				return call(func(ctx context.Context, cc *grpc.ClientConn) error {
					r, err := pb.NewCaptureServiceClient(cc).DisarmCapture(ctx, &pb.DisarmCaptureRequest{})
					if err != nil {
						return err
					}
					if !r.GetWasArmed() {
						fmt.Println("no capture was armed")
						return nil
					}
					fmt.Printf("capture %d disarmed: %s\n", r.GetStatus().GetSession(), captureTally(r.GetStatus()))
					return nil
				})
			}
			req := &pb.ArmCaptureRequest{Filter: ff.filter(), Count: count}
			if dur > 0 {
				req.Duration = durationpb.New(dur)
			}
			if armOnly {
				return call(func(ctx context.Context, cc *grpc.ClientConn) error {
					r, err := pb.NewCaptureServiceClient(cc).ArmCapture(ctx, req)
					if err != nil {
						return err
					}
					st := r.GetStatus()
					fmt.Printf("capture %d armed until %s\n", st.GetSession(), st.GetUntil().AsTime().Local().Format(time.DateTime))
					return nil
				})
			}
			if file == "" {
				return errors.New("-w FILE: where to write the pcapng file")
			}
			if readOnly && !ff.empty() {
				return errors.New("--read writes what the armed capture kept, under its own filter: give the filter when arming")
			}
			if dur == 0 {
				dur = time.Minute
			}
			var pkts []*pb.CapturedPacket
			var last *pb.CaptureStatus
			err := stream(context.Background(), func(ctx context.Context, cc *grpc.ClientConn) error {
				cs := pb.NewCaptureServiceClient(cc)
				armed := false
				if !readOnly {
					r, err := cs.ArmCapture(ctx, req)
					switch {
					case status.Code(err) == codes.FailedPrecondition:
						fmt.Fprintln(os.Stderr, "a capture is already armed: reading what it keeps (its filter applies)")
					case err != nil:
						return err
					default:
						armed = true
						fmt.Fprintf(os.Stderr, "capture %d armed for %v: waiting for anomalies (Ctrl-C to stop and write)\n", r.GetStatus().GetSession(), dur)
					}
				}
				defer func() {
					if armed {
						dctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
						defer cancel()
						if r, err := cs.DisarmCapture(dctx, &pb.DisarmCaptureRequest{}); err == nil {
							last = r.GetStatus()
						}
					}
				}()
				deadline := time.Now().Add(dur)
				anomalies := uint32(0)
				tick := time.NewTicker(capturePoll)
				defer tick.Stop()
				for {
					r, err := cs.ReadCapture(ctx, &pb.ReadCaptureRequest{})
					if err != nil {
						return err
					}
					last = r.GetStatus()
					for _, p := range r.GetPackets() {
						if p.GetAnomalous() {
							anomalies++
						}
					}
					pkts = append(pkts, r.GetPackets()...)
					got := len(r.GetPackets()) > 0
					switch {
					case count > 0 && anomalies >= count, time.Now().After(deadline):
						return nil
					case got:
						continue // more may be waiting
					case readOnly, !armed && !last.GetArmed():
						return nil // all read, or another's capture ended
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-tick.C:
					}
				}
			})
			if err != nil && len(pkts) == 0 {
				return err
			}
			if werr := writeCaptureFile(file, pkts); werr != nil {
				return werr
			}
			fmt.Fprintf(os.Stderr, "%d packets written to %s", len(pkts), file)
			if last != nil {
				fmt.Fprintf(os.Stderr, " (capture %d: %s)", last.GetSession(), captureTally(last))
			}
			fmt.Fprintln(os.Stderr)
			return err
		},
	}
	fs := c.Flags()
	fs.StringVarP(&file, "write", "w", "", "pcapng file to write")
	fs.Uint32Var(&count, "count", 0, "stop after this many anomalies (0: no limit)")
	fs.DurationVar(&dur, "for", 0, "capture for this long (default 1m; with --arm: the daemon's default, 10m; at most 24h)")
	fs.BoolVar(&armOnly, "arm", false, "arm the capture and return (read it later with --read)")
	fs.BoolVar(&readOnly, "read", false, "write what is kept now, without arming or waiting")
	fs.BoolVar(&disarm, "disarm", false, "disarm the armed capture (what it kept stays readable)")
	c.MarkFlagsMutuallyExclusive("arm", "read", "disarm")
	return c
}

// captureTally is a capture's counters in words.
func captureTally(s *pb.CaptureStatus) string {
	t := fmt.Sprintf("%d anomalies, %d packets kept", s.GetAnomalies(), s.GetPackets())
	if s.GetLost() > 0 {
		t += fmt.Sprintf(", %d lost (kept store full: read sooner)", s.GetLost())
	}
	if s.GetLimited() > 0 {
		t += fmt.Sprintf(", %d anomalies over the rate limit", s.GetLimited())
	}
	return t
}

// captureComment is a packet's pcapng comment: edge's verdict, the
// anomaly and the flow.
func captureComment(p *pb.CapturedPacket) string {
	var b strings.Builder
	b.WriteString("edge: ")
	if p.GetAction() == "dropped" {
		fmt.Fprintf(&b, "dropped %s", p.GetDropReason())
	} else {
		b.WriteString(dashIfEmpty(p.GetAction(), "passed"))
	}
	if k := p.GetIcmpSent(); k != "" {
		fmt.Fprintf(&b, ", sent icmp %s", k)
	}
	if p.GetRstSent() {
		b.WriteString(", sent rst")
	}
	if p.GetAnomalous() {
		fmt.Fprintf(&b, "; anomaly %s", p.GetAnomaly())
		if p.GetIdle() != nil {
			fmt.Fprintf(&b, " (idle %v)", p.GetIdle().AsDuration().Round(time.Second))
		}
	} else {
		fmt.Fprintf(&b, "; history of anomaly %s", p.GetAnomaly())
	}
	fmt.Fprintf(&b, " #%d.%d", p.GetWorker(), p.GetTrigger())
	if f := p.GetFlow(); f != nil {
		fmt.Fprintf(&b, "; flow %s %s > %s", f.GetProtocol(), hostPort(f.GetSrc(), f.GetSrcPort()), hostPort(f.GetDst(), f.GetDstPort()))
		if p.GetAnomalous() {
			fmt.Fprintf(&b, " gen %d", p.GetGeneration())
		}
		fmt.Fprintf(&b, " %s", p.GetDirection())
	} else {
		b.WriteString("; no flow")
	}
	return b.String()
}

// writeCaptureFile writes pkts to file as pcapng (writeCapture).
func writeCaptureFile(file string, pkts []*pb.CapturedPacket) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := writeCapture(f, pkts); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", file, err)
	}
	return f.Close()
}

// Interfaces of edge's pcapng files: a packet's ingress side.
var captureInterfaces = []string{"inside", "outside"}

// writeCapture writes pkts as pcapng: gopacket's NgWriter writes the
// section header and one Ethernet interface per side (inside, outside);
// each packet is an Enhanced Packet Block written here, because pcapgo's
// NgWriter (v1.1.19) writes no per-packet options, with its comment
// (opt_comment, captureComment) and its direction (epb_flags: inbound).
func writeCapture(w io.Writer, pkts []*pb.CapturedPacket) error {
	bw := bufio.NewWriter(w)
	opts := pcapgo.DefaultNgWriterOptions
	opts.SectionInfo.Application = "edge capture"
	ng, err := pcapgo.NewNgWriterInterface(bw, pcapgo.NgInterface{Name: captureInterfaces[0], LinkType: layers.LinkTypeEthernet,
		TimestampResolution: 9}, opts)
	if err != nil {
		return err
	}
	if _, err := ng.AddInterface(pcapgo.NgInterface{Name: captureInterfaces[1], LinkType: layers.LinkTypeEthernet, TimestampResolution: 9}); err != nil {
		return err
	}
	if err := ng.Flush(); err != nil { // the NgWriter's own buffer, into bw
		return err
	}
	for _, p := range pkts {
		intf := uint32(0)
		if p.GetIngress() == captureInterfaces[1] {
			intf = 1
		}
		length := max(p.GetLength(), uint32(len(p.GetData())))
		if _, err := bw.Write(enhancedPacketBlock(intf, p.GetTime().AsTime(), p.GetData(), length, captureComment(p))); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// pcapng block and option codes (draft-ietf-opsawg-pcapng).
const (
	pcapngEPB        = 6 // Enhanced Packet Block
	pcapngOptEnd     = 0 // opt_endofopt
	pcapngOptComment = 1 // opt_comment
	pcapngEPBFlags   = 2 // epb_flags
	pcapngInbound    = 1 // epb_flags direction bits 0-1: inbound
)

// enhancedPacketBlock returns an Enhanced Packet Block (little endian, as
// NgWriter writes the section) of data, captured from a frame of length
// bytes on interface intf at time at (nanoseconds: if_tsresol 9), with
// options opt_comment and epb_flags (inbound) and the end of options.
// Each field and option value is padded to 32 bits.
func enhancedPacketBlock(intf uint32, at time.Time, data []byte, length uint32, comment string) []byte {
	pad := func(n int) int { return (4 - n&3) & 3 }
	comment = strings.ToValidUTF8(comment, "?")
	if len(comment) > 0xffff {
		comment = comment[:0xffff]
	}
	total := 28 + len(data) + pad(len(data)) + // header, data
		4 + len(comment) + pad(len(comment)) + // opt_comment
		4 + 4 + // epb_flags
		4 + // opt_endofopt
		4 // trailing length
	b := make([]byte, 0, total)
	le := binary.LittleEndian
	ts := uint64(at.UnixNano())
	b = le.AppendUint32(b, pcapngEPB)
	b = le.AppendUint32(b, uint32(total))
	b = le.AppendUint32(b, intf)
	b = le.AppendUint32(b, uint32(ts>>32))
	b = le.AppendUint32(b, uint32(ts))
	b = le.AppendUint32(b, uint32(len(data)))
	b = le.AppendUint32(b, length)
	b = append(b, data...)
	b = append(b, make([]byte, pad(len(data)))...)
	b = le.AppendUint16(b, pcapngOptComment)
	b = le.AppendUint16(b, uint16(len(comment)))
	b = append(b, comment...)
	b = append(b, make([]byte, pad(len(comment)))...)
	b = le.AppendUint16(b, pcapngEPBFlags)
	b = le.AppendUint16(b, 4)
	b = le.AppendUint32(b, pcapngInbound)
	b = le.AppendUint16(b, pcapngOptEnd)
	b = le.AppendUint16(b, 0)
	b = le.AppendUint32(b, uint32(total))
	return b
}
