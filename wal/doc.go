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
//	LOCK                                  flock(2)ed by the process that has the log open
//	<segment>.broken.at-<off>.<unixnano>  bytes a tail repair cut (from off); never read again
//	<segment>.damaged.<unixnano>          a segment as it was before SkipDamaged
//	*.tmp                                 an evidence copy being written; removed by Open
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
// A write or fsync error puts the log in the failed state: Append returns
// ErrFailed. The failed handle never writes again, and nothing relies on a
// second fsync of the failed group's pages: after a failed fsync Linux may
// mark them clean without writing them. Instead the log recovers by itself:
// the writer goroutine retries, with backoff, a cut and then the path Open
// takes. The cut makes the files end at the frame holding the last index
// this process acknowledged (segments begun after it set aside, extra tail
// bytes kept as evidence and removed, file and directory fsynced), so the
// refused group is never adopted; its indexes are reused by later appends,
// which is correct because they were never acknowledged. Then the tail is
// checked, a new tidwall handle opened (it must end at the last acknowledged
// index) and the old one closed. TruncateThrough takes the same path after
// deleting segments, so on a full disk the forwarder's truncation frees the
// space and recovers the log. A repair never cuts an index this process
// acknowledged.
//
// # Repair and corruption
//
// Open checks every frame of every segment. If the last segment's frames
// stop checking and no frame after that point checks, the end is torn
// (partial frame, zeros, garbage): Open keeps the bytes it cuts aside
// (*.broken.at-OFFSET.*, written to a temporary name, fsynced and renamed,
// so a full disk never leaves a partial copy), truncates the segment to the
// last frame that checks, fsyncs it and the directory, and reports it
// (Repair, the repairs metric, a warning in the log). If a frame that checks
// follows the damage, the damage is in the middle: Open fails with a
// *CorruptionError (segment, offset, index, NextValidOffset) and changes
// nothing, as for damage in any other segment or a gap in the indexes,
// because deleting acknowledged data silently is worse than stopping.
// SkipDamaged is the operator's explicit repair: it replaces exactly the
// damaged record(s) with TypeDamaged placeholders at the same indexes.
//
// CheckCheckpoint checks a reader's checkpoint against the log: a first
// index after checkpoint+1 means records were lost (a deleted segment).
//
// # Budget
//
// With Options.BudgetBytes set, appends fail with a *FullError (errors.Is
// ErrFull) and write nothing while the log's files hold the budget or more;
// the log can pass the budget by at most one record (so a record larger than
// the budget is still accepted once the log has drained). Space comes back
// when TruncateThrough removes segments. With Options.TruncateSegments
// above 1, forwarded segments may wait on disk for more to join them; they
// go at every TruncateThrough once the log holds half its budget, and at
// once, in the background, when an append is refused for the budget or the
// reserve (no truncation may come: the forwarder may be stopped or caught
// up). The tail segment is removed only
// when everything was truncated through and space is needed (a failed log,
// or one at its budget): an empty segment is begun first. So with a budget
// the default segment size is a quarter of it.
//
// # Concurrency
//
// Append, Stats, TruncateThrough and Close are safe for concurrent use. One
// goroutine inside the Log does all writing. A Reader is used by one goroutine
// at a time; reads from all Readers are serialised, because tidwall/wal's Read
// is not safe to call concurrently (its issue 34). TruncateThrough excludes
// appends and reads while it swaps the underlying handle; a commit holds the
// handle from its write through its bookkeeping, so a truncation never sees
// a group on disk that the model does not have yet.
package wal
