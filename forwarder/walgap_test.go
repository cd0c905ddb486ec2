package forwarder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/wal"
)

// TestFirstSegmentDeletedRefusesToStart: with the WAL's first segment gone,
// the records between the checkpoint and the WAL's first index were
// acknowledged and never forwarded. The forwarder used to start at the WAL's
// first index without a word; now New fails, naming the missing range.
func TestFirstSegmentDeletedRefusesToStart(t *testing.T) {
	e := newEnv(t, "")
	e.reopenWAL(wal.Options{SegmentSize: 4096})
	dir := filepath.Join(e.dir, "wal")
	for i := 0; i < 200; i++ {
		if _, err := e.wal.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: make([]byte, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := storeCheckpoint(e.state, 10); err != nil {
		t.Fatal(err)
	}
	e.wal.Close()
	if err := os.Remove(walSegments(t, dir)[0]); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.wal, err = wal.Open(dir, wal.Options{SegmentSize: 4096}); err != nil {
		t.Fatal(err)
	}
	first := e.wal.Stats().FirstIndex
	f, err := New(e.wal, e.state, e.options())
	if err == nil {
		f.Close()
		t.Fatalf("New started with records 11..%d missing", first-1)
	}
	if !wal.IsCorrupt(err) || !strings.Contains(err.Error(), "records 11..") || !strings.Contains(err.Error(), "are missing") {
		t.Fatalf("New: %v, want the missing range named", err)
	}
}
