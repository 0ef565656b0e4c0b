package mailbox

import (
	"context"
	"runtime"
	"testing"
)

// Take claims the request: once the owner has it, it is no longer pending,
// so a second Take finds nothing (it is served once) and the caller can no
// longer withdraw it (Call reports it served, after Done).
func TestTakeClaims(t *testing.T) {
	var m Mailbox[int]
	r := 7
	served := make(chan bool)
	go func() { served <- m.Call(context.Background(), &r, 0) }()
	var got *int
	for got == nil {
		got = m.Take()
		runtime.Gosched()
	}
	if got != &r {
		t.Fatalf("Take returned %p, want the caller's request %p", got, &r)
	}
	if p := m.pending.Load(); p != nil {
		t.Fatalf("the request is still pending after Take: a caller giving up now would withdraw a request being served")
	}
	if again := m.Take(); again != nil {
		t.Fatalf("a second Take returned the request again: served twice")
	}
	m.Done()
	if !<-served {
		t.Fatalf("Call reported a request the owner served as not served")
	}
}
