package main

import (
	"context"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// nginxLine is an nginx error log line in nginx's format for a request of
// the load client (URL /?ab=id), level and message as nginx writes them.
func nginxLine(level, msg string, id int) string {
	req := "/?ab=" + strconv.Itoa(id)
	return "2026/12/06 05:29:45 [" + level + "] 18309#18309: *8 " + msg + `, client: 10.9.1.2, server: , request: "GET ` + req +
		` HTTP/1.1", upstream: "http://203.0.113.2:8080` + req + `", host: "10.9.1.1"`
}

// The messages are nginx's own (ngx_event_connect_peer, ngx_http_upstream
// and ngx_connection_error), as they appear in error logs.
func TestParseNginxErrorLine(t *testing.T) {
	for _, c := range []struct {
		line      string
		level     string
		requestID int64
		cause     Cause
	}{
		{nginxLine("crit", "connect() to 203.0.113.2:8080 failed (99: Cannot assign requested address) while connecting to upstream", 17), "crit", 17, CauseOwnPorts},
		{nginxLine("error", "connect() failed (111: Connection refused) while connecting to upstream", 5), "error", 5, CauseRefused},
		{nginxLine("error", "recv() failed (104: Connection reset by peer) while reading response header from upstream", 6), "error", 6, CauseReset},
		{nginxLine("error", "readv() failed (104: Connection reset by peer) while reading upstream", 7), "error", 7, CauseReset},
		{nginxLine("error", "writev() failed (32: Broken pipe) while sending request to upstream", 8), "error", 8, CauseReset},
		{nginxLine("error", "upstream timed out (110: Connection timed out) while connecting to upstream", 9), "error", 9, CauseTimeout},
		{nginxLine("error", "upstream timed out (110: Connection timed out) while reading response header from upstream", 10), "error", 10, CauseTimeout},
		{nginxLine("error", "upstream prematurely closed connection while reading response header from upstream", 11), "error", 11, CausePremature},
		{nginxLine("error", "connect() failed (113: No route to host) while connecting to upstream", 12), "error", 12, CauseICMP},
		{nginxLine("error", "connect() failed (113: Host is unreachable) while connecting to upstream", 13), "error", 13, CauseICMP},
		{nginxLine("error", "connect() failed (101: Network is unreachable) while connecting to upstream", 14), "error", 14, CauseICMP},
		{nginxLine("alert", "8192 worker_connections are not enough while connecting to upstream", 15), "alert", 15, CauseNginxLimits},
		{nginxLine("alert", "socket() failed (24: Too many open files) while connecting to upstream", 16), "alert", 16, CauseNginxLimits},
		{nginxLine("error", `upstream sent invalid header: "\x00" while reading response header from upstream`, 18), "error", 18, CauseOtherUpstream},
		{nginxLine("error", "no live upstreams while connecting to upstream", 19), "error", 19, CauseOtherUpstream},
		// A line of the lab's own nginx (nsx-ab.sh, Linux in the middle, unpaced).
		{`2026/12/06 05:35:19 [crit] 19731#19731: *6 connect() to 203.0.113.2:8080 failed (99: Cannot assign requested address) while connecting to upstream, client: 10.9.1.2, server: , request: "GET /?ab=5394 HTTP/1.1", upstream: "http://203.0.113.2:8080/?ab=5394", host: "10.9.1.1"`, "crit", 5394, CauseOwnPorts},
		// Without the lab's ab= id: a real log's request line, and lines
		// about no request at all.
		{`2016/03/18 09:08:37 [crit] 1888#1888: *13 connect() to 10.2.2.77:8081 failed (99: Cannot assign requested address) while connecting to upstream, client: 10.2.2.42, server: , request: "GET / HTTP/1.1", upstream: "http://10.2.2.77:8081/", host: "10.2.2.77"`, "crit", -1, CauseOwnPorts},
		{`2026/12/06 05:29:45 [alert] 18309#18309: 8192 worker_connections are not enough`, "alert", -1, CauseNginxLimits},
		{`2026/12/06 05:29:45 [error] 18309#18309: *3 upstream timed out (110: Connection timed out) while connecting to upstream, client: 10.9.1.2, server: , request: "GET /x?tab=4 HTTP/1.1", host: "10.9.1.1"`, "error", -1, CauseTimeout},
		{`2026/12/06 05:29:45 [error] 18309#18309: *3 upstream timed out (110: Connection timed out) while connecting to upstream, client: 10.9.1.2, server: , request: "GET /x?y=1&ab=42 HTTP/1.1", host: "10.9.1.1"`, "error", 42, CauseTimeout},
	} {
		e, ok := ParseNginxErrorLine(c.line)
		if !ok || e.Level != c.level || e.RequestID != c.requestID || e.Cause != c.cause {
			t.Errorf("ParseNginxErrorLine(%q) = %+v, %v; want level %s, request %d, cause %v", c.line, e, ok, c.level, c.requestID, c.cause)
		}
	}
	for _, line := range []string{"", "nginx: [emerg] bind() to 10.9.1.1:80 failed", "garbage without a level"} {
		if e, ok := ParseNginxErrorLine(line); ok {
			t.Errorf("ParseNginxErrorLine(%q) = %+v, want not a log entry", line, e)
		}
	}
}

func TestNginxMessage(t *testing.T) {
	e, _ := ParseNginxErrorLine(nginxLine("error", "recv() failed (104: Connection reset by peer) while reading response header from upstream", 6))
	if e.Message != "recv() failed (104: Connection reset by peer) while reading response header from upstream" {
		t.Errorf("message %q", e.Message)
	}
}

func parse(t *testing.T, lines ...string) []NginxError {
	t.Helper()
	var out []NginxError
	for _, l := range lines {
		e, ok := ParseNginxErrorLine(l)
		if !ok {
			t.Fatalf("not parsed: %q", l)
		}
		out = append(out, e)
	}
	return out
}

const (
	msgOwnPorts = "connect() to 203.0.113.2:8080 failed (99: Cannot assign requested address) while connecting to upstream"
	msgTimeout  = "upstream timed out (110: Connection timed out) while connecting to upstream"
	msgReset    = "recv() failed (104: Connection reset by peer) while reading response header from upstream"
)

func TestAttribute(t *testing.T) {
	for _, c := range []struct {
		name        string
		failures    []FailureRecord
		nginx       []string
		middle, lab int
		byCause     map[Cause]int
		forOK       int
	}{
		{
			name:     "the issue's run: nginx's own ports, the lab's",
			failures: []FailureRecord{{ID: 3, Status: 502}, {ID: 9, Status: 502}},
			nginx:    []string{nginxLine("crit", msgOwnPorts, 3), nginxLine("crit", msgOwnPorts, 9)},
			lab:      2, byCause: map[Cause]int{CauseOwnPorts: 2},
		},
		{
			name:     "nsx mode: connect timeouts, the middle box's",
			failures: []FailureRecord{{ID: 1, Status: 504}, {ID: 2, Status: 504}, {ID: 4, Status: 502}},
			nginx:    []string{nginxLine("error", msgTimeout, 1), nginxLine("error", msgTimeout, 2), nginxLine("error", msgReset, 4)},
			middle:   3, byCause: map[Cause]int{CauseTimeout: 2, CauseReset: 1},
		},
		{
			name:     "a failure nginx said nothing about counts against the middle box",
			failures: []FailureRecord{{ID: 5, Status: 502}, {ID: 6, Status: 0, Err: ErrEOF}},
			nginx:    []string{nginxLine("crit", msgOwnPorts, 7)},
			middle:   2, byCause: map[Cause]int{CauseUnattributed: 2}, forOK: 1,
		},
		{
			name:     "a lab line for another request explains nothing",
			failures: []FailureRecord{{ID: 8, Status: 502}},
			nginx:    []string{nginxLine("crit", msgOwnPorts, 80), nginxLine("crit", msgOwnPorts, 18)},
			middle:   1, byCause: map[Cause]int{CauseUnattributed: 1}, forOK: 2,
		},
		{
			name:     "middle box evidence wins over lab evidence for one request",
			failures: []FailureRecord{{ID: 10, Status: 502}},
			nginx:    []string{nginxLine("crit", msgOwnPorts, 10), nginxLine("error", msgReset, 10)},
			middle:   1, byCause: map[Cause]int{CauseReset: 1},
		},
		{
			name:     "the client could not reach nginx: the lab's",
			failures: []FailureRecord{{ID: 11, Err: ErrRefused, Dial: true}},
			lab:      1, byCause: map[Cause]int{CauseClient: 1},
		},
		{
			name:     "lines for requests that succeeded are counted apart",
			failures: nil,
			nginx:    []string{nginxLine("error", "upstream prematurely closed connection while reading upstream", 12)},
			forOK:    1, byCause: map[Cause]int{},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := Attribute(c.failures, parse(t, c.nginx...))
			if a.Failed != len(c.failures) || a.Middle != c.middle || a.Lab != c.lab || a.NginxForOK != c.forOK {
				t.Errorf("failed %d middle %d lab %d for_ok %d; want %d %d %d %d", a.Failed, a.Middle, a.Lab, a.NginxForOK,
					len(c.failures), c.middle, c.lab, c.forOK)
			}
			for cause := range numCauses {
				if a.ByCause[cause] != c.byCause[cause] {
					t.Errorf("%v: %d, want %d", cause, a.ByCause[cause], c.byCause[cause])
				}
			}
		})
	}
}

func TestAttributionLine(t *testing.T) {
	a := Attribute([]FailureRecord{{ID: 1, Status: 502}, {ID: 2, Status: 502}, {ID: 3, Status: 504}},
		parse(t, nginxLine("crit", msgOwnPorts, 1), nginxLine("error", msgTimeout, 3)))
	line := a.Line()
	for _, kv := range []string{"failed=3 ", "middle=2 ", "lab=1 ", "mb_unattributed=1 ", "mb_timeout=1 ", "lab_own_ports_exhausted=1 ", "lab_client=0 ", "nginx_lines=2 "} {
		if !strings.Contains(line+" ", kv) {
			t.Errorf("line %q lacks %q", line, kv)
		}
	}
}

func TestFailureRecord(t *testing.T) {
	dial := &url.Error{Op: "Get", URL: "http://10.9.1.1/?ab=3", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	read := &url.Error{Op: "Get", URL: "http://10.9.1.1/?ab=4", Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}
	for _, c := range []struct {
		rec  FailureRecord
		want FailureRecord
		line string
	}{
		{NewFailureRecord(1, 502, nil), FailureRecord{ID: 1, Status: 502, Err: numErrClasses}, "1 502 - 0"},
		{NewFailureRecord(3, 0, dial), FailureRecord{ID: 3, Err: ErrRefused, Dial: true}, "3 0 refused 1"},
		{NewFailureRecord(4, 200, read), FailureRecord{ID: 4, Err: ErrReset}, "4 0 reset 0"},
		{NewFailureRecord(5, 0, context.DeadlineExceeded), FailureRecord{ID: 5, Err: ErrTimeout}, "5 0 timeout 0"},
	} {
		if c.rec != c.want || c.rec.String() != c.line {
			t.Errorf("record %+v %q, want %+v %q", c.rec, c.rec.String(), c.want, c.line)
		}
		back, err := ParseFailureRecord(c.line)
		if err != nil || back != c.want {
			t.Errorf("ParseFailureRecord(%q) = %+v, %v", c.line, back, err)
		}
	}
	for _, bad := range []string{"1 502 -", "x 502 - 0", "1 0 nosuch 0"} {
		if _, err := ParseFailureRecord(bad); err == nil {
			t.Errorf("ParseFailureRecord(%q): no error", bad)
		}
	}
}

func TestRequestURL(t *testing.T) {
	if got := RequestURL("http://10.9.1.1/", 7); got != "http://10.9.1.1/?ab=7" {
		t.Errorf("got %q", got)
	}
	if got := RequestURL("http://10.9.1.1/?x=1", 7); got != "http://10.9.1.1/?x=1&ab=7" {
		t.Errorf("got %q", got)
	}
}
