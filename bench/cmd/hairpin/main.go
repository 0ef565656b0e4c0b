// Command hairpin checks whether a NAT hairpins UDP between two inside
// hosts, A and B: both learn their external mappings from a STUN server,
// then
//
//   - one-way: B sends to A's mapping while A has sent nothing to B. A NAT
//     whose filtering is endpoint-independent delivers it; one that filters
//     address-dependently or address-and-port-dependently (RFC 4787 REQ-8)
//     drops it, as it would an unsolicited packet from outside;
//   - two-way: A and B both send to each other's mapping, --count times,
//     --interval apart (hole punching, as ICE does). Under any filtering
//     mode each one's sends open its own mapping to the other, so both
//     directions get through once the NAT hairpins (RFC 4787 REQ-9).
//
// With --tcp-servers it checks instead the TCP mapping (RFC 5382 REQ-1):
// from one local port of A, TCP connections to each listed STUN server,
// all open at once, and the mapping each server saw (TCPResult). With
// --tcp-hairpin, TCP hairpinning (RFC 5382 REQ-8): A and B learn their TCP
// mappings over STUN, then connect to each other's mapping at once, a TCP
// simultaneous open as hole punching does (TCPHairpinResult).
//
// The NAT lab (bench/natlab.sh) runs it through edge and through Linux.
//
//	hairpin --server 203.0.113.2:3478 --a 10.0.0.2 --b 10.0.0.3 [--timeout 2s] [--count 5] [--interval 100ms] [--wait 500ms] [--json]
//	hairpin --tcp-servers 203.0.113.2:3478,203.0.113.3:3479 --a 10.0.0.2 [--timeout 2s] [--json]
//	hairpin --tcp-hairpin --server 203.0.113.2:3478 --a 10.0.0.2 --b 10.0.0.3 [--timeout 2s] [--json]
//
// --a and --b are the local addresses of the two hosts (ADDR or ADDR:PORT;
// port 0 or none: any). It prints what it learnt and the verdicts; with
// --json one JSON object (see Result). A hairpinned datagram's source tells
// how the NAT translated it: REQ-9 wants the sender's external mapping
// ("external"), so that the receiver can answer through the NAT as it would
// answer any outside peer; "internal" means the sender's own address got
// through. Hairpin (the two-way verdict) holds when both directions arrived
// from the sender's external mapping.
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
	"strings"
	"sync"
	"time"
)

// Direction is what crossed the NAT from one host to the other's mapping.
type Direction struct {
	Sent     int `json:"sent"`     // datagrams the sender sent to the receiver's mapping
	Received int `json:"received"` // how many of them the receiver got
	// SeenFrom: the source of the first one received ("" when none), and
	// SourceKind: "external" (the sender's mapping toward the server),
	// "internal" (the sender's local address) or "other" (a mapping the
	// sender did not get toward the server: an endpoint-dependent mapping
	// for the hairpin destination).
	SeenFrom   string `json:"seen_from,omitempty"`
	SourceKind string `json:"source_kind,omitempty"`
}

// Result is what one probe found.
type Result struct {
	Server  string `json:"server"`
	ALocal  string `json:"a_local"`
	AMapped string `json:"a_mapped"` // A's mapping as the STUN server saw it
	BLocal  string `json:"b_local"`
	BMapped string `json:"b_mapped"` // B's mapping as the STUN server saw it
	// OneWay: B to A's mapping, before A sent anything to B.
	OneWay Direction `json:"one_way"`
	// AToB and BToA: the two-way exchange that follows.
	AToB Direction `json:"a_to_b"`
	BToA Direction `json:"b_to_a"`
	// Hairpin: in the two-way exchange each host received the other's
	// datagrams from the other's external mapping.
	Hairpin bool `json:"hairpin"`
	// OneWayHairpin: A received B's one-way datagrams from B's external
	// mapping.
	OneWayHairpin bool `json:"one_way_hairpin"`
}

// Timing is how a probe paces its datagrams: Count copies per direction,
// Interval apart, and how long a receiver keeps listening after the last
// one was sent. STUN is the wait for each STUN answer.
type Timing struct {
	STUN     time.Duration
	Count    int
	Interval time.Duration
	Wait     time.Duration
}

func main() {
	fs := flag.NewFlagSet("hairpin", flag.ContinueOnError)
	server := fs.String("server", "", "STUN server ADDR:PORT")
	aFlag := fs.String("a", "", "host A's local address (ADDR or ADDR:PORT)")
	bFlag := fs.String("b", "", "host B's local address (ADDR or ADDR:PORT)")
	var tm Timing
	fs.DurationVar(&tm.STUN, "timeout", 2*time.Second, "how long to wait for each STUN answer")
	fs.IntVar(&tm.Count, "count", 5, "datagrams each sender sends per phase")
	fs.DurationVar(&tm.Interval, "interval", 100*time.Millisecond, "time between a sender's datagrams")
	fs.DurationVar(&tm.Wait, "wait", 500*time.Millisecond, "how long a receiver listens after the last datagram was sent")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	tcpServers := fs.String("tcp-servers", "", "ADDR:PORT,...: check the TCP mapping from --a toward these STUN servers instead")
	tcpHairpin := fs.Bool("tcp-hairpin", false, "check TCP hairpinning between --a and --b instead (a simultaneous open through the mappings)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *tcpServers != "" {
		os.Exit(tcpMain(*tcpServers, *aFlag, tm.STUN, *asJSON))
	}
	srv, err1 := netip.ParseAddrPort(*server)
	a, err2 := parseLocal(*aFlag)
	b, err3 := parseLocal(*bFlag)
	var err4 error
	if tm.Count < 1 || tm.Interval < 0 || tm.Wait < 0 || tm.STUN <= 0 {
		err4 = errors.New("--count must be >= 1, --timeout > 0, --interval and --wait >= 0")
	}
	if err := errors.Join(err1, err2, err3, err4); err != nil || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: hairpin [--tcp-hairpin] --server ADDR:PORT --a ADDR[:PORT] --b ADDR[:PORT] [--timeout D] [--count N] [--interval D] [--wait D] [--json]")
		if err != nil {
			fmt.Fprintln(os.Stderr, "hairpin:", err)
		}
		os.Exit(2)
	}
	if *tcpHairpin {
		os.Exit(tcpHairpinMain(srv, a, b, tm.STUN, *asJSON))
	}
	r, err := Probe(context.Background(), srv, a, b, tm)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hairpin:", err)
		os.Exit(1)
	}
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("A %s -> mapped %s\nB %s -> mapped %s\n", r.ALocal, r.AMapped, r.BLocal, r.BMapped)
	fmt.Printf("one-way B -> A's mapping: %s\n", r.OneWay)
	fmt.Printf("two-way A -> B's mapping: %s\n", r.AToB)
	fmt.Printf("two-way B -> A's mapping: %s\n", r.BToA)
	if r.Hairpin {
		fmt.Println("hairpin: yes (both directions, each from the sender's external mapping)")
	} else {
		fmt.Println("hairpin: no")
	}
}

// tcpMain runs the TCP mapping probe and returns the exit status.
func tcpMain(serverList, aFlag string, timeout time.Duration, asJSON bool) int {
	var servers []netip.AddrPort
	var errs []error
	for _, s := range strings.Split(serverList, ",") {
		ap, err := netip.ParseAddrPort(s)
		errs = append(errs, err)
		servers = append(servers, ap)
	}
	a, err := parseLocal(aFlag)
	if err := errors.Join(append(errs, err)...); err != nil || len(servers) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hairpin --tcp-servers ADDR:PORT,ADDR:PORT[,...] --a ADDR[:PORT] [--timeout D] [--json]")
		if err != nil {
			fmt.Fprintln(os.Stderr, "hairpin:", err)
		}
		return 2
	}
	r, err := TCPMappings(context.Background(), a, servers, timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hairpin:", err)
		return 1
	}
	if asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return 0
	}
	for i := range r.Servers {
		fmt.Printf("TCP %s -> %s: mapped %s\n", r.Local, r.Servers[i], r.Mapped[i])
	}
	fmt.Printf("TCP mapping endpoint-independent: %v, port kept: %v\n", r.EndpointIndependent, r.PortKept)
	return 0
}

// tcpHairpinMain runs the TCP hairpin probe and returns the exit status.
func tcpHairpinMain(server, a, b netip.AddrPort, timeout time.Duration, asJSON bool) int {
	r, err := TCPHairpin(context.Background(), server, a, b, timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hairpin:", err)
		return 1
	}
	if asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return 0
	}
	fmt.Printf("TCP A %s -> mapped %s\nTCP B %s -> mapped %s\n", r.ALocal, r.AMapped, r.BLocal, r.BMapped)
	if r.Hairpin {
		fmt.Println("TCP hairpin: yes (A and B connected through each other's mapping)")
	} else {
		fmt.Printf("TCP hairpin: no (A: %s; B: %s)\n", or(r.AErr, "connected"), or(r.BErr, "connected"))
	}
	return 0
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (d Direction) String() string {
	if d.Received == 0 {
		return fmt.Sprintf("0 of %d received", d.Sent)
	}
	return fmt.Sprintf("%d of %d received, from %s (%s)", d.Received, d.Sent, d.SeenFrom, d.SourceKind)
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

// host is one inside host of the probe: its socket, its local address and
// its mapping toward the STUN server.
type host struct {
	conn          *net.UDPConn
	local, mapped netip.AddrPort
}

// Probe binds A and B to their local addresses, learns both mappings from
// the STUN server, runs the one-way phase and then the two-way exchange.
// An unanswered STUN request is an error: no verdict.
func Probe(ctx context.Context, server, aLocal, bLocal netip.AddrPort, tm Timing) (Result, error) {
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
	a, b := host{conn: ca, local: localOf(ca)}, host{conn: cb, local: localOf(cb)}
	r := Result{Server: server.String(), ALocal: a.local.String(), BLocal: b.local.String()}
	if a.mapped, err = Mapping(ctx, ca, server, tm.STUN); err != nil {
		return r, fmt.Errorf("host A's mapping: %w", err)
	}
	if b.mapped, err = Mapping(ctx, cb, server, tm.STUN); err != nil {
		return r, fmt.Errorf("host B's mapping: %w", err)
	}
	r.AMapped, r.BMapped = a.mapped.String(), b.mapped.String()

	// The one-way phase comes first: once A has sent to B's mapping, a
	// dependent filter would admit B's datagrams too.
	one, err := exchange(ctx, tm, leg{from: b, to: a})
	if err != nil {
		return r, err
	}
	r.OneWay = one[0]
	two, err := exchange(ctx, tm, leg{from: a, to: b}, leg{from: b, to: a})
	if err != nil {
		return r, err
	}
	r.AToB, r.BToA = two[0], two[1]
	r.OneWayHairpin = r.OneWay.SourceKind == "external"
	r.Hairpin = r.AToB.SourceKind == "external" && r.BToA.SourceKind == "external"
	return r, nil
}

// leg is one direction of an exchange: from sends to to's mapping.
type leg struct{ from, to host }

// exchange runs the legs at once: each sender sends tm.Count datagrams
// carrying its leg's random token to the receiver's mapping, tm.Interval
// apart, and each receiver counts the datagrams with its leg's token until
// tm.Wait after the last send (anything else is ignored: a late copy of an
// earlier phase, a STUN retransmission). A receiver may take part in only
// one leg.
func exchange(ctx context.Context, tm Timing, legs ...leg) ([]Direction, error) {
	tokens := make([][]byte, len(legs))
	for i := range legs {
		tokens[i] = make([]byte, 24)
		copy(tokens[i], "hairpin ")
		if _, err := rand.Read(tokens[i][8:]); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(time.Duration(tm.Count-1)*tm.Interval + tm.Wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	out := make([]Direction, len(legs))
	errs := make([]error, len(legs))
	var wg sync.WaitGroup
	for i, l := range legs {
		wg.Add(2)
		go func() { // the sender
			defer wg.Done()
			for n := 0; n < tm.Count; n++ {
				if n > 0 {
					time.Sleep(tm.Interval)
				}
				if _, err := l.from.conn.WriteToUDPAddrPort(tokens[i], l.to.mapped); err == nil {
					out[i].Sent++
				}
			}
		}()
		go func() { // the receiver
			defer wg.Done()
			errs[i] = receive(l, tokens[i], deadline, &out[i])
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// receive counts the datagrams carrying token that reach l.to until
// deadline, and notes the source of the first one.
func receive(l leg, token []byte, deadline time.Time, d *Direction) error {
	_ = l.to.conn.SetReadDeadline(deadline)
	defer l.to.conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 1500)
	for {
		n, from, err := l.to.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return fmt.Errorf("receiving on %s: %w", l.to.local, err)
		}
		if !bytes.Equal(buf[:n], token) {
			continue
		}
		d.Received++
		if d.Received == 1 {
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			d.SeenFrom, d.SourceKind = from.String(), sourceKind(from, l.from.local, l.from.mapped)
		}
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
