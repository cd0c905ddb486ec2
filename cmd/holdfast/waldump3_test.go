package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

// TestWALDumpRecord3: a version 3 record prints its session and the ids
// it defines; one that reads on its own (the session's first) prints its
// samples as other versions do, a later one the session ids its samples
// name (their definitions are in the earlier record).
func TestWALDumpRecord3(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	l, err := wal.Open(dir, wal.Options{SegmentSize: 8192})
	if err != nil {
		t.Fatal(err)
	}
	samples := sampletest.NewFleet(1).Append(nil, 3, 1)
	var defs, body []byte
	for i := range samples {
		defs = pa.AppendSeries(defs, &samples[i])
		body = pa.AppendSample3(body, uint64(i), &samples[i])
	}
	head := pa.AppendPageRecord3Head(nil, "http://p1", "inc-7", true, 0xabc, nil)
	first := append(pa.AppendBlock3Head(append([]byte{}, head...), 0, len(samples), defs, len(samples)), body...)
	later := append(pa.AppendBlock3Head(append([]byte{}, head...), 3, 0, nil, len(samples)), body...)
	for _, p := range [][]byte{first, later} {
		if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	code, out, errs := runCmd("wal", "dump", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("dump: code %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{`producer="http://p1" incarnation="inc-7" samples=3`, "session=0000000000000abc defs=3 (ids 0..2)"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("first record: %q, want %q in it", lines[0], want)
		}
	}
	for _, want := range []string{`producer="http://p1" incarnation="inc-7" samples=3 ids 0 (defined earlier`, "session=0000000000000abc defs=0"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("later record: %q, want %q in it", lines[1], want)
		}
	}
}
