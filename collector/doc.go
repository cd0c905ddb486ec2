// Package collector is holdfast's collector: it takes pages of samples from
// producers, writes each to its WAL, and only then acknowledges it, while a
// forwarder in the same process tails the WAL into ClickHouse.
//
// # Per producer
//
// Each producer has its own loop, timer and status. Every interval (±10%
// jitter; after a drain its bound ended, counted from that drain's start,
// so a producer with a backlog is not left resting) the loop drains the producer: it fetches a page (asking for a
// sample limit and a byte limit), validates every sample and its schema,
// appends the valid samples to the WAL (group commit with the other loops),
// keeps the refused ones in the quarantine (package quarantine, synced), and
// acknowledges the page by sending its token with the next request, until
// the producer has nothing more; the last page is released with an explicit
// ack. A refused sample therefore never stalls a producer nor costs the
// samples around it. A failing producer is retried with capped exponential
// backoff.
//
// # Pages too large
//
// Requests carry the body limit as max_bytes. A page body over it is not
// read past the limit: the loop asks for half the samples (the producer
// re-cuts the page it holds) and grows back after each page taken. A page of one sample that
// still does not fit is recorded in the quarantine as too_large and
// acknowledged. A page too large for one WAL record is written as several;
// a sample too large for any record is quarantined.
//
// # Backpressure
//
// When the WAL is over its disk budget, Append fails with wal.ErrFull: the
// page is not acknowledged, so the producer keeps it, and the collector
// reports "backpressure" in its status, metrics and health. It resumes by
// itself once the forwarder has truncated the WAL.
//
// # Crashes and shutdown
//
// A page is acknowledged only after it is fsynced in the WAL, so killing the
// collector at any moment loses nothing the producer released. A page that
// was written but not yet acknowledged is served again after a restart and
// written twice; the forwarder's inserts are idempotent, so readers see it
// once. On Run's context ending the loops stop (acknowledging what is
// written), and the forwarder gets DrainTimeout to deliver the backlog.
//
// # Concurrency
//
// Open, then Run once; Status, Checkpoint, Health, Flush and the admin
// handler may be used from any goroutine while Run runs. Close stops a Run
// still going and waits for it (its drain included) before it closes the
// forwarder, WAL and state store.
package collector
