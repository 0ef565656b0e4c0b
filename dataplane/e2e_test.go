package dataplane

import (
	"bufio"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/drop"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/icmp"
	"github.com/edgegw/edge/internal/netnstest"
	"github.com/edgegw/edge/snat"
)

// lab is client -- edge -- server, each in its own namespace:
//
//	client c0 10.0.0.2/24, default via 10.0.0.1
//	edge   in 10.0.0.1/24 | out 203.0.113.1/24
//	server s0 203.0.113.2/24, no route to 10.0.0.0/24 (only SNAT'd traffic can be answered)
//
// and, in a dual-stack lab (newFamilyLab with labIPv6), the same in IPv6
// (netnstest.DualStack): fd00:10::/64 inside, 2001:db8:113::/64 outside.
type lab struct {
	client, edge, server *netnstest.NS
	engine               *Engine
}

// labFamily is what a namespace test needs of one address family to run
// in both (forEachLabFamily).
type labFamily struct {
	name            string
	udp, tcp        string // Go network names: "udp4", "tcp4"...
	server, snat    netip.Addr
	inside, outside netip.Prefix
	// wireClient and wireServer are addresses no kernel has, for tests
	// that inject frames (raw sockets) and point edge's neighbours at them.
	wireClient, wireServer netip.Addr
	icmp                   uint8     // header.ProtoICMP or ProtoICMPv6
	unreachable            uint8     // destination unreachable's type
	portUnreachable        uint8     // and its port unreachable code
	tooBig                 icmp.Kind // what edge answers a packet over the MTU with
	tooBigType, tooBigCode uint8     // and its type and code
	echoRequest, echoReply uint8
	timeExceeded           uint8
	adminProhibited        uint8 // destination unreachable's code
	dualStack              bool  // the lab has IPv6 too (and edge's automap both addresses)
}

var (
	labIPv4 = labFamily{name: "ipv4", udp: "udp4", tcp: "tcp4",
		server: netip.MustParseAddr("203.0.113.2"), snat: netip.MustParseAddr("203.0.113.1"),
		inside: netip.MustParsePrefix("10.0.0.0/24"), outside: netip.MustParsePrefix("203.0.113.0/24"),
		wireClient: netip.MustParseAddr("10.0.0.50"), wireServer: netip.MustParseAddr("203.0.113.50"),
		icmp: header.ProtoICMP, unreachable: header.ICMPv4DestUnreachable, portUnreachable: 3, tooBig: icmp.FragNeeded,
		tooBigType: header.ICMPv4DestUnreachable, tooBigCode: 4, echoRequest: header.ICMPv4EchoRequest,
		echoReply: header.ICMPv4EchoReply, timeExceeded: header.ICMPv4TimeExceeded, adminProhibited: 13}
	labIPv6 = labFamily{name: "ipv6", udp: "udp6", tcp: "tcp6",
		server: netip.MustParseAddr(netnstest.ServerIPv6), snat: netip.MustParseAddr(netnstest.EdgeOutsideIPv6),
		inside: netip.MustParsePrefix(netnstest.InsidePrefixIPv6), outside: netip.MustParsePrefix(netnstest.OutsidePrefixIPv6),
		wireClient: netip.MustParseAddr("fd00:10::50"), wireServer: netip.MustParseAddr("2001:db8:113::50"),
		icmp: header.ProtoICMPv6, unreachable: header.ICMPv6DestUnreachable, portUnreachable: 4, tooBig: icmp.PacketTooBig,
		tooBigType: header.ICMPv6PacketTooBig, tooBigCode: 0, echoRequest: header.ICMPv6EchoRequest,
		echoReply: header.ICMPv6EchoReply, timeExceeded: header.ICMPv6TimeExceeded, adminProhibited: 1,
		dualStack: true}
	labFamilies = []labFamily{labIPv4, labIPv6}
)

// forEachLabFamily runs f as a subtest per family.
func forEachLabFamily(t *testing.T, f func(t *testing.T, fam labFamily)) {
	t.Helper()
	for _, fam := range labFamilies {
		t.Run(fam.name, func(t *testing.T) { f(t, fam) })
	}
}

// serverAddr is the server's address of the family, port port.
func (f labFamily) serverAddr(port int) string {
	return netip.AddrPortFrom(f.server, uint16(port)).String()
}

// ipFlag is the family's option for ip(8): "-4" or "-6".
func (f labFamily) ipFlag() string {
	if f.dualStack {
		return "-6"
	}
	return "-4"
}

func newLab(t *testing.T, rules firewall.RuleSet, opts ...func(*Config)) *lab {
	return newFamilyLab(t, labIPv4, rules, opts...)
}

// newFamilyLab is newLab for family fam: with labIPv6 the lab is dual-stack
// (the IPv4 addresses stay) and edge has routes for both families.
func newFamilyLab(t *testing.T, fam labFamily, rules firewall.RuleSet, opts ...func(*Config)) *lab {
	netnstest.Require(t)
	l := &lab{}
	l.client, l.edge, l.server = netnstest.Gateway(t, "gw")
	cfg := labConfig(rules)
	if fam.dualStack {
		netnstest.DualStack(t, l.client, l.edge, l.server)
		cfg.Routes = append(cfg.Routes, Route{Dst: fam.inside, Port: 0}, Route{Dst: fam.outside, Port: 1})
	}
	cfg.SNAT = &snat.Config{Mode: snat.Automap}
	cfg.Conntrack.Policy = conntrack.Policy{Profiles: []conntrack.Profile{conntrack.DefaultProfile}}
	cfg.Logf = t.Logf
	for _, o := range opts {
		o(&cfg)
	}
	l.engine = startEngine(t, l.edge, cfg)
	return l
}

// labConfig is the configuration the namespace tests share: inside "in"
// (10.0.0.0/24), outside "out" (203.0.113.0/24), small rings.
func labConfig(rules firewall.RuleSet) Config {
	return Config{
		Inside: Interface{Name: "in"}, Outside: Interface{Name: "out"},
		Routes: []Route{{Dst: netip.MustParsePrefix("10.0.0.0/24"), Port: 0},
			{Dst: netip.MustParsePrefix("203.0.113.0/24"), Port: 1}},
		Rules:     rules,
		Conntrack: conntrack.Config{MaxFlows: 4096},
		Frames:    512, Ring: 256, NeedWakeup: true,
	}
}

// startEngine starts an engine from cfg in namespace ns and closes it when
// the test ends.
func startEngine(t *testing.T, ns *netnstest.NS, cfg Config) *Engine {
	t.Helper()
	var e *Engine
	err := ns.Do(func() (err error) {
		if e, err = New(cfg); err != nil {
			return err
		}
		return e.Run()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Do(e.Close); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return e
}

// ifaceMAC returns the hardware address of interface name in ns.
func ifaceMAC(t *testing.T, ns *netnstest.NS, name string) (mac [6]byte) {
	t.Helper()
	err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(name)
		if err == nil {
			copy(mac[:], ifc.HardwareAddr)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

var allowOutbound = firewall.RuleSet{
	Rules:   []firewall.Rule{{Name: "outbound", Zone: firewall.Inside, Action: firewall.Allow}},
	Default: firewall.Drop,
}

// udpEchoServer runs a UDP echo server on at in the lab's server
// namespace until the test ends and sends the source address of every
// datagram it answers on the channel it returns (which drops them when
// full).
func udpEchoServer(t *testing.T, l *lab, at netip.AddrPort) <-chan string {
	t.Helper()
	network := "udp4"
	if at.Addr().Is6() {
		network = "udp6"
	}
	seen := make(chan string, 64)
	var udp *net.UDPConn
	if err := l.server.Do(func() (err error) {
		udp, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(at))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := udp.ReadFromUDP(buf)
			if err != nil {
				return
			}
			select {
			case seen <- from.IP.String():
			default:
			}
			udp.WriteToUDP(buf[:n], from)
		}
	}()
	return seen
}

// TestForwardSNAT sends real UDP and TCP traffic from the client to the
// server through edge and checks that it arrives translated to the outside
// address and that the answers come back.
func TestForwardSNAT(t *testing.T) { forEachLabFamily(t, testForwardSNAT) }

func testForwardSNAT(t *testing.T, fam labFamily) {
	l := newFamilyLab(t, fam, allowOutbound)

	seen := udpEchoServer(t, l, netip.AddrPortFrom(fam.server, 7007))

	var reply string
	err := l.client.Do(func() error {
		c, err := net.DialUDP(fam.udp, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.server, 7007)))
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 64)
		// The first datagrams may be lost while edge resolves the
		// server's MAC (no_neighbour): retry, bounded.
		for try := 0; try < 20; try++ {
			c.Write([]byte("hello"))
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, err := c.Read(buf); err == nil {
				reply = string(buf[:n])
				return nil
			}
		}
		return io.ErrNoProgress
	})
	if err != nil {
		t.Logf("server snmp:\n%s", l.server.Run(t, "cat", "/proc/net/snmp"))
		t.Fatalf("no UDP echo through edge: %v; stats %+v", err, l.engine.Stats())
	}
	if reply != "hello" {
		t.Fatalf("echo %q", reply)
	}
	if from := <-seen; from != fam.snat.String() {
		t.Fatalf("server saw the datagram from %s, want the SNAT address %v", from, fam.snat)
	}

	// TCP: a real connection, both directions, then close.
	var ln net.Listener
	if err := l.server.Do(func() (err error) {
		ln, err = net.Listen(fam.tcp, fam.serverAddr(8080))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	remote := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		remote <- c.RemoteAddr().String()
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Write([]byte(strings.ToUpper(line)))
	}()
	var got string
	err = l.client.Do(func() error {
		c, err := net.DialTimeout(fam.tcp, fam.serverAddr(8080), 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("through edge\n")); err != nil {
			return err
		}
		got, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	if err != nil {
		t.Fatalf("TCP through edge: %v; stats %+v", err, l.engine.Stats())
	}
	if got != "THROUGH EDGE\n" {
		t.Fatalf("TCP reply %q", got)
	}
	if r := <-remote; netip.MustParseAddrPort(r).Addr() != fam.snat {
		t.Fatalf("server saw the connection from %s, want the SNAT address %v", r, fam.snat)
	}
	st := l.engine.Stats()
	if st.Created < 2 || st.TX[1] == 0 || st.TX[0] == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestKernelRoutes: with no static routes, the kernel's connected routes
// (read through netlink) are enough to forward.
func TestKernelRoutes(t *testing.T) { forEachLabFamily(t, testKernelRoutes) }

func testKernelRoutes(t *testing.T, fam labFamily) {
	l := newFamilyLab(t, fam, allowOutbound, func(c *Config) { c.Routes, c.KernelRoutes = nil, true })
	if rt := l.engine.routes.Load(); rt.Len() < 2 {
		t.Fatalf("kernel routes not loaded: %d prefixes", rt.Len())
	}
	var udp *net.UDPConn
	if err := l.server.Do(func() (err error) {
		udp, err = net.ListenUDP(fam.udp, net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.server, 7008)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	got := make(chan struct{}, 16)
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := udp.ReadFromUDP(buf); err != nil {
				return
			}
			got <- struct{}{}
		}
	}()
	err := l.client.Do(func() error {
		c, err := net.DialUDP(fam.udp, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.server, 7008)))
		if err != nil {
			return err
		}
		defer c.Close()
		for try := 0; try < 20; try++ {
			c.Write([]byte("x"))
			select {
			case <-got:
				return nil
			case <-time.After(200 * time.Millisecond):
			}
		}
		return io.ErrNoProgress
	})
	if err != nil {
		t.Fatalf("nothing crossed with kernel routes: %v; stats %+v", err, l.engine.Stats())
	}
}

// TestUnsolicitedInboundDropped: with only outbound allowed, a connection
// attempt from the outside to the SNAT address creates nothing and gets
// nothing back; it is counted.
func TestUnsolicitedInboundDropped(t *testing.T) { forEachLabFamily(t, testUnsolicitedInboundDropped) }

func testUnsolicitedInboundDropped(t *testing.T, fam labFamily) {
	l := newFamilyLab(t, fam, allowOutbound)
	err := l.server.Do(func() error {
		c, err := net.DialTimeout(fam.tcp, netip.AddrPortFrom(fam.snat, 22).String(), 1500*time.Millisecond)
		if err == nil {
			c.Close()
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	if err != nil {
		t.Fatal("an unsolicited inbound connection succeeded")
	}
	waitFor(time.Second, func() bool { return l.engine.Stats().Drops[drop.FirewallDrop] > 0 })
	st := l.engine.Stats()
	if st.Drops[drop.FirewallDrop] == 0 {
		t.Fatalf("inbound SYN not counted as a firewall drop: %+v", st)
	}
	if st.Created != 0 {
		t.Fatalf("a flow was created for unsolicited inbound traffic")
	}
}

// TestICMPErrorTranslatedBack: the server's kernel answers a datagram to a
// closed port with ICMP port unreachable, addressed to the SNAT address and
// quoting the translated datagram; edge translates it back (RFC 5508), so
// the client's connected UDP socket sees ECONNREFUSED.
func TestICMPErrorTranslatedBack(t *testing.T) { forEachLabFamily(t, testICMPErrorTranslatedBack) }

func testICMPErrorTranslatedBack(t *testing.T, fam labFamily) {
	l := newFamilyLab(t, fam, allowOutbound)
	var refused bool
	err := l.client.Do(func() error {
		c, err := net.DialUDP(fam.udp, nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(fam.server, 7999)))
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 64)
		for try := 0; try < 20 && !refused; try++ {
			c.Write([]byte("anyone?"))
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			_, err := c.Read(buf)
			refused = err != nil && strings.Contains(err.Error(), "connection refused")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !refused {
		t.Fatalf("the port unreachable did not reach the client translated; stats %+v", l.engine.Stats())
	}
}

// SNAT automap follows the outside interface's address: after it changes,
// new flows leave with the new address (checked once a second), and the
// server's answers to it come back.
func TestAutomapFollowsAddress(t *testing.T) {
	l := newLab(t, allowOutbound)
	seen := udpEchoServer(t, l, netip.MustParseAddrPort("203.0.113.2:7008"))
	// echo sends from a new socket until an answer comes back and
	// returns the source address the server saw.
	echo := func() string {
		t.Helper()
		for len(seen) > 0 {
			<-seen
		}
		err := l.client.Do(func() error {
			c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(203, 0, 113, 2), Port: 7008})
			if err != nil {
				return err
			}
			defer c.Close()
			buf := make([]byte, 64)
			for try := 0; try < 20; try++ {
				c.Write([]byte("hello"))
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := c.Read(buf); err == nil {
					return nil
				}
			}
			return io.ErrNoProgress
		})
		if err != nil {
			t.Fatalf("no UDP echo through edge: %v; stats %+v", err, l.engine.Stats())
		}
		return <-seen
	}
	if from := echo(); from != "203.0.113.1" {
		t.Fatalf("server saw %s, want 203.0.113.1", from)
	}
	// Removed first: removing a primary address removes the secondary
	// ones of its subnet too (promote_secondaries off).
	l.edge.Run(t, "ip", "addr", "del", "203.0.113.1/24", "dev", "out")
	l.edge.Run(t, "ip", "addr", "add", "203.0.113.5/24", "dev", "out")
	if !netnstest.WaitFor(5*time.Second, func() bool {
		c, ok := l.engine.NAT().Config()
		return ok && c.Automap == netip.MustParseAddr("203.0.113.5")
	}) {
		c, _ := l.engine.NAT().Config()
		t.Fatalf("automap still %v after the outside address changed", c.Automap)
	}
	if from := echo(); from != "203.0.113.5" {
		t.Fatalf("after the change the server saw %s, want 203.0.113.5", from)
	}
}
