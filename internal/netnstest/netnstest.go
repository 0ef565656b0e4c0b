// Package netnstest gives tests their own network namespaces and veth pairs.
//
// Every namespace and link a test creates has a unique name and is removed
// in t.Cleanup. Tests that need it call Require first: without root (or
// without iproute2) it skips with a clear message, so `go test` stays green
// on a developer laptop, while CI (root) runs everything.
//
// Concurrency: a NS may be used from several goroutines; Do locks the calling
// goroutine to its OS thread while it is inside the namespace.
package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Require skips t unless the test can create namespaces (root and ip).
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip command")
	}
}

// NS is a network namespace owned by one test.
type NS struct {
	Name string
	h    netns.NsHandle
}

var seq atomic.Int64

// New creates a namespace named edge-<prefix>-<pid>-<n> with loopback up,
// removed when the test ends.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	name := fmt.Sprintf("edge-%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	ns := &NS{Name: name, h: h}
	ns.Run(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Run runs a command inside the namespace and fails the test if it fails.
func (ns *NS) Run(t testing.TB, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "netns", "exec", ns.Name}, args...)...)
}

// Do runs fn on a thread inside the namespace. Sockets, netlink handles and
// XDP attachments made in fn belong to the namespace.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is left locked (and so discarded by the runtime when
		// the goroutine ends) if switching back fails.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns.h); err != nil {
			errc <- err
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// Veth links namespace a (interface an, address aaddr in CIDR form) with
// namespace b (bn, baddr). IPv6 is disabled on both ends so tests see only
// the traffic they send.
func Veth(t testing.TB, a *NS, an, aaddr string, b *NS, bn, baddr string) {
	t.Helper()
	VethQueues(t, 1, a, an, aaddr, b, bn, baddr)
}

// VethQueues is Veth with q transmit and receive queues on each end (the
// kernel spreads flows over them by hash, as RSS would).
func VethQueues(t testing.TB, q int, a *NS, an, aaddr string, b *NS, bn, baddr string) {
	t.Helper()
	tmp := fmt.Sprintf("ev%d%d", os.Getpid()%100000, seq.Add(1))
	nq := fmt.Sprint(q)
	run(t, "ip", "link", "add", tmp+"a", "numtxqueues", nq, "numrxqueues", nq, "type", "veth",
		"peer", "name", tmp+"b", "numtxqueues", nq, "numrxqueues", nq)
	run(t, "ip", "link", "set", tmp+"a", "netns", a.Name, "name", an)
	run(t, "ip", "link", "set", tmp+"b", "netns", b.Name, "name", bn)
	for _, e := range []struct {
		ns   *NS
		name string
		addr string
	}{{a, an, aaddr}, {b, bn, baddr}} {
		e.ns.Run(t, "sysctl", "-qw", "net.ipv6.conf."+e.name+".disable_ipv6=1")
		if e.addr != "" {
			e.ns.Run(t, "ip", "addr", "add", e.addr, "dev", e.name)
		}
		e.ns.Run(t, "ip", "link", "set", e.name, "up")
	}
}

// NoTxChecksumOffload turns transmit checksum offload off on interface name
// in ns (ethtool -K name tx off, done with the SIOCETHTOOL ioctl). On veth a
// kernel-sent TCP/UDP packet otherwise carries only the pseudo-header sum
// (CHECKSUM_PARTIAL), which XDP and AF_XDP see as is: a gateway that
// forwards it as a complete packet would deliver a bad checksum. Real NICs
// complete checksums before the wire, so labs emulate that.
func NoTxChecksumOffload(t testing.TB, ns *NS, name string) {
	t.Helper()
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		const ethtoolSTxCsum = 0x17
		val := struct{ cmd, data uint32 }{cmd: ethtoolSTxCsum, data: 0}
		var ifr [40]byte
		copy(ifr[:unix.IFNAMSIZ-1], name)
		*(*uintptr)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = uintptr(unsafe.Pointer(&val))
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr[0])))
		runtime.KeepAlive(&val)
		if errno != 0 {
			return errno
		}
		return nil
	})
	if err != nil {
		t.Fatalf("tx checksum offload off on %s: %v", name, err)
	}
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Gateway makes the namespaces every gateway test uses, named after prefix:
// client (c0 10.0.0.2/24, default route via 10.0.0.1) -- edge (in
// 10.0.0.1/24, out 203.0.113.1/24, loopback up) -- server (s0
// 203.0.113.2/24, no route back to the client's subnet), with transmit
// checksum offload off where the kernel sends (NoTxChecksumOffload).
func Gateway(t testing.TB, prefix string) (client, edge, server *NS) {
	t.Helper()
	client, edge, server = New(t, prefix+"c"), New(t, prefix+"e"), New(t, prefix+"s")
	Veth(t, client, "c0", "10.0.0.2/24", edge, "in", "10.0.0.1/24")
	Veth(t, edge, "out", "203.0.113.1/24", server, "s0", "203.0.113.2/24")
	client.Run(t, "ip", "route", "add", "default", "via", "10.0.0.1")
	edge.Run(t, "ip", "link", "set", "lo", "up")
	NoTxChecksumOffload(t, client, "c0")
	NoTxChecksumOffload(t, server, "s0")
	return client, edge, server
}

// BuildEdge builds the edge command (pkg: its package path relative to the
// test's directory, e.g. "../cmd/edge") into a temporary directory and
// returns the binary's path. It skips under -short.
func BuildEdge(t testing.TB, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the edge binary")
	}
	bin := filepath.Join(t.TempDir(), "edge")
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build edge: %v\n%s", err, out)
	}
	return bin
}

// WaitFor polls cond every 10 ms until it holds or d has passed, and
// reports whether it held.
func WaitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
