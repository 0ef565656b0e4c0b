package dataplane

import (
	"os"
	"testing"

	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// The XDP program cuts a frame longer than an AF_XDP frame holds to
// rxFrameMax before redirecting it (the kernel dropped it whole, uncounted
// but for the socket's rx_dropped), and leaves every other frame whole.
// Run with BPF_PROG_TEST_RUN: no socket is bound, so the verdict is the
// fail-closed drop, and the frame the program leaves is what comes out.
func TestXDPCutsOversize(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to load an XDP program")
	}
	prog, err := NewProgram(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	frame := func(size int) []byte {
		s := udpSpec(ipClient, ipServer, 1)
		s.Payload = make([]byte, size-header.EthernetLen-header.IPv4MinLen-8)
		return headertest.BuildEth(s, macClient, macEdgeIn)
	}
	for _, c := range []struct{ in, want int }{
		{64, 64},
		{rxFrameMax, rxFrameMax},
		{rxFrameMax + 1, rxFrameMax},
		{3000, rxFrameMax},
	} {
		ret, out, err := prog.prog.Test(frame(c.in))
		if err != nil {
			t.Fatalf("%d bytes: %v", c.in, err)
		}
		if ret != xdpDrop {
			t.Errorf("%d bytes: verdict %d, want the fail-closed drop", c.in, ret)
		}
		if got := len(out); got != c.want {
			t.Errorf("%d bytes in, %d out, want %d", c.in, got, c.want)
		}
	}
}
