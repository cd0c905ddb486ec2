package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/chtest"
	"github.com/holdfast/holdfast/internal/sampletest"
	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

const pageSamples = 1000

func dial(b *testing.B) (string, driver.Conn) {
	addr := chtest.Addr(b)
	conn, err := forwarder.Dial(addr, "default", "", 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return addr, conn
}

func freshDB(b *testing.B, conn driver.Conn, prefix string) string {
	db := fmt.Sprintf("bench_%s_%d", prefix, rand.Uint32())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := forwarder.EnsureSchema(ctx, conn, db); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	return db
}

// fillWAL appends n fleet samples in pages of pageSamples and returns the
// payload bytes written.
func fillWAL(b *testing.B, l *wal.Log, n, vms int, ts int64) int64 {
	fleet := sampletest.NewFleet(vms)
	page := make([]pa.Sample, 0, pageSamples)
	var buf []byte
	var bytes int64
	for done := 0; done < n; done += pageSamples {
		page = fleet.Append(page[:0], min(pageSamples, n-done), ts+int64(done))
		buf = pa.AppendPageRecord(buf[:0], "bench", "1", page)
		bytes += int64(len(buf))
		if _, err := l.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: buf}); err != nil {
			b.Fatal(err)
		}
	}
	return bytes
}

// drain forwards everything in the WAL into db and returns the time it took.
func drain(b *testing.B, addr, db, dir string, opts forwarder.Options, onTick func()) time.Duration {
	l, err := wal.Open(filepath.Join(dir, "wal"), wal.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	st, err := state.Open(filepath.Join(dir, "state"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	opts.Addr, opts.Database = addr, db
	f, err := forwarder.New(l, st, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f.Run(ctx) }()
	stopTick := make(chan struct{})
	if onTick != nil {
		go func() {
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stopTick:
					return
				case <-t.C:
					onTick()
				}
			}
		}()
	}
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Minute)
	err = f.Flush(fctx)
	fcancel()
	took := time.Since(start)
	close(stopTick)
	cancel()
	if rerr := <-done; rerr != nil {
		b.Fatal(rerr)
	}
	if err != nil {
		b.Fatal(err)
	}
	return took
}

// BenchmarkDrainVsDirectInsert: the forwarder drains a pre-filled WAL (read,
// decode, validate, key, batch of 100,000 rows, insert, checkpoint, truncate)
// vs clickhouse-go columnar inserts of the same rows in the same batch size,
// straight from memory. Rounds alternate; medians are compared.
func BenchmarkDrainVsDirectInsert(b *testing.B) {
	addr, conn := dial(b)
	n := envInt("HOLDFAST_BENCH_DRAIN_SAMPLES", 1_000_000)
	rounds := envInt("HOLDFAST_BENCH_ROUNDS", 3)
	const batchRows = 100_000
	var drainRates, directRates []float64
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			ts := int64(1_700_000_000_000_000_000) + int64(r)*int64(n)*10
			dir := b.TempDir()
			l, err := wal.Open(filepath.Join(dir, "wal"), wal.Options{})
			if err != nil {
				b.Fatal(err)
			}
			fillWAL(b, l, n, 10_000, ts)
			l.Close()
			took := drain(b, addr, freshDB(b, conn, "drain"), dir, forwarder.Options{BatchRows: batchRows}, nil)
			drainRates = append(drainRates, float64(n)/took.Seconds())

			db := freshDB(b, conn, "direct")
			fleet := sampletest.NewFleet(10_000)
			batches := make([][]pa.Sample, 0, n/batchRows+1)
			for done := 0; done < n; done += batchRows {
				batches = append(batches, fleet.Append(nil, min(batchRows, n-done), ts+int64(done)))
			}
			ins := forwarder.NewInserter(conn, db, time.Minute)
			start := time.Now()
			for _, s := range batches {
				if err := ins.Insert(context.Background(), s); err != nil {
					b.Fatal(err)
				}
			}
			directRates = append(directRates, float64(n)/time.Since(start).Seconds())
			batches = nil
			runtime.GC()
		}
	}
	d, c := median(drainRates), median(directRates)
	b.ReportMetric(d, "drain_samples/s")
	b.ReportMetric(c, "direct_samples/s")
	b.ReportMetric(d/c, "drain_vs_direct_ratio")
	b.Logf("forwarder drain %.0f samples/s vs direct insert %.0f samples/s (median of %d alternating rounds, %d samples, %d-row batches): ratio %.2f",
		d, c, len(drainRates), n, batchRows, d/c)
}

// BenchmarkDrainPeakHeap fills a WAL with a large backlog (default 2 GiB of
// records) and drains it with default settings, sampling the Go heap every
// 50 ms during the drain.
func BenchmarkDrainPeakHeap(b *testing.B) {
	addr, conn := dial(b)
	target := int64(envInt("HOLDFAST_BENCH_BACKLOG_MIB", 2048)) << 20
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		l, err := wal.Open(filepath.Join(dir, "wal"), wal.Options{})
		if err != nil {
			b.Fatal(err)
		}
		var samples int
		ts := int64(1_700_000_000_000_000_000)
		for l.Stats().SizeBytes < target {
			fillWAL(b, l, 100_000, 100_000, ts+int64(samples))
			samples += 100_000
		}
		backlog := l.Stats()
		l.Close()
		runtime.GC()
		var peakInuse, peakSys atomic.Uint64
		sample := func() {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakInuse.Load() {
				peakInuse.Store(ms.HeapInuse)
			}
			if ms.HeapSys-ms.HeapReleased > peakSys.Load() {
				peakSys.Store(ms.HeapSys - ms.HeapReleased)
			}
		}
		took := drain(b, addr, freshDB(b, conn, "heap"), dir, forwarder.Options{}, sample)
		b.ReportMetric(float64(backlog.SizeBytes)/(1<<20), "backlog_MiB")
		b.ReportMetric(float64(peakInuse.Load())/(1<<20), "peak_heap_inuse_MiB")
		b.ReportMetric(float64(peakSys.Load())/(1<<20), "peak_heap_held_MiB")
		b.ReportMetric(float64(samples)/took.Seconds(), "samples/s")
		b.Logf("drained %d samples (%d records, %.0f MiB of WAL) in %v: peak heap in use %.0f MiB, held from the OS %.0f MiB",
			samples, backlog.LastIndex, float64(backlog.SizeBytes)/(1<<20), took.Round(time.Millisecond),
			float64(peakInuse.Load())/(1<<20), float64(peakSys.Load())/(1<<20))
	}
}
