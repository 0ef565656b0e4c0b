package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamplesValidate runs `edge validate` on every example configuration
// in config/examples: the files the README points operators to must stay
// valid as the schema changes. A broken copy must be refused, naming the
// file and the line.
func TestExamplesValidate(t *testing.T) {
	files, err := filepath.Glob("../../config/examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configurations: %v", err)
	}
	validate := func(path string) (string, error) {
		c := validateCmd()
		var out bytes.Buffer
		c.SetOut(&out)
		c.SetErr(&out)
		c.SetArgs([]string{"--config", path})
		c.SilenceUsage, c.SilenceErrors = true, true
		err := c.Execute()
		return out.String(), err
	}
	for _, f := range files {
		if out, err := validate(f); err != nil {
			t.Errorf("edge validate --config %s: %v\n%s", f, err, out)
		}
		b, _ := os.ReadFile(f)
		broken := filepath.Join(t.TempDir(), "broken.yaml")
		os.WriteFile(broken, bytes.Replace(b, []byte("action: reject"), []byte("action: maybe"), 1), 0o644)
		if _, err := validate(broken); err == nil || !strings.HasPrefix(err.Error(), broken+":") || !strings.Contains(err.Error(), ".action: must be") {
			t.Errorf("%s with an invalid action: %v", f, err)
		}
	}
}
