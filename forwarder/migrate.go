package forwarder

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	pa "github.com/holdfast/holdfast/producerapi"
)

// ErrMigration is the sentinel every failed in-place upgrade wraps.
var ErrMigration = errors.New("forwarder: schema migration")

// rebuildEngine is the only engine migrate rebuilds. A table under a
// canonical name with another engine (a Distributed table of a cluster, a
// Replicated one) is not a local copy holdfast made: rebuilding it as a plain
// table would silently take it out of the cluster.
const rebuildEngine = "ReplacingMergeTree"

// table is one table of the current layout: how to create it (under any
// name), how to tell whether an existing table already has the current
// layout, and how to copy rows of an older (or a staging) table into it.
type table struct {
	name    string
	ddl     func(name string) string
	current func(info tableInfo) bool
	// identity lists the columns that identify a row in both layouts (the
	// current sorting key, whose columns the old layout has too): a row of
	// a leftover table is "covered" when the table has a row with the same
	// identity. Empty for tables never rebuilt.
	identity string
	// partitioned: compare and copy one partition at a time, so the set
	// of identities ClickHouse builds for NOT IN is one week of rows, not
	// the whole table.
	partitioned bool
	// copy copies the rows of from matching where (a SQL condition) into to.
	copy func(ctx context.Context, conn driver.Conn, db, from, to, where string, timeout time.Duration) error
}

// tableInfo is what system.tables and system.columns say about a table.
type tableInfo struct {
	engine        string
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
			name:        MeasurementsTable(t),
			ddl:         func(name string) string { return measurementsDDL(db, name, t) },
			current:     func(ti tableInfo) bool { return ti.engine == rebuildEngine && ti.sortingKey == key },
			identity:    key,
			partitioned: true,
			copy: func(ctx context.Context, conn driver.Conn, db, from, to, where string, _ time.Duration) error {
				// INSERT ... SELECT runs inside the server: no rows cross
				// the network, and memory stays the server's business.
				return conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s WHERE %s", db, to, cols, cols, db, from, where))
			},
		})
	}
	for _, t := range pa.AllFieldTypes() {
		out = append(out, table{name: FieldsTable(t), ddl: func(string) string { return fieldsDDL(db, t) },
			current: func(tableInfo) bool { return true }})
	}
	out = append(out, table{
		name:     schemaTable,
		ddl:      func(name string) string { return schemaTableDDL(db, name) },
		current:  func(ti tableInfo) bool { return ti.engine == rebuildEngine && ti.versionColumn == "UInt32" },
		identity: "timeseries_name, fields_name",
		copy:     copySchemaRows,
	})
	return out
}

// Companions of table T during its upgrade, named after the run that made
// them: T__upgrading_<run> is the copy being built, T__replaced_<run> the
// old T after the swap. Two processes that both believe they hold the lock
// (a cloned state directory, a lock dropped by hand while its holder was only
// slow) therefore never drop or fill each other's tables.
const (
	upgradingInfix = "__upgrading"
	replacedInfix  = "__replaced"
)

// runSuffix names one migrate run: a hash of the holder (which process) and
// random bytes (which run: clones share a holder id).
func runSuffix(holder string) string {
	h := fnv.New32a()
	h.Write([]byte(holder))
	var r [4]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%08x_%s", h.Sum32(), hex.EncodeToString(r[:]))
}

func upgradingName(name, run string) string { return name + upgradingInfix + "_" + run }
func replacedName(name, run string) string  { return name + replacedInfix + "_" + run }

// leftovers returns the staging tables of T found in infos: copies
// (T__upgrading*) and replaced originals (T__replaced*), sorted. Names
// without a run suffix are those of builds before per-run names.
func leftovers(infos map[string]tableInfo, name string) (upgrading, replaced []string) {
	for n := range infos {
		switch {
		case strings.HasPrefix(n, name+upgradingInfix):
			upgrading = append(upgrading, n)
		case strings.HasPrefix(n, name+replacedInfix):
			replaced = append(replaced, n)
		}
	}
	slices.Sort(upgrading)
	slices.Sort(replaced)
	return upgrading, replaced
}

// migrate brings every table of db to the current layout, creating missing
// ones. ClickHouse 18.16 cannot change a sorting key in place, so a table in
// an older layout is rebuilt (rebuildTable):
//
//  1. CREATE TABLE T__upgrading_<run>          (current layout)
//  2. copy T's rows into it                    (INSERT ... SELECT)
//  3. check that this process still holds the lock and T is still old
//  4. RENAME TABLE T TO T__replaced_<run>, T__upgrading_<run> TO T
//  5. fold every leftover (T__replaced_*, T__upgrading_*) into T: copy the
//     rows whose identity T lacks (written to the old T after the copy read
//     it), check that none is missing any more, and only then DROP it
//
// Nothing holding rows is dropped before T is shown to hold each of its
// identities, so merges collapsing duplicates in the copy, a writer of an
// older build, a crash at any point, or a second process that wrongly
// believes it holds the lock can delay the upgrade but not lose a row. At
// the next start, a missing T is restored from its leftovers (the copy if
// the swap was cut between its two renames, else the replaced original)
// and the rest is folded in.
//
// Only one process upgrades a database at a time, under the lock (see
// lockUpgrade), which names it; another finds the lock and gets an error
// (retried by the forwarder) until the upgrade is done. The holder resumes
// after a crash with its lock still there, since its id survives restarts.
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
	run := runSuffix(opts.Holder)
	for _, t := range tables {
		if err := upgradeTable(ctx, conn, db, t, infos, run, opts); err != nil {
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
		if up, old := leftovers(infos, t.name); len(up)+len(old) > 0 {
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

// holderPattern is the rule for upgrade holder ids. It is not internal/ids'
// producer and collector id rule: a holder id is interpolated into a
// ClickHouse DDL string literal (the lock table's column default), so it
// keeps to characters that need no quoting there, and it has never
// accepted '@'. Holders are the forwarder's own generated ids
// ("forwarder-<uuid>") or ones an operator passes to schema commands.
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
	def, qerr := lockHolder(ctx, conn, db, opts.StatementTimeout)
	if qerr != nil {
		return fmt.Errorf("%w: taking the upgrade lock %s.%s: %w", ErrMigration, db, upgradeLock, err)
	}
	if def == "'"+opts.Holder+"'" {
		return nil // ours, from a run that did not finish
	}
	return fmt.Errorf("%w: database %s is being upgraded by %s (lock table %s.%s); waiting for it. If that process is gone for good, DROP TABLE %s.%s and the upgrade resumes here",
		ErrMigration, db, def, db, upgradeLock, db, upgradeLock)
}

// lockHolder returns the quoted holder id of the upgrade lock, "" if there
// is no lock.
func lockHolder(ctx context.Context, conn driver.Conn, db string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var def string
	err := conn.QueryRow(ctx, "SELECT default_expression FROM system.columns WHERE database = ? AND table = ? AND name = 'holder'", db, upgradeLock).Scan(&def)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return def, err
}

func upgradeTable(ctx context.Context, conn driver.Conn, db string, t table, infos map[string]tableInfo, run string, opts SchemaOptions) error {
	timeout := opts.StatementTimeout
	exec := func(q string) error {
		if err := execTimeout(ctx, conn, q, timeout); err != nil {
			return fmt.Errorf("%w: %s: %s: %w", ErrMigration, t.name, firstLine(q), err)
		}
		return nil
	}
	reread := func() error {
		var err error
		infos, err = tableInfos(ctx, conn, db, timeout)
		return err
	}
	ups, olds := leftovers(infos, t.name)
	if _, exists := infos[t.name]; !exists {
		if err := restoreTable(t, db, ups, olds, exec); err != nil {
			return err
		}
		if err := reread(); err != nil {
			return err
		}
	}
	if info := infos[t.name]; !t.current(info) {
		if info.engine != rebuildEngine || t.copy == nil {
			return fmt.Errorf("%w: %s.%s has engine %q and sorting key %q, not this build's layout; holdfast rebuilds only plain %s tables: upgrade it by hand (DESIGN.md, Migrations)",
				ErrMigration, db, t.name, info.engine, info.sortingKey, rebuildEngine)
		}
		if err := rebuildTable(ctx, conn, db, t, run, exec, opts); err != nil {
			return err
		}
		if err := reread(); err != nil {
			return err
		}
	}
	ups, olds = leftovers(infos, t.name)
	for _, l := range append(olds, ups...) {
		if err := foldInto(ctx, conn, db, t, l, exec, timeout); err != nil {
			return err
		}
	}
	return nil
}

// restoreTable gives back a missing T from what an upgrade left: the copy
// when the swap was cut between its two renames (its replaced original is
// folded in afterwards, so the copy need not be complete), the one replaced
// original when there is no copy of its run, or a new empty table when
// nothing is left (the copies found are folded into it).
func restoreTable(t table, db string, ups, olds []string, exec func(string) error) error {
	for _, old := range olds {
		up := t.name + upgradingInfix + strings.TrimPrefix(old, t.name+replacedInfix)
		if slices.Contains(ups, up) {
			return exec(fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s", db, up, db, t.name))
		}
	}
	switch len(olds) {
	case 0:
		return exec(t.ddl(t.name))
	case 1:
		return exec(fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s", db, olds[0], db, t.name))
	}
	return fmt.Errorf("%w: %s.%s is missing and %d replaced tables exist (%s): holdfast does not know which holds the data; rename one back to %s by hand and the others are folded into it",
		ErrMigration, db, t.name, len(olds), strings.Join(olds, ", "), t.name)
}

// rebuildTable runs steps 1 to 4 for one table.
func rebuildTable(ctx context.Context, conn driver.Conn, db string, t table, run string, exec func(string) error, opts SchemaOptions) error {
	up, old := upgradingName(t.name, run), replacedName(t.name, run)
	began := time.Now()
	if err := exec(t.ddl(up)); err != nil {
		return err
	}
	if err := t.copy(ctx, conn, db, t.name, up, "1", opts.StatementTimeout); err != nil {
		return fmt.Errorf("%w: copying %s into %s: %w", ErrMigration, t.name, up, err)
	}
	if opts.afterCopy != nil {
		if err := opts.afterCopy(t.name); err != nil {
			return err
		}
	}
	// The lock may have changed hands while the copy ran (dropped by an
	// operator who took this process for dead), and the new holder may
	// have swapped T already: then leave T alone; the holder folds our copy.
	holder, err := lockHolder(ctx, conn, db, opts.StatementTimeout)
	if err != nil {
		return fmt.Errorf("%w: checking the upgrade lock before swapping %s: %w", ErrMigration, t.name, err)
	}
	if holder != "'"+opts.Holder+"'" {
		return fmt.Errorf("%w: lost the upgrade lock of %s to %s while copying %s; leaving the swap to it", ErrMigration, db, holder, t.name)
	}
	infos, err := tableInfos(ctx, conn, db, opts.StatementTimeout)
	if err != nil {
		return err
	}
	if t.current(infos[t.name]) {
		return nil // swapped by another; our copy is a leftover folded next
	}
	if err := exec(fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s, %s.%s TO %s.%s", db, t.name, db, old, db, up, db, t.name)); err != nil {
		return err
	}
	slog.Info("forwarder: upgraded a table to the current layout", "table", db+"."+t.name, "replaced", old, "took", time.Since(began))
	return nil
}

// foldInto copies into T every row of leftover l whose identity T lacks,
// checks that none is missing any more, and only then drops l. Rows equal
// in identity are one sample (ReplacingMergeTree), so rows already in T are
// not copied twice and duplicates in l are irrelevant: unlike a row count,
// this check is not changed by merges.
func foldInto(ctx context.Context, conn driver.Conn, db string, t table, l string, exec func(string) error, timeout time.Duration) error {
	if t.identity == "" {
		return fmt.Errorf("%w: %s.%s is left from an upgrade of a table holdfast does not rebuild; drop it by hand", ErrMigration, db, l)
	}
	parts := []string{"1"}
	if t.partitioned {
		var err error
		if parts, err = partitionFilters(ctx, conn, db, l, timeout); err != nil {
			return err
		}
	}
	copied := 0
	for _, p := range parts {
		missing := fmt.Sprintf("%s AND (%s) NOT IN (SELECT %s FROM %s.%s WHERE %s)", p, t.identity, t.identity, db, t.name, p)
		n, err := countWhere(ctx, conn, db, l, missing, timeout)
		if err != nil || n == 0 {
			if err != nil {
				return err
			}
			continue
		}
		if err := t.copy(ctx, conn, db, l, t.name, missing, timeout); err != nil {
			return fmt.Errorf("%w: folding %s into %s: %w", ErrMigration, l, t.name, err)
		}
		if n, err = countWhere(ctx, conn, db, l, missing, timeout); err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("%w: %s still has %d rows %s lacks after copying them; keeping it, will retry", ErrMigration, l, n, t.name)
		}
		copied++
	}
	if err := exec(fmt.Sprintf("DROP TABLE IF EXISTS %s.%s", db, l)); err != nil {
		return err
	}
	slog.Info("forwarder: folded an upgrade's leftover table into its table and dropped it", "table", db+"."+t.name, "leftover", l, "partitions_with_missing_rows", copied)
	return nil
}

// partitionFilters returns a WHERE condition per partition of table l: the
// measurement tables' partition expression equal to the partition's value.
func partitionFilters(ctx context.Context, conn driver.Conn, db, l string, timeout time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rows, err := conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = ? AND active", db, l)
	if err != nil {
		return nil, fmt.Errorf("%w: listing partitions of %s: %w", ErrMigration, l, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("%w: listing partitions of %s: %w", ErrMigration, l, err)
		}
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %s has partition %q, not one of intDiv(timestamp_ns, %d)", ErrMigration, l, p, partitionWeekNs)
		}
		out = append(out, fmt.Sprintf("intDiv(timestamp_ns, %d) = %d", partitionWeekNs, v))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: listing partitions of %s: %w", ErrMigration, l, err)
	}
	return out, nil
}

func countWhere(ctx context.Context, conn driver.Conn, db, name, where string, timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var n uint64
	if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.%s WHERE %s", db, name, where)).Scan(&n); err != nil {
		return 0, fmt.Errorf("%w: counting %s: %w", ErrMigration, name, err)
	}
	return n, nil
}

// tableInfos reads the engine and sorting key of every table in db and the
// type of timeseries_schema's version column.
func tableInfos(ctx context.Context, conn driver.Conn, db string, timeout time.Duration) (map[string]tableInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rows, err := conn.Query(ctx, "SELECT name, engine, sorting_key FROM system.tables WHERE database = ?", db)
	if err != nil {
		return nil, fmt.Errorf("%w: listing tables: %w", ErrMigration, err)
	}
	out := map[string]tableInfo{}
	for rows.Next() {
		var name, engine, key string
		if err := rows.Scan(&name, &engine, &key); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%w: listing tables: %w", ErrMigration, err)
		}
		out[name] = tableInfo{engine: engine, sortingKey: key}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: listing tables: %w", ErrMigration, err)
	}
	var typ string
	err = conn.QueryRow(ctx, "SELECT type FROM system.columns WHERE database = ? AND table = ? AND name = 'version'", db, schemaTable).Scan(&typ)
	switch {
	case err == nil:
		ti := out[schemaTable]
		ti.versionColumn = typ
		out[schemaTable] = ti
	case !errors.Is(err, sql.ErrNoRows):
		// Guessing "not current" here would rebuild a current table.
		return nil, fmt.Errorf("%w: reading the type of %s.version: %w", ErrMigration, schemaTable, err)
	}
	return out, nil
}

// copySchemaRows copies timeseries_schema rows matching where, giving each
// the field-set version of its fields (version 1 stored only "first schema
// seen"). The version column is not read: it is UInt16 in version 1 and
// UInt32 since. The table has a row per timeseries name and version, so it
// is small; it is read whole.
func copySchemaRows(ctx context.Context, conn driver.Conn, db, from, to, where string, timeout time.Duration) error {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rows, err := conn.Query(qctx, fmt.Sprintf("SELECT timeseries_name, fields_name, fields_type, fields_source, datum_type, created_ns FROM %s.%s WHERE %s", db, from, where))
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
			createdNs   int64
		)
		if err := rows.Scan(&name, &fn, &ft, &fs, &dtype, &createdNs); err != nil {
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
