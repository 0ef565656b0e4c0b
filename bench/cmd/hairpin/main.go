// Command hairpin checks whether a NAT hairpins UDP: two inside hosts, A
// and B, learn their external mappings from a STUN server, then B sends a
// datagram to A's external mapping; the NAT hairpins when A receives it.
// The NAT lab (bench/natlab.sh) runs it through edge and through Linux.
//
//	hairpin --server 203.0.113.2:3478 --a 10.0.0.2 --b 10.0.0.3 [--timeout 2s] [--json]
//
// --a and --b are the local addresses of the two hosts (ADDR or ADDR:PORT;
// port 0 or none: any). It prints what it learnt and the verdict; with
// --json one JSON object (see Result). A hairpinned datagram's source tells
// how the NAT translated it: RFC 4787 REQ-9 wants B's external mapping
// ("external"), so that A can answer through the NAT as it would answer
// any outside peer; "internal" means B's own address got through.
//
// Exit status: 0 when it measured (hairpinned or not), 1 when it could not
// (a STUN request unanswered: no verdict), 2 on bad usage.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
)

// Result is what one probe found.
type Result struct {
	Server  string `json:"server"`
	ALocal  string `json:"a_local"`
	AMapped string `json:"a_mapped"` // A's mapping as the STUN server saw it
	BLocal  string `json:"b_local"`
	BMapped string `json:"b_mapped"` // B's mapping as the STUN server saw it
	// Hairpin: A received B's datagram sent to A's mapping.
	Hairpin bool `json:"hairpin"`
	// SeenFrom: the source A saw on it ("" without hairpin), and
	// SourceKind: "external" (B's mapping toward the server), "internal"
	// (B's local address) or "other" (a mapping B did not get toward the
	// server: an endpoint-dependent mapping for the hairpin destination).
	SeenFrom   string `json:"seen_from,omitempty"`
	SourceKind string `json:"source_kind,omitempty"`
}

func main() {
	fs := flag.NewFlagSet("hairpin", flag.ContinueOnError)
	server := fs.String("server", "", "STUN server ADDR:PORT")
	aFlag := fs.String("a", "", "host A's local address (ADDR or ADDR:PORT)")
	bFlag := fs.String("b", "", "host B's local address (ADDR or ADDR:PORT)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for each STUN answer and for the hairpinned datagram")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	srv, err1 := netip.ParseAddrPort(*server)
	a, err2 := parseLocal(*aFlag)
	b, err3 := parseLocal(*bFlag)
	if err := errors.Join(err1, err2, err3); err != nil || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: hairpin --server ADDR:PORT --a ADDR[:PORT] --b ADDR[:PORT] [--timeout D] [--json]")
		if err != nil {
			fmt.Fprintln(os.Stderr, "hairpin:", err)
		}
		os.Exit(2)
	}
	r, err := Probe(context.Background(), srv, a, b, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hairpin:", err)
		os.Exit(1)
	}
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("A %s -> mapped %s\nB %s -> mapped %s\n", r.ALocal, r.AMapped, r.BLocal, r.BMapped)
	if r.Hairpin {
		fmt.Printf("hairpin: yes (A saw B's datagram from %s: %s)\n", r.SeenFrom, r.SourceKind)
	} else {
		fmt.Println("hairpin: no (B's datagram to A's mapping never reached A)")
	}
}

func parseLocal(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is neither ADDR nor ADDR:PORT", s)
	}
	return netip.AddrPortFrom(a, 0), nil
}

// Probe binds A and B to their local addresses, learns both mappings from
// the STUN server, sends from B to A's mapping and waits up to timeout for
// A to receive it. An unanswered STUN request is an error: no verdict.
func Probe(ctx context.Context, server, aLocal, bLocal netip.AddrPort, timeout time.Duration) (Result, error) {
	ca, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(aLocal))
	if err != nil {
		return Result{}, fmt.Errorf("host A: %w", err)
	}
	defer ca.Close()
	cb, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(bLocal))
	if err != nil {
		return Result{}, fmt.Errorf("host B: %w", err)
	}
	defer cb.Close()
	r := Result{Server: server.String(), ALocal: localOf(ca).String(), BLocal: localOf(cb).String()}
	am, err := Mapping(ctx, ca, server, timeout)
	if err != nil {
		return r, fmt.Errorf("host A's mapping: %w", err)
	}
	bm, err := Mapping(ctx, cb, server, timeout)
	if err != nil {
		return r, fmt.Errorf("host B's mapping: %w", err)
	}
	r.AMapped, r.BMapped = am.String(), bm.String()

	token := make([]byte, 24)
	copy(token, "hairpin ")
	if _, err := rand.Read(token[8:]); err != nil {
		return r, err
	}
	// B sends a few copies (a lost first one is not a verdict); A takes
	// the first datagram that carries the token and ignores anything else.
	done := make(chan struct{})
	defer close(done)
	go func() {
		for i := 0; i < 3; i++ {
			_, _ = cb.WriteToUDPAddrPort(token, am)
			select {
			case <-done:
				return
			case <-time.After(timeout / 4):
			}
		}
	}()
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = ca.SetReadDeadline(deadline)
	buf := make([]byte, 1500)
	for {
		n, from, err := ca.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return r, nil // not hairpinned
			}
			return r, fmt.Errorf("host A: %w", err)
		}
		if !bytes.Equal(buf[:n], token) {
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		r.Hairpin, r.SeenFrom, r.SourceKind = true, from.String(), sourceKind(from, localOf(cb), bm)
		return r, nil
	}
}

// sourceKind names what the source of a hairpinned datagram is.
func sourceKind(from, bLocal, bMapped netip.AddrPort) string {
	switch from {
	case bMapped:
		return "external"
	case bLocal:
		return "internal"
	}
	return "other"
}

func localOf(c *net.UDPConn) netip.AddrPort {
	a := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

var errNoAnswer = errors.New("no STUN answer")

// Mapping sends Binding requests from c to server (a new one every quarter
// of timeout) until the answer arrives or timeout passes, and returns the
// mapped address the server saw.
func Mapping(ctx context.Context, c *net.UDPConn, server netip.AddrPort, timeout time.Duration) (netip.AddrPort, error) {
	id := newTxID()
	req := bindingRequest(id)
	end := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d
	}
	buf := make([]byte, 1500)
	for time.Now().Before(end) {
		if _, err := c.WriteToUDPAddrPort(req, server); err != nil {
			return netip.AddrPort{}, err
		}
		next := time.Now().Add(timeout / 4)
		if next.After(end) {
			next = end
		}
		_ = c.SetReadDeadline(next)
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break // send again
				}
				return netip.AddrPort{}, err
			}
			m, err := parseBindingResponse(buf[:n], id)
			if err == nil {
				_ = c.SetReadDeadline(time.Time{})
				return netip.AddrPortFrom(m.Addr().Unmap(), m.Port()), nil
			}
			if errors.Is(err, errErrorReply) {
				return netip.AddrPort{}, fmt.Errorf("%s: %w", server, err)
			}
			// Anything else (another transaction, not STUN): keep waiting.
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%s after %v: %w", server, timeout, errNoAnswer)
}
