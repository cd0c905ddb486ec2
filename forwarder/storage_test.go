package forwarder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

func vmSample(metric string, vm uint64, extra []pa.Field, ts int64, d pa.Datum) pa.Sample {
	return pa.Sample{
		Target:      pa.Named{Name: "virtual_machine", Fields: []pa.Field{{Name: "vm", Value: pa.U64Value(vm)}}},
		Metric:      pa.Named{Name: metric, Fields: extra},
		TimestampNs: ts,
		Datum:       d,
	}
}

func (e *env) countWhere(table, where string) uint64 {
	e.t.Helper()
	var n uint64
	q := fmt.Sprintf("SELECT count() FROM %s.%s FINAL WHERE %s", e.db, table, where)
	if err := e.conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestCounterResetIsTwoSamples: two samples of one cumulative (or histogram)
// series at the same timestamp with different start times are two samples (a
// counter reset), not a replay of one. Schema version 1 sorted by
// (name, key, timestamp) only, so FINAL showed one of them.
func TestCounterResetIsTwoSamples(t *testing.T) {
	e := newEnv(t, "")
	const ts = 1_700_000_000_000_000_000
	hist := func(start int64) pa.Datum {
		return pa.Datum{Type: pa.DatumHistogramF64, StartTimeNs: start, HistF64: &pa.Histogram[float64]{
			Bins: []float64{0, 1}, Counts: []uint64{1, 2}, Min: 0, Max: 1, Sum: 1}}
	}
	in := []pa.Sample{
		vmSample("disk_read_bytes", 1, nil, ts, pa.Datum{Type: pa.DatumCumulativeU64, Uint: 4096, StartTimeNs: ts - 1000}),
		vmSample("disk_read_bytes", 1, nil, ts, pa.Datum{Type: pa.DatumCumulativeU64, Uint: 0, StartTimeNs: ts}), // reset
		vmSample("latency", 1, nil, ts, hist(ts-1000)),
		vmSample("latency", 1, nil, ts, hist(ts)),
	}
	e.appendPages(in, 1)
	e.appendPages(in, 4) // a replay: must still collapse
	f, _ := e.start(e.options())
	e.flush(f, 60*time.Second)
	for _, dt := range []pa.DatumType{pa.DatumCumulativeU64, pa.DatumHistogramF64} {
		if err := e.conn.Exec(context.Background(), fmt.Sprintf("OPTIMIZE TABLE %s.%s FINAL", e.db, MeasurementsTable(dt))); err != nil {
			t.Fatal(err)
		}
		if n := e.countWhere(MeasurementsTable(dt), "1"); n != 2 {
			t.Errorf("%s holds %d rows with FINAL after a merge, want 2 (two start times at one timestamp)", MeasurementsTable(dt), n)
		}
	}
}

// TestSchemaVersionsSideBySide: an old and a new producer send the same
// metric with different field sets (a rolling upgrade). Both forms are stored
// and queryable, and timeseries_schema holds a row per version. A sample that
// contradicts a version (same fields, another type) is refused by the
// collector's SchemaRegistry.
func TestSchemaVersionsSideBySide(t *testing.T) {
	e := newEnv(t, "")
	const ts = 1_700_000_000_000_000_000
	cpu := []pa.Field{{Name: "cpu", Value: pa.U32Value(3)}}
	reg := pa.NewSchemaRegistry()
	var in []pa.Sample
	for i := int64(0); i < 10; i++ {
		old := vmSample("cpu_busy", 7, nil, ts+i, pa.Datum{Type: pa.DatumF64, F64: float64(i)})
		upgraded := vmSample("cpu_busy", 8, cpu, ts+i, pa.Datum{Type: pa.DatumF64, F64: float64(i) / 2})
		for _, s := range []*pa.Sample{&old, &upgraded} {
			if _, err := reg.Check(s); err != nil {
				t.Fatalf("registry refused a sample of a new version: %v", err)
			}
		}
		in = append(in, old, upgraded)
	}
	bad := vmSample("cpu_busy", 9, []pa.Field{{Name: "cpu", Value: pa.StringValue("3")}}, ts, pa.Datum{Type: pa.DatumF64})
	if _, err := reg.Check(&bad); !errors.Is(err, pa.ErrSchemaConflict) {
		t.Fatalf("a contradiction within a version: %v, want ErrSchemaConflict", err)
	}
	e.appendPages(in, 5)
	f, _ := e.start(e.options())
	e.flush(f, 60*time.Second)

	v1, v2 := pa.SchemaVersion([]string{"vm"}), pa.SchemaVersion([]string{"cpu", "vm"})
	if n := e.countWhere("measurements_f64", "timeseries_name = 'virtual_machine:cpu_busy'"); n != 20 {
		t.Errorf("measurements_f64 holds %d samples of cpu_busy, want 20 (10 per version)", n)
	}
	// Both forms are queryable by their fields.
	q := fmt.Sprintf(`SELECT count() FROM %[1]s.measurements_f64 FINAL WHERE timeseries_key IN
		(SELECT timeseries_key FROM %[1]s.fields_u32 FINAL WHERE timeseries_name = 'virtual_machine:cpu_busy' AND field_name = 'cpu' AND field_value = 3)`, e.db)
	var n uint64
	if err := e.conn.QueryRow(context.Background(), q).Scan(&n); err != nil || n != 10 {
		t.Errorf("samples of the new version found by its field: %d, %v", n, err)
	}
	rows, err := e.conn.Query(context.Background(), fmt.Sprintf("SELECT version, arrayStringConcat(fields_name, ',') FROM %s.timeseries_schema FINAL WHERE timeseries_name = 'virtual_machine:cpu_busy' ORDER BY version", e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[uint32]string{}
	for rows.Next() {
		var v uint32
		var fields string
		if err := rows.Scan(&v, &fields); err != nil {
			t.Fatal(err)
		}
		got[v] = fields
	}
	if want := map[uint32]string{v1: "vm", v2: "cpu,vm"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("timeseries_schema rows of cpu_busy: %v, want %v", got, want)
	}
}

// TestKeyCollisionIsRefusedNotMerged forces two timeseries onto one key (the
// writer's key function is replaced) and checks that the second is not
// merged into the first: its samples are quarantined with the reason,
// counted and logged, and ClickHouse holds only the first timeseries, its
// fields untouched. Without the check both would share key 7: their fields
// rows under one key and their samples at equal timestamps collapsed.
func TestKeyCollisionIsRefusedNotMerged(t *testing.T) {
	checkKeyCollisionRefused(t, newEnv(t, ""))
}

func checkKeyCollisionRefused(t *testing.T, e *env) {
	const ts = 1_700_000_000_000_000_000
	var first, second []pa.Sample
	for i := int64(0); i < 20; i++ {
		first = append(first, vmSample("cpu_busy", 1, nil, ts+i, pa.Datum{Type: pa.DatumF64, F64: 1}))
		second = append(second, vmSample("cpu_busy", 2, nil, ts+i, pa.Datum{Type: pa.DatumF64, F64: 2}))
	}
	// One page with both (a collision inside one batch), then pages of
	// the second alone (a collision with a key written before).
	e.appendPages(append(append([]pa.Sample{}, first[:10]...), second[:10]...), 20)
	e.appendPages(second[10:], 5)
	e.appendPages(first[10:], 10)

	opts := e.options()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	f, err := New(e.wal, e.state, opts)
	if err != nil {
		t.Fatal(err)
	}
	f.w.keyOf = func([]byte) uint64 { return 7 }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done; f.Close() }()
	e.flush(f, 60*time.Second)

	if n := e.countWhere("measurements_f64", "timeseries_key = 7"); n != 20 {
		t.Errorf("key 7 holds %d samples, want the first timeseries' 20", n)
	}
	if n := e.countWhere("measurements_f64", "datum = 2"); n != 0 {
		t.Errorf("%d samples of the second timeseries were stored under the first one's key", n)
	}
	if n := e.countWhere("fields_u64", "field_name = 'vm' AND field_value = 2"); n != 0 {
		t.Errorf("the second timeseries' fields were written under the first one's key (%d rows)", n)
	}
	var m dto.Metric
	if err := f.m.keyCollisions.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 20 {
		t.Errorf("holdfast_forwarder_key_collisions_total = %v, want 20", got)
	}
	q, err := quarantined(e.state)
	if err != nil {
		t.Fatal(err)
	}
	var kept int
	for _, r := range q {
		if !strings.Contains(r.Reason, "key collision") || !strings.Contains(r.Reason, "virtual_machine:cpu_busy") {
			t.Errorf("quarantined record %d: reason %q", r.Index, r.Reason)
		}
		var page pa.PageRecord
		if err := pa.DecodePageRecord(r.Payload, &page); err != nil {
			t.Fatalf("quarantined record %d: %v", r.Index, err)
		}
		for _, s := range page.Samples {
			if s.Target.Fields[0].Value.Uint != 2 {
				t.Errorf("quarantined a sample of vm %d", s.Target.Fields[0].Value.Uint)
			}
			kept++
		}
	}
	if kept != 20 {
		t.Errorf("quarantine keeps %d samples of the second timeseries, want 20", kept)
	}
}

// TestSchemaDriftIsRetriedNotQuarantined: a table whose column no longer
// takes what this build sends (an older or newer holdfast changed it, or
// someone altered it) is our problem, not the data's. The forwarder keeps
// the records and retries; once the column is back they arrive, and nothing
// was quarantined. The first v2 build treated the client's conversion error
// as a rejection: bisection quarantined every record with an i64 sample and
// the checkpoint moved past them.
func TestSchemaDriftIsRetriedNotQuarantined(t *testing.T) {
	e := newEnv(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := EnsureSchema(ctx, e.conn, e.db); err != nil {
		t.Fatal(err)
	}
	alter := func(typ string) {
		if err := e.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.measurements_i64 MODIFY COLUMN datum %s", e.db, typ)); err != nil {
			t.Fatal(err)
		}
	}
	alter("Nullable(String)")
	in := sampletest.NewFleet(5).Append(nil, 440, 1_700_000_000_000_000_000)
	e.appendPages(in, 40)
	f, _ := e.start(e.options())
	for st := f.Status(); st.ConsecutiveFailures < 3 && st.CheckpointIndex == 0; st = f.Status() {
		select {
		case <-ctx.Done():
			t.Fatalf("no failed delivery seen: %+v", f.Status())
		case <-time.After(10 * time.Millisecond):
		}
	}
	st := f.Status()
	if st.CheckpointIndex != 0 || st.QuarantinedRecords != 0 || !strings.Contains(st.LastInsertError, "schema drift") {
		t.Fatalf("with a drifted column: status %+v", st)
	}
	alter("Nullable(Int64)")
	e.flush(f, time.Minute)
	if q, err := quarantined(e.state); err != nil || len(q) != 0 {
		t.Fatalf("quarantined %d records (%v)", len(q), err)
	}
	if n := e.count(true); n != uint64(len(in)) {
		t.Fatalf("ClickHouse holds %d samples, want %d", n, len(in))
	}
}

// TestKeyCollisionAcrossBisection: record 1 holds timeseries A and a sample
// ClickHouse refuses; record 2 holds timeseries B, whose key collides with
// A's (refused as a collision when read). The batch is rejected and bisected:
// record 1 is quarantined whole, so A's key never reaches the key cache. The
// rebuild of record 2 must still leave B out, as decided when it was read;
// the first v2 build checked again, found the key free, and stored B's
// samples under the key it had just quarantined them for.
func TestKeyCollisionAcrossBisection(t *testing.T) {
	checkKeyCollisionAcrossBisection(t, newEnv(t, ""))
}

func checkKeyCollisionAcrossBisection(t *testing.T, e *env) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := EnsureSchema(ctx, e.conn, e.db); err != nil {
		t.Fatal(err)
	}
	// The server refuses every i64 row (CANNOT_PARSE_TEXT), a data error.
	if err := e.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.measurements_i64 ADD COLUMN refuse UInt8 MATERIALIZED toUInt8(timeseries_name)", e.db)); err != nil {
		t.Fatal(err)
	}
	const ts = 1_700_000_000_000_000_000
	var a, b []pa.Sample
	for i := int64(0); i < 10; i++ {
		a = append(a, vmSample("collide_me", 1, nil, ts+i, pa.Datum{Type: pa.DatumF64, F64: 1}))
		b = append(b, vmSample("collide_me", 2, nil, ts+i, pa.Datum{Type: pa.DatumF64, F64: 2}))
	}
	bad := vmSample("memory_used", 3, nil, ts, pa.Datum{Type: pa.DatumI64, Int: 1})
	e.appendPages(append(append([]pa.Sample{}, a...), bad), 11) // record 1
	e.appendPages(b, 10)                                        // record 2
	c := sampletest.NewFleet(2).Append(nil, 44, ts+100)
	var good []pa.Sample
	for _, s := range c {
		if s.Datum.Type != pa.DatumI64 {
			good = append(good, s)
		}
	}
	e.appendPages(good, 20) // records 3.. : delivered

	f, err := New(e.wal, e.state, e.options())
	if err != nil {
		t.Fatal(err)
	}
	f.w.keyOf = func(k []byte) uint64 {
		if bytes.Contains(k, []byte("collide_me")) {
			return 7
		}
		return pa.HashTimeseriesKeyBytes(k)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(rctx) }()
	defer func() { stop(); <-done; f.Close() }()
	e.flush(f, time.Minute)

	if n := e.countWhere("measurements_f64", "timeseries_key = 7"); n != 0 {
		t.Errorf("key 7 holds %d samples: B was stored although quarantined as a collision", n)
	}
	if n := e.count(true); n != uint64(len(good)) {
		t.Errorf("ClickHouse holds %d samples, want the %d of records 3 on", n, len(good))
	}
	q, err := quarantined(e.state)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[uint64]string{}
	for _, r := range q {
		reasons[r.Index] = r.Reason
	}
	if !strings.Contains(reasons[1], "rejected by ClickHouse") || !strings.Contains(reasons[2], "key collision") {
		t.Errorf("quarantine reasons: %v", reasons)
	}
}
