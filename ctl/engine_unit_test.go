package ctl

// Tests of EngineBackend's parts that need no kernel (engine_test.go runs a
// real engine).

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/dataplane"
	"github.com/edgegw/edge/drop"
)

// The merge of event sources: nothing lost or duplicated, time order
// within each read, at most len(out) read from each source per call, no
// reads while a full read waits, a bounded pending buffer.
func TestEventMerge(t *testing.T) {
	const perSource, nsrc, outLen = 1000, 3, 7
	type src struct {
		evs   []Event
		calls int
	}
	srcs := make([]*src, nsrc)
	id := 0
	for i := range srcs {
		s := &src{}
		tm := conntrack.Time(0)
		for range perSource {
			tm += conntrack.Time((id*7919)%13) * conntrack.Millisecond // non-decreasing per source, as a ring is
			s.evs = append(s.evs, Event{Time: tm, Worker: id, Kind: EvDropped})
			id++
		}
		srcs[i] = s
	}
	var m eventMerge
	var sources []eventSource
	for _, s := range srcs {
		sources = append(sources, func(dst []Event, max int) []Event {
			s.calls++
			if max != outLen {
				t.Fatalf("source asked for %d, want %d", max, outLen)
			}
			k := min(max, len(s.evs))
			dst = append(dst, s.evs[:k]...)
			s.evs = s.evs[k:]
			return dst
		})
	}
	seen := make(map[int]bool)
	out := make([]Event, outLen)
	for reads := 0; ; reads++ {
		if reads > 10*nsrc*perSource {
			t.Fatal("merge does not end")
		}
		waiting := len(m.pending)
		callsBefore := 0
		for _, s := range srcs {
			callsBefore += s.calls
		}
		n := m.read(out, sources)
		calls := -callsBefore
		for _, s := range srcs {
			calls += s.calls
		}
		if waiting >= outLen && calls != 0 {
			t.Fatalf("%d events waited, yet the sources were read", waiting)
		}
		if len(m.pending) > (1+nsrc)*outLen {
			t.Fatalf("%d events pending", len(m.pending))
		}
		if !slices.IsSortedFunc(out[:n], func(x, y Event) int { return int(x.Time - y.Time) }) {
			t.Fatalf("read out of time order: %v", out[:n])
		}
		for _, ev := range out[:n] {
			if seen[ev.Worker] {
				t.Fatalf("event %d twice", ev.Worker)
			}
			seen[ev.Worker] = true
		}
		if n == 0 {
			break
		}
	}
	if len(seen) != nsrc*perSource {
		t.Fatalf("%d events of %d", len(seen), nsrc*perSource)
	}
	if n := m.read(nil, sources); n != 0 {
		t.Fatalf("read into nothing: %d", n)
	}
}

// One SNAT exhaustion is one event: the worker's drop is left out.
func TestReportedBySNAT(t *testing.T) {
	for _, c := range []struct {
		ev   dataplane.Event
		skip bool
	}{
		{dataplane.Event{Kind: dataplane.EvDropped, Reason: drop.SNATExhausted}, true},
		{dataplane.Event{Kind: dataplane.EvDropped, Reason: drop.NoState}, false},
		{dataplane.Event{Kind: dataplane.EvICMPSent, Reason: drop.SNATExhausted}, false},
	} {
		if got := reportedBySNAT(&c.ev); got != c.skip {
			t.Errorf("%+v: skipped %v, want %v", c.ev, got, c.skip)
		}
	}
}

func TestNamesField(t *testing.T) {
	for msg, want := range map[string]bool{
		"rules[2].dst[0]: bad":                     true,
		"management: 192.0.2.1: map update failed": true,
		"snat.address: automap: no address":        true,
		"queues: must be between 1 and 16":         true,
		"netns: setns: operation not permitted":    false,
		"map update: invalid argument":             false,
		": empty":                                  false,
		"default: invalid action 9":                true,
		`profile "x": syn_sent: not a duration`:    true,
	} {
		if got := namesField(errors.New(msg)); got != want {
			t.Errorf("%q: names a field %v, want %v", msg, got, want)
		}
	}
}

func TestSaveFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(path, []byte("old\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	written, err := saveFile(path, []byte("new\n"))
	if err != nil || written != path {
		t.Fatalf("save: %q, %v", written, err)
	}
	fi, _ := os.Stat(path)
	if got, _ := os.ReadFile(path); string(got) != "new\n" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("saved %q with mode %v", got, fi.Mode())
	}
	// Through a symlink: the target is replaced, the link stays.
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink("edge.yaml", link); err != nil {
		t.Fatal(err)
	}
	if written, err := saveFile(link, []byte("via link\n")); err != nil || written != path {
		t.Fatalf("save via a symlink: %q, %v", written, err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the symlink was replaced")
	}
	if got, _ := os.ReadFile(path); string(got) != "via link\n" {
		t.Fatalf("target holds %q", got)
	}
	// A new file is 0600.
	fresh := filepath.Join(dir, "fresh.yaml")
	if _, err := saveFile(fresh, []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o600 {
		t.Fatalf("new file mode %v", fi.Mode())
	}
	// Failures: no directory, not a regular file. Nothing is left behind.
	if _, err := saveFile(filepath.Join(dir, "nope", "edge.yaml"), []byte("x")); err == nil {
		t.Fatal("saved into a missing directory")
	}
	if _, err := saveFile(dir, []byte("x")); err == nil {
		t.Fatal("saved over a directory")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name()[0] == '.' {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
}

// Close waits for the calls in progress and then refuses every call.
func TestEngineBackendClose(t *testing.T) {
	b := &EngineBackend{}
	if err := b.enter(); err != nil { // a call in progress
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close did not wait for the call in progress")
	case <-time.After(50 * time.Millisecond):
	}
	b.life.RUnlock()
	<-closed
	ctx := context.Background()
	if _, err := b.ApplyConfig(ctx, []byte("x: 1"), false); !errors.Is(err, ErrStopping) {
		t.Fatalf("apply: %v", err)
	}
	if _, err := b.Stats(ctx, true); !errors.Is(err, ErrStopping) {
		t.Fatalf("stats: %v", err)
	}
	if _, _, err := b.Config(ctx); !errors.Is(err, ErrStopping) {
		t.Fatalf("config: %v", err)
	}
	if err := b.Flows(ctx, conntrack.Filter{}, nil); !errors.Is(err, ErrStopping) {
		t.Fatalf("flows: %v", err)
	}
	if n := b.ReadEvents(make([]Event, 4)); n != 0 {
		t.Fatalf("read %d events", n)
	}
	b.Close() // again
}
