package producerapi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
)

// Binary sample block, version 2: a series dictionary, then samples that
// refer to it by index. Integers, str, fields, dvalue and T are as in
// version 1 (binary.go).
//
//	block2  := u8 version(=2) | uvarint nseries | series*nseries |
//	           uvarint nsamples | sample*nsamples
//	series  := str target_name | fields | str metric_name | fields | u8 datum_type
//	sample  := uvarint series_index | i64 timestamp_ns | u8 flags (bit 0: missing) |
//	           [i64 start_time_ns, for cumulative and histogram types] |
//	           [dvalue, unless missing]
//
// series_index < nseries. A series entry no sample refers to is legal and
// ignored, and so are duplicate entries: the collector drops refused
// samples, or splits a block, by copying sample byte ranges and keeping the
// series table as it is. An f64 gauge sample takes 18 bytes (version 1:
// its whole identity again, ~106 bytes for RFD 125's shape).
const Block2Version = 2

// Smallest encodings, used to bound counts by the bytes left before
// anything is allocated for them.
const (
	minSeries2Bytes = 5  // two empty names, two empty field lists, a datum type
	minSample2Bytes = 10 // a one-byte index, a timestamp, flags
)

// SeriesIdentity is a decoded series entry of a version 2 block: a
// timeseries identity and its datum type.
type SeriesIdentity struct {
	Target    Named
	Metric    Named
	DatumType DatumType
}

// TimeseriesName returns "target_name:metric_name".
func (id *SeriesIdentity) TimeseriesName() string { return id.Target.Name + ":" + id.Metric.Name }

// Sample returns a sample of this series with a missing datum: what
// Validate, TimeseriesKey and the schema functions need to know about the
// series alone.
func (id *SeriesIdentity) Sample() Sample {
	return Sample{Target: id.Target, Metric: id.Metric, Datum: Datum{Type: id.DatumType, Missing: true}}
}

// AppendBlock2 appends the version 2 block encoding of samples to dst,
// with one series entry per distinct series (in order of first use).
func AppendBlock2(dst []byte, samples []Sample) []byte {
	var e Block2Encoder
	return e.Append(dst, samples)
}

// Block2Encoder encodes version 2 blocks, reusing its buffers and series
// index from call to call. The zero value is ready; not safe for concurrent
// use.
type Block2Encoder struct {
	seed    maphash.Seed
	index   map[uint64]int // hash of a series entry -> its number
	starts  []int          // where each series entry starts in series
	series  []byte
	samples []byte
}

// Append appends the version 2 block encoding of samples to dst.
func (e *Block2Encoder) Append(dst []byte, samples []Sample) []byte {
	if e.index == nil {
		e.seed = maphash.MakeSeed()
		e.index = make(map[uint64]int)
	} else {
		clear(e.index)
	}
	e.series, e.samples, e.starts = e.series[:0], e.samples[:0], e.starts[:0]
	for i := range samples {
		e.add(&samples[i])
	}
	dst = append(dst, Block2Version)
	dst = binary.AppendUvarint(dst, uint64(len(e.starts)))
	dst = append(dst, e.series...)
	dst = binary.AppendUvarint(dst, uint64(len(samples)))
	return append(dst, e.samples...)
}

// add appends sample s to the block being built, with a series entry when
// the block has none for its series. indexed says the entry's hash went
// into the index (h), for a caller that may take the sample back.
func (e *Block2Encoder) add(s *Sample) (h uint64, indexed bool) {
	start := len(e.series)
	e.series = appendSeries(e.series, &s.Target, &s.Metric, s.Datum.Type)
	raw := e.series[start:]
	h = maphash.Bytes(e.seed, raw)
	idx, ok := e.index[h]
	if ok && bytes.Equal(e.entry(idx, start), raw) {
		e.series = e.series[:start]
	} else {
		// New, or a hash collision: a duplicate entry is legal, so a
		// colliding series simply gets an entry of its own.
		idx = len(e.starts)
		e.starts = append(e.starts, start)
		if !ok {
			e.index[h] = idx
			indexed = true
		}
	}
	e.samples = appendSample2(e.samples, idx, s)
	return h, indexed
}

// entry returns series entry i of the block being built, whose entries
// end at limit.
func (e *Block2Encoder) entry(i, limit int) []byte {
	end := limit
	if i+1 < len(e.starts) {
		end = e.starts[i+1]
	}
	return e.series[e.starts[i]:end]
}

// Release drops the encoder's buffers so an idle producer pins no memory.
func (e *Block2Encoder) Release() { *e = Block2Encoder{} }

// AppendSeries appends the series entry of a sample (its identity and datum
// type) as a version 2 block carries it.
func AppendSeries(dst []byte, s *Sample) []byte {
	return appendSeries(dst, &s.Target, &s.Metric, s.Datum.Type)
}

func appendSeries(dst []byte, target, metric *Named, t DatumType) []byte {
	dst = appendStr(dst, target.Name)
	dst = appendFields(dst, target.Fields)
	dst = appendStr(dst, metric.Name)
	dst = appendFields(dst, metric.Fields)
	return append(dst, byte(t))
}

// AppendSample2 appends a version 2 sample entry referring to series
// index series.
func AppendSample2(dst []byte, series int, s *Sample) []byte {
	return appendSample2(dst, series, s)
}

func appendSample2(dst []byte, idx int, s *Sample) []byte {
	dst = binary.AppendUvarint(dst, uint64(idx))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(s.TimestampNs))
	var flags byte
	if s.Datum.Missing {
		flags |= 1
	}
	dst = append(dst, flags)
	return appendDatumTail(dst, &s.Datum)
}

// AppendBlock2Head appends the head of a version 2 block whose series table
// is the nseries entries in seriesTable (as BlockScanner.SeriesTable returns
// it) and which will hold nsamples samples; the caller appends exactly
// nsamples sample entries (e.g. SampleView.Raw of samples scanned from a
// block with the same series table). This is how a block is filtered or
// split without decoding it.
func AppendBlock2Head(dst []byte, nseries int, seriesTable []byte, nsamples int) []byte {
	dst = append(dst, Block2Version)
	dst = binary.AppendUvarint(dst, uint64(nseries))
	dst = append(dst, seriesTable...)
	return binary.AppendUvarint(dst, uint64(nsamples))
}

// HistogramView is a histogram inside a block, not decoded: it aliases the
// block. Bins holds NBins encoded edges (varint for i64, uvarint for u64,
// u64 bits for f64) and Counts NBins uvarints; the Append methods decode
// them into caller-owned slices. Min, Max and Sum are the raw values: an
// int64's bits for histogram_i64, the value for histogram_u64, a float64's
// bits for histogram_f64.
type HistogramView struct {
	NBins         int
	Bins, Counts  []byte
	Min, Max, Sum uint64
}

// AppendBinsI64 appends the bins of a histogram_i64 to dst.
func (h *HistogramView) AppendBinsI64(dst []int64) []int64 {
	b := h.Bins
	for i := 0; i < h.NBins; i++ {
		v, n := binary.Varint(b)
		if n <= 0 {
			break // not reached for a view the scanner made
		}
		dst, b = append(dst, v), b[n:]
	}
	return dst
}

// AppendBinsU64 appends the bins of a histogram_u64 to dst.
func (h *HistogramView) AppendBinsU64(dst []uint64) []uint64 {
	return appendUvarints(dst, h.Bins, h.NBins)
}

// AppendBinsF64 appends the bins of a histogram_f64 to dst.
func (h *HistogramView) AppendBinsF64(dst []float64) []float64 {
	b := h.Bins
	for i := 0; i < h.NBins && len(b) >= 8; i++ {
		dst, b = append(dst, math.Float64frombits(binary.LittleEndian.Uint64(b))), b[8:]
	}
	return dst
}

// AppendCounts appends the counts to dst.
func (h *HistogramView) AppendCounts(dst []uint64) []uint64 {
	return appendUvarints(dst, h.Counts, h.NBins)
}

func appendUvarints(dst []uint64, b []byte, n int) []uint64 {
	for i := 0; i < n; i++ {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			break // not reached for a view the scanner made
		}
		dst, b = append(dst, v), b[k:]
	}
	return dst
}

// SampleView is one sample of a version 2 block as BlockScanner.Next reads
// it, without allocating: Bytes, Hist and Raw alias the block. Only the
// members selected by Type are meaningful (as for Datum): Bool; Int for
// i8..i64 and cumulative_i64; Uint for u8..u64 and cumulative_u64; F32 for
// f32 and cumulative_f32; Float for f64 and cumulative_f64; Bytes for
// string and bytes; Hist for histograms.
type SampleView struct {
	Series      int       // index into the block's series table
	Type        DatumType // the series' datum type
	TimestampNs int64
	StartTimeNs int64 // cumulative and histogram types
	Missing     bool
	Bool        bool
	Int         int64
	Uint        uint64
	F32         float32
	Float       float64
	Bytes       []byte
	Hist        HistogramView
	Raw         []byte // the whole sample entry as encoded
}

// Datum returns the sample's datum, allocating for strings, bytes and
// histograms (it shares no memory with the block).
func (v *SampleView) Datum() Datum {
	d := Datum{Type: v.Type, Missing: v.Missing}
	if v.Type.HasStartTime() {
		d.StartTimeNs = v.StartTimeNs
	}
	if v.Missing {
		return d
	}
	switch v.Type {
	case DatumBool:
		d.Bool = v.Bool
	case DatumI8, DatumI16, DatumI32, DatumI64, DatumCumulativeI64:
		d.Int = v.Int
	case DatumU8, DatumU16, DatumU32, DatumU64, DatumCumulativeU64:
		d.Uint = v.Uint
	case DatumF32, DatumCumulativeF32:
		d.F32 = v.F32
	case DatumF64, DatumCumulativeF64:
		d.F64 = v.Float
	case DatumString:
		d.Str = string(v.Bytes)
	case DatumBytes:
		d.Bytes = append(make([]byte, 0, len(v.Bytes)), v.Bytes...)
	case DatumHistogramI64:
		h := &v.Hist
		d.HistI64 = &Histogram[int64]{Bins: h.AppendBinsI64(make([]int64, 0, h.NBins)),
			Counts: h.AppendCounts(make([]uint64, 0, h.NBins)),
			Min:    int64(h.Min), Max: int64(h.Max), Sum: int64(h.Sum)}
	case DatumHistogramU64:
		h := &v.Hist
		d.HistU64 = &Histogram[uint64]{Bins: h.AppendBinsU64(make([]uint64, 0, h.NBins)),
			Counts: h.AppendCounts(make([]uint64, 0, h.NBins)),
			Min:    h.Min, Max: h.Max, Sum: h.Sum}
	case DatumHistogramF64:
		h := &v.Hist
		d.HistF64 = &Histogram[float64]{Bins: h.AppendBinsF64(make([]float64, 0, h.NBins)),
			Counts: h.AppendCounts(make([]uint64, 0, h.NBins)),
			Min:    math.Float64frombits(h.Min), Max: math.Float64frombits(h.Max), Sum: math.Float64frombits(h.Sum)}
	}
	return d
}

// seriesEntry is where a series entry lies in the block.
type seriesEntry struct {
	start, end int
	typ        DatumType
}

// SeriesView is a series entry of a block, not decoded.
type SeriesView struct {
	Raw       []byte // the entry's bytes (aliasing the block); DecodeSeries decodes them
	DatumType DatumType
}

// BlockScanner reads a version 2 block without allocating (after its
// series table has grown to the largest block seen): Reset checks the head
// and the whole series table, Next reads one sample at a time. Every count
// is bounded by the bytes left, and by the limits when given, before
// anything is allocated; malformed input gives an error, never a panic.
// The zero value is ready; reusable; not safe for concurrent use.
type BlockScanner struct {
	d      decoder
	lim    pageLimits
	series []seriesEntry
	table  []byte // the series entries, as encoded
	left   int    // samples not yet read
	n      int    // samples in the block
	err    error
	// A version 3 block (block3.go): its defs are series, and samples name
	// session ids whose types are in types.
	v3      bool
	firstID uint64
	types   []DatumType
	typeMap map[uint64]DatumType // DecodeBlock3's sparse table, instead of types
}

// Reset starts scanning block. With lim, the counts of a page from a
// producer are bounded as PageLimits says (samples, fields per series,
// histogram bins; MaxBytes is the page's business, not the block's); a
// block over them gives a *LimitError. A page never needs more series than
// samples, so with lim.MaxSamples the series count is bounded by it too.
// Without lim (the collector's own WAL records) counts are bounded by the
// bytes left only. The error is a *DecodeError wrapping ErrMalformed or a
// *LimitError; Err returns it too.
func (s *BlockScanner) Reset(block []byte, lim *PageLimits) error {
	s.begin(block, lim)
	d := &s.d
	if v := d.u8(); d.err == nil && v != Block2Version {
		d.fail("unsupported block version %d (this reads version %d)", v, Block2Version)
	}
	return s.readTable(block)
}

// begin starts a scan of block (either version).
func (s *BlockScanner) begin(block []byte, lim *PageLimits) {
	s.d = decoder{b: block, sample: -1}
	s.series = s.series[:0]
	s.table, s.left, s.n, s.err = nil, 0, 0, nil
	s.v3, s.firstID, s.types, s.typeMap = false, 0, nil, nil
	if lim != nil {
		s.lim = lim.resolved()
		s.d.lim = &s.lim
	}
}

// readTable reads the series table (a version 3 block's defs) and the
// sample count.
func (s *BlockScanner) readTable(block []byte) error {
	d := &s.d
	ns := d.length("series", minSeries2Bytes)
	if d.err == nil && d.lim != nil && d.lim.maxSamples > 0 && ns > d.lim.maxSamples {
		d.refuse("series", uint64(ns), d.lim.maxSamples)
	}
	if d.err != nil {
		s.err = d.err
		return s.err
	}
	if cap(s.series) < ns {
		s.series = make([]seriesEntry, 0, ns)
	}
	tableStart := d.off
	for i := 0; i < ns; i++ {
		start := d.off
		if d.lim != nil {
			d.fieldsLeft = d.lim.maxFields
		}
		d.skipBytes()
		d.skipFields()
		d.skipBytes()
		d.skipFields()
		t := DatumType(d.u8())
		if d.err == nil && !t.Valid() {
			d.fail("unknown datum type %d", uint8(t))
		}
		if d.err != nil {
			if de, ok := d.err.(*DecodeError); ok {
				de.Reason = fmt.Sprintf("series %d: %s", i, de.Reason)
			}
			s.err = d.err
			return s.err
		}
		s.series = append(s.series, seriesEntry{start: start, end: d.off, typ: t})
	}
	s.table = block[tableStart:d.off]
	s.n = d.length("sample", minSample2Bytes)
	if d.err == nil {
		if err := d.lim.checkSamples(uint64(s.n)); err != nil {
			d.err = err
		}
	}
	if d.err != nil {
		s.err = d.err
		return s.err
	}
	s.left = s.n
	return nil
}

// NumSeries is the number of series entries of the block.
func (s *BlockScanner) NumSeries() int { return len(s.series) }

// NumSamples is the number of samples the block says it holds.
func (s *BlockScanner) NumSamples() int { return s.n }

// Series returns series entry i (0 <= i < NumSeries).
func (s *BlockScanner) Series(i int) SeriesView {
	e := s.series[i]
	return SeriesView{Raw: s.d.b[e.start:e.end], DatumType: e.typ}
}

// SeriesTable returns the block's series entries as encoded, for
// AppendBlock2Head.
func (s *BlockScanner) SeriesTable() []byte { return s.table }

// Offset is the byte offset in the block of what Next reads next: after a
// Next that returned true, where the sample just read ends.
func (s *BlockScanner) Offset() int { return s.d.off }

// Err returns the error that stopped the scan, nil at a clean end.
func (s *BlockScanner) Err() error { return s.err }

// Next reads the next sample into v. It returns false at the end of the
// block or on an error (see Err); trailing bytes after the last sample are
// an error.
func (s *BlockScanner) Next(v *SampleView) bool {
	if s.err != nil {
		return false
	}
	d := &s.d
	if s.left == 0 {
		if d.off != len(d.b) {
			d.sample = -1
			d.fail("%d bytes of trailing garbage", len(d.b)-d.off)
			s.err = d.err
		}
		return false
	}
	d.sample = s.n - s.left
	start := d.off
	idx := d.uvarint()
	ts := int64(d.u64())
	flags := d.u8()
	var t DatumType
	if d.err == nil {
		switch {
		case s.v3:
			if idx < uint64(len(s.types)) {
				t = s.types[idx]
			} else if s.typeMap != nil {
				t = s.typeMap[idx]
			}
			if !t.Valid() {
				d.fail("series id %d is not defined in this session (it has %d ids)", idx, len(s.types))
			}
		case idx >= uint64(len(s.series)):
			d.fail("series index %d, the block has %d series", idx, len(s.series))
		default:
			t = s.series[idx].typ
		}
		if d.err == nil && flags&^1 != 0 {
			d.fail("unknown sample flags %#x", flags)
		}
	}
	if d.err != nil {
		s.err = d.err
		return false
	}
	*v = SampleView{Series: int(idx), Type: t, TimestampNs: ts, Missing: flags&1 != 0}
	if t.HasStartTime() {
		v.StartTimeNs = int64(d.u64())
	}
	if !v.Missing {
		switch t {
		case DatumBool:
			v.Bool = d.bool()
		case DatumI8, DatumI16, DatumI32, DatumI64, DatumCumulativeI64:
			v.Int = d.varint()
		case DatumU8, DatumU16, DatumU32, DatumU64, DatumCumulativeU64:
			v.Uint = d.uvarint()
		case DatumF32, DatumCumulativeF32:
			if b := d.fixed(4); b != nil {
				v.F32 = math.Float32frombits(binary.LittleEndian.Uint32(b))
			}
		case DatumF64, DatumCumulativeF64:
			v.Float = math.Float64frombits(d.u64())
		case DatumString, DatumBytes:
			v.Bytes = d.bytes()
		case DatumHistogramI64, DatumHistogramU64:
			d.histView(&v.Hist, 1, t)
		case DatumHistogramF64:
			d.histView(&v.Hist, 8, t)
		}
	}
	if d.err != nil {
		s.err = d.err
		return false
	}
	v.Raw = d.b[start:d.off]
	s.left--
	return true
}

// histView reads a histogram's extent into h without decoding its bins.
func (d *decoder) histView(h *HistogramView, minSize int, t DatumType) {
	// Each bin takes at least minSize bytes for the edge and 1 for its count.
	n := d.length("histogram bin", minSize+1)
	if d.err != nil {
		return
	}
	if d.lim != nil && n > d.lim.maxBins {
		d.refuse("histogram bins", uint64(n), d.lim.maxBins)
		return
	}
	h.NBins = n
	start := d.off
	switch t {
	case DatumHistogramF64:
		d.fixed(8 * n)
	case DatumHistogramI64:
		for i := 0; i < n && d.err == nil; i++ {
			d.varint()
		}
	default:
		for i := 0; i < n && d.err == nil; i++ {
			d.uvarint()
		}
	}
	if d.err != nil {
		return
	}
	h.Bins = d.b[start:d.off]
	start = d.off
	for i := 0; i < n && d.err == nil; i++ {
		d.uvarint()
	}
	if d.err != nil {
		return
	}
	h.Counts = d.b[start:d.off]
	switch t {
	case DatumHistogramF64:
		h.Min, h.Max, h.Sum = d.u64(), d.u64(), d.u64()
	case DatumHistogramI64:
		h.Min, h.Max, h.Sum = uint64(d.varint()), uint64(d.varint()), uint64(d.varint())
	default:
		h.Min, h.Max, h.Sum = d.uvarint(), d.uvarint(), d.uvarint()
	}
}

// skipBytes steps over a str.
func (d *decoder) skipBytes() { d.fixed(d.length("byte", 1)) }

// skipFields steps over a fields list, checking its structure as fields
// does and counting it against fieldsLeft when there are limits.
func (d *decoder) skipFields() {
	n := d.length("field", 3)
	if n == 0 || d.err != nil {
		return
	}
	if d.lim != nil {
		if n > d.fieldsLeft {
			d.refuse("fields", uint64(d.lim.maxFields-d.fieldsLeft+n), d.lim.maxFields)
			return
		}
		d.fieldsLeft -= n
	}
	for i := 0; i < n && d.err == nil; i++ {
		d.skipBytes()
		switch t := FieldType(d.u8()); t {
		case FieldString:
			d.skipBytes()
		case FieldBool:
			d.bool()
		case FieldI8, FieldI16, FieldI32, FieldI64:
			d.varint()
		case FieldU8, FieldU16, FieldU32, FieldU64:
			d.uvarint()
		case FieldIPAddr:
			switch l := d.u8(); l {
			case 4, 16:
				d.fixed(int(l))
			default:
				d.fail("IP address of length %d", l)
			}
		case FieldUUID:
			d.fixed(16)
		default:
			if d.err == nil {
				d.fail("unknown field type %d", uint8(t))
			}
		}
	}
}

// DecodeSeries decodes a series entry (SeriesView.Raw). It allocates: the
// collector calls it once per distinct series, not per sample.
func DecodeSeries(raw []byte) (SeriesIdentity, error) {
	return decodeSeries(&decoder{exact: true}, raw)
}

// DecodeSeries is like the package function DecodeSeries, with names and
// string field values interned and field slices carved from shared chunks
// (see SampleDecoder): for a collector checking many new series.
func (sd *SampleDecoder) DecodeSeries(raw []byte) (SeriesIdentity, error) {
	return decodeSeries(&sd.series, raw)
}

// SeriesDecoder decodes series entries (SeriesView.Raw) as DecodeSeries
// does, with names and string field values interned and field slices
// carved from one arena that Rewind makes reusable: for a forwarder
// resolving a record's definitions, whose identities are needed only while
// it reads that record. Once its arena has grown to a record's needs it
// allocates nothing per series, except the strings its interner no longer
// holds (65,536 of them: it starts over when full). At most
// maxReusedFields fields are kept for reuse: a record needing more
// allocates further chunks of that size, dropped at the next Rewind.
// Not safe for concurrent use.
type SeriesDecoder struct {
	d  decoder
	in interner
	// idle counts the Rewinds in a row that found nothing carved from the
	// arena: at releaseIdleRewinds the arena is dropped, so a forwarder
	// past its fleet's definitions (every record of a steady session names
	// only known ids) does not keep 6.8 MB for the next session's.
	idle int
}

// releaseIdleRewinds is how many Rewinds in a row with nothing carved from
// the arena drop it. The forwarder rewinds once a record, so this is
// records, not time: about 12 s at RFD 125's N=100 (22 records a second).
const releaseIdleRewinds = 256

// maxReusedFields bounds the arena a SeriesDecoder keeps from record to
// record: 65,536 fields (6.8 MB), what 10,000 definitions of six fields
// take.
const maxReusedFields = 1 << 16

// NewSeriesDecoder returns a SeriesDecoder that interns up to 65,536
// strings.
func NewSeriesDecoder() *SeriesDecoder {
	sd := &SeriesDecoder{in: newInterner()}
	sd.d.in, sd.d.reuse = &sd.in, true
	return sd
}

// Decode decodes a series entry. The identity's field slices are valid
// until the next Rewind.
func (sd *SeriesDecoder) Decode(raw []byte) (SeriesIdentity, error) {
	return decodeSeries(&sd.d, raw)
}

// Rewind makes the arena reusable: no identity Decode returned before may
// be used after it. When the identities since the last Rewind needed more
// than the arena, it grows (twice, up to maxReusedFields) for the next
// ones.
func (sd *SeriesDecoder) Rewind() {
	d := &sd.d
	if d.chunks == 0 && len(d.arena) == len(d.chunk) {
		if sd.idle++; sd.idle >= releaseIdleRewinds && d.chunk != nil {
			d.chunk, d.arena = nil, nil
		}
		d.b = nil
		return
	}
	sd.idle = 0
	if d.chunks > 0 && cap(d.chunk) < maxReusedFields {
		d.chunk = make([]Field, min(2*cap(d.chunk), maxReusedFields))
	} else {
		// The decoder sets only the members a field's type uses; arena
		// is the unused rest of chunk.
		clear(d.chunk[:len(d.chunk)-len(d.arena)])
	}
	d.arena, d.chunks, d.b = d.chunk, 0, nil
}

// decodeSeries decodes a series entry with d's interner and field arena.
func decodeSeries(d *decoder, raw []byte) (SeriesIdentity, error) {
	d.b, d.off, d.sample, d.err = raw, 0, -1, nil
	var id SeriesIdentity
	id.Target.Name = d.name()
	id.Target.Fields = d.fields()
	id.Metric.Name = d.name()
	id.Metric.Fields = d.fields()
	id.DatumType = DatumType(d.u8())
	if d.err == nil && !id.DatumType.Valid() {
		d.fail("unknown datum type %d", uint8(id.DatumType))
	}
	if d.err == nil && d.off != len(raw) {
		d.fail("%d bytes after the series entry", len(raw)-d.off)
	}
	if d.err != nil {
		return SeriesIdentity{}, d.err
	}
	return id, nil
}

// DecodeBlock2 decodes a version 2 block, appending to dst. Samples of one
// series share its name and field slices. It checks the structure only;
// call Validate for limits and semantics.
func DecodeBlock2(b []byte, dst []Sample) ([]Sample, error) { return decodeBlock2(b, dst, nil, nil) }

// decodeBlock2 decodes with the interner in (nil: allocate every string).
func decodeBlock2(b []byte, dst []Sample, lim *PageLimits, in *interner) ([]Sample, error) {
	sd := decoder{in: in, exact: in == nil}
	var sc BlockScanner
	if err := sc.Reset(b, lim); err != nil {
		return dst, err
	}
	// Decode only the series samples refer to, once each.
	ids := make([]SeriesIdentity, sc.NumSeries())
	have := make([]bool, sc.NumSeries())
	dst = growSamples(dst, sc.NumSamples())
	var v SampleView
	for sc.Next(&v) {
		id := &ids[v.Series]
		if !have[v.Series] {
			dec, err := decodeSeries(&sd, sc.Series(v.Series).Raw)
			if err != nil { // not reached: Reset checked the entry
				return dst, err
			}
			*id, have[v.Series] = dec, true
		}
		dst = append(dst, Sample{Target: id.Target, Metric: id.Metric, TimestampNs: v.TimestampNs, Datum: v.Datum()})
	}
	return dst, sc.Err()
}

// ValidateSampleView checks what Validate checks of a sample's value (the
// series is checked once, by Validate of SeriesIdentity.Sample): integer
// ranges, string and bytes lengths, and histogram shape. name is the
// timeseries name for the error; it allocates only on error.
func ValidateSampleView(name string, v *SampleView, lim Limits) error {
	if v.Missing {
		return nil
	}
	lim = lim.withDefaults()
	var err error
	switch v.Type {
	case DatumI8:
		err = intRange(v.Int, math.MinInt8, math.MaxInt8)
	case DatumI16:
		err = intRange(v.Int, math.MinInt16, math.MaxInt16)
	case DatumI32:
		err = intRange(v.Int, math.MinInt32, math.MaxInt32)
	case DatumU8:
		err = uintRange(v.Uint, math.MaxUint8)
	case DatumU16:
		err = uintRange(v.Uint, math.MaxUint16)
	case DatumU32:
		err = uintRange(v.Uint, math.MaxUint32)
	case DatumString:
		if len(v.Bytes) > lim.MaxDatumBytes {
			err = fmt.Errorf("string of %d bytes exceeds the limit of %d", len(v.Bytes), lim.MaxDatumBytes)
		}
	case DatumBytes:
		if len(v.Bytes) > lim.MaxDatumBytes {
			err = fmt.Errorf("%d bytes exceed the limit of %d", len(v.Bytes), lim.MaxDatumBytes)
		}
	case DatumHistogramI64, DatumHistogramU64, DatumHistogramF64:
		err = validateHistView(&v.Hist, v.Type, lim)
	}
	if err != nil {
		return &ValidationError{Timeseries: name, Part: "datum", Reason: err.Error()}
	}
	return nil
}

var errNoBins = errors.New("histogram has no bins")

// validateHistView is validateHistogram over the encoded bins.
func validateHistView(h *HistogramView, t DatumType, lim Limits) error {
	if h.NBins == 0 {
		return errNoBins
	}
	if h.NBins > lim.MaxHistogramBins {
		return fmt.Errorf("histogram has %d bins, more than the limit of %d", h.NBins, lim.MaxHistogramBins)
	}
	b := h.Bins
	switch t {
	case DatumHistogramF64:
		var prev float64
		for i := 0; i < h.NBins && len(b) >= 8; i++ {
			f := math.Float64frombits(binary.LittleEndian.Uint64(b))
			b = b[8:]
			if math.IsNaN(f) {
				return errors.New("histogram has a NaN bin")
			}
			if i > 0 && !(prev < f) {
				return fmt.Errorf("histogram bins are not strictly increasing at bin %d", i)
			}
			prev = f
		}
	case DatumHistogramI64:
		var prev int64
		for i := 0; i < h.NBins; i++ {
			x, n := binary.Varint(b)
			if n <= 0 {
				break
			}
			b = b[n:]
			if i > 0 && !(prev < x) {
				return fmt.Errorf("histogram bins are not strictly increasing at bin %d", i)
			}
			prev = x
		}
	default:
		var prev uint64
		for i := 0; i < h.NBins; i++ {
			x, n := binary.Uvarint(b)
			if n <= 0 {
				break
			}
			b = b[n:]
			if i > 0 && !(prev < x) {
				return fmt.Errorf("histogram bins are not strictly increasing at bin %d", i)
			}
			prev = x
		}
	}
	return nil
}
