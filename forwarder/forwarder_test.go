package forwarder

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

func TestRoundTripEveryDatumTypeExactly(t *testing.T) {
	checkRoundTrip(t, newEnv(t, ""))
}

// checkRoundTrip writes one sample of every datum type and edge value to
// e's WAL, forwards it and reads every value, field and schema back.
func checkRoundTrip(t *testing.T, e *env) {
	in := sampletest.EveryDatumType(math.MinInt64 + 1000)
	// Sample timestamps are distinct, so each row is found by its timestamp.
	e.appendPages(in, 7)
	f, _ := e.start(e.options())
	e.flush(f, 60*time.Second)
	// 18.16 takes the portable path: no insert_deduplication_token (a
	// string setting fails in the client below revision 54429, so the
	// flush above would not have succeeded with one).
	if st := f.Status(); !strings.HasPrefix(st.ServerVersion, "18.16.") || st.ModernPath {
		t.Errorf("server version %q, modern path %v; want 18.16 and the portable path", st.ServerVersion, st.ModernPath)
	}

	got := e.readBack()
	if len(got) != len(in) {
		t.Fatalf("read back %d samples, wrote %d", len(got), len(in))
	}
	for _, s := range in {
		d, ok := got[s.TimestampNs]
		if !ok {
			t.Fatalf("sample %s at %d is missing", s.Metric.Name, s.TimestampNs)
		}
		if !sameDatum(s.Datum, d) {
			t.Errorf("%s (%v) at %d:\nwrote %+v\nread  %+v", s.Metric.Name, s.Datum.Type, s.TimestampNs, s.Datum, d)
		}
	}
	// Fields: the edge-case target's values, typed, IPs as canonical text.
	key := pa.TimeseriesKey(&in[0])
	checks := map[string]string{
		"fields_string":  "sled-0 ünïcode",
		"fields_ip_addr": "10.0.0.1,fd00::1",
		"fields_u64":     "0," + fmt.Sprint(uint64(math.MaxUint64)), // metric field n=0, target field ulong
		"fields_i8":      "-128",
		"fields_uuid":    "deadbeef-0000-0000-0000-000000000001",
	}
	for table, want := range checks {
		var got string
		q := fmt.Sprintf("SELECT arrayStringConcat(arraySort(groupArray(toString(field_value))), ',') FROM %s.%s FINAL WHERE timeseries_key = %d", e.db, table, key)
		if err := e.conn.QueryRow(context.Background(), q).Scan(&got); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got != want {
			t.Errorf("%s for key %d = %q, want %q", table, key, got, want)
		}
	}
	var schemas uint64
	if err := e.conn.QueryRow(context.Background(), fmt.Sprintf("SELECT count() FROM %s.timeseries_schema FINAL WHERE timeseries_name = 'edge_case:histogram_f64' AND datum_type = 'histogram_f64' AND has(fields_name, 'addr')", e.db)).Scan(&schemas); err != nil || schemas != 1 {
		t.Errorf("timeseries_schema row for edge_case:histogram_f64: %d, %v", schemas, err)
	}
}

func TestCheckpointAndTruncation(t *testing.T) {
	e := newEnv(t, "")
	samples := sampletest.NewFleet(50).Append(nil, 20_000, 1_700_000_000_000_000_000)
	e.appendPages(samples, 100) // 200 records over several 256 KiB segments
	before := e.wal.Stats()
	if before.Segments < 3 {
		t.Fatalf("want several segments to truncate, have %d", before.Segments)
	}
	f, stop := e.start(e.options())
	e.flush(f, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ckpt, err := LoadCheckpoint(e.state)
	if err != nil || ckpt != before.LastIndex {
		t.Fatalf("checkpoint %d (%v), want %d", ckpt, err, before.LastIndex)
	}
	after := e.wal.Stats()
	if after.Segments != 1 || after.FirstIndex <= before.FirstIndex {
		t.Fatalf("WAL not truncated behind the checkpoint: before %+v after %+v", before, after)
	}
	if n := e.count(true); n != uint64(len(samples)) {
		t.Fatalf("ClickHouse holds %d samples, want %d", n, len(samples))
	}
	// A restart forwards nothing again: the checkpoint is durable.
	e.close()
	e.open()
	f, _ = e.start(e.options())
	e.flush(f, 10*time.Second)
	if n := e.count(false); n != uint64(len(samples)) {
		t.Fatalf("after restart: %d rows (without FINAL), want %d: something was re-inserted", n, len(samples))
	}
}

const crashChildEnv = "HOLDFAST_FORWARDER_CRASH_CHILD"

// killedChild closes the env (the child takes the WAL's lock), runs the
// test child (TestCrashChild, TestCrashChild3) with its spec in env var
// envVar, requires that it died of SIGKILL, and opens the env again.
func (e *env) killedChild(child, envVar, spec string) {
	e.t.Helper()
	e.close()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), envVar+"="+spec)
	out, err := cmd.CombinedOutput()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		e.t.Fatalf("child was not killed: %v\n%s", err, out)
	}
	e.open()
}

// TestCrashChild is the child of TestKillBetweenInsertAndCheckpoint: it
// forwards, and SIGKILLs itself right after the first insert, before the
// checkpoint is written.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		return
	}
	parts := strings.Split(spec, "|")
	e := &env{t: t, addr: parts[0], db: parts[1], dir: parts[2]}
	if len(parts) > 3 {
		e.cluster = parts[3]
	}
	e.open()
	f, err := New(e.wal, e.state, e.options())
	if err != nil {
		t.Fatal(err)
	}
	f.afterInsert = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	f.Run(context.Background())
	t.Fatal("forwarder returned instead of being killed")
}

func TestKillBetweenInsertAndCheckpoint(t *testing.T) {
	e := newEnv(t, "")
	samples := sampletest.NewFleet(20).Append(nil, 5_000, 1_700_000_000_000_000_000)
	samples = append(samples, sampletest.EveryDatumType(1)...)
	e.appendPages(samples, 250)
	e.killedChild("TestCrashChild", crashChildEnv, fmt.Sprintf("%s|%s|%s", e.addr, e.db, e.dir))
	if ckpt, err := LoadCheckpoint(e.state); err != nil || ckpt != 0 {
		t.Fatalf("checkpoint after the kill = %d, %v; want 0 (killed before it was written)", ckpt, err)
	}
	inserted := e.count(false)
	if inserted != uint64(len(samples)) {
		t.Fatalf("the killed child inserted %d rows, want all %d", inserted, len(samples))
	}
	// The restarted forwarder replays the whole batch; readers still see
	// each sample once.
	f, _ := e.start(e.options())
	e.flush(f, 60*time.Second)
	raw, final := e.count(false), e.count(true)
	t.Logf("rows stored %d (replay included, before merges), rows seen with FINAL %d", raw, final)
	if final != uint64(len(samples)) {
		t.Fatalf("readers see %d samples, want %d", final, len(samples))
	}
	got := e.readBack()
	for _, s := range samples {
		if d, ok := got[s.TimestampNs]; !ok || !sameDatum(s.Datum, d) {
			t.Fatalf("sample at %d: got %+v want %+v", s.TimestampNs, d, s.Datum)
		}
	}
}

func TestQuarantineKeepsTheRestFlowing(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	good := sampletest.NewFleet(5).Append(nil, 1000, 1_700_000_000_000_000_000)
	e.appendPages(good[:500], 100) // records 1..5
	// 6: not a page record at all; 7: garbage payload; 8: an invalid sample.
	mustAppend := func(r wal.Record) uint64 {
		idx, err := e.wal.Append(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	unknown := mustAppend(wal.Record{Type: 99, Payload: []byte("future record")})
	garbage := mustAppend(wal.Record{Type: wal.TypePage, Payload: []byte{1, 2, 3}})
	bad := good[0]
	bad.Metric.Name = "Bad-Name"
	invalid := mustAppend(wal.Record{Type: wal.TypePage, Payload: pa.AppendPageRecord(nil, "p", "i", []pa.Sample{bad})})
	// 9: a record ClickHouse itself refuses. A column computed at insert
	// that cannot parse the timeseries name makes the server refuse every
	// i64 row (CANNOT_PARSE_TEXT). (Narrowing a column is schema drift, which
	// is retried, not quarantined: TestSchemaDriftIsRetriedNotQuarantined.)
	if err := e.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+e.db); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureSchema(ctx, e.conn, e.db); err != nil {
		t.Fatal(err)
	}
	if err := e.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.measurements_i64 ADD COLUMN refuse UInt8 MATERIALIZED toUInt8(timeseries_name)", e.db)); err != nil {
		t.Fatal(err)
	}
	refused := mustAppend(wal.Record{Type: wal.TypePage, Payload: pa.AppendPageRecord(nil, "p", "i",
		[]pa.Sample{{Target: good[0].Target, Metric: pa.Named{Name: "refused"}, TimestampNs: 5, Datum: pa.Datum{Type: pa.DatumI64, Int: 1}}})})
	var noI64 []pa.Sample
	for _, s := range good[500:] {
		if s.Datum.Type != pa.DatumI64 {
			noI64 = append(noI64, s)
		}
	}
	e.appendPages(noI64, 100)

	f, _ := e.start(e.options())
	e.flush(f, 60*time.Second)
	q, err := quarantined(e.state)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{unknown: "unknown record type 99", garbage: "malformed", invalid: "Bad-Name", refused: "rejected by ClickHouse"}
	firstFive := 0
	for _, s := range good[:500] {
		if s.Datum.Type == pa.DatumI64 {
			firstFive++
		}
	}
	// Records 1..5 hold i64 samples too: with that column they are
	// refused as well, and must be quarantined, not lost or retried forever.
	for _, r := range q {
		if r.Index <= 5 {
			if !strings.Contains(r.Reason, "rejected by ClickHouse") || len(r.Payload) == 0 {
				t.Errorf("record %d quarantined as %q with %d payload bytes", r.Index, r.Reason, len(r.Payload))
			}
			continue
		}
		if !strings.Contains(r.Reason, want[r.Index]) {
			t.Errorf("record %d quarantined as %q, want %q", r.Index, r.Reason, want[r.Index])
		}
		delete(want, r.Index)
	}
	if len(want) != 0 {
		t.Fatalf("not quarantined: %v (quarantine holds %+v)", want, q)
	}
	if st := f.Status(); st.CheckpointIndex != e.wal.Stats().LastIndex || st.QuarantinedRecords != uint64(len(q)) {
		t.Fatalf("status %+v, WAL last %d, quarantined %d", st, e.wal.Stats().LastIndex, len(q))
	}
	if n := e.count(true); n != uint64(len(noI64)) {
		t.Fatalf("ClickHouse holds %d samples, want the %d that were not refused", n, len(noI64))
	}
}

// TestClickHouseOutage stops a private ClickHouse while records keep coming,
// then starts it again: everything arrives, nothing twice.
func TestClickHouseOutage(t *testing.T) {
	_ = newEnv(t, "") // fails under CI without ClickHouse, skips locally
	script, _ := filepath.Abs("../scripts/clickhouse.sh")
	chdir := t.TempDir()
	run := func(args ...string) string {
		out, err := exec.Command(script, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("clickhouse.sh %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	addr := strings.TrimPrefix(run("start", chdir), "HOLDFAST_CLICKHOUSE=")
	t.Cleanup(func() { exec.Command(script, "stop", chdir).Run() })

	e := newEnv(t, addr)
	fleet := sampletest.NewFleet(30)
	ts := int64(1_700_000_000_000_000_000)
	var total int
	write := func(n int) {
		e.appendPages(fleet.Append(nil, n, ts), 200)
		ts += int64(n)
		total += n
	}
	write(4000)
	f, _ := e.start(e.options())
	e.flush(f, 60*time.Second)

	run("stop", chdir)
	write(6000) // the WAL keeps taking data
	deadline := time.Now().Add(30 * time.Second)
	for f.Status().ConsecutiveFailures < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	st := f.Status()
	if st.ConsecutiveFailures < 2 || st.LastInsertError == "" || st.CheckpointIndex == e.wal.Stats().LastIndex {
		t.Fatalf("forwarder does not report the outage: %+v", st)
	}
	write(2000)
	run("start", chdir)
	e.flush(f, 120*time.Second)
	if n := e.count(true); n != uint64(total) {
		t.Fatalf("after the outage ClickHouse holds %d samples, want %d", n, total)
	}
	if st := f.Status(); st.ConsecutiveFailures != 0 || st.LastInsertError != "" {
		t.Fatalf("status after recovery: %+v", st)
	}
}

func TestEnsureSchemaIdempotentAndVersioned(t *testing.T) {
	e := newEnv(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < 2; i++ {
		from, err := EnsureSchema(ctx, e.conn, e.db)
		if err != nil {
			t.Fatal(err)
		}
		if want := []int{0, SchemaVersion}[i]; from != want {
			t.Fatalf("run %d migrated from %d, want %d", i, from, want)
		}
	}
	if err := recordSchemaVersion(ctx, e.conn, e.db, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureSchema(ctx, e.conn, e.db); err == nil || !strings.Contains(err.Error(), "newer than this build") {
		t.Fatalf("EnsureSchema on a newer schema: %v", err)
	}
	if _, err := EnsureSchema(ctx, e.conn, "bad;name"); err == nil {
		t.Fatal("accepted a database name that is not an identifier")
	}
}

// TestCheckpointAheadOfWALReplaysEverything: a checkpoint beyond the WAL's
// last index means the WAL directory was replaced; the forwarder must replay
// the WAL rather than skip records that were never forwarded.
func TestCheckpointAheadOfWALReplaysEverything(t *testing.T) {
	e := newEnv(t, "")
	if err := storeCheckpoint(e.state, 1_000_000); err != nil {
		t.Fatal(err)
	}
	samples := sampletest.NewFleet(10).Append(nil, 3000, 1_700_000_000_000_000_000)
	e.appendPages(samples, 100)
	f, _ := e.start(e.options())
	e.flush(f, 60*time.Second)
	if n := e.count(true); n != uint64(len(samples)) {
		t.Fatalf("ClickHouse holds %d samples, want %d", n, len(samples))
	}
	if ckpt, _ := LoadCheckpoint(e.state); ckpt != e.wal.Stats().LastIndex {
		t.Fatalf("checkpoint %d, want the WAL's last index %d", ckpt, e.wal.Stats().LastIndex)
	}
}

// TestManySmallInsertsKeepTheirConnections is the regression test for a
// clickhouse-go race: cancelling a batch's context right after Send could
// close the connection after it went back to the pool, and a later insert
// failed with "use of closed network connection".
func TestManySmallInsertsKeepTheirConnections(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	if _, err := EnsureSchema(ctx, e.conn, e.db); err != nil {
		t.Fatal(err)
	}
	ins := NewInserter(e.conn, e.db)
	fleet := sampletest.NewFleet(3)
	// The race needs the driver's watchdog goroutine to be scheduled late,
	// as on a loaded machine: keep the cores busy meanwhile.
	stop := make(chan struct{})
	defer close(stop)
	for g := 0; g < 4; g++ {
		go func() {
			for x := 0; ; x++ {
				select {
				case <-stop:
					return
				default:
				}
				if x%1_000_000 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	for i := 0; i < 150; i++ {
		// One attempt each: Inserter retries, so call the writer directly.
		rs := newRowSet()
		ins.w.addSamples(rs, fleet.Append(nil, 10, int64(i)*100), nil)
		if err := ins.w.insert(ctx, rs); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	if n := e.count(true); n != 1500 {
		t.Fatalf("%d samples, want 1500", n)
	}
}
