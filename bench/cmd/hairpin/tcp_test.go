package main

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edge/internal/netnstest"
)

// tcpSTUNServer answers Binding requests over TCP on loopback with
// mapping(remote) as the mapped address, first sending an answer to
// another transaction when decoy is set; it records the remote addresses
// it saw. mapping nil: it closes each connection without answering.
type tcpSTUNServer struct {
	addr    netip.AddrPort
	mu      sync.Mutex
	remotes []netip.AddrPort
}

func newTCPSTUNServer(t *testing.T, decoy bool, mapping func(netip.AddrPort) netip.AddrPort) *tcpSTUNServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &tcpSTUNServer{addr: l.Addr().(*net.TCPAddr).AddrPort()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			remote := c.RemoteAddr().(*net.TCPAddr).AddrPort()
			s.mu.Lock()
			s.remotes = append(s.remotes, remote)
			s.mu.Unlock()
			go func() {
				req := make([]byte, stunHeaderLen)
				if _, err := io.ReadFull(c, req); err != nil || binary.BigEndian.Uint16(req) != stunBindingReq {
					c.Close()
					return
				}
				if mapping == nil {
					c.Close()
					return
				}
				if decoy {
					_, _ = c.Write(bindingSuccess(newTxID(), netip.MustParseAddrPort("192.0.2.9:9")))
				}
				_, _ = c.Write(bindingSuccess(txID(req[8:20]), mapping(remote)))
			}()
		}
	}()
	return s
}

func (s *tcpSTUNServer) seen() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.AddrPort(nil), s.remotes...)
}

func identity(a netip.AddrPort) netip.AddrPort { return a }

// TestTCPMappingsShareThePort: both connections leave from one local port
// (the servers see it), and without a NAT both mappings are that address.
func TestTCPMappingsShareThePort(t *testing.T) {
	s1, s2 := newTCPSTUNServer(t, false, identity), newTCPSTUNServer(t, true, identity)
	r, err := TCPMappings(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"), []netip.AddrPort{s1.addr, s2.addr}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !r.EndpointIndependent || !r.PortKept || len(r.Mapped) != 2 || r.Mapped[0] != r.Local || r.Mapped[1] != r.Local {
		t.Fatalf("%+v", r)
	}
	if a, b := s1.seen(), s2.seen(); len(a) != 1 || len(b) != 1 || a[0] != b[0] || a[0].String() != r.Local {
		t.Fatalf("the servers saw %v and %v, the probe's local address is %s", a, b, r.Local)
	}
}

// TestTCPMappingsDependent: a second server that sees another mapping
// makes the mapping dependent; a mapping to another port is not "kept".
func TestTCPMappingsDependent(t *testing.T) {
	s1 := newTCPSTUNServer(t, false, func(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr(), a.Port()^1) })
	s2 := newTCPSTUNServer(t, false, identity)
	r, err := TCPMappings(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"), []netip.AddrPort{s1.addr, s2.addr}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.EndpointIndependent || r.PortKept || r.Mapped[0] == r.Mapped[1] {
		t.Fatalf("%+v", r)
	}
}

// TestTCPMappingsNoAnswer: a server that closes without answering, or a
// port nobody listens on, is an error, not a verdict.
func TestTCPMappingsNoAnswer(t *testing.T) {
	good, mute := newTCPSTUNServer(t, false, identity), newTCPSTUNServer(t, false, nil)
	_, err := TCPMappings(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"), []netip.AddrPort{good.addr, mute.addr}, time.Second)
	if !errors.Is(err, errNoAnswer) {
		t.Fatalf("err %v, want no answer", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().(*net.TCPAddr).AddrPort()
	l.Close()
	if _, err := TCPMappings(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"), []netip.AddrPort{closed, good.addr}, time.Second); err == nil {
		t.Fatal("no error for a closed port")
	}
}

// TestTCPHairpinDeadMapping: B's mapping leads nowhere (a port nobody
// listens on): no hairpin, A's failure said, no error.
func TestTCPHairpinDeadMapping(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().(*net.TCPAddr).AddrPort()
	l.Close()
	var mu sync.Mutex
	var first netip.AddrPort
	srv := newTCPSTUNServer(t, false, func(a netip.AddrPort) netip.AddrPort {
		mu.Lock()
		defer mu.Unlock()
		if !first.IsValid() || a == first { // the first connection is A's
			first = a
			return a
		}
		return dead
	})
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	r, err := TCPHairpin(context.Background(), srv.addr, lo, lo, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Hairpin || r.AErr == "" || r.BMapped != dead.String() {
		t.Fatalf("%+v", r)
	}
}

// TestTCPHairpinSimultaneousOpen: in a namespace whose loopback drops TCP
// RSTs (as a NAT's filter drops the first, unsolicited SYN instead of
// refusing it), A's early SYN is not refused and waits in SYN_SENT; B's
// SYN meets it and the two connect in a simultaneous open. On a plain
// loopback the first SYN is refused at once and the two sides rarely
// overlap, hence the namespace. The probe runs in a child process started
// in the namespace (a goroutine's sockets would open in whatever namespace
// its thread is in).
func TestTCPHairpinSimultaneousOpen(t *testing.T) {
	if os.Getenv("HAIRPIN_TEST_IN_NETNS") == "1" {
		srv := newTCPSTUNServer(t, false, identity)
		lo := netip.MustParseAddrPort("127.0.0.1:0")
		for i := 0; i < 3; i++ {
			r, err := TCPHairpin(context.Background(), srv.addr, lo, lo, 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Hairpin || r.AErr != "" || r.BErr != "" || r.AMapped != r.ALocal || r.BMapped != r.BLocal {
				t.Fatalf("%+v", r)
			}
		}
		return
	}
	netnstest.Require(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (nftables) to drop RSTs in the test namespace")
	}
	ns := netnstest.New(t, "hairpin")
	ns.Run(t, "nft", "add table inet t; add chain inet t out { type filter hook output priority 0; }; add rule inet t out tcp flags rst drop")
	cmd := exec.Command("ip", "netns", "exec", ns.Name, os.Args[0], "-test.run", "^TestTCPHairpinSimultaneousOpen$", "-test.count", "1")
	cmd.Env = append(os.Environ(), "HAIRPIN_TEST_IN_NETNS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in namespace %s: %v\n%s", ns.Name, err, out)
	}
}
