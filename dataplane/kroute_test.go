package dataplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/edgegw/edge/internal/netnstest"
)

// TestKernelRoutesLimit: routes_from_kernel refuses a kernel table larger
// than its limit, whole (at start: edge does not start; on a refresh: the
// previous table stays), and a refresh that finds the same routes keeps
// the table it has.
func TestKernelRoutesLimit(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t, "krt")
	netnstest.Veth(t, ns, "in", "10.0.0.1/24", ns, "out", "203.0.113.1/24")
	addRoutes := func(from, to int) {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "route add 198.18.%d.%d/32 via 203.0.113.2 dev out\n", i/256, i%256)
		}
		batch := filepath.Join(t.TempDir(), "routes")
		os.WriteFile(batch, []byte(b.String()), 0o644)
		ns.Run(t, "ip", "-batch", batch)
	}
	addRoutes(0, 50) // with the two connected networks: 52 routes

	cfg := labConfig(allowOutbound)
	cfg.Routes, cfg.KernelRoutes, cfg.MaxKernelRoutes = nil, true, 51
	err := ns.Do(func() error {
		e, err := New(cfg)
		if err == nil {
			e.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "routes_from_kernel: the kernel has 52 routes") ||
		!strings.Contains(err.Error(), "routes_from_kernel_max (51)") {
		t.Fatalf("New with 52 kernel routes and a limit of 51: %v", err)
	}

	cfg.MaxKernelRoutes = 60
	e := startEngine(t, ns, cfg)
	first := e.routes.Load()
	if first.Len() != 52 {
		t.Fatalf("%d routes imported, want 52", first.Len())
	}
	if err := ns.Do(e.loadRoutes); err != nil || e.routes.Load() != first {
		t.Fatalf("a refresh with the same kernel routes: %v, table replaced %v", err, e.routes.Load() != first)
	}
	addRoutes(50, 55) // 57: within the limit
	if err := ns.Do(e.loadRoutes); err != nil || e.routes.Load().Len() != 57 {
		t.Fatalf("refresh with 57 routes: %v, %d imported", err, e.routes.Load().Len())
	}
	kept := e.routes.Load()
	addRoutes(55, 60) // 62: over the limit
	err = ns.Do(e.loadRoutes)
	if err == nil || !strings.Contains(err.Error(), "62 routes") || e.routes.Load() != kept {
		t.Fatalf("refresh with 62 routes and a limit of 60: %v, table replaced %v", err, e.routes.Load() != kept)
	}
}

// TestRedumpInterrupted: a netlink dump the kernel marks interrupted is read
// again (its partial result is not used), a bounded number of times; other
// errors are returned at once.
func TestRedumpInterrupted(t *testing.T) {
	for _, tc := range []struct {
		name        string
		interrupted int   // answers with ErrDumpInterrupted before the last
		last        error // the last answer's error
		wantCalls   int
		wantErr     error
		wantList    bool
	}{
		{"complete", 0, nil, 1, nil, true},
		{"interrupted twice", 2, nil, 3, nil, true},
		{"always interrupted", dumpAttempts + 3, nil, dumpAttempts, netlink.ErrDumpInterrupted, false},
		{"other error", 0, unix.ENOBUFS, 1, unix.ENOBUFS, false},
	} {
		calls := 0
		list, err := redumpInterrupted(func() ([]int, error) {
			calls++
			if calls <= tc.interrupted {
				return []int{-1}, netlink.ErrDumpInterrupted
			}
			if tc.last != nil {
				return nil, tc.last
			}
			return []int{1, 2}, nil
		})
		if calls != tc.wantCalls || !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
			t.Errorf("%s: %d calls, error %v; want %d calls, error %v", tc.name, calls, err, tc.wantCalls, tc.wantErr)
		}
		if tc.wantList && !slices.Equal(list, []int{1, 2}) {
			t.Errorf("%s: list %v, want [1 2]", tc.name, list)
		}
	}
}
