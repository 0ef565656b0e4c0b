package dataplane

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
)

// The XDP program edge attaches to each of its interfaces. It is written
// with cilium/ebpf's assembler, so building edge needs no clang:
//
//	frame shorter than Ethernet, or an EtherType other than ARP,
//	IPv4 or IPv6 (VLAN tags included, for now)     -> XDP_DROP  (counter other)
//	ARP                                            -> XDP_PASS  (kernel)
//	IPv6 ICMPv6 types 133-137 (neighbour discovery) -> XDP_PASS
//	link-scope multicast: IPv4 224.0.0.0/24, IPv6 ff02::/16 (MLD, IGMP,
//	  VRRP, ...), never forwarded (RFC 1112, RFC 4291)   -> XDP_PASS
//	IPv4/IPv6 to a management address (mgmt maps)  -> XDP_PASS
//	any other IPv4/IPv6                            -> bpf_redirect_map(xsks, rx queue)
//	  longer than an AF_XDP frame holds (the link's MTU raised while edge
//	  runs): cut to rxFrameMax first (bpf_xdp_adjust_tail), so the worker
//	  counts it and answers with fragmentation needed / packet too big
//	  instead of the kernel dropping it unseen
//
// Fail closed: the redirect's fallback action, used when no AF_XDP socket is
// registered for the queue (edge is not running, or died), is XDP_DROP, not
// XDP_PASS: with the kernel's forwarding off, nothing crosses the box
// unfiltered. Each outcome is counted in a per-CPU array (ProgStats).
//
// XDP action codes (include/uapi/linux/bpf.h).
const (
	xdpAborted  = 0
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4
)

// Counter slots of the program's stats map.
const (
	statRedirected = iota // handed to an AF_XDP socket
	statNoSocket          // IP with no socket bound on the queue: dropped (fail closed)
	statPassed            // ARP, neighbour discovery, link-scope multicast, management traffic to the kernel
	statOther             // not ARP/IPv4/IPv6, or too short: dropped
	numStats
)

// ProgStats are the program's counters summed over CPUs.
type ProgStats struct {
	Redirected, NoSocket, Passed, Other uint64
}

// Program is edge's XDP program and its maps.
type Program struct {
	prog   *ebpf.Program
	xsks   *ebpf.Map // queue index -> AF_XDP socket
	mgmt4  *ebpf.Map // IPv4 management addresses (key: address, network order)
	mgmt6  *ebpf.Map // IPv6 management addresses
	stats  *ebpf.Map // per-CPU counters
	linked []int     // ifindexes it is attached to
}

// NewProgram loads the program with room for maxQueues queues.
func NewProgram(maxQueues int) (p *Program, err error) {
	p = &Program{}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	if p.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "edge_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4,
		MaxEntries: uint32(maxQueues)}); err != nil {
		return nil, fmt.Errorf("xdp: xsks map: %w", err)
	}
	if p.mgmt4, err = ebpf.NewMap(&ebpf.MapSpec{Name: "edge_mgmt4", Type: ebpf.Hash, KeySize: 4, ValueSize: 1,
		MaxEntries: maxManagement}); err != nil {
		return nil, fmt.Errorf("xdp: mgmt4 map: %w", err)
	}
	if p.mgmt6, err = ebpf.NewMap(&ebpf.MapSpec{Name: "edge_mgmt6", Type: ebpf.Hash, KeySize: 16, ValueSize: 1,
		MaxEntries: maxManagement}); err != nil {
		return nil, fmt.Errorf("xdp: mgmt6 map: %w", err)
	}
	if p.stats, err = ebpf.NewMap(&ebpf.MapSpec{Name: "edge_stats", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8,
		MaxEntries: numStats}); err != nil {
		return nil, fmt.Errorf("xdp: stats map: %w", err)
	}
	if p.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "edge_xdp",
		Type:         ebpf.XDP,
		License:      "Apache-2.0",
		Instructions: p.instructions(),
	}); err != nil {
		return nil, fmt.Errorf("xdp: load program: %w", err)
	}
	return p, nil
}

// instructions assembles the program. Registers: r6 ctx, r7 data, r8
// data_end, r9 scratch kept across calls.
func (p *Program) instructions() asm.Instructions {
	// count(slot) increments stats[slot]; it clobbers r0-r5.
	count := func(slot int32, label string) asm.Instructions {
		return asm.Instructions{
			asm.StoreImm(asm.RFP, -8, int64(slot), asm.Word).WithSymbol(label),
			asm.LoadMapPtr(asm.R1, p.stats.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -8),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, label+"_done"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 0).WithSymbol(label + "_done"),
		}
	}
	var ins asm.Instructions
	add := func(i ...asm.Instruction) { ins = append(ins, i...) }
	add(
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, 0, asm.Word), // ctx->data
		asm.LoadMem(asm.R8, asm.R6, 4, asm.Word), // ctx->data_end
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, 14),
		asm.JGT.Reg(asm.R2, asm.R8, "other"),
		asm.LoadMem(asm.R9, asm.R7, 12, asm.Half), // EtherType, network order read little-endian
		asm.JEq.Imm(asm.R9, 0x0608, "pass"),       // ARP 0x0806
		asm.JEq.Imm(asm.R9, 0x0008, "ipv4"),       // 0x0800
		asm.JEq.Imm(asm.R9, 0xdd86, "ipv6"),       // 0x86DD
		asm.Ja.Label("other"),

		// IPv4: management destination?
		asm.Mov.Reg(asm.R2, asm.R7).WithSymbol("ipv4"),
		asm.Add.Imm(asm.R2, 34),
		asm.JGT.Reg(asm.R2, asm.R8, "redirect"),   // too short: edge's parser counts it
		asm.LoadMem(asm.R1, asm.R7, 30, asm.Word), // destination address
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.And.Imm(asm.R2, 0x00ffffff),
		asm.JEq.Imm(asm.R2, 0x0000e0, "pass"), // 224.0.0.0/24
		asm.StoreMem(asm.RFP, -4, asm.R1, asm.Word),
		asm.LoadMapPtr(asm.R1, p.mgmt4.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, "pass"),
		asm.Ja.Label("redirect"),

		// IPv6: neighbour discovery or a management destination?
		asm.Mov.Reg(asm.R2, asm.R7).WithSymbol("ipv6"),
		asm.Add.Imm(asm.R2, 55),
		asm.JGT.Reg(asm.R2, asm.R8, "redirect"),
		asm.LoadMem(asm.R1, asm.R7, 38, asm.Half), // destination's first two bytes
		asm.And.Imm(asm.R1, 0x0fff),
		asm.JEq.Imm(asm.R1, 0x02ff, "pass"),       // ff02::/16 and ff12::/16: link scope
		asm.LoadMem(asm.R1, asm.R7, 20, asm.Byte), // next header
		asm.JNE.Imm(asm.R1, 58, "mgmt6"),
		asm.LoadMem(asm.R1, asm.R7, 54, asm.Byte), // ICMPv6 type
		asm.JLT.Imm(asm.R1, 133, "mgmt6"),
		asm.JLE.Imm(asm.R1, 137, "pass"),
		asm.LoadMem(asm.R1, asm.R7, 38, asm.Word).WithSymbol("mgmt6"), // destination address, 4 words
		asm.StoreMem(asm.RFP, -16, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, 42, asm.Word),
		asm.StoreMem(asm.RFP, -12, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, 46, asm.Word),
		asm.StoreMem(asm.RFP, -8, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, 50, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R1, asm.Word),
		asm.LoadMapPtr(asm.R1, p.mgmt6.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -16),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, "pass"),

		// A frame longer than an AF_XDP frame holds is cut to rxFrameMax
		// (the kernel would drop it whole, counted only in the socket's
		// rx_dropped); the worker recognizes it by its IP length field.
		asm.Mov.Reg(asm.R2, asm.R8).WithSymbol("redirect"),
		asm.Sub.Reg(asm.R2, asm.R7), // frame length
		asm.JLE.Imm(asm.R2, rxFrameMax, "xsk"),
		asm.Mov.Imm(asm.R1, rxFrameMax),
		asm.Sub.Reg(asm.R1, asm.R2), // negative: shrink
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnXdpAdjustTail.Call(), // on failure the frame stays whole (and the kernel drops it)

		// Everything else IP goes to the queue's socket; with none, drop.
		asm.LoadMapPtr(asm.R1, p.xsks.FD()).WithSymbol("xsk"),
		asm.LoadMem(asm.R2, asm.R6, 16, asm.Word), // ctx->rx_queue_index
		asm.Mov.Imm(asm.R3, xdpDrop),              // fallback when the slot is empty
		asm.FnRedirectMap.Call(),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.JEq.Imm(asm.R9, xdpRedirect, "count_redirect"),
	)
	add(count(statNoSocket, "count_nosock")...)
	add(asm.Mov.Reg(asm.R0, asm.R9), asm.Return())
	add(count(statRedirected, "count_redirect")...)
	add(asm.Mov.Reg(asm.R0, asm.R9), asm.Return())
	add(count(statPassed, "pass")...)
	add(asm.Mov.Imm(asm.R0, xdpPass), asm.Return())
	add(count(statOther, "other")...)
	add(asm.Mov.Imm(asm.R0, xdpDrop), asm.Return())
	return ins
}

// Attach attaches the program to the interface (native mode where the
// driver supports it, which veth does), replacing any program there. Call it
// from a thread in the interface's network namespace.
func (p *Program) Attach(ifindex int) error {
	link, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("xdp: interface %d: %w", ifindex, err)
	}
	if err := netlink.LinkSetXdpFd(link, p.prog.FD()); err != nil {
		return fmt.Errorf("xdp: attach to %s: %w", link.Attrs().Name, err)
	}
	p.linked = append(p.linked, ifindex)
	return nil
}

// Detach removes the program from every interface it was attached to,
// leaving them as found (no XDP program).
func (p *Program) Detach() error {
	var errs []error
	for _, ifindex := range p.linked {
		link, err := netlink.LinkByIndex(ifindex)
		if err == nil {
			err = netlink.LinkSetXdpFd(link, -1)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("xdp: detach from %d: %w", ifindex, err))
		}
	}
	p.linked = nil
	return errors.Join(errs...)
}

// Register makes queue's packets go to the AF_XDP socket fd.
func (p *Program) Register(queue int, fd int) error {
	return p.xsks.Put(uint32(queue), uint32(fd))
}

// Unregister empties queue's slot: its IP packets are dropped from then on.
func (p *Program) Unregister(queue int) error { return p.xsks.Delete(uint32(queue)) }

// AddManagement passes IP packets addressed to a to the kernel.
func (p *Program) AddManagement(a netip.Addr) error {
	one := uint8(1)
	if a.Is4() {
		return p.mgmt4.Put(a.As4(), one)
	}
	return p.mgmt6.Put(a.As16(), one)
}

// RemoveManagement stops passing IP packets addressed to a to the kernel:
// they go to the AF_XDP sockets like the rest. Removing an address that is
// not there is not an error.
func (p *Program) RemoveManagement(a netip.Addr) error {
	var err error
	if a.Is4() {
		err = p.mgmt4.Delete(a.As4())
	} else {
		err = p.mgmt6.Delete(a.As16())
	}
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	return err
}

// maxManagement is the capacity of each management map (per family).
const maxManagement = 64

// Stats reads the program's counters, summed over CPUs.
func (p *Program) Stats() (ProgStats, error) {
	var s ProgStats
	dst := []*uint64{&s.Redirected, &s.NoSocket, &s.Passed, &s.Other}
	for i := uint32(0); i < numStats; i++ {
		var perCPU []uint64
		if err := p.stats.Lookup(i, &perCPU); err != nil {
			return s, fmt.Errorf("xdp: stats: %w", err)
		}
		for _, v := range perCPU {
			*dst[i] += v
		}
	}
	return s, nil
}

// Close detaches the program and releases it and its maps.
func (p *Program) Close() error {
	err := p.Detach()
	for _, c := range []interface{ Close() error }{p.prog, p.xsks, p.mgmt4, p.mgmt6, p.stats} {
		if c != nil && !isNilCloser(c) {
			_ = c.Close()
		}
	}
	return err
}

func isNilCloser(c interface{ Close() error }) bool {
	switch v := c.(type) {
	case *ebpf.Program:
		return v == nil
	case *ebpf.Map:
		return v == nil
	}
	return false
}
