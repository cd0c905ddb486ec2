package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/wal"
)

// walRunFor appends records from writers goroutines for about d; it returns
// the bytes written, the time taken and the number of commit groups.
func walRunFor(dir string, writers, size int, d time.Duration, segment int) (int64, time.Duration, int, error) {
	deadline := time.Now().Add(d)
	return walRunUntil(dir, writers, size, 1<<62, segment, func() bool { return time.Now().After(deadline) })
}

// walRun appends records from writers goroutines until bytes have been
// written; it returns the time taken and the number of commit groups.
func walRun(dir string, writers, size int, bytes int64, segment int) (time.Duration, int, error) {
	_, took, groups, err := walRunUntil(dir, writers, size, bytes, segment, func() bool { return false })
	return took, groups, err
}

func walRunUntil(dir string, writers, size int, bytes int64, segment int, stop func() bool) (int64, time.Duration, int, error) {
	reg := prometheus.NewRegistry()
	l, err := wal.Open(dir, wal.Options{SegmentSize: segment, Registerer: reg})
	if err != nil {
		return 0, 0, 0, err
	}
	defer l.Close()
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	perWriter := max(1, int(bytes/int64(size)/int64(writers)))
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	var written int64
	start := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for ; n < perWriter && !stop(); n++ {
				if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: payload}); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					break
				}
			}
			mu.Lock()
			written += int64(n) * int64(size)
			mu.Unlock()
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
	return written, took, groups, firstErr
}

// fileRun writes total bytes to a plain file in groups equal writes, each
// followed by fsync: the same fsync cadence as the WAL run.
func fileRun(path string, total int64, groups int) (time.Duration, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	chunk := make([]byte, max(1, total/int64(max(1, groups))))
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	start := time.Now()
	for g := 0; g < groups; g++ {
		if _, err := f.Write(chunk); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// WALOptions configure the wal scenario.
type WALOptions struct {
	Sizes        []int         // record sizes; default 1 KiB, 16 KiB, 256 KiB, 1 MiB
	Writers      []int         // default 1, 16, 64, 256
	RunTime      time.Duration // per WAL run (the file run writes the same bytes); default 1 s
	Rounds       int           // alternating rounds per point; default 3
	SegmentBytes int           // default the WAL's (wal.DefaultSegmentSize)
	Dir          string
	Progress     io.Writer
}

// RunWAL compares WAL group commit with a plain file written with the same
// fsync cadence (as many fsyncs as the WAL's group commit made, each after an
// equal share of the bytes), across record sizes and writer counts. Each point
// alternates WAL and file rounds and compares medians.
func RunWAL(opts WALOptions) (*Result, error) {
	if len(opts.Sizes) == 0 {
		opts.Sizes = []int{1 << 10, 16 << 10, 256 << 10, 1 << 20}
	}
	if len(opts.Writers) == 0 {
		opts.Writers = []int{1, 16, 64, 256}
	}
	if opts.RunTime == 0 {
		opts.RunTime = time.Second
	}
	if opts.Rounds == 0 {
		opts.Rounds = 3
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = wal.DefaultSegmentSize
	}
	r := newResult("wal")
	r.Params["sizes"], r.Params["writers"], r.Params["seconds_per_run"], r.Params["rounds"] = opts.Sizes, opts.Writers, opts.RunTime.Seconds(), opts.Rounds
	t := Table{Title: "WAL group commit vs plain file with the same fsync cadence (MB/s, medians)",
		Columns: []string{"record", "writers", "fsyncs", "wal MB/s", "file MB/s", "ratio"}}
	p := &progress{w: opts.Progress, every: 0}
	for _, size := range opts.Sizes {
		for _, writers := range opts.Writers {
			var walMBs, fileMBs, fsyncs []float64
			for round := 0; round < opts.Rounds; round++ {
				dir, err := os.MkdirTemp(opts.Dir, "walbench-")
				if err != nil {
					return nil, err
				}
				n, took, groups, err := walRunFor(filepath.Join(dir, "wal"), writers, size, opts.RunTime, opts.SegmentBytes)
				if err != nil {
					os.RemoveAll(dir)
					return nil, err
				}
				written := float64(n)
				ftook, err := fileRun(filepath.Join(dir, "plain"), n, groups)
				os.RemoveAll(dir)
				if err != nil {
					return nil, err
				}
				walMBs = append(walMBs, written/took.Seconds()/1e6)
				fileMBs = append(fileMBs, written/ftook.Seconds()/1e6)
				fsyncs = append(fsyncs, float64(groups))
			}
			w, f := median(walMBs), median(fileMBs)
			key := fmt.Sprintf("wal_vs_file_%dk_%dw_ratio", size>>10, writers)
			r.Metrics[key] = w / f
			t.Rows = append(t.Rows, []string{fmt.Sprintf("%d KiB", size>>10), fmt.Sprint(writers), f0(median(fsyncs)), f0(w), f0(f), f2(w / f)})
			p.say("wal: %5d KiB x %3d writers: WAL %6.0f MB/s, file %6.0f MB/s, ratio %.2f", size>>10, writers, w, f, w/f)
		}
	}
	r.Tables = append(r.Tables, t)
	if v, ok := r.Metrics["wal_vs_file_16k_64w_ratio"]; ok {
		r.Metrics["wal_vs_file_ratio"] = v
		r.target("wal_vs_file_ratio", ">=", 0.85)
	}
	return r.finish(), nil
}
