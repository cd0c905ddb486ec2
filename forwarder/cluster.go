package forwarder

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	pa "github.com/holdfast/holdfast/producerapi"
)

// The cluster flavour of the schema (Options.Cluster, --cluster NAME).
//
// Every table T of the single-server layout becomes two tables on every host
// of the cluster, both created ON CLUSTER:
//
//	T_local  ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/DB/T', '{replica}')
//	         with T's columns and sorting key: the replicas of a shard share it
//	T        Distributed(CLUSTER, DB, T_local, <sharding key>): today's name, so
//	         readers and the forwarder's INSERTs use the names they always did
//
// The sharding key is timeseries_key for measurements and fields (a series,
// and every replay of it, lands on one shard, and the key is in the sorting
// key, so FINAL through the Distributed table is exact: each shard collapses
// its own duplicates), and cityHash64(timeseries_name) for timeseries_schema.
// schema_version is a ReplicatedMergeTree behind a Distributed table too.
//
// INSERTs go through the Distributed tables with insert_distributed_sync=1:
// the INSERT returns only after every shard's local INSERT returned, that is
// after one replica of each shard wrote its part (and registered it in
// ZooKeeper, from where the other replica fetches it). Without the setting an
// 18.16 Distributed INSERT returns once the rows are in a spool directory of
// the server that received it, and a crash of that server before it sent
// them on would lose rows the checkpoint already covers.
//
// In-place upgrades (migrate.go) are not supported on a cluster: their lock
// and RENAME swap are per server. EnsureSchema on a cluster creates a missing
// layout and refuses an older one with ErrMigration (DESIGN.md says how to
// upgrade by hand).

// clusterName is what --cluster accepts; it is spliced into DDL.
var clusterName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)

// ValidateCluster checks a cluster name ("" means a single server).
func ValidateCluster(name string) error {
	if name != "" && !clusterName.MatchString(name) {
		return fmt.Errorf("forwarder: cluster name %q must match %s", name, clusterName)
	}
	return nil
}

// LocalSuffix names the replicated table behind each Distributed table.
const LocalSuffix = "_local"

// insertSettings are sent with every INSERT into a cluster (see above).
var insertSettings = clickhouse.Settings{"insert_distributed_sync": 1}

// insertContext adds the cluster INSERT settings to ctx when cluster is set.
func insertContext(ctx context.Context, cluster string) context.Context {
	if cluster == "" {
		return ctx
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(insertSettings))
}

// shardingKey is the Distributed sharding expression of a table.
func shardingKey(name string) string {
	switch name {
	case schemaTable:
		return "cityHash64(timeseries_name)"
	case "schema_version":
		return "rand()"
	}
	return "timeseries_key"
}

// clusterize turns a single-server CREATE TABLE of db.name into the CREATE
// TABLE of its replicated local table ON CLUSTER. The single-server DDL stays
// the one source of columns and sorting keys.
func clusterize(ddl, db, name, cluster string) (string, error) {
	head := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s (", db, name)
	if !strings.HasPrefix(ddl, head) {
		return "", fmt.Errorf("forwarder: cannot make a cluster table of %q", firstLine(ddl))
	}
	ddl = fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s ON CLUSTER %s (", db, name, LocalSuffix, cluster) + ddl[len(head):]
	zk := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s', '{replica}'", db, name)
	for _, engine := range []string{"ReplacingMergeTree", "MergeTree"} {
		old := "ENGINE = " + engine + "()"
		if strings.Contains(ddl, old) {
			return strings.Replace(ddl, old, "ENGINE = Replicated"+engine+"("+zk+")", 1), nil
		}
	}
	return "", fmt.Errorf("forwarder: no MergeTree engine in %q", firstLine(ddl))
}

func distributedDDL(db, name, cluster string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s ON CLUSTER %s AS %s.%s%s\nENGINE = Distributed(%s, %s, %s%s, %s)",
		db, name, cluster, db, name, LocalSuffix, cluster, db, name, LocalSuffix, shardingKey(name))
}

// ClusterSchemaDDL returns every statement of the current schema on cluster
// (`holdfast schema --cluster`), in the order they must run: the tables',
// then the views' (views.go).
func ClusterSchemaDDL(db, cluster string) ([]string, error) {
	out, err := clusterTablesDDL(db, cluster)
	if err != nil {
		return nil, err
	}
	return append(out, ViewsDDL(db, cluster)...), nil
}

// clusterTablesDDL is ClusterSchemaDDL without the views.
func clusterTablesDDL(db, cluster string) ([]string, error) {
	if err := ValidateDatabase(db); err != nil {
		return nil, err
	}
	if err := ValidateCluster(cluster); err != nil {
		return nil, err
	}
	out := []string{fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s ON CLUSTER %s", db, cluster)}
	add := func(ddl, name string) error {
		local, err := clusterize(ddl, db, name, cluster)
		if err != nil {
			return err
		}
		out = append(out, local, distributedDDL(db, name, cluster))
		return nil
	}
	if err := add(versionTableDDL(db), "schema_version"); err != nil {
		return nil, err
	}
	for _, t := range layout(db) {
		if err := add(t.ddl(t.name), t.name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ensureClusterSchema is EnsureSchemaWith on a cluster. ON CLUSTER DDL waits
// for every host (distributed_ddl_task_timeout, 180 s by default), so it is
// sent only when a table is missing on the server this connection reached:
// a forwarder restarting while a replica is down must not wait for it.
func ensureClusterSchema(ctx context.Context, conn driver.Conn, db string, opts SchemaOptions) (from int, err error) {
	if err := ValidateCluster(opts.Cluster); err != nil {
		return 0, err
	}
	stmts, err := clusterTablesDDL(db, opts.Cluster)
	if err != nil {
		return 0, err
	}
	infos, err := tableInfos(ctx, conn, db, opts.StatementTimeout)
	if err != nil {
		return 0, err
	}
	if ti, ok := infos[schemaTable+LocalSuffix]; ok {
		// tableInfos reads the version column's type of the single-server
		// table only.
		qctx, cancel := context.WithTimeout(ctx, opts.StatementTimeout)
		_ = conn.QueryRow(qctx, "SELECT type FROM system.columns WHERE database = ? AND table = ? AND name = 'version'", db, schemaTable+LocalSuffix).Scan(&ti.versionColumn)
		cancel()
		infos[schemaTable+LocalSuffix] = ti
	}
	// The version is read through the Distributed table, from one replica
	// per shard, which may lag. Reading too low costs an idempotent re-run
	// of the DDL and a repeated version row; an older layout is still
	// refused by the local tables' sorting keys checked below.
	var current uint32
	if _, ok := infos["schema_version"]; ok {
		qctx, cancel := context.WithTimeout(ctx, opts.StatementTimeout)
		err = conn.QueryRow(qctx, fmt.Sprintf("SELECT max(version) FROM %s.schema_version", db)).Scan(&current)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("forwarder: reading schema version: %w", err)
		}
	}
	if current > SchemaVersion {
		return int(current), fmt.Errorf("forwarder: database %s has schema version %d, newer than this build's %d: upgrade holdfast", db, current, SchemaVersion)
	}
	tables := layout(db)
	missing := false
	for _, t := range append(tables, table{name: "schema_version"}) {
		local, lok := infos[t.name+LocalSuffix]
		_, dok := infos[t.name]
		if dok && !lok {
			return int(current), fmt.Errorf("%w: %s.%s exists but %s.%s%s does not: is this a single-server schema? (--cluster %s)",
				ErrSchemaFlavour, db, t.name, db, t.name, LocalSuffix, opts.Cluster)
		}
		if !lok || !dok {
			missing = true
			continue
		}
		if !clusterTableCurrent(t.name, local) {
			return int(current), fmt.Errorf("%w: %s.%s%s is in an older layout (schema version %d): upgrading a cluster in place is not supported; see DESIGN.md, On a cluster",
				ErrMigration, db, t.name, LocalSuffix, current)
		}
	}
	if current != 0 && current < SchemaVersion {
		return int(current), fmt.Errorf("%w: database %s on cluster %s has schema version %d: upgrading a cluster in place is not supported; see DESIGN.md, On a cluster",
			ErrMigration, db, opts.Cluster, current)
	}
	if missing {
		for _, q := range stmts {
			if err := execTimeout(ctx, conn, q, opts.StatementTimeout); err != nil {
				return int(current), fmt.Errorf("forwarder: %s: %w", firstLine(q), err)
			}
		}
	}
	if current < SchemaVersion {
		if err := recordSchemaVersion(insertContext(ctx, opts.Cluster), conn, db, SchemaVersion); err != nil {
			return int(current), err
		}
	}
	ensureViews(ctx, conn, db, opts.Cluster, opts.StatementTimeout)
	return int(current), nil
}

// clusterTableCurrent reports whether a local table of a cluster has the
// current layout. It does not use table.current, which also checks the
// single-server engine.
func clusterTableCurrent(name string, info tableInfo) bool {
	for _, dt := range pa.AllDatumTypes() {
		if name == MeasurementsTable(dt) {
			return info.sortingKey == measurementsSortingKey(dt)
		}
	}
	if name == schemaTable {
		return info.versionColumn == "UInt32"
	}
	return true
}

// ErrSchemaFlavour is returned when a single-server schema is found where
// a cluster one was asked for, or the reverse.
var ErrSchemaFlavour = errors.New("forwarder: schema flavour mismatch")
