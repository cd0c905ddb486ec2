package forwarder

import (
	"context"
	"testing"
	"time"

	pa "github.com/holdfast/holdfast/producerapi"
)

// BenchmarkServerInsertCPU: what sending blocks sorted saves the server.
// Each iteration inserts the same 110,000 fleet samples (5,000 VMs,
// shuffled) twice, once sorted by the forwarder and once as added,
// alternating, with the tables' merges stopped so only the INSERTs' work is
// counted: "steady" with their fields written before (measurements rows
// only), "new" as new timeseries every time (the fields rows, about five a
// sample, and the measurements: a start's batches). The server's CPU is its own count
// for query threads (system.events OSCPUVirtualTimeMicroseconds), so run it
// alone on its server: `scripts/bench.sh go ServerInsertCPU` (or with
// HOLDFAST_CLICKHOUSE set, go test -run '^$' -bench ServerInsertCPU
// -benchtime 15x ./forwarder). Reported: server CPU seconds per million
// samples each way and their ratio (sorted over unsorted), and the
// forwarder's own time per sample to sort.
func BenchmarkServerInsertCPU(b *testing.B) {
	for _, newSeries := range []bool{false, true} {
		name := "steady"
		if newSeries {
			name = "new"
		}
		b.Run(name, func(b *testing.B) { benchServerInsertCPU(b, newSeries) })
	}
}

func benchServerInsertCPU(b *testing.B, newSeries bool) {
	e := newEnv(b, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := EnsureSchema(ctx, e.conn, e.db); err != nil {
		b.Fatal(err)
	}
	samples := shuffledFleet(5000, 110_000)
	w := newWriter(e.conn, e.db, 1<<22)
	first := newRowSet()
	w.addSamples(first, samples, nil)
	if err := w.insert(ctx, first); err != nil { // fields, schemas; marks them written
		b.Fatal(err)
	}
	tables := []string{"timeseries_schema"}
	for _, t := range pa.AllDatumTypes() {
		tables = append(tables, MeasurementsTable(t))
	}
	for _, ft := range pa.AllFieldTypes() {
		tables = append(tables, FieldsTable(ft))
	}
	for _, table := range tables {
		if err := e.conn.Exec(ctx, "SYSTEM STOP MERGES "+e.db+"."+table); err != nil {
			b.Fatal(err)
		}
	}
	defer func() { sortBlocks = true }()
	var cpu [2]time.Duration // unsorted, sorted
	var sortTook time.Duration
	rs := newRowSet()
	b.ResetTimer()
	for b.Loop() {
		for mode := range 2 {
			sortBlocks = mode == 1
			if newSeries {
				w.forgetSeen()
			}
			rs.reset()
			w.addSamples(rs, samples, nil)
			if mode == 1 {
				t0 := time.Now()
				rs.columns() // sorts; insert finds the rows sorted
				for _, f := range rs.fields {
					if f != nil {
						f.sortRows() // sendFields finds them sorted
					}
				}
				sortTook += time.Since(t0)
			}
			before := serverCPU(ctx, b, e)
			if err := w.insert(ctx, rs); err != nil {
				b.Fatal(err)
			}
			cpu[mode] += serverCPU(ctx, b, e) - before
		}
	}
	msamples := float64(b.N) * float64(len(samples)) / 1e6
	b.ReportMetric(cpu[0].Seconds()/msamples, "server-cpu-s/Msample-unsorted")
	b.ReportMetric(cpu[1].Seconds()/msamples, "server-cpu-s/Msample-sorted")
	b.ReportMetric(cpu[1].Seconds()/cpu[0].Seconds(), "sorted/unsorted")
	b.ReportMetric(sortTook.Seconds()/msamples, "sort-s/Msample")
}

// serverCPU is the server's CPU time in query threads so far.
func serverCPU(ctx context.Context, b *testing.B, e *env) time.Duration {
	b.Helper()
	return time.Duration(serverEvent(ctx, b, e, "OSCPUVirtualTimeMicroseconds")) * time.Microsecond
}
