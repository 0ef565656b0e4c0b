package conntrack

import (
	"testing"

	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
)

// TestReleaseCarried is the transition table of the release hook's carried
// flag: only flows in which the far side took part carried a connection
// (the SNAT quarantine holds only their ports).
func TestReleaseCarried(t *testing.T) {
	type step struct {
		reply          bool
		flags          uint8
		seq, ack       uint32
		udp            bool // a UDP datagram instead of a TCP segment
		expire, delete bool // end the flow here instead of sending
	}
	syn := step{flags: SYN, seq: 100}
	synack := step{reply: true, flags: SYNACK, seq: 500, ack: 101}
	ack := step{flags: ACK, seq: 101, ack: 501}
	del := step{delete: true}
	for _, c := range []struct {
		name    string
		steps   []step
		state   State // before the end
		carried bool
	}{
		{"syn_sent expired", []step{syn, {expire: true}}, TCPSynSent, false},
		{"syn_sent deleted", []step{syn, del}, TCPSynSent, false},
		{"syn_recv", []step{syn, synack, del}, TCPSynRecv, false},
		{"refused by rst", []step{syn, {reply: true, flags: RSTACK, ack: 101}, del}, TCPClose, false},
		{"client rst in syn_sent", []step{syn, {flags: RST, seq: 101}, del}, TCPClose, false},
		{"established", []step{syn, synack, ack, del}, TCPEstablished, true},
		{"established then rst", []step{syn, synack, ack, {flags: RST, seq: 101}, del}, TCPClose, true},
		{"syn_recv then rst", []step{syn, synack, {reply: true, flags: RST, seq: 501}, del}, TCPClose, true},
		{"time_wait", []step{syn, synack, ack, {flags: FINACK, seq: 101, ack: 501}, {reply: true, flags: FINACK, seq: 501, ack: 102},
			{flags: ACK, seq: 102, ack: 502}, del}, TCPTimeWait, true},
		{"reopened after time_wait", []step{syn, synack, ack, {flags: FINACK, seq: 101, ack: 501},
			{reply: true, flags: FINACK, seq: 501, ack: 102}, {flags: ACK, seq: 102, ack: 502}, {flags: SYN, seq: 90000}, del}, TCPSynSent, true},
		{"udp unanswered", []step{{udp: true}, {udp: true}, {expire: true}}, UDPSingle, false},
		{"udp answered", []step{{udp: true}, {udp: true, reply: true}, del}, UDPMultiple, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Policy{})
			var got []bool
			h.s.OnRelease(func(orig *Key, nat Translation, carried bool, now Time) { got = append(got, carried) })
			cn := &conn{t: t, cport: 41000, sport: 7000}
			var k Key
			for i, st := range c.steps {
				switch {
				case st.expire:
					if s := h.state(k); s != c.state {
						t.Fatalf("state %v, want %v", s, c.state)
					}
					h.clk.Advance(DefaultProfile.Established + Second)
					h.s.Expire(h.clk.now, 100)
				case st.delete:
					if s := h.state(k); s != c.state {
						t.Fatalf("state %v, want %v", s, c.state)
					}
					r, _, ok := h.s.Lookup(&k, h.clk.now)
					if !ok {
						t.Fatal("flow gone")
					}
					h.s.Delete(r, h.clk.now)
				default:
					var p Packet
					switch {
					case st.udp && st.reply:
						p = pkt(t, headertest.Spec{Src: server, Dst: snatAddr, Proto: header.ProtoUDP, SrcPort: 53, DstPort: cn.sport, Payload: make([]byte, 8)})
					case st.udp:
						p = pkt(t, headertest.Spec{Src: client, Dst: server, Proto: header.ProtoUDP, SrcPort: cn.cport, DstPort: 53, Payload: make([]byte, 8)})
					case st.reply:
						p = cn.in(st.flags, st.seq, st.ack, 0)
					default:
						p = cn.out(st.flags, st.seq, st.ack, 0)
					}
					if i == 0 {
						k = p.Key
					}
					if v := h.send(p, cn.sport); v.Reason != 0 {
						t.Fatalf("step %d: %v", i, v.Reason)
					}
				}
			}
			if len(got) != 1 || got[0] != c.carried {
				t.Fatalf("hook saw carried=%v, want [%v]", got, c.carried)
			}
		})
	}
}
