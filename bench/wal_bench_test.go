package bench

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/wal"
)

// walRun appends writers*perWriter records of size bytes from writers
// goroutines and returns the elapsed time and the number of commit groups
// (fsyncs).
func walRun(b *testing.B, dir string, writers, perWriter, size int) (time.Duration, int) {
	reg := prometheus.NewRegistry()
	l, err := wal.Open(dir, wal.Options{SegmentSize: envInt("HOLDFAST_BENCH_SEGMENT", 8<<20), Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: payload}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	mfs, _ := reg.Gather()
	groups := 0
	for _, mf := range mfs {
		if mf.GetName() == "holdfast_wal_group_records" {
			groups = int(mf.GetMetric()[0].GetHistogram().GetSampleCount())
		}
	}
	return took, groups
}

// fileRun writes total bytes to a plain file in groups writes, each followed
// by an fsync: the same fsync cadence as the WAL run, without the WAL.
func fileRun(b *testing.B, path string, total int64, groups int) time.Duration {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, total/int64(groups))
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	start := time.Now()
	for g := 0; g < groups; g++ {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

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
			took, groups := walRun(b, filepath.Join(dir, "wal"), writers, perWriter, size)
			walMBs = append(walMBs, float64(total)/took.Seconds()/1e6)
			groupsSeen = append(groupsSeen, float64(groups))
			ftook := fileRun(b, filepath.Join(dir, "plain"), total, groups)
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

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
