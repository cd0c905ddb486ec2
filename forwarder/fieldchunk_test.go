package forwarder

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// TestFieldsInsertedInChunks: the fields rows of a batch of new timeseries
// go in INSERTs of at most fieldChunk rows (here 7, far below one batch's
// fields), and every one of them arrives.
func TestFieldsInsertedInChunks(t *testing.T) {
	e := newEnv(t, "")
	e.record2, e.verified = true, true
	samples := sampletest.NewFleet(40).Append(nil, 880, 1_700_000_000_000_000_000)
	e.appendPages(samples, 100)
	want := map[string]uint64{}
	seen := map[uint64]bool{}
	for i := range samples {
		s := &samples[i]
		if k := pa.TimeseriesKey(s); !seen[k] {
			seen[k] = true
			for _, g := range [][]pa.Field{s.Target.Fields, s.Metric.Fields} {
				for _, f := range g {
					want[FieldsTable(f.Value.Type)]++
				}
			}
		}
	}
	f, err := New(e.wal, e.state, e.options())
	if err != nil {
		t.Fatal(err)
	}
	f.w.fieldChunk = 7
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done; f.Close() }()
	e.flush(f, 60*time.Second)
	for table, n := range want {
		var got uint64
		q := fmt.Sprintf("SELECT count() FROM %s.%s FINAL", e.db, table)
		if err := e.conn.QueryRow(context.Background(), q).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Errorf("%s holds %d rows, want %d", table, got, n)
		}
	}
	if len(want) == 0 || e.count(true) != uint64(len(samples)) {
		t.Errorf("fields tables %v, %d samples stored, want %d", want, e.count(true), len(samples))
	}
}
