package dataplane

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/asavie/xdp"

	"github.com/edgegw/edge/internal/netnstest"
)

// TestXSKCloseReleases opens and closes an AF_XDP socket on the same queue
// again and again: Close must unmap the rings (their mappings hold the
// socket, which then stays bound to the queue and the next bind fails with
// EBUSY), and a frame's slice must end with its frame.
func TestXSKCloseReleases(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t, "xsk")
	netnstest.Veth(t, ns, "x0", "10.98.0.1/24", ns, "x1", "10.98.0.2/24")
	const frameSize = 2048
	opts := xdp.SocketOptions{NumFrames: 64, FrameSize: frameSize, FillRingNumDescs: 32,
		CompletionRingNumDescs: 32, RxRingNumDescs: 32, TxRingNumDescs: 32}
	err := ns.Do(func() error {
		ifc, err := net.InterfaceByName("x0")
		if err != nil {
			return err
		}
		// t.Fatal cannot run here (not the test's goroutine): errors return.
		before := socketMappings()
		for i := range 20 {
			// The kernel frees a closed socket's hold on its queue in
			// deferred work: a bind right after Close may see EBUSY.
			var sock *xdp.Socket
			netnstest.WaitFor(2*time.Second, func() bool { sock, err = xdp.NewSocket(ifc.Index, 0, &opts); return err == nil })
			if err != nil {
				return fmt.Errorf("bind %d on a queue whose earlier sockets were closed: %w", i, err)
			}
			if n := socketMappings(); n != before+4 {
				t.Errorf("an open socket has %d ring mappings, want 4", n-before)
			}
			descs := sock.GetDescs(opts.NumFrames)
			for _, d := range descs {
				if f := sock.GetFrame(d); cap(f) != frameSize {
					return fmt.Errorf("frame at %d: capacity %d runs past its %d-byte frame", d.Addr, cap(f), frameSize)
				}
				// A descriptor inside its frame (the kernel's RX headroom):
				// the capacity still ends with the frame.
				d.Addr += 256
				d.Len = 100
				if f := sock.GetFrame(d); cap(f) != frameSize-256 {
					return fmt.Errorf("frame at %d (offset 256): capacity %d, want %d", d.Addr, cap(f), frameSize-256)
				}
			}
			sock.Release(descs)
			if err := sock.Close(); err != nil {
				return err
			}
			if n := socketMappings(); n != before {
				return fmt.Errorf("after Close %d ring mappings remain", n-before)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// socketMappings counts this process's mappings of sockets (an AF_XDP
// socket's rings) in /proc/self/maps (-1 if unreadable).
func socketMappings() int {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return -1
	}
	return strings.Count(string(b), "socket:[") + strings.Count(string(b), "xdp")
}
