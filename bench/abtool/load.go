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
	"slices"
	"sort"
	"strconv"
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

// RequestURL is the URL of request id: base with the query parameter
// ab=id, which nginx's error log repeats in its "request:" field, so a
// failed request can be matched with what nginx logged about it.
func RequestURL(base string, id int64) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "ab=" + strconv.FormatInt(id, 10)
}

// FailureRecord is one failed request as the load client saw it: a status
// other than 200, or a transport error (Status 0) of class Err. Dial is
// true when the client could not connect to the proxy at all, so the
// request never reached it (the load client's own failure).
type FailureRecord struct {
	ID     int64
	Status int
	Err    ErrClass
	Dial   bool
}

// NewFailureRecord files request id's outcome.
func NewFailureRecord(id int64, status int, err error) FailureRecord {
	r := FailureRecord{ID: id, Status: status, Err: numErrClasses}
	if err != nil {
		r.Status = 0
		r.Err = Classify(err)
		var op *net.OpError
		r.Dial = errors.As(err, &op) && op.Op == "dial"
	}
	return r
}

// String is the record's line in the failures file: "ID STATUS CLASS DIAL",
// CLASS "-" for a status.
func (r FailureRecord) String() string {
	class := "-"
	if r.Err < numErrClasses {
		class = r.Err.String()
	}
	dial := 0
	if r.Dial {
		dial = 1
	}
	return fmt.Sprintf("%d %d %s %d", r.ID, r.Status, class, dial)
}

// ParseFailureRecord reads a line written by FailureRecord.String.
func ParseFailureRecord(line string) (FailureRecord, error) {
	f := strings.Fields(line)
	if len(f) != 4 {
		return FailureRecord{}, fmt.Errorf("failure record %q: want 4 fields", line)
	}
	id, err1 := strconv.ParseInt(f[0], 10, 64)
	status, err2 := strconv.Atoi(f[1])
	if err := errors.Join(err1, err2); err != nil {
		return FailureRecord{}, fmt.Errorf("failure record %q: %w", line, err)
	}
	r := FailureRecord{ID: id, Status: status, Err: numErrClasses, Dial: f[3] == "1"}
	if f[2] != "-" {
		i := slices.Index(errClassNames[:], f[2])
		if i < 0 {
			return FailureRecord{}, fmt.Errorf("failure record %q: unknown error class", line)
		}
		r.Err = ErrClass(i)
	}
	return r, nil
}

// failureLog collects FailureRecords from the load workers.
type failureLog struct {
	mu      sync.Mutex
	records []FailureRecord
}

func (l *failureLog) add(r FailureRecord) {
	l.mu.Lock()
	l.records = append(l.records, r)
	l.mu.Unlock()
}

func (l *failureLog) write(path string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.records {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// loadPlan is one load run: N requests to URL (each with its id, see
// RequestURL), Conc at a time, started no faster than Rate per second if
// Rate > 0, none started after MaxTime if MaxTime > 0.
type loadPlan struct {
	URL              string
	N, Conc          int
	Rate             float64
	Timeout, MaxTime time.Duration
}

// run makes the requests, counting each in counts and each failure (a
// status other than 200, a transport error) in failures; done counts
// finished requests as they finish. It reports whether MaxTime stopped it
// before all N were made.
func (p loadPlan) run(counts *Counts, failures *failureLog, done *atomic.Int64) (stoppedEarly bool) {
	tr := &http.Transport{MaxIdleConnsPerHost: p.Conc, MaxConnsPerHost: p.Conc, DisableCompression: true}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: p.Timeout}
	var next atomic.Int64
	var stopped atomic.Bool
	start := time.Now()
	if p.MaxTime > 0 {
		t := time.AfterFunc(p.MaxTime, func() { stopped.Store(true) })
		defer t.Stop()
	}
	var wg sync.WaitGroup
	for range p.Conc {
		wg.Go(func() {
			for !stopped.Load() {
				id := next.Add(1)
				if id > int64(p.N) {
					return
				}
				if p.Rate > 0 {
					// Request id starts at start + (id-1)/Rate: a paced
					// schedule, never faster than Rate however fast the lab is.
					time.Sleep(time.Until(start.Add(time.Duration(float64(id-1) / p.Rate * float64(time.Second)))))
					if stopped.Load() {
						return
					}
				}
				t0 := time.Now()
				resp, err := cl.Get(RequestURL(p.URL, id))
				status := 0
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				counts.Add(status, err, time.Since(t0))
				if err != nil || status != 200 {
					failures.add(NewFailureRecord(id, status, err))
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	return stopped.Load() && done.Load() < int64(p.N)
}

func runLoad(args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	var p loadPlan
	fs.StringVar(&p.URL, "url", "", "URL to GET (required); each request adds ab=ID to its query")
	fs.IntVar(&p.N, "n", 10000, "requests")
	fs.IntVar(&p.Conc, "c", 16, "concurrent requests")
	fs.DurationVar(&p.Timeout, "timeout", 20*time.Second, "per-request timeout")
	fs.DurationVar(&p.MaxTime, "max-time", 0, "start no request after this long (0: no limit); the summary says stopped_early=1")
	fs.Float64Var(&p.Rate, "rate", 0, "start at most this many requests per second (0: as fast as the c workers go)")
	failuresPath := fs.String("failures", "", "write one line per failed request to this file (FailureRecord), for abtool attribute")
	progress := fs.Duration("progress", 5*time.Second, "print progress to stderr this often (0: never)")
	fs.Parse(args)
	if p.URL == "" {
		return errors.New("load: -url is required")
	}
	var counts Counts
	var failures failureLog
	var done atomic.Int64
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
					fmt.Fprintf(os.Stderr, "load: %d/%d done, ok %d, 502 %d, 504 %d, errors %d\n", done.Load(), p.N, s.OK, s.S502, s.S504, s.Errors)
				}
			}
		}()
	}
	stoppedEarly := p.run(&counts, &failures, &done)
	close(stop)
	el := time.Since(start)
	s := counts.Summary()
	early := 0
	if stoppedEarly {
		early = 1
	}
	fmt.Printf("%s seconds=%.1f rps=%.0f stopped_early=%d\n", s.Line(), el.Seconds(), float64(s.Requests)/el.Seconds(), early)
	if *failuresPath != "" {
		if err := failures.write(*failuresPath); err != nil {
			return err
		}
	}
	if s.FirstError != "" {
		fmt.Fprintf(os.Stderr, "load: first error: %s\n", s.FirstError)
	}
	return nil
}
