package wal_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/wal"
)

// TestDamageBeforeValidFramesIsCorruption: a bad frame in the middle of the
// last segment, with frames that check after it, is not a torn tail. Open
// used to truncate there (dropping every acknowledged record after it and
// reusing their indexes); now it refuses, names segment, offset and index,
// and changes nothing. The operator's explicit repair then replaces exactly
// the damaged record and keeps every record after it at its own index.
func TestDamageBeforeValidFramesIsCorruption(t *testing.T) {
	const size, frame = 50, 63
	tests := []struct {
		name    string
		corrupt func(t *testing.T, path string)
		index   uint64 // the damaged record
		records int    // what the operator passes to the repair (0: worked out)
	}{
		{"bad_frame_mid_last_segment_good_frames_after", func(t *testing.T, p string) { flipByte(t, p, 4*frame+30) }, 5, 0},
		{"bad_checksum_field_mid_last_segment", func(t *testing.T, p string) { flipByte(t, p, 2*frame+10) }, 3, 0},
		{"bad_length_mid_last_segment", func(t *testing.T, p string) { setByte(t, p, 7*frame, 0x7f) }, 8, 1},
		{"zeroed_record_mid_last_segment", func(t *testing.T, p string) { zeroRange(t, p, 1*frame, frame) }, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, wal.Options{})
			appendN(t, l, 1, 10, size)
			l.Close()
			path := lastSegment(t, dir)
			tt.corrupt(t, path)
			before, _ := os.ReadFile(path)
			_, err := wal.Open(dir, wal.Options{})
			var ce *wal.CorruptionError
			if !errors.As(err, &ce) {
				t.Fatalf("Open = %v, want a *CorruptionError (the old code truncated here)", err)
			}
			if ce.Index != tt.index || ce.Offset != int64(tt.index-1)*frame || ce.NextValidOffset != int64(tt.index)*frame {
				t.Fatalf("corruption at index %d offset %d next valid %d, want index %d offset %d next %d",
					ce.Index, ce.Offset, ce.NextValidOffset, tt.index, (tt.index-1)*frame, tt.index*frame)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Fatal("Open changed the segment")
			}
			if m, _ := filepath.Glob(filepath.Join(dir, "*.broken.*")); len(m) != 0 {
				t.Fatalf("evidence files for a repair that must not happen: %v", m)
			}
			rep, err := wal.Verify(dir)
			if err != nil || rep.OK() {
				t.Fatalf("Verify: %+v %v", rep, err)
			}
			// The explicit repair.
			if tt.records != 0 {
				if _, err := wal.SkipDamaged(dir, tt.index, wal.SkipOptions{}); err == nil || !strings.Contains(err.Error(), "pass the count") {
					t.Fatalf("SkipDamaged without a count on an ambiguous region: %v", err)
				}
			}
			if _, err := wal.SkipDamaged(dir, tt.index+1, wal.SkipOptions{Records: tt.records, Force: true}); err == nil {
				t.Fatal("SkipDamaged of the wrong index succeeded")
			}
			if tt.records != 0 {
				// An explicit count in the last segment cannot be checked:
				// refused while the checkpoint is at or after the damage.
				if _, err := wal.SkipDamaged(dir, tt.index, wal.SkipOptions{Records: tt.records}); err == nil {
					t.Fatal("SkipDamaged with an unchecked count and no checkpoint succeeded")
				}
				if _, err := wal.SkipDamaged(dir, tt.index, wal.SkipOptions{Records: tt.records, HaveCheckpoint: true, Checkpoint: tt.index}); err == nil {
					t.Fatal("SkipDamaged with an unchecked count at the checkpoint succeeded")
				}
			}
			sr, err := wal.SkipDamaged(dir, tt.index, wal.SkipOptions{Records: tt.records, HaveCheckpoint: true, Checkpoint: tt.index - 1})
			if err != nil {
				t.Fatal(err)
			}
			if sr.Records != 1 || sr.KeptRecords != 10 {
				t.Fatalf("skip report %+v", sr)
			}
			if b, err := os.ReadFile(sr.Evidence); err != nil || !bytes.Equal(b, before) {
				t.Fatalf("evidence %s is not the damaged segment: %v", sr.Evidence, err)
			}
			l = openLog(t, dir, wal.Options{})
			defer l.Close()
			if l.Repair() != nil {
				t.Fatalf("repaired after the explicit repair: %+v", l.Repair())
			}
			r := l.NewReader(1)
			for i := uint64(1); i <= 10; i++ {
				idx, rec, ok, err := r.Next()
				if !ok || err != nil || idx != i {
					t.Fatalf("index %d: ok=%v err=%v idx=%d", i, ok, err, idx)
				}
				if i == tt.index {
					if rec.Type != wal.TypeDamaged || !strings.Contains(string(rec.Payload), filepath.Base(sr.Evidence)) {
						t.Fatalf("index %d: type %v payload %q, want a damaged placeholder", i, rec.Type, rec.Payload)
					}
					continue
				}
				if rec.Type != wal.TypePage || !bytes.Equal(rec.Payload, payload(int(i), size)) {
					t.Fatalf("index %d lost or moved: %.20q", i, rec.Payload)
				}
			}
			// Indexes go on after the last one: none is reused.
			appendN(t, l, 11, 2, size)
		})
	}
}

// TestCorruptMiddleSegmentSkip: the explicit repair works for an older
// segment too, and the log opens with everything else intact.
func TestCorruptMiddleSegmentSkip(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, wal.Options{SegmentSize: 4096})
	appendN(t, l, 1, 300, 100)
	l.Close()
	names := segmentNames(dir)
	flipByte(t, filepath.Join(dir, names[1]), 500)
	_, err := wal.Open(dir, wal.Options{SegmentSize: 4096})
	var ce *wal.CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("Open: %v", err)
	}
	if _, err := wal.SkipDamaged(dir, ce.Index, wal.SkipOptions{}); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, wal.Options{SegmentSize: 4096})
	defer l.Close()
	r := l.NewReader(1)
	for i := uint64(1); i <= 300; i++ {
		idx, rec, ok, err := r.Next()
		if !ok || err != nil || idx != i {
			t.Fatalf("index %d: ok=%v err=%v", i, ok, err)
		}
		if i != ce.Index && !bytes.Equal(rec.Payload, payload(int(i), 100)) {
			t.Fatalf("index %d changed", i)
		}
	}
}

// TestFirstSegmentDeleted: a log whose first segment is gone is consistent by
// itself, but not with the checkpoint of its reader: the records between the
// checkpoint and the log's first index were acknowledged and never
// forwarded. Both the open-time check and Verify report the missing range.
func TestFirstSegmentDeleted(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, wal.Options{SegmentSize: 4096})
	appendN(t, l, 1, 300, 100)
	if err := l.CheckCheckpoint(0); err != nil {
		t.Fatalf("intact log: %v", err)
	}
	l.Close()
	names := segmentNames(dir)
	if err := os.Remove(filepath.Join(dir, names[0])); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, wal.Options{SegmentSize: 4096})
	defer l.Close()
	first := l.Stats().FirstIndex
	if first <= 1 {
		t.Fatalf("first index %d after deleting the first segment", first)
	}
	for _, ckpt := range []uint64{0, first - 2} {
		err := l.CheckCheckpoint(ckpt)
		var ce *wal.CorruptionError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "are missing") ||
			!strings.Contains(err.Error(), "records "+itoa(ckpt+1)+".."+itoa(first-1)) {
			t.Fatalf("checkpoint %d against a log from %d: %v", ckpt, first, err)
		}
	}
	// A checkpoint at first-1 or later is fine: nothing is missing.
	for _, ckpt := range []uint64{first - 1, first, 300, 1000} {
		if err := l.CheckCheckpoint(ckpt); err != nil {
			t.Fatalf("checkpoint %d: %v", ckpt, err)
		}
	}
	rep, err := wal.Verify(dir)
	if err != nil || !rep.OK() {
		t.Fatalf("the log alone checks: %+v %v", rep, err)
	}
	if err := rep.CheckCheckpoint(0); err == nil || !strings.Contains(err.Error(), "records 1..") {
		t.Fatalf("Verify report against checkpoint 0: %v", err)
	}
}

func itoa(x uint64) string { return strconv.FormatUint(x, 10) }

// segmentNames is the names of the segment files in dir, in index order.
// It reads names only (no stat), so it can run while a background
// truncation deletes files.
func segmentNames(dir string) []string {
	entries, _ := os.ReadDir(dir) // sorted: index order
	var names []string
	for _, e := range entries {
		if len(e.Name()) == 20 { // segment names are 20 digits
			names = append(names, e.Name())
		}
	}
	return names
}

// FuzzSkipDamaged flips bytes in the last segment; whenever Open refuses
// mid-segment damage, the explicit repair must work (given a count when it
// asks) or refuse cleanly, never panic, and afterwards every record outside
// the damaged region must still be at its index with its bytes.
func FuzzSkipDamaged(f *testing.F) {
	f.Add(uint16(4*63+30), byte(0xff), uint16(0), byte(0))
	f.Add(uint16(7*63), byte(0x7f), uint16(2*63+5), byte(1))
	f.Fuzz(func(t *testing.T, off1 uint16, x1 byte, off2 uint16, x2 byte) {
		const size, frame, n = 50, 63, 10
		dir := t.TempDir()
		l := openLog(t, dir, wal.Options{})
		appendN(t, l, 1, n, size)
		l.Close()
		path := lastSegment(t, dir)
		mutate(t, path, func(b []byte) {
			b[int(off1)%len(b)] ^= x1
			b[int(off2)%len(b)] ^= x2
		})
		_, err := wal.Open(dir, wal.Options{})
		var ce *wal.CorruptionError
		if !errors.As(err, &ce) || ce.NextValidOffset == 0 {
			return // clean, repaired tail, or refused otherwise
		}
		// Nothing forwarded yet: the checkpoint is 0.
		if _, err := wal.SkipDamaged(dir, ce.Index, wal.SkipOptions{HaveCheckpoint: true}); err != nil {
			if !strings.Contains(err.Error(), "pass the count") {
				t.Fatalf("SkipDamaged: %v", err)
			}
			// Every frame here is 63 bytes: the true count is known.
			if _, err := wal.SkipDamaged(dir, ce.Index, wal.SkipOptions{Records: int(ce.NextValidOffset-ce.Offset) / frame, HaveCheckpoint: true}); err != nil {
				t.Fatalf("SkipDamaged with a count: %v", err)
			}
		}
		l, err = wal.Open(dir, wal.Options{})
		if err != nil {
			return // a second damage point: another explicit repair
		}
		defer l.Close()
		r := l.NewReader(1)
		for {
			idx, rec, ok, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if rec.Type == wal.TypePage && idx <= n && !bytes.Equal(rec.Payload, payload(int(idx), size)) {
				t.Fatalf("index %d holds another record's bytes after the repair", idx)
			}
		}
	})
}

// TestSkipWrongCountRefused: an explicit count that disagrees with the
// records the segment must hold (the next segment's first index) used to be
// written, moving every later record of the segment to another index.
func TestSkipWrongCountRefused(t *testing.T) {
	const size, frame = 100, 113
	dir := t.TempDir()
	l := openLog(t, dir, wal.Options{SegmentSize: 4096})
	appendN(t, l, 1, 300, size)
	l.Close()
	names := segmentNames(dir)
	path := filepath.Join(dir, names[1])
	setByte(t, path, 3*frame, 0x7f) // a damaged length prefix: the count is not known
	_, err := wal.Open(dir, wal.Options{SegmentSize: 4096})
	var ce *wal.CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("Open: %v", err)
	}
	before, _ := os.ReadFile(path)
	for _, n := range []int{2, 3} {
		if _, err := wal.SkipDamaged(dir, ce.Index, wal.SkipOptions{Records: n, Force: true}); err == nil || !strings.Contains(err.Error(), "indexes would move") {
			t.Fatalf("SkipDamaged with %d records (1 is right): %v, want refused", n, err)
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Fatal("a refused SkipDamaged changed the segment")
		}
	}
	if _, err := wal.SkipDamaged(dir, ce.Index, wal.SkipOptions{Records: 1}); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, wal.Options{SegmentSize: 4096})
	defer l.Close()
	r := l.NewReader(1)
	for i := uint64(1); i <= 300; i++ {
		idx, rec, ok, err := r.Next()
		if !ok || err != nil || idx != i {
			t.Fatalf("index %d: ok=%v err=%v", i, ok, err)
		}
		if i != ce.Index && !bytes.Equal(rec.Payload, payload(int(i), size)) {
			t.Fatalf("index %d moved", i)
		}
	}
}
