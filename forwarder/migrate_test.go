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
	if err := e.conn.QueryRow(context.Background(), "SELECT count() FROM system.tables WHERE database = ? AND (position(name, '__upgrading') > 0 OR position(name, '__replaced') > 0 OR name = 'schema_upgrade_lock')", e.db).Scan(&leftovers); err != nil || leftovers != 0 {
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
	const run = "0badf00d_01234567" // an earlier run's suffix
	tests := []struct {
		name  string
		steps func(e *env) []string
	}{
		{"copy half done", func(e *env) []string {
			return []string{measurementsDDL(e.db, upgradingName(tb, run), dt),
				fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s LIMIT 10", e.db, upgradingName(tb, run), cols, cols, e.db, tb)}
		}},
		{"between the two renames", func(e *env) []string {
			return []string{measurementsDDL(e.db, upgradingName(tb, run), dt),
				fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s", e.db, upgradingName(tb, run), cols, cols, e.db, tb),
				fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s", e.db, tb, e.db, replacedName(tb, run))}
		}},
		{"before dropping the replaced table", func(e *env) []string {
			return []string{measurementsDDL(e.db, upgradingName(tb, run), dt),
				fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s", e.db, upgradingName(tb, run), cols, cols, e.db, tb),
				fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s, %s.%s TO %s.%s", e.db, tb, e.db, replacedName(tb, run), e.db, upgradingName(tb, run), e.db, tb)}
		}},
		{"swapped, a stale copy left over", func(e *env) []string {
			// An earlier run's partial copy stays beside a current T: it
			// is folded in (nothing missing) and dropped, not kept forever.
			return []string{measurementsDDL(e.db, upgradingName(tb, run), dt),
				fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s", e.db, upgradingName(tb, run), cols, cols, e.db, tb),
				fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s, %s.%s TO %s.%s", e.db, tb, e.db, replacedName(tb, run), e.db, upgradingName(tb, run), e.db, tb),
				measurementsDDL(e.db, upgradingName(tb, "0badf00d_89abcdef"), dt),
				fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s LIMIT 5", e.db, upgradingName(tb, "0badf00d_89abcdef"), cols, cols, e.db, tb)}
		}},
		{"first rename only, copy gone", func(e *env) []string {
			return []string{fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s", e.db, tb, e.db, replacedName(tb, run))}
		}},
		{"between the renames, names of the first v2 build", func(e *env) []string {
			return []string{measurementsDDL(e.db, tb+"__upgrading", dt),
				fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s LIMIT 3", e.db, tb+"__upgrading", cols, cols, e.db, tb),
				fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s", e.db, tb, e.db, tb+"__replaced")}
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

// lateSamples are samples an old collector writes into the v1 table while
// the upgrade copies it: new timeseries and a counter reset.
func lateSamples() []pa.Sample {
	var out []pa.Sample
	for i := int64(0); i < 50; i++ {
		out = append(out, vmSample("disk_read_bytes", 900_000+uint64(i), nil, 1_700_000_500_000_000_000+i,
			pa.Datum{Type: pa.DatumCumulativeU64, Uint: uint64(i), StartTimeNs: 1}))
	}
	return out
}

// TestUpgradeKeepsRowsWrittenDuringTheCopy: while a table is copied, (a) a
// merge collapses the unmerged replay duplicates of the copy (background
// merges, or optimize_on_insert on modern servers) and (b) an old
// collector writes new rows into the old table. The upgrade neither blocks
// (the row-count check of the first v2 build failed for both, forever under
// a steady writer) nor loses the late rows (they were dropped with
// T__replaced).
func TestUpgradeKeepsRowsWrittenDuringTheCopy(t *testing.T) {
	e := newEnv(t, "")
	in := upgradeSamples()
	createV1(t, e, in)
	// A replay: the same rows again, in parts of their own, unmerged.
	replay := newWriter(e.conn, e.db, 1<<18)
	rs := newRowSet()
	replay.addSamples(rs, in, nil)
	rs.schemas = nil
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := replay.insert(ctx, rs); err != nil {
		t.Fatal(err)
	}
	late := lateSamples()
	dt := pa.DatumCumulativeU64
	copied := 0
	opts := SchemaOptions{Holder: "collector-a", afterCopy: func(table string) error {
		if table != MeasurementsTable(dt) {
			return nil
		}
		copied++
		infos, err := tableInfos(ctx, e.conn, e.db, time.Minute)
		if err != nil {
			return err
		}
		up, _ := leftovers(infos, table)
		if len(up) != 1 {
			t.Fatalf("staging tables during the copy: %v", up)
		}
		if err := e.conn.Exec(ctx, fmt.Sprintf("OPTIMIZE TABLE %s.%s FINAL", e.db, up[0])); err != nil {
			return err
		}
		old := newWriter(e.conn, e.db, 1<<18)
		rs := newRowSet()
		old.addSamples(rs, late, nil)
		rs.schemas = nil // v1's schema table has another version type
		return old.insert(ctx, rs)
	}}
	if _, err := EnsureSchemaWith(ctx, e.conn, e.db, opts); err != nil {
		t.Fatalf("upgrade with a merge and a writer during the copy: %v", err)
	}
	if copied != 1 {
		t.Fatalf("the %s copy ran %d times, want 1", MeasurementsTable(dt), copied)
	}
	want := map[int64]pa.Datum{}
	for _, s := range append(append([]pa.Sample{}, in...), late...) {
		want[s.TimestampNs] = s.Datum
	}
	got := e.readBack()
	for ts, d := range want {
		if g, ok := got[ts]; !ok || !sameDatum(d, g) {
			t.Fatalf("sample at %d: wrote %+v, after the upgrade %+v (present %v)", ts, d, g, ok)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("readers see %d samples, %d were written", len(got), len(want))
	}
	if n := e.countWhere(MeasurementsTable(dt), "timeseries_key IN (SELECT timeseries_key FROM "+e.db+".measurements_cumulative_u64 WHERE timestamp_ns >= 1700000500000000000)"); n != uint64(len(late)) {
		t.Fatalf("%d late rows in the upgraded table, want %d", n, len(late))
	}
	checkNoLeftovers(t, e)
}

func checkNoLeftovers(t *testing.T, e *env) {
	t.Helper()
	var leftovers uint64
	if err := e.conn.QueryRow(context.Background(), "SELECT count() FROM system.tables WHERE database = ? AND (position(name, '__upgrading') > 0 OR position(name, '__replaced') > 0 OR name = 'schema_upgrade_lock')", e.db).Scan(&leftovers); err != nil || leftovers != 0 {
		t.Errorf("%d tables of the upgrade left over (%v)", leftovers, err)
	}
}

// TestUpgradeLosingTheLockLeavesTheSwap: the lock changes hands while this
// process copies (an operator took it for dead and dropped its lock; another
// collector took it). It must not swap; the new holder finishes, folding the
// first one's copy, and every row is kept. The first v2 build swapped anyway
// and, sharing the staging name, could rename the other's empty copy into T.
func TestUpgradeLosingTheLockLeavesTheSwap(t *testing.T) {
	e := newEnv(t, "")
	before := createV1(t, e, upgradeSamples())
	counts := e.tableCounts()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := SchemaOptions{StatementTimeout: time.Minute, Holder: "collector-b"}
	a := SchemaOptions{Holder: "collector-a", afterCopy: func(string) error {
		if err := e.conn.Exec(ctx, fmt.Sprintf("DROP TABLE %s.%s", e.db, upgradeLock)); err != nil {
			return err
		}
		return lockUpgrade(ctx, e.conn, e.db, b)
	}}
	_, err := EnsureSchemaWith(ctx, e.conn, e.db, a)
	if !errors.Is(err, ErrMigration) || !strings.Contains(err.Error(), "lost the upgrade lock") {
		t.Fatalf("upgrade that lost its lock: %v", err)
	}
	// The version is recorded before the first rebuild, so a collector of
	// the old build now refuses the database instead of recreating tables.
	var version uint32
	if err := e.conn.QueryRow(ctx, fmt.Sprintf("SELECT max(version) FROM %s.schema_version", e.db)).Scan(&version); err != nil || version != SchemaVersion {
		t.Fatalf("schema_version during the upgrade: %d (%v), want %d", version, err, SchemaVersion)
	}
	if _, err := EnsureSchemaWith(ctx, e.conn, e.db, b); err != nil {
		t.Fatalf("the new holder: %v", err)
	}
	checkUpgraded(t, e, before, counts)
}

// TestUpgradeRefusesTablesItDidNotMake: a table under a canonical name with
// another engine (here Memory; on a cluster a Distributed or Replicated
// table) is not rebuilt as a plain local table: the upgrade stops with
// ErrMigration and the table is untouched.
func TestUpgradeRefusesTablesItDidNotMake(t *testing.T) {
	e := newEnv(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.conn.Exec(ctx, "CREATE DATABASE "+e.db); err != nil {
		t.Fatal(err)
	}
	tb := MeasurementsTable(pa.DatumF64)
	if err := e.conn.Exec(ctx, fmt.Sprintf("CREATE TABLE %s.%s (timeseries_name String, timeseries_key UInt64, timestamp_ns Int64, datum Nullable(Float64)) ENGINE = Memory", e.db, tb)); err != nil {
		t.Fatal(err)
	}
	_, err := EnsureSchema(ctx, e.conn, e.db)
	if !errors.Is(err, ErrMigration) || !strings.Contains(err.Error(), `engine "Memory"`) {
		t.Fatalf("EnsureSchema over a Memory table: %v", err)
	}
	var engine string
	if err := e.conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = ?", e.db, tb).Scan(&engine); err != nil || engine != "Memory" {
		t.Fatalf("%s has engine %q (%v) after the refused upgrade", tb, engine, err)
	}
}

// TestForwarderUpgradesAndResumesItsOwnUpgrade: the forwarder itself
// upgrades a v1 database at start-up with a WAL backlog waiting. Its lock is
// already there under its own holder id and a copy of its earlier run is
// left (it crashed mid-upgrade and restarted): it resumes rather than waits,
// then delivers the backlog; every old and new row is there.
func TestForwarderUpgradesAndResumesItsOwnUpgrade(t *testing.T) {
	e := newEnv(t, "")
	old := upgradeSamples()
	before := createV1(t, e, old)
	backlog := sampletest.NewFleet(10).Append(nil, 500, 1_800_000_000_000_000_000)
	e.appendPages(backlog, 50)
	holder, err := loadHolderID(e.state) // what New will read
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := lockUpgrade(ctx, e.conn, e.db, SchemaOptions{StatementTimeout: time.Minute, Holder: holder}); err != nil {
		t.Fatal(err)
	}
	dt := pa.DatumHistogramF64
	tb := MeasurementsTable(dt)
	cols := strings.Join(measurementColumns(dt), ", ")
	up := upgradingName(tb, runSuffix(holder))
	for _, q := range []string{measurementsDDL(e.db, up, dt),
		fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s LIMIT 7", e.db, up, cols, cols, e.db, tb)} {
		if err := e.conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := e.start(e.options())
	e.flush(f, 2*time.Minute)
	for _, s := range backlog {
		before[s.TimestampNs] = s.Datum
	}
	got := e.readBack()
	if len(got) != len(before) {
		t.Fatalf("readers see %d samples, want %d (v1 rows and the backlog)", len(got), len(before))
	}
	for ts, d := range before {
		if g, ok := got[ts]; !ok || !sameDatum(d, g) {
			t.Fatalf("sample at %d: want %+v, got %+v (present %v)", ts, d, g, ok)
		}
	}
	for _, dt := range pa.AllDatumTypes() {
		if got := e.sortingKey(MeasurementsTable(dt)); got != measurementsSortingKey(dt) {
			t.Errorf("%s sorts by %q after the forwarder's upgrade", MeasurementsTable(dt), got)
		}
	}
	checkNoLeftovers(t, e)
}
