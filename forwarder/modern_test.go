package forwarder

import (
	"os"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/internal/state"
)

func TestServerVersionAndPath(t *testing.T) {
	for _, tc := range []struct {
		in       string
		want     ServerVersion
		bad      bool
		modern   bool // with Portable unset
		portable bool // Portable forces the portable path
	}{
		{in: "18.16.1", want: ServerVersion{18, 16}},
		{in: "21.12.4.1", want: ServerVersion{21, 12}},
		{in: "22.1.3.7", want: ServerVersion{22, 1}},
		{in: "22.2.2.1", want: ServerVersion{22, 2}, modern: true},
		{in: "23.8.1", want: ServerVersion{23, 8}, modern: true},
		{in: "26.5.3.1\n", want: ServerVersion{26, 5}, modern: true},
		{in: "100.0", want: ServerVersion{100, 0}, modern: true},
		{in: "", bad: true},
		{in: "garbage", bad: true},
		{in: "22", bad: true},
		{in: "22.x.1", bad: true},
		{in: "-22.3", bad: true},
	} {
		v, err := ParseServerVersion(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: parsed as %v, want an error", tc.in, v)
			}
			if useModern(v, false) {
				t.Errorf("%q: an unreadable version must take the portable path", tc.in)
			}
			continue
		}
		if err != nil || v != tc.want {
			t.Errorf("%q: %v, %v; want %v", tc.in, v, err, tc.want)
		}
		if got := useModern(v, false); got != tc.modern {
			t.Errorf("%q: modern path %v, want %v", tc.in, got, tc.modern)
		}
		if useModern(v, true) {
			t.Errorf("%q: Portable did not force the portable path", tc.in)
		}
	}
}

func TestDedupToken(t *testing.T) {
	a := dedupToken("e1", []uint64{5, 6, 7, 9}, "measurements_f64")
	if again := dedupToken("e1", []uint64{5, 6, 7, 9}, "measurements_f64"); again != a {
		t.Fatalf("same batch, different tokens: %q, %q", a, again)
	}
	if !strings.HasPrefix(a, "holdfast-") {
		t.Errorf("token %q lacks the holdfast- prefix", a)
	}
	others := map[string]string{
		"shorter range":   dedupToken("e1", []uint64{5, 6, 7}, "measurements_f64"),
		"later start":     dedupToken("e1", []uint64{6, 7, 9}, "measurements_f64"),
		"bisected half":   dedupToken("e1", []uint64{5, 6}, "measurements_f64"),
		"fewer records":   dedupToken("e1", []uint64{5, 9}, "measurements_f64"),
		"other table":     dedupToken("e1", []uint64{5, 6, 7, 9}, "measurements_i64"),
		"other WAL epoch": dedupToken("e2", []uint64{5, 6, 7, 9}, "measurements_f64"),
	}
	seen := map[string]string{a: "original"}
	for name, tok := range others {
		if prev, ok := seen[tok]; ok {
			t.Errorf("%s: token %q equals %s's", name, tok, prev)
		}
		seen[tok] = name
	}
	if dedupToken("e1", nil, "t") != "" {
		t.Error("an empty batch got a token")
	}
}

// The epoch survives restarts (a replay must get the lost run's tokens) and
// changes when the WAL is replaced (its indexes start over).
func TestDedupEpoch(t *testing.T) {
	dir := t.TempDir()
	db, err := state.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, err := loadDedupEpoch(db, false)
	if err != nil || first == "" {
		t.Fatalf("first epoch %q, %v", first, err)
	}
	db.Close()
	if db, err = state.Open(dir, nil); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if again, err := loadDedupEpoch(db, false); err != nil || again != first {
		t.Fatalf("after a restart the epoch is %q (%v), want %q", again, err, first)
	}
	renewed, err := loadDedupEpoch(db, true)
	if err != nil || renewed == first {
		t.Fatalf("renewed epoch %q (%v) equals the old one", renewed, err)
	}
	if again, _ := loadDedupEpoch(db, false); again != renewed {
		t.Fatalf("the renewed epoch was not kept: %q, want %q", again, renewed)
	}
}

// testdata/modern_ddl.sql is what scripts/modern_check.py runs on chDB
// (ClickHouse 26.5) as the modern path's DDL; this keeps it the statements
// the forwarder issues. Regenerate with HOLDFAST_UPDATE_GOLDEN=1.
func TestModernDDLGolden(t *testing.T) {
	want := strings.Join(ModernDDL("holdfast"), ";\n") + ";\n"
	const path = "testdata/modern_ddl.sql"
	if os.Getenv("HOLDFAST_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from ModernDDL(\"holdfast\"); rerun with HOLDFAST_UPDATE_GOLDEN=1 and check it on chDB (scripts/modern-check.sh):\n%s", path, want)
	}
}
