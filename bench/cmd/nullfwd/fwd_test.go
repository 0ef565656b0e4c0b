package main

import (
	"bytes"
	"testing"
)

var (
	hopMAC    = [6]byte{0x02, 0, 0, 0, 0, 0xb}
	egressMAC = [6]byte{0x02, 0, 0, 0, 0, 0xe}
)

// TestRewrite: the frame keeps every byte but the two MACs.
func TestRewrite(t *testing.T) {
	frame := []byte{
		0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, // destination: the forwarder's own port
		0xcc, 0xcc, 0xcc, 0xcc, 0xcc, 0xcc, // source: the sender
		0x08, 0x00, // IPv4
		0x45, 0x00, 0x00, 0x1c, 0xde, 0xad, 0x40, 0x00, 0x40, 0x11, 0xbe, 0xef, // IPv4 header, TTL 64
		10, 0, 0, 2, 203, 0, 113, 2,
		0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x12, 0x34, // UDP
	}
	want := append([]byte{0x02, 0, 0, 0, 0, 0xb, 0x02, 0, 0, 0, 0, 0xe}, frame[12:]...)
	rewrite(frame, hopMAC, egressMAC)
	if !bytes.Equal(frame, want) {
		t.Fatalf("rewrite:\n% x\nwant\n% x", frame, want)
	}
}

// TestRewriteShort: a frame shorter than an Ethernet header is left as it is.
func TestRewriteShort(t *testing.T) {
	frame := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	orig := append([]byte(nil), frame...)
	rewrite(frame, hopMAC, egressMAC)
	if !bytes.Equal(frame, orig) {
		t.Fatalf("rewrite of a 13-byte frame: % x", frame)
	}
}

func TestRewriteZeroAlloc(t *testing.T) {
	frame := make([]byte, 64)
	if a := testing.AllocsPerRun(1000, func() { rewrite(frame, hopMAC, egressMAC) }); a != 0 {
		t.Fatalf("rewrite: %v allocations per frame", a)
	}
}

func BenchmarkRewrite64(b *testing.B) {
	frame := make([]byte, 64)
	b.ReportAllocs()
	b.SetBytes(64)
	for b.Loop() {
		rewrite(frame, hopMAC, egressMAC)
	}
}
