package gen

import (
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"
)

// Engines.
const (
	EngineAuto     = "auto"     // AF_XDP, else AF_PACKET
	EngineAFXDP    = "afxdp"    // AF_XDP (zero-copy when the driver can, copy mode on veth)
	EngineAFPacket = "afpacket" // AF_PACKET raw socket, sendmmsg / recvmmsg
)

// TxConfig configures Transmit.
type TxConfig struct {
	Dev      string
	Engine   string // EngineAuto (default), EngineAFXDP or EngineAFPacket
	Frame    FrameConfig
	Rate     float64       // packets per second; 0: as fast as possible
	Duration time.Duration // 0: until Count or Stop
	Count    uint64        // packets to send; 0: until Duration or Stop
	Batch    int           // frames per kernel call, default 64
	// Burst, with Rate, waits until this many packets are due and sends
	// them together (default 1: each packet on time). At low rates the
	// pacer then sleeps between bursts instead of spinning between
	// packets, leaving the CPU to the rest of a lab.
	Burst int
	Stop  *atomic.Bool // optional: set to stop early
}

// TxStats is what Transmit did. Sent counts frames the kernel took (AF_XDP:
// completed descriptors; AF_PACKET: accepted by sendmmsg).
type TxStats struct {
	Engine     string  `json:"engine"`
	Queues     int     `json:"queues"`
	Sent       uint64  `json:"sent"`
	Bytes      uint64  `json:"bytes"`
	Unfinished uint64  `json:"unfinished"` // queued but never completed (AF_XDP)
	Seconds    float64 `json:"seconds"`    // first to last packet queued
	PPS        float64 `json:"pps"`
	Rate       float64 `json:"rate"`
	Errors     uint64  `json:"errors"`
	CPUSeconds float64 `json:"cpu_seconds"` // the process's user+system CPU, whole run
	FirstNs    int64   `json:"first_ns"`    // CLOCK_MONOTONIC of the first packet
	LastNs     int64   `json:"last_ns"`
}

// Transmit sends packets built by a Builder until Count, Duration or Stop.
// It runs on the calling goroutine, locked to its OS thread.
func Transmit(c TxConfig) (TxStats, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ifi, err := net.InterfaceByName(c.Dev)
	if err != nil {
		return TxStats{}, err
	}
	if c.Batch <= 0 {
		c.Batch = 64
	}
	if c.Batch > 256 {
		c.Batch = 256
	}
	if c.Frame.SrcMAC == ([6]byte{}) && len(ifi.HardwareAddr) == 6 {
		copy(c.Frame.SrcMAC[:], ifi.HardwareAddr)
	}
	if c.Stop == nil {
		c.Stop = new(atomic.Bool)
	}
	var st TxStats
	switch c.Engine {
	case "", EngineAuto:
		st, err = txXDP(c, ifi.Index)
		if err != nil && !errors.Is(err, errStarted) {
			st, err = txPacket(c, ifi.Index)
		}
	case EngineAFXDP:
		st, err = txXDP(c, ifi.Index)
	case EngineAFPacket:
		st, err = txPacket(c, ifi.Index)
	default:
		return st, errors.New("gen: unknown engine " + c.Engine)
	}
	st.Rate = c.Rate
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		st.CPUSeconds = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	if st.LastNs > st.FirstNs {
		st.Seconds = float64(st.LastNs-st.FirstNs) / 1e9
		st.PPS = float64(st.Sent) / st.Seconds
	}
	return st, err
}

// errStarted marks errors after packets went out (no fallback then).
var errStarted = errors.New("gen: engine failed after start")

// pacer decides how many packets may go now.
type pacer struct {
	rate     float64
	t0       int64
	deadline int64
	count    uint64
	burst    int64 // packets due before any is queued (>= 1)
}

// allow returns how many of want may be queued when queued have been, or
// -1 when the run is over.
func (p *pacer) allow(now int64, queued uint64, want int) int {
	if p.deadline != 0 && now >= p.deadline {
		return -1
	}
	if p.count != 0 {
		if queued >= p.count {
			return -1
		}
		want = int(min(uint64(want), p.count-queued))
	}
	if p.rate > 0 {
		due := int64(p.rate * float64(now-p.t0) / 1e9)
		a := due - int64(queued)
		if a < p.burst {
			// Sleep when the burst's last packet is far, else spin.
			gap := int64((float64(p.burst) - float64(a)) * 1e9 / p.rate)
			if gap > 200_000 {
				time.Sleep(time.Duration(gap - 100_000))
			}
			return 0
		}
		want = int(min(int64(want), a))
	}
	return want
}

func newPacer(c TxConfig, now int64) pacer {
	p := pacer{rate: c.Rate, t0: now, count: c.Count, burst: int64(max(c.Burst, 1))}
	if c.Duration > 0 {
		p.deadline = now + int64(c.Duration)
	}
	return p
}

const (
	xdpFrames    = 4096
	xdpFrameSize = 2048
	xdpRing      = 2048
)

func txXDP(c TxConfig, ifindex int) (TxStats, error) {
	q := max(c.Frame.Queues, 1)
	st := TxStats{Engine: EngineAFXDP, Queues: q}
	opts := xdp.SocketOptions{NumFrames: xdpFrames, FrameSize: xdpFrameSize, FillRingNumDescs: 64,
		CompletionRingNumDescs: xdpRing, TxRingNumDescs: xdpRing, NeedWakeup: true, Mode: xdp.ModeAuto}
	socks := make([]*xdp.Socket, 0, q)
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	for i := 0; i < q; i++ {
		s, err := xdp.NewSocket(ifindex, i, &opts)
		if err != nil {
			return st, err
		}
		socks = append(socks, s)
	}
	b, err := NewBuilder(c.Frame, q*xdpFrames)
	if err != nil {
		return st, err
	}
	own := make([][]xdp.Desc, q)
	avail := make([]int, q)
	used := make([]int, q)
	for i := range own {
		own[i] = make([]xdp.Desc, c.Batch)
	}
	var queued, completed uint64
	p := newPacer(c, Now())
	st.FirstNs = p.t0
	for !c.Stop.Load() {
		for i, s := range socks {
			if n := s.NumCompleted(); n > 0 {
				s.Complete(n)
				completed += uint64(n)
			}
			if err := s.Err(); err != nil {
				st.Errors++
			}
			_ = i
		}
		want := p.allow(Now(), queued, c.Batch)
		if want < 0 {
			break
		}
		if want == 0 {
			for _, s := range socks {
				s.Kick()
			}
			continue
		}
		for i, s := range socks {
			d := s.GetDescs(min(want, s.NumFreeTxSlots()))
			avail[i] = copy(own[i], d)
			used[i] = 0
		}
		k := 0
		for ; k < want; k++ {
			seq := queued
			i := b.Queue(seq)
			if used[i] == avail[i] {
				break
			}
			d := &own[i][used[i]]
			f := socks[i].GetFrame(*d)
			n := b.Build(f, i*xdpFrames+int(d.Addr/xdpFrameSize), seq, Now())
			d.Len = uint32(n)
			used[i]++
			queued++
			st.Bytes += uint64(n)
		}
		for i, s := range socks {
			if used[i] > 0 {
				s.Transmit(own[i][:used[i]])
			}
			if used[i] < avail[i] {
				s.Release(own[i][used[i]:avail[i]])
			}
		}
		if k == 0 {
			// Rings full: let the kernel catch up.
			for _, s := range socks {
				s.Kick()
			}
			_, _ = unix.Poll(pollOut(socks), 1)
		}
	}
	st.LastNs = Now()
	// Drain: wait for the kernel to complete what was queued.
	end := Now() + int64(500*time.Millisecond)
	for completed < queued && Now() < end {
		for _, s := range socks {
			s.Kick()
			if n := s.NumCompleted(); n > 0 {
				s.Complete(n)
				completed += uint64(n)
			}
		}
		if completed < queued {
			time.Sleep(50 * time.Microsecond)
		}
	}
	st.Sent = completed
	st.Unfinished = queued - completed
	return st, nil
}

func pollOut(socks []*xdp.Socket) []unix.PollFd {
	var fds [16]unix.PollFd
	n := 0
	for _, s := range socks {
		if n < len(fds) {
			fds[n] = unix.PollFd{Fd: int32(s.FD()), Events: unix.POLLOUT}
			n++
		}
	}
	return fds[:n]
}

// mmsghdr is struct mmsghdr (linux/amd64 and arm64 layout).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func txPacket(c TxConfig, ifindex int) (TxStats, error) {
	st := TxStats{Engine: EngineAFPacket, Queues: 1}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		return st, err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		return st, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 16<<20)
	nb := c.Batch
	b, err := NewBuilder(c.Frame, nb)
	if err != nil {
		return st, err
	}
	bufs := make([]byte, nb*xdpFrameSize)
	iovs := make([]unix.Iovec, nb)
	msgs := make([]mmsghdr, nb)
	for i := range msgs {
		iovs[i].Base = &bufs[i*xdpFrameSize]
		msgs[i].hdr.Iov = &iovs[i]
		msgs[i].hdr.Iovlen = 1
	}
	var queued uint64
	p := newPacer(c, Now())
	st.FirstNs = p.t0
	for !c.Stop.Load() {
		want := p.allow(Now(), queued, nb)
		if want < 0 {
			break
		}
		if want == 0 {
			continue
		}
		for i := 0; i < want; i++ {
			n := b.Build(bufs[i*xdpFrameSize:(i+1)*xdpFrameSize], i, queued+uint64(i), Now())
			iovs[i].SetLen(n)
		}
		done := 0
		for done < want && !c.Stop.Load() {
			r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd),
				uintptr(unsafe.Pointer(&msgs[done])), uintptr(want-done), 0, 0, 0)
			if errno != 0 {
				if errno == syscall.ENOBUFS || errno == syscall.EAGAIN || errno == syscall.EINTR {
					runtime.Gosched()
					continue
				}
				st.Errors++
				return st, errStarted
			}
			for i := done; i < done+int(r); i++ {
				st.Bytes += uint64(iovs[i].Len)
			}
			done += int(r)
		}
		queued += uint64(done)
	}
	st.LastNs = Now()
	st.Sent = queued
	return st, nil
}
