package forwarder

import (
	"context"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// TestPipelinedDeliveryManyBatches: with small batches, deliveries run
// beside the reading of the next batch dozens of times; every sample
// arrives exactly once (no replays happened, so the raw row count equals
// the samples), values intact, the checkpoint at the end.
func TestPipelinedDeliveryManyBatches(t *testing.T) {
	e := newEnv(t, "")
	e.record2, e.verified = true, true
	samples := sampletest.NewFleet(30).Append(nil, 20_000, 1_700_000_000_000_000_000)
	e.appendPages(samples, 100)
	opts := e.options()
	opts.BatchRows = 500
	f, _ := e.start(opts)
	e.flush(f, 2*time.Minute)
	if got := e.count(false); got != uint64(len(samples)) {
		t.Errorf("%d rows stored (without FINAL), want %d: every sample once", got, len(samples))
	}
	back := e.readBack()
	for _, s := range samples {
		if d, ok := back[s.TimestampNs]; !ok || !sameDatum(s.Datum, d) {
			t.Fatalf("sample at %d: stored %v %+v, wrote %+v", s.TimestampNs, ok, d, s.Datum)
		}
	}
	if st := f.Status(); st.CheckpointIndex != e.wal.Stats().LastIndex {
		t.Errorf("checkpoint %d, WAL ends at %d", st.CheckpointIndex, e.wal.Stats().LastIndex)
	}
}

// TestPipelinedCollisionAcrossBatches: two timeseries with one key in
// different batches, the second read while the first's batch may still be
// in flight: the first keeps the key, every sample of the second is refused
// (quarantined), whether its batch met the first in flight or written.
func TestPipelinedCollisionAcrossBatches(t *testing.T) {
	e := newEnv(t, "")
	e.record2, e.verified = true, true
	const ts = 1_700_000_000_000_000_000
	var first, second []pa.Sample
	for i := int64(0); i < 400; i++ {
		first = append(first, vmSample("cpu_busy", 1, nil, ts+i, pa.Datum{Type: pa.DatumF64, F64: 1}))
		second = append(second, vmSample("cpu_busy", 2, nil, ts+1000+i, pa.Datum{Type: pa.DatumF64, F64: 2}))
	}
	// Batches of 50 rows: records alternate between the two timeseries.
	for i := 0; i < 400; i += 50 {
		e.appendPages(first[i:i+50], 50)
		e.appendPages(second[i:i+50], 50)
	}
	opts := e.options()
	opts.BatchRows = 50
	f, err := New(e.wal, e.state, opts)
	if err != nil {
		t.Fatal(err)
	}
	f.w.keyOf = func([]byte) uint64 { return 7 }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done; f.Close() }()
	e.flush(f, 2*time.Minute)
	if n := e.countWhere("measurements_f64", "timeseries_key = 7 AND datum = 1"); n != 400 {
		t.Errorf("key 7 holds %d samples of the first timeseries, want 400", n)
	}
	if n := e.countWhere("measurements_f64", "datum = 2"); n != 0 {
		t.Errorf("%d samples of the second timeseries were stored under the first one's key", n)
	}
	q, err := quarantined(e.state)
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, r := range q {
		var page pa.PageRecord
		if err := pa.DecodePageRecord(r.Payload, &page); err != nil {
			t.Fatal(err)
		}
		kept += len(page.Samples)
	}
	if kept != 400 {
		t.Errorf("quarantine keeps %d samples of the second timeseries, want 400", kept)
	}
}

// TestSerialDeliveryManyBatches: with SerialDelivery each batch is
// delivered before the next is read; every sample arrives exactly once.
func TestSerialDeliveryManyBatches(t *testing.T) {
	e := newEnv(t, "")
	samples := sampletest.NewFleet(30).Append(nil, 5_000, 1_700_000_000_000_000_000)
	e.appendPages(samples, 100)
	opts := e.options()
	opts.BatchRows, opts.SerialDelivery = 500, true
	f, _ := e.start(opts)
	e.flush(f, 2*time.Minute)
	if got := e.count(false); got != uint64(len(samples)) {
		t.Errorf("%d rows stored (without FINAL), want %d: every sample once", got, len(samples))
	}
}

// TestBatchCutCountsFieldsRows: a batch is cut on its measurement rows and
// the fields rows of its new timeseries together (a quarter each). Ten
// records of 100 samples, each sample a new timeseries with five fields
// (100 + 500/4 = 225 a record), under BatchRows 200: every record is a
// batch of its own. Cut on samples alone, two records shared a batch (5
// batches).
func TestBatchCutCountsFieldsRows(t *testing.T) {
	e := newEnv(t, "")
	e.record2, e.verified = true, true
	const ts = 1_700_000_000_000_000_000
	extra := []pa.Field{{Name: "a", Value: pa.U64Value(1)}, {Name: "b", Value: pa.U64Value(2)}, {Name: "c", Value: pa.U64Value(3)}, {Name: "d", Value: pa.U64Value(4)}}
	var samples []pa.Sample
	for i := int64(0); i < 1000; i++ {
		samples = append(samples, vmSample("cpu_busy", uint64(i), extra, ts+i, pa.Datum{Type: pa.DatumF64, F64: float64(i)}))
	}
	e.appendPages(samples, 100)
	opts := e.options()
	opts.BatchRows, opts.FlushAge = 200, time.Hour
	f, _ := e.start(opts)
	e.flush(f, 2*time.Minute)
	if got := e.count(false); got != uint64(len(samples)) {
		t.Errorf("%d rows stored, want %d", got, len(samples))
	}
	if got := e.countWhere("fields_u64", "1"); got != 5000 {
		t.Errorf("%d fields rows, want 5,000 (five for each of 1,000 timeseries)", got)
	}
	if got := counterValue(f.m.batches); got < 10 {
		t.Errorf("%.0f batches delivered, want at least 10: a record of 100 new timeseries weighs 225 rows against BatchRows 200", got)
	}
}
