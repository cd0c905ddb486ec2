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
	if l.handle.tw == nil {
		return 0, ErrClosed
	}
	fail := func(err error) (int, error) {
		err = fmt.Errorf("%w: truncating: %v", ErrFailed, err)
		l.mu.Lock()
		l.mu.failed = err
		l.mu.Unlock()
		return 0, err
	}
	if err := l.handle.tw.Close(); err != nil {
		return fail(err)
	}
	l.handle.tw = nil
	// Remove oldest first: a crash part-way leaves a contiguous suffix,
	// which is a valid log.
	for _, s := range segs[:n] {
		if err := os.Remove(filepath.Join(l.dir, s.name)); err != nil {
			return fail(err)
		}
	}
	if err := syncDir(l.dir); err != nil {
		return fail(err)
	}
	tw, err := l.openHandle()
	if err != nil {
		return fail(err)
	}
	l.handle.tw = tw
	first, err := tw.FirstIndex()
	if err != nil {
		return fail(err)
	}
	l.mu.Lock()
	l.mu.segs = append([]segmentFile(nil), l.mu.segs[n:]...)
	l.mu.first = first
	l.recount()
	l.mu.Unlock()
	l.m.segmentsTruncate.Add(float64(n))
	return n, nil
}
