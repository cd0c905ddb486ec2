package wal_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/holdfast/holdfast/wal"
)

// segmentStarts is the first index of every segment file in dir, in order.
func segmentStarts(t *testing.T, dir string) []uint64 {
	t.Helper()
	var starts []uint64
	for _, name := range segmentNames(dir) {
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			t.Fatalf("segment name %q: %v", name, err)
		}
		starts = append(starts, n)
	}
	return starts
}

// TestTruncateWaitsForSegments: with TruncateSegments set, TruncateThrough
// deletes nothing until that many segments can go, then all that can; with
// space wanted (the log at half its budget or more) it deletes at once.
func TestTruncateWaitsForSegments(t *testing.T) {
	for _, tc := range []struct {
		name       string
		budget     int64
		wantAtOnce bool // one removable segment is deleted
	}{
		{"no budget", 0, false},
		{"far below its budget", 1 << 30, false},
		{"at half its budget", 40 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, wal.Options{SegmentSize: 4096, TruncateSegments: 3, BudgetBytes: tc.budget})
			defer l.Close()
			appendN(t, l, 1, 300, 100)
			starts := segmentStarts(t, dir)
			if len(starts) < 6 {
				t.Fatalf("only %d segments", len(starts))
			}
			// Through the end of the first segment: one can go.
			removed, err := l.TruncateThrough(starts[1] - 1)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantAtOnce {
				if removed != 1 {
					t.Fatalf("removed %d segments at half the budget, want 1", removed)
				}
				return
			}
			if removed != 0 || len(segmentStarts(t, dir)) != len(starts) {
				t.Fatalf("removed %d segments with one removable, want none before 3", removed)
			}
			// Through the end of the second: still waiting.
			if removed, err = l.TruncateThrough(starts[2] - 1); err != nil || removed != 0 {
				t.Fatalf("with two removable: removed %d, err %v; want none", removed, err)
			}
			// Through the end of the fourth: all four go.
			if removed, err = l.TruncateThrough(starts[4] - 1); err != nil || removed != 4 {
				t.Fatalf("with four removable: removed %d, err %v; want 4", removed, err)
			}
			if got := segmentStarts(t, dir); got[0] != starts[4] {
				t.Fatalf("first segment on disk starts at %d, want %d", got[0], starts[4])
			}
			checkRecords(t, l, int(starts[4]), 300, 100)
		})
	}
}

// TestRefusedAppendFreesWaitingSegments: segments left waiting for
// TruncateSegments are deleted once an append is refused for the budget,
// without another TruncateThrough (ClickHouse down: no delivery comes), and
// appends are accepted again.
func TestRefusedAppendFreesWaitingSegments(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, wal.Options{SegmentSize: 4096, TruncateSegments: 4, BudgetBytes: 64 << 10})
	defer l.Close()
	appendN(t, l, 1, 100, 100)
	starts := segmentStarts(t, dir)
	if len(starts) < 3 {
		t.Fatalf("only %d segments", len(starts))
	}
	// Two segments forwarded: below half the budget, they wait.
	if removed, err := l.TruncateThrough(starts[2] - 1); err != nil || removed != 0 {
		t.Fatalf("removed %d, err %v; want the segments to wait", removed, err)
	}
	// Fill to the budget: appends are refused, and the refusal frees the
	// waiting segments by itself.
	next := 101
	for ; ; next++ {
		if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: make([]byte, 100)}); err != nil {
			if !errors.Is(err, wal.ErrFull) {
				t.Fatal(err)
			}
			break
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for segmentStarts(t, dir)[0] != starts[2] {
		if time.Now().After(deadline) {
			t.Fatalf("first segment still starts at %d after a refused append, want %d", segmentStarts(t, dir)[0], starts[2])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: make([]byte, 100)}); err != nil {
		t.Fatalf("append after the waiting segments were freed: %v", err)
	}
}
