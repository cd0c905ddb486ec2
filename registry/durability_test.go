package registry

import (
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"

	"github.com/holdfast/holdfast/internal/statetest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// TestChangesAreSyncedBeforeTheyAreAnswered: every change the registry has
// answered survives a power loss. Its store runs on Pebble's strict
// in-memory file system, which forgets every write not synced; after the
// "power loss" the producers, deletions, assignments, collectors and
// schemas are exactly as answered (TestRestartKeepsEverything checks the
// same across a clean close).
func TestChangesAreSyncedBeforeTheyAreAnswered(t *testing.T) {
	pl := statetest.NewPowerLoss(t)
	open := func() (*Registry, *pebble.DB) {
		t.Helper()
		db := pl.Open()
		r, err := Open(db, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return r, db
	}
	r, db := open()
	r.RegisterCollector(CollectorRegistration{ID: "c1", Address: "http://127.0.0.1:1"})
	r.RegisterCollector(CollectorRegistration{ID: "c2", Address: "http://127.0.0.1:2"})
	for i := 0; i < 50; i++ {
		mustRegisterProducer(t, r, prod(i))
	}
	if err := r.DeleteProducer(prod(7).ID); err != nil {
		t.Fatal(err)
	}
	if err := r.AddSchemas([]pa.TimeseriesSchema{{Name: "a:b", DatumType: pa.DatumF64, Version: 1}}); err != nil {
		t.Fatal(err)
	}
	before1, before2 := listAll(t, r, "c1", 9), listAll(t, r, "c2", 9)

	db = pl.Cut(db) // power loss: whatever the store did not sync is gone
	defer db.Close()
	r, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a, b := listAll(t, r, "c1", 9), listAll(t, r, "c2", 9); strings.Join(a, ",") != strings.Join(before1, ",") || strings.Join(b, ",") != strings.Join(before2, ",") {
		t.Fatalf("assignments after the power loss: %d and %d producers, want %d and %d as answered", len(a), len(b), len(before1), len(before2))
	}
	if len(before1)+len(before2) != 49 {
		t.Fatalf("%d producers listed, want 49", len(before1)+len(before2))
	}
	if _, err := r.Producer(prod(7).ID); err == nil {
		t.Fatal("a deleted producer came back")
	}
	if len(r.Collectors()) != 2 || len(r.Schemas()) != 1 {
		t.Fatalf("collectors %v schemas %v", r.Collectors(), r.Schemas())
	}
}
