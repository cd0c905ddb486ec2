package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"

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

// TestWALVerifyDataDirAndRepair: `wal verify DATADIR` checks the checkpoint
// against the WAL (a deleted first segment is reported with the missing
// range, where `wal verify WALDIR` alone cannot see it), and `wal repair
// --skip` fixes a bad record in the middle of the last segment that verify
// points at, keeping every record after it.
func TestWALVerifyDataDirAndRepair(t *testing.T) {
	walDir := writeWAL(t, 60)
	data := filepath.Dir(walDir)
	db, err := pebble.Open(filepath.Join(data, "state"), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The forwarder's checkpoint key (forwarder/quarantine.go).
	if err := db.Set([]byte("forwarder/checkpoint"), binary.BigEndian.AppendUint64(nil, 0), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	// While a collector holds the state store (Pebble's lock), verify
	// reads a copy.
	if code, out, errs := runCmd("wal", "verify", data); code != 0 || !strings.Contains(out, "checkpoint (from") {
		t.Fatalf("verify with the state store locked: code %d\n%s%s", code, out, errs)
	}
	db.Close()
	if code, out, errs := runCmd("wal", "verify", data); code != 0 || !strings.Contains(out, "checkpoint (from") || !strings.Contains(out, "OK") {
		t.Fatalf("verify clean data dir: code %d\n%s%s", code, out, errs)
	}
	segs := segmentFiles(t, walDir)
	if err := os.Remove(filepath.Join(walDir, segs[0])); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCmd("wal", "verify", walDir); code != 0 {
		t.Fatalf("the WAL alone still checks: code %d\n%s", code, out)
	}
	code, out, _ := runCmd("wal", "verify", data)
	if code != 1 || !strings.Contains(out, "records 1..") || !strings.Contains(out, "are missing") {
		t.Fatalf("verify data dir with a deleted first segment: code %d\n%s", code, out)
	}

	// A bad record in the middle of the last segment.
	walDir = writeWAL(t, 60)
	segs = segmentFiles(t, walDir)
	last := filepath.Join(walDir, segs[len(segs)-1])
	b, _ := os.ReadFile(last)
	b[40] ^= 0xff // inside the first record of the segment
	os.WriteFile(last, b, 0o640)
	code, out, _ = runCmd("wal", "verify", walDir)
	if code != 1 || !strings.Contains(out, "holdfast wal repair --skip") {
		t.Fatalf("verify with a bad record mid-segment: code %d\n%s", code, out)
	}
	l, err := wal.Open(walDir, wal.Options{SegmentSize: 8192})
	if !wal.IsCorrupt(err) {
		t.Fatalf("Open of a log with a bad record mid-segment: %v", err)
	}
	var ce *wal.CorruptionError
	errors.As(err, &ce)
	code, out, errs := runCmd("wal", "repair", "--skip", strconv.FormatUint(ce.Index, 10), walDir)
	if code != 0 || !strings.Contains(out, "replaced 1 damaged record") {
		t.Fatalf("repair: code %d\n%s%s", code, out, errs)
	}
	if code, out, _ := runCmd("wal", "verify", walDir); code != 0 || !strings.Contains(out, "indexes 1..60, 60 records") {
		t.Fatalf("verify after repair: code %d\n%s", code, out)
	}
	if l, err = wal.Open(walDir, wal.Options{SegmentSize: 8192}); err != nil {
		t.Fatal(err)
	}
	l.Close()
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	var segs []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if len(e.Name()) == 20 {
			segs = append(segs, e.Name())
		}
	}
	sort.Strings(segs)
	return segs
}
