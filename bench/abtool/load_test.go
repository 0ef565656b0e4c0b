package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestClassifyErrors(t *testing.T) {
	op := func(err error) error {
		return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", err)}
	}
	for _, c := range []struct {
		err  error
		want ErrClass
	}{
		{context.DeadlineExceeded, ErrTimeout},
		{fmt.Errorf("Get: %w", os.ErrDeadlineExceeded), ErrTimeout},
		{op(syscall.ECONNRESET), ErrReset},
		{op(syscall.EPIPE), ErrReset},
		{op(syscall.ECONNREFUSED), ErrRefused},
		{fmt.Errorf("Get: %w", io.EOF), ErrEOF},
		{io.ErrUnexpectedEOF, ErrEOF},
		{errors.New("something else"), ErrOther},
	} {
		if got := Classify(c.err); got != c.want {
			t.Errorf("Classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestCounts(t *testing.T) {
	var c Counts
	for range 5 {
		c.Add(200, nil, time.Millisecond)
	}
	c.Add(502, nil, 2*time.Millisecond)
	c.Add(502, nil, 2*time.Millisecond)
	c.Add(504, nil, 5*time.Second)
	c.Add(503, nil, time.Millisecond)
	c.Add(404, nil, time.Millisecond)
	c.Add(0, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, time.Millisecond)
	c.Add(0, context.DeadlineExceeded, 20*time.Second)
	s := c.Summary()
	if s.Requests != 12 || s.OK != 5 || s.S502 != 2 || s.S504 != 1 || s.OtherStatus != 2 || s.Errors != 2 {
		t.Fatalf("summary %+v", s)
	}
	if s.ErrByClass[ErrRefused] != 1 || s.ErrByClass[ErrTimeout] != 1 || s.SlowOver1s != 2 {
		t.Errorf("errors by class %v, slow %d", s.ErrByClass, s.SlowOver1s)
	}
	if s.StatusDetail != "404:1,503:1" {
		t.Errorf("detail %q", s.StatusDetail)
	}
	line := s.Line()
	for _, kv := range []string{"requests=12 ", "ok=5 ", "s502=2 ", "s504=1 ", "other_status=2 ", "errors=2 ", "err_refused=1 ", "err_timeout=1 "} {
		if !strings.Contains(line, kv) {
			t.Errorf("line %q lacks %q", line, kv)
		}
	}
	if s.Max != 20*time.Second {
		t.Errorf("max %v", s.Max)
	}
}

// TestCountsAgainstServer counts real responses: statuses by the handler's
// choice and a connection the server drops (an error, not a status).
func TestCountsAgainstServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/502":
			w.WriteHeader(502)
		case "/drop":
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	var c Counts
	for _, p := range []string{"/", "/", "/502", "/drop"} {
		resp, err := http.Get(srv.URL + p)
		status := 0
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
		c.Add(status, err, 0)
	}
	s := c.Summary()
	if s.OK != 2 || s.S502 != 1 || s.Errors != 1 || s.Requests != 4 {
		t.Errorf("summary %+v", s)
	}
}

// TestLoadPlanRecordsFailures runs a paced load against a server that
// fails chosen requests: each failure is recorded under the id the server
// saw, and the pacing holds the run to at least (N-1)/Rate.
func TestLoadPlanRecordsFailures(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("ab")
		mu.Lock()
		seen[id]++
		mu.Unlock()
		switch id {
		case "3", "7":
			w.WriteHeader(502)
		case "5":
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
		default:
			io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	p := loadPlan{URL: srv.URL + "/", N: 20, Conc: 4, Rate: 200, Timeout: 5 * time.Second}
	var counts Counts
	var failures failureLog
	var done atomic.Int64
	t0 := time.Now()
	if p.run(&counts, &failures, &done) {
		t.Error("stopped early without MaxTime")
	}
	if el, min := time.Since(t0), 19*time.Second/200; el < min {
		t.Errorf("20 requests at 200/s took %v, want at least %v", el, min)
	}
	if s := counts.Summary(); s.Requests != 20 || s.OK != 17 || s.S502 != 2 || s.Errors != 1 || done.Load() != 20 {
		t.Errorf("summary %+v, done %d", s, done.Load())
	}
	got := map[int64]FailureRecord{}
	for _, r := range failures.records {
		got[r.ID] = r
	}
	want := map[int64]FailureRecord{3: {ID: 3, Status: 502, Err: numErrClasses}, 7: {ID: 7, Status: 502, Err: numErrClasses}, 5: {ID: 5, Err: ErrEOF}}
	if len(got) != len(want) || len(failures.records) != len(want) {
		t.Fatalf("failures %+v, want %+v", failures.records, want)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("failure %d: %+v, want %+v", id, got[id], w)
		}
	}
	for i := 1; i <= 20; i++ {
		if seen[strconv.Itoa(i)] == 0 {
			t.Errorf("the server never saw ab=%d", i)
		}
	}
}

// TestLoadPlanDialFailures: with nothing listening, every failure is the
// client's own (Dial), which attribute files as the lab's.
func TestLoadPlanDialFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := loadPlan{URL: "http://" + addr + "/", N: 3, Conc: 1, Timeout: 5 * time.Second}
	var counts Counts
	var failures failureLog
	var done atomic.Int64
	p.run(&counts, &failures, &done)
	if len(failures.records) != 3 {
		t.Fatalf("failures %+v", failures.records)
	}
	for _, r := range failures.records {
		if !r.Dial || r.Err != ErrRefused {
			t.Errorf("record %+v, want a refused dial", r)
		}
	}
	if a := Attribute(failures.records, nil); a.Lab != 3 || a.ByCause[CauseClient] != 3 {
		t.Errorf("attribution %s", a.Line())
	}
}
