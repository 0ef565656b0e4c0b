package conntrack

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

const nrHugepages = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"

// TestHugepageStorage reserves 2 MiB pages for itself (root only), checks the
// table lands on them, and gives them back.
func TestHugepageStorage(t *testing.T) {
	if raceEnabled {
		t.Skip("under the race detector storage is on the Go heap by design")
	}
	if os.Geteuid() != 0 {
		t.Skip("reserving hugepages needs root")
	}
	b, err := os.ReadFile(nrHugepages)
	if err != nil {
		t.Skipf("no 2 MiB hugepage support: %v", err)
	}
	before, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	const need = 8 // 16 MiB: 1 MiB of flows + 256 KiB of index, each rounded up to 2 MiB
	if err := os.WriteFile(nrHugepages, []byte(strconv.Itoa(before+need)), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(nrHugepages, []byte(strconv.Itoa(before)), 0) })

	var logged string
	tb, err := New(Config{MaxFlows: 10000, Memory: MemoryHugepages, HistorySize: 1,
		Logf: func(f string, a ...any) { logged = fmt.Sprintf(f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if !tb.Hugepages() || !strings.Contains(logged, "hugepages") {
		t.Fatalf("not on hugepages; log: %q", logged)
	}
	establish(t, tb, tb.Shard(0), 1000, true, Second)
}

// Without reserved hugepages, MemoryAuto falls back to normal pages and says so.
func TestHugepageFallbackLogs(t *testing.T) {
	if raceEnabled {
		t.Skip("under the race detector storage is on the Go heap by design")
	}
	b, _ := os.ReadFile("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
	if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n > 0 {
		t.Skip("hugepages are reserved on this machine")
	}
	var logged string
	tb, err := New(Config{MaxFlows: 1000, HistorySize: 1, Logf: func(f string, a ...any) { logged = fmt.Sprintf(f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if tb.Hugepages() || !strings.Contains(logged, "normal pages") {
		t.Fatalf("hugepages=%v log %q", tb.Hugepages(), logged)
	}
}
