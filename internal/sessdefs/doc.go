// Package sessdefs keeps the series definitions of page v3 sessions in one
// append-only file per session, so that the forwarder still finds them once
// the WAL records that carried them are truncated (after a restart, a
// bisection or a quarantine).
//
// Definitions are write-once and die a session at a time: a session's ids
// are defined in increasing order, never changed, and deleted all together
// when the session is superseded. An append-only file per session stores
// them with no write amplification and deletes them with one unlink. The
// state store (Pebble) held them before; at RFD 125's fleet size (2.2 M
// series, ~400 MB of definitions) compacting them took 38 % of the
// collector's CPU while it drained a backlog (BENCHMARKS.md, recovery).
//
// # Files
//
// A session's file is named after its key (producer 0x00 incarnation 0x00
// session, see forwarder/sessions.go): the first 32 hex digits of its
// SHA-256, then ".defs". The header repeats the key, so a file names its
// session on its own:
//
//	header  "HFSDEF1\n" | key length (BE4) | key | CRC-32C of the preceding header bytes (BE4)
//	record  length (BE4) | id (BE4) | CRC-32C of length, id and definition (BE4) | definition
//
// A definition is the page's series entry as it was received (its last byte
// is the datum type); length is 1..MaxDefinition. Records are in the order
// they were appended, which for a session is increasing id order; a
// sparse index in memory (the offset of the first record of every 64 ids)
// finds one without reading the whole file.
//
// # Durability
//
// Append and Flush write to the operating system only. Sync fsyncs every
// file written since the last Sync or opened since the store was (a killed
// process may have left a file's tail in the page cache only), and the
// directory: the forwarder calls it before it writes a checkpoint, so every
// definition a checkpointed record made is on disk when the checkpoint is.
// A failed fsync is sticky: every later Sync returns it.
// A crash can leave a torn last record (or, after a disk fault, a damaged
// one anywhere): opening a file keeps the records before the first bad one,
// copies the rest aside to "<name>.damaged" and truncates the file there
// (Repair reports it). Records after that point are replayed from the WAL
// when it still holds them; a sample naming a definition lost that way is
// quarantined by the forwarder as naming an undefined series.
//
// # Concurrency
//
// One goroutine owns a Store (the forwarder's Run goroutine): Load, Append,
// Flush, Get, Close, Remove and Import are its alone. Lookup, Lookuper and
// Sync are safe from any goroutine, beside the owner (a lookup Lookuper
// returns is one goroutine's).
package sessdefs
