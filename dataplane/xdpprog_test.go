package dataplane

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/asavie/xdp"

	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/internal/netnstest"
)

// waitFor polls cond every 10 ms for at most d (kernel work is asynchronous).
func waitFor(d time.Duration, cond func() bool) bool { return netnstest.WaitFor(d, cond) }

// TestXDPProgramFailsClosed attaches the program to a veth in a namespace of
// its own and checks, with real packets from a peer namespace: with no
// AF_XDP socket bound, IP never reaches the kernel stack (dropped and
// counted) while ARP (IPv6: neighbour discovery) does; with a socket
// registered, the packets arrive on it; detaching leaves the interface
// without a program. In each family.
func TestXDPProgramFailsClosed(t *testing.T) {
	for _, fam := range []struct {
		name, udp, local, peer string
		prefixLen              string
	}{
		{"ipv4", "udp4", "10.99.0.1", "10.99.0.2", "/24"},
		{"ipv6", "udp6", "fd99::1", "fd99::2", "/64"},
	} {
		t.Run(fam.name, func(t *testing.T) {
			testXDPProgramFailsClosed(t, fam.udp, netip.MustParseAddr(fam.local), fam.local+fam.prefixLen, fam.peer+fam.prefixLen)
		})
	}
}

// testXDPProgramFailsClosed is TestXDPProgramFailsClosed with the edge end
// at local (localPrefix) and the peer at peerPrefix; network is "udp4" or
// "udp6".
func testXDPProgramFailsClosed(t *testing.T, network string, local netip.Addr, localPrefix, peerPrefix string) {
	netnstest.Require(t)
	edge := netnstest.New(t, "xdp-e")
	peer := netnstest.New(t, "xdp-p")
	if local.Is4() {
		netnstest.Veth(t, edge, "e0", localPrefix, peer, "p0", peerPrefix)
	} else {
		netnstest.Veth(t, edge, "e0", "", peer, "p0", "")
		netnstest.AddIPv6(t, edge, "e0", localPrefix)
		netnstest.AddIPv6(t, peer, "p0", peerPrefix)
	}
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 9999))

	var prog *Program
	var ifindex int
	var listener *net.UDPConn
	err := edge.Do(func() error {
		ifc, err := net.InterfaceByName("e0")
		if err != nil {
			return err
		}
		ifindex = ifc.Index
		if prog, err = NewProgram(4); err != nil {
			return err
		}
		if err := prog.Attach(ifindex); err != nil {
			return err
		}
		// A kernel socket that must receive nothing while edge is absent.
		listener, err = net.ListenUDP(network, dst)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close(); listener.Close() })
	if out := edge.Run(t, "ip", "link", "show", "e0"); !strings.Contains(out, "prog/xdp") {
		t.Fatalf("program not attached:\n%s", out)
	}

	send := func(n int, tag string) {
		t.Helper()
		err := peer.Do(func() error {
			c, err := net.DialUDP(network, nil, dst)
			if err != nil {
				return err
			}
			defer c.Close()
			for i := 0; i < n; i++ {
				if _, err := c.Write([]byte(tag)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	// 1. No socket: fail closed.
	send(5, "no-socket")
	if !waitFor(3*time.Second, func() bool { s, _ := prog.Stats(); return s.NoSocket >= 5 }) {
		s, _ := prog.Stats()
		t.Fatalf("IP without a socket not dropped by the program: %+v", s)
	}
	s, _ := prog.Stats()
	if s.Passed == 0 {
		t.Fatalf("ARP / neighbour discovery was not passed to the kernel: %+v", s)
	}
	listener.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, _, err := listener.ReadFromUDP(make([]byte, 64)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a packet reached the kernel stack while no socket was bound (err %v)", err)
	}

	// 2. A socket on queue 0 receives the IP traffic.
	var sock *xdp.Socket
	err = edge.Do(func() error {
		var err error
		opts := xdp.DefaultSocketOptions
		opts.NeedWakeup = true
		if sock, err = xdp.NewSocket(ifindex, 0, &opts); err != nil {
			return err
		}
		return prog.Register(0, sock.FD())
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	if sock.ZeroCopy() {
		t.Fatal("veth cannot do zero-copy AF_XDP; the socket claims it")
	}
	sock.Fill(sock.GetDescs(sock.NumFreeFillSlots()))
	send(5, "to-socket")
	got := 0
	deadline := time.Now().Add(3 * time.Second)
	for got < 5 && time.Now().Before(deadline) {
		n, _, err := sock.Poll(100)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range sock.Receive(n) {
			p, ok := parseWire(sock.GetFrame(d))
			if !ok || p.proto != header.ProtoUDP || p.dst != local || len(p.payload) < header.UDPLen {
				continue
			}
			udp := header.UDP(p.payload)
			if binary.BigEndian.Uint16(udp[2:]) == 9999 && strings.HasPrefix(string(udp[8:]), "to-socket") {
				got++
			}
		}
		sock.Fill(sock.GetDescs(sock.NumFreeFillSlots()))
	}
	if got < 5 {
		s, _ := prog.Stats()
		t.Fatalf("socket received %d of 5 datagrams; program stats %+v", got, s)
	}
	if s, _ := prog.Stats(); s.Redirected < 5 {
		t.Fatalf("redirect counter %d", s.Redirected)
	}

	// 3. Unregistering fails closed again; detaching leaves no program.
	if err := prog.Unregister(0); err != nil {
		t.Fatal(err)
	}
	before, _ := prog.Stats()
	send(3, "unregistered")
	if !waitFor(3*time.Second, func() bool { s, _ := prog.Stats(); return s.NoSocket >= before.NoSocket+3 }) {
		t.Fatal("after Unregister, IP was not dropped")
	}
	if err := edge.Do(prog.Detach); err != nil {
		t.Fatal(err)
	}
	if out := edge.Run(t, "ip", "link", "show", "e0"); strings.Contains(out, "prog/xdp") {
		t.Fatalf("program still attached after Detach:\n%s", out)
	}
}
