package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble"

	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
)

// Timeseries schemas are versioned (issue 8 item 2): a timeseries that gains
// or loses a field in a rolling upgrade is a new version, computed by every
// collector and producer the same way (producerapi's deterministic version of
// the field set), so nobody coordinates. The registry keeps every version,
// keyed by (timeseries name, version), and refuses only a contradiction: the
// same name and version with different fields or datum type.

// ErrSchemaConflict is wrapped when a reported schema contradicts a stored
// one of the same name and version (HTTP 409).
var ErrSchemaConflict = errors.New("registry: schema conflict")

type schemaKey struct {
	name    string
	version uint64 // wide enough for any width of TimeseriesSchema.Version
}

func keyOf(s *pa.TimeseriesSchema) schemaKey {
	return schemaKey{name: s.Name, version: uint64(s.Version)}
}

// The version is written with 10 digits (any uint32), so keys sort by name,
// then version.
func (k schemaKey) pebbleKey() []byte {
	return fmt.Appendf(nil, "%s%s\x00%010d", prefixSchema, k.name, k.version)
}

func (r *Registry) loadSchemas() error {
	// Keys written before versions (registry/schema/<name>) decode the same
	// way: the key is rebuilt from the stored value.
	if err := scan(r.db, prefixSchema, func(_, v []byte) error {
		var s pa.TimeseriesSchema
		if err := json.Unmarshal(v, &s); err != nil {
			return err
		}
		r.schemas[keyOf(&s)] = s
		return nil
	}); err != nil {
		return fmt.Errorf("registry: loading schemas: %w", err)
	}
	return nil
}

// SchemaConflictError lists the reported schemas that contradict stored
// ones; the others were stored.
type SchemaConflictError struct {
	Conflicts []string
}

func (e *SchemaConflictError) Error() string {
	return fmt.Sprintf("%v: %d reported schema(s) contradict stored ones of the same name and version (the others were stored): %s",
		ErrSchemaConflict, len(e.Conflicts), strings.Join(e.Conflicts, "; "))
}

func (e *SchemaConflictError) Unwrap() error { return ErrSchemaConflict }

// DefaultMaxSchemas bounds the schemas a registry keeps (Options.MaxSchemas):
// every (name, version) is kept in memory and reported by any collector, so
// without a bound a producer inventing field sets would grow it forever.
const DefaultMaxSchemas = 65_536

func (r *Registry) maxSchemas() int {
	if r.opts.MaxSchemas > 0 {
		return r.opts.MaxSchemas
	}
	return DefaultMaxSchemas
}

// maxSchemasPerReport bounds one POST; the client batches below it.
const maxSchemasPerReport = 10_000

// AddSchemas records timeseries schemas reported by producers or collectors.
// Every new (name, version) is stored; one that contradicts a stored schema
// of the same name and version, or that would take the registry past
// MaxSchemas, is refused with a *SchemaConflictError, and the rest are
// stored anyway (one bad report does not block the others).
func (r *Registry) AddSchemas(schemas []pa.TimeseriesSchema) error {
	if len(schemas) > maxSchemasPerReport {
		return invalid("%d schemas in one report; send at most %d at a time", len(schemas), maxSchemasPerReport)
	}
	for i := range schemas {
		if schemas[i].Name == "" || len(schemas[i].Name) > 512 {
			return invalid("schema %d: timeseries name must be 1-512 characters", i)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.begin()
	var conflicts []string
	fresh := map[schemaKey]pa.TimeseriesSchema{}
	for i := range schemas {
		s := schemas[i]
		k := keyOf(&s)
		known, ok := r.schemas[k]
		if !ok {
			known, ok = fresh[k]
		}
		if ok {
			if d := known.Diff(&s); d != "" {
				conflicts = append(conflicts, fmt.Sprintf("%s version %d: %s", s.Name, k.version, d))
			}
			continue
		}
		if len(r.schemas)+len(fresh) >= r.maxSchemas() {
			// Refused for good like a conflict (409): a collector does not
			// send it again, the operator sees it in the answer and logs.
			conflicts = append(conflicts, fmt.Sprintf("%s version %d: refused, the registry holds its maximum of %d schemas", s.Name, k.version, r.maxSchemas()))
			continue
		}
		s.Fields = slices.Clone(s.Fields)
		v, _ := json.Marshal(s)
		t.b.Set(k.pebbleKey(), v, nil)
		fresh[k] = s
	}
	if err := t.commit(); err != nil {
		return err
	}
	for k, s := range fresh {
		r.schemas[k] = s
	}
	if len(conflicts) > 0 {
		return &SchemaConflictError{Conflicts: conflicts}
	}
	return nil
}

// SchemaPage is one page of GET /v1/timeseries-schema.
type SchemaPage struct {
	Items         []pa.TimeseriesSchema `json:"items"`
	NextPageToken string                `json:"next_page_token,omitempty"` // "" on the last page
}

// ListSchemas returns up to limit schemas sorted by (name, version), after
// the page token.
func (r *Registry) ListSchemas(token string, limit int) (SchemaPage, error) {
	if limit <= 0 || limit > 10_000 {
		return SchemaPage{}, invalid("limit %d must be between 1 and 10000", limit)
	}
	lower, upper := state.PrefixBounds([]byte(prefixSchema))
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || !strings.HasPrefix(string(b), "schemas\x00") {
			return SchemaPage{}, invalid("malformed page token")
		}
		lower = append([]byte(prefixSchema+strings.TrimPrefix(string(b), "schemas\x00")), 0) // strictly after
	}
	it, err := r.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return SchemaPage{}, err
	}
	defer it.Close()
	page := SchemaPage{Items: []pa.TimeseriesSchema{}}
	var last []byte
	for it.First(); it.Valid(); it.Next() {
		if len(page.Items) == limit {
			page.NextPageToken = base64.RawURLEncoding.EncodeToString(append([]byte("schemas\x00"), last[len(prefixSchema):]...))
			break
		}
		var s pa.TimeseriesSchema
		if err := json.Unmarshal(it.Value(), &s); err != nil {
			return SchemaPage{}, fmt.Errorf("registry: stored schema %q: %w", it.Key(), err)
		}
		page.Items = append(page.Items, s)
		last = append(last[:0], it.Key()...)
	}
	return page, it.Error()
}

// Schemas lists every known timeseries schema version, sorted by name and
// version (for tests and small registries; HTTP pages through ListSchemas).
func (r *Registry) Schemas() []pa.TimeseriesSchema {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]pa.TimeseriesSchema, 0, len(r.schemas))
	for _, s := range r.schemas {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b pa.TimeseriesSchema) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return int(int64(a.Version) - int64(b.Version))
	})
	return out
}
