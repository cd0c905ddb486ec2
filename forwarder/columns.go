package forwarder

import (
	"github.com/google/uuid"

	pa "github.com/holdfast/holdfast/producerapi"
)

// measurementRows holds the rows of one measurements table in column form,
// ready for clickhouse-go's columnar Append.
type measurementRows struct {
	t       pa.DatumType
	names   []string
	keys    []uint64
	ts      []int64
	start   []int64
	missing []bool
	datums  []*pa.Datum // values are read from the samples when columns are built
}

func (m *measurementRows) add(name string, key uint64, s *pa.Sample) {
	m.names = append(m.names, name)
	m.keys = append(m.keys, key)
	m.ts = append(m.ts, s.TimestampNs)
	if m.t.HasStartTime() {
		m.start = append(m.start, s.Datum.StartTimeNs)
	}
	m.missing = append(m.missing, s.Datum.Missing)
	m.datums = append(m.datums, &s.Datum)
}

func (m *measurementRows) len() int { return len(m.names) }

// nullable builds a Nullable column: one value array and one pointer array,
// no allocation per row.
func nullable[T any](missing []bool, get func(i int) T) []*T {
	vals := make([]T, len(missing))
	ptrs := make([]*T, len(missing))
	for i, miss := range missing {
		if !miss {
			vals[i] = get(i)
			ptrs[i] = &vals[i]
		}
	}
	return ptrs
}

func histColumns[T int64 | uint64 | float64](m *measurementRows, get func(d *pa.Datum) *pa.Histogram[T]) []any {
	bins := make([][]T, m.len())
	counts := make([][]uint64, m.len())
	empty, emptyCounts := []T{}, []uint64{}
	for i, d := range m.datums {
		if h := get(d); !d.Missing && h != nil {
			bins[i], counts[i] = h.Bins, h.Counts
		} else {
			bins[i], counts[i] = empty, emptyCounts
		}
	}
	hist := func(i int) *pa.Histogram[T] { return get(m.datums[i]) }
	return []any{bins, counts,
		nullable(m.missing, func(i int) T { return hist(i).Min }),
		nullable(m.missing, func(i int) T { return hist(i).Max }),
		nullable(m.missing, func(i int) T { return hist(i).Sum }),
	}
}

// columns returns the column slices in measurementColumns order.
func (m *measurementRows) columns() []any {
	cols := []any{m.names, m.keys, m.ts}
	if m.t.HasStartTime() {
		cols = append(cols, m.start)
	}
	d := func(i int) *pa.Datum { return m.datums[i] }
	var v any
	switch m.t {
	case pa.DatumBool:
		v = nullable(m.missing, func(i int) uint8 {
			if d(i).Bool {
				return 1
			}
			return 0
		})
	case pa.DatumI8:
		v = nullable(m.missing, func(i int) int8 { return int8(d(i).Int) })
	case pa.DatumI16:
		v = nullable(m.missing, func(i int) int16 { return int16(d(i).Int) })
	case pa.DatumI32:
		v = nullable(m.missing, func(i int) int32 { return int32(d(i).Int) })
	case pa.DatumI64, pa.DatumCumulativeI64:
		v = nullable(m.missing, func(i int) int64 { return d(i).Int })
	case pa.DatumU8:
		v = nullable(m.missing, func(i int) uint8 { return uint8(d(i).Uint) })
	case pa.DatumU16:
		v = nullable(m.missing, func(i int) uint16 { return uint16(d(i).Uint) })
	case pa.DatumU32:
		v = nullable(m.missing, func(i int) uint32 { return uint32(d(i).Uint) })
	case pa.DatumU64, pa.DatumCumulativeU64:
		v = nullable(m.missing, func(i int) uint64 { return d(i).Uint })
	case pa.DatumF32, pa.DatumCumulativeF32:
		v = nullable(m.missing, func(i int) float32 { return d(i).F32 })
	case pa.DatumF64, pa.DatumCumulativeF64:
		v = nullable(m.missing, func(i int) float64 { return d(i).F64 })
	case pa.DatumString:
		v = nullable(m.missing, func(i int) string { return d(i).Str })
	case pa.DatumBytes:
		v = nullable(m.missing, func(i int) string { return string(d(i).Bytes) })
	case pa.DatumHistogramI64:
		return append(cols, histColumns(m, func(d *pa.Datum) *pa.Histogram[int64] { return d.HistI64 })...)
	case pa.DatumHistogramU64:
		return append(cols, histColumns(m, func(d *pa.Datum) *pa.Histogram[uint64] { return d.HistU64 })...)
	case pa.DatumHistogramF64:
		return append(cols, histColumns(m, func(d *pa.Datum) *pa.Histogram[float64] { return d.HistF64 })...)
	}
	return append(cols, v)
}

// fieldRows holds the rows of one fields table.
type fieldRows struct {
	t      pa.FieldType
	names  []string
	keys   []uint64
	fields []string
	values []*pa.FieldValue
}

func (f *fieldRows) add(name string, key uint64, field *pa.Field) {
	f.names = append(f.names, name)
	f.keys = append(f.keys, key)
	f.fields = append(f.fields, field.Name)
	f.values = append(f.values, &field.Value)
}

func column[T any](vals []*pa.FieldValue, get func(v *pa.FieldValue) T) []T {
	out := make([]T, len(vals))
	for i, v := range vals {
		out[i] = get(v)
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

// schemaRows holds rows of the timeseries_schema table.
type schemaRows struct {
	schemas []pa.TimeseriesSchema
	created int64
}

func (s *schemaRows) columns() []any {
	n := len(s.schemas)
	names := make([]string, n)
	fnames, ftypes, fsources := make([][]string, n), make([][]string, n), make([][]string, n)
	dtypes := make([]string, n)
	versions := make([]uint16, n)
	created := make([]int64, n)
	for i, sc := range s.schemas {
		names[i], dtypes[i], versions[i], created[i] = sc.Name, sc.DatumType.String(), sc.Version, s.created
		fnames[i], ftypes[i], fsources[i] = []string{}, []string{}, []string{}
		for _, f := range sc.Fields {
			fnames[i] = append(fnames[i], f.Name)
			ftypes[i] = append(ftypes[i], f.Type.String())
			fsources[i] = append(fsources[i], f.Source.String())
		}
	}
	return []any{names, fnames, ftypes, fsources, dtypes, versions, created}
}

var schemaColumns = []string{"timeseries_name", "fields_name", "fields_type", "fields_source", "datum_type", "version", "created_ns"}
var fieldColumns = []string{"timeseries_name", "timeseries_key", "field_name", "field_value"}
