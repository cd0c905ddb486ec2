package quarantine

import (
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/holdfast/holdfast/internal/statetest"
)

// TestWritesAreSyncedBeforeTheyReturn: every Put, PutAll, Delete and Update
// is durable when it returns. The store runs on a file system that forgets
// whatever was not synced (pebble's strict in-memory FS); after a "crash"
// (back to the synced state) the store holds exactly what the calls said,
// and the next id is not reused.
func TestWritesAreSyncedBeforeTheyReturn(t *testing.T) {
	pl := statetest.NewPowerLoss(t)
	open := func() (*pebble.DB, *Store) {
		t.Helper()
		db := pl.Open()
		s, err := Open(db, Options{BudgetBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		return db, s
	}
	db, s := open()
	es := []Entry{sampleEntry("p", "one", 10), sampleEntry("p", "two", 10), sampleEntry("p", "three", 10)}
	if _, err := s.Put(es); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAll([]Entry{{Kind: KindRecord, Code: CodeRejected, Reason: "four", Payload: []byte{1}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete([]uint64{es[0].ID}); err != nil {
		t.Fatal(err)
	}
	es[1].Reason = "two, updated"
	if err := s.Update(es[1:2]); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete([]uint64{es[2].ID, 4}); err != nil {
		t.Fatal(err)
	}
	// Crash: unsynced writes are lost.
	pl.Cut(func() {
		s.Close()
		db.Close()
	})

	db, s = open()
	defer db.Close()
	defer s.Close()
	left, _, err := s.List(0, 10)
	if err != nil || len(left) != 1 || left[0].ID != 2 || left[0].Reason != "two, updated" {
		t.Fatalf("after the crash: %+v %v", left, err)
	}
	e := []Entry{sampleEntry("p", "five", 1)}
	if _, err := s.Put(e); err != nil || e[0].ID != 5 {
		t.Fatalf("next id after the crash: %d %v, want 5", e[0].ID, err)
	}
}
