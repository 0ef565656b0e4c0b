package conntrack

import "testing"

// resetProfile is the default profile with a short established timer and
// idle_expiry reset.
var resetProfile = func() Profile {
	p := DefaultProfile
	p.Name, p.Established, p.IdleExpiry = "short-reset", 30*Second, IdleReset
	return p
}()

// openWithData opens c's connection through h and exchanges a request and
// a response, so each side's next sequence number moved past its ISN.
func openWithData(h *harness, c *conn) {
	h.t.Helper()
	ci, si := c.cisn, c.sisn
	h.run(c.sport, []step{
		{"SYN", c.out(SYN, ci, 0, 0), Forward, TCPSynSent, 0},
		{"SYN-ACK", c.in(SYNACK, si, ci+1, 0), Forward, TCPSynRecv, 0},
		{"ACK", c.out(ACK, ci+1, si+1, 0), Forward, TCPEstablished, 0},
		{"request", c.out(ACK|PSH, ci+1, si+1, 100), Forward, TCPEstablished, 0},
		{"response", c.in(ACK|PSH, si+1, ci+101, 1000), Forward, TCPEstablished, 0},
	})
}

func lastExpired(t *testing.T, tb *Table) Event {
	t.Helper()
	var evs [1024]Event
	n := tb.ReadEvents(evs[:])
	for i := n - 1; i >= 0; i-- {
		if evs[i].Kind == EvExpired {
			return evs[i]
		}
	}
	t.Fatalf("no expired event in %d events", n)
	return Event{}
}

// An ESTABLISHED flow of a reset profile that expires is queued with its
// keys as each end sees it (the outside end the SNAT address and port) and
// each side's next sequence number; its expired event says reset.
func TestIdleExpiryResetQueued(t *testing.T) { forEachFamily(t, testIdleExpiryResetQueued) }

func testIdleExpiryResetQueued(t *testing.T, fam family) {
	for _, sweep := range []bool{true, false} {
		t.Run(map[bool]string{true: "sweep", false: "lookup"}[sweep], func(t *testing.T) {
			h := newFamilyHarness(t, Policy{Profiles: []Profile{resetProfile}}, fam)
			c := h.conn(40000, 1025, 0xfffffff0, 5000) // the client's sequence numbers wrap
			openWithData(h, c)
			h.tb.SkipEvents()
			h.clk.Advance(resetProfile.Established + Second)
			if sweep {
				if n := h.s.Expire(h.clk.now, 1024); n != 1 {
					t.Fatalf("Expire released %d", n)
				}
			} else {
				late := c.out(ACK|PSH, c.cisn+101, c.sisn+1001, 10)
				if v := h.s.Track(&late, h.clk.now); v.Action != Drop {
					t.Fatalf("late packet: %+v", v)
				}
			}
			rs := h.s.ExpiredResets()
			orig := c.out(ACK, 0, 0, 0).Key
			reply := c.in(ACK, 0, 0, 0).Key
			want := ExpiredReset{Orig: orig, Reply: reply, Next: [2]uint32{c.cisn + 101, c.sisn + 1001}}
			if len(rs) != 1 || rs[0] != want {
				t.Fatalf("queued %+v\nwant %+v", rs, want)
			}
			if ev := lastExpired(t, h.tb); ev.Expiry != IdleReset || ev.Key != orig {
				t.Fatalf("expired event %+v, want expiry reset", ev)
			}
			h.s.NoteResetSent(&orig, true)
			h.s.NoteResetSent(&orig, false)
			st := h.tb.Stats()
			if st.Counters[CtrIdleReset] != 1 || st.Counters[CtrIdleResetLost] != 0 ||
				st.Counters[CtrIdleRSTClient] != 1 || st.Counters[CtrIdleRSTServer] != 1 {
				t.Fatalf("counters %v", st.Counters)
			}
			d := destOf(&orig)
			if e := h.s.dests.get(&d); e == nil || e.ctr[DestResetsEdge] != 1 {
				t.Fatalf("destination %v: %+v", d, e)
			}
			h.s.ConsumeExpiredResets(1)
			if len(h.s.ExpiredResets()) != 0 {
				t.Fatalf("still queued after consume")
			}
		})
	}
}

// Only ESTABLISHED flows of a reset profile are queued: the default
// (silent) profile, a handshake and a closing flow expire silently.
func TestIdleExpirySilent(t *testing.T) {
	forEachFamily(t, func(t *testing.T, fam family) {
		silent := resetProfile
		silent.Name, silent.IdleExpiry = "short-silent", IdleSilent
		for _, tc := range []struct {
			name    string
			profile Profile
			steps   func(c *conn) []step
		}{
			{"silent profile", silent, func(c *conn) []step { return fullLife(c)[:5] }},
			{"SYN_SENT", resetProfile, func(c *conn) []step { return fullLife(c)[:1] }},
			{"SYN_RECV", resetProfile, func(c *conn) []step { return fullLife(c)[:2] }},
			{"FIN_WAIT", resetProfile, func(c *conn) []step { return fullLife(c)[:6] }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := newFamilyHarness(t, Policy{Profiles: []Profile{tc.profile}}, fam)
				c := h.conn(40000, 1025, 1000, 5000)
				h.run(c.sport, tc.steps(c))
				h.tb.SkipEvents()
				h.clk.Advance(DefaultProfile.FinWait + Second) // past every timer of both profiles
				if n := h.s.Expire(h.clk.now, 1024); n != 1 {
					t.Fatalf("Expire released %d", n)
				}
				if rs := h.s.ExpiredResets(); len(rs) != 0 {
					t.Fatalf("queued %+v", rs)
				}
				if ev := lastExpired(t, h.tb); ev.Expiry != IdleSilent {
					t.Fatalf("expired event %+v, want silent", ev)
				}
				if st := h.tb.Stats(); st.Counters[CtrIdleReset] != 0 {
					t.Fatalf("counters %v", st.Counters)
				}
			})
		}
	})
}

// The queue is bounded: past IdleResetQueue flows, an expiring flow is
// counted lost and its event says silent; consuming part of the queue
// keeps the rest in order.
func TestIdleExpiryResetQueueBounded(t *testing.T) {
	tb, err := New(Config{MaxFlows: 1024, Memory: MemoryHeap, HistorySize: 64, EventRingSize: 1024,
		Policy: Policy{Profiles: []Profile{resetProfile}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tb.Close)
	nat, err := tb.InternAddr(snatAddr)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, tb: tb, s: tb.Shard(0), clk: clock{now: 1000 * Second}, nat: nat, fam: families[0]}
	n := IdleResetQueue + 3
	for i := 0; i < n; i++ {
		c := h.conn(uint16(20000+i), uint16(20000+i), 1000, 5000)
		h.run(c.sport, fullLife(c)[:3])
	}
	h.tb.SkipEvents()
	h.clk.Advance(resetProfile.Established + Second)
	if got := h.s.Expire(h.clk.now, 1024); got != n {
		t.Fatalf("Expire released %d, want %d", got, n)
	}
	st := h.tb.Stats()
	if st.Counters[CtrIdleReset] != IdleResetQueue || st.Counters[CtrIdleResetLost] != 3 {
		t.Fatalf("expired_reset %d, lost %d", st.Counters[CtrIdleReset], st.Counters[CtrIdleResetLost])
	}
	if ev := lastExpired(t, h.tb); ev.Expiry != IdleSilent {
		t.Fatalf("the last flow found the queue full, its event says %v", ev.Expiry)
	}
	rs := h.s.ExpiredResets()
	third := rs[2]
	h.s.ConsumeExpiredResets(2)
	if rs := h.s.ExpiredResets(); len(rs) != IdleResetQueue-2 || rs[0] != third {
		t.Fatalf("after consuming 2: %d left, first %+v, want %+v", len(rs), rs[0], third)
	}
	h.s.ConsumeExpiredResets(1 << 20)
	if len(h.s.ExpiredResets()) != 0 {
		t.Fatalf("consume past the end")
	}
}

func TestIdleExpiryResetZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	h := newHarness(t, Policy{Profiles: []Profile{resetProfile}})
	c := h.conn(40000, 1025, 1000, 5000)
	syn, synack, ack := c.out(SYN, 1000, 0, 0), c.in(SYNACK, 5000, 1001, 0), c.out(ACK, 1001, 5001, 0)
	allocs := testing.AllocsPerRun(100, func() {
		h.send(syn, c.sport)
		h.send(synack, c.sport)
		h.send(ack, c.sport)
		h.clk.Advance(resetProfile.Established + Second)
		h.s.Expire(h.clk.now, 1024)
		for _, r := range h.s.ExpiredResets() {
			h.s.NoteResetSent(&r.Orig, true)
		}
		h.s.ConsumeExpiredResets(len(h.s.ExpiredResets()))
	})
	if allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
	if st := h.tb.Stats(); st.Counters[CtrIdleRSTClient] < 100 {
		t.Fatalf("not reset: %v", st.Counters)
	}
}
