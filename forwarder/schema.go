package forwarder

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	pa "github.com/holdfast/holdfast/producerapi"
)

// SchemaVersion is the newest schema this build creates and writes.
//
//	1  the first layout
//	2  cumulative and histogram tables sort by start_time_ns too (a counter
//	   reset at the same timestamp is a different sample, not a replacement);
//	   timeseries_schema.version is UInt32, the field-set version of
//	   producerapi.SchemaVersion, and the table holds every version
//
// testdata/schema_v1.sql keeps version 1's DDL, which the migration test
// builds a database from. migrate.go upgrades older databases in place.
const SchemaVersion = 2

// partitionWeekNs partitions measurements by week of their timestamp: coarse
// enough that one batch rarely touches more than two partitions, fine enough
// for TTLs and dropping old data by partition.
const partitionWeekNs = 7 * 24 * 3600 * 1_000_000_000

var databaseName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// ValidateDatabase checks a database name, which is spliced into DDL.
func ValidateDatabase(name string) error {
	if !databaseName.MatchString(name) {
		return fmt.Errorf("forwarder: database name %q must match %s", name, databaseName)
	}
	return nil
}

// chType is the ClickHouse type of a datum type's value.
func chType(t pa.DatumType) string {
	switch t {
	case pa.DatumBool:
		return "UInt8" // no Bool type before 21.12
	case pa.DatumI8:
		return "Int8"
	case pa.DatumI16:
		return "Int16"
	case pa.DatumI32:
		return "Int32"
	case pa.DatumI64, pa.DatumCumulativeI64, pa.DatumHistogramI64:
		return "Int64"
	case pa.DatumU8:
		return "UInt8"
	case pa.DatumU16:
		return "UInt16"
	case pa.DatumU32:
		return "UInt32"
	case pa.DatumU64, pa.DatumCumulativeU64, pa.DatumHistogramU64:
		return "UInt64"
	case pa.DatumF32, pa.DatumCumulativeF32:
		return "Float32"
	case pa.DatumF64, pa.DatumCumulativeF64, pa.DatumHistogramF64:
		return "Float64"
	case pa.DatumString, pa.DatumBytes:
		return "String"
	}
	panic(fmt.Sprintf("forwarder: no ClickHouse type for %v", t))
}

// fieldCHType is the ClickHouse type of a field type's value. IP addresses
// are stored as their canonical text (18.16 has no IPv6 type, and text keeps
// IPv4 distinct from IPv4-mapped IPv6).
func fieldCHType(t pa.FieldType) string {
	switch t {
	case pa.FieldString, pa.FieldIPAddr:
		return "String"
	case pa.FieldBool, pa.FieldU8:
		return "UInt8"
	case pa.FieldI8:
		return "Int8"
	case pa.FieldI16:
		return "Int16"
	case pa.FieldI32:
		return "Int32"
	case pa.FieldI64:
		return "Int64"
	case pa.FieldU16:
		return "UInt16"
	case pa.FieldU32:
		return "UInt32"
	case pa.FieldU64:
		return "UInt64"
	case pa.FieldUUID:
		return "UUID"
	}
	panic(fmt.Sprintf("forwarder: no ClickHouse type for %v", t))
}

// MeasurementsTable is the table holding datums of type t.
func MeasurementsTable(t pa.DatumType) string { return "measurements_" + t.String() }

// FieldsTable is the table holding fields of type t.
func FieldsTable(t pa.FieldType) string { return "fields_" + t.String() }

// measurementColumns lists the columns an INSERT names for datum type t.
func measurementColumns(t pa.DatumType) []string {
	cols := []string{"timeseries_name", "timeseries_key", "timestamp_ns"}
	if t.HasStartTime() {
		cols = append(cols, "start_time_ns")
	}
	if t.IsHistogram() {
		return append(cols, "bins", "counts", "min", "max", "sum_of_samples")
	}
	return append(cols, "datum")
}

// measurementsSortingKey is the identity of a measurement row: rows equal in
// it are the same sample (a replay) and collapse in merges. Datums with a
// start time include it: two samples of one series at one timestamp with
// different start times (a counter reset) are two samples.
func measurementsSortingKey(t pa.DatumType) string {
	if t.HasStartTime() {
		return "timeseries_name, timeseries_key, start_time_ns, timestamp_ns"
	}
	return "timeseries_name, timeseries_key, timestamp_ns"
}

// measurementsDDL creates table (MeasurementsTable(t), or a migration's
// temporary name) in db.
func measurementsDDL(db, table string, t pa.DatumType) string {
	var cols []string
	cols = append(cols, "timeseries_name String", "timeseries_key UInt64", "timestamp_ns Int64")
	if t.HasStartTime() {
		cols = append(cols, "start_time_ns Int64")
	}
	ct := chType(t)
	if t.IsHistogram() {
		cols = append(cols,
			fmt.Sprintf("bins Array(%s)", ct), "counts Array(UInt64)",
			fmt.Sprintf("min Nullable(%s)", ct), fmt.Sprintf("max Nullable(%s)", ct),
			fmt.Sprintf("sum_of_samples Nullable(%s)", ct))
	} else {
		cols = append(cols, fmt.Sprintf("datum Nullable(%s)", ct))
	}
	cols = append(cols, "timestamp DateTime ALIAS toDateTime(intDiv(timestamp_ns, 1000000000))")
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s (\n  %s\n) ENGINE = ReplacingMergeTree()\nPARTITION BY intDiv(timestamp_ns, %d)\nORDER BY (%s)",
		db, table, strings.Join(cols, ",\n  "), partitionWeekNs, measurementsSortingKey(t))
}

func fieldsDDL(db string, t pa.FieldType) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s (\n  timeseries_name String,\n  timeseries_key UInt64,\n  field_name String,\n  field_value %s\n) ENGINE = ReplacingMergeTree()\nORDER BY (timeseries_name, field_name, field_value, timeseries_key)",
		db, FieldsTable(t), fieldCHType(t))
}

// schemaTable holds one row per (timeseries name, schema version).
const schemaTable = "timeseries_schema"

func schemaTableDDL(db, table string) string {
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.%s (
  timeseries_name String,
  fields_name Array(String),
  fields_type Array(String),
  fields_source Array(String),
  datum_type String,
  version UInt32,
  created_ns Int64
) ENGINE = ReplacingMergeTree()
ORDER BY (timeseries_name, version)`, db, table)
}

// SchemaDDL returns every statement of the current schema, for operators and
// docs (`holdfast schema`).
func SchemaDDL(db string) []string {
	out := []string{fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s", db), versionTableDDL(db)}
	for _, t := range layout(db) {
		out = append(out, t.ddl(t.name))
	}
	return append(out, ViewsDDL(db, "")...)
}

func versionTableDDL(db string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.schema_version (version UInt32, applied_ns Int64) ENGINE = MergeTree() ORDER BY version", db)
}

// DefaultStatementTimeout bounds each schema statement EnsureSchema runs.
const DefaultStatementTimeout = 60 * time.Second

// SchemaOptions tune EnsureSchemaWith.
type SchemaOptions struct {
	// StatementTimeout bounds each statement except an upgrade's copy of a
	// table, which takes as long as the table needs (ctx still ends it, and
	// the connection's read timeout ends a copy whose server went silent).
	// Default DefaultStatementTimeout.
	StatementTimeout time.Duration
	// Holder names this process in the upgrade lock; it must be the same
	// after a restart, so an upgrade this process began and did not finish
	// is resumed by it (the forwarder keeps one in its state store).
	// Letters, digits and "_.:-". Default: a random id (fine for a process
	// that never upgrades a shared database, such as a benchmark).
	Holder string
	// Cluster, when set, is the <remote_servers> cluster the schema is
	// created on (cluster.go); "" is a single server.
	Cluster string

	// afterCopy, when set by tests, runs after an upgrade copied table
	// into its staging table and before the swap.
	afterCopy func(table string) error
}

// EnsureSchema creates the database and brings its schema up to
// SchemaVersion, upgrading an older layout in place (see migrate.go). It
// refuses a database whose schema is newer than this build knows (an older
// collector must not write into a newer layout). Every step is idempotent
// and it resumes an interrupted upgrade, so it runs at every start and again
// whenever a table is found missing.
func EnsureSchema(ctx context.Context, conn driver.Conn, db string) (from int, err error) {
	return EnsureSchemaWith(ctx, conn, db, SchemaOptions{})
}

// EnsureSchemaWith is EnsureSchema with options. Do not give it a ctx with a
// deadline shorter than the biggest table's copy: an upgrade cut short
// starts that table over.
func EnsureSchemaWith(ctx context.Context, conn driver.Conn, db string, opts SchemaOptions) (from int, err error) {
	if opts.StatementTimeout <= 0 {
		opts.StatementTimeout = DefaultStatementTimeout
	}
	if opts.Holder == "" {
		opts.Holder = "anonymous-" + uuid.NewString()
	}
	timeout := opts.StatementTimeout
	if err := ValidateDatabase(db); err != nil {
		return 0, err
	}
	if opts.Cluster != "" {
		return ensureClusterSchema(ctx, conn, db, opts)
	}
	for _, q := range []string{fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s", db), versionTableDDL(db)} {
		if err := execTimeout(ctx, conn, q, timeout); err != nil {
			return 0, fmt.Errorf("forwarder: %s: %w", firstLine(q), err)
		}
	}
	var current uint32
	qctx, cancel := context.WithTimeout(ctx, timeout)
	row := conn.QueryRow(qctx, fmt.Sprintf("SELECT max(version) FROM %s.schema_version", db))
	err = row.Scan(&current)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("forwarder: reading schema version: %w", err)
	}
	if current > SchemaVersion {
		return int(current), fmt.Errorf("forwarder: database %s has schema version %d, newer than this build's %d: upgrade holdfast", db, current, SchemaVersion)
	}
	// The version is recorded before any table is rebuilt: from then on an
	// older build refuses the database (above) instead of recreating, in
	// the middle of the swap, an empty table of its own layout. migrate
	// reads what to do from the tables, not from this number.
	if current < SchemaVersion {
		if err := recordSchemaVersion(ctx, conn, db, SchemaVersion); err != nil {
			return int(current), err
		}
	}
	if err := migrate(ctx, conn, db, opts); err != nil {
		return int(current), err
	}
	ensureViews(ctx, conn, db, "", timeout)
	return int(current), nil
}

func execTimeout(ctx context.Context, conn driver.Conn, q string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return conn.Exec(ctx, q)
}

func firstLine(q string) string {
	if i := strings.IndexByte(q, '\n'); i >= 0 {
		return q[:i]
	}
	return q
}

// recordSchemaVersion inserts a row into schema_version. It uses a batch:
// over the native protocol an 18.16 server waits for data blocks after any
// INSERT, so an INSERT ... VALUES sent with Exec never completes there.
//
// Like writer.send, the batch gets the caller's context, not one with its own
// deadline (see there); the connection's timeouts bound it.
func recordSchemaVersion(ctx context.Context, conn driver.Conn, db string, version uint32) error {
	b, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.schema_version (version, applied_ns)", db))
	if err != nil {
		return fmt.Errorf("forwarder: recording schema version %d: %w", version, err)
	}
	defer b.Close()
	if err := b.Append(version, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("forwarder: recording schema version %d: %w", version, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("forwarder: recording schema version %d: %w", version, err)
	}
	return nil
}
