package forwarder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	"github.com/holdfast/holdfast/wal"
)

// TestRuntimeWALGapStops: records after the checkpoint disappear from the
// WAL while the forwarder runs (here truncated from outside). The forwarder
// used to seek to the WAL's first record and skip them without a word; now
// Run stops with the missing range, and the status shows it.
func TestRuntimeWALGapStops(t *testing.T) {
	e := newEnv(t, "")
	f, err := New(e.wal, e.state, e.options())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 0; i < 20; i++ {
		if _, err := e.wal.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: make([]byte, 64<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := e.wal.TruncateThrough(10); err != nil || n == 0 {
		t.Fatalf("TruncateThrough: %d segments, %v", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	// Flush returns when everything is checkpointed (the old, skipping
	// behaviour) or when Run has stopped.
	fctx, fcancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { err := <-done; fcancel(); runErr <- err }()
	ferr := f.Flush(fctx)
	cancel()
	err = <-runErr
	if !wal.IsCorrupt(err) || !strings.Contains(err.Error(), "records 1..") || !strings.Contains(err.Error(), "are missing") {
		t.Fatalf("Run = %v (Flush %v), want it stopped with the missing range", err, ferr)
	}
	if st := f.Status(); !strings.Contains(st.LastInsertError, "are missing") || st.CheckpointIndex != 0 {
		t.Fatalf("status %+v does not show the stop, or the checkpoint moved", st)
	}
}

// TestWALReadIOErrorRetried: a read of a WAL record that fails for an I/O
// reason (here its segment file cannot be opened for a while) used to come
// back as corruption, and the forwarder quarantined the record without its
// payload: a good record dropped. Now the read is retried with backoff and
// every sample arrives, nothing quarantined. The pause before the file comes
// back only lets the forwarder meet the error; the verdict does not depend
// on its length.
func TestWALReadIOErrorRetried(t *testing.T) {
	e := newEnv(t, "")
	samples := sampletest.NewFleet(5).Append(nil, 2_000, 1_700_000_000_000_000_000)
	dir := filepath.Join(e.dir, "wal")
	opts := wal.Options{SegmentSize: 16 << 10, SegmentCacheSize: 1}
	e.reopenWAL(opts)
	e.appendPages(samples, 20)
	e.reopenWAL(opts) // nothing cached
	path := walSegments(t, dir)[0]
	if err := os.Rename(path, path+".away"); err != nil {
		t.Fatal(err)
	}
	f, stop := e.start(e.options())
	time.Sleep(200 * time.Millisecond)
	if err := os.Rename(path+".away", path); err != nil {
		t.Fatal(err)
	}
	e.flush(f, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := f.Status(); st.QuarantinedRecords != 0 {
		t.Fatalf("%d records quarantined after a transient read error", st.QuarantinedRecords)
	}
	if got := e.count(true); got != uint64(len(samples)) {
		t.Fatalf("%d samples in ClickHouse, want %d", got, len(samples))
	}
}
