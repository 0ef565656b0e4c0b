// Copyright 2019 Asavie Technologies Ltd. All rights reserved.
//
// Use of this source code is governed by a BSD-style license
// that can be found in the LICENSE file in the root of the source
// tree.

/*
Package xdp allows to use XDP sockets from Go.

An XDP socket allows to get packets from a network interface driver into
a userspace process very fast, bypassing the Linux kernel's network
stack, see https://lwn.net/Articles/750845/ for more information.

NOTE:

* If your network link device supports multiple queues - you might
not see all of the incoming traffic because it might be e.g. load-balanced
between multiple queues. You can use the `ethtool -L` command to control the
load-balancing behaviour or even make it so that all of the incoming traffic
is put on a single queue.

* On recent versions of Linux kernel, the eBPF map memory counts towards the
"locked memory" user limit, so most likely you'll have to increase it. On
Fedora Linux, this can be done by running `ulimit -l <new-limit>` command, or
to make it permanent, by creating a file at
`/etc/security/limits.d/50-lockedmem.conf` with e.g. the following contents
(1MiB should be enough for this package):
  - - lockedmem 1048576

logging out and logging back in.
When you hit this limit, you'll get an error that looks like this:

	error: failed to create an XDP socket: ebpf.NewMap qidconf_map failed: map create: operation not permitted

Here is a minimal example of a program which receives network frames,
modifies their destination MAC address in-place to broadcast address and
transmits them back out the same network link:

	package main

	import (
		"os"
		"os/signal"
		"syscall"

		"github.com/asavie/xdp"
		"github.com/vishvananda/netlink"
	)

	func main() {
		const LinkName = "enp6s0"
		const QueueID = 0

		link, err := netlink.LinkByName(LinkName)
		if err != nil {
			panic(err)
		}

		program, err := xdp.NewProgram(QueueID + 1)
		if err != nil {
			panic(err)
		}
		if err := program.Attach(link.Attrs().Index); err != nil {
			panic(err)
		}

		xsk, err := xdp.NewSocket(link.Attrs().Index, QueueID, nil)
		if err != nil {
			panic(err)
		}

		if err := program.Register(QueueID, xsk.FD()); err != nil {
			panic(err)
		}

		// Remove the XDP BPF program on interrupt.
		c := make(chan os.Signal)
		signal.Notify(c, os.Interrupt, syscall.SIGTERM)
		go func() {
			<-c
			program.Detach(link.Attrs().Index)
			os.Exit(1)
		}()

		for {
			xsk.Fill(xsk.GetDescs(xsk.NumFreeFillSlots()))
			numRx, _, err := xsk.Poll(-1)
			if err != nil {
				panic(err)
			}
			rxDescs := xsk.Receive(numRx)
			for i := 0; i < len(rxDescs); i++ {
				// Set destination MAC address to
				// ff:ff:ff:ff:ff:ff
				frame := xsk.GetFrame(rxDescs[i])
				for i := 0; i < 6; i++ {
					frame[i] = byte(0xff)
				}
			}
			xsk.Transmit(rxDescs)
		}
	}
*/
package xdp

import (
	"fmt"
	"reflect"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// DefaultSocketOptions is the default SocketOptions used by an xdp.Socket created without specifying options.
var DefaultSocketOptions = SocketOptions{
	NumFrames:              128,
	FrameSize:              2048,
	FillRingNumDescs:       64,
	CompletionRingNumDescs: 64,
	RxRingNumDescs:         64,
	TxRingNumDescs:         64,
}

type umemRing struct {
	Producer *uint32
	Consumer *uint32
	Flags    *uint32
	Descs    []uint64
}

type rxTxRing struct {
	Producer *uint32
	Consumer *uint32
	Flags    *uint32
	Descs    []Desc
}

// A Socket is an implementation of the AF_XDP Linux socket type for reading packets from a device.
type Socket struct {
	fd             int
	umem           []byte
	fillRing       umemRing
	rxRing         rxTxRing
	txRing         rxTxRing
	completionRing umemRing
	qidconfMap     *ebpf.Map
	xsksMap        *ebpf.Map
	program        *ebpf.Program
	ifindex        int
	numTransmitted int
	numFilled      int
	frames         *frameStack // edge patch: frames owned by no one, shared by the sockets of one UMEM
	options        SocketOptions
	rxDescs        []Desc
	getDescs       []Desc
	zeroCopy       bool     // edge patch: bound in zero-copy mode
	hugeUMEM       bool     // edge patch: UMEM on hugepages
	lastErr        error    // edge patch: the last sendto error (Transmit no longer panics)
	busy           uint64   // edge patch: sendto calls answered EBUSY (device drops)
	ringMaps       [][]byte // edge patch: the rings' mappings, unmapped by Close (they hold the socket)
}

// frameStack is the stack of free frame addresses of one UMEM, shared by
// every socket bound to it (edge patch 13), and the count of those sockets
// (the last Close unmaps the UMEM).
type frameStack struct {
	free []uint64
	refs int
}

// SocketOptions are configuration settings used to bind an XDP socket.
type SocketOptions struct {
	NumFrames              int
	FrameSize              int
	FillRingNumDescs       int
	CompletionRingNumDescs int
	RxRingNumDescs         int
	TxRingNumDescs         int

	// edge patch: NeedWakeup binds with XDP_USE_NEED_WAKEUP: the kernel
	// says (ring flags) when it must be kicked, so an idle or busy socket
	// costs no syscalls (see FillNeedsWakeup, TxNeedsWakeup, Wakeup).
	NeedWakeup bool
	// edge patch: Mode chooses copy or zero-copy; ModeAuto tries zero-copy
	// first and falls back to copy mode (veth supports only copy).
	Mode Mode
	// edge patch: Hugepages puts the UMEM on 2 MiB hugepages
	// (MAP_HUGETLB) when enough are reserved, else on normal pages.
	Hugepages bool
}

// Mode is an AF_XDP bind mode (edge patch).
type Mode int

const (
	ModeAuto     Mode = iota // zero-copy if the driver supports it, else copy
	ModeCopy                 // XDP_COPY
	ModeZeroCopy             // XDP_ZEROCOPY, failing if unsupported
)

// Desc represents an XDP Rx/Tx descriptor.
type Desc unix.XDPDesc

// Stats contains various counters of the XDP socket, such as numbers of
// sent/received frames.
type Stats struct {
	// Filled is the number of items consumed thus far by the Linux kernel
	// from the Fill ring queue.
	Filled uint64

	// Received is the number of items consumed thus far by the user of
	// this package from the Rx ring queue.
	Received uint64

	// Transmitted is the number of items consumed thus far by the Linux
	// kernel from the Tx ring queue.
	Transmitted uint64

	// Completed is the number of items consumed thus far by the user of
	// this package from the Completion ring queue.
	Completed uint64

	// KernelStats contains the in-kernel statistics of the corresponding
	// XDP socket, such as the number of invalid descriptors that were
	// submitted into Fill or Tx ring queues.
	KernelStats unix.XDPStatistics
}

// DefaultSocketFlags are the flags which are passed to bind(2) system call
// when the XDP socket is bound, possible values include unix.XDP_SHARED_UMEM,
// unix.XDP_COPY, unix.XDP_ZEROCOPY.
var DefaultSocketFlags uint16

// DefaultXdpFlags are the flags which are passed when the XDP program is
// attached to the network link, possible values include
// unix.XDP_FLAGS_DRV_MODE, unix.XDP_FLAGS_HW_MODE, unix.XDP_FLAGS_SKB_MODE,
// unix.XDP_FLAGS_UPDATE_IF_NOEXIST.
var DefaultXdpFlags uint32

func init() {
	DefaultSocketFlags = 0
	DefaultXdpFlags = 0
}

// NewSocket returns a new XDP socket attached to the network interface which
// has the given interface, and attached to the given queue on that network
// interface.
func NewSocket(Ifindex int, QueueID int, options *SocketOptions) (xsk *Socket, err error) {
	return newSocket(Ifindex, QueueID, options, nil)
}

// NewSharedSocket returns an XDP socket on the given interface and queue
// that shares the UMEM of socket shared (XDP_SHARED_UMEM; edge patch 13):
// a frame received on either socket may be transmitted by the other, and
// both take free frames from, and give them back to, one stack (GetDescs,
// Release, Complete). The new socket has its own fill and completion rings
// (Linux 5.10 and later for another interface or queue), sized by options;
// NumFrames, FrameSize, Hugepages, Mode and NeedWakeup come from shared
// (the kernel binds it in shared's mode). The sockets of one UMEM must be
// used from one goroutine. The UMEM is unmapped when the last of its
// sockets closes.
func NewSharedSocket(Ifindex int, QueueID int, shared *Socket, options *SocketOptions) (*Socket, error) {
	if shared == nil || shared.fd < 0 || shared.frames == nil {
		return nil, fmt.Errorf("NewSharedSocket: no open socket to share a UMEM with")
	}
	if options == nil {
		options = &DefaultSocketOptions
	}
	o := *options
	o.NumFrames, o.FrameSize = shared.options.NumFrames, shared.options.FrameSize
	o.Hugepages, o.Mode, o.NeedWakeup = shared.options.Hugepages, shared.options.Mode, shared.options.NeedWakeup
	return newSocket(Ifindex, QueueID, &o, shared)
}

// newSocket makes a socket with its own UMEM (shared nil) or bound to
// shared's UMEM.
func newSocket(Ifindex int, QueueID int, options *SocketOptions, shared *Socket) (xsk *Socket, err error) {
	if options == nil {
		options = &DefaultSocketOptions
	}
	xsk = &Socket{fd: -1, ifindex: Ifindex, options: *options}

	xsk.fd, err = syscall.Socket(unix.AF_XDP, syscall.SOCK_RAW, 0)
	if err != nil {
		return nil, fmt.Errorf("syscall.Socket failed: %v", err)
	}

	if shared != nil {
		// edge patch 13: the UMEM is shared's; only the rings are this
		// socket's. The fill and completion rings set below are the
		// socket's own (fq_tmp/cq_tmp), which bind gives to the new
		// (interface, queue).
		xsk.umem, xsk.hugeUMEM, xsk.zeroCopy = shared.umem, shared.hugeUMEM, shared.zeroCopy
		xsk.frames = shared.frames
		xsk.frames.refs++
	} else if err = xsk.registerUMEM(options); err != nil {
		return nil, err
	}

	err = syscall.SetsockoptInt(xsk.fd, unix.SOL_XDP, unix.XDP_UMEM_FILL_RING,
		options.FillRingNumDescs)
	if err != nil {
		xsk.Close()
		return nil, fmt.Errorf("unix.SetsockoptUint64 XDP_UMEM_FILL_RING failed: %v", err)
	}

	err = unix.SetsockoptInt(xsk.fd, unix.SOL_XDP, unix.XDP_UMEM_COMPLETION_RING,
		options.CompletionRingNumDescs)
	if err != nil {
		xsk.Close()
		return nil, fmt.Errorf("unix.SetsockoptUint64 XDP_UMEM_COMPLETION_RING failed: %v", err)
	}

	var rxRing bool
	if options.RxRingNumDescs > 0 {
		err = unix.SetsockoptInt(xsk.fd, unix.SOL_XDP, unix.XDP_RX_RING,
			options.RxRingNumDescs)
		if err != nil {
			xsk.Close()
			return nil, fmt.Errorf("unix.SetsockoptUint64 XDP_RX_RING failed: %v", err)
		}
		rxRing = true
	}

	var txRing bool
	if options.TxRingNumDescs > 0 {
		err = unix.SetsockoptInt(xsk.fd, unix.SOL_XDP, unix.XDP_TX_RING,
			options.TxRingNumDescs)
		if err != nil {
			xsk.Close()
			return nil, fmt.Errorf("unix.SetsockoptUint64 XDP_TX_RING failed: %v", err)
		}
		txRing = true
	}

	if !(rxRing || txRing) {
		xsk.Close() // edge patch: the socket and UMEM were leaked
		return nil, fmt.Errorf("RxRingNumDescs and TxRingNumDescs cannot both be set to zero")
	}

	var errno syscall.Errno
	var rc uintptr
	var offsets unix.XDPMmapOffsets
	var vallen uint32
	vallen = uint32(unsafe.Sizeof(offsets))
	rc, _, errno = unix.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(xsk.fd),
		unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&offsets)),
		uintptr(unsafe.Pointer(&vallen)), 0)
	if rc != 0 {
		xsk.Close()
		return nil, fmt.Errorf("unix.Syscall6 getsockopt XDP_MMAP_OFFSETS failed: %v", errno)
	}

	fillRingSlice, err := syscall.Mmap(xsk.fd, unix.XDP_UMEM_PGOFF_FILL_RING,
		int(offsets.Fr.Desc+uint64(options.FillRingNumDescs)*uint64(unsafe.Sizeof(uint64(0)))),
		syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		xsk.Close()
		return nil, fmt.Errorf("syscall.Mmap XDP_UMEM_PGOFF_FILL_RING failed: %v", err)
	}
	xsk.ringMaps = append(xsk.ringMaps, fillRingSlice) // edge patch

	xsk.fillRing.Producer = (*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(&fillRingSlice[0])) + uintptr(offsets.Fr.Producer)))
	xsk.fillRing.Consumer = (*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(&fillRingSlice[0])) + uintptr(offsets.Fr.Consumer)))
	xsk.fillRing.Flags = (*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(&fillRingSlice[0])) + uintptr(offsets.Fr.Flags)))
	sh := (*reflect.SliceHeader)(unsafe.Pointer(&xsk.fillRing.Descs))
	sh.Data = uintptr(unsafe.Pointer(&fillRingSlice[0])) + uintptr(offsets.Fr.Desc)
	sh.Len = options.FillRingNumDescs
	sh.Cap = options.FillRingNumDescs

	completionRingSlice, err := syscall.Mmap(xsk.fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING,
		int(offsets.Cr.Desc+uint64(options.CompletionRingNumDescs)*uint64(unsafe.Sizeof(uint64(0)))),
		syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		xsk.Close()
		return nil, fmt.Errorf("syscall.Mmap XDP_UMEM_PGOFF_COMPLETION_RING failed: %v", err)
	}
	xsk.ringMaps = append(xsk.ringMaps, completionRingSlice) // edge patch

	xsk.completionRing.Producer = (*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(&completionRingSlice[0])) + uintptr(offsets.Cr.Producer)))
	xsk.completionRing.Consumer = (*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(&completionRingSlice[0])) + uintptr(offsets.Cr.Consumer)))
	xsk.completionRing.Flags = (*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(&completionRingSlice[0])) + uintptr(offsets.Cr.Flags)))
	sh = (*reflect.SliceHeader)(unsafe.Pointer(&xsk.completionRing.Descs))
	sh.Data = uintptr(unsafe.Pointer(&completionRingSlice[0])) + uintptr(offsets.Cr.Desc)
	sh.Len = options.CompletionRingNumDescs
	sh.Cap = options.CompletionRingNumDescs

	if rxRing {
		rxRingSlice, err := syscall.Mmap(xsk.fd, unix.XDP_PGOFF_RX_RING,
			int(offsets.Rx.Desc+uint64(options.RxRingNumDescs)*uint64(unsafe.Sizeof(Desc{}))),
			syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_SHARED|syscall.MAP_POPULATE)
		if err != nil {
			xsk.Close()
			return nil, fmt.Errorf("syscall.Mmap XDP_PGOFF_RX_RING failed: %v", err)
		}
		xsk.ringMaps = append(xsk.ringMaps, rxRingSlice) // edge patch

		xsk.rxRing.Producer = (*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(&rxRingSlice[0])) + uintptr(offsets.Rx.Producer)))
		xsk.rxRing.Consumer = (*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(&rxRingSlice[0])) + uintptr(offsets.Rx.Consumer)))
		xsk.rxRing.Flags = (*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(&rxRingSlice[0])) + uintptr(offsets.Rx.Flags)))
		sh = (*reflect.SliceHeader)(unsafe.Pointer(&xsk.rxRing.Descs))
		sh.Data = uintptr(unsafe.Pointer(&rxRingSlice[0])) + uintptr(offsets.Rx.Desc)
		sh.Len = options.RxRingNumDescs
		sh.Cap = options.RxRingNumDescs

		xsk.rxDescs = make([]Desc, 0, options.RxRingNumDescs)
	}

	if txRing {
		txRingSlice, err := syscall.Mmap(xsk.fd, unix.XDP_PGOFF_TX_RING,
			int(offsets.Tx.Desc+uint64(options.TxRingNumDescs)*uint64(unsafe.Sizeof(Desc{}))),
			syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_SHARED|syscall.MAP_POPULATE)
		if err != nil {
			xsk.Close()
			return nil, fmt.Errorf("syscall.Mmap XDP_PGOFF_TX_RING failed: %v", err)
		}
		xsk.ringMaps = append(xsk.ringMaps, txRingSlice) // edge patch

		xsk.txRing.Producer = (*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(&txRingSlice[0])) + uintptr(offsets.Tx.Producer)))
		xsk.txRing.Consumer = (*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(&txRingSlice[0])) + uintptr(offsets.Tx.Consumer)))
		xsk.txRing.Flags = (*uint32)(unsafe.Pointer(uintptr(unsafe.Pointer(&txRingSlice[0])) + uintptr(offsets.Tx.Flags)))
		sh = (*reflect.SliceHeader)(unsafe.Pointer(&xsk.txRing.Descs))
		sh.Data = uintptr(unsafe.Pointer(&txRingSlice[0])) + uintptr(offsets.Tx.Desc)
		sh.Len = options.TxRingNumDescs
		sh.Cap = options.TxRingNumDescs
	}

	flags := DefaultSocketFlags
	if options.NeedWakeup {
		flags |= unix.XDP_USE_NEED_WAKEUP
	}
	sa := unix.SockaddrXDP{Ifindex: uint32(Ifindex), QueueID: uint32(QueueID)}
	switch {
	case shared != nil:
		// edge patch 13: no mode or wakeup flags (the kernel refuses them
		// with XDP_SHARED_UMEM: the UMEM's are used).
		sa.Flags = unix.XDP_SHARED_UMEM
		sa.SharedUmemFD = uint32(shared.fd)
		err = unix.Bind(xsk.fd, &sa)
	case options.Mode == ModeCopy:
		sa.Flags = flags | unix.XDP_COPY
		err = unix.Bind(xsk.fd, &sa)
	case options.Mode == ModeZeroCopy:
		sa.Flags = flags | unix.XDP_ZEROCOPY
		err = unix.Bind(xsk.fd, &sa)
		xsk.zeroCopy = err == nil
	default:
		sa.Flags = flags | unix.XDP_ZEROCOPY
		if err = unix.Bind(xsk.fd, &sa); err == nil {
			xsk.zeroCopy = true
		} else {
			sa.Flags = flags | unix.XDP_COPY
			err = unix.Bind(xsk.fd, &sa)
		}
	}
	if err != nil {
		xsk.Close()
		return nil, fmt.Errorf("syscall.Bind SockaddrXDP failed: %w", err) // edge patch: wrapped (errors.Is(err, unix.EBUSY))
	}

	xsk.getDescs = make([]Desc, 0, options.NumFrames)

	return xsk, nil
}

// registerUMEM maps a new UMEM, registers it with the socket and makes
// its frame stack (edge patch 13: split out of NewSocket).
func (xsk *Socket) registerUMEM(options *SocketOptions) (err error) {
	umemSize := options.NumFrames * options.FrameSize
	if options.Hugepages {
		huge := (umemSize + (2<<20 - 1)) &^ (2<<20 - 1)
		xsk.umem, err = syscall.Mmap(-1, 0, huge, syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_POPULATE|unix.MAP_HUGETLB)
		if err == nil {
			xsk.umem = xsk.umem[:umemSize]
			xsk.hugeUMEM = true
		}
	}
	if xsk.umem == nil {
		xsk.umem, err = syscall.Mmap(-1, 0, umemSize,
			syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_POPULATE)
	}
	if err != nil {
		xsk.Close()
		return fmt.Errorf("syscall.Mmap failed: %v", err)
	}

	xdpUmemReg := unix.XDPUmemReg{
		Addr:     uint64(uintptr(unsafe.Pointer(&xsk.umem[0]))),
		Len:      uint64(len(xsk.umem)),
		Size:     uint32(options.FrameSize),
		Headroom: 0,
	}

	var errno syscall.Errno
	var rc uintptr

	rc, _, errno = unix.Syscall6(syscall.SYS_SETSOCKOPT, uintptr(xsk.fd),
		unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&xdpUmemReg)),
		unsafe.Sizeof(xdpUmemReg), 0)
	if rc != 0 {
		xsk.Close()
		return fmt.Errorf("unix.SetsockoptUint64 XDP_UMEM_REG failed: %v", errno)
	}

	xsk.frames = &frameStack{free: make([]uint64, 0, options.NumFrames), refs: 1}
	for i := options.NumFrames - 1; i >= 0; i-- {
		xsk.frames.free = append(xsk.frames.free, uint64(i)*uint64(options.FrameSize))
	}
	return nil
}

// Fill submits the given descriptors to be filled (i.e. to receive frames into)
// it returns how many descriptors where actually put onto Fill ring queue.
// The descriptors can be acquired either by calling the GetDescs() method or
// by calling Receive() method.
func (xsk *Socket) Fill(descs []Desc) int {
	numFreeSlots := xsk.NumFreeFillSlots()
	if numFreeSlots < len(descs) {
		xsk.Release(descs[numFreeSlots:]) // edge patch: not lost
		descs = descs[:numFreeSlots]
	}

	prod := atomic.LoadUint32(xsk.fillRing.Producer)
	for _, desc := range descs {
		xsk.fillRing.Descs[prod&uint32(xsk.options.FillRingNumDescs-1)] = desc.Addr
		prod++
	}
	//fencer.SFence()
	atomic.StoreUint32(xsk.fillRing.Producer, prod)

	xsk.numFilled += len(descs)

	return len(descs)
}

// Receive returns the descriptors which were filled, i.e. into which frames
// were received into.
func (xsk *Socket) Receive(num int) []Desc {
	numAvailable := xsk.NumReceived()
	if num > int(numAvailable) {
		num = int(numAvailable)
	}

	descs := xsk.rxDescs[:0]
	cons := atomic.LoadUint32(xsk.rxRing.Consumer)
	//fencer.LFence()
	for i := 0; i < num; i++ {
		descs = append(descs, xsk.rxRing.Descs[cons&uint32(xsk.options.RxRingNumDescs-1)])
		cons++
	}
	//fencer.MFence()
	atomic.StoreUint32(xsk.rxRing.Consumer, cons)

	xsk.numFilled -= len(descs)

	return descs
}

// Transmit submits the given descriptors to be sent out, it returns how many
// descriptors were actually pushed onto the Tx ring queue.
// The descriptors can be acquired either by calling the GetDescs() method or
// by calling Receive() method.
func (xsk *Socket) Transmit(descs []Desc) (numSubmitted int) {
	numSubmitted = xsk.Submit(descs)
	xsk.Kick()
	return
}

// Submit is Transmit without the kick: the descriptors are placed on the Tx
// ring and the caller decides when to Kick (edge patch: edge holds kicks
// back while the device drops).
func (xsk *Socket) Submit(descs []Desc) (numSubmitted int) {
	numFreeSlots := xsk.NumFreeTxSlots()
	if len(descs) > numFreeSlots {
		xsk.Release(descs[numFreeSlots:]) // edge patch: not lost
		descs = descs[:numFreeSlots]
	}

	prod := atomic.LoadUint32(xsk.txRing.Producer)
	for _, desc := range descs {
		xsk.txRing.Descs[prod&uint32(xsk.options.TxRingNumDescs-1)] = desc
		prod++
	}
	//fencer.SFence()
	atomic.StoreUint32(xsk.txRing.Producer, prod)

	xsk.numTransmitted += len(descs)

	numSubmitted = len(descs)
	return
}

// Kick asks the kernel to process the Tx ring when it holds descriptors the
// kernel has not consumed and (with NeedWakeup) the kernel asked for it, and
// returns how many descriptors the kernel has still not consumed. Call it
// once per loop iteration even when nothing new was queued, so frames left
// in the ring are not stranded (edge patch; upstream sent once per Transmit
// and panicked on unexpected errors).
//
// edge patch 7: in copy mode one sendto consumes at most 32 descriptors
// (the kernel's TX_BATCH_SIZE) and answers EAGAIN when more remain. Kick
// used to give up after 8 calls (256 frames), which, with a 2,048-entry
// ring, let the ring fill and the caller drop (tx_full). It now repeats
// sendto while the kernel makes progress, and stops, leaving the rest for
// the next call, only when the kernel cannot take more right now:
//   - EAGAIN without progress: the completion ring is full (the caller
//     must Complete first) or the device queue is stopped (TX_BUSY);
//   - EBUSY: the device dropped the frame it was given (veth: the peer's
//     ring is full). Kicking again at once would cost one syscall per
//     dropped frame; leaving the frames in the Tx ring until the next loop
//     gives the receiver time to drain, so the ring acts as a queue.
func (xsk *Socket) Kick() int {
	if xsk.txRing.Producer == nil {
		return 0
	}
	// Bounded: at most kickCalls sendto calls (the kernel sends up to 32
	// frames per call in copy mode), of which at most kickIdle may show no
	// progress. Kernels before 6.17 publish the Tx consumer index only when
	// their cached batch runs out, so an EAGAIN after a full 32-frame batch
	// can look like no progress: a few more calls are needed to see it.
	const kickCalls, kickIdle = 16, 8
	idle := 0
	for i := 0; i < kickCalls; i++ {
		cons := atomic.LoadUint32(xsk.txRing.Consumer)
		if atomic.LoadUint32(xsk.txRing.Producer) == cons {
			return 0
		}
		if xsk.options.NeedWakeup && !xsk.TxNeedsWakeup() {
			break // the kernel is already working on the Tx ring
		}
		comp := atomic.LoadUint32(xsk.completionRing.Producer)
		rc, _, errno := unix.Syscall6(syscall.SYS_SENDTO, uintptr(xsk.fd), 0, 0, uintptr(unix.MSG_DONTWAIT), 0, 0)
		if rc == 0 || errno == unix.EINTR {
			continue
		}
		if errno == unix.EAGAIN {
			if atomic.LoadUint32(xsk.txRing.Consumer) != cons || atomic.LoadUint32(xsk.completionRing.Producer) != comp {
				continue // the 32-frame batch limit: more to send
			}
			if idle++; idle < kickIdle {
				continue
			}
			break // completion ring full or device busy: later
		}
		if errno == unix.EBUSY {
			atomic.AddUint64(&xsk.busy, 1)
			break // the device dropped a frame: let it drain
		}
		xsk.lastErr = errno
		break
	}
	return int(atomic.LoadUint32(xsk.txRing.Producer) - atomic.LoadUint32(xsk.txRing.Consumer))
}

// TxPending returns how many descriptors of the Tx ring the kernel has not
// consumed yet (edge patch).
func (xsk *Socket) TxPending() int {
	if xsk.txRing.Producer == nil {
		return 0
	}
	return int(atomic.LoadUint32(xsk.txRing.Producer) - atomic.LoadUint32(xsk.txRing.Consumer))
}

// TxBusy returns how many sendto calls answered EBUSY (the device dropped
// the frame it was handed) since the socket was made (edge patch).
// Safe from any goroutine.
func (xsk *Socket) TxBusy() uint64 { return atomic.LoadUint64(&xsk.busy) }

// FD returns the file descriptor associated with this xdp.Socket which can be
// used e.g. to do polling.
func (xsk *Socket) FD() int {
	return xsk.fd
}

// Poll blocks until kernel informs us that it has either received
// or completed (i.e. actually sent) some frames that were previously submitted
// using Fill() or Transmit() methods.
// The numReceived return value can be used as the argument for subsequent
// Receive() method call.
func (xsk *Socket) Poll(timeout int) (numReceived int, numCompleted int, err error) {
	var events int16
	if xsk.numFilled > 0 {
		events |= unix.POLLIN
	}
	if xsk.numTransmitted > 0 {
		events |= unix.POLLOUT
	}
	if events == 0 {
		return
	}

	var pfds [1]unix.PollFd
	pfds[0].Fd = int32(xsk.fd)
	pfds[0].Events = events
	for err = unix.EINTR; err == unix.EINTR; {
		_, err = unix.Poll(pfds[:], timeout)
	}
	if err != nil {
		return 0, 0, err
	}

	numReceived = xsk.NumReceived()
	if numCompleted = xsk.NumCompleted(); numCompleted > 0 {
		xsk.Complete(numCompleted)
	}

	return
}

// GetDescs takes up to n frames that no one owns and returns their
// descriptors; the caller owns them until it gives them to Fill or Transmit
// or back with Release. The slice is reused by the next call.
//
// edge patch: frames are kept on a stack (O(n) instead of a scan of every
// frame), and ownership is explicit: Receive hands received frames to the
// caller, Complete returns transmitted ones to the stack.
func (xsk *Socket) GetDescs(n int) []Desc {
	if n > len(xsk.frames.free) {
		n = len(xsk.frames.free)
	}
	descs := xsk.getDescs[:0]
	top := len(xsk.frames.free)
	for _, addr := range xsk.frames.free[top-n:] {
		descs = append(descs, Desc{Addr: addr, Len: uint32(xsk.options.FrameSize)})
	}
	xsk.frames.free = xsk.frames.free[:top-n]
	return descs
}

// Release gives frames the caller owns back to the socket (edge patch).
func (xsk *Socket) Release(descs []Desc) {
	for _, d := range descs {
		xsk.frames.free = append(xsk.frames.free, d.Addr&^uint64(xsk.options.FrameSize-1))
	}
}

// GetFrame returns the buffer containing the frame corresponding to the given
// descriptor. The returned byte slice points to the actual buffer of the
// corresponding frame, so modiyfing this slice modifies the frame contents.
//
// edge patch: the slice's capacity ends with the descriptor's frame (it ran
// to the end of the UMEM, so appending to a frame wrote into the next ones).
func (xsk *Socket) GetFrame(d Desc) []byte {
	end := d.Addr&^uint64(xsk.options.FrameSize-1) + uint64(xsk.options.FrameSize)
	return xsk.umem[d.Addr : d.Addr+uint64(d.Len) : end]
}

// Addr returns the UMEM address of frame, a slice of a frame of this
// socket's UMEM (GetFrame), and true; false when frame is not in the UMEM
// (edge patch 13: a caller transmits a received frame as it is, and copies
// anything else).
func (xsk *Socket) Addr(frame []byte) (uint64, bool) {
	if len(xsk.umem) == 0 || cap(frame) == 0 {
		return 0, false
	}
	off := uintptr(unsafe.Pointer(&frame[:1][0])) - uintptr(unsafe.Pointer(&xsk.umem[0]))
	if off >= uintptr(len(xsk.umem)) {
		return 0, false
	}
	return uint64(off), true
}

// FreeFrames returns how many frames of the UMEM no one owns (edge patch 13).
func (xsk *Socket) FreeFrames() int { return len(xsk.frames.free) }

// NumFrames and FrameSize return the UMEM's geometry (edge patch 13).
func (xsk *Socket) NumFrames() int { return xsk.options.NumFrames }

// FrameSize returns the size of a UMEM frame (edge patch 13).
func (xsk *Socket) FrameSize() int { return xsk.options.FrameSize }

// Close closes and frees the resources allocated by the Socket.
func (xsk *Socket) Close() error {
	allErrors := []error{}
	var err error

	// edge patch: the rings' mappings hold the socket (it stays bound to
	// its queue, and its memory stays mapped) until they are unmapped.
	for _, m := range xsk.ringMaps {
		if err := syscall.Munmap(m); err != nil {
			allErrors = append(allErrors, fmt.Errorf("failed to unmap a ring: %v", err))
		}
	}
	xsk.ringMaps = nil

	if xsk.fd != -1 {
		if err = unix.Close(xsk.fd); err != nil {
			allErrors = append(allErrors, fmt.Errorf("failed to close XDP socket: %v", err))
		}
		xsk.fd = -1

		var sh *reflect.SliceHeader

		sh = (*reflect.SliceHeader)(unsafe.Pointer(&xsk.completionRing.Descs))
		sh.Data = uintptr(0)
		sh.Len = 0
		sh.Cap = 0

		sh = (*reflect.SliceHeader)(unsafe.Pointer(&xsk.txRing.Descs))
		sh.Data = uintptr(0)
		sh.Len = 0
		sh.Cap = 0

		sh = (*reflect.SliceHeader)(unsafe.Pointer(&xsk.rxRing.Descs))
		sh.Data = uintptr(0)
		sh.Len = 0
		sh.Cap = 0

		sh = (*reflect.SliceHeader)(unsafe.Pointer(&xsk.fillRing.Descs))
		sh.Data = uintptr(0)
		sh.Len = 0
		sh.Cap = 0
	}

	// edge patch 13: the UMEM is unmapped by the last socket bound to it.
	if xsk.frames != nil {
		xsk.frames.refs--
	}
	if xsk.umem != nil && (xsk.frames == nil || xsk.frames.refs == 0) {
		if err := syscall.Munmap(xsk.umem); err != nil {
			allErrors = append(allErrors, fmt.Errorf("failed to unmap the UMEM: %v", err))
		}
	}
	xsk.umem = nil
	xsk.frames = nil

	if len(allErrors) > 0 {
		return allErrors[0]
	}

	return nil
}

// Complete consumes up to n descriptors from the Completion ring queue to
// which the kernel produces when it has actually transmitted a descriptor it
// got from Tx ring queue.
// You should use this method if you are doing polling on the xdp.Socket file
// descriptor yourself, rather than using the Poll() method.
//
// edge patch 13: it returns the addresses of the frames it gave back (the
// top of the free stack, valid until the next call that takes or gives
// frames), so a caller can account for them.
func (xsk *Socket) Complete(n int) []uint64 {
	cons := atomic.LoadUint32(xsk.completionRing.Consumer)
	//fencer.LFence()
	for i := 0; i < n; i++ {
		addr := xsk.completionRing.Descs[cons&uint32(xsk.options.CompletionRingNumDescs-1)]
		cons++
		xsk.frames.free = append(xsk.frames.free, addr&^uint64(xsk.options.FrameSize-1))
	}
	//fencer.MFence()
	atomic.StoreUint32(xsk.completionRing.Consumer, cons)

	xsk.numTransmitted -= n
	return xsk.frames.free[len(xsk.frames.free)-n:]
}

// NumFreeFillSlots returns how many free slots are available on the Fill ring
// queue, i.e. the queue to which we produce descriptors which should be filled
// by the kernel with incoming frames.
func (xsk *Socket) NumFreeFillSlots() int {
	prod := atomic.LoadUint32(xsk.fillRing.Producer)
	cons := atomic.LoadUint32(xsk.fillRing.Consumer)
	max := uint32(xsk.options.FillRingNumDescs)

	n := max - (prod - cons)
	if n > max {
		n = max
	}

	return int(n)
}

// NumFreeTxSlots returns how many free slots are available on the Tx ring
// queue, i.e. the queue to which we produce descriptors which should be
// transmitted by the kernel to the wire.
func (xsk *Socket) NumFreeTxSlots() int {
	prod := atomic.LoadUint32(xsk.txRing.Producer)
	cons := atomic.LoadUint32(xsk.txRing.Consumer)
	max := uint32(xsk.options.TxRingNumDescs)

	n := max - (prod - cons)
	if n > max {
		n = max
	}

	return int(n)
}

// NumReceived returns how many descriptors are there on the Rx ring queue
// which were produced by the kernel and which we have not yet consumed.
func (xsk *Socket) NumReceived() int {
	prod := atomic.LoadUint32(xsk.rxRing.Producer)
	cons := atomic.LoadUint32(xsk.rxRing.Consumer)
	max := uint32(xsk.options.RxRingNumDescs)

	n := prod - cons
	if n > max {
		n = max
	}

	return int(n)
}

// NumCompleted returns how many descriptors are there on the Completion ring
// queue which were produced by the kernel and which we have not yet consumed.
func (xsk *Socket) NumCompleted() int {
	prod := atomic.LoadUint32(xsk.completionRing.Producer)
	cons := atomic.LoadUint32(xsk.completionRing.Consumer)
	max := uint32(xsk.options.CompletionRingNumDescs)

	n := prod - cons
	if n > max {
		n = max
	}

	return int(n)
}

// NumFilled returns how many descriptors are there on the Fill ring
// queue which have not yet been consumed by the kernel.
// This method is useful if you're polling the xdp.Socket file descriptor
// yourself, rather than using the Poll() method - if it returns a number
// greater than zero it means you should set the unix.POLLIN flag.
func (xsk *Socket) NumFilled() int {
	return xsk.numFilled
}

// NumTransmitted returns how many descriptors are there on the Tx ring queue
// which have not yet been consumed by the kernel.
// Note that even after the descriptors are consumed by the kernel from the Tx
// ring queue, it doesn't mean that they have actually been sent out on the
// wire, that can be assumed only after the descriptors have been produced by
// the kernel to the Completion ring queue.
// This method is useful if you're polling the xdp.Socket file descriptor
// yourself, rather than using the Poll() method - if it returns a number
// greater than zero it means you should set the unix.POLLOUT flag.
func (xsk *Socket) NumTransmitted() int {
	return xsk.numTransmitted
}

// Stats returns various statistics for this XDP socket.
func (xsk *Socket) Stats() (Stats, error) {
	var stats Stats
	var size uint64

	stats.Filled = uint64(atomic.LoadUint32(xsk.fillRing.Consumer))
	stats.Received = uint64(atomic.LoadUint32(xsk.rxRing.Consumer))
	if xsk.txRing.Consumer != nil {
		stats.Transmitted = uint64(atomic.LoadUint32(xsk.txRing.Consumer))
	}
	if xsk.completionRing.Consumer != nil {
		stats.Completed = uint64(atomic.LoadUint32(xsk.completionRing.Consumer))
	}
	size = uint64(unsafe.Sizeof(stats.KernelStats))
	rc, _, errno := unix.Syscall6(syscall.SYS_GETSOCKOPT,
		uintptr(xsk.fd),
		unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&stats.KernelStats)),
		uintptr(unsafe.Pointer(&size)), 0)
	if rc != 0 {
		return stats, fmt.Errorf("getsockopt XDP_STATISTICS failed with errno %d", errno)
	}
	return stats, nil
}

// ZeroCopy reports whether the socket is bound in zero-copy mode (edge patch).
func (xsk *Socket) ZeroCopy() bool { return xsk.zeroCopy }

// HugepageUMEM reports whether the UMEM is on hugepages (edge patch).
func (xsk *Socket) HugepageUMEM() bool { return xsk.hugeUMEM }

// Err returns and clears the last error of a Tx kick (edge patch).
func (xsk *Socket) Err() error {
	err := xsk.lastErr
	xsk.lastErr = nil
	return err
}

// FillNeedsWakeup reports whether the kernel asked, through the Fill ring's
// flags, to be woken (poll or recvfrom) before it refills the Rx ring. Always
// true without NeedWakeup (edge patch).
func (xsk *Socket) FillNeedsWakeup() bool {
	return !xsk.options.NeedWakeup || atomic.LoadUint32(xsk.fillRing.Flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// TxNeedsWakeup reports whether the kernel asked to be kicked (sendto) to
// process the Tx ring. Always true without NeedWakeup (edge patch).
func (xsk *Socket) TxNeedsWakeup() bool {
	return xsk.txRing.Flags == nil || !xsk.options.NeedWakeup ||
		atomic.LoadUint32(xsk.txRing.Flags)&unix.XDP_RING_NEED_WAKEUP != 0
}

// Wakeup kicks the kernel for Rx (recvfrom, non-blocking), as the
// need_wakeup protocol asks when FillNeedsWakeup is true (edge patch).
func (xsk *Socket) Wakeup() {
	_, _, _ = unix.Syscall6(syscall.SYS_RECVFROM, uintptr(xsk.fd), 0, 0, uintptr(unix.MSG_DONTWAIT), 0, 0)
}
