package bench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/holdfast/holdfast/wal"
)

// BenchmarkWALGroupCommitVsFile: 64 writers of 16 KiB records. The baseline
// writes the same bytes to a plain file with as many fsyncs as the WAL's
// group commit made. Runs alternate; the medians are compared.
func BenchmarkWALGroupCommitVsFile(b *testing.B) {
	const writers, size = 64, 16 << 10
	perWriter := envInt("HOLDFAST_BENCH_WAL_RECORDS_PER_WRITER", 256) // 256 MiB per run
	rounds := envInt("HOLDFAST_BENCH_ROUNDS", 5)
	total := int64(writers * perWriter * size)
	var walMBs, fileMBs []float64
	var groupsSeen []float64
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			dir := b.TempDir()
			took, groups, err := walRun(filepath.Join(dir, "wal"), writers, size, total, envInt("HOLDFAST_BENCH_SEGMENT", wal.DefaultSegmentSize))
			if err != nil {
				b.Fatal(err)
			}
			walMBs = append(walMBs, float64(total)/took.Seconds()/1e6)
			groupsSeen = append(groupsSeen, float64(groups))
			ftook, err := fileRun(filepath.Join(dir, "plain"), total, groups)
			if err != nil {
				b.Fatal(err)
			}
			fileMBs = append(fileMBs, float64(total)/ftook.Seconds()/1e6)
			os.RemoveAll(dir)
		}
	}
	w, f := median(walMBs), median(fileMBs)
	b.ReportMetric(w, "wal_MB/s")
	b.ReportMetric(f, "file_MB/s")
	b.ReportMetric(median(groupsSeen), "fsyncs")
	b.ReportMetric(w/f, "wal_vs_file_ratio")
	b.Logf("WAL %.0f MB/s vs plain file %.0f MB/s with the same fsync cadence (median of %d alternating rounds): ratio %.2f",
		w, f, len(walMBs), w/f)
}
