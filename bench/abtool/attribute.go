package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Cause is what made a request fail, as the lab's evidence says. The
// middle box's causes are what a firewall or SNAT in the path can do to an
// upstream connection; the lab's are failures that happen before any
// packet reaches the middle box. A failure with no evidence is
// CauseUnattributed, which counts against the middle box: the lab never
// explains a failure away without a log line that says so.
type Cause int

const (
	CauseUnattributed  Cause = iota // no nginx line for the request (middle box)
	CauseReset                      // nginx: "Connection reset by peer", "Broken pipe"
	CauseRefused                    // nginx: "Connection refused" (a RST or an ICMP port unreachable to the SYN)
	CauseTimeout                    // nginx: "upstream timed out" (connect, read or send)
	CausePremature                  // nginx: "upstream prematurely closed connection"
	CauseICMP                       // nginx: host/net unreachable, host down (an ICMP error)
	CauseOtherUpstream              // any other nginx error about the request (middle box)
	CauseOwnPorts                   // lab: nginx's connect() found no free source port (EADDRNOTAVAIL)
	CauseNginxLimits                // lab: nginx's own limits (worker_connections, open files)
	CauseClient                     // lab: the load client could not connect to nginx
	numCauses
)

var causeNames = [numCauses]string{"unattributed", "reset", "refused", "timeout", "premature_close", "icmp",
	"other_upstream", "own_ports_exhausted", "nginx_limits", "client"}

func (c Cause) String() string { return causeNames[c] }

// Lab reports whether the cause is the lab's own, not the middle box's.
func (c Cause) Lab() bool { return c >= CauseOwnPorts }

// NginxError is what abtool needs of one nginx error log line.
type NginxError struct {
	Level     string // "error", "crit", "alert", ...
	Message   string // from after the connection number up to ", client:" (the whole rest if absent)
	RequestID int64  // the ab= id in the "request:" field, -1 if none
	Cause     Cause
}

// ParseNginxErrorLine reads a line of nginx's error log:
//
//	2026/12/06 05:29:45 [error] 18309#18309: *8 upstream timed out (110: Connection timed out) while connecting to upstream, client: 10.9.1.2, server: , request: "GET /?ab=17 HTTP/1.1", upstream: "http://203.0.113.2:8080/?ab=17", host: "10.9.1.1"
//
// ok is false for a line that is not an nginx log entry (a continuation,
// an empty line).
func ParseNginxErrorLine(line string) (e NginxError, ok bool) {
	lb := strings.Index(line, " [")
	rb := strings.Index(line, "] ")
	if lb < 0 || rb < lb {
		return NginxError{}, false
	}
	e.Level = line[lb+2 : rb]
	rest := line[rb+2:]
	// "PID#TID: " then, for a connection's line, "*CONN ".
	colon := strings.Index(rest, ": ")
	if colon < 0 || !strings.Contains(rest[:colon], "#") {
		return NginxError{}, false
	}
	rest = rest[colon+2:]
	if strings.HasPrefix(rest, "*") {
		if sp := strings.IndexByte(rest, ' '); sp > 0 {
			rest = rest[sp+1:]
		}
	}
	e.Message = rest
	if i := strings.Index(rest, ", client: "); i >= 0 {
		e.Message = rest[:i]
	}
	e.RequestID = requestID(rest)
	e.Cause = causeOf(e.Message)
	return e, true
}

// requestID finds ab=N in the "request:" field of a line's context.
func requestID(context string) int64 {
	i := strings.Index(context, `, request: "`)
	if i < 0 {
		return -1
	}
	req := context[i+len(`, request: "`):]
	if j := strings.IndexByte(req, '"'); j >= 0 {
		req = req[:j]
	}
	k := strings.Index(req, "ab=")
	if k < 0 || (k > 0 && req[k-1] != '?' && req[k-1] != '&') {
		return -1
	}
	digits := req[k+3:]
	end := 0
	for end < len(digits) && digits[end] >= '0' && digits[end] <= '9' {
		end++
	}
	id, err := strconv.ParseInt(digits[:end], 10, 64)
	if err != nil {
		return -1
	}
	return id
}

// causeOf files an nginx message. The errno nginx prints in parentheses
// decides when there is one; nginx's own words otherwise.
func causeOf(msg string) Cause {
	if i := strings.Index(msg, " ("); i >= 0 {
		num := msg[i+2:]
		if j := strings.IndexByte(num, ':'); j > 0 {
			if errno, err := strconv.Atoi(num[:j]); err == nil {
				switch errno {
				case 99: // EADDRNOTAVAIL: connect() found no free local port
					return CauseOwnPorts
				case 24, 23: // EMFILE, ENFILE
					return CauseNginxLimits
				case 104, 32: // ECONNRESET, EPIPE
					return CauseReset
				case 111: // ECONNREFUSED
					return CauseRefused
				case 110: // ETIMEDOUT
					return CauseTimeout
				case 113, 101, 112: // EHOSTUNREACH, ENETUNREACH, EHOSTDOWN
					return CauseICMP
				}
			}
		}
	}
	switch {
	case strings.Contains(msg, "worker_connections are not enough"):
		return CauseNginxLimits
	case strings.Contains(msg, "timed out"):
		return CauseTimeout
	case strings.Contains(msg, "prematurely closed"):
		return CausePremature
	}
	return CauseOtherUpstream
}

// Attribution is how a run's failed requests divide between the middle box
// and the lab.
type Attribution struct {
	Failed      int
	ByCause     [numCauses]int
	Middle, Lab int
	// The nginx lines: all parsed, those naming no request, and those
	// naming a request the client saw succeed.
	NginxLines, NginxNoRequest, NginxForOK int
}

// Attribute gives each failed request one cause: the load client's dial
// error (the request never reached nginx) is the lab's; otherwise nginx's
// lines for that request decide, a middle box cause winning over a lab one
// when a request has both; a request nginx logged nothing about is
// unattributed, the middle box's.
func Attribute(failures []FailureRecord, nginx []NginxError) Attribution {
	var a Attribution
	byID := map[int64][]Cause{}
	for _, e := range nginx {
		a.NginxLines++
		if e.RequestID < 0 {
			a.NginxNoRequest++
			continue
		}
		byID[e.RequestID] = append(byID[e.RequestID], e.Cause)
	}
	failed := map[int64]bool{}
	for _, f := range failures {
		failed[f.ID] = true
		cause := CauseUnattributed
		if f.Dial {
			cause = CauseClient
		} else if cs := byID[f.ID]; len(cs) > 0 {
			cause = cs[0]
			for _, c := range cs {
				if !c.Lab() {
					cause = c
					break
				}
			}
		}
		a.Failed++
		a.ByCause[cause]++
		if cause.Lab() {
			a.Lab++
		} else {
			a.Middle++
		}
	}
	for id, cs := range byID {
		if !failed[id] {
			a.NginxForOK += len(cs)
		}
	}
	return a
}

// Line is the attribution as one key=value line (what nsx-ab.sh parses):
// failed, middle, lab, then every cause as mb_NAME or lab_NAME.
func (a Attribution) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "failed=%d middle=%d lab=%d", a.Failed, a.Middle, a.Lab)
	for c := range numCauses {
		side := "mb"
		if c.Lab() {
			side = "lab"
		}
		fmt.Fprintf(&b, " %s_%s=%d", side, c, a.ByCause[c])
	}
	fmt.Fprintf(&b, " nginx_lines=%d nginx_lines_no_request=%d nginx_lines_for_ok=%d", a.NginxLines, a.NginxNoRequest, a.NginxForOK)
	return b.String()
}

func runAttribute(args []string) error {
	fs := flag.NewFlagSet("attribute", flag.ExitOnError)
	failuresPath := fs.String("failures", "", "the load client's failures file (abtool load -failures)")
	nginxPath := fs.String("nginx-log", "", "nginx's error log")
	fs.Parse(args)
	if *failuresPath == "" || *nginxPath == "" {
		return errors.New("attribute: -failures and -nginx-log are required")
	}
	var failures []FailureRecord
	if err := eachLine(*failuresPath, func(line string) error {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		r, err := ParseFailureRecord(line)
		failures = append(failures, r)
		return err
	}); err != nil {
		return err
	}
	var nginx []NginxError
	if err := eachLine(*nginxPath, func(line string) error {
		if e, ok := ParseNginxErrorLine(line); ok {
			nginx = append(nginx, e)
		}
		return nil
	}); err != nil {
		return err
	}
	fmt.Println(Attribute(failures, nginx).Line())
	return nil
}

func eachLine(path string, f func(string) error) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if err := f(sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}
