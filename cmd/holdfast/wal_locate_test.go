package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWALVerifyWrongPathNeverOK: `holdfast wal verify` pointed at anything
// that is not a data directory or a WAL refuses with a message naming the
// path and a non-zero exit; it never prints OK. A data directory finds its
// wal/, a WAL directory is used as is.
func TestWALVerifyWrongPathNeverOK(t *testing.T) {
	walDir := writeWAL(t, 5)
	data := filepath.Dir(walDir)
	root := t.TempDir()
	empty := filepath.Join(root, "empty")
	unrelated := filepath.Join(root, "unrelated")
	emptyData := filepath.Join(root, "emptydata")
	for _, d := range []string{empty, filepath.Join(unrelated, "sub"), filepath.Join(emptyData, "wal"), filepath.Join(emptyData, "state")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(unrelated, "notes.txt"), []byte("hello"), 0o640)
	os.WriteFile(filepath.Join(unrelated, "123"), []byte("x"), 0o640)
	segs := segmentFiles(t, walDir)

	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing path", filepath.Join(root, "nope"), "no such directory"},
		{"a file", filepath.Join(unrelated, "notes.txt"), "is a file, not a directory"},
		{"a segment file", filepath.Join(walDir, segs[0]), "is a file, not a directory"},
		{"empty directory", empty, "not a collector data directory"},
		{"unrelated directory", unrelated, "not a collector data directory"},
		{"data directory with an empty wal/", emptyData, "holds no segment files"},
		{"empty wal/ itself", filepath.Join(emptyData, "wal"), "not a collector data directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCmd("wal", "verify", tc.path)
			if code == 0 || strings.Contains(out, "OK") {
				t.Fatalf("exit %d, want non-zero and no OK\nstdout: %s\nstderr: %s", code, out, errs)
			}
			if !strings.Contains(errs, tc.path) || !strings.Contains(errs, tc.want) {
				t.Fatalf("stderr %q: want the path and %q", errs, tc.want)
			}
		})
	}

	for _, tc := range []struct{ name, path string }{{"data directory", data}, {"WAL directory", walDir}} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCmd("wal", "verify", tc.path)
			if code != 0 || !strings.Contains(out, walDir+": indexes 1..5, 5 records") || !strings.Contains(out, "OK") {
				t.Fatalf("exit %d\n%s%s", code, out, errs)
			}
		})
	}
}
