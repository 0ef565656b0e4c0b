// Command streamgap measures how steadily one TCP stream flows through a
// middle box: a sender (paced or bulk) and a receiver that reports, per
// phase, throughput, the lowest throughput of any window (--window) and of
// any full second (min_1s_mbps), and the longest gap between two
// arrivals. The SYN-flood lab (bench/synflood.sh) runs it before and
// during floods.
//
//	streamgap recv [--listen :5201] [--window 100ms] [--duration D] [--out FILE] [--ready FILE]
//	streamgap send --to HOST:PORT [--rate MBIT/S] [--duration D] [--chunk BYTES]
//
// recv accepts one connection and reads it until the sender closes (or
// --duration); SIGUSR1 ends the current phase and starts the next (a
// script marks "flood on" with it). On exit it prints {"phases": [...]} as
// JSON (and writes it to --out). send writes for --duration, at --rate
// megabits per second (0: as fast as TCP takes it), and closes.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "recv":
		err = recv(os.Args[2:])
	case "send":
		err = sendCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamgap:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: streamgap recv|send [flags]   (streamgap recv -h, streamgap send -h)")
	os.Exit(2)
}

var epoch = time.Now()

// mono is nanoseconds on the monotonic clock (never 0 after start).
func mono() int64 { return int64(time.Since(epoch)) + 1 }

func recv(args []string) error {
	fs := flag.NewFlagSet("recv", flag.ExitOnError)
	listen := fs.String("listen", ":5201", "TCP address to listen on")
	window := fs.Duration("window", 100*time.Millisecond, "window of the lowest-throughput figure")
	dur := fs.Duration("duration", 0, "stop reading after this long (0: until the sender closes)")
	out := fs.String("out", "", "also write the JSON report to this file")
	ready := fs.String("ready", "", "create this file once listening")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, nil, 0o644); err != nil {
			return err
		}
	}
	conn, err := ln.Accept()
	ln.Close()
	if err != nil {
		return err
	}
	defer conn.Close()
	var mu sync.Mutex
	rec := NewRecorder(mono(), *window)
	usr1 := make(chan os.Signal, 8)
	signal.Notify(usr1, syscall.SIGUSR1)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for range usr1 {
			mu.Lock()
			rec.Mark(mono())
			mu.Unlock()
		}
	}()
	go func() { <-stop; conn.Close() }()
	if *dur > 0 {
		conn.SetReadDeadline(time.Now().Add(*dur))
	}
	buf := make([]byte, 256<<10)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			mu.Lock()
			rec.Add(mono(), n)
			mu.Unlock()
		}
		if err != nil {
			break // EOF, deadline or closed by a signal: report
		}
	}
	mu.Lock()
	report := struct {
		Phases []Phase `json:"phases"`
	}{rec.Phases(mono())}
	mu.Unlock()
	b, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	os.Stdout.Write(b)
	if *out != "" {
		return os.WriteFile(*out, b, 0o644)
	}
	return nil
}

func sendCmd(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	to := fs.String("to", "", "receiver HOST:PORT (required)")
	rate := fs.Float64("rate", 0, "megabits per second (0: as fast as TCP takes it)")
	dur := fs.Duration("duration", 10*time.Second, "how long to send")
	chunk := fs.Int("chunk", 16<<10, "bytes per write")
	fs.Parse(args)
	if *to == "" || *chunk <= 0 || *rate < 0 {
		return fmt.Errorf("send: --to is required, --chunk positive, --rate not negative")
	}
	conn, err := net.DialTimeout("tcp", *to, 5*time.Second)
	if err != nil {
		return err
	}
	end := mono() + int64(*dur)
	conn.SetWriteDeadline(time.Now().Add(*dur + 10*time.Second))
	n, err := send(conn, *rate*1e6, *chunk, func() bool { return mono() >= end }, mono, time.Sleep)
	cerr := conn.Close()
	fmt.Fprintf(os.Stderr, "streamgap: sent %d bytes in %v (%.1f Mbit/s)\n", n, *dur, float64(n)*8/dur.Seconds()/1e6)
	if err != nil {
		return err
	}
	return cerr
}
