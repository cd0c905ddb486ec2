// Package bench holds the benchmarks behind BENCHMARKS.md: the scenarios of
// `holdfast bench` (wal, insert, rfd125, max, outage, recovery, peer), which
// start real processes, and Go benchmarks run by `scripts/bench.sh go`.
// `make bench` (scripts/bench.sh) runs every scenario against a private
// ClickHouse. Every ratio is measured against a baseline in the same run,
// alternating baseline and holdfast where it can, because these machines are
// noisy.
//
// Baselines: the direct-insert ceiling (direct.go) inserts the rows holdfast
// writes, as a careful user of clickhouse-go/v2 would, timing only the
// inserts; the peer scenario (peer*.go) runs Prometheus 2.42 in agent mode on
// the same fleet, served as text exposition by `holdfast bench target`.
//
//	BenchmarkWALGroupCommitVsFile   WAL group commit vs a plain file with the same fsync cadence
//	BenchmarkDrainVsDirectInsert    forwarder drain of a pre-filled WAL vs direct inserts of the same rows
//	BenchmarkDrainPeakHeap          peak heap while draining a large backlog with default settings
//	BenchmarkCollectorRSSByProducers collector RSS with 10, 100 and 1,000 producers
package bench
