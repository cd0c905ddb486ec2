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

// TestHolderPattern pins the upgrade holder id rule, which differs from
// internal/ids' producer and collector rule on purpose ('@' refused).
func TestHolderPattern(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"forwarder-0f3b7c2e-8d1a-4c5e-9b6f-2a7d3e4c5b6a", true},
		{"anonymous-1", true},
		{"host.example.com:9000", true},
		{"a_b", true},
		{strings.Repeat("a", 128), true},
		{"", false},
		{strings.Repeat("a", 129), false},
		{"user@host", false},
		{"a'b", false},
		{"a\\b", false},
		{"a b", false},
		{"a/b", false},
		{"a;b", false},
	}
	for _, tt := range tests {
		if got := holderPattern.MatchString(tt.id); got != tt.want {
			t.Errorf("holderPattern.MatchString(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
