package forwarder

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/chtest"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// newClusterEnv is newEnv against replica 1 of the local cluster, with the
// forwarder in cluster mode; the database is dropped ON CLUSTER at the end.
func newClusterEnv(t *testing.T) (*env, chtest.Cluster) {
	t.Helper()
	c := chtest.ClusterEnv(t)
	e := newEnv(t, c.Addrs[0])
	e.cluster = c.Name
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Second)
		defer cancel()
		if err := e.conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", e.db, c.Name)); err != nil {
			t.Logf("dropping %s on the cluster: %v", e.db, err)
		}
	})
	return e, c
}

// onReplica runs fn with a connection to one replica.
func onReplica(t *testing.T, addr string, fn func(e *env)) {
	t.Helper()
	conn, err := Dial(addr, "default", "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fn(&env{t: t, conn: conn})
}

// syncReplicas waits until every replica has fetched every part its shard
// has (SYSTEM SYNC REPLICA on each local measurements table and
// schema_version). A read through a Distributed table reaches one replica
// per shard, which may lag behind the one the INSERT reached (DESIGN.md, On
// a cluster): tests sync before they count.
func syncReplicas(t *testing.T, c chtest.Cluster, db string) {
	t.Helper()
	for _, addr := range c.Addrs {
		onReplica(t, addr, func(e *env) {
			tables := []string{"schema_version"}
			for _, dt := range pa.AllDatumTypes() {
				tables = append(tables, MeasurementsTable(dt))
			}
			for _, name := range tables {
				ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
				err := e.conn.Exec(ctx, fmt.Sprintf("SYSTEM SYNC REPLICA %s.%s%s", db, name, LocalSuffix))
				cancel()
				if err != nil {
					t.Fatalf("SYSTEM SYNC REPLICA on %s: %v", addr, err)
				}
			}
		})
	}
}

// localCount sums one replica's local measurements tables.
func localCount(t *testing.T, addr, db string, final bool) uint64 {
	t.Helper()
	var total uint64
	onReplica(t, addr, func(e *env) {
		for _, dt := range pa.AllDatumTypes() {
			q := fmt.Sprintf("SELECT count() FROM %s.%s%s", db, MeasurementsTable(dt), LocalSuffix)
			if final {
				q += " FINAL"
			}
			var n uint64
			if err := e.conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
				t.Fatalf("%s on %s: %v", q, addr, err)
			}
			total += n
		}
	})
	return total
}

// checkShards checks that both replicas of each shard come to hold the same
// rows, that the shards add up to want, and that both shards got some. A
// replica restarted after a SIGKILL rejoins only once ZooKeeper ends its old
// session (up to 15 s, then it retries every 10 s), so this waits for the
// replicas to agree, up to a generous bound.
func checkShards(t *testing.T, c chtest.Cluster, db string, want uint64) {
	t.Helper()
	var sum uint64
	for shard := 0; shard < 2; shard++ {
		var a, b uint64
		for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
			a, b = localCount(t, c.Addrs[2*shard], db, true), localCount(t, c.Addrs[2*shard+1], db, true)
			if a == b || time.Now().After(deadline) {
				break
			}
		}
		t.Logf("shard %d: replica %d has %d rows, replica %d has %d (FINAL)", shard+1, 2*shard+1, a, 2*shard+2, b)
		if a != b {
			t.Errorf("shard %d: replicas hold %d and %d rows after 3 minutes", shard+1, a, b)
		}
		if a == 0 {
			t.Errorf("shard %d holds nothing: the Distributed tables do not spread the series", shard+1)
		}
		sum += max(a, b)
	}
	if sum != want {
		t.Errorf("the shards hold %d rows together, want %d", sum, want)
	}
}

func TestClusterSchemaDDLShape(t *testing.T) {
	stmts, err := ClusterSchemaDDL("holdfast", "holdfast")
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(stmts, "\n")
	for _, tb := range append(layout("holdfast"), table{name: "schema_version"}) {
		local := fmt.Sprintf("CREATE TABLE IF NOT EXISTS holdfast.%s_local ON CLUSTER holdfast (", tb.name)
		dist := fmt.Sprintf("CREATE TABLE IF NOT EXISTS holdfast.%s ON CLUSTER holdfast AS holdfast.%s_local\nENGINE = Distributed(holdfast, holdfast, %s_local, ", tb.name, tb.name, tb.name)
		if !strings.Contains(all, local) || !strings.Contains(all, dist) {
			t.Errorf("%s: no replicated local table or Distributed table in front", tb.name)
		}
		if !strings.Contains(all, fmt.Sprintf("Replicated%s('/clickhouse/tables/{shard}/holdfast/%s', '{replica}')",
			map[bool]string{true: "MergeTree", false: "ReplacingMergeTree"}[tb.name == "schema_version"], tb.name)) {
			t.Errorf("%s: not a replicated table with the shard/replica macros", tb.name)
		}
	}
	// Same sorting keys as on a single server.
	for _, dt := range pa.AllDatumTypes() {
		if !strings.Contains(all, fmt.Sprintf("ORDER BY (%s)", measurementsSortingKey(dt))) {
			t.Errorf("%v: sorting key %s missing", dt, measurementsSortingKey(dt))
		}
	}
	if _, err := ClusterSchemaDDL("holdfast", "bad name;"); err == nil {
		t.Error("a cluster name with a space and a semicolon was accepted")
	}
}

// TestClusterForwardsExactlyOnce: the schema is created ON CLUSTER on all
// four servers; what the forwarder delivers through the Distributed tables
// lands once, on one shard per series, on both replicas of that shard, and
// reads back exactly (FINAL through Distributed) from any server.
func TestClusterForwardsExactlyOnce(t *testing.T) {
	e, c := newClusterEnv(t)
	samples := sampletest.NewFleet(40).Append(nil, 8_000, 1_700_000_000_000_000_000)
	samples = append(samples, sampletest.EveryDatumType(1)...)
	e.appendPages(samples, 500)
	f, _ := e.start(e.options())
	e.flush(f, 180*time.Second)
	syncReplicas(t, c, e.db)
	checkShards(t, c, e.db, uint64(len(samples)))

	for i, addr := range c.Addrs {
		onReplica(t, addr, func(r *env) {
			rows, err := r.conn.Query(context.Background(), "SELECT name, engine FROM system.tables WHERE database = ?", e.db)
			if err != nil {
				t.Fatal(err)
			}
			engines := map[string]string{}
			for rows.Next() {
				var n, en string
				if err := rows.Scan(&n, &en); err != nil {
					t.Fatal(err)
				}
				engines[n] = en
			}
			rows.Close()
			for _, tb := range layout(e.db) {
				if engines[tb.name] != "Distributed" || engines[tb.name+LocalSuffix] != "ReplicatedReplacingMergeTree" {
					t.Errorf("replica %d: %s is %q and %s%s is %q", i+1, tb.name, engines[tb.name], tb.name, LocalSuffix, engines[tb.name+LocalSuffix])
				}
			}
		})
	}
	// Read from the other shard's second replica: the query fans out.
	onReplica(t, c.Addrs[3], func(r *env) {
		r.db = e.db
		if got := r.count(true); got != uint64(len(samples)) {
			t.Errorf("through Distributed with FINAL from replica 4: %d samples, want %d", got, len(samples))
		}
		if got := r.count(false); got != uint64(len(samples)) {
			t.Errorf("through Distributed without FINAL: %d rows, want %d", got, len(samples))
		}
		var v uint32
		if err := r.conn.QueryRow(context.Background(), fmt.Sprintf("SELECT max(version) FROM %s.schema_version", e.db)).Scan(&v); err != nil || v != SchemaVersion {
			t.Errorf("schema_version through Distributed = %d, %v; want %d", v, err, SchemaVersion)
		}
	})
	got := e.readBack()
	for _, s := range samples {
		if d, ok := got[s.TimestampNs]; !ok || !sameDatum(s.Datum, d) {
			t.Fatalf("sample at %d: got %+v want %+v", s.TimestampNs, d, s.Datum)
		}
	}
	// A series lives on one shard.
	keys := map[uint64]int{}
	for shard := 0; shard < 2; shard++ {
		onReplica(t, c.Addrs[2*shard], func(r *env) {
			rows, err := r.conn.Query(context.Background(), fmt.Sprintf("SELECT DISTINCT timeseries_key FROM %s.%s%s", e.db, MeasurementsTable(pa.DatumF64), LocalSuffix))
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var k uint64
				if err := rows.Scan(&k); err != nil {
					t.Fatal(err)
				}
				if s, dup := keys[k]; dup {
					t.Errorf("series %#x is on shards %d and %d", k, s+1, shard+1)
				}
				keys[k] = shard
			}
			rows.Close()
		})
	}
	// EnsureSchema again finds everything and sends no ON CLUSTER DDL.
	if from, err := EnsureSchemaWith(context.Background(), e.conn, e.db, SchemaOptions{Cluster: c.Name}); err != nil || from != SchemaVersion {
		t.Errorf("EnsureSchema on the existing cluster schema = %d, %v", from, err)
	}
}

// TestClusterReplayIsDedupedWithoutFinal: a forwarder SIGKILLed between its
// INSERT and its checkpoint replays the batch after a restart. On a cluster
// the replay is cut at the same record (the in-flight mark), so its blocks
// are identical and the replicated tables drop them: no duplicate even
// without FINAL. More records arrive before the restart, so a replay that
// did not honour the mark would insert different blocks and show
// duplicates.
func TestClusterReplayIsDedupedWithoutFinal(t *testing.T) {
	e, c := newClusterEnv(t)
	first := sampletest.NewFleet(20).Append(nil, 5_000, 1_700_000_000_000_000_000)
	first = append(first, sampletest.EveryDatumType(1)...)
	e.appendPages(first, 250)
	lastOfFirst := e.wal.Stats().LastIndex
	e.killedChild("TestCrashChild", crashChildEnv, fmt.Sprintf("%s|%s|%s|%s", e.addr, e.db, e.dir, c.Name))
	if ckpt, err := LoadCheckpoint(e.state); err != nil || ckpt != 0 {
		t.Fatalf("checkpoint after the kill = %d, %v; want 0", ckpt, err)
	}
	if mark, err := loadInflight(e.state); err != nil || mark != lastOfFirst {
		t.Fatalf("in-flight mark = %d, %v; want %d", mark, err, lastOfFirst)
	}
	syncReplicas(t, c, e.db)
	if n := e.count(false); n != uint64(len(first)) {
		t.Fatalf("the killed child inserted %d rows, want %d", n, len(first))
	}
	// Same weekly partition as first: ClickHouse hashes a block per partition,
	// so a replay with extra rows elsewhere would still repeat first's blocks.
	second := sampletest.NewFleet(20).Append(nil, 3_000, 1_700_000_060_000_000_000)
	e.appendPages(second, 250)
	want := uint64(len(first) + len(second))

	f, _ := e.start(e.options())
	e.flush(f, 180*time.Second)
	syncReplicas(t, c, e.db)
	raw, final := e.count(false), e.count(true)
	t.Logf("rows through Distributed: %d without FINAL, %d with FINAL, want %d", raw, final, want)
	if final != want {
		t.Fatalf("readers see %d samples with FINAL, want %d", final, want)
	}
	if raw != want {
		t.Fatalf("the replay shows %d duplicate rows without FINAL: its blocks were not identical", raw-want)
	}
	syncReplicas(t, c, e.db)
	checkShards(t, c, e.db, want)
}

// TestClusterReplicaKilledUnderForwarding: replicas are SIGKILLed and
// restarted while the forwarder delivers: first a replica the forwarder does
// not talk to (its shard's other replica takes the INSERTs), then the one it
// talks to (it retries until it is back). Nothing is lost, nothing is seen
// twice, and the restarted replicas catch up.
func TestClusterReplicaKilledUnderForwarding(t *testing.T) {
	e, c := newClusterEnv(t)
	opts := e.options()
	opts.BatchRows = 1_000
	f, _ := e.start(opts)
	fleet := sampletest.NewFleet(30)
	ts := int64(1_700_000_000_000_000_000)
	total := 0
	feed := func(n int) {
		s := fleet.Append(nil, n, ts)
		ts += int64(n)
		total += n
		e.appendPages(s, 200)
	}
	feed(3_000)
	e.flush(f, 180*time.Second) // the schema exists before any replica dies

	c.Kill(t, 3)
	feed(3_000)
	e.flush(f, 180*time.Second)
	t.Logf("delivered %d samples with replica 3 down", total)
	c.Restart(t, 3)
	feed(2_000)

	c.Kill(t, 1)
	feed(3_000) // the forwarder's server is gone: it retries
	c.Restart(t, 1)
	e.flush(f, 180*time.Second)
	st := f.Status()
	t.Logf("forwarder after the restarts: checkpoint %d, %d samples", st.CheckpointIndex, total)

	// The restarted replicas catch up first: a Distributed read may
	// reach them.
	syncReplicas(t, c, e.db)
	checkShards(t, c, e.db, uint64(total))
	if got := e.count(true); got != uint64(total) {
		t.Fatalf("readers see %d samples with FINAL, want %d", got, total)
	}
	raw := e.count(false)
	t.Logf("rows through Distributed without FINAL: %d (want %d; more means retried batches not yet merged)", raw, total)
}

// TestClusterRefusesOlderSchema: an in-place upgrade is not supported on a
// cluster, so a cluster database at an older schema version is refused
// with ErrMigration before anything is created or written; a single-server
// schema where a cluster one is expected is refused too.
func TestClusterRefusesOlderSchema(t *testing.T) {
	e, c := newClusterEnv(t)
	ctx := context.Background()
	stmts, err := ClusterSchemaDDL(e.db, c.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range stmts[:3] { // the database and schema_version only
		if err := e.conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", firstLine(q), err)
		}
	}
	if err := recordSchemaVersion(insertContext(ctx, c.Name), e.conn, e.db, 1); err != nil {
		t.Fatal(err)
	}
	// The Distributed read of schema_version reaches one replica per shard:
	// let the other replica have the row first (a lagging replica would
	// show no version, and the forwarder would only re-run its idempotent
	// DDL; an older layout's tables are refused by their sorting keys).
	for _, addr := range c.Addrs {
		onReplica(t, addr, func(r *env) {
			if err := r.conn.Exec(ctx, fmt.Sprintf("SYSTEM SYNC REPLICA %s.schema_version%s", e.db, LocalSuffix)); err != nil {
				t.Fatal(err)
			}
		})
	}
	_, err = EnsureSchemaWith(ctx, e.conn, e.db, SchemaOptions{Cluster: c.Name})
	if !errors.Is(err, ErrMigration) || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("EnsureSchema on a cluster database at version 1 = %v, want ErrMigration (not supported)", err)
	}
	var n uint64
	if err := e.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name LIKE 'measurements%'", e.db).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d measurements tables were created (%v), want none", n, err)
	}

	single := newEnv(t, c.Addrs[1])
	if _, err := EnsureSchema(ctx, single.conn, single.db); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureSchemaWith(ctx, single.conn, single.db, SchemaOptions{Cluster: c.Name}); !errors.Is(err, ErrSchemaFlavour) {
		t.Fatalf("EnsureSchema --cluster over a single-server schema = %v, want ErrSchemaFlavour", err)
	}
}

// TestClusterFieldsBlocksMakeOnePartPerShard: on a cluster a fields INSERT
// goes through a Distributed table with insert_distributed_sync, in blocks
// of fieldBlock rows (here 100, a start's INSERT of thousands of rows).
// Each shard still gets one part per fields table, as from one block: the
// shard's local INSERT squashes the blocks as a single server does (merges
// are stopped, so the parts are as inserted). Were each block a part, a
// start's 11 M fields rows would make hundreds of parts per table and
// shard, past ClickHouse's "too many parts" limit.
func TestClusterFieldsBlocksMakeOnePartPerShard(t *testing.T) {
	e, c := newClusterEnv(t)
	ctx := context.Background()
	if _, err := EnsureSchemaWith(ctx, e.conn, e.db, SchemaOptions{Cluster: c.Name}); err != nil {
		t.Fatal(err)
	}
	samples := sampletest.NewFleet(40).Append(nil, 880, 1_700_000_000_000_000_000) // 880 new timeseries
	rowsPerTable := map[string]int{}
	for i := range samples {
		for _, g := range [][]pa.Field{samples[i].Target.Fields, samples[i].Metric.Fields} {
			for _, f := range g {
				rowsPerTable[FieldsTable(f.Value.Type)]++
			}
		}
	}
	for _, addr := range c.Addrs {
		onReplica(t, addr, func(r *env) {
			for table := range rowsPerTable {
				if err := r.conn.Exec(ctx, fmt.Sprintf("SYSTEM STOP MERGES %s.%s%s", e.db, table, LocalSuffix)); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	e.appendPages(samples, 100)
	opts := e.options()
	opts.FlushAge = time.Hour // one batch: every record is there at the start, and Flush sends it
	f, err := New(e.wal, e.state, opts)
	if err != nil {
		t.Fatal(err)
	}
	f.w.fieldBlock = 100
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(runCtx) }()
	defer func() { cancel(); <-done; f.Close() }()
	e.flush(f, 180*time.Second)
	for _, addr := range c.Addrs {
		onReplica(t, addr, func(r *env) {
			for table, n := range rowsPerTable {
				var parts, rows uint64
				q := fmt.Sprintf("SELECT count(), sum(rows) FROM system.parts WHERE database = '%s' AND table = '%s%s' AND active", e.db, table, LocalSuffix)
				if err := r.conn.QueryRow(ctx, q).Scan(&parts, &rows); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: %s%s: %d parts, %d rows (%d fields rows in all, %d blocks)", addr, table, LocalSuffix, parts, rows, n, (n+99)/100)
				if parts > 1 {
					t.Errorf("%s: %s%s has %d parts from one INSERT of %d blocks, want at most 1", addr, table, LocalSuffix, parts, (n+99)/100)
				}
			}
		})
	}
}
