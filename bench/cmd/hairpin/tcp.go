package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// TCPResult is what the TCP mapping probe found: the mappings that two
// STUN servers saw for two TCP connections from one local address and
// port, open at the same time. RFC 5382 REQ-1 (endpoint-independent
// mapping for TCP) wants them equal.
type TCPResult struct {
	Local   string   `json:"local"`
	Servers []string `json:"servers"`
	Mapped  []string `json:"mapped"`
	// EndpointIndependent: every server saw the same mapping.
	EndpointIndependent bool `json:"endpoint_independent"`
	// PortKept: the mapping's port is the local port.
	PortKept bool `json:"port_kept"`
}

// TCPMappings connects from local (port 0: an ephemeral port, then the same
// one for every connection) to each server in turn over TCP, keeping the
// earlier connections open, sends a Binding request on each (STUN over
// TCP has no framing of its own: RFC 5389 7.2.2) and returns the mappings
// the servers saw. Each connection waits up to timeout for its answer.
func TCPMappings(ctx context.Context, local netip.AddrPort, servers []netip.AddrPort, timeout time.Duration) (TCPResult, error) {
	r := TCPResult{}
	var mapped []netip.AddrPort
	for i, srv := range servers {
		r.Servers = append(r.Servers, srv.String())
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(local), Timeout: timeout, Control: reuseAddr}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		c, err := d.DialContext(cctx, "tcp", srv.String())
		cancel()
		if err != nil {
			return r, fmt.Errorf("connection %d to %s: %w", i+1, srv, err)
		}
		defer c.Close()
		if i == 0 {
			a := c.LocalAddr().(*net.TCPAddr).AddrPort()
			local = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
			r.Local = local.String()
		}
		m, err := tcpBinding(c.(*net.TCPConn), timeout)
		if err != nil {
			return r, fmt.Errorf("connection %d to %s: %w", i+1, srv, err)
		}
		mapped = append(mapped, m)
		r.Mapped = append(r.Mapped, m.String())
	}
	r.EndpointIndependent = len(mapped) > 0
	for _, m := range mapped {
		r.EndpointIndependent = r.EndpointIndependent && m == mapped[0]
	}
	r.PortKept = len(mapped) > 0 && mapped[0].Port() == local.Port()
	return r, nil
}

// reuseAddr sets SO_REUSEADDR, so that several connections (to different
// servers) can share one local address and port.
func reuseAddr(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	}); err != nil {
		return err
	}
	return serr
}

var errTCPLong = errors.New("STUN over TCP: message longer than 1500 bytes")

// tcpBinding sends a Binding request on c and reads answers until the one
// to it arrives or timeout passes.
func tcpBinding(c *net.TCPConn, timeout time.Duration) (netip.AddrPort, error) {
	id := newTxID()
	_ = c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(bindingRequest(id)); err != nil {
		return netip.AddrPort{}, err
	}
	buf := make([]byte, 1500)
	for {
		if _, err := io.ReadFull(c, buf[:stunHeaderLen]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
				return netip.AddrPort{}, fmt.Errorf("connection closed before the answer: %w", errNoAnswer)
			}
			return netip.AddrPort{}, fmt.Errorf("%w (%v)", errNoAnswer, err)
		}
		if !isSTUN(buf[:stunHeaderLen]) {
			return netip.AddrPort{}, errNotSTUN // no way to find the next message in the stream
		}
		n := stunHeaderLen + int(binary.BigEndian.Uint16(buf[2:]))
		if n > len(buf) {
			return netip.AddrPort{}, errTCPLong
		}
		if _, err := io.ReadFull(c, buf[stunHeaderLen:n]); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w (%v)", errNoAnswer, err)
		}
		m, err := parseBindingResponse(buf[:n], id)
		if err == nil {
			return netip.AddrPortFrom(m.Addr().Unmap(), m.Port()), nil
		}
		if !errors.Is(err, errOtherTx) {
			return netip.AddrPort{}, err
		}
	}
}
