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
// reproduce it. A sample's identity in storage is (timeseries key, timestamp).
//
// # Schemas
//
// SchemaOf derives a TimeseriesSchema from a sample. A SchemaRegistry remembers
// the schema first seen for each timeseries name and rejects later samples that
// conflict with it (*SchemaConflictError names the conflict).
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
// # Concurrency
//
// Samples are plain values; do not mutate a sample while another goroutine
// reads it. SchemaRegistry is safe for concurrent use. Encoders and decoders
// keep no state between calls.
package producerapi
