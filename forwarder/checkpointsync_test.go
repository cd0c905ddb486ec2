package forwarder

import (
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	"github.com/holdfast/holdfast/internal/statetest"
)

// TestCheckpointSurvivesPowerLossAfterTruncation: the checkpoint is written
// with pebble.Sync before the WAL is truncated behind it. The state store
// runs on a file system that forgets every write not synced (Pebble's strict
// in-memory FS, as a power loss would); the WAL is on disk and truncated for
// real. After the "power loss" the store must still hold the last
// checkpoint: an older one would point into records the WAL no longer has
// (the forwarder would refuse to start, or the records between would be
// lost), and a restarted forwarder inserts nothing again.
func TestCheckpointSurvivesPowerLossAfterTruncation(t *testing.T) {
	e := newEnv(t, "")
	if err := e.state.Close(); err != nil {
		t.Fatal(err)
	}
	pl := statetest.NewPowerLoss(t)
	e.state = pl.Open()

	samples := sampletest.NewFleet(5).Append(nil, 8000, 1_700_000_000_000_000_000)
	e.appendPages(samples, 100)
	opts := e.options()
	opts.BatchRows = 1000 // several batches, checkpoints and truncations
	f, stop := e.start(opts)
	e.flush(f, 60*time.Second)
	checkpoint := f.Status().CheckpointIndex
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	first := e.wal.Stats().FirstIndex
	if checkpoint != e.wal.Stats().LastIndex || first <= 1 {
		t.Fatalf("checkpoint %d, WAL %d..%d: want everything forwarded and the WAL truncated", checkpoint, first, e.wal.Stats().LastIndex)
	}

	pl.Cut(func() { e.state.Close() }) // power loss: whatever the store did not sync is gone
	e.state = pl.Open()

	got, err := LoadCheckpoint(e.state)
	if err != nil || got != checkpoint {
		t.Fatalf("checkpoint after the power loss %d (%v), want %d; the WAL starts at %d", got, err, checkpoint, first)
	}
	f2, _ := e.start(e.options()) // New checks the checkpoint against the WAL
	e.flush(f2, 60*time.Second)
	if raw, final := e.count(false), e.count(true); raw != uint64(len(samples)) || final != uint64(len(samples)) {
		t.Fatalf("ClickHouse holds %d rows (%d with FINAL), want %d: the restart inserted again", raw, final, len(samples))
	}
}
