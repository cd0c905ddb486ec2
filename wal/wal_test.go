package wal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/wal"
)

func payload(i int, size int) []byte {
	p := bytes.Repeat([]byte{byte(i)}, size)
	copy(p, fmt.Sprintf("record-%d;", i))
	return p
}

func openLog(t *testing.T, dir string, opts wal.Options) *wal.Log {
	t.Helper()
	l, err := wal.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func appendN(t *testing.T, l *wal.Log, from, n, size int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		idx, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: payload(i, size)})
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		if idx != uint64(i) {
			t.Fatalf("Append %d returned index %d", i, idx)
		}
	}
}

// readAll reads every record from index from on and checks payload(i).
func checkRecords(t *testing.T, l *wal.Log, from, to, size int) {
	t.Helper()
	r := l.NewReader(uint64(from))
	for i := from; i <= to; i++ {
		idx, rec, ok, err := r.Next()
		if err != nil || !ok {
			t.Fatalf("Next at %d: ok=%v err=%v", i, ok, err)
		}
		if idx != uint64(i) || rec.Type != wal.TypePage || !bytes.Equal(rec.Payload, payload(i, size)) {
			t.Fatalf("record %d: index %d type %v payload %.20q", i, idx, rec.Type, rec.Payload)
		}
	}
	if _, _, ok, err := r.Next(); ok || err != nil {
		t.Fatalf("read past the end: ok=%v err=%v", ok, err)
	}
}

func TestAppendReadReopen(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewPedanticRegistry()
	l := openLog(t, dir, wal.Options{SegmentSize: 4096, Registerer: reg})
	appendN(t, l, 1, 200, 100)
	checkRecords(t, l, 1, 200, 100)
	if got := metricValue(t, reg, "holdfast_wal_records_appended_total"); got != 200 {
		t.Errorf("records_appended_total = %v, want 200", got)
	}
	if model, disk := l.SegmentsModel(), wal.SegmentsOnDisk(dir); !reflect.DeepEqual(model, disk) {
		t.Fatalf("segment model differs from disk:\nmodel %v\ndisk  %v", model, disk)
	}
	if st := l.Stats(); st.Segments < 5 || st.FirstIndex != 1 || st.LastIndex != 200 {
		t.Fatalf("stats %+v: want several segments, 1..200", st)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Close unregistered the metrics, so a new log can register again.
	l = openLog(t, dir, wal.Options{SegmentSize: 4096, Registerer: reg})
	defer l.Close()
	if l.Repair() != nil {
		t.Fatalf("clean log was repaired: %+v", l.Repair())
	}
	checkRecords(t, l, 1, 200, 100)
	appendN(t, l, 201, 10, 100)
	checkRecords(t, l, 1, 210, 100)
}

// metricValue reads a counter or gauge from a registry.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestGroupCommitConcurrent(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewPedanticRegistry()
	l := openLog(t, dir, wal.Options{SegmentSize: 64 << 10, Registerer: reg})
	defer l.Close()
	const writers, each = 64, 40
	var mu sync.Mutex
	got := map[uint64]string{}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				p := fmt.Sprintf("writer %d record %d", w, i)
				idx, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: []byte(p)})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := got[idx]; dup {
					t.Errorf("index %d given to %q and %q", idx, prev, p)
				}
				got[idx] = p
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != writers*each {
		t.Fatalf("%d distinct indexes, want %d", len(got), writers*each)
	}
	r := l.NewReader(1)
	for i := uint64(1); i <= writers*each; i++ {
		idx, rec, ok, err := r.Next()
		if !ok || err != nil || idx != i || string(rec.Payload) != got[i] {
			t.Fatalf("index %d: ok=%v err=%v payload %q want %q", i, ok, err, rec.Payload, got[i])
		}
	}
	// Group commit must have grouped: fewer fsyncs than appends.
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "holdfast_wal_group_records" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() >= writers*each {
				t.Errorf("%d commit groups for %d appends: no grouping happened", h.GetSampleCount(), writers*each)
			}
			t.Logf("%d appends in %d groups", writers*each, h.GetSampleCount())
		}
	}
	if model, disk := l.SegmentsModel(), wal.SegmentsOnDisk(dir); !reflect.DeepEqual(model, disk) {
		t.Fatalf("segment model differs from disk:\nmodel %v\ndisk  %v", model, disk)
	}
}

// lastSegment returns the path of the newest segment file.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if len(e.Name()) == 20 {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return filepath.Join(dir, names[len(names)-1])
}

func TestRepairLastSegment(t *testing.T) {
	const size = 50 // payload bytes; a frame is 1 + 12 + 50 = 63 bytes
	const frame = 63
	tests := []struct {
		name    string
		corrupt func(t *testing.T, path string)
		survive int // of 10 records written
	}{
		{"torn_last_record", func(t *testing.T, p string) { truncateBy(t, p, 20) }, 9},
		{"torn_length_prefix", func(t *testing.T, p string) { truncateBy(t, p, frame-1) }, 9},
		{"zero_tail", func(t *testing.T, p string) { appendBytes(t, p, make([]byte, 4096)) }, 10},
		{"garbage_tail", func(t *testing.T, p string) { appendBytes(t, p, []byte("\x07garbage!!")) }, 10},
		{"bad_checksum_last", func(t *testing.T, p string) { flipByte(t, p, -5) }, 9},
		{"zeroed_record", func(t *testing.T, p string) { zeroRange(t, p, 9*frame, frame) }, 9},
		{"empty_entries", func(t *testing.T, p string) { appendBytes(t, p, []byte{0, 0, 0}) }, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, wal.Options{})
			appendN(t, l, 1, 10, size)
			l.Close()
			path := lastSegment(t, dir)
			if st, _ := os.Stat(path); st.Size() != 10*frame {
				t.Fatalf("segment is %d bytes, test assumes %d", st.Size(), 10*frame)
			}
			tt.corrupt(t, path)
			reg := prometheus.NewPedanticRegistry()
			l = openLog(t, dir, wal.Options{Registerer: reg})
			defer l.Close()
			rep := l.Repair()
			if rep == nil {
				t.Fatal("no repair reported")
			}
			if rep.KeptRecords != uint64(tt.survive) {
				t.Fatalf("kept %d records, want %d (cause %v)", rep.KeptRecords, tt.survive, rep.Cause)
			}
			// The evidence is exactly the bytes cut from the end.
			if b, err := os.ReadFile(rep.BrokenCopy); err != nil || int64(len(b)) != rep.RemovedBytes {
				t.Fatalf("evidence copy %s: %d bytes, %v; want the %d bytes removed", rep.BrokenCopy, len(b), err, rep.RemovedBytes)
			}
			if got := metricValue(t, reg, "holdfast_wal_repairs_total"); got != 1 {
				t.Errorf("repairs_total = %v", got)
			}
			checkRecords(t, l, 1, tt.survive, size)
			// The log goes on from the last good record.
			appendN(t, l, tt.survive+1, 3, size)
			checkRecords(t, l, 1, tt.survive+3, size)
		})
	}
}

func TestCorruptMiddleSegmentFailsOpen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, wal.Options{SegmentSize: 4096})
	appendN(t, l, 1, 300, 100)
	l.Close()
	disk := wal.SegmentsOnDisk(dir)
	var names []string
	for n := range disk {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) < 3 {
		t.Fatalf("want at least 3 segments, have %d", len(names))
	}
	victim := filepath.Join(dir, names[1])
	flipByte(t, victim, 500)
	before, _ := os.ReadFile(victim)
	_, err := wal.Open(dir, wal.Options{SegmentSize: 4096})
	var ce *wal.CorruptionError
	if !errors.As(err, &ce) || !wal.IsCorrupt(err) {
		t.Fatalf("Open error = %v, want a *CorruptionError", err)
	}
	if ce.Segment != names[1] || ce.Offset <= 0 || ce.Offset > 500 {
		t.Fatalf("corruption reported at %s offset %d, want %s near 500", ce.Segment, ce.Offset, names[1])
	}
	if !strings.Contains(err.Error(), names[1]) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", ce.Offset)) {
		t.Errorf("error does not name segment and offset: %v", err)
	}
	after, _ := os.ReadFile(victim)
	if !bytes.Equal(before, after) {
		t.Fatal("Open changed a corrupt middle segment")
	}
	// A missing middle segment is a gap, also refused.
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	if _, err := wal.Open(dir, wal.Options{SegmentSize: 4096}); !wal.IsCorrupt(err) || !strings.Contains(err.Error(), "previous segment") {
		t.Fatalf("Open with a missing segment: %v", err)
	}
}

func TestBudget(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewPedanticRegistry()
	l := openLog(t, dir, wal.Options{SegmentSize: 4096, BudgetBytes: 16 << 10, Registerer: reg})
	defer l.Close()
	ctx := context.Background()
	n := 0
	var err error
	for n = 1; n < 1000; n++ {
		if _, err = l.Append(ctx, wal.Record{Type: wal.TypePage, Payload: payload(n, 500)}); err != nil {
			break
		}
	}
	var full *wal.FullError
	if !errors.Is(err, wal.ErrFull) || !errors.As(err, &full) {
		t.Fatalf("after %d appends: err = %v, want ErrFull", n, err)
	}
	// Full means at or over the budget, by less than one record.
	if st := l.Stats(); !st.Full() || st.SizeBytes >= 16<<10+full.RecordBytes {
		t.Fatalf("stats %+v after refusal %+v", st, full)
	}
	if got := metricValue(t, reg, "holdfast_wal_full_rejections_total"); got != 1 {
		t.Errorf("full_rejections_total = %v", got)
	}
	// Nothing was written for the refused record; it still fails while full.
	if _, err := l.Append(ctx, wal.Record{Type: wal.TypePage, Payload: payload(n, 500)}); !errors.Is(err, wal.ErrFull) {
		t.Fatalf("second append while full: %v", err)
	}
	if st := l.Stats(); st.LastIndex != uint64(n-1) {
		t.Fatalf("last index %d, want %d", st.LastIndex, n-1)
	}
	// Truncating behind a checkpoint frees space, and appends resume.
	removed, err := l.TruncateThrough(uint64(n - 1))
	if err != nil || removed == 0 {
		t.Fatalf("TruncateThrough: removed %d, err %v", removed, err)
	}
	if idx, err := l.Append(ctx, wal.Record{Type: wal.TypePage, Payload: payload(n, 500)}); err != nil || idx != uint64(n) {
		t.Fatalf("append after truncation: idx %d err %v", idx, err)
	}
}

// TestBudgetAdmitsOversizedRecord: a record larger than the whole budget is
// taken while the log holds less than the budget; otherwise it could never be
// written and the caller would wait forever.
func TestBudgetAdmitsOversizedRecord(t *testing.T) {
	l := openLog(t, t.TempDir(), wal.Options{BudgetBytes: 256 << 10})
	defer l.Close()
	ctx := context.Background()
	if _, err := l.Append(ctx, wal.Record{Type: wal.TypePage, Payload: make([]byte, 300<<10)}); err != nil {
		t.Fatalf("oversized record into an empty log: %v", err)
	}
	if _, err := l.Append(ctx, wal.Record{Type: wal.TypePage, Payload: []byte("x")}); !errors.Is(err, wal.ErrFull) {
		t.Fatalf("append over the budget: %v", err)
	}
}

func TestBudgetAndSegmentSize(t *testing.T) {
	if _, err := wal.Open(t.TempDir(), wal.Options{BudgetBytes: 1 << 20, SegmentSize: 1 << 20}); err == nil || !strings.Contains(err.Error(), "twice the SegmentSize") {
		t.Fatalf("segment as large as the budget: %v", err)
	}
	// By default the segment size follows a small budget, so the tail
	// segment cannot hold the log full: truncation frees space.
	dir := t.TempDir()
	l := openLog(t, dir, wal.Options{BudgetBytes: 1 << 20})
	defer l.Close()
	ctx := context.Background()
	n := 0
	for ; n < 10_000; n++ {
		if _, err := l.Append(ctx, wal.Record{Type: wal.TypePage, Payload: payload(n, 1000)}); err != nil {
			break
		}
	}
	if _, err := l.TruncateThrough(uint64(n)); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.SizeBytes > 512<<10 || st.Full() {
		t.Fatalf("after truncating everything the log still holds %d bytes of a 1 MiB budget", st.SizeBytes)
	}
}

func TestTruncateThrough(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, wal.Options{SegmentSize: 4096})
	appendN(t, l, 1, 300, 100)
	before := l.Stats()
	removed, err := l.TruncateThrough(150)
	if err != nil || removed == 0 {
		t.Fatalf("removed %d err %v", removed, err)
	}
	after := l.Stats()
	if after.FirstIndex > 151 || after.FirstIndex <= 1 || after.SizeBytes >= before.SizeBytes || after.Segments != before.Segments-removed {
		t.Fatalf("before %+v after %+v removed %d", before, after, removed)
	}
	checkRecords(t, l, int(after.FirstIndex), 300, 100)
	if _, _, _, err := l.NewReader(1).Next(); !errors.Is(err, wal.ErrNotFound) {
		t.Fatalf("reading a truncated index: %v", err)
	}
	if model, disk := l.SegmentsModel(), wal.SegmentsOnDisk(dir); !reflect.DeepEqual(model, disk) {
		t.Fatalf("segment model differs from disk:\nmodel %v\ndisk  %v", model, disk)
	}
	// Truncating everything keeps the tail file and the next index.
	if _, err := l.TruncateThrough(300); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 301, 5, 100)
	l.Close()
	l = openLog(t, dir, wal.Options{SegmentSize: 4096})
	defer l.Close()
	st := l.Stats()
	if st.LastIndex != 305 || st.FirstIndex > 301 {
		t.Fatalf("after reopen: %+v", st)
	}
	checkRecords(t, l, int(st.FirstIndex), 305, 100)
}

// TestFailedWriteRecoversByItself: after a write or fsync error the log
// refuses appends (the fsync is never retried on the same handle), then
// recovers by itself through the reopen-and-repair path; nothing written
// before is lost and indexes go on.
func TestFailedWriteRecoversByItself(t *testing.T) {
	dir := t.TempDir()
	var fail bool
	var mu sync.Mutex
	reg := prometheus.NewPedanticRegistry()
	opts := wal.Options{Registerer: reg}
	wal.SetCommitHook(&opts, func() error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("injected: fsync: input/output error")
		}
		return nil
	})
	l := openLog(t, dir, opts)
	defer l.Close()
	appendN(t, l, 1, 5, 10)
	mu.Lock()
	fail = true
	mu.Unlock()
	ctx := context.Background()
	if _, err := l.Append(ctx, wal.Record{Type: wal.TypePage, Payload: []byte("x")}); !errors.Is(err, wal.ErrFailed) || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("append during failure: %v", err)
	}
	if st := l.Stats(); st.Failed == nil {
		t.Fatal("Stats does not report the failure")
	}
	if got := metricValue(t, reg, "holdfast_wal_failed"); got != 1 {
		t.Errorf("holdfast_wal_failed = %v while failed", got)
	}
	mu.Lock()
	fail = false // the disk recovers: the log comes back by itself
	mu.Unlock()
	waitRecovered(t, l)
	if got := metricValue(t, reg, "holdfast_wal_recoveries_total"); got != 1 {
		t.Errorf("recoveries_total = %v", got)
	}
	appendN(t, l, 6, 1, 10)
	checkRecords(t, l, 1, 6, 10)
	l.Close()
	l = openLog(t, dir, wal.Options{})
	defer l.Close()
	checkRecords(t, l, 1, 6, 10)
}

// recoverDeadline bounds the waits for the background recovery: generous
// (it retries every few milliseconds in these tests), so that a hang fails
// with the log's state instead of at the test binary's timeout.
const recoverDeadline = 2 * time.Minute

// waitRecovered waits until the log is no longer failed.
func waitRecovered(t *testing.T, l *wal.Log) {
	t.Helper()
	deadline := time.NewTimer(recoverDeadline)
	defer deadline.Stop()
	for {
		_, changed := l.Notify()
		if l.Stats().Failed == nil {
			return
		}
		select {
		case <-changed: // a recovery closes it
		case <-deadline.C:
			t.Fatalf("the log did not recover within %v: %+v", recoverDeadline, l.Stats())
		}
	}
}

func TestLockExcludesSecondOpen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, wal.Options{})
	if _, err := wal.Open(dir, wal.Options{}); !errors.Is(err, wal.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	l.Close()
	l2 := openLog(t, dir, wal.Options{})
	l2.Close()
}

func TestRejectsBadAppends(t *testing.T) {
	l := openLog(t, t.TempDir(), wal.Options{})
	defer l.Close()
	for _, rec := range []wal.Record{{Type: wal.TypePage}, {Type: 0, Payload: []byte("x")}} {
		if _, err := l.Append(context.Background(), rec); !errors.Is(err, wal.ErrBadRecord) {
			t.Errorf("Append(%+v) = %v, want ErrBadRecord", rec, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: []byte("x")}); !errors.Is(err, wal.ErrClosed) {
		t.Errorf("Append after Close = %v", err)
	}
}

func TestReaderWaits(t *testing.T) {
	l := openLog(t, t.TempDir(), wal.Options{})
	defer l.Close()
	r := l.NewReader(1)
	done := make(chan error, 1)
	go func() { done <- r.Wait(context.Background()) }()
	appendN(t, l, 1, 1, 10)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.Seek(2)
	if err := r.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v", err)
	}
}

func TestVerifyAndDump(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, wal.Options{SegmentSize: 4096})
	appendN(t, l, 1, 100, 100)
	l.Close()
	rep, err := wal.Verify(dir)
	if err != nil || !rep.OK() || rep.FirstIndex != 1 || rep.LastIndex != 100 || rep.Records != 100 {
		t.Fatalf("Verify clean: %+v %v", rep, err)
	}
	var seen []uint64
	if err := wal.Dump(dir, 40, 60, func(e wal.DumpEntry) error {
		if !bytes.Equal(e.Record.Payload, payload(int(e.Index), 100)) {
			return fmt.Errorf("index %d: wrong payload", e.Index)
		}
		seen = append(seen, e.Index)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 21 || seen[0] != 40 || seen[20] != 60 {
		t.Fatalf("Dump 40..60 saw %v", seen)
	}
	disk := wal.SegmentsOnDisk(dir)
	var names []string
	for n := range disk {
		names = append(names, n)
	}
	sort.Strings(names)
	flipByte(t, filepath.Join(dir, names[1]), 200)
	rep, err = wal.Verify(dir)
	if err != nil || rep.OK() || len(rep.Problems) < 1 || !strings.Contains(rep.Problems[0].Error(), names[1]) {
		t.Fatalf("Verify of corrupt log: %+v %v", rep, err)
	}
}

func truncateBy(t *testing.T, path string, n int64) {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-n); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func mutate(t *testing.T, path string, fn func([]byte)) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fn(b)
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

// flipByte flips a byte at off (negative: from the end).
func flipByte(t *testing.T, path string, off int) {
	mutate(t, path, func(b []byte) {
		if off < 0 {
			off += len(b)
		}
		b[off] ^= 0x40
	})
}

func setByte(t *testing.T, path string, off int, v byte) {
	mutate(t, path, func(b []byte) { b[off] = v })
}

func zeroRange(t *testing.T, path string, off, n int) {
	mutate(t, path, func(b []byte) { clear(b[off : off+n]) })
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(wal.EncodeEnvelope(nil, wal.Record{Type: wal.TypePage, Payload: []byte("hello")}))
	f.Add([]byte{})
	f.Add(make([]byte, 12))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := wal.DecodeEnvelope(b)
		if err != nil {
			return
		}
		if !bytes.Equal(wal.EncodeEnvelope(nil, rec), b) {
			t.Fatal("a frame that checks does not re-encode to itself")
		}
	})
}

// FuzzOpenDamagedTail writes arbitrary bytes after good records in the last
// segment: Open must repair or refuse, never panic, and never lose a record
// that checked.
func FuzzOpenDamagedTail(f *testing.F) {
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{0x3f, 'h', 'f', 1, 1})
	f.Add(wal.EncodeEnvelope([]byte{17}, wal.Record{Type: wal.TypePage, Payload: []byte("x")}))
	f.Fuzz(func(t *testing.T, tail []byte) {
		dir := t.TempDir()
		l, err := wal.Open(dir, wal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		appendN(t, l, 1, 3, 20)
		l.Close()
		appendBytes(t, lastSegment(t, dir), tail)
		before, _ := os.ReadFile(lastSegment(t, dir))
		l, err = wal.Open(dir, wal.Options{})
		var ce *wal.CorruptionError
		if errors.As(err, &ce) && ce.NextValidOffset > 0 {
			// Garbage followed by a frame that checks is not a torn
			// tail: refused, and nothing may have changed.
			if after, _ := os.ReadFile(lastSegment(t, dir)); !bytes.Equal(before, after) {
				t.Fatal("Open changed a segment it refused")
			}
			return
		}
		if err != nil {
			t.Fatalf("Open after tail damage: %v", err)
		}
		defer l.Close()
		st := l.Stats()
		if st.LastIndex < 3 {
			t.Fatalf("lost good records: last index %d", st.LastIndex)
		}
		checkPrefix(t, l, 3, 20)
	})
}

func checkPrefix(t *testing.T, l *wal.Log, n, size int) {
	r := l.NewReader(1)
	for i := 1; i <= n; i++ {
		_, rec, ok, err := r.Next()
		if !ok || err != nil || !bytes.Equal(rec.Payload, payload(i, size)) {
			t.Fatalf("record %d after repair: ok=%v err=%v", i, ok, err)
		}
	}
}
