// Command edgegen is edge's packet generator and sink for the pps lab
// (bench/pps.sh). It is a thin front end to package bench/gen.
//
//	edgegen tx   --dev IF --dst-mac MAC [--rate PPS] [--size 64|imix|N,...] [--flows N | --new-flows | --syn [--syn-dst-port P] [--syn-src-prefix PFX]]
//	             [--duration D] [--count N] [--src IP] [--dst IP] [--engine auto|afxdp|afpacket]
//	             [--queues N] [--seed S] [--flow-offset K] [--summary FILE]
//	edgegen sink --dev IF [--engine auto|afxdp|afpacket] [--queues N] [--duration D]
//	             [--expect N | --expect-file GEN_SUMMARY] [--out FILE] [--ready FILE]
//
// tx prints a JSON summary (sent packets, bytes, pps, CPU) on exit and writes
// it to --summary. sink prints its JSON summary (received, duplicates,
// reorder, loss against the generator's count, latency p50/p99 from the
// CLOCK_MONOTONIC stamp in each packet) on SIGINT/SIGTERM or after
// --duration; on SIGUSR1 it writes the summary of the interval since the
// last one to --out and starts a new interval (so one sink serves many
// trials).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/bench/gen"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "tx":
		err = tx(os.Args[2:])
	case "sink":
		err = sink(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgegen:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: edgegen tx|sink [flags]   (edgegen tx -h, edgegen sink -h)")
	os.Exit(2)
}

func pin(cpu int) error {
	if cpu < 0 {
		return nil
	}
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "" || path == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func tx(args []string) error {
	fs := flag.NewFlagSet("tx", flag.ExitOnError)
	dev := fs.String("dev", "", "interface to send on (required)")
	engine := fs.String("engine", "auto", "auto (AF_XDP, else AF_PACKET) | afxdp | afpacket")
	rate := fs.Float64("rate", 0, "packets per second (0: as fast as possible)")
	size := fs.String("size", "64", `frame size 64..1518 (FCS included), "imix" (7:4:1 of 64/576/1500; IPv6: 82/576/1500) or a list "64,1500"`)
	flows := fs.Int("flows", 1, "UDP flows (pseudorandom ports per RFC 4814 4.5), visited in turn")
	newFlows := fs.Bool("new-flows", false, "every packet a new 5-tuple (connection setup rate)")
	syn := fs.Bool("syn", false, "SYN flood: every packet a TCP SYN (64-byte frame; IPv6 78) of a new flow, pseudorandom source port")
	synDst := fs.Uint("syn-dst-port", 0, "with --syn: the destination port (0: pseudorandom, a new port pair per packet)")
	synSrc := fs.String("syn-src-prefix", "", "with --syn: each SYN from a pseudorandom address of this prefix (not its first or last; IPv4 /8-/30, IPv6 /96-/126), e.g. 10.0.128.0/17, instead of --src")
	seed := fs.Uint64("seed", 1, "port permutation seed")
	offset := fs.Uint64("flow-offset", 0, "first flow index")
	dur := fs.Duration("duration", 0, "how long to send (0: until --count or SIGINT)")
	count := fs.Uint64("count", 0, "packets to send (0: until --duration or SIGINT)")
	src := fs.String("src", "10.0.0.2", "source address (IPv4, or IPv6 with an IPv6 --dst: UDP frames of at least 82 bytes)")
	dst := fs.String("dst", "203.0.113.2", "destination address (IPv4 or IPv6)")
	srcMAC := fs.String("src-mac", "", "source MAC (default: the interface's)")
	dstMAC := fs.String("dst-mac", "", "destination MAC (required)")
	queues := fs.Int("queues", 1, "AF_XDP transmit queues (flows spread over them by hash, like RSS)")
	batch := fs.Int("batch", 64, "frames per kernel call")
	burst := fs.Int("burst", 1, "with --rate: send packets in bursts of this many once all are due (sleeps instead of spinning at low rates)")
	summary := fs.String("summary", "", "also write the JSON summary to this file")
	cpu := fs.Int("cpu", -1, "pin the process to this CPU")
	fs.Parse(args)
	if *dev == "" || *dstMAC == "" {
		return fmt.Errorf("tx: --dev and --dst-mac are required")
	}
	if *dur == 0 && *count == 0 {
		return fmt.Errorf("tx: give --duration or --count")
	}
	if err := pin(*cpu); err != nil {
		return err
	}
	if *synDst > 65535 {
		return fmt.Errorf("tx: --syn-dst-port %d out of range", *synDst)
	}
	fc := gen.FrameConfig{Flows: *flows, NewFlows: *newFlows, Seed: *seed,
		FlowOffset: *offset, Queues: *queues, SYN: *syn, SYNDstPort: uint16(*synDst)}
	var err error
	if fc.Src, err = netip.ParseAddr(*src); err != nil {
		return err
	}
	if fc.Dst, err = netip.ParseAddr(*dst); err != nil {
		return err
	}
	if fc.Sizes, err = gen.ParseSizes(*size, fc.Dst.Is6()); err != nil {
		return err
	}
	if *synSrc != "" {
		if !*syn {
			return fmt.Errorf("tx: --syn-src-prefix needs --syn")
		}
		if fc.SYNSrcPrefix, err = netip.ParsePrefix(*synSrc); err != nil {
			return err
		}
	}
	m, err := net.ParseMAC(*dstMAC)
	if err != nil {
		return err
	}
	copy(fc.DstMAC[:], m)
	if *srcMAC != "" {
		m, err := net.ParseMAC(*srcMAC)
		if err != nil {
			return err
		}
		copy(fc.SrcMAC[:], m)
	}
	var stop atomic.Bool
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; stop.Store(true) }()
	st, err := gen.Transmit(gen.TxConfig{Dev: *dev, Engine: *engine, Frame: fc, Rate: *rate,
		Duration: *dur, Count: *count, Batch: *batch, Burst: *burst, Stop: &stop})
	if err != nil {
		return err
	}
	out := struct {
		gen.TxStats
		Size     string `json:"size"`
		Flows    int    `json:"flows"`
		NewFlows bool   `json:"new_flows"`
		Seed     uint64 `json:"seed"`
	}{st, *size, *flows, *newFlows, *seed}
	if *summary != "" {
		if err := writeJSON(*summary, out); err != nil {
			return err
		}
	}
	return writeJSON("-", out)
}

func sink(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	dev := fs.String("dev", "", "interface to receive on (required)")
	engine := fs.String("engine", "auto", "auto (AF_XDP, else AF_PACKET) | afxdp | afpacket")
	queues := fs.Int("queues", 1, "AF_XDP receive queues (one socket each)")
	dur := fs.Duration("duration", 0, "stop after this long (0: at SIGINT/SIGTERM)")
	expect := fs.Uint64("expect", 0, "packets the generator sent (for loss)")
	expectFile := fs.String("expect-file", "", "the generator's --summary file, read at each report")
	out := fs.String("out", "", "write each report (SIGUSR1 and exit) to this file too")
	ready := fs.String("ready", "", "create this file once receiving")
	maxSeq := fs.Uint("max-seq", 1<<26, "track duplicates for sequence numbers below this")
	cpu := fs.Int("cpu", -1, "pin the process to this CPU")
	fs.Parse(args)
	if *dev == "" {
		return fmt.Errorf("sink: --dev is required")
	}
	if err := pin(*cpu); err != nil {
		return err
	}
	var stop, snap atomic.Bool
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
	go func() {
		for s := range sig {
			if s == syscall.SIGUSR1 {
				snap.Store(true)
			} else {
				stop.Store(true)
			}
		}
	}()
	if *dur > 0 {
		time.AfterFunc(*dur, func() { stop.Store(true) })
	}
	var used string
	expected := func() uint64 {
		if *expectFile != "" {
			var g struct {
				Sent uint64 `json:"sent"`
			}
			if b, err := os.ReadFile(*expectFile); err == nil && json.Unmarshal(b, &g) == nil {
				return g.Sent
			}
		}
		return *expect
	}
	report := func(r *gen.Recorder, path string) {
		s := r.Stats(expected())
		s.Engine = used
		if err := writeJSON(path, s); err != nil {
			fmt.Fprintln(os.Stderr, "edgegen sink:", err)
		}
	}
	r, eng, err := gen.Sink(gen.SinkConfig{Dev: *dev, Engine: *engine, Queues: *queues, MaxSeq: uint32(*maxSeq),
		Stop: &stop, Snapshot: &snap,
		OnSnapshot: func(r *gen.Recorder) {
			if *out != "" {
				report(r, *out)
			} else {
				report(r, "-")
			}
		},
		Ready: func(e string) {
			used = e
			if *ready != "" {
				os.WriteFile(*ready, []byte(e+"\n"), 0o644)
			}
		}})
	if err != nil {
		return err
	}
	used = eng
	if *out != "" {
		report(r, *out)
	}
	report(r, "-")
	return nil
}
