package forwarder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// createV1 builds e.db the way holdfast's schema version 1 did (the DDL in
// testdata/schema_v1.sql, printed by `holdfast schema` of that build) and
// fills it with in: measurements, fields, and timeseries_schema rows with
// version 1, the only version v1 wrote. It returns what readers saw.
func createV1(t *testing.T, e *env, in []pa.Sample) map[int64]pa.Datum {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ddl, err := os.ReadFile("testdata/schema_v1.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range strings.Split(string(ddl), ";\n") {
		var lines []string
		for _, l := range strings.Split(q, "\n") {
			if !strings.HasPrefix(l, "--") {
				lines = append(lines, l)
			}
		}
		if q = strings.TrimSpace(strings.Join(lines, "\n")); q == "" {
			continue
		}
		if err := e.conn.Exec(ctx, strings.ReplaceAll(q, "holdfast_v1_fixture", e.db)); err != nil {
			t.Fatalf("%s: %v", firstLine(q), err)
		}
	}
	if err := recordSchemaVersion(ctx, e.conn, e.db, 1); err != nil {
		t.Fatal(err)
	}
	// Measurement and fields columns are the same in both layouts; the
	// schema rows are written by hand with v1's UInt16 version.
	w := newWriter(e.conn, e.db, 1<<18)
	rs := newRowSet()
	w.addSamples(rs, in, nil)
	schemas := rs.schemas
	rs.schemas = nil
	if err := w.insert(ctx, rs); err != nil {
		t.Fatal(err)
	}
	cols := schemaColumnData(schemas, 1)
	ones := make([]uint16, len(schemas))
	for i := range ones {
		ones[i] = 1
	}
	cols[5] = ones
	if err := w.send(ctx, schemaTable, schemaColumns, cols); err != nil {
		t.Fatal(err)
	}
	if key := e.sortingKey(MeasurementsTable(pa.DatumCumulativeU64)); key != "timeseries_name, timeseries_key, timestamp_ns" {
		t.Fatalf("the v1 fixture's cumulative sorting key is %q", key)
	}
	return e.readBack()
}

func (e *env) sortingKey(table string) string {
	e.t.Helper()
	var key string
	if err := e.conn.QueryRow(context.Background(), "SELECT sorting_key FROM system.tables WHERE database = ? AND name = ?", e.db, table).Scan(&key); err != nil {
		e.t.Fatalf("sorting key of %s: %v", table, err)
	}
	return key
}

// tableCounts returns count() FINAL of every table of the current layout.
func (e *env) tableCounts() map[string]uint64 {
	e.t.Helper()
	out := map[string]uint64{}
	for _, tb := range layout(e.db) {
		var n uint64
		if err := e.conn.QueryRow(context.Background(), fmt.Sprintf("SELECT count() FROM %s.%s FINAL", e.db, tb.name)).Scan(&n); err != nil {
			e.t.Fatalf("counting %s: %v", tb.name, err)
		}
		out[tb.name] = n
	}
	return out
}

// checkUpgraded checks that e.db is in the current layout, at SchemaVersion,
// holding exactly want, with nothing of the upgrade left over.
func checkUpgraded(t *testing.T, e *env, want map[int64]pa.Datum, wantCounts map[string]uint64) {
	t.Helper()
	for _, dt := range pa.AllDatumTypes() {
		if got := e.sortingKey(MeasurementsTable(dt)); got != measurementsSortingKey(dt) {
			t.Errorf("%s sorts by %q, want %q", MeasurementsTable(dt), got, measurementsSortingKey(dt))
		}
	}
	if got := e.sortingKey(MeasurementsTable(pa.DatumHistogramF64)); !strings.Contains(got, "start_time_ns") {
		t.Errorf("histogram sorting key %q lacks start_time_ns", got)
	}
	var typ string
	if err := e.conn.QueryRow(context.Background(), "SELECT type FROM system.columns WHERE database = ? AND table = 'timeseries_schema' AND name = 'version'", e.db).Scan(&typ); err != nil || typ != "UInt32" {
		t.Errorf("timeseries_schema.version is %q (%v), want UInt32", typ, err)
	}
	var version uint32
	if err := e.conn.QueryRow(context.Background(), fmt.Sprintf("SELECT max(version) FROM %s.schema_version", e.db)).Scan(&version); err != nil || version != SchemaVersion {
		t.Errorf("schema_version says %d (%v), want %d", version, err, SchemaVersion)
	}
	var leftovers uint64
	if err := e.conn.QueryRow(context.Background(), "SELECT count() FROM system.tables WHERE database = ? AND (name LIKE '%__upgrading' OR name LIKE '%__replaced' OR name = 'schema_upgrade_lock')", e.db).Scan(&leftovers); err != nil || leftovers != 0 {
		t.Errorf("%d tables of the upgrade left over (%v)", leftovers, err)
	}
	if got := e.tableCounts(); fmt.Sprint(got) != fmt.Sprint(wantCounts) {
		t.Errorf("rows per table after the upgrade:\n%v\nbefore:\n%v", got, wantCounts)
	}
	got := e.readBack()
	if len(got) != len(want) {
		t.Fatalf("after the upgrade readers see %d samples, before %d", len(got), len(want))
	}
	for ts, d := range want {
		if g, ok := got[ts]; !ok || !sameDatum(d, g) {
			t.Fatalf("sample at %d: before %+v, after %+v (present %v)", ts, d, g, ok)
		}
	}
	// Every schema row now carries its field-set version.
	rows, err := e.conn.Query(context.Background(), fmt.Sprintf("SELECT timeseries_name, fields_name, version FROM %s.timeseries_schema FINAL", e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var fields []string
		var v uint32
		if err := rows.Scan(&name, &fields, &v); err != nil {
			t.Fatal(err)
		}
		if v != pa.SchemaVersion(fields) {
			t.Errorf("schema row of %s has version %d, want SchemaVersion(%q) = %d", name, v, fields, pa.SchemaVersion(fields))
		}
	}
}

func upgradeSamples() []pa.Sample {
	return append(sampletest.EveryDatumType(1_000), sampletest.NewFleet(40).Append(nil, 4_000, 1_700_000_000_000_000_000)...)
}

// TestUpgradeFromSchemaV1KeepsEveryRow: a database created by schema
// version 1 (the layout before start_time_ns was in the sorting keys)
// upgrades in place at the next EnsureSchema, every row kept, the new keys in
// effect; a second run changes nothing.
func TestUpgradeFromSchemaV1KeepsEveryRow(t *testing.T) {
	e := newEnv(t, "")
	before := createV1(t, e, upgradeSamples())
	counts := e.tableCounts()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	from, err := EnsureSchema(ctx, e.conn, e.db)
	if err != nil || from != 1 {
		t.Fatalf("EnsureSchema on a v1 database: from %d, %v", from, err)
	}
	checkUpgraded(t, e, before, counts)
	if from, err := EnsureSchema(ctx, e.conn, e.db); err != nil || from != SchemaVersion {
		t.Fatalf("second EnsureSchema: from %d, %v", from, err)
	}
	checkUpgraded(t, e, before, counts)
}

// TestUpgradeResumesWhereItWasInterrupted leaves a v1 table in each state a
// crash can leave the upgrade in, then checks that the next EnsureSchema
// finishes the upgrade with every row.
func TestUpgradeResumesWhereItWasInterrupted(t *testing.T) {
	dt := pa.DatumCumulativeU64
	tb := MeasurementsTable(dt)
	cols := strings.Join(measurementColumns(dt), ", ")
	tests := []struct {
		name  string
		steps func(e *env) []string
	}{
		{"copy half done", func(e *env) []string {
			return []string{measurementsDDL(e.db, upgradingName(tb), dt),
				fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s LIMIT 10", e.db, upgradingName(tb), cols, cols, e.db, tb)}
		}},
		{"between the two renames", func(e *env) []string {
			return []string{measurementsDDL(e.db, upgradingName(tb), dt),
				fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s", e.db, upgradingName(tb), cols, cols, e.db, tb),
				fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s", e.db, tb, e.db, replacedName(tb))}
		}},
		{"before dropping the replaced table", func(e *env) []string {
			return []string{measurementsDDL(e.db, upgradingName(tb), dt),
				fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s", e.db, upgradingName(tb), cols, cols, e.db, tb),
				fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s, %s.%s TO %s.%s", e.db, tb, e.db, replacedName(tb), e.db, upgradingName(tb), e.db, tb)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "")
			before := createV1(t, e, upgradeSamples())
			counts := e.tableCounts()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for _, q := range tt.steps(e) {
				if err := e.conn.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", firstLine(q), err)
				}
			}
			if _, err := EnsureSchema(ctx, e.conn, e.db); err != nil {
				t.Fatalf("EnsureSchema after an interrupted upgrade: %v", err)
			}
			checkUpgraded(t, e, before, counts)
			if _, err := EnsureSchema(ctx, e.conn, e.db); err != nil {
				t.Fatal(err)
			}
			checkUpgraded(t, e, before, counts)
		})
	}
}

// TestUpgradeLockWaitsForAnotherHolder: a database another process is
// upgrading is left alone (a clear error, retried by the forwarder); the
// holder itself resumes its own interrupted upgrade.
func TestUpgradeLockWaitsForAnotherHolder(t *testing.T) {
	e := newEnv(t, "")
	before := createV1(t, e, upgradeSamples())
	counts := e.tableCounts()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	other := SchemaOptions{StatementTimeout: time.Minute, Holder: "collector-b"}
	if err := lockUpgrade(ctx, e.conn, e.db, other); err != nil {
		t.Fatal(err)
	}
	_, err := EnsureSchemaWith(ctx, e.conn, e.db, SchemaOptions{Holder: "collector-a"})
	if !errors.Is(err, ErrMigration) || !strings.Contains(err.Error(), "collector-b") || !strings.Contains(err.Error(), "DROP TABLE "+e.db+".schema_upgrade_lock") {
		t.Fatalf("EnsureSchema with the lock held by another: %v", err)
	}
	if key := e.sortingKey(MeasurementsTable(pa.DatumCumulativeU64)); strings.Contains(key, "start_time_ns") {
		t.Fatal("upgraded a table while another process held the lock")
	}
	if _, err := EnsureSchemaWith(ctx, e.conn, e.db, other); err != nil {
		t.Fatalf("the holder resuming its own upgrade: %v", err)
	}
	checkUpgraded(t, e, before, counts)
}

// TestConcurrentUpgradesKeepEveryRow: collectors of the new build starting
// together against one old database (a rolling upgrade) take turns; every
// row survives. Without the lock they dropped each other's copies.
func TestConcurrentUpgradesKeepEveryRow(t *testing.T) {
	e := newEnv(t, "")
	before := createV1(t, e, upgradeSamples())
	counts := e.tableCounts()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	waited := make([]int, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts := SchemaOptions{Holder: fmt.Sprintf("collector-%d", i)}
			for ctx.Err() == nil {
				_, err := EnsureSchemaWith(ctx, e.conn, e.db, opts)
				if !errors.Is(err, ErrMigration) {
					errs[i] = err
					return
				}
				waited[i]++
				time.Sleep(20 * time.Millisecond) // the forwarder's backoff
			}
			errs[i] = ctx.Err()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("collector %d: %v", i, err)
		}
	}
	t.Logf("retries while another held the lock: %v", waited)
	checkUpgraded(t, e, before, counts)
}
