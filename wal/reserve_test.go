package wal_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/holdfast/holdfast/internal/tmpfstest"
	"github.com/holdfast/holdfast/wal"
)

// TestReserveLeavesRoomAndRollsTheTail: with ReserveBytes the log refuses
// appends (ErrFull, a *FullError naming the reserve) before it takes the
// file system's last ReserveBytes, never failing a write; a truncation
// through everything then rolls the tail segment, whose forwarded bytes
// would otherwise hold the space, and appends are accepted again.
func TestReserveLeavesRoomAndRollsTheTail(t *testing.T) {
	mnt := tmpfstest.Mount(t, "8m")
	const reserve = 3 << 20
	// One segment larger than the file system: only a roll of the tail can
	// free the space (with smaller segments the truncation would free whole
	// older ones, and the test would pass without the roll).
	l, err := wal.Open(mnt, wal.Options{ReserveBytes: reserve, SegmentSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	payload := bytes.Repeat([]byte{7}, 64<<10)
	var last uint64
	var full *wal.FullError
	for i := 0; ; i++ {
		idx, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: payload})
		if err != nil {
			if !errors.Is(err, wal.ErrFull) || !errors.As(err, &full) || full.ReserveBytes != reserve {
				t.Fatalf("append %d refused with %v, want a *FullError for the reserve", i, err)
			}
			break
		}
		last = idx
		if i > 1000 {
			t.Fatal("never refused")
		}
	}
	if free := wal.FreeBytes(mnt); free < reserve-(64<<10)-4096 {
		t.Fatalf("refused with %d bytes free, the reserve is %d", free, reserve)
	}
	if st := l.Stats(); st.Failed != nil {
		t.Fatalf("the log failed: %v", st.Failed)
	}
	if last < 40 {
		t.Fatalf("only %d records before the reserve", last)
	}
	if n := l.Stats().Segments; n != 1 {
		t.Fatalf("%d segments before the truncation, want the tail alone", n)
	}
	// Everything forwarded: the truncation rolls the tail and frees it.
	if _, err := l.TruncateThrough(last); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: payload}); err != nil {
		t.Fatalf("append after the truncation freed the space: %v", err)
	}
}
