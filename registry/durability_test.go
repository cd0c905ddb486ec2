package registry

import (
	"testing"

	"github.com/holdfast/holdfast/internal/statetest"
)

// TestChangesAreSyncedBeforeTheyAreAnswered: every change the registry has
// answered survives a power loss. Its store runs on Pebble's strict
// in-memory file system, which forgets every write not synced; after the
// "power loss" the producers, deletions, assignments, collectors and
// schemas are exactly as answered (TestRestartKeepsEverything checks the
// same across a clean close).
func TestChangesAreSyncedBeforeTheyAreAnswered(t *testing.T) {
	pl := statetest.NewPowerLoss(t)
	db := pl.Open()
	r, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	before1, before2 := populate(t, r)

	pl.Cut(func() { db.Close() }) // power loss: whatever the store did not sync is gone
	db = pl.Open()
	defer db.Close()
	if r, err = Open(db, Options{}); err != nil {
		t.Fatal(err)
	}
	wantAsBefore(t, r, before1, before2)
}
