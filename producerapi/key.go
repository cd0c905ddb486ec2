package producerapi

import (
	"encoding/binary"
	"slices"
	"strings"
)

// TimeseriesKey returns the stable 64-bit identity of the sample's timeseries:
// FNV-1a 64 over this byte string (all integers little-endian):
//
//	u32 len(name) | name                    name = "target_name:metric_name"
//	u32 number of fields
//	per field, sorted by name (bytewise):
//	  u32 len(field name) | field name
//	  u8  field type                        FieldType numbering
//	  value:
//	    string   u32 len | bytes
//	    bool     u8 0 or 1
//	    i8..i64  i64 (sign-extended)
//	    u8..u64  u64 (zero-extended)
//	    ip_addr  u8 4 | 4 bytes, or u8 6 | 16 bytes
//	    uuid     16 bytes
//	u8  datum type                          DatumType numbering
//
// Target and metric fields are hashed together: names are unique across both.
// The value does not depend on field order. A golden test pins it.
func TimeseriesKey(s *Sample) uint64 {
	// One encoder (AppendTimeseriesKeyBytes) for the key and the
	// forwarder's collision fingerprint, so they can never disagree. The
	// buffer stays on the stack (the encoder's result does not escape):
	// no allocation unless a timeseries' key bytes outgrow it.
	var buf [512]byte
	return HashTimeseriesKeyBytes(AppendTimeseriesKeyBytes(buf[:0], s))
}

func compareFieldNames(a, b *Field) int { return strings.Compare(a.Name, b.Name) }

// sortedFields appends pointers to the sample's target and metric fields to
// dst, sorted by name.
func sortedFields(s *Sample, dst []*Field) []*Field {
	for i := range s.Target.Fields {
		dst = append(dst, &s.Target.Fields[i])
	}
	for i := range s.Metric.Fields {
		dst = append(dst, &s.Metric.Fields[i])
	}
	if !slices.IsSortedFunc(dst, compareFieldNames) {
		slices.SortFunc(dst, compareFieldNames)
	}
	return dst
}

// fnv64 is FNV-1a 64, written out so hashing allocates nothing (hash/fnv's
// Hash64 is an interface value).
type fnv64 uint64

const (
	fnvOffset fnv64 = 14695981039346656037
	fnvPrime        = 1099511628211
)

func (h fnv64) bytes(b []byte) fnv64 {
	for _, c := range b {
		h = (h ^ fnv64(c)) * fnvPrime
	}
	return h
}

// AppendTimeseriesKeyBytes appends to dst the byte string TimeseriesKey
// hashes (see there), so a caller can hash it a second way:
// HashTimeseriesKeyBytes of it equals TimeseriesKey. The forwarder uses a
// second, independent hash of it to detect two timeseries whose keys collide.
func AppendTimeseriesKeyBytes(dst []byte, s *Sample) []byte {
	var buf [16]*Field
	fields := sortedFields(s, buf[:0])
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s.Target.Name)+1+len(s.Metric.Name)))
	dst = append(append(append(dst, s.Target.Name...), ':'), s.Metric.Name...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(fields)))
	for _, f := range fields {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(f.Name)))
		dst = append(append(dst, f.Name...), byte(f.Value.Type))
		v := &f.Value
		switch v.Type {
		case FieldString:
			dst = binary.LittleEndian.AppendUint32(dst, uint32(len(v.Str)))
			dst = append(dst, v.Str...)
		case FieldBool:
			if v.Bool {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		case FieldI8, FieldI16, FieldI32, FieldI64:
			dst = binary.LittleEndian.AppendUint64(dst, uint64(v.Int))
		case FieldU8, FieldU16, FieldU32, FieldU64:
			dst = binary.LittleEndian.AppendUint64(dst, v.Uint)
		case FieldIPAddr:
			if v.IP.Is4() {
				a := v.IP.As4()
				dst = append(append(dst, 4), a[:]...)
			} else {
				a := v.IP.As16()
				dst = append(append(dst, 6), a[:]...)
			}
		case FieldUUID:
			dst = append(dst, v.UUID[:]...)
		}
	}
	return append(dst, byte(s.Datum.Type))
}

// HashTimeseriesKeyBytes is FNV-1a 64 of b: TimeseriesKey of the sample
// whose AppendTimeseriesKeyBytes is b.
func HashTimeseriesKeyBytes(b []byte) uint64 { return uint64(fnvOffset.bytes(b)) }
