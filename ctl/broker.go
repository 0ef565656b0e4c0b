package ctl

import (
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// broker is the single reader of Backend.ReadEvents. It polls the backend
// with a reusable buffer and copies each event into the bounded queue of
// every subscriber whose filter matches. A full queue loses the event
// (counted, reported in that subscriber's next response); the broker never
// waits for a subscriber, so a stuck client costs only its own events.
//
// With no subscriber the broker keeps draining the backend and discards
// what it reads: the data plane's rings do not fill up (and count losses)
// while nobody listens, and a new subscriber does not get stale events.
type broker struct {
	b        Backend
	interval time.Duration
	queueLen int
	maxSubs  int

	mu   sync.Mutex
	subs map[*subscriber]struct{}

	startOnce sync.Once
	stopOnce  sync.Once
	stop      chan struct{} // closed by close
	done      chan struct{} // closed when run returns
}

// subscriber is one Subscribe stream's queue.
type subscriber struct {
	filter *eventFilter
	notify chan struct{} // capacity 1: "the queue is not empty"

	mu   sync.Mutex
	q    []Event // at most queueLen
	lost uint64  // events dropped since the last take
}

const (
	defaultEventPoll  = 25 * time.Millisecond
	defaultEventQueue = 4096
	eventReadBuf      = 1024
)

func newBroker(b Backend, interval time.Duration, queueLen, maxSubs int) *broker {
	return &broker{
		b:        b,
		interval: interval,
		queueLen: queueLen,
		maxSubs:  maxSubs,
		subs:     make(map[*subscriber]struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// start starts the polling goroutine (once; not after close).
func (br *broker) start() {
	br.startOnce.Do(func() { go br.run() })
}

// close stops the broker and waits for it; subscribers see done closed.
// Safe to call more than once, and before start.
func (br *broker) close() {
	br.stopOnce.Do(func() {
		close(br.stop)
		br.startOnce.Do(func() { close(br.done) }) // never started
	})
	<-br.done
}

func (br *broker) run() {
	defer close(br.done)
	buf := make([]Event, eventReadBuf)
	t := time.NewTicker(br.interval)
	defer t.Stop()
	var subs []*subscriber
	for {
		select {
		case <-br.stop:
			return
		case <-t.C:
		}
		subs = br.snapshot(subs[:0])
		for {
			n := br.b.ReadEvents(buf)
			if n > 0 && len(subs) > 0 {
				for _, s := range subs {
					s.offer(buf[:n], br.queueLen)
				}
			}
			if n < len(buf) {
				break
			}
			select {
			case <-br.stop:
				return
			default:
			}
		}
	}
}

func (br *broker) snapshot(dst []*subscriber) []*subscriber {
	br.mu.Lock()
	for s := range br.subs {
		dst = append(dst, s)
	}
	br.mu.Unlock()
	return dst
}

// subscribe adds a subscriber; cancel removes it. With maxSubs
// subscribers already (0: no cap), it fails with RESOURCE_EXHAUSTED.
func (br *broker) subscribe(f *eventFilter) (s *subscriber, cancel func(), err error) {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.maxSubs > 0 && len(br.subs) >= br.maxSubs {
		return nil, nil, status.Errorf(codes.ResourceExhausted,
			"too many event subscribers: %d already, the server's limit (WithMaxSubscribers); end one (edge events) and retry", len(br.subs))
	}
	s = &subscriber{filter: f, notify: make(chan struct{}, 1), q: make([]Event, 0, min(br.queueLen, 256))}
	br.subs[s] = struct{}{}
	return s, func() {
		br.mu.Lock()
		delete(br.subs, s)
		br.mu.Unlock()
	}, nil
}

// offer queues the events s's filter matches; what does not fit is lost.
// It never blocks on s's reader.
func (s *subscriber) offer(evs []Event, queueLen int) {
	added := false
	s.mu.Lock()
	for i := range evs {
		if !s.filter.match(&evs[i]) {
			continue
		}
		if len(s.q) >= queueLen {
			s.lost++
			added = true // report the loss
			continue
		}
		s.q = append(s.q, evs[i])
		added = true
	}
	s.mu.Unlock()
	if added {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// take swaps the queue with spare (whose contents are dropped) and returns
// the queued events with the count lost since the previous take.
func (s *subscriber) take(spare []Event) ([]Event, uint64) {
	s.mu.Lock()
	q, lost := s.q, s.lost
	s.q, s.lost = spare[:0], 0
	s.mu.Unlock()
	return q, lost
}
