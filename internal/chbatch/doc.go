// Package chbatch sends columnar INSERTs through clickhouse-go/v2 and keeps
// each statement's batch, with its column buffers, for the next INSERT of
// the same statement.
//
// # Why
//
// clickhouse-go builds a new block for every PrepareBatch from the server's
// header, and its columnar Append copies a typed slice into that block's
// columns row by row, growing them from empty. At the forwarder's rates that
// was half of everything the collector allocated (BENCHMARKS.md, "where the
// collector's memory goes"): every INSERT threw away a block the size of its
// rows, after growing it through every power of two below that.
//
// A Pool keeps the batch of each statement once it is sent. The next Send of
// that statement resets its columns (which keeps their capacity), appends
// the new rows and sends the batch again. clickhouse-go v2.50.0 sends a batch
// that was already sent as a new INSERT on a connection it takes from its
// pool: it sends the query, reads the server's header and then the block
// (batch.Send, resetConnection). What a reused batch costs is the query and
// the header's read, as before, and the block's encoding; no column is
// allocated again once it is as large as the largest INSERT of its
// statement so far, until the batch is MaxAge old (below).
//
// # What a reused batch does not notice
//
// The block keeps the column types of the header it was first prepared
// with, and the server converts what a block sends into the table's types
// without a word: ClickHouse 18.16 took a kept block's String column into a
// table whose column had been made UInt64 since. Prepared afresh,
// clickhouse-go refuses that conversion on the client (the forwarder's
// ErrSchemaMismatch), and a narrowing one (Int64 into a column altered to
// UInt8) cannot corrupt rows unnoticed. So a batch is sent again only for
// MaxAge after it was prepared: a table altered under a running collector
// (by an operator, or by a newer holdfast's upgrade) is noticed within
// MaxAge, and what reached the server in that window was what this build
// sent, converted by the server as it converts any client's block. An entry
// is also dropped on any error, so the next INSERT prepares afresh; Clear
// drops them all (the forwarder does when it ensures the schema again).
//
// Settings: a batch is prepared with its context's settings and sent again
// with them. A statement whose settings change per INSERT (an
// insert_deduplication_token) must not use a Pool; the forwarder sends
// those with SendOnce.
//
// # Large INSERTs in blocks
//
// SendInBlocks sends one INSERT as several blocks (clickhouse-go's Flush),
// appending each block into the same columns after the one before was sent:
// the columns grow to one block instead of all the rows. It keeps nothing.
// The server squashes the blocks back into parts of
// min_insert_block_size_rows. The forwarder sends fields rows this way: a
// start writes several per timeseries, far more than any measurements
// INSERT. SendBlocks does the same with rows the caller hands out a block
// at a time (Blocks): the forwarder keeps a fields row's two names as one
// index into the batch's pairs and writes each block's name columns out
// into arrays it reuses, so a batch's fields rows hold no strings but
// their values and the few (name, field) pairs of the batch.
//
// # Concurrency
//
// A Pool is safe for concurrent use: Send takes a statement's batch out of
// the pool while it runs, so two Sends of one statement at once prepare a
// second batch rather than share one. A batch is prepared with the context
// given to Send (through the Pool's prepareContext, if set) and reused only
// by a Send with the same context (compared with ==) that has not ended:
// clickhouse-go watches a batch's context for as long as it sends it, and
// closes the connection when it ends.
//
// # Memory
//
// A kept batch holds its columns' capacity: about the bytes of the largest
// INSERT of its statement. A statement not sent in the last MaxIdle Sends
// through the Pool, or prepared MaxAge ago, is dropped at the next Send of
// any statement.
//
// # Refusals of a kept batch
//
// The server may refuse a kept block because of the types it names, where
// a fresh batch would have been refused on the client: an error of a kept
// batch says so (Error.Reused), and a caller that would give up on the data
// for a refusal sends it again on a fresh batch first (the forwarder does).
package chbatch
