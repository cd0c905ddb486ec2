package producerapi

import (
	"errors"
	"fmt"
	"math"
)

// Limits bound what a sample may contain. The zero value of a field means
// "use the default".
type Limits struct {
	MaxNameLen        int // target, metric and field names; default 128
	MaxFields         int // target and metric fields together; default 64
	MaxFieldStringLen int // a string field value; default 1024
	MaxDatumBytes     int // a string or bytes datum; default 64 KiB
	MaxHistogramBins  int // default 4096
}

// DefaultLimits are the limits used when none are given.
var DefaultLimits = Limits{
	MaxNameLen:        128,
	MaxFields:         64,
	MaxFieldStringLen: 1024,
	MaxDatumBytes:     64 << 10,
	MaxHistogramBins:  4096,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxNameLen > 0 {
		d.MaxNameLen = l.MaxNameLen
	}
	if l.MaxFields > 0 {
		d.MaxFields = l.MaxFields
	}
	if l.MaxFieldStringLen > 0 {
		d.MaxFieldStringLen = l.MaxFieldStringLen
	}
	if l.MaxDatumBytes > 0 {
		d.MaxDatumBytes = l.MaxDatumBytes
	}
	if l.MaxHistogramBins > 0 {
		d.MaxHistogramBins = l.MaxHistogramBins
	}
	return d
}

// ErrInvalid is the sentinel every validation error wraps.
var ErrInvalid = errors.New("producerapi: invalid sample")

// ValidationError says what is wrong with a sample and where.
type ValidationError struct {
	Timeseries string // as given, possibly invalid
	Part       string // e.g. "target name", "field \"cpu\"", "histogram"
	Reason     string
}

func (e *ValidationError) Error() string {
	name := e.Timeseries
	if name == "" || name == ":" {
		name = "<unnamed>"
	}
	return fmt.Sprintf("producerapi: invalid sample of %q: %s: %s", name, e.Part, e.Reason)
}

func (e *ValidationError) Unwrap() error { return ErrInvalid }

// ValidateName checks that s is lowercase snake_case: it starts with a letter,
// holds only [a-z0-9_], has no doubled or trailing underscore, and is at most
// maxLen bytes.
func ValidateName(s string, maxLen int) error {
	switch {
	case s == "":
		return errors.New("empty name")
	case len(s) > maxLen:
		return fmt.Errorf("name of %d bytes exceeds the limit of %d", len(s), maxLen)
	case s[0] < 'a' || s[0] > 'z':
		return fmt.Errorf("name %q must start with a lowercase letter", s)
	case s[len(s)-1] == '_':
		return fmt.Errorf("name %q must not end with an underscore", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
		if !ok {
			return fmt.Errorf("name %q has character %q: only a-z, 0-9 and _ are allowed", s, c)
		}
		if c == '_' && s[i+1] == '_' {
			return fmt.Errorf("name %q has a doubled underscore", s)
		}
	}
	return nil
}

// Validate checks a sample against the limits (zero Limits means defaults).
func Validate(s *Sample, lim Limits) error {
	lim = lim.withDefaults()
	bad := func(part, format string, args ...any) error {
		return &ValidationError{Timeseries: s.TimeseriesName(), Part: part, Reason: fmt.Sprintf(format, args...)}
	}
	if err := ValidateName(s.Target.Name, lim.MaxNameLen); err != nil {
		return bad("target name", "%v", err)
	}
	if err := ValidateName(s.Metric.Name, lim.MaxNameLen); err != nil {
		return bad("metric name", "%v", err)
	}
	if n := len(s.Target.Fields) + len(s.Metric.Fields); n > lim.MaxFields {
		return bad("fields", "%d fields exceed the limit of %d", n, lim.MaxFields)
	}
	for gi, group := range [...][]Field{s.Target.Fields, s.Metric.Fields} {
		for i := range group {
			f := &group[i]
			if err := ValidateName(f.Name, lim.MaxNameLen); err != nil {
				return bad("field name", "%v", err)
			}
			// Quadratic, but over at most MaxFields names and without
			// allocating: cheaper than a map for the usual handful.
			if hasField(group[:i], f.Name) || (gi == 1 && hasField(s.Target.Fields, f.Name)) {
				return bad(fmt.Sprintf("field %q", f.Name), "appears more than once (names are unique across target and metric)")
			}
			if err := validateFieldValue(f.Value, lim); err != nil {
				return bad(fmt.Sprintf("field %q", f.Name), "%v", err)
			}
		}
	}
	if err := validateDatum(&s.Datum, lim); err != nil {
		return bad("datum", "%v", err)
	}
	return nil
}

func hasField(fields []Field, name string) bool {
	for i := range fields {
		if fields[i].Name == name {
			return true
		}
	}
	return false
}

func validateFieldValue(v FieldValue, lim Limits) error {
	switch v.Type {
	case FieldString:
		if len(v.Str) > lim.MaxFieldStringLen {
			return fmt.Errorf("string of %d bytes exceeds the limit of %d", len(v.Str), lim.MaxFieldStringLen)
		}
	case FieldI8:
		return intRange(v.Int, math.MinInt8, math.MaxInt8)
	case FieldI16:
		return intRange(v.Int, math.MinInt16, math.MaxInt16)
	case FieldI32:
		return intRange(v.Int, math.MinInt32, math.MaxInt32)
	case FieldU8:
		return uintRange(v.Uint, math.MaxUint8)
	case FieldU16:
		return uintRange(v.Uint, math.MaxUint16)
	case FieldU32:
		return uintRange(v.Uint, math.MaxUint32)
	case FieldIPAddr:
		if !v.IP.IsValid() {
			return errors.New("invalid IP address")
		}
		if v.IP.Zone() != "" {
			return errors.New("IP address with a zone is not allowed")
		}
	case FieldBool, FieldI64, FieldU64, FieldUUID:
	default:
		return fmt.Errorf("unknown field type %d", uint8(v.Type))
	}
	return nil
}

func intRange(v, lo, hi int64) error {
	if v < lo || v > hi {
		return fmt.Errorf("value %d is outside [%d, %d]", v, lo, hi)
	}
	return nil
}

func uintRange(v, hi uint64) error {
	if v > hi {
		return fmt.Errorf("value %d exceeds %d", v, hi)
	}
	return nil
}

func validateDatum(d *Datum, lim Limits) error {
	if !d.Type.Valid() {
		return fmt.Errorf("unknown datum type %d", uint8(d.Type))
	}
	if !d.Type.HasStartTime() && d.StartTimeNs != 0 {
		return fmt.Errorf("%s datum must not have a start time", d.Type)
	}
	if d.Missing {
		return nil
	}
	switch d.Type {
	case DatumI8:
		return intRange(d.Int, math.MinInt8, math.MaxInt8)
	case DatumI16:
		return intRange(d.Int, math.MinInt16, math.MaxInt16)
	case DatumI32:
		return intRange(d.Int, math.MinInt32, math.MaxInt32)
	case DatumU8:
		return uintRange(d.Uint, math.MaxUint8)
	case DatumU16:
		return uintRange(d.Uint, math.MaxUint16)
	case DatumU32:
		return uintRange(d.Uint, math.MaxUint32)
	case DatumString:
		if len(d.Str) > lim.MaxDatumBytes {
			return fmt.Errorf("string of %d bytes exceeds the limit of %d", len(d.Str), lim.MaxDatumBytes)
		}
	case DatumBytes:
		if len(d.Bytes) > lim.MaxDatumBytes {
			return fmt.Errorf("%d bytes exceed the limit of %d", len(d.Bytes), lim.MaxDatumBytes)
		}
	case DatumHistogramI64:
		if d.HistI64 == nil {
			return errors.New("histogram_i64 datum without a histogram")
		}
		return validateHistogram(d.HistI64, lim, func(a, b int64) bool { return a < b })
	case DatumHistogramU64:
		if d.HistU64 == nil {
			return errors.New("histogram_u64 datum without a histogram")
		}
		return validateHistogram(d.HistU64, lim, func(a, b uint64) bool { return a < b })
	case DatumHistogramF64:
		if d.HistF64 == nil {
			return errors.New("histogram_f64 datum without a histogram")
		}
		for _, b := range d.HistF64.Bins {
			if math.IsNaN(b) {
				return errors.New("histogram has a NaN bin")
			}
		}
		return validateHistogram(d.HistF64, lim, func(a, b float64) bool { return a < b })
	}
	return nil
}

func validateHistogram[T int64 | uint64 | float64](h *Histogram[T], lim Limits, less func(a, b T) bool) error {
	if len(h.Bins) == 0 {
		return errors.New("histogram has no bins")
	}
	if len(h.Bins) > lim.MaxHistogramBins {
		return fmt.Errorf("histogram has %d bins, more than the limit of %d", len(h.Bins), lim.MaxHistogramBins)
	}
	if len(h.Counts) != len(h.Bins) {
		return fmt.Errorf("histogram has %d bins but %d counts", len(h.Bins), len(h.Counts))
	}
	for i := 1; i < len(h.Bins); i++ {
		if !less(h.Bins[i-1], h.Bins[i]) {
			return fmt.Errorf("histogram bins are not strictly increasing at bin %d", i)
		}
	}
	return nil
}
