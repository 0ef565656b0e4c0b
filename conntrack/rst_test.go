package conntrack

import (
	"testing"

	"github.com/edgegw/edge/drop"
)

// RFC 5961 3.2 on an established flow that carried data both ways: an RST
// below the receiver's next expected sequence number (RCV.NXT) is outside
// the window and dropped, even one below it; exactly RCV.NXT closes; above
// it, within the window, it passes without changing state.
func TestRSTBelowNextIsOutOfWindow(t *testing.T) { forEachFamily(t, testRSTBelowNextIsOutOfWindow) }

func testRSTBelowNextIsOutOfWindow(t *testing.T, fam family) {
	const cisn, sisn = 5000, 90000
	const cdata, sdata = 300, 700
	cases := []struct {
		name   string
		server bool   // the server sends the RST (else the client)
		off    int32  // from the sender's next sequence number
		act    Action // Forward or Drop
		state  State
		reason drop.Reason
	}{
		{"server RST one below next", true, -1, Drop, TCPEstablished, drop.RSTOutOfWindow},
		{"server RST a segment below next", true, -sdata, Drop, TCPEstablished, drop.RSTOutOfWindow},
		{"server RST exact", true, 0, Forward, TCPClose, drop.None},
		{"server RST in window", true, 1000, Forward, TCPEstablished, drop.None},
		{"client RST one below next", false, -1, Drop, TCPEstablished, drop.RSTOutOfWindow},
		{"client RST exact", false, 0, Forward, TCPClose, drop.None},
		{"client RST in window", false, 1000, Forward, TCPEstablished, drop.None},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFamilyHarness(t, Policy{}, fam)
			c := h.conn(40000, 50000, cisn, sisn)
			steps := []Packet{
				c.out(SYN, cisn, 0, 0),
				c.in(SYNACK, sisn, cisn+1, 0),
				c.out(ACK, cisn+1, sisn+1, 0),
				c.out(ACK|PSH, cisn+1, sisn+1, cdata),
				c.in(ACK|PSH, sisn+1, cisn+1+cdata, sdata),
				c.out(ACK, cisn+1+cdata, sisn+1+sdata, 0),
			}
			for i, p := range steps {
				if v := h.send(p, c.sport); v.Action != Forward {
					t.Fatalf("step %d: %+v", i, v)
				}
			}
			var rst Packet
			if tc.server {
				rst = c.in(RSTACK, uint32(int32(sisn+1+sdata)+tc.off), cisn+1+cdata, 0)
			} else {
				rst = c.out(RSTACK, uint32(int32(cisn+1+cdata)+tc.off), sisn+1+sdata, 0)
			}
			v := h.send(rst, c.sport)
			if v.Action != tc.act || v.Reason != tc.reason || v.State != tc.state {
				t.Fatalf("RST seq next%+d: %v %v %v, want %v %v %v", tc.off, v.Action, v.Reason, v.State, tc.act, tc.reason, tc.state)
			}
			if got := h.state(steps[0].Key); got != tc.state {
				t.Fatalf("flow state %v, want %v", got, tc.state)
			}
		})
	}
}
