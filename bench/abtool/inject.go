package main

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// injectCounters are what the injector reports.
type injectCounters struct {
	finsSeen, injected, skipped, sendErrors uint64
	icmp33, icmp33TCP, icmpOther            uint64 // ICMP errors received by the backend
	rstOut, rstIn, synIn, synAckOut         uint64
}

func (c *injectCounters) String() string {
	return fmt.Sprintf("fins_seen=%d injected=%d inject_skipped=%d send_errors=%d icmp3_3=%d icmp3_3_tcp=%d icmp_other=%d "+
		"backend_rst_out=%d backend_rst_in=%d backend_syn_in=%d backend_synack_out=%d",
		c.finsSeen, c.injected, c.skipped, c.sendErrors, c.icmp33, c.icmp33TCP, c.icmpOther,
		c.rstOut, c.rstIn, c.synIn, c.synAckOut)
}

// classify counts what a frame on the backend's interface says about the
// incident: ICMP errors and RSTs toward the backend, RSTs and SYN-ACKs from
// it. out is true for frames the backend sent.
func (c *injectCounters) classify(frame []byte, out bool, backend netip.AddrPort) {
	if e, ok := ParseICMPError(frame); ok {
		if out {
			return
		}
		if e.PortUnreachable() {
			c.icmp33++
			if e.QuotedTCP && e.Quoted.Src == backend.Addr() && e.Quoted.SrcPort == backend.Port() {
				c.icmp33TCP++
			}
		} else {
			c.icmpOther++
		}
		return
	}
	s, ok := ParseTCP(frame)
	if !ok {
		return
	}
	switch {
	case out && s.Src == backend.Addr() && s.SrcPort == backend.Port():
		if s.Flags&tcpRST != 0 {
			c.rstOut++
		}
		if s.Flags&(tcpSYN|tcpACK) == tcpSYN|tcpACK {
			c.synAckOut++
		}
	case !out && s.Dst == backend.Addr() && s.DstPort == backend.Port():
		if s.Flags&tcpRST != 0 {
			c.rstIn++
		}
		if s.Flags&(tcpSYN|tcpACK) == tcpSYN {
			c.synIn++
		}
	}
}

func runInject(args []string) error {
	fs := flag.NewFlagSet("inject", flag.ExitOnError)
	ifname := fs.String("iface", "", "the backend's interface (required)")
	backendS := fs.String("backend", "", "the backend's address:port (required)")
	delay := fs.Duration("delay", 1500*time.Millisecond, "re-send each backend FIN this long after it was seen")
	every := fs.Int("every", 1, "inject one FIN in this many")
	maxPending := fs.Int("max", 100000, "at most this many FINs waiting")
	off := fs.Bool("off", false, "count only, inject nothing")
	fs.Parse(args)
	backend, err := netip.ParseAddrPort(*backendS)
	if err != nil || *ifname == "" {
		return fmt.Errorf("inject: -iface and -backend ADDR:PORT are required")
	}
	ifc, err := net.InterfaceByName(*ifname)
	if err != nil {
		return err
	}
	proto := uint16(unix.ETH_P_ALL)
	proto = proto<<8 | proto>>8 // network order
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(proto))
	if err != nil {
		return fmt.Errorf("inject: AF_PACKET socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifc.Index}); err != nil {
		return err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	tv := unix.Timeval{Usec: 5000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	sched := &Scheduler{Backend: backend, Delay: *delay, Every: *every, Max: *maxPending, CountOnly: *off}
	var c injectCounters
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	fmt.Fprintf(os.Stderr, "inject: on %s, backend %v, delay %v, every %d, off %v\n", *ifname, backend, *delay, *every, *off)
	buf := make([]byte, 65536)
	for {
		select {
		case <-sig:
			c.finsSeen, c.skipped = sched.Seen, sched.Skipped
			fmt.Println(c.String())
			return nil
		default:
		}
		n, from, err := unix.Recvfrom(fd, buf, 0)
		now := time.Now()
		if err == nil && n > 0 {
			ll, _ := from.(*unix.SockaddrLinklayer)
			out := ll != nil && ll.Pkttype == unix.PACKET_OUTGOING
			frame := buf[:n]
			c.classify(frame, out, backend)
			if out {
				sched.Observe(frame, now)
			}
		}
		for _, f := range sched.Due(now) {
			if _, err := unix.Write(fd, f); err != nil {
				c.sendErrors++
				continue
			}
			c.injected++
		}
	}
}
