package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
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

// TCPHairpinResult is what the TCP hairpin probe found.
type TCPHairpinResult struct {
	ALocal  string `json:"a_local"`
	AMapped string `json:"a_mapped"`
	BLocal  string `json:"b_local"`
	BMapped string `json:"b_mapped"`
	// AErr and BErr: why A's (B's) connection to the other's mapping
	// failed ("" when it connected).
	AErr string `json:"a_err,omitempty"`
	BErr string `json:"b_err,omitempty"`
	// Hairpin: both connections were established and carried a token each
	// way. A TCP connection can only be established with the address it
	// was opened to, so each saw the other's external mapping as its peer.
	Hairpin bool `json:"hairpin"`
}

// TCPHairpin checks TCP hairpinning (RFC 5382 REQ-8) the way TCP hole
// punching does it: A and B learn their TCP mappings from the STUN server
// over connections they keep open, then, from the same local ports, both
// open a connection to the other's mapping at once. A NAT whose filter
// drops the first unsolicited SYN still lets the other side's SYN through
// (its mapping has sent toward the peer), and the two meet in a TCP
// simultaneous open. A refused attempt is retried until timeout.
func TCPHairpin(ctx context.Context, server, aLocal, bLocal netip.AddrPort, timeout time.Duration) (TCPHairpinResult, error) {
	var r TCPHairpinResult
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type side struct {
		local, mapped netip.AddrPort
	}
	learn := func(local netip.AddrPort) (side, error) {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(local), Timeout: timeout, Control: reuseAddr}
		c, err := d.DialContext(ctx, "tcp", server.String())
		if err != nil {
			return side{}, err
		}
		// The STUN connection stays open until the probe ends: it keeps the
		// mapping alive.
		context.AfterFunc(ctx, func() { c.Close() })
		a := c.LocalAddr().(*net.TCPAddr).AddrPort()
		m, err := tcpBinding(c.(*net.TCPConn), timeout)
		return side{netip.AddrPortFrom(a.Addr().Unmap(), a.Port()), m}, err
	}
	a, err := learn(aLocal)
	if err != nil {
		return r, fmt.Errorf("host A's TCP mapping: %w", err)
	}
	b, err := learn(bLocal)
	if err != nil {
		return r, fmt.Errorf("host B's TCP mapping: %w", err)
	}
	r.ALocal, r.AMapped, r.BLocal, r.BMapped = a.local.String(), a.mapped.String(), b.local.String(), b.mapped.String()

	token := make([]byte, 24)
	copy(token, "tcp hairpin ")
	if _, err := rand.Read(token[12:]); err != nil {
		return r, err
	}
	deadline := time.Now().Add(timeout)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []struct{ from, to side }{{a, b}, {b, a}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = punch(ctx, s.from.local, s.to.mapped, token, deadline)
		}()
	}
	wg.Wait()
	if errs[0] != nil {
		r.AErr = errs[0].Error()
	}
	if errs[1] != nil {
		r.BErr = errs[1].Error()
	}
	r.Hairpin = errs[0] == nil && errs[1] == nil
	return r, nil
}

// punch opens a connection from local to peer (again after a refusal, a
// short pause apart, until deadline), then sends token and reads the
// peer's.
func punch(ctx context.Context, local, peer netip.AddrPort, token []byte, deadline time.Time) error {
	var c net.Conn
	var err error
	for {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(local), Deadline: deadline, Control: reuseAddr}
		c, err = d.DialContext(ctx, "tcp", peer.String())
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().Add(50*time.Millisecond).After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(token); err != nil {
		return err
	}
	got := make([]byte, len(token))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("reading the peer's token: %w", err)
	}
	if !bytes.Equal(got, token) {
		return fmt.Errorf("the peer sent %q, not the token", got)
	}
	return nil
}
