package forwarder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	pa "github.com/holdfast/holdfast/producerapi"
)

// ErrMigration is the sentinel every failed in-place upgrade wraps.
var ErrMigration = errors.New("forwarder: schema migration")

// table is one table of the current layout: how to create it (under any
// name), how to tell whether an existing table already has the current
// layout, and how to copy an older table's rows into it.
type table struct {
	name    string
	ddl     func(name string) string
	current func(info tableInfo) bool
	copy    func(ctx context.Context, conn driver.Conn, db, from, to string, timeout time.Duration) error
}

// tableInfo is what system.tables and system.columns say about a table.
type tableInfo struct {
	sortingKey    string
	versionColumn string // type of column "version", timeseries_schema only
}

// layout lists the tables of schema version SchemaVersion.
func layout(db string) []table {
	var out []table
	for _, t := range pa.AllDatumTypes() {
		key := measurementsSortingKey(t)
		cols := strings.Join(measurementColumns(t), ", ")
		out = append(out, table{
			name:    MeasurementsTable(t),
			ddl:     func(name string) string { return measurementsDDL(db, name, t) },
			current: func(ti tableInfo) bool { return ti.sortingKey == key },
			copy: func(ctx context.Context, conn driver.Conn, db, from, to string, _ time.Duration) error {
				// INSERT ... SELECT runs inside the server: no rows cross
				// the network, and memory stays the server's business.
				return conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s", db, to, cols, cols, db, from))
			},
		})
	}
	for _, t := range pa.AllFieldTypes() {
		out = append(out, table{name: FieldsTable(t), ddl: func(string) string { return fieldsDDL(db, t) },
			current: func(tableInfo) bool { return true }})
	}
	out = append(out, table{
		name:    schemaTable,
		ddl:     func(name string) string { return schemaTableDDL(db, name) },
		current: func(ti tableInfo) bool { return ti.versionColumn == "UInt32" },
		copy:    copySchemaRows,
	})
	return out
}

// Names of a table's companions during its upgrade.
func upgradingName(name string) string { return name + "__upgrading" }
func replacedName(name string) string  { return name + "__replaced" }

// migrate brings every table of db to the current layout, creating missing
// ones. ClickHouse 18.16 cannot change a sorting key in place, so a table in
// an older layout is rebuilt:
//
//  1. DROP TABLE IF EXISTS T__upgrading      (a copy an earlier run left half done)
//  2. CREATE TABLE T__upgrading              (current layout)
//  3. copy T's rows into it                  (INSERT ... SELECT)
//  4. check T__upgrading holds at least as many rows as T (else someone
//     wrote to T during the copy: fail, retry later from step 1)
//  5. RENAME TABLE T TO T__replaced, T__upgrading TO T
//  6. DROP TABLE T__replaced
//
// Every state a crash can leave is recognised at the next start: T old with
// or without T__upgrading resumes at step 1 (T still holds every row); no T
// but T__replaced and T__upgrading (a crash inside step 5's two renames)
// finishes the swap, since T__upgrading was complete before step 5 began;
// T current with T__replaced left over resumes at step 6. A table's rows are
// therefore always in T or, complete, in T__replaced until T has them.
//
// Only one process upgrades a database at a time: collectors sharing one
// database would otherwise drop each other's copies. The first to need an
// upgrade takes the lock (see lockUpgrade), which names it; another finds
// the lock and gets an error (retried by the forwarder) until the upgrade is
// done. The holder resumes after a crash with its lock still there, since
// its id survives restarts.
func migrate(ctx context.Context, conn driver.Conn, db string, opts SchemaOptions) error {
	infos, err := tableInfos(ctx, conn, db, opts.StatementTimeout)
	if err != nil {
		return err
	}
	tables := layout(db)
	if needsUpgrade(tables, infos) {
		if err := lockUpgrade(ctx, conn, db, opts); err != nil {
			return err
		}
		// Re-read: another process may have upgraded meanwhile.
		if infos, err = tableInfos(ctx, conn, db, opts.StatementTimeout); err != nil {
			return err
		}
	}
	for _, t := range tables {
		if err := upgradeTable(ctx, conn, db, t, infos, opts.StatementTimeout); err != nil {
			return err // the lock stays: this holder resumes, others wait
		}
	}
	// Ours, or left by a holder that finished every table and stopped
	// before dropping it: either way nothing is left to upgrade.
	if _, locked := infos[upgradeLock]; locked {
		if err := execTimeout(ctx, conn, fmt.Sprintf("DROP TABLE IF EXISTS %s.%s", db, upgradeLock), opts.StatementTimeout); err != nil {
			return fmt.Errorf("%w: dropping the upgrade lock: %w", ErrMigration, err)
		}
	}
	return nil
}

// needsUpgrade reports whether a table is in an older layout or an upgrade
// left tables behind. Creating missing tables needs no lock.
func needsUpgrade(tables []table, infos map[string]tableInfo) bool {
	for _, t := range tables {
		if info, ok := infos[t.name]; ok && !t.current(info) {
			return true
		}
		if _, ok := infos[upgradingName(t.name)]; ok {
			return true
		}
		if _, ok := infos[replacedName(t.name)]; ok {
			return true
		}
	}
	return false
}

// upgradeLock is the table whose existence is the upgrade lock. Creating a
// table that exists fails, in every ClickHouse version, which makes CREATE
// TABLE (without IF NOT EXISTS) a test-and-set. The holder's id is the
// default of its one column, so it is written in the same statement.
const upgradeLock = "schema_upgrade_lock"

var holderPattern = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)

// lockUpgrade takes the upgrade lock for opts.Holder, or finds it already
// held by opts.Holder (a crashed run of the same process). A lock held by
// another holder is an ErrMigration naming it.
func lockUpgrade(ctx context.Context, conn driver.Conn, db string, opts SchemaOptions) error {
	if !holderPattern.MatchString(opts.Holder) {
		return fmt.Errorf("%w: holder id %q must match %s", ErrMigration, opts.Holder, holderPattern)
	}
	create := fmt.Sprintf("CREATE TABLE %s.%s (holder String DEFAULT '%s', since DateTime DEFAULT now()) ENGINE = TinyLog", db, upgradeLock, opts.Holder)
	err := execTimeout(ctx, conn, create, opts.StatementTimeout)
	if err == nil {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, opts.StatementTimeout)
	defer cancel()
	var def string
	if qerr := conn.QueryRow(qctx, "SELECT default_expression FROM system.columns WHERE database = ? AND table = ? AND name = 'holder'", db, upgradeLock).Scan(&def); qerr != nil {
		return fmt.Errorf("%w: taking the upgrade lock %s.%s: %w", ErrMigration, db, upgradeLock, err)
	}
	if def == "'"+opts.Holder+"'" {
		return nil // ours, from a run that did not finish
	}
	return fmt.Errorf("%w: database %s is being upgraded by %s (lock table %s.%s); waiting for it. If that process is gone for good, DROP TABLE %s.%s and the upgrade resumes here",
		ErrMigration, db, def, db, upgradeLock, db, upgradeLock)
}

func upgradeTable(ctx context.Context, conn driver.Conn, db string, t table, infos map[string]tableInfo, timeout time.Duration) error {
	up, old := upgradingName(t.name), replacedName(t.name)
	info, exists := infos[t.name]
	_, upExists := infos[up]
	_, oldExists := infos[old]
	exec := func(q string) error {
		if err := execTimeout(ctx, conn, q, timeout); err != nil {
			return fmt.Errorf("%w: %s: %s: %w", ErrMigration, t.name, firstLine(q), err)
		}
		return nil
	}
	switch {
	case !exists && oldExists && upExists:
		// Interrupted between the two renames of step 5.
		if err := exec(fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s", db, up, db, t.name)); err != nil {
			return err
		}
		exists, info = true, tableInfo{}
		if ti, err := tableInfos(ctx, conn, db, timeout); err == nil {
			info = ti[t.name]
		}
	case !exists && oldExists:
		return fmt.Errorf("%w: %s.%s is missing but %s.%s exists: an upgrade was interrupted in a way holdfast does not recognise; rename it back by hand", ErrMigration, db, t.name, db, old)
	case !exists:
		if upExists {
			if err := exec(fmt.Sprintf("DROP TABLE IF EXISTS %s.%s", db, up)); err != nil {
				return err
			}
		}
		return exec(t.ddl(t.name))
	}
	if !t.current(info) {
		if oldExists {
			return fmt.Errorf("%w: %s.%s is in an older layout and %s.%s exists too; holdfast does not know which holds the data", ErrMigration, db, t.name, db, old)
		}
		if err := rebuild(ctx, conn, db, t, exec, timeout); err != nil {
			return err
		}
		oldExists = true
	}
	if oldExists {
		return exec(fmt.Sprintf("DROP TABLE IF EXISTS %s.%s", db, old))
	}
	return nil
}

// rebuild runs steps 1 to 5 for one table.
func rebuild(ctx context.Context, conn driver.Conn, db string, t table, exec func(string) error, timeout time.Duration) error {
	up, old := upgradingName(t.name), replacedName(t.name)
	began := time.Now()
	if err := exec(fmt.Sprintf("DROP TABLE IF EXISTS %s.%s", db, up)); err != nil {
		return err
	}
	if err := exec(t.ddl(up)); err != nil {
		return err
	}
	if err := t.copy(ctx, conn, db, t.name, up, timeout); err != nil {
		return fmt.Errorf("%w: copying %s into %s: %w", ErrMigration, t.name, up, err)
	}
	before, err := rowCount(ctx, conn, db, t.name, timeout)
	if err != nil {
		return err
	}
	after, err := rowCount(ctx, conn, db, up, timeout)
	if err != nil {
		return err
	}
	// Merges may shrink T (duplicates collapse) but nothing makes the copy
	// smaller than T unless rows arrived in T after the copy read it.
	if after < before {
		return fmt.Errorf("%w: %s has %d rows but its copy %d: something wrote to it during the upgrade (stop collectors of older builds); will retry", ErrMigration, t.name, before, after)
	}
	if err := exec(fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s, %s.%s TO %s.%s", db, t.name, db, old, db, up, db, t.name)); err != nil {
		return err
	}
	slog.Info("forwarder: upgraded a table to the current layout", "table", db+"."+t.name, "rows", after, "took", time.Since(began))
	return nil
}

func rowCount(ctx context.Context, conn driver.Conn, db, name string, timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var n uint64
	if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.%s", db, name)).Scan(&n); err != nil {
		return 0, fmt.Errorf("%w: counting %s: %w", ErrMigration, name, err)
	}
	return n, nil
}

// tableInfos reads the sorting key of every table in db and the type of
// timeseries_schema's version column.
func tableInfos(ctx context.Context, conn driver.Conn, db string, timeout time.Duration) (map[string]tableInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rows, err := conn.Query(ctx, "SELECT name, sorting_key FROM system.tables WHERE database = ?", db)
	if err != nil {
		return nil, fmt.Errorf("%w: listing tables: %w", ErrMigration, err)
	}
	out := map[string]tableInfo{}
	for rows.Next() {
		var name, key string
		if err := rows.Scan(&name, &key); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%w: listing tables: %w", ErrMigration, err)
		}
		out[name] = tableInfo{sortingKey: key}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: listing tables: %w", ErrMigration, err)
	}
	var typ string
	err = conn.QueryRow(ctx, "SELECT type FROM system.columns WHERE database = ? AND table = ? AND name = 'version'", db, schemaTable).Scan(&typ)
	if err == nil {
		ti := out[schemaTable]
		ti.versionColumn = typ
		out[schemaTable] = ti
	}
	return out, nil
}

// copySchemaRows copies timeseries_schema rows, giving each the field-set
// version of its fields (version 1 stored only "first schema seen"). The
// table has a row per timeseries name, so it is small; it is read whole.
func copySchemaRows(ctx context.Context, conn driver.Conn, db, from, to string, timeout time.Duration) error {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rows, err := conn.Query(qctx, fmt.Sprintf("SELECT %s FROM %s.%s", strings.Join(schemaColumns, ", "), db, from))
	if err != nil {
		return err
	}
	var (
		names, dtypes           []string
		fnames, ftypes, fsource [][]string
		versions                []uint32
		created                 []int64
	)
	for rows.Next() {
		var (
			name, dtype string
			fn, ft, fs  []string
			oldVersion  uint16
			createdNs   int64
		)
		if err := rows.Scan(&name, &fn, &ft, &fs, &dtype, &oldVersion, &createdNs); err != nil {
			rows.Close()
			return err
		}
		names, dtypes, created = append(names, name), append(dtypes, dtype), append(created, createdNs)
		fnames, ftypes, fsource = append(fnames, fn), append(ftypes, ft), append(fsource, fs)
		versions = append(versions, pa.SchemaVersion(fn))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(names) == 0 {
		return nil
	}
	w := &writer{conn: conn, db: db}
	return w.send(ctx, to, schemaColumns, []any{names, fnames, ftypes, fsource, dtypes, versions, created})
}
