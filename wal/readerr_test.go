package wal_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/holdfast/holdfast/wal"
)

// TestReadIOErrorIsNotCorruption: a read that fails for an I/O reason (here
// the segment file cannot be opened) used to come back as a
// *CorruptionError, which the forwarder quarantines without payload: a good
// record dropped. It is ErrRead now, and the same read succeeds once the
// file is readable again.
func TestReadIOErrorIsNotCorruption(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, wal.Options{SegmentSize: 4096, SegmentCacheSize: 1})
	appendN(t, l, 1, 100, 100)
	l.Close()
	l = openLog(t, dir, wal.Options{SegmentSize: 4096, SegmentCacheSize: 1})
	defer l.Close()
	first := filepath.Join(dir, segmentNames(dir)[0])
	if err := os.Rename(first, first+".away"); err != nil {
		t.Fatal(err)
	}
	r := l.NewReader(1)
	_, _, _, err := r.Next()
	if !errors.Is(err, wal.ErrRead) || wal.IsCorrupt(err) {
		t.Fatalf("Next with the segment unreadable: %v, want ErrRead and not corruption", err)
	}
	if err := os.Rename(first+".away", first); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, l, 1, 100, 100)
}
