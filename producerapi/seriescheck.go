package producerapi

import (
	"bytes"
	"encoding/binary"
	"math"
)

// SeriesKnownValid reports, without allocating, that a series entry of a
// version 2 block (SeriesView.Raw) passes Validate with lim and matches a
// schema reg already holds, exactly as Validate and reg.Check of a sample of
// that series would find. False means only "not shown here": the entry may
// be invalid, conflict, have a schema reg does not hold yet, or be unusual
// (more than 64 fields, a very long name); check it the allocating way then
// (DecodeSeries, Validate, SchemaRegistry.Check), which also gives the
// reason. It never says true for a series those would refuse.
func SeriesKnownValid(raw []byte, lim Limits, reg *SchemaRegistry) bool {
	lim = lim.withDefaults()
	var fields [64]rawField
	c := rawCursor{b: raw}
	tname := c.str()
	n, ok := c.fields(fields[:], 0, SourceTarget, &lim)
	if !ok {
		return false
	}
	mname := c.str()
	n, ok = c.fields(fields[:], n, SourceMetric, &lim)
	if !ok || c.bad || len(c.b) != 1 {
		return false
	}
	dt := DatumType(c.b[0])
	if !dt.Valid() || n > lim.MaxFields || !validNameBytes(tname, lim.MaxNameLen) || !validNameBytes(mname, lim.MaxNameLen) {
		return false
	}
	fs := fields[:n]
	// Sort by name (insertion sort: a handful of fields, no allocation);
	// names must be unique across target and metric.
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && bytes.Compare(fs[j-1].name, fs[j].name) > 0; j-- {
			fs[j-1], fs[j] = fs[j], fs[j-1]
		}
	}
	for i := 1; i < len(fs); i++ {
		if bytes.Equal(fs[i-1].name, fs[i].name) {
			return false
		}
	}
	// The schema key, as SchemaKeyOf builds it: "target:metric" and the
	// version of the sorted field names.
	h := fnv32Offset
	for i := range fs {
		h = h.bytes(fs[i].name).byte(0)
	}
	var kb [320]byte
	if len(tname)+1+len(mname)+4 > len(kb) {
		return false
	}
	key := append(append(append(kb[:0], tname...), ':'), mname...)
	key = binary.LittleEndian.AppendUint32(key, h.version())
	if reg == nil {
		return false
	}
	reg.mu.RLock()
	ts := reg.byKey[string(key)] // no allocation for the lookup
	reg.mu.RUnlock()
	if ts == nil || ts.DatumType != dt || len(ts.Fields) != len(fs) {
		return false
	}
	for i := range fs {
		f := &ts.Fields[i]
		if f.Name != string(fs[i].name) || f.Type != fs[i].typ || f.Source != fs[i].src {
			return false
		}
	}
	return true
}

// schemaByteKey is the key of SchemaRegistry.byKey: the timeseries name and
// the version's four little-endian bytes.
func schemaByteKey(id SchemaKey) string {
	return string(binary.LittleEndian.AppendUint32([]byte(id.Name), id.Version))
}

func (h fnv32) bytes(b []byte) fnv32 {
	for _, c := range b {
		h = (h ^ fnv32(c)) * fnv32Prime
	}
	return h
}

type rawField struct {
	name []byte
	typ  FieldType
	src  FieldSource
}

// rawCursor reads an entry the scanner already checked; any surprise sets
// bad.
type rawCursor struct {
	b   []byte
	bad bool
}

func (c *rawCursor) uvarint() uint64 {
	if len(c.b) > 0 && c.b[0] < 0x80 { // most are one byte
		v := c.b[0]
		c.b = c.b[1:]
		return uint64(v)
	}
	v, n := binary.Uvarint(c.b)
	if n <= 0 {
		c.bad = true
		return 0
	}
	c.b = c.b[n:]
	return v
}

func (c *rawCursor) varint() int64 {
	v, n := binary.Varint(c.b)
	if n <= 0 {
		c.bad = true
		return 0
	}
	c.b = c.b[n:]
	return v
}

func (c *rawCursor) fixed(n uint64) []byte {
	if c.bad || uint64(len(c.b)) < n {
		c.bad = true
		return nil
	}
	out := c.b[:n]
	c.b = c.b[n:]
	return out
}

func (c *rawCursor) str() []byte { return c.fixed(c.uvarint()) }

// fields reads a fields list into dst from n on, checking each field as
// Validate does (its name's uniqueness is checked later), and returns the
// new count.
func (c *rawCursor) fields(dst []rawField, n int, src FieldSource, lim *Limits) (int, bool) {
	count := c.uvarint()
	if c.bad || count > uint64(len(dst)-n) {
		return n, false
	}
	for k := uint64(0); k < count; k++ {
		name := c.str()
		t := c.fixed(1)
		if c.bad || !validNameBytes(name, lim.MaxNameLen) {
			return n, false
		}
		ft := FieldType(t[0])
		switch ft {
		case FieldString:
			if len(c.str()) > lim.MaxFieldStringLen {
				return n, false
			}
		case FieldBool:
			if b := c.fixed(1); b != nil && b[0] > 1 {
				return n, false
			}
		case FieldI8, FieldI16, FieldI32, FieldI64:
			v := c.varint()
			if (ft == FieldI8 && (v < math.MinInt8 || v > math.MaxInt8)) ||
				(ft == FieldI16 && (v < math.MinInt16 || v > math.MaxInt16)) ||
				(ft == FieldI32 && (v < math.MinInt32 || v > math.MaxInt32)) {
				return n, false
			}
		case FieldU8, FieldU16, FieldU32, FieldU64:
			v := c.uvarint()
			if (ft == FieldU8 && v > math.MaxUint8) || (ft == FieldU16 && v > math.MaxUint16) || (ft == FieldU32 && v > math.MaxUint32) {
				return n, false
			}
		case FieldIPAddr:
			l := c.fixed(1)
			if l == nil || (l[0] != 4 && l[0] != 16) {
				return n, false
			}
			c.fixed(uint64(l[0])) // 4 or 16 bytes: always a valid, zoneless address
		case FieldUUID:
			c.fixed(16)
		default:
			return n, false
		}
		if c.bad {
			return n, false
		}
		dst[n] = rawField{name: name, typ: ft, src: src}
		n++
	}
	return n, true
}

// validNameBytes is ValidateName(string(b), maxLen) == nil, without the
// string.
func validNameBytes(b []byte, maxLen int) bool {
	if len(b) == 0 || len(b) > maxLen || b[0] < 'a' || b[0] > 'z' || b[len(b)-1] == '_' {
		return false
	}
	for i, c := range b {
		if !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') {
			return false
		}
		if c == '_' && b[i+1] == '_' {
			return false
		}
	}
	return true
}
