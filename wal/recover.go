package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	twal "github.com/tidwall/wal"
)

// recoverFailed tries once to bring a failed log back: see reopenLocked. It
// runs on the writer goroutine, so no commit is in progress.
func (l *Log) recoverFailed() error {
	l.handle.Lock()
	defer l.handle.Unlock()
	l.mu.Lock()
	closed, failed := l.mu.closed, l.mu.failed
	l.mu.Unlock()
	if closed || failed == nil {
		return nil
	}
	// Everything was forwarded but the space is still taken (a full disk
	// filled by the tail alone): free it before reopening.
	if _, err := l.truncateLocked(l.throughIndex()); err != nil {
		return err
	}
	return l.reopenLocked()
}

func (l *Log) throughIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.through
}

// reopenLocked re-checks the files and swaps in a new tidwall/wal handle,
// through the same path Open takes: the segment list is checked for gaps,
// the tail segment (and any segment the model does not know, e.g. one
// tidwall/wal began during a failed write) is scanned, and a torn or
// zero-filled end is repaired with its evidence kept. The repair may never
// cut an acknowledged record: if the records that check end before the last
// index this process acknowledged, it fails with a *CorruptionError and
// changes nothing. On any error the old handle stays in place (reads go on)
// and the log stays failed; on success the failed state is cleared.
//
// The caller holds l.handle exclusively.
func (l *Log) reopenLocked() error {
	l.mu.Lock()
	known := make(map[string]uint64, len(l.mu.segs))
	for _, s := range l.mu.segs[:len(l.mu.segs)-1] {
		known[s.name] = s.records
	}
	acked, wasFailed := l.mu.last, l.mu.failed != nil
	l.mu.Unlock()

	if wasFailed {
		// The failed group's bytes may sit in the files (in the page
		// cache, perhaps never on disk): its appends were refused, so
		// they must not be adopted.
		if err := l.cutAfterAcked(acked); err != nil {
			return err
		}
	}

	segs, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return &CorruptionError{Dir: l.dir, Index: acked, Err: errors.New("no segment files left")}
	}
	// Refuse before any repair if the tail would lose acknowledged records.
	segs, report, err := checkSegmentListAcked(l.dir, segs, known, acked, l.log)
	if err != nil {
		return err
	}
	tw, err := l.openHandle()
	if err != nil {
		return err
	}
	first, err1 := tw.FirstIndex()
	last, err2 := tw.LastIndex()
	if err := errors.Join(err1, err2); err != nil {
		tw.Close()
		return fmt.Errorf("wal: reading index range: %w", err)
	}
	if last != acked {
		// The files must end at the last record this process
		// acknowledged (a failed log was cut there above): anything else
		// means the model and the disk disagree, and going on would
		// acknowledge records under indexes already used, or lose some.
		tw.Close()
		return &CorruptionError{Dir: l.dir, Index: acked + 1,
			Err: fmt.Errorf("the files end at index %d but the last acknowledged record is %d: nothing was changed", last, acked)}
	}
	if old := l.handle.tw; old != nil {
		// The old handle may report the failure again, or tidwall's
		// corrupt mark; it is discarded either way. (tidwall's Close
		// fsyncs first and keeps the file open if that fails: one
		// descriptor per failure is the price of not forking it.)
		if err := old.Close(); err != nil && !errors.Is(err, twal.ErrCorrupt) {
			l.log.Debug("wal: closing the failed handle", "err", err)
		}
	}
	l.handle.tw = tw
	if report != nil {
		l.m.repairs.Inc()
	}
	l.mu.Lock()
	if l.mu.failed != nil {
		l.log.Info("wal: recovered from a failed write; appends accepted again", "was", l.mu.failed, "last_index", last)
	}
	l.mu.first, l.mu.last, l.mu.segs = first, last, segs
	l.mu.failed, l.mu.recoverErr = nil, nil
	if wasFailed {
		l.mu.recoveries++
		l.m.recoveries.Inc()
	}
	l.recount()
	close(l.mu.notify)
	l.mu.notify = make(chan struct{})
	l.mu.Unlock()
	l.m.failed.Set(0)
	return nil
}

// cutAfterAcked makes the files end exactly after the frame holding index
// acked, the last record this process acknowledged. A write or fsync that
// failed may have left the refused group's frames in the files (an fsync
// error leaves the pages clean in the cache: readable now, perhaps lost at a
// power cut), and tidwall/wal may have begun new segment files inside it.
// Segment files that begin after acked+1 are renamed aside and the tail is
// cut after the frame holding acked (found by reading frames, not from the
// model's sizes), with the cut bytes kept as evidence (unless the disk is
// full: they belong to refused appends only); then the file and the
// directory are fsynced, so nothing after acked can come back later. The
// indexes of the refused appends are reused by later appends: they were
// never acknowledged to anyone.
func (l *Log) cutAfterAcked(acked uint64) error {
	segs, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	keep := len(segs)
	for keep > 0 && segs[keep-1].start > acked+1 {
		keep--
	}
	if keep == 0 {
		return &CorruptionError{Dir: l.dir, Index: acked, Err: errors.New("no segment file holds the end of the acknowledged records")}
	}
	stamp := time.Now().UnixNano()
	// Newest first, so that a crash part-way leaves a log that ends in a
	// prefix of what was there (valid, at worst a torn tail).
	for i := len(segs) - 1; i >= keep; i-- {
		path := filepath.Join(l.dir, segs[i].name)
		if err := os.Rename(path, fmt.Sprintf("%s.broken.refused.%d", path, stamp)); err != nil {
			return fmt.Errorf("wal: setting aside %s, begun by a failed write: %w", path, err)
		}
		l.log.Warn("wal: set aside a segment begun by a failed write", "segment", segs[i].name)
	}
	tail := segs[keep-1]
	var end int64
	if want := acked + 1 - tail.start; want > 0 {
		good, goodEnd, err := scanSegment(l.dir, tail, func(fi frameInfo) error {
			if fi.Index == acked {
				return errStopScan
			}
			return nil
		})
		if err == nil && good < want {
			err = &CorruptionError{Dir: l.dir, Segment: tail.name, Offset: goodEnd, Index: tail.start + good,
				Err: fmt.Errorf("the segment ends at index %d but index %d was acknowledged", tail.start+good-1, acked)}
		}
		if err != nil {
			return err
		}
		end = goodEnd
	}
	if tail.size > end {
		path := filepath.Join(l.dir, tail.name)
		if err := keepEvidence(path, end, fmt.Sprintf("%s.broken.at-%d.%d", path, end, stamp)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT) {
				return fmt.Errorf("wal: keeping a copy of the bytes a failed write left in %s (nothing was cut): %w", path, err)
			}
			// On a full disk the copy cannot be made, and waiting for
			// space would keep the log failed for good when it has a
			// single segment (nothing to truncate). These bytes are
			// only appends that were refused, whose producers still
			// hold the data: cut them without a copy.
			l.log.Warn("wal: no space to keep a copy of the bytes a failed write left; cutting them without one (their appends were refused: nothing acknowledged is lost)",
				"segment", tail.name, "offset", end, "bytes", tail.size-end, "err", err)
		}
		if err := truncateSynced(path, end); err != nil {
			return err
		}
		l.log.Warn("wal: cut the bytes of a failed write", "segment", tail.name, "kept_bytes", end, "removed_bytes", tail.size-end)
	}
	// Also covers a segment file tidwall/wal created inside the failed
	// group and nothing removed.
	return syncDir(l.dir)
}
