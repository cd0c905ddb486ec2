package wal

import (
	"fmt"
	"os"
	"path/filepath"
)

// TruncateThrough removes the records up to and including index, by whole
// segments: a segment file is deleted once every record in it is at or before
// index, and the tail segment is never deleted. Records after index are never
// touched, so calling it with the forwarder's checkpoint after every batch
// costs nothing until a segment is complete. It returns how many segment
// files were removed.
//
// tidwall/wal's TruncateFront would rewrite the rest of the first segment on
// every call; deleting whole files after the handle is closed writes nothing.
func (l *Log) TruncateThrough(index uint64) (int, error) {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	segs := l.mu.segs
	n := 0
	for n < len(segs)-1 && segs[n+1].start-1 <= index {
		n++
	}
	l.mu.Unlock()
	if n == 0 {
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
	if err := syncDir(l.dir); err != nil {
		// The removals may not be durable; a crash can bring files back,
		// which is harmless (they are behind the checkpoint).
		l.log.Warn("wal: fsync of the directory after truncation failed", "err", err)
	}
	l.forget(removed)
	l.m.segmentsTruncate.Add(float64(removed))
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
