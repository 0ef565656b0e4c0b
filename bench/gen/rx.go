package gen

import (
	"errors"
	"net"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"
)

// Recorder accumulates what a sink received. Add allocates nothing. Use
// NewRecorder; a Recorder belongs to one goroutine.
type Recorder struct {
	seen      []uint64 // bitmap of sequence numbers < maxSeq
	maxSeq    uint32
	lowWord   int // range of bitmap words touched since Reset
	highWord  int
	received  uint64
	unique    uint64
	dup       uint64
	reorder   uint64
	untracked uint64 // sequence numbers >= maxSeq (not checked for duplicates)
	other     uint64 // frames without the magic
	bytes     uint64
	highest   uint32
	any       bool
	firstNs   int64
	lastNs    int64
	lat       Hist
}

// NewRecorder tracks duplicates for sequence numbers below maxSeq (a bitmap
// of maxSeq bits; 0 means 1<<26, 8 MiB).
func NewRecorder(maxSeq uint32) *Recorder {
	if maxSeq == 0 {
		maxSeq = 1 << 26
	}
	r := &Recorder{maxSeq: maxSeq, seen: make([]uint64, (uint64(maxSeq)+63)/64)}
	r.Reset()
	return r
}

// Add records one frame of n bytes received at now (CLOCK_MONOTONIC ns).
func (r *Recorder) Add(frame []byte, now int64) {
	p, ok := ParsePacket(frame)
	if !ok {
		r.other++
		return
	}
	r.received++
	r.bytes += uint64(len(frame)) + fcsLen
	if !r.any {
		r.firstNs = now
	}
	r.lastNs = now
	if p.Seq < r.maxSeq {
		w := int(p.Seq >> 6)
		bit := uint64(1) << (p.Seq & 63)
		if r.seen[w]&bit != 0 {
			r.dup++
			return
		}
		r.seen[w] |= bit
		r.lowWord = min(r.lowWord, w)
		r.highWord = max(r.highWord, w)
	} else {
		r.untracked++
	}
	r.unique++
	if r.any && p.Seq < r.highest {
		r.reorder++
	}
	if !r.any || p.Seq > r.highest {
		r.highest = p.Seq
	}
	r.any = true
	d := now - p.TS
	if d < 0 {
		d = 0
	}
	r.lat.Record(uint64(d))
}

// Reset forgets everything recorded.
func (r *Recorder) Reset() {
	if r.highWord >= r.lowWord {
		clear(r.seen[r.lowWord : r.highWord+1])
	}
	seen, maxSeq := r.seen, r.maxSeq
	*r = Recorder{seen: seen, maxSeq: maxSeq, lowWord: len(seen), highWord: -1}
}

// SinkStats is a sink's summary (JSON).
type SinkStats struct {
	Engine     string  `json:"engine"`
	Received   uint64  `json:"received"` // frames with the magic, duplicates included
	Unique     uint64  `json:"unique"`
	Dup        uint64  `json:"dup"`
	Reorder    uint64  `json:"reorder"`
	Untracked  uint64  `json:"untracked"`
	Other      uint64  `json:"other"` // frames without the magic
	Bytes      uint64  `json:"bytes"` // FCS included
	Expected   uint64  `json:"expected"`
	ExpectedBy string  `json:"expected_by"` // "generator" (its summary or --expect) or "sequence" (highest + 1)
	Lost       int64   `json:"lost"`
	LossPct    float64 `json:"loss_pct"`
	Seconds    float64 `json:"seconds"` // first to last packet received
	PPS        float64 `json:"pps"`     // unique / seconds
	LatP50Ns   uint64  `json:"lat_p50_ns"`
	LatP99Ns   uint64  `json:"lat_p99_ns"`
	LatP999Ns  uint64  `json:"lat_p999_ns"`
	LatMinNs   uint64  `json:"lat_min_ns"`
	LatMaxNs   uint64  `json:"lat_max_ns"`
	LatMeanNs  float64 `json:"lat_mean_ns"`
	CPUSeconds float64 `json:"cpu_seconds"` // the sink process's user+system CPU so far
}

// Stats summarizes; expected is the generator's sent count (0: unknown,
// then the highest sequence number + 1 stands in).
func (r *Recorder) Stats(expected uint64) SinkStats {
	s := SinkStats{Received: r.received, Unique: r.unique, Dup: r.dup, Reorder: r.reorder,
		Untracked: r.untracked, Other: r.other, Bytes: r.bytes, ExpectedBy: "generator"}
	if expected == 0 && r.any {
		expected = uint64(r.highest) + 1
		s.ExpectedBy = "sequence"
	}
	s.Expected = expected
	s.Lost = int64(expected) - int64(r.unique)
	if expected > 0 {
		s.LossPct = 100 * float64(s.Lost) / float64(expected)
	}
	if r.lastNs > r.firstNs {
		s.Seconds = float64(r.lastNs-r.firstNs) / 1e9
		s.PPS = float64(r.unique) / s.Seconds
	}
	s.LatP50Ns = r.lat.Quantile(0.50)
	s.LatP99Ns = r.lat.Quantile(0.99)
	s.LatP999Ns = r.lat.Quantile(0.999)
	s.LatMinNs, s.LatMaxNs, s.LatMeanNs = r.lat.Min(), r.lat.Max(), r.lat.Mean()
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		s.CPUSeconds = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	return s
}

// SinkConfig configures Sink.
type SinkConfig struct {
	Dev      string
	Engine   string // EngineAuto (default), EngineAFXDP or EngineAFPacket
	Queues   int    // AF_XDP: queues to bind (one socket each); default 1
	MaxSeq   uint32 // see NewRecorder
	Stop     *atomic.Bool
	Snapshot *atomic.Bool // when set, Sink calls OnSnapshot, resets and clears it
	// OnSnapshot receives the recorder between batches (stats, then reset).
	OnSnapshot func(*Recorder)
	// Ready is called once the sockets are bound, with the engine used.
	Ready func(engine string)
}

// Sink receives until Stop and returns the recorder. It runs on the calling
// goroutine, locked to its OS thread.
func Sink(c SinkConfig) (*Recorder, string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ifi, err := net.InterfaceByName(c.Dev)
	if err != nil {
		return nil, "", err
	}
	if c.Stop == nil {
		c.Stop = new(atomic.Bool)
	}
	if c.Snapshot == nil {
		c.Snapshot = new(atomic.Bool)
	}
	r := NewRecorder(c.MaxSeq)
	switch c.Engine {
	case "", EngineAuto:
		if err = rxXDP(c, ifi.Index, r); err != nil && !errors.Is(err, errStarted) {
			err = rxPacket(c, ifi.Index, r)
			return r, EngineAFPacket, err
		}
		return r, EngineAFXDP, err
	case EngineAFXDP:
		return r, EngineAFXDP, rxXDP(c, ifi.Index, r)
	case EngineAFPacket:
		return r, EngineAFPacket, rxPacket(c, ifi.Index, r)
	}
	return nil, "", errors.New("gen: unknown engine " + c.Engine)
}

func (c *SinkConfig) service(r *Recorder) {
	if c.Snapshot.Load() {
		if c.OnSnapshot != nil {
			c.OnSnapshot(r)
		}
		r.Reset()
		c.Snapshot.Store(false)
	}
}

func rxXDP(c SinkConfig, ifindex int, r *Recorder) error {
	q := max(c.Queues, 1)
	prog, err := xdp.NewProgram(q)
	if err != nil {
		return err
	}
	defer prog.Close()
	if err := prog.Attach(ifindex); err != nil {
		return err
	}
	defer prog.Detach(ifindex)
	opts := xdp.SocketOptions{NumFrames: xdpFrames, FrameSize: xdpFrameSize, FillRingNumDescs: xdpRing,
		CompletionRingNumDescs: 64, RxRingNumDescs: xdpRing, NeedWakeup: true, Mode: xdp.ModeAuto}
	socks := make([]*xdp.Socket, 0, q)
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	fds := make([]unix.PollFd, 0, q)
	for i := 0; i < q; i++ {
		s, err := xdp.NewSocket(ifindex, i, &opts)
		if err != nil {
			return err
		}
		socks = append(socks, s)
		if err := prog.Register(i, s.FD()); err != nil {
			return err
		}
		s.Fill(s.GetDescs(s.NumFreeFillSlots()))
		fds = append(fds, unix.PollFd{Fd: int32(s.FD()), Events: unix.POLLIN})
	}
	if c.Ready != nil {
		c.Ready(EngineAFXDP)
	}
	idle := 0
	for !c.Stop.Load() {
		got := 0
		for _, s := range socks {
			n := s.NumReceived()
			if n == 0 {
				continue
			}
			ds := s.Receive(n)
			now := Now()
			for _, d := range ds {
				r.Add(s.GetFrame(d), now)
			}
			got += len(ds)
			s.Fill(ds)
		}
		c.service(r)
		if got > 0 {
			idle = 0
			continue
		}
		if idle++; idle < 256 {
			continue
		}
		for _, s := range socks {
			if s.FillNeedsWakeup() {
				s.Wakeup()
			}
		}
		_, _ = unix.Poll(fds, 10)
	}
	return nil
}

func rxPacket(c SinkConfig, ifindex int, r *Recorder) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex, Protocol: htons(unix.ETH_P_ALL)}); err != nil {
		return err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	tv := unix.NsecToTimeval(int64(10 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	const nb = 64
	bufs := make([]byte, nb*xdpFrameSize)
	iovs := make([]unix.Iovec, nb)
	msgs := make([]mmsghdr, nb)
	for i := range msgs {
		iovs[i].Base = &bufs[i*xdpFrameSize]
		iovs[i].SetLen(xdpFrameSize)
		msgs[i].hdr.Iov = &iovs[i]
		msgs[i].hdr.Iovlen = 1
	}
	if c.Ready != nil {
		c.Ready(EngineAFPacket)
	}
	for !c.Stop.Load() {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), nb, 0, 0, 0)
		now := Now()
		if errno == 0 {
			for i := 0; i < int(n); i++ {
				r.Add(bufs[i*xdpFrameSize:i*xdpFrameSize+int(msgs[i].len)], now)
			}
		}
		c.service(r)
	}
	return nil
}
