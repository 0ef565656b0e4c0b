package dataplane

import "testing"

// TestSocketOptionsAreTheWorkers: what another forwarder gets is what
// Engine opens its sockets with: RX ring twice the others, 2,048-byte
// frames, and the defaults of Config.
func TestSocketOptionsAreTheWorkers(t *testing.T) {
	o := SocketOptions(8192, 1024, true)
	if o.NumFrames != 8192 || o.FrameSize != 2048 || o.FillRingNumDescs != 1024 || o.CompletionRingNumDescs != 1024 ||
		o.TxRingNumDescs != 1024 || o.RxRingNumDescs != 2048 || !o.NeedWakeup || o.Hugepages {
		t.Fatalf("SocketOptions(8192, 1024, true) = %+v", o)
	}
	if o != socketOptions(8192, 1024, true, false) {
		t.Fatal("SocketOptions differs from the worker's socketOptions")
	}
	c := Config{}
	if err := c.defaults(); err != nil {
		t.Fatal(err)
	}
	if c.Ring != DefaultRing || c.Frames != DefaultFrames(DefaultRing) {
		t.Fatalf("Config defaults ring %d frames %d; exported DefaultRing %d, DefaultFrames %d", c.Ring, c.Frames, DefaultRing, DefaultFrames(DefaultRing))
	}
	if FillTarget(c.Frames, c.Ring) != fillTarget(c.Frames, c.Ring) {
		t.Fatal("FillTarget differs from the worker's")
	}
}

// TestIdlePolicyExported: the exported policy is the worker's: a fresh one
// yields spinYields times, then sleeps; yields wasted halve the next
// stretch's.
func TestIdlePolicyExported(t *testing.T) {
	p := NewIdlePolicy(BusyPoll{})
	for stretch, want := range []int{spinYields, spinYields / 2} {
		n := 0
		for p.Idle(0) {
			n++
		}
		if n != want {
			t.Fatalf("stretch %d: %d yields before sleeping, want %d", stretch, n, want)
		}
		p.Work(1, 0)
	}
	if y, s, _ := p.Stats(); y != spinYields+spinYields/2 || s != 2 {
		t.Fatalf("stats: %d yields, %d sleeps", y, s)
	}
}
