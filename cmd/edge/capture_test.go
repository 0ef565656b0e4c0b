package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/edgegw/edge/ctl/edgepb"
	"github.com/edgegw/edge/header"
	"github.com/edgegw/edge/header/headertest"
	"github.com/edgegw/edge/internal/netnstest"
)

func testCaptured() []*pb.CapturedPacket {
	at := time.Date(2026, 12, 6, 10, 0, 0, 123456789, time.UTC)
	flow := &pb.Tuple{Protocol: "tcp", Src: "10.0.0.2", SrcPort: 40000, Dst: "203.0.113.2", DstPort: 80}
	syn := headertest.BuildEth(headertest.Spec{Src: netip.MustParseAddr("10.0.0.2"), Dst: netip.MustParseAddr("203.0.113.2"),
		Proto: header.ProtoTCP, SrcPort: 40000, DstPort: 80, Flags: header.TCPFlagSYN, Seq: 1}, [6]byte{2}, [6]byte{4})
	synAck := headertest.BuildEth(headertest.Spec{Src: netip.MustParseAddr("203.0.113.2"), Dst: netip.MustParseAddr("203.0.113.1"),
		Proto: header.ProtoTCP, SrcPort: 80, DstPort: 40000, Flags: header.TCPFlagSYN | header.TCPFlagACK, Seq: 7, Ack: 99,
		Payload: make([]byte, 200)}, [6]byte{6}, [6]byte{8})
	return []*pb.CapturedPacket{
		{Time: timestamppb.New(at), Worker: 0, Trigger: 3, Ingress: "inside", Length: uint32(len(syn)), Data: syn,
			Flow: flow, Direction: "original", Action: "passed", Anomaly: "state_mismatch"},
		{Time: timestamppb.New(at.Add(time.Millisecond)), Worker: 0, Trigger: 3, Ingress: "outside", Length: uint32(len(synAck)),
			Data: synAck[:128], Flow: flow, Generation: 2, Direction: "reply", Action: "dropped", DropReason: "synack_bad_ack",
			Anomaly: "state_mismatch", Anomalous: true},
		{Time: timestamppb.New(at.Add(time.Second)), Worker: 1, Trigger: 1, Ingress: "inside", Length: 54, Data: syn[:54],
			Action: "dropped", DropReason: "firewall_reject", RstSent: true, Anomaly: "edge_rst", Anomalous: true},
		{Time: timestamppb.New(at.Add(2 * time.Second)), Worker: 1, Trigger: 2, Ingress: "inside", Length: 54, Data: syn[:54],
			Action: "dropped", DropReason: "no_state", Anomaly: "idle_expired", Anomalous: true, Idle: durationpb.New(7500 * time.Second)},
	}
}

func TestCaptureComment(t *testing.T) {
	want := []string{
		"edge: passed; history of anomaly state_mismatch #0.3; flow tcp 10.0.0.2:40000 > 203.0.113.2:80 original",
		"edge: dropped synack_bad_ack; anomaly state_mismatch #0.3; flow tcp 10.0.0.2:40000 > 203.0.113.2:80 gen 2 reply",
		"edge: dropped firewall_reject, sent rst; anomaly edge_rst #1.1; no flow",
		"edge: dropped no_state; anomaly idle_expired (idle 2h5m0s) #1.2; no flow",
	}
	for i, p := range testCaptured() {
		if got := captureComment(p); got != want[i] {
			t.Errorf("packet %d: comment\n%q\nwant\n%q", i, got, want[i])
		}
	}
}

// epbOptions walks the pcapng blocks of file (little endian) and returns,
// per Enhanced Packet Block, its options by code, checking each block's
// two length fields agree and every length is a multiple of 4.
func epbOptions(t *testing.T, file []byte) []map[uint16][]byte {
	t.Helper()
	le := binary.LittleEndian
	var out []map[uint16][]byte
	for off := 0; off < len(file); {
		if len(file)-off < 12 {
			t.Fatalf("truncated block at %d", off)
		}
		typ, n := le.Uint32(file[off:]), int(le.Uint32(file[off+4:]))
		if n%4 != 0 || n < 12 || off+n > len(file) || int(le.Uint32(file[off+n-4:])) != n {
			t.Fatalf("block type %d at %d: bad length %d", typ, off, n)
		}
		if typ == pcapngEPB {
			b := file[off : off+n-4]
			capLen := int(le.Uint32(b[20:]))
			o := 28 + capLen + (4-capLen&3)&3
			opts := map[uint16][]byte{}
			for {
				if o+4 > len(b) {
					t.Fatalf("EPB at %d: options run past the block", off)
				}
				code, l := le.Uint16(b[o:]), int(le.Uint16(b[o+2:]))
				if code == pcapngOptEnd {
					if l != 0 || o+4 != len(b) {
						t.Fatalf("EPB at %d: opt_endofopt length %d, %d bytes after it", off, l, len(b)-o-4)
					}
					break
				}
				opts[code] = b[o+4 : o+4+l]
				o += 4 + l + (4-l&3)&3
			}
			out = append(out, opts)
		}
		off += n
	}
	return out
}

// The pcapng file: gopacket's reader reads every packet back (data,
// lengths, time, interface), its Ethernet frames decode, and each EPB
// carries the comment and the inbound flag, per the pcapng layout.
func TestWriteCapturePcapng(t *testing.T) {
	pkts := testCaptured()
	var buf bytes.Buffer
	if err := writeCapture(&buf, pkts); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("link type %v", r.LinkType())
	}
	for i, p := range pkts {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		wantIntf := map[string]int{"inside": 0, "outside": 1}[p.Ingress]
		if !bytes.Equal(data, p.Data) || ci.Length != int(p.Length) || ci.CaptureLength != len(p.Data) ||
			!ci.Timestamp.Equal(p.Time.AsTime()) || ci.InterfaceIndex != wantIntf {
			t.Fatalf("packet %d read back: len %d caplen %d time %v intf %d", i, ci.Length, ci.CaptureLength, ci.Timestamp, ci.InterfaceIndex)
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		if pkt.Layer(layers.LayerTypeTCP) == nil {
			t.Fatalf("packet %d: no TCP layer decoded: %v", i, pkt)
		}
	}
	if _, _, err := r.ReadPacketData(); err != io.EOF {
		t.Fatalf("after the packets: %v, want EOF", err)
	}
	if r.NInterfaces() != 2 {
		t.Fatalf("%d interfaces, want 2 (inside, outside)", r.NInterfaces())
	}
	opts := epbOptions(t, buf.Bytes())
	if len(opts) != len(pkts) {
		t.Fatalf("%d EPBs, want %d", len(opts), len(pkts))
	}
	for i, o := range opts {
		if got := string(o[pcapngOptComment]); got != captureComment(pkts[i]) {
			t.Fatalf("EPB %d comment %q", i, got)
		}
		if f := o[pcapngEPBFlags]; len(f) != 4 || binary.LittleEndian.Uint32(f) != pcapngInbound {
			t.Fatalf("EPB %d flags %x", i, f)
		}
	}
}

// tsharkComments runs tshark on file and returns its packets' comments
// (one line per packet).
func tsharkComments(t *testing.T, file string) []string {
	t.Helper()
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark is not installed (apt-get install -y tshark)")
	}
	cmd := exec.Command(tshark, "-r", file, "-T", "fields", "-e", "frame.comment")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.Stdin = nil // never a prompt
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	return strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
}

// The file edge writes reads in tshark with every comment whole.
func TestCaptureTshark(t *testing.T) {
	pkts := testCaptured()
	file := filepath.Join(t.TempDir(), "c.pcapng")
	if err := writeCaptureFile(file, pkts); err != nil {
		t.Fatal(err)
	}
	got := tsharkComments(t, file)
	if len(got) != len(pkts) {
		t.Fatalf("tshark: %d packets %q, want %d", len(got), got, len(pkts))
	}
	for i, p := range pkts {
		if got[i] != captureComment(p) {
			t.Fatalf("tshark packet %d comment %q, want %q", i, got[i], captureComment(p))
		}
	}
}

// TestCaptureEndToEnd runs the daemon in namespaces and edge capture
// beside it: a server that resets a connection right after the client's
// request is a server_rst anomaly whose pcapng holds the connection's
// history; a TCP segment of no flow (injected from the client) is a
// state_mismatch drop, read from a capture armed with --arm. tshark and
// gopacket read the files. In each family.
func TestCaptureEndToEnd(t *testing.T) {
	netnstest.Require(t)
	bin := netnstest.BuildEdge(t, ".")
	for _, fam := range e2eFamilies {
		t.Run(fam.name, func(t *testing.T) { testCaptureEndToEnd(t, bin, fam) })
	}
}

func testCaptureEndToEnd(t *testing.T, bin string, fam e2eFamily) {
	dir := t.TempDir()
	client, edge, server := fam.gateway(t, "cap")
	sock, logText, _ := runDaemon(t, bin, dir, edge, fam.config(""))
	cli := func(args ...string) *exec.Cmd {
		return exec.Command(bin, append([]string{"--socket", sock}, args...)...)
	}

	// A server that reads the request and resets the connection.
	var l net.Listener
	if err := server.Do(func() (err error) { l, err = net.Listen(fam.tcp(), hp(fam.server, 7001)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 100)
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				c.Read(buf)
				c.(*net.TCPConn).SetLinger(0) // close with a reset
				c.Close()
			}()
		}
	}()
	request := func() error {
		return client.Do(func() error {
			c, err := net.DialTimeout(fam.tcp(), hp(fam.server, 7001), 3*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
			c.SetReadDeadline(time.Now().Add(time.Second))
			_, err = c.Read(make([]byte, 10))
			if errors.Is(err, unix.ECONNRESET) {
				return nil // the server's answer
			}
			return fmt.Errorf("request: %v, want the server's reset", err)
		})
	}
	// edge drops a packet whose next hop is not resolved yet (it asks the
	// kernel to resolve it): warm the neighbour entries up first.
	if !netnstest.WaitFor(10*time.Second, func() bool { return request() == nil }) {
		t.Fatalf("no request crossed edge: %v\nlog:\n%s", request(), logText())
	}

	rstFile := filepath.Join(dir, "rst.pcapng")
	capture := cli("capture", "port=7001", "--count", "1", "--for", "20s", "-w", rstFile)
	pr, pw := io.Pipe()
	capture.Stdout, capture.Stderr = pw, pw
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	done := make(chan error, 1)
	go func() { err := capture.Wait(); pw.Close(); done <- err }()
	var capOut []string
	if l := <-lines; !strings.HasPrefix(l, "capture 1 armed for 20s") {
		t.Fatalf("edge capture: %q, want it armed\nlog:\n%s", l, logText())
	} else {
		capOut = append(capOut, l)
	}
	// Armed: each connection is recorded from its SYN. Another one if the
	// first was lost on its way (the capture stops after one anomaly).
	if err := request(); err != nil {
		t.Fatal(err)
	}
	for waited := false; ; waited = true {
		var err error
		select {
		case err = <-done:
		case <-time.After(3 * time.Second):
			if waited {
				t.Fatalf("edge capture kept no anomaly\nlog:\n%s", logText())
			}
			if err := request(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		for l := range lines {
			capOut = append(capOut, l)
		}
		if err != nil {
			t.Fatalf("edge capture: %v\n%s\nlog:\n%s", err, strings.Join(capOut, "\n"), logText())
		}
		break
	}
	comments := tsharkComments(t, rstFile)
	t.Logf("edge capture:\n%s\ntshark comments:\n%s", strings.Join(capOut, "\n"), strings.Join(comments, "\n"))
	last := comments[len(comments)-1]
	if !strings.HasPrefix(last, "edge: passed; anomaly server_rst #") ||
		!strings.Contains(last, "; flow tcp "+strings.TrimSuffix(hp(fam.client, 0), "0")) || !strings.Contains(last, " > "+hp(fam.server, 7001)+" gen ") || !strings.HasSuffix(last, " reply") {
		t.Fatalf("the last packet is not the server's reset with its verdict: %q", last)
	}
	// Its history: the handshake and the request came before it.
	if len(comments) < 3 || !strings.HasPrefix(comments[0], "edge: passed; history of anomaly server_rst #") {
		t.Fatalf("no history before the reset: %q", comments)
	}
	readPcapng(t, rstFile, len(comments), func(i int, p gopacket.Packet) {
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil || (tcp.SrcPort != 7001 && tcp.DstPort != 7001) {
			t.Fatalf("packet %d is not of the connection to 7001: %v", i, p)
		}
		if i == 0 && !tcp.SYN {
			t.Fatalf("the history does not start with the SYN: %v", p)
		}
		if i == len(comments)-1 && !tcp.RST {
			t.Fatalf("the anomalous packet is not the reset: %v", p)
		}
	})

	// A segment of no flow, from the client: armed first, read after.
	if out, err := cli("capture", "--arm", "--for", "30s").CombinedOutput(); err != nil || !strings.Contains(string(out), "armed until") {
		t.Fatalf("edge capture --arm: %v\n%s", err, out)
	}
	ack := headertest.Build(headertest.Spec{Src: fam.client, Dst: fam.server,
		Proto: header.ProtoTCP, SrcPort: 45678, DstPort: 7002, Flags: header.TCPFlagACK, Seq: 1, Ack: 1, Payload: []byte("late")})
	// A raw IPPROTO_RAW socket sends the packet as built (IPv6 too: Linux
	// implies the header is included for IPPROTO_RAW).
	domain, to := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Addr: fam.server.As16()})
	if fam.server.Is4() {
		domain, to = unix.AF_INET, &unix.SockaddrInet4{Addr: fam.server.As4()}
	}
	if err := client.Do(func() error {
		fd, err := unix.Socket(domain, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, ack, 0, to)
	}); err != nil {
		t.Fatal(err)
	}
	lateFile := filepath.Join(dir, "late.pcapng")
	var comments2 []string
	if !netnstest.WaitFor(5*time.Second, func() bool {
		if out, err := cli("capture", "--read", "-w", lateFile).CombinedOutput(); err != nil {
			t.Fatalf("edge capture --read: %v\n%s", err, out)
		}
		comments2 = tsharkComments(t, lateFile)
		return len(comments2) > 0 && comments2[0] != ""
	}) {
		t.Fatalf("the segment of no flow was not kept\nlog:\n%s", logText())
	}
	if len(comments2) != 1 || !strings.HasPrefix(comments2[0], "edge: dropped no_state; anomaly state_mismatch #") || !strings.HasSuffix(comments2[0], "; no flow") {
		t.Fatalf("tshark comments %q, want the no_state drop", comments2)
	}
	readPcapng(t, lateFile, 1, func(_ int, p gopacket.Packet) {
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil || tcp.SrcPort != 45678 || string(tcp.Payload) != "late" {
			t.Fatalf("kept packet is not the injected segment: %v", p)
		}
	})
	if out, err := cli("capture", "--disarm").CombinedOutput(); err != nil || !strings.Contains(string(out), "disarmed: 1 anomalies, 1 packets kept") {
		t.Fatalf("edge capture --disarm: %v\n%s", err, out)
	}
}

// readPcapng reads file with gopacket's pcapng reader, checks it holds n
// packets, and calls check with each, decoded from Ethernet.
func readPcapng(t *testing.T, file string, n int, check func(int, gopacket.Packet)) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for ; ; i++ {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		check(i, gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default))
	}
	if i != n {
		t.Fatalf("gopacket read %d packets, tshark %d", i, n)
	}
}
