package sessdefs

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
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

// TestCloseGivesBackTheReservation: the room Reserve allocated past a
// file's end is given back when the file is closed (an idle session, or
// shutdown), so many producers' sessions do not each hold a reservation;
// the definitions are all there afterwards. On the test directory's file
// system and on a real tmpfs.
func TestCloseGivesBackTheReservation(t *testing.T) {
	dirs := map[string]string{"temp dir": t.TempDir()}
	if mnt, whyNot := tmpfstest.TryMount(t, "16m"); whyNot == "" {
		dirs["tmpfs"] = mnt
	} else {
		t.Logf("no tmpfs: %s", whyNot)
	}
	for name, dir := range dirs {
		t.Run(name, func(t *testing.T) {
			s := openStore(t, dir, nil)
			for id := uint64(0); id < 100; id++ {
				if err := s.Append(testKey, id, def(id)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Reserve(testKey, 4<<20); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, fileName(testKey))
			allocated := func() (size, blocks int64) {
				t.Helper()
				var st syscall.Stat_t
				if err := syscall.Stat(path, &st); err != nil {
					t.Fatal(err)
				}
				return st.Size, st.Blocks * 512
			}
			size, held := allocated()
			if held < 4<<20 {
				t.Skipf("%s holds %d bytes after a 4 MiB reservation: its file system does not preallocate", dir, held)
			}
			if err := s.Close(testKey); err != nil {
				t.Fatal(err)
			}
			after, kept := allocated()
			if after != size || kept > size+64<<10 {
				t.Fatalf("after Close: size %d (was %d), %d bytes allocated; want the size unchanged and at most 64 KiB past it", after, size, kept)
			}
			for id := uint64(0); id < 100; id++ {
				if d, err := s.Lookup(testKey, id); err != nil || !bytes.Equal(d, def(id)) {
					t.Fatalf("Lookup(%d) after Close = %q, %v", id, d, err)
				}
			}
		})
	}
}
