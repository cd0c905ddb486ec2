package wal_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast/holdfast/wal"
)

// checkModel fails unless the log's segment model is exactly the files on
// disk, each listed once with its size.
func checkModel(t *testing.T, l *wal.Log, dir string) {
	t.Helper()
	model, disk := l.SegmentsModel(), wal.SegmentsOnDisk(dir)
	if !reflect.DeepEqual(model, disk) || l.Stats().Segments != len(disk) {
		t.Fatalf("segment model differs from disk:\nmodel %v (%d segments)\ndisk  %v", model, l.Stats().Segments, disk)
	}
	var size int64
	for _, s := range disk {
		size += s
	}
	if st := l.Stats(); st.SizeBytes != size {
		t.Fatalf("model size %d, disk %d", st.SizeBytes, size)
	}
}

// TestTruncateDuringCommitKeepsModel reproduces a truncation that runs
// between a commit's write (which began a new segment) and its bookkeeping:
// the model listed the new segment twice, the next truncation deleted the
// live tail and acknowledged records were lost. The hook holds the commit at
// that point and starts a truncation; the window only gives the truncation
// the chance to run there, the verdict does not depend on its length.
func TestTruncateDuringCommitKeepsModel(t *testing.T) {
	dir := t.TempDir()
	var lp atomic.Pointer[wal.Log]
	var armed atomic.Bool
	truncated := make(chan error, 1)
	opts := wal.Options{SegmentSize: 4096}
	wal.SetWrittenHook(&opts, func() error {
		l := lp.Load()
		if !armed.Load() || len(wal.SegmentsOnDisk(dir)) <= l.Stats().Segments {
			return nil // not armed, or this group began no segment
		}
		armed.Store(false)
		done := make(chan struct{})
		go func() {
			_, err := l.TruncateThrough(l.Stats().LastIndex)
			truncated <- err
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(time.Second):
		}
		return nil
	})
	l := openLog(t, dir, opts)
	lp.Store(l)
	appendN(t, l, 1, 12, 1000)
	armed.Store(true)
	appendN(t, l, 13, 8, 1000)
	if armed.Load() {
		t.Fatal("no commit began a segment while armed")
	}
	if err := <-truncated; err != nil {
		t.Fatalf("TruncateThrough: %v", err)
	}
	checkModel(t, l, dir)
	first := int(l.Stats().FirstIndex)
	appendN(t, l, 21, 20, 1000)
	if _, err := l.TruncateThrough(uint64(first + 4)); err != nil {
		t.Fatalf("TruncateThrough: %v", err)
	}
	checkModel(t, l, dir)
	first = int(l.Stats().FirstIndex)
	checkRecords(t, l, first, 40, 1000)
	l.Close()
	l = openLog(t, dir, wal.Options{SegmentSize: 4096})
	defer l.Close()
	checkRecords(t, l, first, 40, 1000)
}

// TestConcurrentAppendTruncate appends from several goroutines while another
// truncates behind them, then checks the model against the disk and, after
// reopening, every acknowledged record after the last truncation point.
func TestConcurrentAppendTruncate(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, wal.Options{SegmentSize: 4096})
	var mu sync.Mutex
	acked := map[uint64][]byte{}
	var through atomic.Uint64
	stop := make(chan struct{})
	var tw sync.WaitGroup
	tw.Add(1)
	go func() {
		defer tw.Done()
		rng := rand.New(rand.NewSource(1))
		for {
			select {
			case <-stop:
				return
			default:
			}
			last := l.Stats().LastIndex
			if last < 8 {
				runtime.Gosched()
				continue
			}
			idx := last - uint64(rng.Intn(8))
			if _, err := l.TruncateThrough(idx); err != nil {
				t.Errorf("TruncateThrough(%d): %v", idx, err)
				return
			}
			through.Store(max(through.Load(), idx))
		}
	}()
	var aw sync.WaitGroup
	for w := 0; w < 4; w++ {
		aw.Add(1)
		go func() {
			defer aw.Done()
			for i := 0; i < 300; i++ {
				p := []byte(fmt.Sprintf("w%d-%d;%s", w, i, strings.Repeat("x", 200+i%300)))
				idx, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: p})
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				acked[idx] = p
				mu.Unlock()
			}
		}()
	}
	aw.Wait()
	close(stop)
	tw.Wait()
	checkModel(t, l, dir)
	l.Close()
	l = openLog(t, dir, wal.Options{SegmentSize: 4096})
	defer l.Close()
	r := l.NewReader(through.Load() + 1)
	for idx := through.Load() + 1; idx <= 1200; idx++ {
		got, rec, ok, err := r.Next()
		if err != nil || !ok || got != idx || string(rec.Payload) != string(acked[idx]) {
			t.Fatalf("record %d after reopen: index %d ok=%v err=%v payload %.20q, want %.20q", idx, got, ok, err, rec.Payload, acked[idx])
		}
	}
	if len(acked) != 1200 {
		t.Fatalf("%d acknowledged, want 1200", len(acked))
	}
}

var errInjected = errors.New("injected fsync error after the write")

// failAfterWrite returns options whose commits fail after their bytes are
// written (the fsync fails) while *fail is set.
func failAfterWrite(opts wal.Options, fail *atomic.Bool) wal.Options {
	wal.SetWrittenHook(&opts, func() error {
		if fail.Load() {
			return errInjected
		}
		return nil
	})
	opts.RecoverMin, opts.RecoverMax = time.Millisecond, 10*time.Millisecond
	return opts
}

// TestFailedGroupBytesAreCut: a group whose bytes reached the file but whose
// fsync failed was refused; recovery must cut it, not adopt it, so the last
// index stays the last acknowledged one and later appends follow it.
func TestFailedGroupBytesAreCut(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	opts := failAfterWrite(wal.Options{}, &fail)
	l := openLog(t, dir, opts)
	appendN(t, l, 1, 3, 100)
	fail.Store(true)
	if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: payload(99, 100)}); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("Append during failure: %v, want ErrFailed", err)
	}
	fail.Store(false)
	waitRecovered(t, l)
	if st := l.Stats(); st.LastIndex != 3 {
		t.Fatalf("after recovery the last index is %d, want 3 (the refused record was adopted)", st.LastIndex)
	}
	appendN(t, l, 4, 2, 100)
	checkRecords(t, l, 1, 5, 100)
	checkModel(t, l, dir)
	if !hasEvidence(dir) {
		t.Error("the cut bytes were not kept as evidence")
	}
	l.Close()
	l = openLog(t, dir, wal.Options{})
	defer l.Close()
	checkRecords(t, l, 1, 5, 100)
}

// TestFailedGroupNewSegmentIsCut: the failed group made tidwall/wal begin a
// new segment file; recovery removes it (keeping it as evidence) so the
// model and the disk agree and later appends get the next index.
func TestFailedGroupNewSegmentIsCut(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	opts := failAfterWrite(wal.Options{SegmentSize: 4096}, &fail)
	l := openLog(t, dir, opts)
	appendN(t, l, 1, 3, 1000)
	before := wal.SegmentsOnDisk(dir)
	fail.Store(true)
	if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: payload(99, 1200)}); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("Append during failure: %v, want ErrFailed", err)
	}
	if len(wal.SegmentsOnDisk(dir)) <= len(before) {
		t.Fatal("the failed group began no segment; the test needs it to")
	}
	fail.Store(false)
	waitRecovered(t, l)
	if st := l.Stats(); st.LastIndex != 3 {
		t.Fatalf("after recovery the last index is %d, want 3", st.LastIndex)
	}
	checkModel(t, l, dir)
	appendN(t, l, 4, 6, 1000)
	checkRecords(t, l, 1, 9, 1000)
	checkModel(t, l, dir)
	l.Close()
	l = openLog(t, dir, wal.Options{SegmentSize: 4096})
	defer l.Close()
	checkRecords(t, l, 1, 9, 1000)
}

func hasEvidence(dir string) bool {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".broken.") {
			return true
		}
	}
	return false
}
