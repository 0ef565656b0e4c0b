package ctl

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/ctl/edgepb"
)

// packedCases are flows that exercise every field of a record: both
// families, translation of each, ICMP, a protocol without a name, zones,
// every flag, names of each kind, counters and ISNs at their widest, an
// expired deadline.
func packedCases() []conntrack.FlowInfo {
	fb := newFake()
	out := slices.Clone(fb.flows)
	now := conntrack.Time(time.Hour)
	v6nat := out[2]
	v6nat.NATAddr = netip.MustParseAddr("2001:db8:ff::1")
	v6nat.NATPort = 65535
	v6nat.Reply.Dst, v6nat.Reply.DstPort = v6nat.NATAddr.As16(), 65535
	v6nat.Pending = true
	v6nat.Profile = 3
	v6nat.Rule = 0
	v6nat.Gen = 65535
	v6nat.Shard = 7
	v6nat.Packets = [2]uint32{1<<32 - 1, 1}
	v6nat.ISN = [2]uint32{1<<32 - 1, 1}
	icmp := out[1]
	icmp.Orig = conntrack.MakeKey(1, netip.MustParseAddrPort("10.0.0.9:77"), netip.MustParseAddrPort("203.0.113.9:0"))
	icmp.Reply = icmp.Orig.Reverse()
	icmp.State = conntrack.ICMPReplied
	icmp.Orig.Zone, icmp.Reply.Zone = 255, 255
	icmp.Expires = now - conntrack.Second // past: expires_in 0
	gre := out[1]
	gre.Orig = conntrack.MakeKey(47, netip.MustParseAddrPort("10.0.0.10:0"), netip.MustParseAddrPort("203.0.113.10:0"))
	gre.Reply = gre.Orig.Reverse()
	gre.Creator = conntrack.CreatedByStray
	gre.Rule = 1 << 31
	unspecNAT := out[1] // an unspecified NAT address is no translation, as in messages
	unspecNAT.NATAddr = netip.IPv4Unspecified()
	return append(out, v6nat, icmp, gre, unspecNAT)
}

// packAll packs fis into one batch with the request clock c.
func packAll(fb *fakeBackend, c clock, fis []conntrack.FlowInfo) *edgepb.PackedFlows {
	p := newFlowPacker(c, newNames(fb))
	for i := range fis {
		p.add(&fis[i])
	}
	return p.take()
}

// A packed record decodes to exactly the message the default encoding
// sends for the same flow, field for field.
func TestPackedRecordIsTheMessage(t *testing.T) {
	fb := newFake()
	c := newClock(fb)
	fis := packedCases()
	pf := packAll(fb, c, fis)
	if pf.Version != FlowRecordVersion || pf.RecordSize != FlowRecordSize || len(pf.Records) != len(fis)*FlowRecordSize {
		t.Fatalf("batch header: version %d, record size %d, %d bytes for %d flows", pf.Version, pf.RecordSize, len(pf.Records), len(fis))
	}
	recs, err := OpenFlowRecords(pf)
	if err != nil {
		t.Fatal(err)
	}
	if recs.Len() != len(fis) {
		t.Fatalf("%d records, want %d", recs.Len(), len(fis))
	}
	var fr FlowRecord
	for i := range fis {
		recs.Record(i, &fr)
		got, want := fr.PB(), flowToPB(&fis[i], c, newNames(fb))
		if !proto.Equal(got, want) {
			t.Errorf("flow %d:\n packed   %v\n messages %v", i, got, want)
		}
	}
	// Names are interned: each distinct one once.
	if len(pf.Names) != len(slices.Compact(slices.Sorted(slices.Values(pf.Names)))) {
		t.Errorf("names table has duplicates: %q", pf.Names)
	}
}

// Each batch has its own names table: a batch after take indexes only its
// own names.
func TestPackedNamesPerBatch(t *testing.T) {
	fb := newFake()
	p := newFlowPacker(newClock(fb), newNames(fb))
	fis := packedCases()
	p.add(&fis[3]) // rule 0, profile 3, established
	first := p.take()
	p.add(&fis[1]) // rule 1, profile 0, udp
	second := p.take()
	for _, b := range []*edgepb.PackedFlows{first, second} {
		recs, err := OpenFlowRecords(b)
		if err != nil || recs.Len() != 1 {
			t.Fatalf("batch: %d records, %v", recs.Len(), err)
		}
		if len(b.Names) != 4 {
			t.Errorf("batch of one flow has names %q, want its 4", b.Names)
		}
	}
	var fr FlowRecord
	recs, _ := OpenFlowRecords(second)
	recs.Record(0, &fr)
	if fr.Rule != "rule1" || fr.Profile != "default" || fr.State != "udp_multiple" || fr.Creator != "first" {
		t.Fatalf("second batch's names: %+v", fr)
	}
}

// A newer layout (higher version, longer records with fields appended) is
// read by this decoder: the version-1 fields, the rest skipped.
func TestFlowRecordsNewerLayout(t *testing.T) {
	fb := newFake()
	c := newClock(fb)
	fis := packedCases()
	v1 := packAll(fb, c, fis)
	const size = FlowRecordSize + 24
	v2 := &edgepb.PackedFlows{Version: 2, RecordSize: size, Names: v1.Names}
	for i := range fis {
		v2.Records = append(v2.Records, v1.Records[i*FlowRecordSize:(i+1)*FlowRecordSize]...)
		for j := range size - FlowRecordSize {
			v2.Records = append(v2.Records, byte(0xa0+j))
		}
	}
	a, err := OpenFlowRecords(v1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenFlowRecords(v2)
	if err != nil {
		t.Fatalf("newer layout refused: %v", err)
	}
	if b.Len() != len(fis) {
		t.Fatalf("%d records, want %d", b.Len(), len(fis))
	}
	var ra, rb FlowRecord
	for i := range fis {
		a.Record(i, &ra)
		b.Record(i, &rb)
		if !proto.Equal(ra.PB(), rb.PB()) {
			t.Fatalf("record %d: newer layout %+v, version 1 %+v", i, rb, ra)
		}
	}
}

func TestOpenFlowRecordsRefuses(t *testing.T) {
	fb := newFake()
	good := packAll(fb, newClock(fb), packedCases())
	badName := proto.Clone(good).(*edgepb.PackedFlows)
	badName.Records = slices.Clone(good.Records)
	binary.LittleEndian.PutUint16(badName.Records[FlowRecordSize+offRule:], uint16(len(good.Names)))
	for name, p := range map[string]*edgepb.PackedFlows{
		"version 0":         {Version: 0, RecordSize: FlowRecordSize, Records: good.Records, Names: good.Names},
		"short records":     {Version: 1, RecordSize: FlowRecordSize - 1, Records: good.Records[:FlowRecordSize-1], Names: good.Names},
		"huge records":      {Version: 1, RecordSize: maxFlowRecordSize + 1},
		"partial record":    {Version: 1, RecordSize: FlowRecordSize, Records: good.Records[:len(good.Records)-1], Names: good.Names},
		"name out of table": badName,
		"no names":          {Version: 1, RecordSize: FlowRecordSize, Records: good.Records},
	} {
		if _, err := OpenFlowRecords(p); !errors.Is(err, ErrBadFlowRecords) {
			t.Errorf("%s: %v, want ErrBadFlowRecords", name, err)
		}
	}
	if r, err := OpenFlowRecords(nil); err != nil || r.Len() != 0 {
		t.Errorf("nil batch: %d records, %v", r.Len(), err)
	}
}

// Once a batch's names are known, packing and decoding a flow allocate
// nothing.
func TestPackedNoAllocs(t *testing.T) {
	fb := newFake()
	p := newFlowPacker(newClock(fb), newNames(fb))
	fis := packedCases()
	for i := range fis {
		p.add(&fis[i])
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		if p.len() == PackedFlowBatch {
			p.recs = p.recs[:0]
		}
		p.add(&fis[i%len(fis)])
		i++
	}); n != 0 {
		t.Errorf("add: %.1f allocations per flow, want 0", n)
	}
	recs, err := OpenFlowRecords(p.take())
	if err != nil {
		t.Fatal(err)
	}
	var fr FlowRecord
	if n := testing.AllocsPerRun(1000, func() {
		recs.Record(i%recs.Len(), &fr)
		i++
	}); n != 0 {
		t.Errorf("Record: %.1f allocations per flow, want 0", n)
	}
}

// listAllPacked reads a packed ListFlows stream to its end, decoding it.
func listAllPacked(t *testing.T, c *Client, req *edgepb.ListFlowsRequest) (batches []int, flows []*edgepb.Flow) {
	t.Helper()
	req.Encoding = FlowEncodingPacked
	s, err := c.Flows.ListFlows(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	for {
		r, err := s.Recv()
		if err == io.EOF {
			return batches, flows
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Flows) != 0 || r.Packed == nil {
			t.Fatalf("packed request answered with %d messages, packed %v", len(r.Flows), r.Packed != nil)
		}
		fs, err := FlowsOf(r)
		if err != nil {
			t.Fatal(err)
		}
		batches = append(batches, len(fs))
		flows = append(flows, fs...)
	}
}

// The packed encoding lists the same flows as messages (times aside: each
// call has its own clock), in PackedFlowBatch batches, honouring filter and
// limit.
func TestListFlowsPacked(t *testing.T) {
	fb := newFake()
	ts := newTestServer(t, fb)
	_, msgs := listAll(t, ts.client, &edgepb.ListFlowsRequest{})
	_, packed := listAllPacked(t, ts.client, &edgepb.ListFlowsRequest{})
	if len(packed) != len(msgs) || len(msgs) != 3 {
		t.Fatalf("%d packed flows, %d messages", len(packed), len(msgs))
	}
	for i := range msgs {
		a, b := msgs[i], packed[i]
		if d := a.ExpiresIn.AsDuration() - b.ExpiresIn.AsDuration(); d < -time.Second || d > time.Second {
			t.Errorf("flow %d: expires in %v packed, %v as a message", i, b.ExpiresIn.AsDuration(), a.ExpiresIn.AsDuration())
		}
		a.ExpiresIn, b.ExpiresIn = nil, nil
		if !proto.Equal(a, b) {
			t.Errorf("flow %d:\n packed   %v\n messages %v", i, b, a)
		}
	}
	_, packed = listAllPacked(t, ts.client, &edgepb.ListFlowsRequest{Filter: &edgepb.FlowFilter{Protocol: "tcp", Address: "10.0.0.0/24"}})
	if len(packed) != 1 || packed[0].Original.SrcPort != 40000 {
		t.Fatalf("filtered packed flows: %v", packed)
	}

	fb.nGen = 2*PackedFlowBatch + 100
	batches, flows := listAllPacked(t, ts.client, &edgepb.ListFlowsRequest{})
	if !slices.Equal(batches, []int{PackedFlowBatch, PackedFlowBatch, 100}) {
		t.Fatalf("batches %v", batches)
	}
	for i, f := range flows {
		if want := genFlow(i); f.Original.SrcPort != uint32(want.Orig.SrcPort) {
			t.Fatalf("flow %d: %v", i, f)
		}
	}
	batches, _ = listAllPacked(t, ts.client, &edgepb.ListFlowsRequest{Limit: PackedFlowBatch + 10})
	if !slices.Equal(batches, []int{PackedFlowBatch, 10}) {
		t.Fatalf("limited: batches %v", batches)
	}
	batches, _ = listAllPacked(t, ts.client, &edgepb.ListFlowsRequest{Limit: PackedFlowBatch})
	if !slices.Equal(batches, []int{PackedFlowBatch}) {
		t.Fatalf("limit of one batch: batches %v", batches)
	}

	s, err := ts.client.Flows.ListFlows(ctxT(t), &edgepb.ListFlowsRequest{Encoding: "json"})
	if err == nil {
		_, err = s.Recv()
	}
	wantCode(t, err, codes.InvalidArgument, `encoding: "json" is not a flow encoding (messages, packed)`)
}

// FuzzFlowRecords: whatever a batch holds, OpenFlowRecords either refuses
// it or every record decodes, and a decoded record's names are the table's.
func FuzzFlowRecords(f *testing.F) {
	fb := newFake()
	good := packAll(fb, newClock(fb), packedCases())
	f.Add(uint32(1), uint32(FlowRecordSize), good.Records, uint8(len(good.Names)))
	f.Add(uint32(2), uint32(FlowRecordSize+8), good.Records[:FlowRecordSize+8], uint8(4))
	f.Add(uint32(1), uint32(0), []byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, version, size uint32, records []byte, nNames uint8) {
		names := make([]string, nNames)
		for i := range names {
			names[i] = string(rune('a' + i%26))
		}
		recs, err := OpenFlowRecords(&edgepb.PackedFlows{Version: version, RecordSize: size, Records: records, Names: names})
		if err != nil {
			if !errors.Is(err, ErrBadFlowRecords) {
				t.Fatalf("error %v does not wrap ErrBadFlowRecords", err)
			}
			return
		}
		if recs.Len()*int(size) != len(records) || version < FlowRecordVersion || size < FlowRecordSize {
			t.Fatalf("accepted version %d, size %d, %d bytes as %d records", version, size, len(records), recs.Len())
		}
		var fr FlowRecord
		for i := range recs.Len() {
			recs.Record(i, &fr)
			for _, s := range []string{fr.State, fr.Creator, fr.Profile, fr.Rule} {
				if !slices.Contains(names, s) {
					t.Fatalf("record %d: name %q not in the table", i, s)
				}
			}
			_ = fr.PB()
		}
	})
}
