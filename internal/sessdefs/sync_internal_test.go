package sessdefs

import (
	"bytes"
	"math"
	"os"
	"testing"
)

func dirtyOf(s *Store, key string) (bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fi := s.mu.files[key]
	_, dirty := s.mu.dirty[fi]
	return fi != nil && dirty, s.mu.dirDirty != 0
}

// A file read back at start is synced at the next Sync: a killed process
// may have left its last definitions in the page cache only, and a replay
// that finds them there appends nothing that would mark the file.
func TestLoadedFileSyncedAtNextSync(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	if err := s.Append(testKey, 1, def(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	// No Sync, no Close: the process is killed.
	s2 := openStore(t, dir, nil)
	if err := s2.Load(testKey, nil); err != nil {
		t.Fatal(err)
	}
	if file, dirDirty := dirtyOf(s2, testKey); !file || !dirDirty {
		t.Fatalf("after Load: file dirty %v, directory dirty %v; want both", file, dirDirty)
	}
	if err := s2.Sync(); err != nil {
		t.Fatal(err)
	}
	if file, dirDirty := dirtyOf(s2, testKey); file || dirDirty {
		t.Fatalf("after Sync: file dirty %v, directory dirty %v; want neither", file, dirDirty)
	}
}

// A write after a Sync took its list keeps the file dirty.
func TestWriteDuringSyncStaysDirty(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	if err := s.Append(testKey, 1, def(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	fi := s.lookupOpen(testKey)
	s.mu.Lock()
	gen := s.mu.dirty[fi]
	s.mu.Unlock()
	if err := s.Append(testKey, 2, def(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	later := s.mu.dirty[fi]
	s.mu.Unlock()
	if later == gen {
		t.Fatal("a second write did not move the file's generation")
	}
}

// A failed fsync is sticky: later Syncs report it rather than succeed over
// data the kernel may have dropped.
func TestFailedSyncSticks(t *testing.T) {
	dir := t.TempDir() + "/s"
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseAll()
	if err := s.Append(testKey, 1, def(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, dir+".gone"); err != nil { // the directory's fsync fails
		t.Fatal(err)
	}
	if err := s.Sync(); err == nil {
		t.Fatal("Sync succeeded without its directory")
	}
	if err := os.Rename(dir+".gone", dir); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err == nil {
		t.Fatal("a Sync after a failed one succeeded")
	}
}

// A failed write leaves the file refusing appends.
func TestFailedWriteBreaksTheFile(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	if err := s.Append(testKey, 1, def(1)); err != nil {
		t.Fatal(err)
	}
	s.lookupOpen(testKey).h.Close() // every write now fails
	if err := s.Flush(); err == nil {
		t.Fatal("Flush to a closed file succeeded")
	}
	if err := s.Append(testKey, 2, def(2)); err == nil {
		t.Fatal("Append to a broken file succeeded")
	}
}

// Imported files are not left open.
func TestImportClosesTheFile(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	done := false
	if err := s.Import(testKey, func() (uint64, []byte, bool, error) {
		if done {
			return 0, nil, false, nil
		}
		done = true
		return 7, def(7), true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if s.lookupOpen(testKey) != nil {
		t.Fatal("the imported file is still open")
	}
	if d, err := s.Lookup(testKey, 7); err != nil || !bytes.Equal(d, def(7)) {
		t.Fatalf("Lookup(7) after Import = %q, %v", d, err)
	}
}

// Huge ids cost no sparse-index memory, and the cursor does not wrap at
// the last id.
func TestHugeIDs(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	for _, id := range []uint64{5, 9, math.MaxUint32 - 1, math.MaxUint32} {
		if err := s.Append(testKey, id, def(id)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []uint64{math.MaxUint32, 5, math.MaxUint32 - 1, 9} {
		if d, err := s.Get(nil, testKey, id); err != nil || !bytes.Equal(d, def(id)) {
			t.Fatalf("Get(%d) = %q, %v", id, d, err)
		}
	}
	if _, err := s.Get(nil, testKey, 6); err != ErrNotFound {
		t.Fatalf("Get(6) = %v, want ErrNotFound", err)
	}
	fi := s.lookupOpen(testKey)
	fi.mu.Lock()
	marks := len(fi.mu.marks)
	fi.mu.Unlock()
	if marks > 1 {
		t.Fatalf("%d sparse-index marks for ids 5..2³²-1, want 1", marks)
	}
}
