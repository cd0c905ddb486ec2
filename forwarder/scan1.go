package forwarder

import (
	"context"
	"encoding/binary"
	"math"

	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

// addRecord1 is addRecord2 for version 1 page records (what builds before
// block v2 wrote, still in a WAL after an upgrade). A version 1 sample
// carries its identity inline: its bytes followed by the datum type byte are
// exactly a version 2 series entry, so the same series cache serves both.
// Every sample is validated (version 1 records are never flagged verified):
// its series once when it enters the cache, its value in place. It reports
// handled=false, having added nothing, for anything the decoding path
// should see (it then decodes and reports as before); it accepts exactly
// what that path accepts (FuzzAddRecord1).
func (f *Forwarder) addRecord1(ctx context.Context, b *batch, idx uint64, rec wal.Record) (handled bool, err error) {
	if rec.Type != wal.TypePage || len(rec.Payload) == 0 || rec.Payload[0] != 1 {
		return false, nil
	}
	r := reader1{b: rec.Payload, off: 1}
	r.skipBytes()    // producer
	r.skipBytes()    // incarnation
	if r.u8() != 1 { // block version
		return false, nil
	}
	// A sample takes at least 14 bytes (see producerapi.decodeSamples).
	n := r.count(14)
	if r.bad {
		return false, nil
	}
	s := f.beginRecord(n)
	v := &s.view
	for i := 0; i < n; i++ {
		start := r.off
		r.skipBytes()  // target name
		r.skipFields() // target fields
		r.skipBytes()  // metric name
		r.skipFields() // metric fields
		idEnd := r.off
		ts := int64(r.u64())
		t := pa.DatumType(r.u8())
		if r.bad || !t.Valid() {
			return false, nil
		}
		s.key = append(append(s.key[:0], rec.Payload[start:idEnd]...), byte(t))
		ci, ok := f.seriesIndex(s.key, i)
		if !ok {
			return false, nil
		}
		if !r.datum(v, t) {
			return false, nil
		}
		v.TimestampNs = ts
		if !v.Missing && pa.ValidateSampleView(f.series.entries[ci].name, v, f.opts.Limits) != nil {
			return false, nil
		}
		s.samples = append(s.samples, scanned{series: ci, entry: int32(i), missing: v.Missing, ts: ts, start: v.StartTimeNs,
			bits: viewBits(v), bytes: v.Bytes, hist: v.Hist})
	}
	if r.off != len(r.b) { // trailing garbage
		return false, nil
	}
	return true, f.addScannedRecord(ctx, b, idx, rec)
}

// reader1 reads a version 1 block as producerapi's decoder does, without
// building anything; bad sticks at the first thing that decoder refuses.
type reader1 struct {
	b   []byte
	off int
	bad bool
}

func (r *reader1) u8() byte {
	if r.bad || r.off >= len(r.b) {
		r.bad = true
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *reader1) fixed(n int) []byte {
	if r.bad || len(r.b)-r.off < n {
		r.bad = true
		return nil
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out
}

func (r *reader1) u64() uint64 {
	if b := r.fixed(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *reader1) uvarint() uint64 {
	if r.bad {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.off += n
	return v
}

func (r *reader1) varint() int64 {
	if r.bad {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.off += n
	return v
}

// count reads a count of items of at least minSize bytes each that must
// fit in what is left.
func (r *reader1) count(minSize int) int {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)-r.off)/uint64(minSize) {
		r.bad = true
		return 0
	}
	return int(n)
}

func (r *reader1) bytes() []byte { return r.fixed(r.count(1)) }

func (r *reader1) skipBytes() { r.bytes() }

func (r *reader1) bool() bool {
	switch r.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	r.bad = true
	return false
}

func (r *reader1) skipFields() {
	n := r.count(3) // an empty name, a type, a one-byte value
	for i := 0; i < n && !r.bad; i++ {
		r.skipBytes()
		switch pa.FieldType(r.u8()) {
		case pa.FieldString:
			r.skipBytes()
		case pa.FieldBool:
			r.bool()
		case pa.FieldI8, pa.FieldI16, pa.FieldI32, pa.FieldI64:
			r.varint()
		case pa.FieldU8, pa.FieldU16, pa.FieldU32, pa.FieldU64:
			r.uvarint()
		case pa.FieldIPAddr:
			switch r.u8() {
			case 4:
				r.fixed(4)
			case 16:
				r.fixed(16)
			default:
				r.bad = true
			}
		case pa.FieldUUID:
			r.fixed(16)
		default:
			r.bad = true
		}
	}
}

// datum reads a datum of type t (its type byte read) into v.
func (r *reader1) datum(v *pa.SampleView, t pa.DatumType) bool {
	flags := r.u8()
	if r.bad || flags&^1 != 0 {
		return false
	}
	*v = pa.SampleView{Type: t, Missing: flags&1 != 0}
	if t.HasStartTime() {
		v.StartTimeNs = int64(r.u64())
	}
	if !v.Missing {
		switch t {
		case pa.DatumBool:
			v.Bool = r.bool()
		case pa.DatumI8, pa.DatumI16, pa.DatumI32, pa.DatumI64, pa.DatumCumulativeI64:
			v.Int = r.varint()
		case pa.DatumU8, pa.DatumU16, pa.DatumU32, pa.DatumU64, pa.DatumCumulativeU64:
			v.Uint = r.uvarint()
		case pa.DatumF32, pa.DatumCumulativeF32:
			if b := r.fixed(4); b != nil {
				v.F32 = math.Float32frombits(binary.LittleEndian.Uint32(b))
			}
		case pa.DatumF64, pa.DatumCumulativeF64:
			v.Float = math.Float64frombits(r.u64())
		case pa.DatumString, pa.DatumBytes:
			v.Bytes = r.bytes()
			if v.Bytes == nil {
				v.Bytes = []byte{}
			}
		case pa.DatumHistogramI64, pa.DatumHistogramU64, pa.DatumHistogramF64:
			r.hist(&v.Hist, t)
		}
	}
	return !r.bad
}

// hist reads a version 1 histogram into a view of the same layout as a
// version 2 one (bins, then counts, then min, max, sum).
func (r *reader1) hist(h *pa.HistogramView, t pa.DatumType) {
	minSize := 1
	if t == pa.DatumHistogramF64 {
		minSize = 8
	}
	n := r.count(minSize + 1) // an edge and a count per bin
	if r.bad {
		return
	}
	h.NBins = n
	start := r.off
	for i := 0; i < n && !r.bad; i++ {
		switch t {
		case pa.DatumHistogramF64:
			r.fixed(8)
		case pa.DatumHistogramI64:
			r.varint()
		default:
			r.uvarint()
		}
	}
	h.Bins = r.b[start:r.off]
	start = r.off
	for i := 0; i < n && !r.bad; i++ {
		r.uvarint()
	}
	h.Counts = r.b[start:r.off]
	switch t {
	case pa.DatumHistogramF64:
		h.Min, h.Max, h.Sum = r.u64(), r.u64(), r.u64()
	case pa.DatumHistogramI64:
		h.Min, h.Max, h.Sum = uint64(r.varint()), uint64(r.varint()), uint64(r.varint())
	default:
		h.Min, h.Max, h.Sum = r.uvarint(), r.uvarint(), r.uvarint()
	}
}
