package conntrack

import "testing"

// LateExpired names the packet Track just dropped as a late packet of an
// expired flow, with the flow's idle time, and nothing else: not another
// key, not the same key at another time, not a packet of no flow that
// never was.
func TestLateExpired(t *testing.T) {
	h := newHarness(t, Policy{})
	c := &conn{t: t, cport: 40000, sport: 80, cisn: 1000, sisn: 900000}
	stray := &conn{t: t, cport: 40001, sport: 80, cisn: 1, sisn: 2}
	p := stray.out(ACK, 1, 1, 0)
	if v := h.send(p, stray.sport); v.Reason.String() != "no_state" {
		t.Fatalf("stray ACK: %v", v)
	}
	if _, ok := h.s.LateExpired(&p.Key, h.clk.now); ok {
		t.Fatal("a packet of no flow that ever was is late")
	}
	for _, q := range []Packet{c.out(SYN, c.cisn, 0, 0), c.in(SYNACK, c.sisn, c.cisn+1, 0), c.out(ACK, c.cisn+1, c.sisn+1, 0)} {
		h.send(q, c.sport)
	}
	h.clk.Advance(DefaultProfile.Established + 10*Second)
	h.s.Expire(h.clk.now, 1<<12)
	late := c.out(ACK|PSH, c.cisn+1, c.sisn+1, 10)
	if v := h.send(late, c.sport); v.Action != Drop {
		t.Fatalf("late packet: %v", v)
	}
	idle, ok := h.s.LateExpired(&late.Key, h.clk.now)
	if !ok || idle < DefaultProfile.Established+10*Second-Second || idle > DefaultProfile.Established+10*Second {
		t.Fatalf("late packet: LateExpired %v %v, want about %v idle", idle, ok, DefaultProfile.Established+10*Second)
	}
	if _, ok := h.s.LateExpired(&p.Key, h.clk.now); ok {
		t.Fatal("another key is late")
	}
	if _, ok := h.s.LateExpired(&late.Key, h.clk.now+1); ok {
		t.Fatal("the late note outlives its packet's time")
	}
}
