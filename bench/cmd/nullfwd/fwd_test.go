package main

import (
	"bytes"
	"testing"
)

var (
	hopMAC    = [6]byte{0x02, 0, 0, 0, 0, 0xb}
	egressMAC = [6]byte{0x02, 0, 0, 0, 0, 0xe}
)

// TestRelay: the copy carries the frame byte for byte except the two MACs,
// and the received frame is left as it was.
func TestRelay(t *testing.T) {
	frame := []byte{
		0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, // destination: the forwarder's own port
		0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, // source: the sender
		0x08, 0x00, // IPv4
		0x45, 0x00, 0x00, 0x1c, 0xde, 0xad, 0x40, 0x00, 0x40, 0x11, 0xbe, 0xef, // IPv4 header, TTL 64
		10, 0, 0, 2, 203, 0, 113, 2,
		0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x12, 0x34, // UDP
	}
	orig := append([]byte(nil), frame...)
	want := append([]byte{0x02, 0, 0, 0, 0, 0xb, 0x02, 0, 0, 0, 0, 0xe}, orig[12:]...)
	out := make([]byte, 2048)
	n := relay(out, frame, hopMAC, egressMAC)
	if n != len(frame) || !bytes.Equal(out[:n], want) {
		t.Fatalf("relay wrote %d bytes\n% x\nwant\n% x", n, out[:n], want)
	}
	if !bytes.Equal(frame, orig) {
		t.Fatal("relay changed the received frame")
	}
}

// TestRelayShort: a frame shorter than an Ethernet header is copied as is
// (no MAC to rewrite), and nothing is written past it.
func TestRelayShort(t *testing.T) {
	frame := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	out := bytes.Repeat([]byte{0xff}, 32)
	n := relay(out, frame, hopMAC, egressMAC)
	if n != len(frame) || !bytes.Equal(out[:n], frame) || !bytes.Equal(out[n:], bytes.Repeat([]byte{0xff}, 32-n)) {
		t.Fatalf("relay of a 13-byte frame: %d, % x", n, out)
	}
}

// TestRelayTruncates: a frame longer than the UMEM frame is cut to it
// instead of writing into the next frame.
func TestRelayTruncates(t *testing.T) {
	frame := bytes.Repeat([]byte{7}, 100)
	out := make([]byte, 64)
	if n := relay(out, frame, hopMAC, egressMAC); n != 64 {
		t.Fatalf("relay wrote %d bytes into a 64-byte frame", n)
	}
}

func TestRelayZeroAlloc(t *testing.T) {
	frame, out := make([]byte, 64), make([]byte, 2048)
	if a := testing.AllocsPerRun(1000, func() { relay(out, frame, hopMAC, egressMAC) }); a != 0 {
		t.Fatalf("relay: %v allocations per frame", a)
	}
}

func BenchmarkRelay64(b *testing.B) {
	frame, out := make([]byte, 64), make([]byte, 2048)
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		relay(out, frame, hopMAC, egressMAC)
	}
}
