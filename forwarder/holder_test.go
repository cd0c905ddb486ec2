package forwarder

import (
	"strings"
	"testing"

	"github.com/holdfast/holdfast/internal/state"
)

// TestLoadHolderIDSurvivesRestart: the upgrade-lock id is created once and
// read back after the state store is reopened (a restarted collector must
// recognise its own lock); a damaged id is an error, not a new identity.
func TestLoadHolderIDSurvivesRestart(t *testing.T) {
	dir := t.TempDir() + "/state"
	db, err := state.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := loadHolderID(db)
	if err != nil || !holderPattern.MatchString(first) || !strings.HasPrefix(first, "forwarder-") {
		t.Fatalf("first id %q: %v", first, err)
	}
	if again, err := loadHolderID(db); err != nil || again != first {
		t.Fatalf("second read %q (%v), want %q", again, err, first)
	}
	db.Close()
	if db, err = state.Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	if after, err := loadHolderID(db); err != nil || after != first {
		t.Fatalf("after reopening %q (%v), want %q", after, err, first)
	}
	if err := db.Set(holderKey, []byte("no spaces allowed"), nil); err != nil {
		t.Fatal(err)
	}
	if id, err := loadHolderID(db); err == nil {
		t.Fatalf("a malformed stored id gave %q", id)
	}
	db.Close()
}
