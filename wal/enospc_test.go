package wal_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/wal"
)

// MountTmpfs mounts a tmpfs of the given size (e.g. "4m") on a fresh
// t.TempDir() and unmounts it when the test ends. Without root (or without
// mount) it skips, except under CI=true where it fails: the ENOSPC tests are
// the real proof and must not silently vanish there.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	why := ""
	if os.Geteuid() != 0 {
		why = "not root"
	} else if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		why = fmt.Sprintf("mount -t tmpfs failed: %v: %s", err, out)
	}
	if why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot mount a small tmpfs for the full-disk test (%s); CI must run it as root", why)
		}
		t.Skipf("skipping the full-disk test: cannot mount a small tmpfs (%s); run as root to test ENOSPC", why)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

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
	for {
		st := l.Stats()
		if st.Failed == nil {
			return nil
		}
		if st.RecoverError != nil {
			return st.RecoverError
		}
		time.Sleep(5 * time.Millisecond) // polling, not a deadline
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
	mnt := mountTmpfs(t, "3m")
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
	t.Logf("disk full after %d acknowledged records; recovery says: %v", len(acked.m), waitRecoverAttempt(t, l))
	noPartialEvidence(t, dir)
	if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: []byte("x")}); !errors.Is(err, wal.ErrFailed) {
		t.Fatalf("append while still full: %v", err)
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
	appendUntilFailed(t, l, acked, 1)
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
	appendUntilFailed(t, l, acked, 2)
	if err := l.Close(); err != nil {
		t.Logf("Close of a failed log: %v", err)
	}
	closed = true
	if l2, err := wal.Open(dir, opts); err == nil {
		l2.Close()
	} else if !strings.Contains(err.Error(), "needs") {
		t.Fatalf("Open on a full disk fails without saying what it needs: %v", err)
	} else {
		t.Logf("Open on a full disk: %v", err)
	}
	noPartialEvidence(t, dir)
	if err := os.Remove(filepath.Join(mnt, "filler2")); err != nil {
		t.Fatal(err)
	}
	checkAcked(t, dir, acked)
	t.Logf("%d acknowledged records intact", len(acked.m))
}
