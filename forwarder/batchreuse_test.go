package forwarder

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// TestDeliveriesReuseTheirBatches: the forwarder's INSERTs run on kept
// batches (internal/chbatch), and a batch sent again carries only its new
// rows: without FINAL, ClickHouse holds every sample once.
func TestDeliveriesReuseTheirBatches(t *testing.T) {
	e := newEnv(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := EnsureSchema(ctx, e.conn, e.db); err != nil {
		t.Fatal(err)
	}
	fleet := sampletest.NewFleet(5)
	first := fleet.Append(nil, 440, 1_700_000_000_000_000_000)
	e.appendPages(first, 40)
	f, _ := e.start(e.options())
	e.flush(f, time.Minute)
	if f.w.batches.Kept() == 0 {
		t.Fatal("no batch kept after a delivery")
	}
	second := fleet.Append(nil, 440, 1_700_000_010_000_000_000)
	e.appendPages(second, 40)
	e.flush(f, time.Minute)
	if n := e.count(false); n != uint64(len(first)+len(second)) {
		t.Fatalf("ClickHouse holds %d rows (no FINAL), want %d", n, len(first)+len(second))
	}
	if r := f.w.batches.Reuses(); r == 0 {
		t.Fatal("the second delivery ran on no kept batch")
	}
	// New timeseries in the next delivery: without FINAL each timeseries'
	// fields are there once (an INSERT that sent earlier rows again would
	// double the first fleet's).
	newcomers := &sampletest.Fleet{VMs: 5, Measurements: 22, FirstVM: 5}
	third := newcomers.Append(nil, 110, 1_700_000_020_000_000_000)
	e.appendPages(third, 40)
	e.flush(f, time.Minute)
	want := map[pa.FieldType]uint64{}
	seen := map[uint64]bool{}
	for _, smp := range append(first, third...) {
		if k := pa.TimeseriesKey(&smp); !seen[k] {
			seen[k] = true
			for _, fl := range slices.Concat(smp.Target.Fields, smp.Metric.Fields) {
				want[fl.Value.Type]++
			}
		}
	}
	for ft, n := range want {
		var got uint64
		if err := e.conn.QueryRow(ctx, "SELECT count() FROM "+e.db+"."+FieldsTable(ft)).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Errorf("%s holds %d rows (no FINAL), want %d: one per field of each timeseries", FieldsTable(ft), got, n)
		}
	}
}
