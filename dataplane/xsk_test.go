package dataplane

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

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

// TestXSKSharedUMEM binds the socket of the outside interface to the UMEM
// of the inside one's (XDP_SHARED_UMEM, each with its own fill and
// completion rings) and forwards a datagram from the client to the server
// from the frame it arrived in: the frame received on the inside is
// transmitted on the outside as it is, completes on the outside's
// completion ring, and the server receives it.
func TestXSKSharedUMEM(t *testing.T) {
	netnstest.Require(t)
	client, edge, server := netnstest.Gateway(t, "shu")
	opts := xdp.SocketOptions{NumFrames: 64, FrameSize: 2048, FillRingNumDescs: 16,
		CompletionRingNumDescs: 16, RxRingNumDescs: 16, TxRingNumDescs: 16, Mode: xdp.ModeCopy, NeedWakeup: true}
	var in, out *xdp.Socket
	var prog *Program
	var serverMAC net.HardwareAddr
	if err := server.Do(func() error {
		ifc, err := net.InterfaceByName("s0")
		serverMAC = ifc.HardwareAddr
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var outMAC net.HardwareAddr
	err := edge.Do(func() error {
		ifIn, err := net.InterfaceByName("in")
		if err != nil {
			return err
		}
		ifOut, err := net.InterfaceByName("out")
		if err != nil {
			return err
		}
		outMAC = ifOut.HardwareAddr
		if in, err = xdp.NewSocket(ifIn.Index, 0, &opts); err != nil {
			return err
		}
		if out, err = xdp.NewSharedSocket(ifOut.Index, 0, in, &opts); err != nil {
			return fmt.Errorf("a socket on %s sharing the UMEM of %s's: %w", ifOut.Name, ifIn.Name, err)
		}
		if prog, err = NewProgram(1); err != nil {
			return err
		}
		if err := prog.Register(0, in.FD()); err != nil {
			return err
		}
		return prog.Attach(ifIn.Index)
	})
	t.Cleanup(func() {
		if prog != nil {
			prog.Close()
		}
		if out != nil {
			out.Close()
		}
		if in != nil {
			in.Close()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if in.FreeFrames() != 64 || out.FreeFrames() != 64 {
		t.Fatalf("free frames: inside %d, outside %d; want the one stack of 64", in.FreeFrames(), out.FreeFrames())
	}
	in.Fill(in.GetDescs(16))
	out.Fill(out.GetDescs(16))
	if in.FreeFrames() != 32 {
		t.Fatalf("after filling both fill rings, %d frames free, want 32", in.FreeFrames())
	}

	var got []byte
	var addr uint64
	payload := []byte("shared umem")
	var lc *net.UDPConn
	if err := server.Do(func() (err error) {
		lc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(203, 0, 113, 2), Port: 9000})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	send := func() {
		t.Helper()
		if err := client.Do(func() error {
			c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(203, 0, 113, 2), Port: 9000})
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write(payload)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	for try := 0; try < 50 && got == nil; try++ {
		send()
		netnstest.WaitFor(100*time.Millisecond, func() bool {
			if in.FillNeedsWakeup() {
				in.Wakeup()
			}
			rx := in.Receive(1)
			if len(rx) == 0 {
				return false
			}
			f := in.GetFrame(rx[0])
			if len(f) < 14+28+len(payload) || f[23] != 17 {
				in.Fill(rx)
				return false
			}
			addr = rx[0].Addr
			copy(f[0:6], serverMAC)
			copy(f[6:12], outMAC)
			got = f
			if a, ok := out.Addr(f); !ok || a != addr {
				t.Errorf("Addr of a received frame: %d %v, want %d", a, ok, addr)
			}
			if n := out.Submit(rx); n != 1 {
				t.Errorf("outside socket took %d of 1 descriptor", n)
			}
			out.Kick()
			return true
		})
	}
	if got == nil {
		t.Fatal("no datagram from the client reached the inside socket")
	}
	buf := make([]byte, 64)
	lc.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := lc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("the server did not receive the frame sent from the shared UMEM: %v", err)
	}
	if string(buf[:n]) != string(payload) {
		t.Fatalf("server received %q, want %q", buf[:n], payload)
	}
	var done []uint64
	netnstest.WaitFor(time.Second, func() bool {
		if c := out.NumCompleted(); c > 0 {
			done = append(done, out.Complete(c)...)
		}
		return len(done) > 0
	})
	if len(done) != 1 || done[0] != addr&^2047 {
		t.Fatalf("outside completion ring gave back %v, want the frame at %d", done, addr&^2047)
	}
	if x := in.NumCompleted(); x != 0 {
		t.Fatalf("inside completion ring has %d entries; the outside's own ring must take them", x)
	}

	// The UMEM outlives the socket that registered it while another is
	// bound to it, and is unmapped with the last one.
	umemMapped := func() bool { return mapped(uintptr(unsafe.Pointer(&got[:1][0]))) }
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	if !umemMapped() {
		t.Fatal("closing the socket that registered the UMEM unmapped it while another socket uses it")
	}
	if string(out.GetFrame(xdp.Desc{Addr: addr, Len: uint32(len(got))})[42:]) != string(payload) {
		t.Fatal("the shared UMEM's frame changed after the first socket closed")
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if umemMapped() {
		t.Fatal("the UMEM is still mapped after its last socket closed")
	}
	in, out = nil, nil
}

// mapped reports whether address a is in one of this process's mappings
// (/proc/self/maps).
func mapped(a uintptr) bool {
	b, _ := os.ReadFile("/proc/self/maps")
	for _, line := range strings.Split(string(b), "\n") {
		var lo, hi uintptr
		if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err == nil && lo <= a && a < hi {
			return true
		}
	}
	return false
}
