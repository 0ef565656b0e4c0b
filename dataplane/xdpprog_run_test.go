package dataplane

import (
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/edgegw/edge/internal/netnstest"
)

// TestXDPProgramClassifies runs the program on frames in the kernel
// (BPF_PROG_TEST_RUN, no interface) and checks what it does with each: what
// the kernel must see (ARP, neighbour discovery, link-scope multicast such
// as MLD, IGMP and VRRP, which edge never forwards) passes; other IP goes to
// the queue's AF_XDP socket, and with none registered is dropped (fail
// closed); other EtherTypes are dropped.
func TestXDPProgramClassifies(t *testing.T) {
	netnstest.Require(t)
	prog, err := NewProgram(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })

	eth := func(etherType uint16, payload []byte) []byte {
		f := make([]byte, 14, 14+len(payload))
		copy(f[0:6], []byte{0x01, 0x00, 0x5e, 0, 0, 0x16})
		copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 1})
		binary.BigEndian.PutUint16(f[12:], etherType)
		return append(f, payload...)
	}
	ipv4 := func(proto byte, dst [4]byte) []byte {
		ip := make([]byte, 40)
		ip[0], ip[8], ip[9] = 0x45, 1, proto
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		copy(ip[12:], []byte{10, 0, 0, 2})
		copy(ip[16:], dst[:])
		return eth(0x0800, ip)
	}
	ipv6 := func(next byte, dst [16]byte, icmpType byte) []byte {
		ip := make([]byte, 48)
		ip[0], ip[6], ip[7] = 0x60, next, 255
		binary.BigEndian.PutUint16(ip[4:], 8)
		ip[8], ip[9] = 0xfe, 0x80
		copy(ip[24:], dst[:])
		ip[40] = icmpType
		return eth(0x86dd, ip)
	}
	v6 := func(b0, b1, last byte) (a [16]byte) { a[0], a[1], a[15] = b0, b1, last; return }

	for _, tc := range []struct {
		name  string
		frame []byte
		want  uint32
	}{
		{"arp", eth(0x0806, make([]byte, 28)), xdpPass},
		{"ipv4 unicast udp", ipv4(17, [4]byte{203, 0, 113, 2}), xdpDrop},
		{"ipv4 igmp to 224.0.0.22", ipv4(2, [4]byte{224, 0, 0, 22}), xdpPass},
		{"ipv4 vrrp to 224.0.0.18", ipv4(112, [4]byte{224, 0, 0, 18}), xdpPass},
		{"ipv4 224.0.1.1 (not link scope)", ipv4(17, [4]byte{224, 0, 1, 1}), xdpDrop},
		{"ipv4 239.0.0.1", ipv4(17, [4]byte{239, 0, 0, 1}), xdpDrop},
		{"ipv6 neighbour solicitation", ipv6(58, v6(0xff, 0x02, 1), 135), xdpPass},
		{"ipv6 neighbour solicitation to unicast", ipv6(58, v6(0x20, 0x01, 1), 135), xdpPass},
		{"ipv6 mld report (hop-by-hop) to ff02::16", ipv6(0, v6(0xff, 0x02, 0x16), 0), xdpPass},
		{"ipv6 ff12::1 (transient, link scope)", ipv6(17, v6(0xff, 0x12, 1), 0), xdpPass},
		{"ipv6 ff05::1 (site scope)", ipv6(17, v6(0xff, 0x05, 1), 0), xdpDrop},
		{"ipv6 ff0e::1 (global scope)", ipv6(17, v6(0xff, 0x0e, 1), 0), xdpDrop},
		{"ipv6 echo request to unicast", ipv6(58, v6(0x20, 0x01, 2), 128), xdpDrop},
		{"ipv6 unicast udp", ipv6(17, v6(0x20, 0x01, 2), 0), xdpDrop},
		{"vlan tagged", eth(0x8100, make([]byte, 46)), xdpDrop},
	} {
		got, err := prog.prog.Run(&ebpf.RunOptions{Data: tc.frame})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s: action %d, want %d", tc.name, got, tc.want)
		}
	}
}
