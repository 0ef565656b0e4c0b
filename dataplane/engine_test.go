package dataplane

import (
	"strings"
	"testing"
)

// New refuses one interface as both inside and outside before touching the
// kernel (edge validate refuses it too, in package config).
func TestNewRefusesOneInterfaceTwice(t *testing.T) {
	e, err := New(Config{Inside: Interface{Name: "eth7"}, Outside: Interface{Name: "eth7"}})
	if e != nil || err == nil || !strings.Contains(err.Error(), `both "eth7"`) {
		t.Fatalf("New with inside = outside: %v, %v", e, err)
	}
}
