package forwarder

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/holdfast/holdfast/internal/chbatch"
	pa "github.com/holdfast/holdfast/producerapi"
)

// RejectedError marks a failure that retrying cannot fix: ClickHouse
// refused the data itself (a client-side conversion error is not that: see
// ErrSchemaMismatch). The forwarder finds
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

// ErrSchemaMismatch marks an INSERT whose columns do not take the values
// this build sends: the table's layout is not the one this build made (a
// newer or older holdfast changed it, or someone altered it). That is our
// fault, not the data's: it is retried, loudly, with the schema ensured
// again, and never quarantines a record. The forwarder's columns are typed
// by this build, so a client-side conversion error can only mean this.
var ErrSchemaMismatch = errors.New("forwarder: table layout differs from this build's (schema drift); retrying, nothing quarantined")

// needsSchema reports whether err says a table or database is missing or
// not in this build's layout, so the schema should be ensured again before
// retrying (someone dropped or changed it).
func needsSchema(err error) bool {
	if errors.Is(err, ErrSchemaMismatch) {
		return true
	}
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && (ex.Code == 60 || ex.Code == 81) // UNKNOWN_TABLE, UNKNOWN_DATABASE
}

// writer turns row sets into INSERTs. It remembers which timeseries keys
// and schema versions it has already written, so the fields and schema tables
// get a row per new timeseries rather than per sample. Replays after a restart
// write them again; the tables are ReplacingMergeTrees, so that is harmless.
//
// With each key it remembers a fingerprint of the timeseries (a second,
// independent 64-bit hash of the bytes the key hashes), to detect two
// timeseries whose keys collide: see rowSet.add and DESIGN.md.
type writer struct {
	conn     driver.Conn
	db       string
	cluster  string   // "" or the cluster whose Distributed tables it inserts into
	seenKeys keyTable // key -> fingerprint (keytable.go)
	// seenEpoch numbers seenKeys' contents: it changes whenever seenKeys
	// is emptied, so a session entry that noted its key in seenKeys at
	// this epoch knows it still is (seenKeys only grows between). At
	// MaxUint8 it stops changing and the notes are no longer trusted,
	// until the forwarder clears every note and starts it over
	// (Forwarder.renewSeenEpoch).
	seenEpoch uint8
	maxSeen   int
	// seenRestarts counts the times seenKeys was full and started over
	// (shared by the writers of deliveries; a metric and a warning).
	seenRestarts *atomic.Uint64
	seenSchemas  map[pa.SchemaKey]struct{}
	names        interner
	seed         maphash.Seed
	scratch      []byte
	// keyOf hashes a timeseries' key bytes into its key:
	// pa.HashTimeseriesKeyBytes. Tests replace it to force collisions.
	keyOf func([]byte) uint64
	// deferSeen, when set, makes insertTokened leave seenKeys and
	// seenSchemas alone: the forwarder's delivery runs beside the Run
	// goroutine, which reads them, and marks a batch seen itself once the
	// delivery is joined (pipeline.go).
	deferSeen bool
	// bisected is set on a delivery's writer when ClickHouse rejected its
	// batch and it was split (pipeline.go).
	bisected bool
	// inflight holds, while a batch is being delivered, that batch's new
	// keys (read-only meanwhile): a timeseries of the next batch whose key
	// is there with another fingerprint is a collision.
	inflight map[uint64]uint32
	// fieldBlock is the rows of each block an INSERT into a fields table
	// is sent in (fieldBlockRows; tests make it small). A batch of new
	// timeseries has several fields rows per sample, and clickhouse-go
	// copies an INSERT's rows into columns it grows from empty: in one
	// block, a start's fields INSERTs were the largest transient allocation
	// of a delivery and a third of what the collector allocated in its
	// first 90 s (BENCHMARKS.md, "fields rows in blocks").
	fieldBlock int
	// fieldNames is where a fields INSERT's blocks get their name columns
	// written (fieldBlocks): shared, like batches, by the writers of
	// deliveries, which run one at a time, so it grows to one block once.
	// Set by newWriter; a writer made by hand for other INSERTs
	// (migrate.go) sends no fields rows.
	fieldNames *fieldNameColumns
	// batches keeps each measurements INSERT statement's clickhouse-go
	// batch for the next INSERT of it, so its columns are not allocated
	// again (internal/chbatch). Shared by the writers of deliveries, which
	// run one at a time; INSERTs with a deduplication token, and those into
	// schema and fields tables, do not use it (sendMeasurements).
	batches *chbatch.Pool
}

func newWriter(conn driver.Conn, db string, maxSeen int) *writer {
	w := &writer{conn: conn, db: db, maxSeen: maxSeen, seenEpoch: 1, seenRestarts: new(atomic.Uint64),
		seenSchemas: make(map[pa.SchemaKey]struct{}),
		names:       interner{max: 1 << 16}, seed: maphash.MakeSeed(), keyOf: pa.HashTimeseriesKeyBytes,
		fieldBlock: fieldBlockRows, fieldNames: &fieldNameColumns{}}
	// w.cluster is set once, before the first INSERT (New).
	w.batches = chbatch.NewPool(conn, func(ctx context.Context) context.Context { return insertContext(ctx, w.cluster) })
	return w
}

// collision is a sample refused because its timeseries key is taken by
// another timeseries.
type collision struct {
	index int // in the samples given to addSamples
	key   uint64
	name  string
}

// addSamples appends validated samples to rs and returns, appended to
// refused, the samples it did not add because their key collides with
// another timeseries'.
func (w *writer) addSamples(rs *rowSet, samples []pa.Sample, refused []collision) []collision {
	for i := range samples {
		s := &samples[i]
		w.scratch = pa.AppendTimeseriesKeyBytes(w.scratch[:0], s)
		key, fp := w.keyOf(w.scratch), fingerprintOf(w.seed, w.scratch)
		name := w.names.name(s.Target.Name, s.Metric.Name)
		if !rs.add(name, key, fp, s, w) {
			refused = append(refused, collision{index: i, key: key, name: name})
		}
	}
	return refused
}

// insert writes a row set: schemas and fields of new timeseries first, then
// measurements. Nothing is marked as seen unless all of it succeeded.
func (w *writer) insert(ctx context.Context, rs *rowSet) error {
	return w.insertTokened(ctx, rs, "")
}

// insertTokened is insert with, when token is not "", the INSERTs into
// measurements tables deduplicated by token+table (modern.go).
func (w *writer) insertTokened(ctx context.Context, rs *rowSet, token string) error {
	if len(rs.schemas) > 0 {
		if err := w.send(ctx, "timeseries_schema", schemaColumns, schemaColumnData(rs.schemas, time.Now().UnixNano())); err != nil {
			return err
		}
	}
	for _, f := range rs.fields {
		if f == nil || f.len() == 0 {
			continue
		}
		if err := w.sendFields(ctx, FieldsTable(f.t), f); err != nil {
			return err
		}
	}
	for _, m := range rs.meas {
		if m != nil && len(m.keys) > 0 {
			table, tok := MeasurementsTable(m.t), ""
			if token != "" {
				tok = token + table
			}
			if err := w.sendMeasurements(ctx, table, measurementColumns(m.t), m.columns(), tok); err != nil {
				return err
			}
		}
	}
	if !w.deferSeen {
		w.markSeen(rs)
	}
	return nil
}

// forgetSeen empties seenKeys, and with it every session entry's note that
// its key is there (sessEntry.seen).
func (w *writer) forgetSeen() {
	w.seenKeys.reset()
	if w.seenEpoch < math.MaxUint8 {
		w.seenEpoch++
	}
}

// markSeen remembers rs's keys and schemas as written, and returns the
// written-key set's restart count when it had to start over (0 if not).
func (w *writer) markSeen(rs *rowSet) (restarts uint64) {
	if w.seenKeys.len()+len(rs.newKeys) > w.maxSeen {
		// Bounded memory: forget everything rather than grow. The cost is
		// one more fields row per timeseries, deduplicated by ClickHouse,
		// and collisions with forgotten keys going unseen (DESIGN.md).
		w.forgetSeen()
		restarts = w.seenRestarts.Add(1)
	}
	for k, fp := range rs.newKeys {
		w.seenKeys.put(k, fp)
	}
	if len(w.seenSchemas)+len(rs.newSchemas) > w.maxSeen {
		clear(w.seenSchemas)
	}
	for n := range rs.newSchemas {
		w.seenSchemas[n] = struct{}{}
	}
	return restarts
}

// forDelivery returns a writer for a delivery running beside the Run
// goroutine: the same connection, database, key function and (read-only)
// caches, its own scratch space and name interner.
func (w *writer) forDelivery() *writer {
	d := *w
	d.scratch = nil
	d.names = interner{max: 1 << 16}
	d.inflight = nil
	d.bisected = false
	return &d
}

// interner shares timeseries name strings between rows: decoding allocates
// a name per sample, and a batch would otherwise keep them all alive. It
// holds at most max names, then starts over.
type interner struct {
	max int
	m   map[[2]string]string
}

func (in *interner) name(target, metric string) string {
	k := [2]string{target, metric}
	if n, ok := in.m[k]; ok {
		return n
	}
	if in.m == nil || len(in.m) >= in.max {
		in.m = make(map[[2]string]string)
	}
	n := target + ":" + metric
	in.m[[2]string{n[:len(target)], n[len(target)+1:]}] = n
	return n
}

// send runs one INSERT with columnar appends on a batch of its own: the
// schema and fields tables, written in bulk only while a fleet's series are
// new (a start, or every producer's new session), when keeping their
// batches would hold a dozen tables' columns at their largest for good.
//
// The batch gets ctx itself, not a context with its own deadline: in
// clickhouse-go v2.50.0, Send starts a goroutine that closes the TCP
// connection when the context ends, and stopping it does not wait for it. A
// per-insert context cancelled right after Send can therefore close the
// connection after it went back to the pool, and the next insert on it fails
// with "use of closed network connection". The insert's deadline comes from
// the connection's read and write timeouts instead (Dial sets them).
func (w *writer) send(ctx context.Context, table string, cols []string, data []any) error {
	q := insertStatement(w.db, table, cols)
	return w.insertError(table, cols, chbatch.SendOnce(insertContext(ctx, w.cluster), w.conn, q, data))
}

// fieldBlockRows is the block an INSERT into a fields table is sent in: its
// columns grow to this many rows and are reused for the next block of the
// INSERT, where one block of a start's 100,000 or more fields rows grew
// them through every size below that. The server squashes the blocks of
// an INSERT into one part, as it does one block (chbatch.SendBlocks).
const fieldBlockRows = 16_384

// sendFields runs one INSERT into a fields table, in blocks of fieldBlock
// rows. Fields rows are idempotent (ReplacingMergeTrees), so a failure
// after some blocks were sent is retried whole, like any failed INSERT.
func (w *writer) sendFields(ctx context.Context, table string, f *fieldRows) error {
	q := insertStatement(w.db, table, fieldColumns)
	f.sortRows()
	rows := &fieldBlocks{f: f, out: w.fieldNames, values: reflect.ValueOf(f.values())}
	err := chbatch.SendBlocks(insertContext(ctx, w.cluster), w.conn, q, rows, w.fieldBlock)
	w.fieldNames.release()
	return w.insertError(table, fieldColumns, err)
}

// sendMeasurements runs one INSERT into a measurements table, on the
// statement's kept batch (internal/chbatch): every delivery writes these,
// and their columns were half of what the collector allocated. With token
// set (modern servers only: modern.go) the batch is prepared afresh: a kept
// batch would be sent again with the token it was prepared with, and the
// server would drop the new rows as the old ones' duplicates.
func (w *writer) sendMeasurements(ctx context.Context, table string, cols []string, data []any, token string) error {
	q := insertStatement(w.db, table, cols)
	if token != "" {
		return w.insertError(table, cols, chbatch.SendOnce(tokenContext(ctx, w.cluster, token), w.conn, q, data))
	}
	err := w.batches.Send(ctx, q, data)
	var e *chbatch.Error
	if errors.As(err, &e) && e.Reused && IsRejected(err) {
		// The kept block names the column types it was prepared with; the
		// server may have refused those (a table altered since), where a
		// fresh batch is refused on the client as ErrSchemaMismatch, which
		// is retried and never quarantined. Ask again before the data is
		// judged: a refusal of a fresh batch is about the data.
		err = chbatch.SendOnce(insertContext(ctx, w.cluster), w.conn, q, data)
	}
	return w.insertError(table, cols, err)
}

func insertStatement(db, table string, cols []string) string {
	return fmt.Sprintf("INSERT INTO %s.%s (%s)", db, table, strings.Join(cols, ", "))
}

// insertError says which INSERT failed and how: a column that did not take
// this build's values is ErrSchemaMismatch.
func (w *writer) insertError(table string, cols []string, err error) error {
	var e *chbatch.Error
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &e):
		return fmt.Errorf("forwarder: inserting into %s: %w", table, err)
	case e.Stage == chbatch.StagePrepare:
		return fmt.Errorf("forwarder: preparing insert into %s: %w", table, e.Err)
	case e.Stage == chbatch.StageAppend:
		name := fmt.Sprint(e.Column)
		if e.Column < len(cols) {
			name = cols[e.Column]
		}
		return fmt.Errorf("%w: column %s of %s.%s: %w", ErrSchemaMismatch, name, w.db, table, e.Err)
	default:
		return fmt.Errorf("forwarder: inserting %d rows into %s: %w", e.Rows, table, e.Err)
	}
}

// Inserter writes samples straight into ClickHouse with the forwarder's
// columnar INSERTs, bypassing WAL, checkpoint and quarantine: the
// direct-insert baseline the benchmarks compare the forwarder with, and a tool
// for backfills. Like the forwarder it writes fields and schemas once per
// timeseries. The schema must exist (EnsureSchema). Not safe for concurrent
// use.
type Inserter struct {
	w  *writer
	rs *rowSet // reused across Inserts, as the forwarder reuses its batch's
}

// NewInserter returns an Inserter into database db.
func NewInserter(conn driver.Conn, db string) *Inserter {
	return &Inserter{w: newWriter(conn, db, 1<<18), rs: newRowSet()}
}

// Insert validates nothing and inserts samples as one batch. A transient
// failure is retried twice (rows inserted twice are deduplicated by the
// tables); a rejection is returned at once. Samples whose timeseries key
// collides with another timeseries' are left out, and reported in an error
// wrapping ErrKeyCollision once the rest is in.
func (in *Inserter) Insert(ctx context.Context, samples []pa.Sample) error {
	rs := in.rs
	rs.reset()
	refused := in.w.addSamples(rs, samples, nil)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = in.w.insert(ctx, rs); err == nil || IsRejected(err) || ctx.Err() != nil {
			break
		}
	}
	if err == nil && len(refused) > 0 {
		c := refused[0]
		err = fmt.Errorf("%w: %d samples left out, the first of %s with key %#016x", ErrKeyCollision, len(refused), c.name, c.key)
	}
	return err
}
