package conntrack

import "testing"

func TestSmokeHandshakeAndClose(t *testing.T) {
	h := newHarness(t, Policy{})
	c := &conn{t: t, cport: 40000, sport: 1025, cisn: 1000, sisn: 5000}
	steps := []struct {
		p    Packet
		want State
		act  Action
	}{
		{c.out(SYN, 1000, 0, 0), TCPSynSent, Forward},
		{c.in(SYNACK, 5000, 1001, 0), TCPSynRecv, Forward},
		{c.out(ACK, 1001, 5001, 0), TCPEstablished, Forward},
		{c.out(ACK|PSH, 1001, 5001, 100), TCPEstablished, Forward},
		{c.in(ACK|PSH, 5001, 1101, 500), TCPEstablished, Forward},
		{c.out(FINACK, 1101, 5501, 0), TCPFinWait, Forward},
		{c.in(ACK, 5501, 1102, 0), TCPCloseWait, Forward},
		{c.in(FINACK, 5501, 1102, 0), TCPLastAck, Forward},
		{c.out(ACK, 1102, 5502, 0), TCPTimeWait, Forward},
	}
	for i, st := range steps {
		v := h.send(st.p, c.sport)
		if v.Action != st.act || v.State != st.want {
			t.Fatalf("step %d: got %v %v (%v), want %v %v", i, v.Action, v.State, v.Reason, st.act, st.want)
		}
	}
}
