package producerapi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
)

// Binary sample block, version 1. Integers are little-endian; "uvarint" and
// "varint" are encoding/binary's (varint is zigzag); "str" is uvarint length
// followed by the bytes.
//
//	block   := u8 version(=1) | uvarint count | sample*count
//	sample  := str target_name | fields | str metric_name | fields |
//	           i64 timestamp_ns | datum
//	fields  := uvarint n | (str name | u8 field_type | fvalue)*n
//	fvalue  := string: str | bool: u8 | i8..i64: varint | u8..u64: uvarint |
//	           ip_addr: u8 4|16 then that many bytes | uuid: 16 bytes
//	datum   := u8 datum_type | u8 flags (bit 0: missing) |
//	           [i64 start_time_ns, for cumulative and histogram types] |
//	           [dvalue, unless missing]
//	dvalue  := bool: u8 | i8..i64, cumulative_i64: varint |
//	           u8..u64, cumulative_u64: uvarint | f32, cumulative_f32: u32 bits |
//	           f64, cumulative_f64: u64 bits | string, bytes: str |
//	           histogram_T: uvarint nbins | T*nbins | uvarint*nbins counts |
//	                        T min | T max | T sum
//	T       := i64: varint | u64: uvarint | f64: u64 bits
//
// Floats travel as their IEEE-754 bits, so NaN payloads, infinities and -0
// are preserved exactly.
const BlockVersion = 1

// ErrMalformed is the sentinel every decoding error wraps.
var ErrMalformed = errors.New("producerapi: malformed sample block")

// DecodeError says where a sample block stopped making sense.
type DecodeError struct {
	Sample int // index of the sample being decoded, -1 for the block header
	Offset int // byte offset in the block
	Reason string
}

func (e *DecodeError) Error() string {
	if e.Sample < 0 {
		return fmt.Sprintf("producerapi: malformed sample block at byte %d: %s", e.Offset, e.Reason)
	}
	return fmt.Sprintf("producerapi: malformed sample block: sample %d at byte %d: %s", e.Sample, e.Offset, e.Reason)
}

func (e *DecodeError) Unwrap() error { return ErrMalformed }

// AppendSamples appends the binary block encoding of samples to dst.
func AppendSamples(dst []byte, samples []Sample) []byte {
	dst = append(dst, BlockVersion)
	dst = binary.AppendUvarint(dst, uint64(len(samples)))
	for i := range samples {
		dst = appendSample(dst, &samples[i])
	}
	return dst
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendSample(dst []byte, s *Sample) []byte {
	dst = appendStr(dst, s.Target.Name)
	dst = appendFields(dst, s.Target.Fields)
	dst = appendStr(dst, s.Metric.Name)
	dst = appendFields(dst, s.Metric.Fields)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(s.TimestampNs))
	return appendDatum(dst, &s.Datum)
}

func appendFields(dst []byte, fields []Field) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(fields)))
	for i := range fields {
		f := &fields[i]
		dst = appendStr(dst, f.Name)
		dst = append(dst, byte(f.Value.Type))
		switch v := &f.Value; v.Type {
		case FieldString:
			dst = appendStr(dst, v.Str)
		case FieldBool:
			dst = appendBool(dst, v.Bool)
		case FieldI8, FieldI16, FieldI32, FieldI64:
			dst = binary.AppendVarint(dst, v.Int)
		case FieldU8, FieldU16, FieldU32, FieldU64:
			dst = binary.AppendUvarint(dst, v.Uint)
		case FieldIPAddr:
			if v.IP.Is4() {
				a := v.IP.As4()
				dst = append(append(dst, 4), a[:]...)
			} else {
				a := v.IP.As16()
				dst = append(append(dst, 16), a[:]...)
			}
		case FieldUUID:
			dst = append(dst, v.UUID[:]...)
		}
	}
	return dst
}

func appendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

func appendDatum(dst []byte, d *Datum) []byte {
	var flags byte
	if d.Missing {
		flags |= 1
	}
	dst = append(dst, byte(d.Type), flags)
	return appendDatumTail(dst, d)
}

// appendDatumTail appends what follows a datum's flags in both block
// versions: the start time (for types that have one) and the value
// (unless missing).
func appendDatumTail(dst []byte, d *Datum) []byte {
	if d.Type.HasStartTime() {
		dst = binary.LittleEndian.AppendUint64(dst, uint64(d.StartTimeNs))
	}
	if d.Missing {
		return dst
	}
	switch d.Type {
	case DatumBool:
		dst = appendBool(dst, d.Bool)
	case DatumI8, DatumI16, DatumI32, DatumI64, DatumCumulativeI64:
		dst = binary.AppendVarint(dst, d.Int)
	case DatumU8, DatumU16, DatumU32, DatumU64, DatumCumulativeU64:
		dst = binary.AppendUvarint(dst, d.Uint)
	case DatumF32, DatumCumulativeF32:
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(d.F32))
	case DatumF64, DatumCumulativeF64:
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(d.F64))
	case DatumString:
		dst = appendStr(dst, d.Str)
	case DatumBytes:
		dst = binary.AppendUvarint(dst, uint64(len(d.Bytes)))
		dst = append(dst, d.Bytes...)
	case DatumHistogramI64:
		dst = appendHistogram(dst, d.HistI64, binary.AppendVarint)
	case DatumHistogramU64:
		dst = appendHistogram(dst, d.HistU64, binary.AppendUvarint)
	case DatumHistogramF64:
		dst = appendHistogram(dst, d.HistF64, func(b []byte, f float64) []byte {
			return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		})
	}
	return dst
}

func appendHistogram[T int64 | uint64 | float64](dst []byte, h *Histogram[T], put func([]byte, T) []byte) []byte {
	if h == nil {
		h = &Histogram[T]{}
	}
	dst = binary.AppendUvarint(dst, uint64(len(h.Bins)))
	for _, b := range h.Bins {
		dst = put(dst, b)
	}
	// A histogram whose counts disagree with its bins is invalid; encode
	// exactly len(bins) counts so the block stays decodable and Validate
	// reports the shape on the other side.
	for i := range h.Bins {
		var c uint64
		if i < len(h.Counts) {
			c = h.Counts[i]
		}
		dst = binary.AppendUvarint(dst, c)
	}
	dst = put(dst, h.Min)
	dst = put(dst, h.Max)
	return put(dst, h.Sum)
}

// decoder reads a block; the first error sticks and later reads return zero
// values, so decoding code can read straight through and check once.
type decoder struct {
	b      []byte
	off    int
	sample int
	err    error
	in     *interner   // nil: allocate every string
	arena  []Field     // field slices are carved from here
	lim    *pageLimits // nil: counts are bounded by the bytes left only
	// exact: allocate field slices of exactly the size needed instead of
	// carving them from a 1,024-field arena (for one-off decodes).
	exact bool
	// reuse (SeriesDecoder): chunk is the whole of the arena's current
	// chunk (arena is its unused rest), kept to be carved again after a
	// rewind; chunks counts the chunks made since the last rewind because
	// the arena ran out.
	reuse  bool
	chunk  []Field
	chunks int
	// fieldsLeft is what the current sample may still hold of
	// lim.maxFields (target and metric fields together, as Validate counts).
	fieldsLeft int
}

// refuse records a limit violation; like fail, the first error sticks.
func (d *decoder) refuse(what string, n uint64, limit int) {
	if d.err == nil {
		d.err = &LimitError{What: what, Count: n, Limit: limit, Sample: d.sample}
	}
}

// interner shares the strings that repeat from sample to sample (names and
// string field values), so decoding a page allocates them once. It holds
// at most max strings, then starts over.
type interner struct {
	max int
	m   map[string]string
}

// newInterner returns an interner of up to 65,536 strings.
func newInterner() interner { return interner{max: 1 << 16, m: make(map[string]string)} }

func (in *interner) get(b []byte) string {
	if s, ok := in.m[string(b)]; ok { // no allocation for the lookup
		return s
	}
	if len(in.m) >= in.max {
		clear(in.m)
	}
	s := string(b)
	in.m[s] = s
	return s
}

// SampleDecoder decodes sample blocks, pages and page records with less
// garbage than the package functions: names and string field values are
// interned, and field slices are carved from shared chunks. Decoded samples
// may share memory with each other (never with the input). Not safe for
// concurrent use; keep one per goroutine.
type SampleDecoder struct {
	in interner
	// series decodes series entries (DecodeSeries): it keeps the field
	// arena from call to call.
	series decoder
	// Limits, when set, bound the pages DecodePage and UnmarshalPageJSON
	// accept (see PageLimits); a collector sets them to what it asks
	// producers for. They do not apply to DecodeSamples and
	// DecodePageRecord.
	Limits *PageLimits
}

// NewSampleDecoder returns a decoder that interns up to 65,536 strings.
func NewSampleDecoder() *SampleDecoder {
	sd := &SampleDecoder{in: newInterner()}
	sd.series.in = &sd.in
	return sd
}

// DecodeSamples is like the package function DecodeSamples.
func (sd *SampleDecoder) DecodeSamples(block []byte, dst []Sample) ([]Sample, error) {
	return decodeSamples(&decoder{b: block, sample: -1, in: &sd.in}, dst)
}

// DecodePage is like the package function DecodePage.
func (sd *SampleDecoder) DecodePage(b []byte, p *Page) error {
	return decodePage(b, p, &sd.in, sd.Limits.resolve(), sd.Limits)
}

// Release drops what the decoder keeps between pages (interned strings) so
// an idle collector loop pins no memory; the decoder stays usable.
func (sd *SampleDecoder) Release() {
	sd.in.m = make(map[string]string)
	sd.series.arena = nil
}

// DecodePageRecord is like the package function DecodePageRecord.
func (sd *SampleDecoder) DecodePageRecord(b []byte, rec *PageRecord) error {
	return decodePageRecord(b, rec, &sd.in)
}

// name reads a string that is likely to repeat.
func (d *decoder) name() string {
	b := d.bytes()
	if d.in == nil || b == nil {
		return string(b)
	}
	return d.in.get(b)
}

// takeFields returns a slice of n fields carved from the arena.
func (d *decoder) takeFields(n int) []Field {
	if n > 64 || d.exact {
		return make([]Field, n)
	}
	if len(d.arena) < n {
		size := 1024
		if d.reuse && d.chunk != nil {
			size = cap(d.chunk)
			d.chunks++ // more than the arena held since the last rewind
		}
		d.arena = make([]Field, size)
		if d.reuse {
			d.chunk = d.arena
		}
	}
	out := d.arena[:n:n]
	d.arena = d.arena[n:]
	return out
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = &DecodeError{Sample: d.sample, Offset: d.off, Reason: fmt.Sprintf(format, args...)}
	}
}

func (d *decoder) u8() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("unexpected end of block")
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b)-d.off < n {
		d.fail("unexpected end of block: need %d bytes, have %d", n, len(d.b)-d.off)
		return nil
	}
	out := d.b[d.off : d.off+n]
	d.off += n
	return out
}

func (d *decoder) u64() uint64 {
	if b := d.fixed(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	// Most lengths and counts are one byte: skip the general loop.
	if d.off < len(d.b) && d.b[d.off] < 0x80 {
		v := d.b[d.off]
		d.off++
		return uint64(v)
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.off += n
	return v
}

// length reads a count that must fit in what is left of the block, given
// that each counted item takes at least minSize bytes.
func (d *decoder) length(what string, minSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)-d.off)/uint64(minSize) {
		d.fail("%s count %d exceeds the remaining %d bytes", what, n, len(d.b)-d.off)
		return 0
	}
	return int(n)
}

func (d *decoder) bytes() []byte {
	n := d.length("byte", 1)
	return d.fixed(n)
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) bool() bool {
	switch c := d.u8(); c {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("bool byte %d is neither 0 nor 1", c)
		return false
	}
}

// DecodeSamples decodes a binary sample block, appending to dst. It checks the
// structure only; call Validate for limits and semantics.
func DecodeSamples(block []byte, dst []Sample) ([]Sample, error) {
	return decodeSamples(&decoder{b: block, sample: -1}, dst)
}

func decodeSamples(d *decoder, dst []Sample) ([]Sample, error) {
	block := d.b
	if v := d.u8(); d.err == nil && v != BlockVersion {
		d.fail("unsupported block version %d (this build reads version %d)", v, BlockVersion)
	}
	// A sample takes at least 14 bytes: two empty names, two empty field
	// lists, a timestamp, a datum type and flags.
	n := d.length("sample", 14)
	if d.err != nil {
		return dst, d.err
	}
	if err := d.lim.checkSamples(uint64(n)); err != nil {
		return dst, err
	}
	dst = growSamples(dst, n)
	for i := 0; i < n; i++ {
		d.sample = i
		if d.lim != nil {
			d.fieldsLeft = d.lim.maxFields
		}
		dst = append(dst, Sample{})
		s := &dst[len(dst)-1]
		s.Target.Name = d.name()
		s.Target.Fields = d.fields()
		s.Metric.Name = d.name()
		s.Metric.Fields = d.fields()
		s.TimestampNs = int64(d.u64())
		d.datum(&s.Datum)
		if d.err != nil {
			return dst[:len(dst)-1], d.err
		}
	}
	if d.off != len(block) {
		d.sample = -1
		d.fail("%d bytes of trailing garbage", len(block)-d.off)
		return dst, d.err
	}
	return dst, nil
}

func growSamples(s []Sample, n int) []Sample {
	if cap(s)-len(s) < n {
		ns := make([]Sample, len(s), len(s)+n)
		copy(ns, s)
		return ns
	}
	return s
}

func (d *decoder) fields() []Field {
	// A field takes at least 3 bytes: an empty name, a type, a one-byte value.
	n := d.length("field", 3)
	if n == 0 || d.err != nil {
		return nil
	}
	if d.lim != nil {
		if n > d.fieldsLeft {
			d.refuse("fields", uint64(d.lim.maxFields-d.fieldsLeft+n), d.lim.maxFields)
			return nil
		}
		d.fieldsLeft -= n
	}
	out := d.takeFields(n)
	for i := range out {
		f := &out[i]
		f.Name = d.name()
		f.Value.Type = FieldType(d.u8())
		switch v := &f.Value; v.Type {
		case FieldString:
			v.Str = d.name()
		case FieldBool:
			v.Bool = d.bool()
		case FieldI8, FieldI16, FieldI32, FieldI64:
			v.Int = d.varint()
		case FieldU8, FieldU16, FieldU32, FieldU64:
			v.Uint = d.uvarint()
		case FieldIPAddr:
			switch l := d.u8(); l {
			case 4:
				v.IP = netip.AddrFrom4([4]byte(d.fixed4()))
			case 16:
				if b := d.fixed(16); b != nil {
					v.IP = netip.AddrFrom16([16]byte(b))
				}
			default:
				d.fail("IP address of length %d", l)
			}
		case FieldUUID:
			if b := d.fixed(16); b != nil {
				v.UUID = [16]byte(b)
			}
		default:
			d.fail("unknown field type %d", uint8(v.Type))
		}
		if d.err != nil {
			return nil
		}
	}
	return out
}

func (d *decoder) fixed4() []byte {
	if b := d.fixed(4); b != nil {
		return b
	}
	return make([]byte, 4)
}

func (d *decoder) datum(dt *Datum) {
	dt.Type = DatumType(d.u8())
	flags := d.u8()
	if d.err != nil {
		return
	}
	if !dt.Type.Valid() {
		d.fail("unknown datum type %d", uint8(dt.Type))
		return
	}
	if flags&^1 != 0 {
		d.fail("unknown datum flags %#x", flags)
		return
	}
	dt.Missing = flags&1 != 0
	if dt.Type.HasStartTime() {
		dt.StartTimeNs = int64(d.u64())
	}
	if dt.Missing {
		return
	}
	switch dt.Type {
	case DatumBool:
		dt.Bool = d.bool()
	case DatumI8, DatumI16, DatumI32, DatumI64, DatumCumulativeI64:
		dt.Int = d.varint()
	case DatumU8, DatumU16, DatumU32, DatumU64, DatumCumulativeU64:
		dt.Uint = d.uvarint()
	case DatumF32, DatumCumulativeF32:
		if b := d.fixed(4); b != nil {
			dt.F32 = math.Float32frombits(binary.LittleEndian.Uint32(b))
		}
	case DatumF64, DatumCumulativeF64:
		dt.F64 = math.Float64frombits(d.u64())
	case DatumString:
		dt.Str = d.str()
	case DatumBytes:
		// Keep a non-nil slice for an empty value: "empty" and "absent"
		// are different things to a reader.
		b := d.bytes()
		dt.Bytes = append(make([]byte, 0, len(b)), b...)
	case DatumHistogramI64:
		dt.HistI64 = decodeHistogram(d, 1, d.varint)
	case DatumHistogramU64:
		dt.HistU64 = decodeHistogram(d, 1, d.uvarint)
	case DatumHistogramF64:
		dt.HistF64 = decodeHistogram(d, 8, func() float64 { return math.Float64frombits(d.u64()) })
	}
}

func decodeHistogram[T int64 | uint64 | float64](d *decoder, minSize int, get func() T) *Histogram[T] {
	// Each bin takes at least minSize bytes for the edge and 1 for its count.
	n := d.length("histogram bin", minSize+1)
	if d.err != nil {
		return nil
	}
	if d.lim != nil && n > d.lim.maxBins {
		d.refuse("histogram bins", uint64(n), d.lim.maxBins)
		return nil
	}
	h := &Histogram[T]{Bins: make([]T, n), Counts: make([]uint64, n)}
	for i := range h.Bins {
		h.Bins[i] = get()
	}
	for i := range h.Counts {
		h.Counts[i] = d.uvarint()
	}
	h.Min, h.Max, h.Sum = get(), get(), get()
	return h
}
