package wal

import (
	"errors"
	"fmt"

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
	return l.reopenLocked()
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
