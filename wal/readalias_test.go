package wal_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/holdfast/holdfast/wal"
)

// TestReadPayloadsStayIntact: reads alias the segment the log holds in
// memory (no copy per record). A payload read from the tail segment keeps
// its bytes while later records are appended into that segment and it is
// cycled, and appending to a payload never changes the next record.
func TestReadPayloadsStayIntact(t *testing.T) {
	l := openLog(t, t.TempDir(), wal.Options{SegmentSize: 4096})
	defer l.Close()
	ctx := context.Background()
	want := func(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("record %04d;", i)), 10) }
	r := l.NewReader(1)
	var kept [][]byte
	for i := 1; i <= 200; i++ {
		if _, err := l.Append(ctx, wal.Record{Type: wal.TypePage, Payload: want(i)}); err != nil {
			t.Fatal(err)
		}
		_, rec, ok, err := r.Next()
		if err != nil || !ok {
			t.Fatalf("record %d: ok=%v err=%v", i, ok, err)
		}
		_ = append(rec.Payload, "scribble"...) // must not reach the log's memory
		kept = append(kept, rec.Payload)
	}
	for i, p := range kept {
		if !bytes.Equal(p, want(i+1)) {
			t.Fatalf("payload of record %d changed after later appends: %q", i+1, p[:24])
		}
	}
	// Written first, then read: each payload is followed in memory by the
	// next record.
	for i := 201; i <= 260; i++ {
		if _, err := l.Append(ctx, wal.Record{Type: wal.TypePage, Payload: want(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 201; i <= 260; i++ {
		_, rec, _, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		_ = append(rec.Payload, "scribble"...)
	}
	r.Seek(1)
	for i := 1; i <= 260; i++ {
		_, rec, _, err := r.Next()
		if err != nil || !bytes.Equal(rec.Payload, want(i)) {
			t.Fatalf("re-read of record %d: %v %q", i, err, rec.Payload)
		}
	}
}
