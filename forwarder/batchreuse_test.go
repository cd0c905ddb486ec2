package forwarder

import (
	"context"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
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
	kept := f.w.batches.Kept()
	if kept == 0 {
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
}
