// Package forwarder tails holdfast's WAL into ClickHouse and owns the
// ClickHouse schema.
//
// # Data flow
//
//	WAL ──Reader──▶ decode + validate ──▶ batch (whole records) ──▶ INSERTs
//	                     │ bad record                                  │ ok
//	                     ▼                                             ▼
//	              quarantine (Pebble)      checkpoint (Pebble, Sync) ──▶ WAL.TruncateThrough
//
// The forwarder reads records from the checkpoint on, one at a time (memory
// never depends on the backlog), decodes each page record, validates every
// sample and computes its timeseries key. A batch holds whole records and is
// flushed when it reaches BatchRows rows (measurement rows plus the fields
// rows of new timeseries), BatchBytes bytes, or FlushAge age,
// or when Flush asks. A flush inserts, per datum type present, one columnar
// INSERT into measurements_<type>, its rows sorted by the table's sorting
// key so that the server need not sort them (sortrows.go); before that it inserts the fields and the
// schema of timeseries it has not written yet. Only when every INSERT
// succeeded is the batch's last index written as the checkpoint (pebble.Sync),
// and only then is the WAL truncated behind it.
//
// # Session dictionaries (version 3 records)
//
// A version 3 page record carries only the series definitions its session
// (producer, incarnation, session id) had not sent before; its samples name
// series by session id. The forwarder keeps per session an array indexed by
// id (sessions.go) and appends every definition to its session's file
// (internal/sessdefs, Options.SessionDir) when it first reads it; the files
// written since the last checkpoint are synced before the checkpoint's Sync
// write, so that after a restart, and for bisection and quarantine,
// definitions of records the WAL no longer holds are still found. The Run
// goroutine owns the arrays and the files; deliveries read definitions
// through sessdefs.Store.Lookup only.
//
// # Failures
//
// A transient failure (connection refused, timeout, overload, missing table,
// anything not known to be about the data) is retried forever, with capped
// exponential backoff and jitter; the WAL keeps growing meanwhile and its disk
// budget applies backpressure to producers. A table whose columns no longer
// take this build's values (a client-side conversion error: schema drift,
// ErrSchemaMismatch) is our fault, not the data's: retried too, logged as an
// error, the schema ensured again. A rejection of the data itself (a
// ClickHouse data error such as CANNOT_PARSE_TEXT) starts a bisection over the batch's records: halves are inserted until the
// records refused on their own are found; those go to the quarantine (with the
// reason and the payload) and everything else is delivered. Records that do
// not decode, have an unknown type, hold an invalid sample or fail their
// checksum in the WAL are quarantined when read. The quarantine is package
// quarantine's, shared with the collector (Options.Quarantine); when it is
// full a refused record is counted and logged but not kept, and the forwarder
// moves on. The checkpoint key is "forwarder/checkpoint" in the state store.
//
// # Idempotency
//
// A crash after an INSERT and before the checkpoint replays the batch: rows
// are inserted twice. Every table is a ReplacingMergeTree whose sorting key is
// the row's identity (for measurements: timeseries_name, timeseries_key,
// timestamp_ns, and start_time_ns for cumulative and histogram datums), so
// duplicates collapse in merges and never show through FINAL. DESIGN.md gives
// the queries that return exact answers.
//
// # Schema and key collisions
//
// EnsureSchema creates the tables and upgrades an older layout in place
// (migrate.go: copy, swap, then fold every leftover back in before dropping
// it; resumable after a crash). The writer remembers each timeseries key it
// wrote with a second, independent hash of the timeseries; a sample whose key
// belongs to another timeseries it remembers is quarantined rather than
// merged (collision.go). That is a best-effort tripwire, not a guarantee: it
// misses a collision with a key it forgot (the cache is cleared when full and
// at restart) or that another collector wrote (DESIGN.md lists the cases).
//
// # On a cluster
//
// With Options.Cluster the schema is created ON CLUSTER: each table is a
// ReplicatedReplacingMergeTree T_local behind a Distributed table T sharded
// by timeseries_key, and INSERTs go through T with insert_distributed_sync=1
// so the checkpoint moves only once every shard has the rows (cluster.go).
// Before a batch's first INSERT its last index is stored as in flight; a
// restart cuts its first batch there again, so a replay repeats identical
// blocks, which replicated tables drop (inflight.go). In-place upgrades are
// refused on a cluster.
//
// # Reaching ClickHouse
//
// Addr may list several servers, tried in order; user, password and TLS are
// in Options (conn.go). Run pings once at start: wrong credentials end it
// with an AuthError naming the user; a failed handshake is shown in Status
// with a hint about the native port.
//
// # Concurrency
//
// Run must be called once, from one goroutine; it returns when its context
// ends. Flush and Status may be called from any goroutine while Run runs.
// Close after Run has returned.
package forwarder
