package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const testList = `# a comment
=== pkg/one
file: pkg/a.go
why: a boundary moved
---
    if x <= limit {
        return true
+++
if x < limit {
return true
# a comment inside the text is not part of it

=== pkg/two
file: pkg/a.go
why: a line deleted
run: TestTwo
---
	count++
+++
`

const testSrc = "package pkg\n\nfunc f(x, limit int) bool {\n\tcount++\n\tif x <= limit {\n\t\treturn true\n\t}\n\treturn false\n}\n"

func writeList(t *testing.T, list string) []*mutant {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mutants.txt")
	if err := os.WriteFile(p, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	ms, err := parseMutants(p)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestParseAndApply(t *testing.T) {
	ms := writeList(t, testList)
	if len(ms) != 2 {
		t.Fatalf("%d mutants, want 2", len(ms))
	}
	one, two := ms[0], ms[1]
	if one.name != "pkg/one" || one.file != "pkg/a.go" || one.why != "a boundary moved" || one.tests != "" {
		t.Fatalf("one: %+v", one)
	}
	if two.tests != "TestTwo" || two.mut != "" {
		t.Fatalf("two: %+v", two)
	}
	// The list's indentation differs from the source's: still found once.
	got, n := one.apply(testSrc)
	if n != 1 || !strings.Contains(got, "if x < limit {\nreturn true\n\t}") || strings.Contains(got, "#") {
		t.Fatalf("apply one: n=%d\n%s", n, got)
	}
	got, n = two.apply(testSrc)
	if n != 1 || strings.Contains(got, "count++") {
		t.Fatalf("apply two: n=%d\n%s", n, got)
	}
}

func TestStaleAndAmbiguous(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	ms := writeList(t, testList)
	write := func(src string) {
		if err := os.WriteFile(filepath.Join(dir, "pkg", "a.go"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(testSrc)
	if why := checkText(dir, ms[0]); why != "" {
		t.Fatalf("fresh source: %s", why)
	}
	write(strings.Replace(testSrc, "x <= limit", "x <= max", 1))
	if why := checkText(dir, ms[0]); !strings.Contains(why, "not found") {
		t.Fatalf("changed source: %q, want not found", why)
	}
	write(testSrc + "\nfunc g() {\n\tcount++\n}\n")
	if why := checkText(dir, ms[1]); !strings.Contains(why, "2 times") {
		t.Fatalf("text twice: %q, want found 2 times", why)
	}
}

func TestBadEntries(t *testing.T) {
	for name, list := range map[string]string{
		"no why":        "=== a\nfile: x.go\n---\na\n+++\nb\n",
		"no original":   "=== a\nfile: x.go\nwhy: w\n---\n+++\nb\n",
		"no change":     "=== a\nfile: x.go\nwhy: w\n---\na\n+++\na\n",
		"twice":         "=== a\nfile: x.go\nwhy: w\n---\na\n+++\nb\n=== a\nfile: x.go\nwhy: w\n---\na\n+++\nc\n",
		"unknown field": "=== a\nfile: x.go\nwhy: w\nwho: me\n---\na\n+++\nb\n",
	} {
		p := filepath.Join(t.TempDir(), "mutants.txt")
		if err := os.WriteFile(p, []byte(list), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := parseMutants(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestEquivalentNamesMustExist(t *testing.T) {
	ms := writeList(t, testList)
	p := filepath.Join(t.TempDir(), "equivalent.txt")
	if err := os.WriteFile(p, []byte("# c\npkg/one: same on every input\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eq, err := parseEquivalent(p, ms)
	if err != nil || eq["pkg/one"] != "same on every input" {
		t.Fatalf("%v %v", eq, err)
	}
	if err := os.WriteFile(p, []byte("pkg/gone: was removed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := parseEquivalent(p, ms); err == nil {
		t.Fatalf("an equivalent naming no mutant was accepted")
	}
}

func TestFirstFailure(t *testing.T) {
	out := "--- FAIL: TestA (0.00s)\n    --- FAIL: TestA/sub (0.00s)\n--- FAIL: TestB (0.00s)\nFAIL\n"
	if got := firstFailure(out); got != "TestA/sub" {
		t.Fatalf("firstFailure = %q", got)
	}
	build := "# pkg\npkg/a.go:3:1: syntax error: unexpected #\nFAIL\tpkg [build failed]\n"
	if got := buildError(build); got != "pkg/a.go:3:1: syntax error: unexpected #" {
		t.Fatalf("buildError = %q", got)
	}
}

// TestPipelineSelection checks the data plane tests every mutant runs
// against the data plane's test files: the fragment and router tests are
// in, and no test that needs root (netnstest) is.
func TestPipelineSelection(t *testing.T) {
	run := regexp.MustCompile(pipelineTests)
	skip := regexp.MustCompile(pipelineSkip)
	files, err := filepath.Glob("../../dataplane/*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("data plane test files: %v %v", files, err)
	}
	// A top-level test function and its body, up to the next one.
	fnRE := regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\) \{`)
	selected := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		locs := fnRE.FindAllStringSubmatchIndex(src, -1)
		for i, l := range locs {
			name := src[l[2]:l[3]]
			end := len(src)
			if i+1 < len(locs) {
				end = locs[i+1][0]
			}
			// go test's -run and -skip match unanchored.
			if !run.MatchString(name) || skip.MatchString(name) {
				continue
			}
			selected[name] = true
			if strings.Contains(src[l[0]:end], "netnstest.") {
				t.Errorf("%s (%s) needs root and namespaces but is in the pipeline selection", name, filepath.Base(f))
			}
		}
	}
	for _, name := range []string{"TestFragmentsFollowTheirFirst", "TestFragmentsIPv6", "TestFragmentsOfADroppedFirst",
		"TestFragmentsExpireAndTCP", "TestRouterIPv4Checksum", "TestRouterURPF", "TestPipelineGolden"} {
		if !selected[name] {
			t.Errorf("%s is not in the pipeline selection", name)
		}
	}
}
