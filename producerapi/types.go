package producerapi

import (
	"fmt"
	"net/netip"
)

// FieldType is the type of a field's value.
type FieldType uint8

// Field types. The numeric values are part of the binary encoding and of the
// timeseries key: never renumber them.
const (
	FieldString FieldType = 1 + iota
	FieldBool
	FieldI8
	FieldI16
	FieldI32
	FieldI64
	FieldU8
	FieldU16
	FieldU32
	FieldU64
	FieldIPAddr
	FieldUUID
)

var fieldTypeNames = [...]string{
	FieldString: "string", FieldBool: "bool",
	FieldI8: "i8", FieldI16: "i16", FieldI32: "i32", FieldI64: "i64",
	FieldU8: "u8", FieldU16: "u16", FieldU32: "u32", FieldU64: "u64",
	FieldIPAddr: "ip_addr", FieldUUID: "uuid",
}

// AllFieldTypes lists every field type in numeric order.
func AllFieldTypes() []FieldType {
	out := make([]FieldType, 0, len(fieldTypeNames)-1)
	for t := FieldString; t <= FieldUUID; t++ {
		out = append(out, t)
	}
	return out
}

// Valid reports whether t is a known field type.
func (t FieldType) Valid() bool { return t >= FieldString && t <= FieldUUID }

func (t FieldType) String() string {
	if t.Valid() {
		return fieldTypeNames[t]
	}
	return fmt.Sprintf("field_type(%d)", uint8(t))
}

// ParseFieldType is the inverse of FieldType.String.
func ParseFieldType(s string) (FieldType, error) {
	for t := FieldString; t <= FieldUUID; t++ {
		if fieldTypeNames[t] == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("producerapi: unknown field type %q", s)
}

// FieldValue is a typed field value. Only the member selected by Type is
// meaningful: Str for strings, Bool for bools, Int for signed integers, Uint
// for unsigned integers, IP for addresses and UUID for UUIDs.
type FieldValue struct {
	Type FieldType
	Str  string
	Bool bool
	Int  int64
	Uint uint64
	IP   netip.Addr
	UUID [16]byte
}

// Constructors for field values.
func StringValue(s string) FieldValue { return FieldValue{Type: FieldString, Str: s} }
func BoolValue(b bool) FieldValue     { return FieldValue{Type: FieldBool, Bool: b} }
func I8Value(v int8) FieldValue       { return FieldValue{Type: FieldI8, Int: int64(v)} }
func I16Value(v int16) FieldValue     { return FieldValue{Type: FieldI16, Int: int64(v)} }
func I32Value(v int32) FieldValue     { return FieldValue{Type: FieldI32, Int: int64(v)} }
func I64Value(v int64) FieldValue     { return FieldValue{Type: FieldI64, Int: v} }
func U8Value(v uint8) FieldValue      { return FieldValue{Type: FieldU8, Uint: uint64(v)} }
func U16Value(v uint16) FieldValue    { return FieldValue{Type: FieldU16, Uint: uint64(v)} }
func U32Value(v uint32) FieldValue    { return FieldValue{Type: FieldU32, Uint: uint64(v)} }
func U64Value(v uint64) FieldValue    { return FieldValue{Type: FieldU64, Uint: v} }
func IPValue(a netip.Addr) FieldValue { return FieldValue{Type: FieldIPAddr, IP: a} }
func UUIDValue(u [16]byte) FieldValue { return FieldValue{Type: FieldUUID, UUID: u} }
func (v FieldValue) String() string   { return v.format() }

func (v FieldValue) format() string {
	switch v.Type {
	case FieldString:
		return fmt.Sprintf("%q", v.Str)
	case FieldBool:
		return fmt.Sprint(v.Bool)
	case FieldI8, FieldI16, FieldI32, FieldI64:
		return fmt.Sprint(v.Int)
	case FieldU8, FieldU16, FieldU32, FieldU64:
		return fmt.Sprint(v.Uint)
	case FieldIPAddr:
		return v.IP.String()
	case FieldUUID:
		u := v.UUID
		return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	}
	return "<invalid>"
}

// Field is a named, typed value of a target or a metric.
type Field struct {
	Name  string
	Value FieldValue
}

// FieldSource says whether a field belongs to the target or to the metric.
type FieldSource uint8

// Field sources.
const (
	SourceTarget FieldSource = 1
	SourceMetric FieldSource = 2
)

func (s FieldSource) String() string {
	switch s {
	case SourceTarget:
		return "target"
	case SourceMetric:
		return "metric"
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// Named is a target or a metric: a snake_case name and its fields.
type Named struct {
	Name   string
	Fields []Field
}

// DatumType is the type of a measurement's value.
type DatumType uint8

// Datum types. The numeric values are part of the binary encoding and of the
// timeseries key: never renumber them.
const (
	DatumBool DatumType = 1 + iota
	DatumI8
	DatumI16
	DatumI32
	DatumI64
	DatumU8
	DatumU16
	DatumU32
	DatumU64
	DatumF32
	DatumF64
	DatumString
	DatumBytes
	DatumCumulativeI64
	DatumCumulativeU64
	DatumCumulativeF32
	DatumCumulativeF64
	DatumHistogramI64
	DatumHistogramU64
	DatumHistogramF64
)

var datumTypeNames = [...]string{
	DatumBool: "bool", DatumI8: "i8", DatumI16: "i16", DatumI32: "i32", DatumI64: "i64",
	DatumU8: "u8", DatumU16: "u16", DatumU32: "u32", DatumU64: "u64",
	DatumF32: "f32", DatumF64: "f64", DatumString: "string", DatumBytes: "bytes",
	DatumCumulativeI64: "cumulative_i64", DatumCumulativeU64: "cumulative_u64",
	DatumCumulativeF32: "cumulative_f32", DatumCumulativeF64: "cumulative_f64",
	DatumHistogramI64: "histogram_i64", DatumHistogramU64: "histogram_u64",
	DatumHistogramF64: "histogram_f64",
}

// AllDatumTypes lists every datum type in numeric order.
func AllDatumTypes() []DatumType {
	out := make([]DatumType, 0, len(datumTypeNames)-1)
	for t := DatumBool; t <= DatumHistogramF64; t++ {
		out = append(out, t)
	}
	return out
}

// Valid reports whether t is a known datum type.
func (t DatumType) Valid() bool { return t >= DatumBool && t <= DatumHistogramF64 }

func (t DatumType) String() string {
	if t.Valid() {
		return datumTypeNames[t]
	}
	return fmt.Sprintf("datum_type(%d)", uint8(t))
}

// ParseDatumType is the inverse of DatumType.String.
func ParseDatumType(s string) (DatumType, error) {
	for t := DatumBool; t <= DatumHistogramF64; t++ {
		if datumTypeNames[t] == s {
			return t, nil
		}
	}
	return 0, fmt.Errorf("producerapi: unknown datum type %q", s)
}

// IsCumulative reports whether t is a cumulative counter.
func (t DatumType) IsCumulative() bool { return t >= DatumCumulativeI64 && t <= DatumCumulativeF64 }

// IsHistogram reports whether t is a histogram.
func (t DatumType) IsHistogram() bool { return t >= DatumHistogramI64 && t <= DatumHistogramF64 }

// HasStartTime reports whether datums of type t carry a start time.
func (t DatumType) HasStartTime() bool { return t.IsCumulative() || t.IsHistogram() }

// Datum is a measured value. Only the members selected by Type are
// meaningful:
//
//	bool                        Bool
//	i8..i64, cumulative_i64     Int
//	u8..u64, cumulative_u64     Uint
//	f32, cumulative_f32         F32
//	f64, cumulative_f64         F64
//	string                      Str
//	bytes                       Bytes
//	histogram_i64               HistI64
//	histogram_u64               HistU64
//	histogram_f64               HistF64
//
// StartTimeNs is set for cumulative and histogram types. A Missing datum
// carries only Type and StartTimeNs: the type and start it would have had.
type Datum struct {
	Type        DatumType
	Missing     bool
	StartTimeNs int64
	Bool        bool
	Int         int64
	Uint        uint64
	F32         float32
	F64         float64
	Str         string
	Bytes       []byte
	HistI64     *Histogram[int64]
	HistU64     *Histogram[uint64]
	HistF64     *Histogram[float64]
}

// Histogram is a distribution: Counts[i] samples fell in the bin that starts
// at Bins[i] (inclusive) and ends at Bins[i+1] (exclusive; the last bin is
// unbounded above). Bins are strictly increasing. Min, Max and Sum describe the
// samples counted; Sum wraps on overflow for integer types.
type Histogram[T int64 | uint64 | float64] struct {
	Bins   []T
	Counts []uint64
	Min    T
	Max    T
	Sum    T
}

// Sample is one measurement of one timeseries.
type Sample struct {
	Target      Named
	Metric      Named
	TimestampNs int64
	Datum       Datum
}

// TimeseriesName returns "target_name:metric_name".
func (s *Sample) TimeseriesName() string { return s.Target.Name + ":" + s.Metric.Name }
