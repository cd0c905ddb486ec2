package producerapi

import (
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
// its datum type. Version is the schema's version, starting at 1.
type TimeseriesSchema struct {
	Name      string        `json:"timeseries_name"`
	Fields    []FieldSchema `json:"fields"`
	DatumType DatumType     `json:"datum_type"`
	Version   uint16        `json:"version"`
}

// SchemaOf derives the schema of a sample's timeseries.
func SchemaOf(s *Sample) TimeseriesSchema {
	fields := make([]FieldSchema, 0, len(s.Target.Fields)+len(s.Metric.Fields))
	for _, f := range s.Target.Fields {
		fields = append(fields, FieldSchema{Name: f.Name, Type: f.Value.Type, Source: SourceTarget})
	}
	for _, f := range s.Metric.Fields {
		fields = append(fields, FieldSchema{Name: f.Name, Type: f.Value.Type, Source: SourceMetric})
	}
	slices.SortFunc(fields, func(a, b FieldSchema) int { return strings.Compare(a.Name, b.Name) })
	return TimeseriesSchema{Name: s.TimeseriesName(), Fields: fields, DatumType: s.Datum.Type, Version: 1}
}

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
	Conflict   string // e.g. `field "cpu" has type u32, schema says i64`
}

func (e *SchemaConflictError) Error() string {
	return fmt.Sprintf("producerapi: sample of %q conflicts with its schema: %s", e.Timeseries, e.Conflict)
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

// SchemaRegistry remembers the first schema seen for each timeseries name.
// It is safe for concurrent use. Its memory grows with the number of distinct
// timeseries names (not timeseries), which is small and fixed by the code of
// the producers.
type SchemaRegistry struct {
	mu      sync.RWMutex
	schemas map[string]*TimeseriesSchema
}

// NewSchemaRegistry returns an empty registry.
func NewSchemaRegistry() *SchemaRegistry {
	return &SchemaRegistry{schemas: make(map[string]*TimeseriesSchema)}
}

// Check admits a sample whose schema matches the known one, records the schema
// of a new timeseries name (reporting added=true), and rejects a conflict
// with a *SchemaConflictError.
func (r *SchemaRegistry) Check(s *Sample) (added bool, err error) {
	name := s.TimeseriesName()
	r.mu.RLock()
	known, ok := r.schemas[name]
	r.mu.RUnlock()
	if ok {
		if quickMatch(known, s) {
			return false, nil
		}
		got := SchemaOf(s)
		if d := known.Diff(&got); d != "" {
			return false, &SchemaConflictError{Timeseries: name, Conflict: d}
		}
		return false, nil
	}
	got := SchemaOf(s)
	r.mu.Lock()
	defer r.mu.Unlock()
	if known, ok := r.schemas[name]; ok {
		if d := known.Diff(&got); d != "" {
			return false, &SchemaConflictError{Timeseries: name, Conflict: d}
		}
		return false, nil
	}
	r.schemas[name] = &got
	return true, nil
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

// Schemas returns a copy of every known schema, sorted by name.
func (r *SchemaRegistry) Schemas() []TimeseriesSchema {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]TimeseriesSchema, 0, len(r.schemas))
	for _, s := range r.schemas {
		c := *s
		c.Fields = slices.Clone(s.Fields)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b TimeseriesSchema) int { return strings.Compare(a.Name, b.Name) })
	return out
}
