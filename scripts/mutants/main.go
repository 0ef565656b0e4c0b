// Command mutants runs the project's named mutants: one-line bugs kept in
// mutants.txt beside it, each applied in a throwaway copy of the tree while
// the mutated package's tests and the data plane's pipeline tests run. A
// mutant is killed when a test fails (or the tree no longer builds, counted
// apart); one that survives is either explained in equivalent.txt or a gap
// in the tests. It prints killed / survived per package and the survivors.
//
// Mutants name exact source text, not line numbers, so that edits elsewhere
// in a file do not move them. A mutant whose text is no longer found (or is
// found more than once) is reported STALE and makes the run fail: fix its
// entry, never skip it.
//
// Usage (from the repository root; scripts/mutate.sh wraps it):
//
//	go run ./scripts/mutants [-j jobs] [-run regexp] [-skip regexp] [-timeout 5m] [-list]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// pipelineTests are the data plane's tests that need no root: the worker's
// pipeline on golden packets, routing, the router's checks, fragments,
// apply. Every mutant runs them too, so that a bug in conntrack, snat, icmp
// or frag is also judged by the pipeline. pipelineSkip leaves out those of
// their names that build namespaces (TestPipelineSelection checks both
// against the data plane's test files).
const (
	pipelineTests = "TestPipeline|TestRoutes|TestNeighbour|TestApply|TestEvents|TestDropPath|TestHandoff|TestFragments|TestRouter"
	pipelineSkip  = "TestPipelineZeroAllocsRealTX|TestNeighbourFloodKeepsStream|TestNeighboursKernel"
)

// mutant is one entry of mutants.txt.
type mutant struct {
	name      string // package/short-name
	file      string // path from the repository root
	why       string // what bug it stands for
	orig, mut string // exact text and its replacement
	tests     string // extra go test -run for the file's own package ("" = all)
	re        *regexp.Regexp
}

// compile builds the pattern that finds m.orig: its text exactly, except
// that the indentation of its lines may be any run of tabs and spaces (the
// list is indented for reading; gofmt decides the source's).
func (m *mutant) compile() {
	lines := strings.Split(m.orig, "\n")
	for i, l := range lines {
		lines[i] = regexp.QuoteMeta(strings.TrimSpace(l))
	}
	m.re = regexp.MustCompile(strings.Join(lines, "\n[ \t]*"))
}

// apply returns src with m's text replaced, and how many times the text was
// found (the replacement is made only when exactly once).
func (m *mutant) apply(src string) (string, int) {
	locs := m.re.FindAllStringIndex(src, -1)
	if len(locs) != 1 {
		return src, len(locs)
	}
	return src[:locs[0][0]] + m.mut + src[locs[0][1]:], 1
}

func (m *mutant) pkg() string { return "./" + filepath.Dir(m.file) }

// outcome of running one mutant.
type outcome int

const (
	killed outcome = iota
	killedBuild
	killedTimeout
	survived
	equivalent // survived, and equivalent.txt says why that is expected
	stale
)

var outcomeNames = [...]string{"KILLED", "KILLED(build)", "KILLED(timeout)", "SURVIVED", "EQUIVALENT", "STALE"}

type result struct {
	m      *mutant
	out    outcome
	detail string // first failing test, or why stale
	took   time.Duration
}

func main() {
	jobs := flag.Int("j", 1, "mutants run at once (each in its own copy of the tree)")
	runRE := flag.String("run", "", "only mutants whose name matches this regexp")
	timeout := flag.Duration("timeout", 5*time.Minute, "time limit of one mutant's tests")
	skip := flag.String("skip", "", "go test -skip regexp for every test run: tests known to be flaky (the run says which it left out)")
	list := flag.Bool("list", false, "check and list the mutants without running them")
	dir := flag.String("dir", "scripts/mutants", "folder of mutants.txt and equivalent.txt")
	flag.Parse()

	ms, err := parseMutants(filepath.Join(*dir, "mutants.txt"))
	if err != nil {
		fatal(err)
	}
	equiv, err := parseEquivalent(filepath.Join(*dir, "equivalent.txt"), ms)
	if err != nil {
		fatal(err)
	}
	if *runRE != "" {
		re, err := regexp.Compile(*runRE)
		if err != nil {
			fatal(err)
		}
		var sel []*mutant
		for _, m := range ms {
			if re.MatchString(m.name) {
				sel = append(sel, m)
			}
		}
		ms = sel
	}
	// Check every mutant against the current tree before running any.
	var results []result
	var runnable []*mutant
	for _, m := range ms {
		if why := checkText(".", m); why != "" {
			results = append(results, result{m: m, out: stale, detail: why})
			continue
		}
		runnable = append(runnable, m)
	}
	if *list {
		for _, m := range ms {
			fmt.Printf("%-45s %s\n", m.name, m.file)
		}
		for _, r := range results {
			fmt.Printf("STALE %s: %s\n", r.m.name, r.detail)
		}
		if len(results) > 0 {
			os.Exit(1)
		}
		return
	}

	copies := make(chan string, *jobs)
	var trees []string
	removeTrees := func() {
		for _, t := range trees {
			os.RemoveAll(t)
		}
	}
	for i := 0; i < *jobs; i++ {
		tree, err := copyTree(".")
		if err != nil {
			removeTrees()
			fatal(err)
		}
		trees = append(trees, tree)
		copies <- tree
	}
	fmt.Printf("%d mutants (%d stale), %d at a time, tests of the mutated package + ./dataplane -run '%s' -skip '%s'\n",
		len(ms), len(results), *jobs, pipelineTests, pipelineSkip)
	if *skip != "" {
		fmt.Printf("left out of every package's tests (-skip): %s\n", *skip)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range runnable {
		wg.Add(1)
		go func(m *mutant) {
			defer wg.Done()
			tree := <-copies
			defer func() { copies <- tree }()
			r := runMutant(tree, m, *timeout, *skip)
			if r.out == survived && equiv[m.name] != "" {
				r.out = equivalent
			}
			mu.Lock()
			results = append(results, r)
			fmt.Printf("%-16s %-50s %6.1fs %s\n", outcomeNames[r.out], m.name, r.took.Seconds(), r.detail)
			mu.Unlock()
		}(m)
	}
	wg.Wait()
	removeTrees()
	if report(results, equiv) {
		os.Exit(1)
	}
}

// report prints the summary; it returns true if the run must fail (a stale
// mutant, or a survivor that equivalent.txt does not explain).
func report(results []result, equiv map[string]string) bool {
	type counts struct{ total, killed, build, timeout, survived, equivalent, stale int }
	per := map[string]*counts{}
	var all counts
	for _, r := range results {
		p := filepath.Dir(r.m.file)
		if per[p] == nil {
			per[p] = &counts{}
		}
		for _, c := range []*counts{per[p], &all} {
			c.total++
			switch r.out {
			case killed:
				c.killed++
			case killedBuild:
				c.build++
			case killedTimeout:
				c.timeout++
			case survived:
				c.survived++
			case equivalent:
				c.equivalent++
			case stale:
				c.stale++
			}
		}
	}
	pkgs := make([]string, 0, len(per))
	for p := range per {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	fmt.Printf("\n%-16s %6s %7s %6s %8s %9s %6s %6s %8s %13s\n", "package", "total", "killed", "build", "timeout", "survived", "equiv", "stale", "killed", "net")
	line := func(name string, c *counts) {
		k := c.killed + c.build + c.timeout
		ran := c.total - c.stale
		pct := func(n, d int) string {
			if d == 0 {
				return "-"
			}
			return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(d))
		}
		fmt.Printf("%-16s %6d %7d %6d %8d %9d %6d %6d %8s %13s\n", name, c.total, c.killed, c.build, c.timeout,
			c.survived, c.equivalent, c.stale, pct(k, ran), pct(k, ran-c.equivalent))
	}
	for _, p := range pkgs {
		line(p, per[p])
	}
	line("all", &all)
	fmt.Println("killed = killed by tests, build or timeout, over the mutants run; net: the same without the equivalent ones")

	sort.Slice(results, func(i, j int) bool { return results[i].m.name < results[j].m.name })
	fail := false
	for _, r := range results {
		switch r.out {
		case survived:
			fmt.Printf("SURVIVED   %s (%s): %s\n", r.m.name, r.m.file, r.m.why)
			fail = true
		case equivalent:
			fmt.Printf("EQUIVALENT %s: %s\n", r.m.name, equiv[r.m.name])
		case stale:
			fmt.Printf("STALE      %s (%s): %s -- update its entry in mutants.txt\n", r.m.name, r.m.file, r.detail)
			fail = true
		default:
			if equiv[r.m.name] != "" {
				fmt.Printf("NOTE       %s is listed in equivalent.txt but was killed: remove it from the list\n", r.m.name)
			}
		}
	}
	return fail
}

// runMutant applies m in tree, runs the tests, and restores the file.
func runMutant(tree string, m *mutant, limit time.Duration, skip string) (r result) {
	r.m = m
	start := time.Now()
	defer func() { r.took = time.Since(start) }()
	path := filepath.Join(tree, m.file)
	src, err := os.ReadFile(path)
	if err != nil {
		r.out, r.detail = stale, err.Error()
		return r
	}
	mutated, _ := m.apply(string(src))
	if err := os.WriteFile(path, []byte(mutated), 0o644); err != nil {
		fatal(err)
	}
	defer func() {
		if err := os.WriteFile(path, src, 0o644); err != nil {
			fatal(err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	own := []string{"test", "-count=1", "-vet=off", "-failfast", "-timeout", limit.String()}
	pipeSkip := pipelineSkip
	if skip != "" {
		pipeSkip += "|" + skip
	}
	switch {
	case m.pkg() == "./dataplane" && m.tests == "":
		// Its other tests need root, build namespaces and take minutes.
		own = append(own, "-run", pipelineTests, "-skip", pipeSkip)
	case m.tests != "":
		own = append(own, "-run", m.tests)
		fallthrough
	default:
		if skip != "" {
			own = append(own, "-skip", skip)
		}
	}
	own = append(own, m.pkg())
	cmds := [][]string{own}
	if m.pkg() != "./dataplane" {
		cmds = append(cmds, []string{"test", "-count=1", "-vet=off", "-failfast", "-timeout", limit.String(),
			"-run", pipelineTests, "-skip", pipeSkip, "./dataplane"})
	}
	for _, args := range cmds {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = tree
		out, err := cmd.CombinedOutput()
		if err == nil {
			continue
		}
		switch {
		case ctx.Err() != nil || strings.Contains(string(out), "panic: test timed out"):
			r.out, r.detail = killedTimeout, "timed out"
		case strings.Contains(string(out), "[build failed]") || strings.Contains(string(out), "[setup failed]"):
			r.out, r.detail = killedBuild, buildError(string(out))
		default:
			r.out, r.detail = killed, firstFailure(string(out))
		}
		return r
	}
	r.out = survived
	return r
}

var failRE = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)

// firstFailure names the deepest first failing test in go test's output.
func firstFailure(out string) string {
	ms := failRE.FindAllStringSubmatch(out, -1)
	if len(ms) == 0 {
		return firstLine(out)
	}
	deepest := ms[0][1]
	for _, m := range ms {
		if strings.HasPrefix(m[1], deepest) {
			deepest = m[1]
		}
	}
	return deepest
}

var buildErrRE = regexp.MustCompile(`(?m)^\S+\.go:\d+:\d+: .*$`)

// buildError returns the first compiler error in go test's output. A mutant
// killed only by the build is worth a look: it may be a broken entry.
func buildError(out string) string {
	if m := buildErrRE.FindString(out); m != "" {
		return firstLine(m)
	}
	return firstLine(out)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// checkText returns why m cannot be applied to the tree at root, or "".
func checkText(root string, m *mutant) string {
	src, err := os.ReadFile(filepath.Join(root, m.file))
	if err != nil {
		return err.Error()
	}
	switch _, n := m.apply(string(src)); n {
	case 1:
		return ""
	case 0:
		return "original text not found"
	default:
		return fmt.Sprintf("original text found %d times (make it unique)", n)
	}
}

// copyTree copies the files git knows of (tracked, and untracked but not
// ignored) under root into a new temporary folder.
func copyTree(root string) (string, error) {
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return "", fmt.Errorf("git ls-files: %w", err)
	}
	tree, err := os.MkdirTemp("", "edge-mutants-")
	if err != nil {
		return "", err
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, f)
		st, err := os.Lstat(src)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted in the work tree, not yet in the index
			}
			return "", err
		}
		if !st.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return "", err
		}
		dst := filepath.Join(tree, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(dst, b, st.Mode().Perm()); err != nil {
			return "", err
		}
	}
	return tree, nil
}

// parseMutants reads mutants.txt. An entry is:
//
//	=== package/short-name
//	file: path/from/root.go
//	why: what bug this stands for
//	run: optional go test -run regexp for the file's own package
//	---
//	exact original text (one or more lines; indentation is not compared)
//	+++
//	replacement text (may be empty: the text is deleted)
//
// Lines starting with # are comments anywhere (Go source has none).
func parseMutants(path string) ([]*mutant, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []*mutant
	var cur *mutant
	var section int // 0 fields, 1 original, 2 replacement
	var orig, repl []string
	names := map[string]bool{}
	flush := func() error {
		if cur == nil {
			return nil
		}
		cur.orig = strings.TrimSpace(strings.Join(trimBlank(orig), "\n"))
		for i := range repl {
			repl[i] = strings.TrimSpace(repl[i])
		}
		cur.mut = strings.Join(trimBlank(repl), "\n")
		switch {
		case cur.file == "" || cur.why == "":
			return fmt.Errorf("%s: mutant %s needs file: and why:", path, cur.name)
		case cur.orig == "":
			return fmt.Errorf("%s: mutant %s has no original text", path, cur.name)
		case cur.orig == cur.mut:
			return fmt.Errorf("%s: mutant %s changes nothing", path, cur.name)
		case names[cur.name]:
			return fmt.Errorf("%s: mutant %s appears twice", path, cur.name)
		}
		names[cur.name] = true
		cur.compile()
		ms = append(ms, cur)
		return nil
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "=== "):
			if err := flush(); err != nil {
				return nil, err
			}
			cur = &mutant{name: strings.TrimSpace(line[4:])}
			section, orig, repl = 0, nil, nil
		case cur == nil || strings.HasPrefix(line, "#") || section == 0 && strings.TrimSpace(line) == "":
			// Comments (# in the first column, never Go) and blank lines
			// between fields.
		case section == 0 && line == "---":
			section = 1
		case section == 1 && line == "+++":
			section = 2
		case section == 1:
			orig = append(orig, line)
		case section == 2:
			repl = append(repl, line)
		default:
			k, v, ok := strings.Cut(line, ":")
			v = strings.TrimSpace(v)
			switch {
			case !ok:
				return nil, fmt.Errorf("%s:%d: expected field: value", path, n)
			case k == "file":
				cur.file = v
			case k == "why":
				cur.why = v
			case k == "run":
				cur.tests = v
			default:
				return nil, fmt.Errorf("%s:%d: unknown field %q", path, n, k)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return ms, nil
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// parseEquivalent reads equivalent.txt: "name: why it cannot be killed",
// one a line, # comments. Every name must be a mutant of mutants.txt.
func parseEquivalent(path string, ms []*mutant) (map[string]string, error) {
	known := map[string]bool{}
	for _, m := range ms {
		known[m.name] = true
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	eq := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, why, ok := strings.Cut(line, ": ")
		if !ok || strings.TrimSpace(why) == "" {
			return nil, fmt.Errorf("%s:%d: expected name: reason", path, i+1)
		}
		if !known[name] {
			return nil, fmt.Errorf("%s:%d: %s is not a mutant of mutants.txt", path, i+1, name)
		}
		eq[name] = why
	}
	return eq, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "mutants:", err)
	os.Exit(2)
}
