package forwarder

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/holdfast/holdfast/internal/sessdefs"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

// Pebble panics when a write to its log fails (a full disk included), and a
// definition file that cannot be written stops the forwarder, so the
// forwarder never stores a version 3 record's definitions or a new
// session's metadata without room for them: before such a record it checks
// the free space of the data directory's file systems (the WAL's, where
// the state store lives beside it, and the session files') and, short of
// it, stops reading there, delivers what it has
// read (whose truncation frees the space when ClickHouse answers) and
// tries again. Definitions must be stored before the WAL is truncated past
// their record, so waiting is the only safe answer to a full disk; a disk
// filled by something else waits for an operator, said in the log.

// pebbleWriteMargin is the free space kept beyond a definition write:
// Pebble's log framing and a new log file, which it preallocates to 1.1
// times its MemTableSize (4 MiB, internal/state) when the memtable fills.
const pebbleWriteMargin = 5 << 20

// stateWriteFor returns how many bytes adding rec writes to the state
// store: a version 3 record's definitions, or a new session's metadata;
// 0 when it writes nothing. An estimate from the record's size.
func (f *Forwarder) stateWriteFor(rec wal.Record) int {
	f.roomDefs = 0
	if !isRecord3(rec) {
		return 0
	}
	h := &f.roomHead
	if pa.ParsePageRecord3(rec.Payload, h) != nil {
		return 0 // quarantined as malformed: nothing stored
	}
	b := h.Block
	if len(b) < 1 {
		return 0
	}
	_, n := binary.Uvarint(b[1:]) // first id
	ndefs, m := binary.Uvarint(b[1+max(n, 0):])
	if n <= 0 || m <= 0 {
		return 0
	}
	if ndefs == 0 && f.sess.known(h.Producer, h.Incarnation, h.Session) {
		return 0
	}
	f.roomDefs = int(min(ndefs, maxSessionIDs))
	return len(rec.Payload) + 4096
}

// reserveDefinitions reserves room in the session's file for the
// definitions of the record stateWriteFor last measured (its payload plus
// each definition's record head), false when the disk has none. Free space
// measured a moment ago proves nothing to a disk another process is
// filling: a definition write that then failed would stop the forwarder,
// so the blocks are allocated before the record is taken.
func (f *Forwarder) reserveDefinitions(need int) bool {
	if f.roomDefs == 0 {
		return true
	}
	h := &f.roomHead
	f.roomKey = sessionKey(f.roomKey[:0], h.Producer, h.Incarnation, h.Session)
	// A known session not in memory (a previous run's, or idle) is loaded
	// now, as reading the record would: its file is read through once,
	// not once to reserve and again to load.
	if s := f.sess.m[string(f.roomKey)]; s != nil && !s.loaded {
		if err := f.sess.loadDefs(s); err != nil {
			return true // reading the record loads it again and says why
		}
	}
	err := f.defs.Reserve(string(f.roomKey), int64(need)+int64(f.roomDefs)*16)
	if err == nil {
		return true
	}
	if sessdefs.IsNoSpace(err) {
		return false
	}
	// Not about space: the append will say what it is, if anything.
	f.log.Warn("reserving room for a record's series definitions", "err", err)
	return true
}

// roomForState reports whether need bytes fit on the data directory's
// file system with the margin (true when the space cannot be measured).
func (f *Forwarder) roomForState(need int) bool {
	for _, dir := range []string{f.wal.Dir(), f.opts.SessionDir} {
		if free := wal.FreeBytes(dir); free >= 0 && free < int64(need)+pebbleWriteMargin {
			return false
		}
	}
	return true
}

// waitForRoom is Run's answer to a record it has no room to store the
// definitions of: the reader goes back to it, the batch read so far is
// delivered (or the delivery in flight joined), else it waits a second.
// It reports false when ctx ended.
func (f *Forwarder) waitForRoom(ctx, dctx context.Context, b **batch, r *wal.Reader, idx uint64, need int) (bool, error) {
	r.Seek(idx)
	f.m.diskWaits.Inc()
	if time.Since(f.lastRoomWarning) >= time.Minute {
		f.lastRoomWarning = time.Now()
		f.log.Warn("no room on the data directory's disk for a record's series definitions; delivering what was read and waiting for space (the WAL is truncated as deliveries succeed)",
			"record", idx, "needs_bytes", need+pebbleWriteMargin, "free_bytes", wal.FreeBytes(f.wal.Dir()), "dir", f.wal.Dir())
	}
	switch {
	case f.flight == nil && len((*b).indexes) > 0:
		return true, f.startFlush(dctx, b)
	case f.flight != nil:
		return true, f.join()
	}
	select {
	case <-ctx.Done():
		return false, nil
	case <-time.After(time.Second):
		return true, nil
	}
}
