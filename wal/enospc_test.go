package wal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/tmpfstest"
	"github.com/holdfast/holdfast/wal"
)

// fill writes a file of n bytes (or as much as fits) and fsyncs it.
func fill(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for w := 0; w < n; w += len(buf) {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Sync()
}

// enospcPayload varies in size so that the disk fills inside a frame.
func enospcPayload(idx int, seq int) []byte {
	p := bytes.Repeat([]byte{byte(seq)}, 1500+(seq*977)%4000)
	copy(p, fmt.Sprintf("w%d/s%d;", idx, seq))
	return p
}

type ackedSet struct {
	mu sync.Mutex
	m  map[uint64][]byte
}

// appendUntilFailed has four writers append until each is refused, and
// records what was acknowledged. It returns the errors seen.
func appendUntilFailed(t *testing.T, l *wal.Log, acked *ackedSet, round int) []error {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; ; seq++ {
				p := enospcPayload(round*10+w, seq)
				idx, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: p})
				if err != nil {
					errs[w] = err
					return
				}
				acked.mu.Lock()
				if _, dup := acked.m[idx]; dup {
					t.Errorf("index %d acknowledged twice", idx)
				}
				acked.m[idx] = p
				acked.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// checkAcked reads every acknowledged record back from a reopened log.
func checkAcked(t *testing.T, dir string, acked *ackedSet) {
	t.Helper()
	l, err := wal.Open(dir, wal.Options{SegmentSize: 128 << 10})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer l.Close()
	r := l.NewReader(l.Stats().FirstIndex)
	seen := 0
	for {
		idx, rec, ok, err := r.Next()
		if err != nil {
			t.Fatalf("reading %d: %v", r.Position(), err)
		}
		if !ok {
			break
		}
		if want, was := acked.m[idx]; was {
			if !bytes.Equal(rec.Payload, want) {
				t.Fatalf("index %d holds %.20q, acknowledged %.20q", idx, rec.Payload, want)
			}
			seen++
		}
	}
	if seen != len(acked.m) {
		t.Fatalf("%d of %d acknowledged records found", seen, len(acked.m))
	}
}

// noPartialEvidence checks that no repair left an incomplete evidence copy.
func noPartialEvidence(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, _ := e.Info()
		if strings.HasSuffix(e.Name(), ".tmp") || (strings.Contains(e.Name(), ".broken.") && info.Size() == 0) {
			t.Fatalf("partial evidence left behind: %s (%d bytes)", e.Name(), info.Size())
		}
	}
}

// waitRecoverAttempt waits until the background recovery has tried and
// failed at least once (the disk is still full).
func waitRecoverAttempt(t *testing.T, l *wal.Log) error {
	t.Helper()
	deadline := time.Now().Add(recoverDeadline)
	for {
		st := l.Stats()
		if st.Failed == nil {
			return nil
		}
		if st.RecoverError != nil {
			return st.RecoverError
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery attempt within %v: %+v", recoverDeadline, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestENOSPCMidWrite fills a real (tmpfs) file system under the log while
// four writers append. The log must refuse appends (nothing acknowledged
// that is not durable), never panic (Close, TruncateThrough, reopen while
// failed), leave no partial evidence copy when a repair cannot copy for lack
// of space, and recover by itself once space returns, both when space is
// freed from outside and when TruncateThrough frees it (the path that
// panicked with a nil handle). Every acknowledged record survives.
func TestENOSPCMidWrite(t *testing.T) {
	mnt := tmpfstest.Mount(t, "3m")
	dir := filepath.Join(mnt, "wal")
	opts := wal.Options{SegmentSize: 128 << 10, RecoverMin: 5 * time.Millisecond, RecoverMax: 20 * time.Millisecond}
	acked := &ackedSet{m: map[uint64][]byte{}}
	l := openLog(t, dir, opts)
	closed := false
	defer func() {
		if !closed {
			l.Close()
		}
	}()
	fill(t, filepath.Join(mnt, "filler1"), 1<<20)

	// 1. The disk fills mid-write.
	for _, err := range appendUntilFailed(t, l, acked, 0) {
		if !errors.Is(err, wal.ErrFailed) {
			t.Fatalf("append on a full disk: %v, want ErrFailed", err)
		}
	}
	if st := l.Stats(); st.Failed == nil || !strings.Contains(st.Failed.Error(), "no space left") {
		t.Fatalf("stats on a full disk: %+v", st)
	}
	// Recovery cuts the refused group's bytes (without a copy: no space,
	// and they were never acknowledged), which needs no space, so the log
	// comes back even on the full disk; the next appends fill it again.
	if err := waitRecoverAttempt(t, l); err != nil {
		t.Fatalf("recovery on a full disk: %v", err)
	}
	t.Logf("disk full after %d acknowledged records; recovered by cutting the refused bytes", len(acked.m))
	noPartialEvidence(t, dir)
	for _, err := range appendUntilFailed(t, l, acked, 3) {
		if !errors.Is(err, wal.ErrFailed) {
			t.Fatalf("append while still full: %v, want ErrFailed", err)
		}
	}

	// 2. Space returns from outside: the log recovers by itself.
	if err := os.Remove(filepath.Join(mnt, "filler1")); err != nil {
		t.Fatal(err)
	}
	waitRecovered(t, l)
	noPartialEvidence(t, dir)
	if st := l.Stats(); st.Recoveries == 0 {
		t.Fatalf("recovered without counting it: %+v", st)
	}

	// 3. Full again; TruncateThrough (the forwarder after an insert) frees
	// space and the log recovers through it.
	for _, err := range appendUntilFailed(t, l, acked, 1) {
		if !errors.Is(err, wal.ErrFailed) {
			t.Fatalf("append on a full disk again: %v, want ErrFailed", err)
		}
	}
	waitRecoverAttempt(t, l)
	st := l.Stats()
	removed, err := l.TruncateThrough(st.LastIndex / 2)
	if err != nil || removed == 0 {
		t.Fatalf("TruncateThrough on a failed log: removed %d, %v", removed, err)
	}
	waitRecovered(t, l)
	first := l.Stats().FirstIndex
	acked.mu.Lock()
	for idx := range acked.m {
		if idx < first {
			delete(acked.m, idx) // truncated on purpose: behind a "checkpoint"
		}
	}
	acked.mu.Unlock()

	// 4. Full again, then closed while failed and reopened on the still
	// full disk: Open either works or fails saying what space it needs,
	// with no partial evidence left.
	fill(t, filepath.Join(mnt, "filler2"), 1<<20)
	for _, err := range appendUntilFailed(t, l, acked, 2) {
		if !errors.Is(err, wal.ErrFailed) {
			t.Fatalf("append on a full disk a third time: %v, want ErrFailed", err)
		}
	}
	if err := l.Close(); err != nil {
		t.Logf("Close of a failed log: %v", err)
	}
	closed = true
	// What Open may do depends on what the failed write left: a clean end
	// must open as is; a torn end is repaired (evidence kept) or refused
	// saying how much space the evidence copy needs.
	vr, err := wal.Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	torn := !vr.OK()
	var maxAcked uint64
	acked.mu.Lock()
	for idx := range acked.m {
		maxAcked = max(maxAcked, idx)
	}
	acked.mu.Unlock()
	switch l2, err := wal.Open(dir, opts); {
	case err == nil:
		rep, last := l2.Repair(), l2.Stats().LastIndex
		l2.Close()
		if (rep != nil) != torn {
			t.Fatalf("Open on a full disk: repair %+v, but Verify found the end torn=%v (%v)", rep, torn, vr.Problems)
		}
		if last < maxAcked {
			t.Fatalf("Open on a full disk ends at %d, before the acknowledged %d", last, maxAcked)
		}
	case !torn:
		t.Fatalf("Open of a log with a clean end on a full disk: %v", err)
	case !strings.Contains(err.Error(), "needs"):
		t.Fatalf("Open on a full disk fails without saying what it needs: %v", err)
	default:
		t.Logf("Open on a full disk: %v", err)
	}
	noPartialEvidence(t, dir)
	if err := os.Remove(filepath.Join(mnt, "filler2")); err != nil {
		t.Fatal(err)
	}
	checkAcked(t, dir, acked)
	t.Logf("%d acknowledged records intact", len(acked.m))
}

// TestFullDiskOneSegmentRecovers: the log's only segment fills the disk.
// Its tail is never deleted and a failed log writes nothing, so no segment
// would ever begin and nothing could be freed: the log stayed failed for
// good even once everything was forwarded. Truncating through the last
// record now begins an empty segment and deletes the forwarded tail.
func TestFullDiskOneSegmentRecovers(t *testing.T) {
	mnt := tmpfstest.Mount(t, "2m")
	dir := filepath.Join(mnt, "wal")
	opts := wal.Options{SegmentSize: 8 << 20, RecoverMin: 5 * time.Millisecond, RecoverMax: 20 * time.Millisecond}
	l := openLog(t, dir, opts)
	acked := &ackedSet{m: map[uint64][]byte{}}
	for _, err := range appendUntilFailed(t, l, acked, 0) {
		if !errors.Is(err, wal.ErrFailed) {
			t.Fatalf("append on a full disk: %v, want ErrFailed", err)
		}
	}
	if st := l.Stats(); st.Segments != 1 {
		t.Fatalf("want the disk filled by one segment: %+v", st)
	}
	last := l.Stats().LastIndex
	removed, err := l.TruncateThrough(last) // everything forwarded
	if err != nil || removed != 1 {
		t.Fatalf("TruncateThrough(%d) on a full one-segment log: removed %d, %v", last, removed, err)
	}
	waitRecovered(t, l)
	checkModel(t, l, dir)
	if st := l.Stats(); st.FirstIndex != last+1 || st.LastIndex != last || st.SizeBytes != 0 {
		t.Fatalf("after the roll: %+v, want an empty log at %d", st, last+1)
	}
	idx, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: []byte("after")})
	if err != nil || idx != last+1 {
		t.Fatalf("append after the roll: %d, %v; want %d", idx, err, last+1)
	}
	l.Close()
	l = openLog(t, dir, opts)
	defer l.Close()
	r := l.NewReader(last + 1)
	if _, rec, ok, err := r.Next(); !ok || err != nil || string(rec.Payload) != "after" {
		t.Fatalf("after reopen: ok=%v err=%v %q", ok, err, rec.Payload)
	}
}

// TestFullDiskOneSegmentRollsOnRecovery: the truncation through the last
// record came while the log was up (between two failures, nothing to free
// yet); the next failure's recovery begins the empty segment itself, since
// no later truncation may come (nothing new to forward).
func TestFullDiskOneSegmentRollsOnRecovery(t *testing.T) {
	mnt := tmpfstest.Mount(t, "2m")
	dir := filepath.Join(mnt, "wal")
	opts := wal.Options{SegmentSize: 8 << 20, RecoverMin: 5 * time.Millisecond, RecoverMax: 20 * time.Millisecond}
	l := openLog(t, dir, opts)
	defer l.Close()
	acked := &ackedSet{m: map[uint64][]byte{}}
	appendUntilFailed(t, l, acked, 0)
	waitRecovered(t, l) // the refused bytes are cut; the disk is still full
	last := l.Stats().LastIndex
	if removed, err := l.TruncateThrough(last); err != nil || removed != 0 {
		t.Fatalf("TruncateThrough on a log that is up: removed %d, %v", removed, err)
	}
	// The disk is still full: the next append fails, and the recovery
	// frees the forwarded tail.
	big := bytes.Repeat([]byte("x"), 512<<10)
	if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: big}); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("append on the full disk: %v, want ErrFailed", err)
	}
	waitRecovered(t, l)
	if st := l.Stats(); st.FirstIndex != last+1 || st.SizeBytes != 0 {
		t.Fatalf("after recovery: %+v, want an empty log at %d", st, last+1)
	}
	if idx, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: big}); err != nil || idx != last+1 {
		t.Fatalf("append after the roll: %d, %v; want %d", idx, err, last+1)
	}
	checkModel(t, l, dir)
}
