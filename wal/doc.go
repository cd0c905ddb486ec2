// Package wal is holdfast's durable record log: every page a collector takes
// from a producer is appended here, and fsynced, before the producer is
// acknowledged. It is built on github.com/tidwall/wal and adds what that
// library leaves to its users: checksums, group commit, repair of a torn tail,
// a file lock, directory fsyncs, a disk budget, safe reading, truncation by
// whole segments, and metrics.
//
// # Usage
//
//	l, err := wal.Open(dir, wal.Options{BudgetBytes: 8 << 30, Registerer: reg})
//	idx, err := l.Append(ctx, wal.Record{Type: wal.TypePage, Payload: p}) // durable on return
//	r := l.NewReader(checkpoint + 1)
//	for {
//		idx, rec, ok, err := r.Next()
//		if !ok { err = r.Wait(ctx); continue }
//		...
//	}
//	l.TruncateThrough(checkpoint) // after the checkpoint is durable elsewhere
//
// # Files
//
// A log is a directory of segment files named by the index of their first
// record as 20 decimal digits (tidwall/wal's naming), plus:
//
//	LOCK                         flock(2)ed by the process that has the log open
//	<segment>.broken.<unixnano>  evidence kept by a repair; never read again
//
// A segment is a sequence of frames: a uvarint length (tidwall/wal's binary
// format) followed by that many bytes of holdfast envelope:
//
//	+-----------+----+----+----+--------+--------+-----------------+
//	| uvarint n | h  | f  | v1 |  type  | length | crc32c | payload |
//	+-----------+----+----+----+--------+--------+-----------------+
//	             0    1    2    3        4        8        12 ... n
//
// length is the payload's size (u32 LE) and must equal n-12; crc32c (u32 LE,
// Castagnoli) covers bytes 2..8 and the payload. Type 0, an empty payload and
// a payload over MaxPayload never decode, so zero-filled space cannot pass
// for records.
//
// # Durability
//
// Append returns only after its record's group was written and fsynced, and,
// when the group started a new segment file, after the directory was fsynced
// too. Open fsyncs the parent directory of a new log directory.
//
// A write or fsync error puts the log in the failed state: every later Append
// returns ErrFailed. The fsync is never retried, because after a failed fsync
// Linux may have dropped the dirty pages and a second fsync would report
// success for data that is gone. Close the log and Open it again: Open's
// repair makes the files consistent.
//
// # Repair and corruption
//
// Open checks every frame of every segment. If the last segment ends in a
// torn frame, zeros, garbage or a frame whose checksum fails, Open copies the
// segment aside (*.broken.*), truncates it to the last frame that checks,
// fsyncs it and the directory, and reports it (Repair, the repairs metric, a
// warning in the log). Damage in any other segment, or a gap in the indexes,
// makes Open fail with a *CorruptionError naming the segment and byte offset;
// nothing is changed, because deleting acknowledged data silently is worse
// than stopping.
//
// # Budget
//
// With Options.BudgetBytes set, appends fail with a *FullError (errors.Is
// ErrFull) and write nothing while the log's files hold the budget or more;
// the log can pass the budget by at most one record (so a record larger than
// the budget is still accepted once the log has drained). Space comes back
// when TruncateThrough removes segments. The tail segment is never removed,
// so with a budget the default segment size is a quarter of it.
//
// # Concurrency
//
// Append, Stats, TruncateThrough and Close are safe for concurrent use. One
// goroutine inside the Log does all writing. A Reader is used by one goroutine
// at a time; reads from all Readers are serialised, because tidwall/wal's Read
// is not safe to call concurrently (its issue 34). TruncateThrough excludes
// appends and reads while it swaps the underlying handle.
package wal
