package forwarder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	pa "github.com/holdfast/holdfast/producerapi"
)

// RejectedError marks a failure that retrying cannot fix: ClickHouse (or the
// client, converting a value) refused the data itself. The forwarder finds
// the offending records by bisection and quarantines them.
type RejectedError struct{ Err error }

func (e *RejectedError) Error() string { return "forwarder: data rejected: " + e.Err.Error() }
func (e *RejectedError) Unwrap() error { return e.Err }

// rejectedCodes are ClickHouse error codes that mean "this data is wrong".
// Everything else (network errors, timeouts, overload, missing tables,
// authentication) is transient and retried forever: quarantining good data
// because the server was unwell would lose it for no reason.
var rejectedCodes = map[int32]bool{
	6:   true, // CANNOT_PARSE_TEXT
	26:  true, // CANNOT_PARSE_QUOTED_STRING
	27:  true, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
	38:  true, // CANNOT_PARSE_DATE
	41:  true, // CANNOT_PARSE_DATETIME
	43:  true, // ILLEGAL_TYPE_OF_ARGUMENT
	53:  true, // TYPE_MISMATCH
	69:  true, // ARGUMENT_OUT_OF_BOUND
	70:  true, // CANNOT_CONVERT_TYPE
	72:  true, // CANNOT_PARSE_NUMBER
	117: true, // INCORRECT_DATA
	131: true, // TOO_LARGE_STRING_SIZE
	190: true, // SIZES_OF_ARRAYS_DOESNT_MATCH
	349: true, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
}

// IsRejected reports whether err means the data itself was refused.
func IsRejected(err error) bool {
	var rej *RejectedError
	if errors.As(err, &rej) {
		return true
	}
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && rejectedCodes[ex.Code]
}

// needsSchema reports whether err says a table or database is missing, so
// the schema should be ensured again before retrying (someone dropped it).
func needsSchema(err error) bool {
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && (ex.Code == 60 || ex.Code == 81) // UNKNOWN_TABLE, UNKNOWN_DATABASE
}

// batchRecord is one WAL record in a batch, decoded.
type batchRecord struct {
	index   uint64
	bytes   int
	samples []pa.Sample
	keys    []uint64 // TimeseriesKey of each sample
}

// writer turns records into INSERTs. It remembers which timeseries keys and
// schemas it has already written, so the fields and schema tables get a row
// per new timeseries rather than per sample. Replays after a restart write
// them again; the tables are ReplacingMergeTrees, so that is harmless.
type writer struct {
	conn        driver.Conn
	db          string
	timeout     time.Duration
	seenKeys    map[uint64]struct{}
	maxSeen     int
	seenSchemas map[string]struct{}
}

func newWriter(conn driver.Conn, db string, timeout time.Duration, maxSeen int) *writer {
	return &writer{conn: conn, db: db, timeout: timeout, maxSeen: maxSeen,
		seenKeys: make(map[uint64]struct{}), seenSchemas: make(map[string]struct{})}
}

// insert writes the records' samples: schemas and fields of new timeseries
// first, then measurements. Nothing is marked as seen unless all of it
// succeeded.
func (w *writer) insert(ctx context.Context, recs []batchRecord) error {
	var meas [pa.DatumHistogramF64 + 1]*measurementRows
	var fields [pa.FieldUUID + 1]*fieldRows
	schemas := &schemaRows{created: time.Now().UnixNano()}
	newKeys := map[uint64]struct{}{}
	newSchemas := map[string]struct{}{}
	for ri := range recs {
		r := &recs[ri]
		for si := range r.samples {
			s := &r.samples[si]
			key := r.keys[si]
			name := s.TimeseriesName()
			t := s.Datum.Type
			if meas[t] == nil {
				meas[t] = &measurementRows{t: t}
			}
			meas[t].add(name, key, s)
			if _, seen := w.seenKeys[key]; seen {
				continue
			}
			if _, dup := newKeys[key]; dup {
				continue
			}
			newKeys[key] = struct{}{}
			for _, group := range [][]pa.Field{s.Target.Fields, s.Metric.Fields} {
				for fi := range group {
					ft := group[fi].Value.Type
					if fields[ft] == nil {
						fields[ft] = &fieldRows{t: ft}
					}
					fields[ft].add(name, key, &group[fi])
				}
			}
			if _, seen := w.seenSchemas[name]; !seen {
				if _, dup := newSchemas[name]; !dup {
					newSchemas[name] = struct{}{}
					schemas.schemas = append(schemas.schemas, pa.SchemaOf(s))
				}
			}
		}
	}
	if len(schemas.schemas) > 0 {
		if err := w.send(ctx, "timeseries_schema", schemaColumns, schemas.columns()); err != nil {
			return err
		}
	}
	for _, f := range fields {
		if f != nil {
			if err := w.send(ctx, FieldsTable(f.t), fieldColumns, f.columns()); err != nil {
				return err
			}
		}
	}
	for _, m := range meas {
		if m != nil {
			if err := w.send(ctx, MeasurementsTable(m.t), measurementColumns(m.t), m.columns()); err != nil {
				return err
			}
		}
	}
	if len(w.seenKeys)+len(newKeys) > w.maxSeen {
		// Bounded memory: forget everything rather than grow. The cost is
		// one more fields row per timeseries, deduplicated by ClickHouse.
		clear(w.seenKeys)
	}
	for k := range newKeys {
		w.seenKeys[k] = struct{}{}
	}
	for n := range newSchemas {
		w.seenSchemas[n] = struct{}{}
	}
	return nil
}

// send runs one INSERT with columnar appends.
func (w *writer) send(ctx context.Context, table string, cols []string, data []any) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	q := fmt.Sprintf("INSERT INTO %s.%s (%s)", w.db, table, strings.Join(cols, ", "))
	b, err := w.conn.PrepareBatch(ctx, q)
	if err != nil {
		return fmt.Errorf("forwarder: preparing insert into %s: %w", table, err)
	}
	defer b.Close()
	for i, c := range data {
		if err := b.Column(i).Append(c); err != nil {
			return &RejectedError{Err: fmt.Errorf("column %s of %s: %w", cols[i], table, err)}
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("forwarder: inserting %d rows into %s: %w", b.Rows(), table, err)
	}
	return nil
}
