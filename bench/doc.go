// Package bench holds the benchmarks behind BENCHMARKS.md. They are Go
// benchmarks, run by `make bench` (scripts/bench.sh), which starts a private
// ClickHouse. Every ratio is measured against a baseline in the same run,
// alternating baseline and holdfast, because these machines are noisy.
//
//	BenchmarkWALGroupCommitVsFile   WAL group commit vs a plain file with the same fsync cadence
//	BenchmarkDrainVsDirectInsert    forwarder drain of a pre-filled WAL vs direct inserts of the same rows
//	BenchmarkDrainPeakHeap          peak heap while draining a large backlog with default settings
//	BenchmarkCollectorRSSByProducers collector RSS with 10, 100 and 1,000 producers
package bench
