package forwarder

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// TestClusterViewsReadEveryShard: on the 2x2 cluster the views are created
// ON CLUSTER on every server and read the Distributed tables: from any
// server, each samples view shows every sample of its type once (series of
// both shards, a replayed batch collapsed) and the timeseries view every
// series once.
func TestClusterViewsReadEveryShard(t *testing.T) {
	e, c := newClusterEnv(t)
	samples := sampletest.NewFleet(20).Append(nil, 2_000, 1_700_000_000_000_000_000)
	e.appendPages(samples, 500)
	f, _ := e.start(e.options())
	e.flush(f, 180*time.Second)
	e.appendPages(samples[:500], 500) // a replay of the first page
	e.flush(f, 180*time.Second)
	syncReplicas(t, c, e.db)
	for _, addr := range c.Addrs {
		onReplica(t, addr, func(r *env) {
			for _, ft := range pa.AllFieldTypes() {
				ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
				err := r.conn.Exec(ctx, fmt.Sprintf("SYSTEM SYNC REPLICA %s.%s%s", e.db, FieldsTable(ft), LocalSuffix))
				cancel()
				if err != nil {
					t.Fatalf("SYSTEM SYNC REPLICA on %s: %v", addr, err)
				}
			}
		})
	}
	perType := map[pa.DatumType]uint64{}
	series := map[string]bool{}
	for i := range samples {
		perType[samples[i].Datum.Type]++
		series[fmt.Sprintf("%s/%d", samples[i].TimeseriesName(), pa.TimeseriesKey(&samples[i]))] = true
	}
	ctx := context.Background()
	for _, addr := range c.Addrs {
		onReplica(t, addr, func(r *env) {
			var views uint64
			if err := r.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND engine = 'View'", e.db).Scan(&views); err != nil {
				t.Fatal(err)
			}
			if views != uint64(len(viewNames())) {
				t.Errorf("%s has %d views, want %d", addr, views, len(viewNames()))
			}
			for _, dt := range pa.AllDatumTypes() {
				var n uint64
				q := fmt.Sprintf("SELECT count() FROM %s.%s", e.db, SamplesView(dt))
				if err := r.conn.QueryRow(ctx, q).Scan(&n); err != nil {
					t.Fatalf("%s on %s: %v", q, addr, err)
				}
				if n != perType[dt] {
					t.Errorf("%s on %s = %d, want %d", q, addr, n, perType[dt])
				}
			}
			var n, unnamed uint64
			q := fmt.Sprintf("SELECT count(), countIf(empty(field_names)) FROM %s.%s", e.db, TimeseriesView)
			if err := r.conn.QueryRow(ctx, q).Scan(&n, &unnamed); err != nil {
				t.Fatalf("%s on %s: %v", q, addr, err)
			}
			if n != uint64(len(series)) || unnamed != 0 {
				t.Errorf("%s on %s = %d series (%d without fields), want %d", q, addr, n, unnamed, len(series))
			}
		})
	}
}
