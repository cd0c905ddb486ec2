package producerapi

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// FieldSchema describes one field of a timeseries.
type FieldSchema struct {
	Name   string      `json:"name"`
	Type   FieldType   `json:"type"`
	Source FieldSource `json:"source"`
}

// TimeseriesSchema describes a timeseries: its fields (sorted by name) and
// its datum type. Version identifies the field set (SchemaVersion of the
// field names): a metric that gains or loses a field in a rolling upgrade is
// a new version of the same timeseries name, not a conflict, and collectors
// and the registry compute the same version without coordinating.
type TimeseriesSchema struct {
	Name      string        `json:"timeseries_name"`
	Fields    []FieldSchema `json:"fields"`
	DatumType DatumType     `json:"datum_type"`
	Version   uint32        `json:"version"`
}

// SchemaVersion returns the version of a timeseries schema with these field
// names: FNV-1a 32 over the names sorted bytewise, each followed by a 0 byte,
// with 0 mapped to 1 (0 is never a version). Field order does not matter. A
// golden test pins the values: they are stored in ClickHouse and sent to the
// registry, so they must never change.
func SchemaVersion(fieldNames []string) uint32 {
	names := slices.Clone(fieldNames)
	slices.Sort(names)
	return hashFieldNames(names, func(n string) string { return n })
}

// sampleSchemaVersion is SchemaVersion of a sample's field names, without
// allocating for up to 16 fields.
func sampleSchemaVersion(s *Sample) uint32 {
	var buf [16]*Field
	return hashFieldNames(sortedFields(s, buf[:0]), func(f *Field) string { return f.Name })
}

// hashFieldNames is the one implementation of the version hash, over items
// already sorted by name.
func hashFieldNames[T any](sorted []T, name func(T) string) uint32 {
	h := fnv32Offset
	for _, it := range sorted {
		h = h.str(name(it)).byte(0)
	}
	return h.version()
}

// fnv32 is FNV-1a 32, written out so hashing allocates nothing.
type fnv32 uint32

const (
	fnv32Offset fnv32 = 2166136261
	fnv32Prime        = 16777619
)

func (h fnv32) byte(b byte) fnv32 { return (h ^ fnv32(b)) * fnv32Prime }

func (h fnv32) str(s string) fnv32 {
	for i := 0; i < len(s); i++ {
		h = (h ^ fnv32(s[i])) * fnv32Prime
	}
	return h
}

func (h fnv32) version() uint32 {
	if h == 0 {
		return 1
	}
	return uint32(h)
}

// SchemaOf derives the schema of a sample's timeseries, version included.
func SchemaOf(s *Sample) TimeseriesSchema {
	fields := make([]FieldSchema, 0, len(s.Target.Fields)+len(s.Metric.Fields))
	for _, f := range s.Target.Fields {
		fields = append(fields, FieldSchema{Name: f.Name, Type: f.Value.Type, Source: SourceTarget})
	}
	for _, f := range s.Metric.Fields {
		fields = append(fields, FieldSchema{Name: f.Name, Type: f.Value.Type, Source: SourceMetric})
	}
	slices.SortFunc(fields, func(a, b FieldSchema) int { return strings.Compare(a.Name, b.Name) })
	return TimeseriesSchema{Name: s.TimeseriesName(), Fields: fields, DatumType: s.Datum.Type, Version: sampleSchemaVersion(s)}
}

// ID names the schema version uniquely: "<timeseries name>@<version>". Use it
// where schemas are keyed (a registry's store, a set of those reported):
// keying by name alone would keep one version of a metric and lose the others.
func (ts *TimeseriesSchema) ID() string { return fmt.Sprintf("%s@%d", ts.Name, ts.Version) }

// Equal reports whether two schemas describe the same timeseries shape.
func (ts *TimeseriesSchema) Equal(o *TimeseriesSchema) bool {
	return ts.Name == o.Name && ts.DatumType == o.DatumType && ts.Version == o.Version && slices.Equal(ts.Fields, o.Fields)
}

// ErrSchemaConflict is the sentinel every *SchemaConflictError wraps.
var ErrSchemaConflict = errors.New("producerapi: schema conflict")

// SchemaConflictError says how a sample disagrees with the schema already
// known for its timeseries.
type SchemaConflictError struct {
	Timeseries string
	Version    uint32 // the schema version (field set) both describe
	Conflict   string // e.g. `field "cpu" has type u32, schema says i64`
}

func (e *SchemaConflictError) Error() string {
	return fmt.Sprintf("producerapi: sample of %q conflicts with its schema version %d (same field names, different types): %s", e.Timeseries, e.Version, e.Conflict)
}

func (e *SchemaConflictError) Unwrap() error { return ErrSchemaConflict }

// Diff explains the first difference between a known schema and a new one,
// or returns "" when they agree.
func (ts *TimeseriesSchema) Diff(got *TimeseriesSchema) string {
	if ts.DatumType != got.DatumType {
		return fmt.Sprintf("datum type is %s, schema says %s", got.DatumType, ts.DatumType)
	}
	if ts.Version != got.Version {
		return fmt.Sprintf("version is %d, schema says %d", got.Version, ts.Version)
	}
	known := make(map[string]FieldSchema, len(ts.Fields))
	for _, f := range ts.Fields {
		known[f.Name] = f
	}
	for _, f := range got.Fields {
		k, ok := known[f.Name]
		switch {
		case !ok:
			return fmt.Sprintf("field %q is not in the schema", f.Name)
		case k.Type != f.Type:
			return fmt.Sprintf("field %q has type %s, schema says %s", f.Name, f.Type, k.Type)
		case k.Source != f.Source:
			return fmt.Sprintf("field %q is a %s field, schema says %s", f.Name, f.Source, k.Source)
		}
		delete(known, f.Name)
	}
	for _, f := range ts.Fields {
		if _, missing := known[f.Name]; missing {
			return fmt.Sprintf("field %q of the schema is missing", f.Name)
		}
	}
	return ""
}

// DefaultMaxSchemas bounds a SchemaRegistry made by NewSchemaRegistry. A
// schema costs a few hundred bytes (a name and its fields), so the bound is a
// few MiB at most; a fleet has far fewer (name, version) pairs than that, since
// both are fixed by the code of the producers, not by their data.
const DefaultMaxSchemas = 16_384

// SchemaRegistry remembers the schema of each (timeseries name, version)
// seen. It is safe for concurrent use. Its memory is bounded: once it holds
// its maximum, samples of further versions are still accepted but their
// schemas are not remembered (so not checked for conflicts, nor listed by
// Schemas); Overflowed counts them. Accepting is right: a version it cannot
// remember is not known to conflict, and refusing would lose good data.
type SchemaRegistry struct {
	max        int
	mu         sync.RWMutex
	schemas    map[SchemaKey]*TimeseriesSchema
	byKey      map[string]*TimeseriesSchema // the same by schemaByteKey, for SeriesKnownValid's allocation-free lookup
	overflowed uint64                       // guarded by mu
}

// SchemaKey is a schema version's identity, (timeseries name, version):
// a new field set is a new version. Key maps of schemas by it (keying by
// name alone keeps one version and loses the others).
type SchemaKey struct {
	Name    string
	Version uint32
}

// SchemaKeyOf returns the SchemaKey of a sample's timeseries.
func SchemaKeyOf(s *Sample) SchemaKey {
	return SchemaKey{Name: s.TimeseriesName(), Version: sampleSchemaVersion(s)}
}

// NewSchemaRegistry returns an empty registry bounded by DefaultMaxSchemas.
func NewSchemaRegistry() *SchemaRegistry { return NewSchemaRegistrySize(DefaultMaxSchemas) }

// NewSchemaRegistrySize returns an empty registry remembering at most max
// schemas (DefaultMaxSchemas if max < 1).
func NewSchemaRegistrySize(max int) *SchemaRegistry {
	if max < 1 {
		max = DefaultMaxSchemas
	}
	return &SchemaRegistry{max: max, schemas: make(map[SchemaKey]*TimeseriesSchema), byKey: make(map[string]*TimeseriesSchema)}
}

// Check admits a sample whose schema matches the known one for its name and
// version (its field set), records the schema of a new (name, version)
// (reporting added=true), and rejects a contradiction (same name and field
// names, different field types, sources or datum type) with a
// *SchemaConflictError.
func (r *SchemaRegistry) Check(s *Sample) (added bool, err error) {
	id := SchemaKeyOf(s)
	r.mu.RLock()
	known, ok := r.schemas[id]
	r.mu.RUnlock()
	if ok {
		if quickMatch(known, s) {
			return false, nil
		}
		got := SchemaOf(s)
		if d := known.Diff(&got); d != "" {
			return false, &SchemaConflictError{Timeseries: id.Name, Version: id.Version, Conflict: d}
		}
		return false, nil
	}
	got := SchemaOf(s)
	r.mu.Lock()
	defer r.mu.Unlock()
	if known, ok := r.schemas[id]; ok {
		if d := known.Diff(&got); d != "" {
			return false, &SchemaConflictError{Timeseries: id.Name, Version: id.Version, Conflict: d}
		}
		return false, nil
	}
	if len(r.schemas) >= r.max {
		r.overflowed++
		return false, nil
	}
	r.schemas[id] = &got
	r.byKey[schemaByteKey(id)] = &got
	return true, nil
}

// Overflowed returns how many samples were accepted without their schema
// being remembered because the registry was full.
func (r *SchemaRegistry) Overflowed() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.overflowed
}

// quickMatch checks a sample against a schema without allocating, for the
// common case where fields arrive in the same order every time.
func quickMatch(ts *TimeseriesSchema, s *Sample) bool {
	if ts.DatumType != s.Datum.Type || len(ts.Fields) != len(s.Target.Fields)+len(s.Metric.Fields) {
		return false
	}
	match := func(fs []Field, src FieldSource) bool {
		for _, f := range fs {
			i, ok := slices.BinarySearchFunc(ts.Fields, f.Name, func(a FieldSchema, n string) int { return strings.Compare(a.Name, n) })
			if !ok || ts.Fields[i].Type != f.Value.Type || ts.Fields[i].Source != src {
				return false
			}
		}
		return true
	}
	return match(s.Target.Fields, SourceTarget) && match(s.Metric.Fields, SourceMetric)
}

// Schemas returns a copy of every known schema, sorted by name and version.
func (r *SchemaRegistry) Schemas() []TimeseriesSchema {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]TimeseriesSchema, 0, len(r.schemas))
	for _, s := range r.schemas {
		c := *s
		c.Fields = slices.Clone(s.Fields)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b TimeseriesSchema) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return cmp.Compare(a.Version, b.Version)
	})
	return out
}

// SchemaVersionOf returns the schema version of a sample's timeseries
// (SchemaOf(s).Version) without allocating.
func SchemaVersionOf(s *Sample) uint32 { return sampleSchemaVersion(s) }
