package conntrack

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Control-plane access to flows.
//
// Flow storage belongs to the shards' owners, so the control plane never
// reads it directly. Instead it leaves one request at a time in a shard's
// mailbox (internal/mailbox); the owner serves it from Serve, called once
// per loop iteration, doing a bounded chunk of work (at most serveBudget
// slots scanned) and handing back results through the request. A dump of
// millions of flows is therefore many small chunks interleaved with
// forwarding: workers never stop and never wait for the control plane.

// FlowInfo is a copy of one flow for the control plane.
type FlowInfo struct {
	Incarnation
	Shard   int
	Ref     Ref
	Dir     Dir // for Explain: the direction the explained key matched
	Expires Time
	NATAddr netip.Addr
	NATPort uint16
	Profile uint8
	Liberal bool
	Pending bool // a SYN with a new ISN was noted on this synchronized flow
}

// Filter selects flows for Dump and Flush. The zero Filter matches all.
type Filter struct {
	Proto  uint8        // 0 = any
	Zone   int          // > 0: only flows of this zone; 0 = any zone
	Prefix netip.Prefix // matches either endpoint of either direction; invalid = any
	Port   uint16       // matches either port of either direction; 0 = any
	State  State        // StateNone = any
}

func (fl *Filter) match(fi *FlowInfo) bool {
	if fl.Proto != 0 && fi.Orig.Proto != fl.Proto {
		return false
	}
	if fl.Zone > 0 && int(fi.Orig.Zone) != fl.Zone {
		return false
	}
	if fl.State != StateNone && fi.State != fl.State {
		return false
	}
	if fl.Port != 0 && fi.Orig.SrcPort != fl.Port && fi.Orig.DstPort != fl.Port &&
		fi.Reply.SrcPort != fl.Port && fi.Reply.DstPort != fl.Port {
		return false
	}
	if fl.Prefix.IsValid() {
		in := func(a [16]byte) bool { return fl.Prefix.Contains(netip.AddrFrom16(a).Unmap()) }
		if !in(fi.Orig.Src) && !in(fi.Orig.Dst) && !in(fi.Reply.Dst) {
			return false
		}
	}
	return true
}

type reqOp uint8

const (
	opDump reqOp = iota + 1
	opFlush
	opExplain
	opDests
)

// request is one chunk of control work for a shard's owner.
type request struct {
	op     reqOp
	now    Time
	filter Filter
	key    Key
	cursor uint32     // in/out: next slot to scan
	flows  []FlowInfo // out (dump, explain current flow)
	hist   []Incarnation
	dests  []DestStat // out (destinations)
	n      int        // out: flows flushed
	done   bool       // out: the scan reached the end
}

// serveBudget bounds the slots one Serve call scans.
const serveBudget = 4096

// Serve does one bounded chunk of pending control work, if any. The owner
// calls it once per loop iteration (a single atomic load when idle).
func (s *Shard) Serve(now Time) {
	r := s.mbox.Take()
	if r == nil {
		return
	}
	switch r.op {
	case opDump, opFlush:
		s.serveScan(r, now)
	case opExplain:
		s.serveExplain(r, now)
	case opDests:
		s.serveDests(r)
	}
	s.mbox.Done()
}

func (s *Shard) serveScan(r *request, now Time) {
	nt := ticks(now)
	end := min(r.cursor+serveBudget, s.hiwater)
	for slot := r.cursor; slot < end; slot++ {
		f := &s.flows[slot]
		if f.state == StateNone || expired(f.expires, nt) {
			continue
		}
		fi := s.info(slot, now)
		if !r.filter.match(&fi) {
			continue
		}
		if r.op == opFlush {
			s.release(slot, CloseFlushed, now)
			r.n++
			continue
		}
		if len(r.flows) == cap(r.flows) {
			end = slot
			break
		}
		r.flows = append(r.flows, fi)
	}
	r.cursor = end
	r.done = end >= s.hiwater
}

func (s *Shard) serveExplain(r *request, now Time) {
	if slot, d, ok := s.find(&r.key, s.hash(&r.key), now); ok {
		fi := s.info(slot, now)
		fi.Dir = d
		r.flows = append(r.flows, fi)
	}
	rev := r.key.Reverse()
	s.hist.scan(func(in *Incarnation) bool {
		if in.Orig == r.key || in.Reply == r.key || in.Orig == rev || in.Reply == rev {
			if len(r.hist) == cap(r.hist) {
				return false
			}
			r.hist = append(r.hist, *in)
		}
		return true
	})
	r.done = true
}

func (s *Shard) info(slot uint32, now Time) FlowInfo {
	f := &s.flows[slot]
	return FlowInfo{
		Incarnation: s.incarnation(f, now),
		Shard:       int(s.id),
		Ref:         Ref(slot),
		Expires:     fromTicks(f.expires, now),
		NATAddr:     s.t.NATAddr(f.natAddr),
		NATPort:     f.natPort,
		Profile:     f.profile,
		Liberal:     f.flags&flagLiberal != 0,
		Pending:     f.state.IsTCP() && f.flags&flagPendingSYN != 0,
	}
}

// ErrNotServed is returned when a shard's owner did not take a control
// request before the context ended, or within ServeTimeout (no worker is
// running Serve, or it is stuck).
var ErrNotServed = errors.New("conntrack: shard owner did not serve the request (is the data plane running?)")

// ServeTimeout bounds the wait for a shard's owner to take one chunk of a
// control request (Dump, Flush, Explain): a running worker serves its
// mailbox every loop iteration, at least every few milliseconds, so an owner
// that has not taken a chunk in this long is not serving, and the request
// fails with ErrNotServed instead of waiting for the caller's context
// (which may have no deadline). A variable for tests.
var ServeTimeout = 5 * time.Second

// do hands r to shard s and waits for its owner to serve it, at most until
// ctx ends or ServeTimeout passes without the owner taking it.
func (s *Shard) do(ctx context.Context, r *request) error {
	if !s.mbox.Call(ctx, r, ServeTimeout) {
		return ErrNotServed
	}
	return nil
}

// Dump calls fn for every live flow that matches filter, shard by shard, in
// chunks; fn runs on the caller's goroutine and may stop the dump by
// returning false. The view is not a snapshot of one instant: flows created
// or removed during the dump may or may not appear. At time now.
//
// The shard's control lock is held only while its owner fills a chunk, not
// while fn runs: fn may block (a client that reads slowly) without holding
// up Flush, Explain or other dumps of the shard, which take turns with this
// one between chunks.
func (t *Table) Dump(ctx context.Context, filter Filter, now Time, fn func(*FlowInfo) bool) error {
	buf := make([]FlowInfo, 0, 512)
	for _, s := range t.shards {
		r := &request{op: opDump, filter: filter, now: now}
		for {
			r.flows = buf[:0]
			s.ctlMu.Lock()
			err := s.do(ctx, r)
			s.ctlMu.Unlock()
			if err != nil {
				return err
			}
			for i := range r.flows {
				if !fn(&r.flows[i]) {
					return nil
				}
			}
			if r.done {
				break
			}
		}
	}
	return nil
}

// Flush removes every live flow that matches filter and returns how many.
// Each removal is recorded in history and reported as an event.
func (t *Table) Flush(ctx context.Context, filter Filter, now Time) (int, error) {
	total := 0
	for _, s := range t.shards {
		s.ctlMu.Lock()
		r := &request{op: opFlush, filter: filter, now: now}
		for {
			if err := s.do(ctx, r); err != nil {
				s.ctlMu.Unlock()
				return total + r.n, err
			}
			if r.done {
				break
			}
		}
		total += r.n
		s.ctlMu.Unlock()
	}
	return total, nil
}

// Explanation is what the table knows about a tuple: the live flow it belongs
// to (in either direction), if any, and its ended incarnations, newest first.
type Explanation struct {
	Key     Key
	Current *FlowInfo
	History []Incarnation
}

// Explain looks up key k (either direction; the reverse of a key is searched
// too) in every shard: its live flow and up to maxHistory past incarnations.
func (t *Table) Explain(ctx context.Context, k Key, maxHistory int, now Time) (Explanation, error) {
	ex := Explanation{Key: k}
	for _, s := range t.shards {
		s.ctlMu.Lock()
		r := &request{op: opExplain, key: k, now: now,
			flows: make([]FlowInfo, 0, 1), hist: make([]Incarnation, 0, maxHistory)}
		err := s.do(ctx, r)
		s.ctlMu.Unlock()
		if err != nil {
			return ex, err
		}
		if len(r.flows) > 0 && ex.Current == nil {
			ex.Current = &r.flows[0]
		}
		ex.History = append(ex.History, r.hist...)
	}
	// Shards are searched one after another; order history newest first.
	for i := 1; i < len(ex.History); i++ {
		for j := i; j > 0 && ex.History[j].Closed > ex.History[j-1].Closed; j-- {
			ex.History[j], ex.History[j-1] = ex.History[j-1], ex.History[j]
		}
	}
	if len(ex.History) > maxHistory {
		ex.History = ex.History[:maxHistory]
	}
	return ex, nil
}
