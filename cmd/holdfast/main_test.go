package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeWAL(t *testing.T, records int) string {
	dir := filepath.Join(t.TempDir(), "wal")
	l, err := wal.Open(dir, wal.Options{SegmentSize: 8192})
	if err != nil {
		t.Fatal(err)
	}
	fleet := sampletest.NewFleet(4)
	for i := 0; i < records; i++ {
		p := pa.AppendPageRecord(nil, "http://p1", "inc-7", fleet.Append(nil, 10, int64(i)*1000))
		if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	return dir
}

func TestWALVerifyAndDump(t *testing.T) {
	dir := writeWAL(t, 60)
	code, out, errs := runCmd("wal", "verify", dir)
	if code != 0 || !strings.Contains(out, "indexes 1..60, 60 records") || !strings.Contains(out, "OK") {
		t.Fatalf("verify clean: code %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCmd("wal", "dump", dir, "--from", "10", "--to", "12")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "10\t") || !strings.Contains(lines[2], `producer="http://p1" incarnation="inc-7" samples=10`) {
		t.Fatalf("dump 10..12: code %d\n%s", code, out)
	}

	// Damage the second segment: verify names it and the offset, exits 1.
	var segs []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if len(e.Name()) == 20 {
			segs = append(segs, e.Name())
		}
	}
	sort.Strings(segs)
	path := filepath.Join(dir, segs[1])
	b, _ := os.ReadFile(path)
	b[300] ^= 0xff
	os.WriteFile(path, b, 0o640)
	code, out, _ = runCmd("wal", "verify", dir)
	if code != 1 || !strings.Contains(out, segs[1]) || !strings.Contains(out, "CORRUPT at offset") {
		t.Fatalf("verify damaged: code %d\n%s", code, out)
	}
	code, _, errs = runCmd("wal", "dump", dir)
	if code != 1 || !strings.Contains(errs, segs[1]) {
		t.Fatalf("dump through damage: code %d, stderr %s", code, errs)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"wal"}, {"wal", "verify"}, {"wal", "dump", "a", "b"}, {"wal", "dump", "d", "--from", "5", "--to", "2"}, {"schema", "--database", "x;y"}} {
		if code, _, _ := runCmd(args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	code, out, _ := runCmd("schema", "--database", "metrics")
	if code != 0 || !strings.Contains(out, "CREATE TABLE IF NOT EXISTS metrics.measurements_histogram_f64") {
		t.Fatalf("schema: %d\n%s", code, out)
	}
}
