package forwarder

import (
	"github.com/google/uuid"

	pa "github.com/holdfast/holdfast/producerapi"
)

// rowSet is everything one delivery inserts, in column form: measurement
// rows per datum type, and the fields and schemas of timeseries not written
// before. Values are copied out of the decoded samples, which can then be
// dropped: a batch of 100,000 rows costs a few MiB, not the decoded pages.
type rowSet struct {
	meas       [pa.DatumHistogramF64 + 1]*measurementRows
	fields     [pa.FieldUUID + 1]*fieldRows
	schemas    []pa.TimeseriesSchema
	newKeys    map[uint64]uint64 // key -> fingerprint of its timeseries
	newSchemas map[pa.SchemaKey]struct{}
	rows       int
}

func newRowSet() *rowSet {
	return &rowSet{newKeys: map[uint64]uint64{}, newSchemas: map[pa.SchemaKey]struct{}{}}
}

// add appends one validated sample whose timeseries has key and fingerprint
// fp (an independent hash of what the key hashes), unless the key belongs to
// a different timeseries (fingerprint differs) in this row set or in what the
// writer remembers: then it adds nothing and returns false, so two
// timeseries are never merged under one key.
func (rs *rowSet) add(name string, key, fp uint64, s *pa.Sample, w *writer) bool {
	known, seen := w.seenKeys[key]
	if !seen {
		known, seen = rs.newKeys[key]
	}
	if seen && known != fp {
		return false
	}
	t := s.Datum.Type
	if rs.meas[t] == nil {
		rs.meas[t] = &measurementRows{t: t}
	}
	rs.meas[t].add(name, key, s)
	rs.rows++
	if seen {
		return true
	}
	rs.newKeys[key] = fp
	for _, group := range [2][]pa.Field{s.Target.Fields, s.Metric.Fields} {
		for fi := range group {
			ft := group[fi].Value.Type
			if rs.fields[ft] == nil {
				rs.fields[ft] = &fieldRows{t: ft}
			}
			rs.fields[ft].add(name, key, &group[fi])
		}
	}
	// A new field set is a new timeseries key, so every schema version
	// passes here at least once.
	sk := pa.SchemaKey{Name: name, Version: pa.SchemaVersionOf(s)}
	if _, seen := w.seenSchemas[sk]; !seen {
		if _, dup := rs.newSchemas[sk]; !dup {
			rs.newSchemas[sk] = struct{}{}
			rs.schemas = append(rs.schemas, pa.SchemaOf(s))
		}
	}
	return true
}

// measurementRows holds the rows of one measurements table in column form.
// Only the value slices that fit the datum type are used.
type measurementRows struct {
	t       pa.DatumType
	names   []string
	keys    []uint64
	ts      []int64
	start   []int64
	missing []bool
	ints    []int64   // i8..i64, cumulative_i64
	uints   []uint64  // bool, u8..u64, cumulative_u64
	f32     []float32 // f32, cumulative_f32
	f64     []float64 // f64, cumulative_f64
	strs    []string  // string, bytes
	histI   []*pa.Histogram[int64]
	histU   []*pa.Histogram[uint64]
	histF   []*pa.Histogram[float64]
}

func (m *measurementRows) add(name string, key uint64, s *pa.Sample) {
	d := &s.Datum
	m.names = append(m.names, name)
	m.keys = append(m.keys, key)
	m.ts = append(m.ts, s.TimestampNs)
	if m.t.HasStartTime() {
		m.start = append(m.start, d.StartTimeNs)
	}
	m.missing = append(m.missing, d.Missing)
	switch m.t {
	case pa.DatumBool:
		var v uint64
		if d.Bool {
			v = 1
		}
		m.uints = append(m.uints, v)
	case pa.DatumI8, pa.DatumI16, pa.DatumI32, pa.DatumI64, pa.DatumCumulativeI64:
		m.ints = append(m.ints, d.Int)
	case pa.DatumU8, pa.DatumU16, pa.DatumU32, pa.DatumU64, pa.DatumCumulativeU64:
		m.uints = append(m.uints, d.Uint)
	case pa.DatumF32, pa.DatumCumulativeF32:
		m.f32 = append(m.f32, d.F32)
	case pa.DatumF64, pa.DatumCumulativeF64:
		m.f64 = append(m.f64, d.F64)
	case pa.DatumString:
		m.strs = append(m.strs, d.Str)
	case pa.DatumBytes:
		m.strs = append(m.strs, string(d.Bytes))
	case pa.DatumHistogramI64:
		m.histI = append(m.histI, d.HistI64)
	case pa.DatumHistogramU64:
		m.histU = append(m.histU, d.HistU64)
	case pa.DatumHistogramF64:
		m.histF = append(m.histF, d.HistF64)
	}
}

// nullable builds a Nullable column from values: one value array and one
// pointer array, no allocation per row.
func nullable[S, T any](missing []bool, vals []S, conv func(S) T) []*T {
	out := make([]T, len(missing))
	ptrs := make([]*T, len(missing))
	for i, miss := range missing {
		if !miss {
			out[i] = conv(vals[i])
			ptrs[i] = &out[i]
		}
	}
	return ptrs
}

func same[T any](v T) T { return v }

func histColumns[T int64 | uint64 | float64](missing []bool, hs []*pa.Histogram[T]) []any {
	bins := make([][]T, len(hs))
	counts := make([][]uint64, len(hs))
	empty, emptyCounts := []T{}, []uint64{}
	for i, h := range hs {
		if !missing[i] && h != nil {
			bins[i], counts[i] = h.Bins, h.Counts
		} else {
			bins[i], counts[i] = empty, emptyCounts
		}
	}
	return []any{bins, counts,
		nullable(missing, hs, func(h *pa.Histogram[T]) T { return h.Min }),
		nullable(missing, hs, func(h *pa.Histogram[T]) T { return h.Max }),
		nullable(missing, hs, func(h *pa.Histogram[T]) T { return h.Sum }),
	}
}

// columns returns the column slices in measurementColumns order.
func (m *measurementRows) columns() []any {
	cols := []any{m.names, m.keys, m.ts}
	if m.t.HasStartTime() {
		cols = append(cols, m.start)
	}
	var v any
	switch m.t {
	case pa.DatumBool, pa.DatumU8:
		v = nullable(m.missing, m.uints, func(x uint64) uint8 { return uint8(x) })
	case pa.DatumI8:
		v = nullable(m.missing, m.ints, func(x int64) int8 { return int8(x) })
	case pa.DatumI16:
		v = nullable(m.missing, m.ints, func(x int64) int16 { return int16(x) })
	case pa.DatumI32:
		v = nullable(m.missing, m.ints, func(x int64) int32 { return int32(x) })
	case pa.DatumI64, pa.DatumCumulativeI64:
		v = nullable(m.missing, m.ints, same[int64])
	case pa.DatumU16:
		v = nullable(m.missing, m.uints, func(x uint64) uint16 { return uint16(x) })
	case pa.DatumU32:
		v = nullable(m.missing, m.uints, func(x uint64) uint32 { return uint32(x) })
	case pa.DatumU64, pa.DatumCumulativeU64:
		v = nullable(m.missing, m.uints, same[uint64])
	case pa.DatumF32, pa.DatumCumulativeF32:
		v = nullable(m.missing, m.f32, same[float32])
	case pa.DatumF64, pa.DatumCumulativeF64:
		v = nullable(m.missing, m.f64, same[float64])
	case pa.DatumString, pa.DatumBytes:
		v = nullable(m.missing, m.strs, same[string])
	case pa.DatumHistogramI64:
		return append(cols, histColumns(m.missing, m.histI)...)
	case pa.DatumHistogramU64:
		return append(cols, histColumns(m.missing, m.histU)...)
	case pa.DatumHistogramF64:
		return append(cols, histColumns(m.missing, m.histF)...)
	}
	return append(cols, v)
}

// fieldRows holds the rows of one fields table.
type fieldRows struct {
	t      pa.FieldType
	names  []string
	keys   []uint64
	fields []string
	values []pa.FieldValue
}

func (f *fieldRows) add(name string, key uint64, field *pa.Field) {
	f.names = append(f.names, name)
	f.keys = append(f.keys, key)
	f.fields = append(f.fields, field.Name)
	f.values = append(f.values, field.Value)
}

func column[T any](vals []pa.FieldValue, get func(v *pa.FieldValue) T) []T {
	out := make([]T, len(vals))
	for i := range vals {
		out[i] = get(&vals[i])
	}
	return out
}

func (f *fieldRows) columns() []any {
	var v any
	switch f.t {
	case pa.FieldString:
		v = column(f.values, func(v *pa.FieldValue) string { return v.Str })
	case pa.FieldIPAddr:
		v = column(f.values, func(v *pa.FieldValue) string { return v.IP.String() })
	case pa.FieldBool:
		v = column(f.values, func(v *pa.FieldValue) uint8 {
			if v.Bool {
				return 1
			}
			return 0
		})
	case pa.FieldI8:
		v = column(f.values, func(v *pa.FieldValue) int8 { return int8(v.Int) })
	case pa.FieldI16:
		v = column(f.values, func(v *pa.FieldValue) int16 { return int16(v.Int) })
	case pa.FieldI32:
		v = column(f.values, func(v *pa.FieldValue) int32 { return int32(v.Int) })
	case pa.FieldI64:
		v = column(f.values, func(v *pa.FieldValue) int64 { return v.Int })
	case pa.FieldU8:
		v = column(f.values, func(v *pa.FieldValue) uint8 { return uint8(v.Uint) })
	case pa.FieldU16:
		v = column(f.values, func(v *pa.FieldValue) uint16 { return uint16(v.Uint) })
	case pa.FieldU32:
		v = column(f.values, func(v *pa.FieldValue) uint32 { return uint32(v.Uint) })
	case pa.FieldU64:
		v = column(f.values, func(v *pa.FieldValue) uint64 { return v.Uint })
	case pa.FieldUUID:
		v = column(f.values, func(v *pa.FieldValue) uuid.UUID { return uuid.UUID(v.UUID) })
	}
	return []any{f.names, f.keys, f.fields, v}
}

// schemaColumns builds the timeseries_schema columns.
func schemaColumnData(schemas []pa.TimeseriesSchema, created int64) []any {
	n := len(schemas)
	names := make([]string, n)
	fnames, ftypes, fsources := make([][]string, n), make([][]string, n), make([][]string, n)
	dtypes := make([]string, n)
	versions := make([]uint32, n)
	createdNs := make([]int64, n)
	for i, sc := range schemas {
		names[i], dtypes[i], versions[i], createdNs[i] = sc.Name, sc.DatumType.String(), sc.Version, created
		fnames[i], ftypes[i], fsources[i] = []string{}, []string{}, []string{}
		for _, f := range sc.Fields {
			fnames[i] = append(fnames[i], f.Name)
			ftypes[i] = append(ftypes[i], f.Type.String())
			fsources[i] = append(fsources[i], f.Source.String())
		}
	}
	return []any{names, fnames, ftypes, fsources, dtypes, versions, createdNs}
}

var schemaColumns = []string{"timeseries_name", "fields_name", "fields_type", "fields_source", "datum_type", "version", "created_ns"}
var fieldColumns = []string{"timeseries_name", "timeseries_key", "field_name", "field_value"}
