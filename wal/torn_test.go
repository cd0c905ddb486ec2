package wal_test

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/holdfast/holdfast/wal"
)

// TestTornRecordEmbeddingFrameIsTornTail: a producer's payload may hold the
// bytes of a valid holdfast frame. When the record holding it is torn by a
// crash, the embedded frame must not pass for a record after the damage:
// that turned an ordinary torn tail into "mid-segment damage" and Open
// refused after every crash during that page.
func TestTornRecordEmbeddingFrameIsTornTail(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, wal.Options{})
	appendN(t, l, 1, 3, 100)
	inner := wal.EncodeEnvelope(nil, wal.Record{Type: wal.TypePage, Payload: []byte("a page inside a page")})
	p := append([]byte("prefix;"), binary.AppendUvarint(nil, uint64(len(inner)))...)
	p = append(p, inner...)
	p = append(p, make([]byte, 200)...)
	for i := range p[len(p)-200:] {
		p[len(p)-200+i] = byte(i) | 1
	}
	if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: p}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	seg := lastSegment(t, dir)
	truncateBy(t, seg, 100) // torn after the embedded frame
	l, err := wal.Open(dir, wal.Options{})
	if err != nil {
		t.Fatalf("Open of a torn tail: %v", err)
	}
	defer l.Close()
	if st := l.Stats(); st.LastIndex != 3 {
		t.Fatalf("last index %d after repair, want 3", st.LastIndex)
	}
	if l.Repair() == nil {
		t.Fatal("no repair reported")
	}
	checkRecords(t, l, 1, 3, 100)
}
