package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrClass is how the client files a transport error.
type ErrClass int

const (
	ErrTimeout ErrClass = iota
	ErrReset
	ErrRefused
	ErrEOF
	ErrOther
	numErrClasses
)

var errClassNames = [numErrClasses]string{"timeout", "reset", "refused", "eof", "other"}

func (c ErrClass) String() string { return errClassNames[c] }

// Classify files a request's error.
func Classify(err error) ErrClass {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return ErrTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return ErrReset
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrRefused
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return ErrEOF
	}
	return ErrOther
}

// Counts are a load run's results. Add is safe for concurrent use.
type Counts struct {
	mu       sync.Mutex
	status   map[int]uint64
	errs     [numErrClasses]uint64
	lat      []time.Duration
	firstErr string
}

// Add records one request: its status (if err is nil) or its error, and
// how long it took.
func (c *Counts) Add(status int, err error, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status == nil {
		c.status = map[int]uint64{}
	}
	c.lat = append(c.lat, d)
	if err != nil {
		c.errs[Classify(err)]++
		if c.firstErr == "" {
			c.firstErr = err.Error()
		}
		return
	}
	c.status[status]++
}

// Summary is a snapshot of Counts.
type Summary struct {
	Requests         uint64
	OK, S502, S504   uint64
	OtherStatus      uint64 // any other status
	Errors           uint64 // transport errors, all classes
	ErrByClass       [numErrClasses]uint64
	StatusDetail     string // "503:2,404:1"
	P50, P99, Max    time.Duration
	FirstError       string
	SlowOver1s       uint64 // requests that took longer than a second (a SYN retransmission)
	DistinctStatuses int
}

// Summary returns the totals.
func (c *Counts) Summary() Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s Summary
	var others []string
	for code, n := range c.status {
		s.Requests += n
		s.DistinctStatuses++
		switch code {
		case 200:
			s.OK += n
		case 502:
			s.S502 += n
		case 504:
			s.S504 += n
		default:
			s.OtherStatus += n
			others = append(others, fmt.Sprintf("%d:%d", code, n))
		}
	}
	sort.Strings(others)
	s.StatusDetail = strings.Join(others, ",")
	for i, n := range c.errs {
		s.ErrByClass[i] = n
		s.Errors += n
	}
	s.Requests += s.Errors
	s.FirstError = c.firstErr
	if len(c.lat) > 0 {
		l := append([]time.Duration(nil), c.lat...)
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		s.P50 = l[len(l)/2]
		s.P99 = l[min(len(l)-1, len(l)*99/100)]
		s.Max = l[len(l)-1]
		for _, d := range l {
			if d > time.Second {
				s.SlowOver1s++
			}
		}
	}
	return s
}

// Line is the summary as one key=value line (what nsx-ab.sh parses).
func (s Summary) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests=%d ok=%d s502=%d s504=%d other_status=%d errors=%d", s.Requests, s.OK, s.S502, s.S504, s.OtherStatus, s.Errors)
	for i, n := range s.ErrByClass {
		fmt.Fprintf(&b, " err_%s=%d", ErrClass(i), n)
	}
	fmt.Fprintf(&b, " slow_over_1s=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f", s.SlowOver1s,
		float64(s.P50.Microseconds())/1000, float64(s.P99.Microseconds())/1000, float64(s.Max.Microseconds())/1000)
	if s.StatusDetail != "" {
		fmt.Fprintf(&b, " other_detail=%s", s.StatusDetail)
	}
	return b.String()
}

func runLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	url := fs.String("url", "", "URL to GET (required)")
	n := fs.Int("n", 10000, "requests")
	conc := fs.Int("c", 16, "concurrent requests")
	timeout := fs.Duration("timeout", 20*time.Second, "per-request timeout")
	maxTime := fs.Duration("max-time", 0, "start no request after this long (0: no limit); the summary says stopped_early=1")
	progress := fs.Duration("progress", 5*time.Second, "print progress to stderr this often (0: never)")
	fs.Parse(args)
	if *url == "" {
		return errors.New("load: -url is required")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc, DisableCompression: true}
	cl := &http.Client{Transport: tr, Timeout: *timeout}
	var counts Counts
	var next, done atomic.Int64
	start := time.Now()
	stop := make(chan struct{})
	if *progress > 0 {
		go func() {
			t := time.NewTicker(*progress)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					s := counts.Summary()
					fmt.Fprintf(os.Stderr, "load: %d/%d done, ok %d, 502 %d, 504 %d, errors %d\n", done.Load(), *n, s.OK, s.S502, s.S504, s.Errors)
				}
			}
		}()
	}
	var stopped atomic.Bool
	if *maxTime > 0 {
		t := time.AfterFunc(*maxTime, func() { stopped.Store(true) })
		defer t.Stop()
	}
	var wg sync.WaitGroup
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopped.Load() && next.Add(1) <= int64(*n) {
				t0 := time.Now()
				resp, err := cl.Get(*url)
				status := 0
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				counts.Add(status, err, time.Since(t0))
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	el := time.Since(start)
	s := counts.Summary()
	early := 0
	if stopped.Load() && s.Requests < uint64(*n) {
		early = 1
	}
	fmt.Printf("%s seconds=%.1f rps=%.0f stopped_early=%d\n", s.Line(), el.Seconds(), float64(s.Requests)/el.Seconds(), early)
	if s.FirstError != "" {
		fmt.Fprintf(os.Stderr, "load: first error: %s\n", s.FirstError)
	}
	return nil
}
