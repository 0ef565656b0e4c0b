package ctl

// The packed flow encoding of ListFlows (encoding "packed"): each live flow
// is one fixed-size little-endian record in PackedFlows.records, its names
// (state, creator, profile, rule) indexes into the batch's own names table.
// Making a record is a few stores, reading one a few loads: no message per
// flow, no strings per flow, nothing for the garbage collector. The layout
// is documented in edge.proto (PackedFlows); the offsets below are that
// table. A record decodes to exactly the Flow message the default encoding
// sends (FlowRecord.PB), so a client can show either the same way.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
)

// Flow encodings a ListFlowsRequest may ask for.
const (
	FlowEncodingMessages = "messages" // Flow messages (also "")
	FlowEncodingPacked   = "packed"   // PackedFlows records
)

// PackedFlowBatch is the number of records in one packed ListFlowsResponse:
// 200 records (30,400 bytes) keep a message within grpc's 32 KiB buffer
// class. A larger message takes a 1 MiB buffer from grpc's pool, cleared on
// every use on both sides: with 1,024 records (152 KiB) that clearing was
// half of a dumping client's CPU time (profile of bench/cmd/ctlload).
const PackedFlowBatch = 200

// The record layout this package writes and reads.
const (
	FlowRecordVersion = 1
	FlowRecordSize    = 152 // bytes of a version-1 record
	// maxFlowRecordSize bounds the record size a decoder accepts (a newer
	// layout appends fields; anything this large is not a flow record).
	maxFlowRecordSize = 4096
)

// Version-1 field offsets (edge.proto, PackedFlows).
const (
	offPktsOrig   = 0
	offPktsReply  = 8
	offOpened     = 16
	offExpiresIn  = 24
	offGen        = 32
	offShard      = 36
	offISNOrig    = 40
	offISNReply   = 44
	offState      = 48
	offCreator    = 50
	offProfile    = 52
	offRule       = 54
	offOrigSPort  = 56
	offOrigDPort  = 58
	offReplySPort = 60
	offReplyDPort = 62
	offNATPort    = 64
	offOrigProto  = 66
	offReplyProto = 67
	offOrigZone   = 68
	offReplyZone  = 69
	offFlags      = 70
	offOrigSrc    = 72
	offOrigDst    = 88
	offReplySrc   = 104
	offReplyDst   = 120
	offNATAddr    = 136
)

// Record flags.
const (
	recLiberal    = 1
	recPending    = 2
	recTranslated = 4
)

var le = binary.LittleEndian

var zeroRecord [FlowRecordSize]byte

// flowPacker makes the packed batches of one ListFlows call. Names are
// interned per batch by what they name (a state, a creator, a profile
// index, a rule number), so a flow costs no string work once its names
// have been seen in the batch.
type flowPacker struct {
	c     clock
	n     *names
	recs  []byte
	names []string
	index map[string]uint16 // names' positions
	// Interned indexes plus one (0: not in this batch yet).
	states   [conntrack.NumStates]uint16
	creators [4]uint16
	profiles [256]uint16
	rules    map[uint32]uint16
}

func newFlowPacker(c clock, n *names) *flowPacker {
	return &flowPacker{c: c, n: n, recs: make([]byte, 0, PackedFlowBatch*FlowRecordSize),
		index: map[string]uint16{}, rules: map[uint32]uint16{}}
}

// len is the number of records in the batch being made.
func (p *flowPacker) len() int { return len(p.recs) / FlowRecordSize }

// intern returns the batch's index of name.
func (p *flowPacker) intern(name string) uint16 {
	i, ok := p.index[name]
	if !ok {
		i = uint16(len(p.names))
		p.names = append(p.names, name)
		p.index[name] = i
	}
	return i
}

// cached returns *slot-1, filling the slot with name()'s index first.
func (p *flowPacker) cached(slot *uint16, name func() string) uint16 {
	if *slot == 0 {
		*slot = p.intern(name()) + 1
	}
	return *slot - 1
}

// add appends live flow fi as one record. A batch takes up to 4 names per
// record: the caller takes it by PackedFlowBatch records, far below the
// 65,536 names a record can index.
func (p *flowPacker) add(fi *conntrack.FlowInfo) {
	n := len(p.recs)
	p.recs = append(p.recs, zeroRecord[:]...)
	r := p.recs[n : n+FlowRecordSize]
	in := &fi.Incarnation
	le.PutUint64(r[offPktsOrig:], uint64(in.Packets[0]))
	le.PutUint64(r[offPktsReply:], uint64(in.Packets[1]))
	le.PutUint64(r[offOpened:], uint64(p.c.epoch.Add(time.Duration(in.Opened)).UnixNano()))
	le.PutUint64(r[offExpiresIn:], uint64(max(time.Duration(fi.Expires-p.c.now), 0)))
	le.PutUint32(r[offGen:], uint32(in.Gen))
	le.PutUint32(r[offShard:], uint32(fi.Shard))
	le.PutUint32(r[offISNOrig:], in.ISN[0])
	le.PutUint32(r[offISNReply:], in.ISN[1])
	var st uint16
	if in.State < conntrack.NumStates {
		st = p.cached(&p.states[in.State], func() string { return pbState(in.State) })
	} else {
		st = p.intern(pbState(in.State))
	}
	le.PutUint16(r[offState:], st)
	var cr uint16
	if int(in.Creator) < len(p.creators) {
		cr = p.cached(&p.creators[in.Creator], in.Creator.String)
	} else {
		cr = p.intern(in.Creator.String())
	}
	le.PutUint16(r[offCreator:], cr)
	le.PutUint16(r[offProfile:], p.cached(&p.profiles[fi.Profile], func() string { return p.n.profile(fi.Profile) }))
	ri, ok := p.rules[in.Rule]
	if !ok {
		ri = p.intern(p.n.rule(in.Rule))
		p.rules[in.Rule] = ri
	}
	le.PutUint16(r[offRule:], ri)
	putKey(r, offOrigSrc, offOrigDst, offOrigSPort, offOrigDPort, offOrigProto, offOrigZone, &in.Orig)
	putKey(r, offReplySrc, offReplyDst, offReplySPort, offReplyDPort, offReplyProto, offReplyZone, &in.Reply)
	var flags byte
	if fi.Liberal {
		flags |= recLiberal
	}
	if fi.Pending {
		flags |= recPending
	}
	if fi.NATAddr.IsValid() && !fi.NATAddr.IsUnspecified() {
		flags |= recTranslated
		a := fi.NATAddr.As16()
		copy(r[offNATAddr:offNATAddr+16], a[:])
		le.PutUint16(r[offNATPort:], fi.NATPort)
	}
	r[offFlags] = flags
}

func putKey(r []byte, src, dst, sport, dport, proto, zone int, k *conntrack.Key) {
	copy(r[src:src+16], k.Src[:])
	copy(r[dst:dst+16], k.Dst[:])
	le.PutUint16(r[sport:], k.SrcPort)
	le.PutUint16(r[dport:], k.DstPort)
	r[proto] = k.Proto
	r[zone] = k.Zone
}

// take returns the batch made so far and starts a new one.
func (p *flowPacker) take() *edgepb.PackedFlows {
	out := &edgepb.PackedFlows{Version: FlowRecordVersion, RecordSize: FlowRecordSize,
		Records: p.recs, Names: p.names}
	p.recs = make([]byte, 0, PackedFlowBatch*FlowRecordSize)
	p.names = nil
	clear(p.index)
	clear(p.rules)
	p.states, p.creators, p.profiles = [conntrack.NumStates]uint16{}, [4]uint16{}, [256]uint16{}
	return out
}

// FlowTuple is one direction of a packed flow.
type FlowTuple struct {
	Proto            uint8
	Src, Dst         netip.Addr // IPv4 unmapped
	SrcPort, DstPort uint16     // ICMP echo: the identifier as the source port
	Zone             uint8
}

// FlowRecord is one decoded packed flow record: the fields of a live Flow
// message as plain values.
type FlowRecord struct {
	Original, Reply               FlowTuple
	State, Creator, Profile, Rule string
	Generation, Shard             uint32
	PacketsOriginal, PacketsReply uint64
	Opened                        time.Time
	ExpiresIn                     time.Duration
	ISNOriginal, ISNReply         uint32
	NATAddr                       netip.Addr // invalid: not translated
	NATPort                       uint16
	Liberal, Pending              bool
}

// FlowRecords is a validated PackedFlows batch.
type FlowRecords struct {
	recs  []byte
	size  int
	names []string
}

// ErrBadFlowRecords is wrapped by OpenFlowRecords' errors.
var ErrBadFlowRecords = errors.New("bad packed flows")

// OpenFlowRecords validates a PackedFlows batch: a version this package
// reads (1, or a newer one, whose records start with version 1's fields), a
// record size it can hold, a whole number of records, name indexes within
// the names table. A nil batch has no records.
func OpenFlowRecords(p *edgepb.PackedFlows) (FlowRecords, error) {
	if p == nil {
		return FlowRecords{size: FlowRecordSize}, nil
	}
	size := int(p.RecordSize)
	switch {
	case p.Version < FlowRecordVersion:
		return FlowRecords{}, fmt.Errorf("%w: version %d", ErrBadFlowRecords, p.Version)
	case p.RecordSize < FlowRecordSize || p.RecordSize > maxFlowRecordSize:
		return FlowRecords{}, fmt.Errorf("%w: record size %d (version %d needs %d-%d)",
			ErrBadFlowRecords, p.RecordSize, p.Version, FlowRecordSize, maxFlowRecordSize)
	case len(p.Records)%size != 0:
		return FlowRecords{}, fmt.Errorf("%w: %d bytes is not a whole number of %d-byte records",
			ErrBadFlowRecords, len(p.Records), size)
	}
	for i := 0; i < len(p.Records); i += size {
		for _, off := range [...]int{offState, offCreator, offProfile, offRule} {
			if j := int(le.Uint16(p.Records[i+off:])); j >= len(p.Names) {
				return FlowRecords{}, fmt.Errorf("%w: record %d: name %d of a table of %d",
					ErrBadFlowRecords, i/size, j, len(p.Names))
			}
		}
	}
	return FlowRecords{recs: p.Records, size: size, names: p.Names}, nil
}

// Len is the number of records.
func (fr FlowRecords) Len() int { return len(fr.recs) / fr.size }

// Record decodes record i (0 <= i < Len) into out. It does not allocate.
func (fr FlowRecords) Record(i int, out *FlowRecord) {
	r := fr.recs[i*fr.size : i*fr.size+FlowRecordSize]
	*out = FlowRecord{
		Original:        getTuple(r, offOrigSrc, offOrigDst, offOrigSPort, offOrigDPort, offOrigProto, offOrigZone),
		Reply:           getTuple(r, offReplySrc, offReplyDst, offReplySPort, offReplyDPort, offReplyProto, offReplyZone),
		State:           fr.names[le.Uint16(r[offState:])],
		Creator:         fr.names[le.Uint16(r[offCreator:])],
		Profile:         fr.names[le.Uint16(r[offProfile:])],
		Rule:            fr.names[le.Uint16(r[offRule:])],
		Generation:      le.Uint32(r[offGen:]),
		Shard:           le.Uint32(r[offShard:]),
		PacketsOriginal: le.Uint64(r[offPktsOrig:]),
		PacketsReply:    le.Uint64(r[offPktsReply:]),
		Opened:          time.Unix(0, int64(le.Uint64(r[offOpened:]))),
		ExpiresIn:       time.Duration(le.Uint64(r[offExpiresIn:])),
		ISNOriginal:     le.Uint32(r[offISNOrig:]),
		ISNReply:        le.Uint32(r[offISNReply:]),
		Liberal:         r[offFlags]&recLiberal != 0,
		Pending:         r[offFlags]&recPending != 0,
	}
	if r[offFlags]&recTranslated != 0 {
		out.NATAddr = netip.AddrFrom16([16]byte(r[offNATAddr : offNATAddr+16])).Unmap()
		out.NATPort = le.Uint16(r[offNATPort:])
	}
}

func getTuple(r []byte, src, dst, sport, dport, proto, zone int) FlowTuple {
	return FlowTuple{
		Proto:   r[proto],
		Src:     netip.AddrFrom16([16]byte(r[src : src+16])).Unmap(),
		Dst:     netip.AddrFrom16([16]byte(r[dst : dst+16])).Unmap(),
		SrcPort: le.Uint16(r[sport:]),
		DstPort: le.Uint16(r[dport:]),
		Zone:    r[zone],
	}
}

// PB is the Flow message the default encoding sends for the same flow.
func (f *FlowRecord) PB() *edgepb.Flow {
	out := &edgepb.Flow{
		Original:        f.Original.pb(),
		Reply:           f.Reply.pb(),
		State:           f.State,
		Generation:      f.Generation,
		Creator:         f.Creator,
		PacketsOriginal: f.PacketsOriginal,
		PacketsReply:    f.PacketsReply,
		Opened:          timestamppb.New(f.Opened),
		ExpiresIn:       durationpb.New(f.ExpiresIn),
		Profile:         f.Profile,
		Rule:            f.Rule,
		Shard:           f.Shard,
		Liberal:         f.Liberal,
		Pending:         f.Pending,
		IsnOriginal:     f.ISNOriginal,
		IsnReply:        f.ISNReply,
	}
	if f.NATAddr.IsValid() {
		out.NatAddress, out.NatPort = f.NATAddr.String(), uint32(f.NATPort)
	}
	return out
}

func (t *FlowTuple) pb() *edgepb.Tuple {
	return &edgepb.Tuple{Protocol: pbProto(t.Proto), Src: t.Src.String(), SrcPort: uint32(t.SrcPort),
		Dst: t.Dst.String(), DstPort: uint32(t.DstPort), Zone: uint32(t.Zone)}
}

// FlowsOf returns the flows of one ListFlowsResponse as messages, whichever
// encoding they came in (packed records are decoded, after any messages).
func FlowsOf(r *edgepb.ListFlowsResponse) ([]*edgepb.Flow, error) {
	if r.GetPacked() == nil {
		return r.GetFlows(), nil
	}
	recs, err := OpenFlowRecords(r.GetPacked())
	if err != nil {
		return nil, err
	}
	out := make([]*edgepb.Flow, recs.Len())
	var fr FlowRecord
	for i := range out {
		recs.Record(i, &fr)
		out[i] = fr.PB()
	}
	return append(r.GetFlows(), out...), nil
}
