package main

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/internal/netnstest"
)

// TestForwardsBetweenVeths runs the forwarder in the middle of a client --
// middle -- server lab and sends datagrams both ways: each arrives once at
// the far end, with the source MAC of the middle's egress port, and the
// counters say so.
func TestForwardsBetweenVeths(t *testing.T) {
	netnstest.Require(t)
	client, middle, server := netnstest.Gateway(t, "nf")
	macOf := func(ns *netnstest.NS, dev string) (m [6]byte) {
		t.Helper()
		if err := ns.Do(func() error {
			ifc, err := net.InterfaceByName(dev)
			if err == nil {
				m = [6]byte(ifc.HardwareAddr)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	cMAC, sMAC := macOf(client, "c0"), macOf(server, "s0")
	inMAC, outMAC := macOf(middle, "in"), macOf(middle, "out")
	// Static neighbours: no ARP while the test runs (the program passes ARP
	// to the middle's kernel, which would answer, but this keeps it exact).
	client.Run(t, "ip", "neigh", "replace", "10.0.0.1", "lladdr", net.HardwareAddr(inMAC[:]).String(), "dev", "c0", "nud", "permanent")
	server.Run(t, "ip", "neigh", "replace", "203.0.113.1", "lladdr", net.HardwareAddr(outMAC[:]).String(), "dev", "s0", "nud", "permanent")
	server.Run(t, "ip", "route", "add", "default", "via", "203.0.113.1")

	var f *forwarder
	if err := middle.Do(func() (err error) {
		f, err = newForwarder(config{ports: [2]string{"in", "out"}, hops: [2][6]byte{cMAC, sMAC},
			cpu: -1, ring: 2048, needWakeup: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); f.run(t.Logf) }()
	t.Cleanup(func() { f.stop.Store(true); <-done; f.close() })

	const n = 20
	check := func(from, to *netnstest.NS, toDev, toAddr string, egress [6]byte) {
		t.Helper()
		// The receiver: an AF_PACKET socket on the far end's interface, for
		// the link-layer source of each IPv4 frame.
		var pfd int
		var sink net.PacketConn // a listener, so the far end answers no port unreachable
		if err := to.Do(func() error {
			var err error
			if sink, err = net.ListenPacket("udp4", ":9"); err != nil {
				return err
			}
			ifc, err := net.InterfaceByName(toDev)
			if err != nil {
				return err
			}
			if pfd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_IP))); err != nil {
				return err
			}
			tv := unix.Timeval{Sec: 2}
			if err := unix.SetsockoptTimeval(pfd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				return err
			}
			return unix.Bind(pfd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifc.Index})
		}); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(pfd)
		defer sink.Close()
		var conn net.Conn
		if err := from.Do(func() (err error) {
			conn, err = net.Dial("udp4", net.JoinHostPort(toAddr, "9"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for i := 0; i < n; i++ {
			if _, err := conn.Write([]byte{byte(i), 'n', 'u', 'l', 'l'}); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[byte]int{}
		buf := make([]byte, 2048)
		deadline := time.Now().Add(5 * time.Second)
		for len(seen) < n && time.Now().Before(deadline) {
			m, sa, err := unix.Recvfrom(pfd, buf, 0)
			if err != nil {
				t.Fatalf("%s: %d of %d datagrams arrived: %v", toDev, len(seen), n, err)
			}
			ll, ok := sa.(*unix.SockaddrLinklayer)
			if !ok || m < 28+5 || buf[9] != unix.IPPROTO_UDP || string(buf[29:33]) != "null" {
				continue // not ours (none expected: IPv6 is off, neighbours static)
			}
			if src := [6]byte(ll.Addr[:6]); src != egress {
				t.Fatalf("%s: frame from %x, want the middle's egress port %x", toDev, src, egress)
			}
			if ttl := buf[8]; ttl != 64 {
				t.Fatalf("%s: TTL %d: the forwarder changed the packet (want the sender's 64)", toDev, ttl)
			}
			seen[buf[28]]++
		}
		for i := 0; i < n; i++ {
			if seen[byte(i)] != 1 {
				t.Fatalf("%s: datagram %d arrived %d times (want once)", toDev, i, seen[byte(i)])
			}
		}
	}
	check(client, server, "s0", "203.0.113.2", outMAC)
	check(server, client, "c0", "10.0.0.2", inMAC)
	f.stop.Store(true)
	<-done
	if rx0, tx1, rx1, tx0 := f.ctr.rx[0].Load(), f.ctr.tx[1].Load(), f.ctr.rx[1].Load(), f.ctr.tx[0].Load(); rx0 != n || tx1 != n || rx1 != n || tx0 != n {
		t.Fatalf("counters: rx in %d, tx out %d, rx out %d, tx in %d; want %d each", rx0, tx1, rx1, tx0, n)
	}
	if full := f.ctr.txFull[0].Load() + f.ctr.txFull[1].Load(); full != 0 {
		t.Fatalf("tx_full %d", full)
	}
	// One UMEM for both sockets: every frame is free, in a fill ring, on an
	// RX ring, or sent and not yet completed; none leaked or freed twice.
	if s0 := f.ports[0].sock; s0.NumFrames() != 4*2048 || f.ports[1].sock.NumFrames() != s0.NumFrames() {
		t.Fatalf("UMEM of %d and %d frames, want one of %d (edge's default)", s0.NumFrames(), f.ports[1].sock.NumFrames(), 4*2048)
	}
	frames := f.ports[0].sock.FreeFrames()
	for _, p := range f.ports {
		s := p.sock
		frames += 2048 - s.NumFreeFillSlots() + s.NumReceived() + s.NumTransmitted()
	}
	if frames != 4*2048 {
		t.Fatalf("%d frames accounted for, want %d", frames, 4*2048)
	}
	if f.ports[1].sock.FreeFrames() != f.ports[0].sock.FreeFrames() {
		t.Fatal("the sockets have separate free frames: the UMEM is not shared")
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
