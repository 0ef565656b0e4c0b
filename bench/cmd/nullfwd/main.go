// Command nullfwd is the pps lab's floor: an AF_XDP forwarder that does
// nothing edge would not also have to do. It binds one AF_XDP socket per
// interface on queue 0 as edge's worker does (dataplane.SocketOptions: the
// two sockets share one UMEM of 2,048-byte frames, 4 x ring of them; fill,
// completion and TX rings of 2,048 descriptors, RX rings twice that,
// need_wakeup, copy mode where the driver has no zero-copy), keeps edge's
// fill target, attaches edge's own XDP program (dataplane.NewProgram) so
// the same traffic reaches it, and runs edge's worker loop on one pinned
// thread: batch receive, each frame sent on the other port from the frame
// it arrived in with the destination MAC set to the next hop given on the
// command line and the source MAC to the egress port's, completions, fill
// rings topped up, kick with edge's backoff, and edge's idle policy
// (dataplane.IdlePolicy: yield or sleep in ppoll). No parsing, no state, no
// TTL. bench/pps.sh reports edge's CPU per packet against it: the gap is
// edge's own cost.
//
//	nullfwd --in DEV --out DEV --in-hop MAC --out-hop MAC [--cpu N]
//	        [--frames 4*ring] [--ring 2048] [--need-wakeup=true]
//
// --in-hop is the MAC frames leaving on --in are sent to (the client), and
// --out-hop the one for --out (the server). It prints "forwarding between"
// once running and its counters on SIGINT/SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/edgegw/edge/dataplane"
)

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if err := runMain(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "nullfwd:", err)
		os.Exit(1)
	}
}

func runMain(args []string) error {
	fs := flag.NewFlagSet("nullfwd", flag.ContinueOnError)
	in := fs.String("in", "", "inside interface")
	out := fs.String("out", "", "outside interface")
	inHop := fs.String("in-hop", "", "next hop's MAC on the inside interface")
	outHop := fs.String("out-hop", "", "next hop's MAC on the outside interface")
	cfg := config{}
	fs.IntVar(&cfg.cpu, "cpu", -1, "pin the worker to this CPU (-1: not pinned)")
	fs.IntVar(&cfg.frames, "frames", 0, "frames of the UMEM the two sockets share (0: edge's default, 4 x ring)")
	fs.IntVar(&cfg.ring, "ring", dataplane.DefaultRing, "descriptors per ring (edge's default; the RX ring is twice that)")
	fs.BoolVar(&cfg.needWakeup, "need-wakeup", true, "honour AF_XDP need_wakeup (edge's default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" || *in == *out {
		return fmt.Errorf("--in and --out: two different interfaces")
	}
	cfg.ports = [2]string{*in, *out}
	for i, s := range []string{*inHop, *outHop} {
		m, err := net.ParseMAC(s)
		if err != nil || len(m) != 6 {
			return fmt.Errorf("--%s-hop %q: not a MAC address", [2]string{"in", "out"}[i], s)
		}
		cfg.hops[i] = [6]byte(m)
	}
	f, err := newForwarder(cfg)
	if err != nil {
		return err
	}
	defer f.close()
	if !f.zeroCopy() {
		log.Printf("nullfwd: AF_XDP in copy mode (the driver has no zero-copy support)")
	}
	// The worker holds its P for good; one spare P for the rest (signals),
	// as edge has it.
	if runtime.GOMAXPROCS(0) < 2 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(log.Printf)
	}()
	log.Printf("nullfwd: forwarding between %s (inside) and %s (outside), queue 0, CPU %d", *in, *out, cfg.cpu)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	f.stop.Store(true)
	<-done
	c := &f.ctr
	log.Printf("nullfwd: %v: stopping", s)
	log.Printf("nullfwd: stats: rx %s %d %s %d, tx %s %d %s %d, tx_full %d",
		*in, c.rx[0].Load(), *out, c.rx[1].Load(), *in, c.tx[0].Load(), *out, c.tx[1].Load(),
		c.txFull[0].Load()+c.txFull[1].Load())
	log.Printf("nullfwd: stats: losses:%s", f.lossReport())
	return nil
}
