package wal

import (
	"context"
	"errors"
	"fmt"

	twal "github.com/tidwall/wal"
)

// Reader reads records in index order and waits for new ones. A Reader is
// not safe for concurrent use; several Readers of one Log may run at once
// (their reads are serialised inside the Log).
type Reader struct {
	l    *Log
	next uint64
}

// NewReader returns a reader positioned at index from.
func (l *Log) NewReader(from uint64) *Reader { return &Reader{l: l, next: from} }

// Position returns the index the next call to Next will read.
func (r *Reader) Position() uint64 { return r.next }

// Seek moves the reader to index i.
func (r *Reader) Seek(i uint64) { r.next = i }

// Next returns the next record if it has been written, ok=false if not yet.
// Errors: ErrNotFound when the position is before the first record (truncated
// away), a *CorruptionError when the stored record does not check, ErrRead
// when reading failed otherwise (an I/O error: retry), ErrClosed.
// The payload aliases the segment the log holds in memory (no copy per
// record): it must not be modified. It stays valid after later reads and
// appends (that memory is never rewritten; its capacity ends with the
// payload, so appending to it copies), but keeping it keeps its whole
// segment in memory: copy what must outlive the next few reads.
//
// What a read costs: a record of the tail segment is read from the memory
// the append wrote; a record of an older segment is read from disk with the
// whole segment file (one read of SegmentSize bytes into memory, cached for
// SegmentCacheSize segments), then aliased. The envelope's CRC is checked
// over the payload in place. That is the one copy the library allows.
func (r *Reader) Next() (index uint64, rec Record, ok bool, err error) {
	l := r.l
	l.mu.Lock()
	first, last, closed := l.mu.first, l.mu.last, l.mu.closed
	l.mu.Unlock()
	switch {
	case closed:
		return 0, Record{}, false, ErrClosed
	case r.next > last:
		return 0, Record{}, false, nil
	case r.next < first:
		return 0, Record{}, false, fmt.Errorf("%w: index %d is before the first record %d", ErrNotFound, r.next, first)
	}
	rec, err = l.read(r.next)
	if err != nil {
		return 0, Record{}, false, err
	}
	index = r.next
	r.next++
	return index, rec, true, nil
}

// Wait blocks until the record at the reader's position has been written, the
// log is closed, or ctx ends.
func (r *Reader) Wait(ctx context.Context) error {
	for {
		r.l.mu.Lock()
		last, closed, notify := r.l.mu.last, r.l.mu.closed, r.l.mu.notify
		r.l.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if r.next <= last {
			return nil
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *Log) read(index uint64) (Record, error) {
	l.readMu.Lock()
	defer l.readMu.Unlock()
	l.handle.RLock()
	tw := l.handle.tw
	if tw == nil {
		l.handle.RUnlock()
		return Record{}, ErrClosed
	}
	data, err := tw.Read(index)
	l.handle.RUnlock()
	switch {
	case errors.Is(err, twal.ErrNotFound):
		return Record{}, fmt.Errorf("%w: index %d", ErrNotFound, index)
	case errors.Is(err, twal.ErrClosed):
		return Record{}, ErrClosed
	case errors.Is(err, twal.ErrCorrupt):
		return Record{}, &CorruptionError{Dir: l.dir, Segment: l.segmentOf(index), Offset: -1, Index: index, Err: err}
	case err != nil:
		// An I/O error says nothing about the bytes: not corruption.
		return Record{}, fmt.Errorf("%w: index %d: %w", ErrRead, index, err)
	}
	rec, err := decodeEnvelope(data)
	if err != nil {
		return Record{}, &CorruptionError{Dir: l.dir, Segment: l.segmentOf(index), Offset: -1, Index: index, Err: err}
	}
	// The payload aliases tidwall's segment buffer (NoCopy): cap it, so an
	// append by the caller copies instead of writing into the log's memory.
	rec.Payload = rec.Payload[:len(rec.Payload):len(rec.Payload)]
	return rec, nil
}

func (l *Log) segmentOf(index uint64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	name := ""
	for _, s := range l.mu.segs {
		if s.start <= index {
			name = s.name
		}
	}
	return name
}

// Notify returns the index of the last record written and a channel that is
// closed when a later record is written or the log is closed. It lets a
// caller wait for records and other events in one select.
func (l *Log) Notify() (last uint64, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.last, l.mu.notify
}
