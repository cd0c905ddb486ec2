package sessdefs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/holdfast/holdfast/internal/tmpfstest"
)

// TestReserveOnAFullDisk: on a full disk (a real tmpfs) Reserve says so
// (IsNoSpace) and leaves the file as it was; once room was reserved, appends
// within it succeed even after something else filled the disk, which is
// what lets the forwarder wait for room before a record instead of failing
// half way through its definitions.
func TestReserveOnAFullDisk(t *testing.T) {
	mnt := tmpfstest.Mount(t, "4m")
	s := openStore(t, filepath.Join(mnt, "sessions"), nil)
	if err := s.Append(testKey, 0, def(0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(mnt, "filler")
	tmpfstest.Fill(t, filler)
	if err := s.Reserve(testKey, 256<<10); !IsNoSpace(err) {
		t.Fatalf("Reserve on a full disk = %v, want no space", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	const n = 2000 // about 100 KiB of records
	if err := s.Reserve(testKey, n*(recordHead+60)); err != nil {
		t.Fatalf("Reserve with room: %v", err)
	}
	tmpfstest.Fill(t, filler)
	for id := uint64(1); id <= n; id++ {
		if err := s.Append(testKey, id, def(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush within the reservation on a full disk: %v", err)
	}
	if err := s.Sync(); err != nil {
		t.Fatalf("Sync on a full disk: %v", err)
	}
	for _, id := range []uint64{0, 1, n / 2, n} {
		if d, err := s.Get(nil, testKey, id); err != nil || !bytes.Equal(d, def(id)) {
			t.Fatalf("Get(%d) = %q, %v", id, d, err)
		}
	}
	// Without a reservation, the next file cannot be made.
	if err := s.Append("another\x00i\x00s", 0, def(0)); !IsNoSpace(err) {
		t.Fatalf("Append of a new session on a full disk = %v, want no space", err)
	}
}
