package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
)

// TestQuarantineOnADataDir: list, show, export and replay on a stopped
// collector's data directory; replay with the limits that now accept the
// sample appends it to the directory's WAL and removes the entry.
func TestQuarantineOnADataDir(t *testing.T) {
	dir := t.TempDir()
	db, err := state.Open(filepath.Join(dir, "state"), nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := quarantine.Open(db, quarantine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := pa.Sample{Target: pa.Named{Name: "t", Fields: []pa.Field{{Name: "note", Value: pa.StringValue(strings.Repeat("n", 2000))}}},
		Metric: pa.Named{Name: "m"}, TimestampNs: 42, Datum: pa.Datum{Type: pa.DatumU64, Uint: 7}}
	if _, err := q.Put([]quarantine.Entry{{Kind: quarantine.KindSample, Producer: "http://p", Incarnation: "inc", Code: quarantine.CodeInvalid,
		Reason: "field too long", Payload: pa.AppendSamples(nil, []pa.Sample{s})}}); err != nil {
		t.Fatal(err)
	}
	q.Close()
	db.Close()

	code, out, errs := runCmd("quarantine", "list", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "1\tsample\t") || !strings.Contains(out, "http://p\tinvalid\tfield too long") {
		t.Fatalf("list: %d\n%s%s", code, out, errs)
	}
	// A directory given as an argument is refused, not ignored for
	// --admin's default.
	for _, cmd := range []string{"list", "export"} {
		if code, _, errs := runCmd("quarantine", cmd, dir); code != 2 || !strings.Contains(errs, "--data-dir DIR") {
			t.Errorf("quarantine %s DIR: exit %d, %q; want 2 naming --data-dir", cmd, code, errs)
		}
	}
	var v quarantine.View
	code, out, errs = runCmd("quarantine", "show", "1", "--data-dir", dir)
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || len(v.Samples) != 1 || !strings.Contains(string(v.Samples[0]), `"timestamp_ns"`) {
		t.Fatalf("show: %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCmd("quarantine", "export", "--data-dir", dir)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"reason":"field too long"`) {
		t.Fatalf("export: %d\n%s", code, out)
	}
	code, out, _ = runCmd("quarantine", "export", "--data-dir", dir, "--format", "pages")
	var p pa.Page
	if err := pa.UnmarshalPageJSON([]byte(out), &p); code != 0 || err != nil || len(p.Samples) != 1 || p.Producer != "http://p" ||
		p.Samples[0].Target.Fields[0].Value.Str != s.Target.Fields[0].Value.Str || p.Samples[0].Datum.Uint != 7 {
		t.Fatalf("export --format pages: %d %v\n%s", code, err, out)
	}
	code, out, _ = runCmd("quarantine", "replay", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "replayed 0 entries") || !strings.Contains(out, "1 still refused") {
		t.Fatalf("replay with the default limits: %d\n%s", code, out)
	}
	code, out, _ = runCmd("quarantine", "replay", "--data-dir", dir, "--sample-limits", "field_string=4KiB")
	if code != 0 || !strings.Contains(out, "replayed 1 entries (1 samples)") {
		t.Fatalf("replay with looser limits: %d\n%s", code, out)
	}
	code, out, _ = runCmd("wal", "dump", filepath.Join(dir, "wal"))
	if code != 0 || !strings.Contains(out, `producer="http://p" incarnation="inc" samples=1`) {
		t.Fatalf("WAL after replay: %d\n%s", code, out)
	}
	if code, out, _ = runCmd("quarantine", "list", "--data-dir", dir); code != 0 || !strings.Contains(out, "# 0 entries") {
		t.Fatalf("list after replay: %d\n%s", code, out)
	}
	for _, args := range [][]string{{"quarantine"}, {"quarantine", "nope"}, {"quarantine", "show", "--data-dir", dir}, {"quarantine", "show", "x", "--data-dir", dir},
		{"quarantine", "replay", "--sample-limits", "bogus=1", "--data-dir", dir}} {
		if code, _, _ := runCmd(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
