package dataplane

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/internal/netnstest"
)

// rawPort is an AF_PACKET socket on one interface of a test namespace: it
// injects frames onto the veth and captures what edge sends back.
type rawPort struct {
	fd  int
	mac [6]byte
}

func openRaw(t *testing.T, ns *netnstest.NS, ifname string) *rawPort {
	rp := &rawPort{}
	err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		copy(rp.mac[:], ifc.HardwareAddr)
		proto := uint16(unix.ETH_P_ALL)
		proto = proto<<8 | proto>>8 // network order
		if rp.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(proto)); err != nil {
			return err
		}
		return unix.Bind(rp.fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifc.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(rp.fd) })
	tv := unix.Timeval{Usec: 100_000}
	unix.SetsockoptTimeval(rp.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return rp
}

func (rp *rawPort) send(t *testing.T, frame []byte) {
	if _, err := unix.Write(rp.fd, frame); err != nil {
		t.Fatal(err)
	}
}

// capture returns the IPv4 frames received within d that match keep.
func (rp *rawPort) capture(d time.Duration, keep func(ip header.IPv4) bool) [][]byte {
	return rp.captureIP(d, func(p wirePacket) bool { return p.v4 != nil && keep(p.v4) })
}

// wirePacket is a captured IPv4 or IPv6 packet: its addresses, protocol
// and payload (IPv6: what follows the fixed header; the tests' packets
// carry no extension headers).
type wirePacket struct {
	src, dst netip.Addr
	proto    uint8
	payload  []byte
	v4       header.IPv4 // nil for IPv6
}

// captureIP returns the IPv4 and IPv6 frames received within d that match keep.
func (rp *rawPort) captureIP(d time.Duration, keep func(p wirePacket) bool) [][]byte {
	var got [][]byte
	buf := make([]byte, 2048)
	for end := time.Now().Add(d); time.Now().Before(end); {
		n, _, err := unix.Recvfrom(rp.fd, buf, 0)
		if err != nil {
			continue
		}
		if p, ok := parseWire(buf[:n]); ok && keep(p) {
			got = append(got, append([]byte(nil), buf[:n]...))
		}
	}
	return got
}

// parseWire reads frame's IP packet, if it is a valid IPv4 or IPv6 one.
func parseWire(frame []byte) (wirePacket, bool) {
	if len(frame) < header.EthernetLen {
		return wirePacket{}, false
	}
	ip := frame[header.EthernetLen:]
	switch binary.BigEndian.Uint16(frame[12:]) {
	case header.EtherTypeIPv4:
		h := header.IPv4(ip)
		if len(ip) < header.IPv4MinLen || !h.IsValid(len(ip)) {
			return wirePacket{}, false
		}
		return wirePacket{src: h.SrcAddr(), dst: h.DstAddr(), proto: h.Protocol(), payload: h.Payload(), v4: h}, true
	case header.EtherTypeIPv6:
		if len(ip) < header.IPv6Len || ip[0]>>4 != 6 {
			return wirePacket{}, false
		}
		end := min(len(ip), header.IPv6Len+int(binary.BigEndian.Uint16(ip[4:])))
		return wirePacket{src: netip.AddrFrom16([16]byte(ip[8:24])), dst: netip.AddrFrom16([16]byte(ip[24:40])),
			proto: ip[6], payload: ip[header.IPv6Len:end]}, true
	}
	return wirePacket{}, false
}

// TestNSXSequenceOnTheWire injects the NSX incident's packets on the veths
// around a real engine, in edge's default mode, in NSX compatibility mode
// and in NSX shadow mode, in each family: the server's delayed FIN, the
// client's SYN on the same tuple, the server's SYN-ACK. Default mode
// forwards the SYN-ACK to the client and sends no ICMP; NSX mode drops it
// and answers the server with the family's port unreachable (ICMP 3/3,
// ICMPv6 1/4); shadow mode does what default mode does and counts the
// SYN-ACK NSX mode drops (nsx_would_drop, nsx_would_fail).
// The endpoints' addresses are not configured on the namespaces' kernels
// (static neighbours in edge's namespace point at the veths), so no kernel
// answers the injected segments.
func TestNSXSequenceOnTheWire(t *testing.T) { forEachLabFamily(t, testNSXSequenceOnTheWire) }

func testNSXSequenceOnTheWire(t *testing.T, fam labFamily) {
	for _, mode := range []string{"default", "nsx-compat", "nsx-shadow"} {
		nsx, shadow := mode == "nsx-compat", mode == "nsx-shadow"
		t.Run(mode, func(t *testing.T) {
			netnstest.Require(t)
			client, edge, server := netnstest.New(t, "nxc"), netnstest.New(t, "nxe"), netnstest.New(t, "nxs")
			netnstest.Veth(t, client, "c0", "", edge, "in", "10.0.0.1/24")
			netnstest.Veth(t, edge, "out", "203.0.113.1/24", server, "s0", "")
			cfg := labConfig(firewall.RuleSet{Rules: []firewall.Rule{{Name: "any", Action: firewall.Allow}}})
			if fam.dualStack {
				netnstest.AddIPv6(t, edge, "in", netnstest.EdgeInsideIPv6+"/64")
				netnstest.AddIPv6(t, edge, "out", netnstest.EdgeOutsideIPv6+"/64")
				cfg.Routes = append(cfg.Routes, Route{Dst: fam.inside, Port: 0}, Route{Dst: fam.outside, Port: 1})
			}
			cli, srv := openRaw(t, client, "c0"), openRaw(t, server, "s0")
			cliIP, srvIP := fam.wireClient, fam.wireServer
			edge.Run(t, "ip", "neigh", "replace", cliIP.String(), "lladdr", net.HardwareAddr(cli.mac[:]).String(), "dev", "in", "nud", "permanent")
			edge.Run(t, "ip", "neigh", "replace", srvIP.String(), "lladdr", net.HardwareAddr(srv.mac[:]).String(), "dev", "out", "nud", "permanent")
			cfg.Conntrack.Policy = conntrack.Policy{Profiles: []conntrack.Profile{conntrack.NSXGatewayProfile}, NSXCompat: nsx, NSXShadow: shadow}
			eng := startEngine(t, edge, cfg)
			inMAC, outMAC := ifaceMAC(t, edge, "in"), ifaceMAC(t, edge, "out")

			seg := func(src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32, smac, dmac [6]byte) []byte {
				return headertest.BuildEth(headertest.Spec{Src: src, Dst: dst, Proto: header.ProtoTCP, SrcPort: sport, DstPort: dport,
					Flags: flags, Seq: seq, Ack: ack, Window: 64240}, smac, dmac)
			}
			const SYN, ACK, FIN = header.TCPFlagSYN, header.TCPFlagACK, header.TCPFlagFIN
			fromServer := func(p wirePacket) bool { return p.src == srvIP && p.proto == header.ProtoTCP }
			icmpToServer := func(p wirePacket) bool { return p.dst == srvIP && p.proto == fam.icmp }

			srv.send(t, seg(srvIP, cliIP, 80, 41000, FIN|ACK, 501, 101, srv.mac, outMAC)) // the delayed FIN
			time.Sleep(50 * time.Millisecond)
			cli.send(t, seg(cliIP, srvIP, 41000, 80, SYN, 90000, 0, cli.mac, inMAC)) // the new SYN
			if got := srv.captureIP(500*time.Millisecond, func(p wirePacket) bool { return p.src == cliIP }); len(got) == 0 {
				t.Fatalf("the new SYN did not reach the server; stats %+v", eng.Stats())
			}
			srv.send(t, seg(srvIP, cliIP, 80, 41000, SYN|ACK, 70000, 90001, srv.mac, outMAC)) // its SYN-ACK
			atClient := cli.captureIP(500*time.Millisecond, fromServer)
			icmps := srv.captureIP(300*time.Millisecond, icmpToServer)
			synacks := 0
			for _, f := range atClient {
				if p, _ := parseWire(f); header.TCP(p.payload).Flags()&(SYN|ACK) == SYN|ACK {
					synacks++
				}
			}
			if !nsx {
				if synacks != 1 || len(icmps) != 0 {
					t.Fatalf("%s mode: %d SYN-ACKs at the client (want 1), %d ICMP errors at the server (want 0); stats %+v",
						mode, synacks, len(icmps), eng.Stats())
				}
				var want uint64
				if shadow {
					want = 1
				}
				if c := eng.table.Stats().Counters; c[conntrack.CtrNSXWouldDrop] != want || c[conntrack.CtrNSXWouldFail] != want {
					t.Fatalf("%s mode: nsx_would_drop %d, nsx_would_fail %d, want %d", mode,
						c[conntrack.CtrNSXWouldDrop], c[conntrack.CtrNSXWouldFail], want)
				}
				return
			}
			if synacks != 0 || len(icmps) != 1 {
				t.Fatalf("nsx mode: %d SYN-ACKs at the client (want 0), %d ICMP errors at the server (want 1); stats %+v",
					synacks, len(icmps), eng.Stats())
			}
			if p, _ := parseWire(icmps[0]); p.payload[0] != fam.unreachable || p.payload[1] != fam.portUnreachable {
				t.Fatalf("nsx mode: ICMP %d/%d, want %d/%d", p.payload[0], p.payload[1], fam.unreachable, fam.portUnreachable)
			}
		})
	}
}
