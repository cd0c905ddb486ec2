// Package quarantine is the collector's one durable place for data it took
// but could not deliver: samples the collector refused (invalid, conflicting
// with their timeseries schema, too large for any WAL record) and WAL records
// the forwarder could not deliver (undecodable, or refused by ClickHouse).
// Nothing in it is retried by itself; an operator lists, shows, exports and
// replays entries (`holdfast quarantine`), and replay removes what the
// current rules accept.
//
// # Usage
//
//	q, err := quarantine.Open(db, quarantine.Options{BudgetBytes: 256 << 20, Registerer: reg})
//	over, err := q.Put(entries)            // one synced batch; over: entries not kept (full)
//	err = q.PutAll(entries)                // all or nothing; ErrFull: nothing kept, nothing counted
//	page, more, err := q.List(afterID, 100) // oldest first
//	hdrs, more, err := q.ListHeaders(afterID, 1000) // without payloads
//	err = q.Delete(ids)                    // an operator's removal (holdfast quarantine delete)
//	rep, err := quarantine.Replay(ctx, q, quarantine.ReplayOptions{Limits: lim, Schemas: schemas, Append: wal.Append})
//
// ViewOf gives an entry's JSON form (with its samples decoded) for the admin
// API and the command line.
//
// # Storage
//
// Entries live in the collector's state store (Pebble, DATADIR/state),
// shared with the forwarder's checkpoint and the assignment cache, under one
// prefix. Every write is committed with pebble.Sync before the caller goes on
// (the collector acknowledges a page only after its rejected samples are
// here).
//
//	key   := "quarantine/" | u64 id (big-endian; increasing, never reused)
//	"quarantine-next" := u64 next id (big-endian), written with every Put
//	value := u8 version(=1) | u8 kind | i64 time_ns (big-endian) |
//	         str producer | str incarnation | str code | str reason |
//	         u64 wal_index (big-endian) | u8 record_type | payload (the rest)
//	str   := uvarint length | bytes
//
// kind 1 (KindSample) holds one sample a collector refused: payload is a
// binary sample block (producerapi.AppendSamples) of that one sample, the
// form a producer sends, so it can be re-submitted as it was. kind 2
// (KindRecord) holds one WAL record the forwarder could not deliver: payload
// is the record's payload (a page record) and record_type its WAL type;
// wal_index says where it was. code is a short label (invalid, schema,
// too_large, rejected, malformed, corrupt, unknown_type) used in metrics;
// reason is the full message.
//
// Entries written by older builds under "forwarder/quarantine/<u64 index>"
// are moved here (same transaction, synced) when a Store opens.
//
// # Bound
//
// The store holds at most BudgetBytes (keys plus values). An entry that does
// not fit is not stored: Put reports it as overflow, the caller counts it
// (holdfast_quarantine_overflow_total{producer,reason}) and logs it, and the
// store says it is full (holdfast_quarantine_full, the collector's status and
// /healthz) until entries are removed. PutAll (the forwarder's) stores all or
// nothing and returns ErrFull instead: its caller keeps the data (in the WAL)
// and tries again. The data of an overflowed entry is
// lost, loudly: the alternative, refusing the whole page, would stall the
// producer and cost every good sample behind it.
//
// # Concurrency
//
// A Store is safe for concurrent use. Its counters are kept in memory and
// recomputed when it opens.
package quarantine
