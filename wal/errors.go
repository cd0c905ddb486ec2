package wal

import (
	"errors"
	"fmt"
)

var (
	// ErrCorrupt is the sentinel every *CorruptionError wraps.
	ErrCorrupt = errors.New("wal: corrupt")
	// ErrFull is returned by Append while the log holds more than its disk
	// budget. The record was not written; try again after the forwarder has
	// truncated the log.
	ErrFull = errors.New("wal: over disk budget")
	// ErrFailed is returned by Append after a write or fsync error (a full
	// disk, EIO): the record was not acknowledged. The log refuses appends
	// until it has recovered by itself (or is closed and opened again).
	ErrFailed = errors.New("wal: failed (write or fsync error), recovering")
	// ErrClosed is returned by operations on a closed log.
	ErrClosed = errors.New("wal: closed")
	// ErrLocked is returned by Open when another process holds the log.
	ErrLocked = errors.New("wal: directory is locked by another process")
	// ErrNotFound is returned when reading an index outside the log.
	ErrNotFound = errors.New("wal: index not in log")
	// ErrRead is returned when reading a record failed for a reason other
	// than damage (an I/O error, e.g. EIO on a disk that is failing): the
	// record may well be intact, so the read is worth retrying. Only a
	// record that does not check (frame, envelope, CRC) is corruption.
	ErrRead = errors.New("wal: read failed")
)

// CorruptionError names where the log stopped making sense.
type CorruptionError struct {
	Dir     string
	Segment string // file name within Dir
	Offset  int64  // byte offset of the bad frame in the segment
	Index   uint64 // index the bad frame would have had, 0 if unknown
	// NextValidOffset is the offset of the first frame that checks after
	// the damage, when one does (damage in the middle of a segment, not a
	// torn end); 0 otherwise.
	NextValidOffset int64
	Err             error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("wal: corrupt segment %s/%s at offset %d (index %d): %v", e.Dir, e.Segment, e.Offset, e.Index, e.Err)
}

// Unwrap lets errors.Is(err, ErrCorrupt) and errors.As find the cause.
func (e *CorruptionError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// IsCorrupt reports whether err says the log's files are damaged.
func IsCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }

// FullError says by how much an append would exceed the budget, or that
// it would leave less free space on the file system than the reserve.
type FullError struct {
	SizeBytes   int64 // bytes the log holds now
	RecordBytes int64 // bytes the refused record needs
	BudgetBytes int64
	// With ReserveBytes set, the append was refused for the reserve:
	// FreeBytes were free on the log's file system.
	FreeBytes, ReserveBytes int64
}

func (e *FullError) Error() string {
	if e.ReserveBytes > 0 {
		return fmt.Sprintf("wal: disk nearly full: %d bytes free, record needs %d, and the log leaves %d free (Options.ReserveBytes: room for the state store beside it)", e.FreeBytes, e.RecordBytes, e.ReserveBytes)
	}
	return fmt.Sprintf("wal: over disk budget: holds %d bytes, record needs %d, budget is %d", e.SizeBytes, e.RecordBytes, e.BudgetBytes)
}

func (e *FullError) Unwrap() error { return ErrFull }
