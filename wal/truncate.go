package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// TruncateThrough removes the records up to and including index, by whole
// segments: a segment file is deleted once every record in it is at or before
// index, and once Options.TruncateSegments of them can go (or space is
// wanted). The tail segment is kept, except that a log that needs space (failed,
// e.g. on a full disk, or at its budget) and whose every record is at or
// before index begins an empty segment first so the former tail can go too
// (see rollTailLocked). Records after index are never touched, so calling it
// with the forwarder's checkpoint after every batch costs nothing until a
// segment is complete. It returns how many segment files were removed.
//
// tidwall/wal's TruncateFront would rewrite the rest of the first segment on
// every call; deleting whole files after the handle is closed writes nothing.
func (l *Log) TruncateThrough(index uint64) (int, error) {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	l.mu.through = max(l.mu.through, index)
	n := removable(l.mu.segs, index)
	roll := l.wantRollLocked()
	wait := n < l.opts.TruncateSegments && !l.spaceWantedLocked()
	l.mu.Unlock()
	if (n == 0 || wait) && !roll {
		return 0, nil
	}

	// Exclude appends and reads while the handle is swapped.
	l.handle.Lock()
	defer l.handle.Unlock()
	l.mu.Lock()
	closed := l.mu.closed
	l.mu.Unlock()
	if closed || l.handle.tw == nil {
		return 0, ErrClosed
	}
	removed, err := l.truncateLocked(index)
	if err != nil {
		return removed, err
	}
	// tidwall/wal keeps its own list of segments: give it a new handle.
	// This goes through the recovery path, so a log that failed (a full
	// disk, say) is repaired here, now that the truncation freed space. If
	// that is still impossible the old handle stays, reads go on, and the
	// writer keeps retrying in the background: the truncation itself is
	// done and is not an error.
	if err := l.reopenLocked(); err != nil {
		if l.failedErr() == nil {
			err = fmt.Errorf("%w: reopening after truncation: %v", ErrFailed, err)
			l.log.Error("wal: reopening after truncation failed; refusing appends and recovering by itself", "err", err)
			l.setFailed(err)
		} else {
			l.log.Warn("wal: failed log not recovered yet after truncation; retrying in the background", "err", err)
		}
	}
	return removed, nil
}

// freeWaiting deletes, in the background, the forwarded segments that
// TruncateThrough left waiting for Options.TruncateSegments, once an append
// was refused for the budget or the reserve: space is wanted now, and no
// delivery may come to truncate (ClickHouse down, or the forwarder caught
// up). One at a time; Close waits for it.
func (l *Log) freeWaiting() {
	l.mu.Lock()
	n, through, closed := removable(l.mu.segs, l.mu.through), l.mu.through, l.mu.closed
	l.mu.Unlock()
	if n == 0 || closed || !l.freeing.CompareAndSwap(false, true) {
		return
	}
	l.background.Add(1)
	go func() {
		defer l.background.Done()
		defer l.freeing.Store(false)
		if removed, err := l.TruncateThrough(through); err != nil && !errors.Is(err, ErrClosed) {
			l.log.Warn("wal: deleting forwarded segments after a refused append failed", "err", err)
		} else if removed > 0 {
			l.log.Info("wal: deleted forwarded segments to make room after a refused append", "segments", removed)
		}
	}()
}

// removable is how many leading segments hold only records at or before
// index (never the last one).
func removable(segs []segmentFile, index uint64) int {
	n := 0
	for n < len(segs)-1 && segs[n+1].start-1 <= index {
		n++
	}
	return n
}

// truncateLocked rolls the tail if wanted, then deletes the segments that
// hold only records at or before index, oldest first. The caller holds
// l.handle exclusively and swaps the handle afterwards.
func (l *Log) truncateLocked(index uint64) (int, error) {
	l.rollTailLocked()
	l.mu.Lock()
	segs := l.mu.segs
	n := removable(segs, index)
	l.mu.Unlock()
	// Remove oldest first: a crash part-way leaves a contiguous suffix,
	// which is a valid log. The open handle only holds the tail segment's
	// file, so the files go first and the handle is swapped after.
	removed := 0
	for _, s := range segs[:n] {
		if err := os.Remove(filepath.Join(l.dir, s.name)); err != nil && !os.IsNotExist(err) {
			l.forget(removed)
			return removed, fmt.Errorf("wal: truncating: removing %s: %w", s.name, err)
		}
		removed++
	}
	if removed == 0 {
		return 0, nil
	}
	if err := syncDir(l.dir); err != nil {
		// The removals may not be durable; a crash can bring files back,
		// which is harmless (they are behind the checkpoint).
		l.log.Warn("wal: fsync of the directory after truncation failed", "err", err)
	}
	l.forget(removed)
	l.m.segmentsTruncate.Add(float64(removed))
	return removed, nil
}

// forget drops the first n segments from the model. Callers hold l.handle.
func (l *Log) forget(n int) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.segs = append([]segmentFile(nil), l.mu.segs[n:]...)
	l.mu.first = max(l.mu.first, l.mu.segs[0].start)
	l.recount()
}

// wantRollLocked reports whether the tail segment should be replaced by an
// empty one: every record in the log has been truncated through (the
// forwarder passed them all), the tail holds bytes, and space is needed
// (the log failed, e.g. on a full disk, or is at its budget). Without this a
// log whose only segment filled the disk could never free it: the tail is
// never deleted, and a failed log cannot write the records that would begin
// the next segment. Callers hold l.mu.
func (l *Log) wantRollLocked() bool {
	tail := l.mu.segs[len(l.mu.segs)-1]
	full := l.opts.BudgetBytes > 0 && l.mu.size >= l.opts.BudgetBytes
	return l.mu.through >= l.mu.last && tail.size > 0 && (l.mu.failed != nil || full || l.mu.lowSpace)
}

// spaceWantedLocked reports whether TruncateThrough should delete what it
// can now rather than wait for Options.TruncateSegments: the log failed,
// the file system is low, or the log holds half its budget or more.
// Callers hold l.mu.
func (l *Log) spaceWantedLocked() bool {
	half := l.opts.BudgetBytes > 0 && l.mu.size*2 >= l.opts.BudgetBytes
	return l.mu.failed != nil || l.mu.lowSpace || half
}

// rollTailLocked begins an empty segment at the next index, so that every
// older segment, the former tail included, holds only forwarded records and
// can be deleted. The empty file is created (temp, fsync, rename, directory
// fsync) before anything is deleted: a crash leaves a valid log either way
// (tidwall/wal opens an empty last segment as an empty log starting there).
// A file of that name left by a failed write holds only refused appends and
// is replaced. It reports whether it rolled; when the file cannot be
// created, truncation goes on without. Callers hold l.handle exclusively.
func (l *Log) rollTailLocked() bool {
	l.mu.Lock()
	roll, next := l.wantRollLocked(), l.mu.last+1
	l.mu.Unlock()
	if !roll {
		return false
	}
	name := segmentName(next)
	path := filepath.Join(l.dir, name)
	if err := writeFileAtomic(path, path+".repair"+evidenceTmp, func(io.Writer) error { return nil }); err != nil {
		l.log.Warn("wal: could not begin an empty segment to free the forwarded tail", "segment", name, "err", err)
		return false
	}
	l.mu.Lock()
	l.mu.segs = append(append([]segmentFile(nil), l.mu.segs...), segmentFile{name: name, start: next})
	l.recount()
	l.mu.Unlock()
	l.log.Info("wal: began an empty segment so that the forwarded tail can be deleted", "segment", name)
	return true
}
