// Package producerapi is the contract between producers and collectors: the
// data model every part of holdfast shares, and its encodings.
//
// # Data model
//
// A Sample is one measurement of one timeseries. The timeseries is named
// "target_name:metric_name" (each part lowercase snake_case) and identified by
// its fields: target fields describe the thing measured (a VM, a disk), metric
// fields describe the measurement (a CPU id, a direction). Field values are
// typed (string, bool, signed and unsigned integers of 8 to 64 bits, IP
// address, UUID). The measurement is a timestamp in nanoseconds since the Unix
// epoch and a Datum of one DatumType: a scalar, a cumulative counter (with the
// start of its accumulation window), a histogram (bins, counts, min, max, sum,
// with start time), or "missing" (a datum that could not be measured, which
// still records the type and start time it would have had).
//
//	Sample
//	├── Target  {Name, Fields[]}        target_name, target fields
//	├── Metric  {Name, Fields[]}        metric_name, metric fields
//	├── TimestampNs int64
//	└── Datum   {Type, Missing, StartTimeNs, value}
//
// # Identity
//
// TimeseriesKey hashes the name, the fields sorted by name (with their types
// and values) and the datum type into a stable 64-bit key. The byte layout is
// given in DESIGN.md and pinned by a golden test, so another implementation can
// reproduce it. A sample's identity in storage is (timeseries key, timestamp),
// with the start time too for cumulative and histogram datums.
// AppendTimeseriesKeyBytes returns the bytes hashed, so the forwarder can hash
// them a second way to detect two timeseries sharing a key.
//
// # Schemas
//
// SchemaOf derives a TimeseriesSchema from a sample. Its Version is
// SchemaVersion of its field names: a metric whose field set changes is a new
// version, not a conflict. A SchemaRegistry remembers the schema of each
// (name, version) seen, up to a bound, and rejects a sample that contradicts
// its version (same field names, different types or datum type;
// *SchemaConflictError names the conflict).
//
// # Validation
//
// Everything from outside is validated (Validate, with Limits): names, field
// counts and sizes, string and byte sizes, histogram shape. Errors are
// *ValidationError values that say which sample and which part is wrong.
//
// # Binary encoding
//
// AppendSamples and DecodeSamples implement the compact, versioned binary
// sample block used on the wire and inside WAL records. The layout is drawn in
// binary.go and DESIGN.md. DecodeSamples never panics on any input; it is
// fuzzed.
//
// # The collection protocol
//
// A producer embeds a Server: it registers Producers (polled before each new
// page) or calls Add, and serves Handler over HTTP. Samples wait in a bounded
// buffer (chunks of 1,024 samples that are never moved, queue.go) until
// every collector the producer serves has acknowledged them. A
// collector fetches a Page (at most `limit` samples) under an opaque token;
// the next request carrying that token acknowledges it, a request without it
// (or with a stale, foreign or previous-incarnation token) gets the same page
// again, and Ack releases without fetching. When the bound forces samples
// out, each collector that lost some is told in its next Page.Dropped. A
// collector uses Client. Pages travel as JSON (MarshalPageJSON, exact for
// every value) or binary (AppendPage; page v2 carries a per-page series
// dictionary, page v3 a session's), chosen by the Accept header; all are
// fuzzed. DESIGN.md has the formats and a curl exchange.
//
// For page v3 each cursor keeps a session (session.go): series get dense
// ids the first time a page carries them, a page defines only the ids the
// collector does not hold, and samples carry the id. The collector names
// its session and the ids it holds in each request (FetchRequest.Session,
// Known); anything the producer cannot continue (a restart, a stale token,
// a mismatch) starts a new session in which the page is defined from id 0,
// so a collector always checks first_id against what it holds.
//
// # Concurrency
//
// Samples are plain values; do not mutate a sample while another goroutine
// reads it. SchemaRegistry, Server and Client are safe for concurrent use.
// Encoders and decoders keep no state between calls.
package producerapi
