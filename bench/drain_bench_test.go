package bench

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/chtest"
	"github.com/holdfast/holdfast/internal/offheap"
	"github.com/holdfast/holdfast/wal"
)

// dial connects to the test ClickHouse; the connection closes after the
// test's other cleanups (database drops registered later run first).
func dial(tb testing.TB) (string, driver.Conn) {
	addr := chtest.Addr(tb)
	conn, err := forwarder.Dial(addr, "default", "", 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return addr, conn
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
			d, c, err := drainVsDirect(context.Background(), conn, addr, b.TempDir(), n, batchRows, ts)
			if err != nil {
				b.Fatal(err)
			}
			drainRates, directRates = append(drainRates, d), append(directRates, c)
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
// 50 ms during the drain, with the per-series state mapped outside it
// (internal/offheap).
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
		filler := newWALFiller(100_000)
		for l.Stats().SizeBytes < target {
			if err := filler.fill(l, 100_000, ts+int64(samples)); err != nil {
				b.Fatal(err)
			}
			samples += 100_000
		}
		backlog := l.Stats()
		l.Close()
		runtime.GC()
		// The per-series state the forwarder maps outside the Go heap
		// (internal/offheap) is counted with the heap: peakTotal is the
		// figure the 128 MiB target is read against.
		var peakInuse, peakSys, peakOff, peakTotal atomic.Uint64
		// HOLDFAST_BENCH_HEAP_PROFILE=FILE keeps the heap profile taken
		// after the GC that follows the highest peak seen: what is live
		// when the heap is at its largest (go tool pprof -sample_index=inuse_space).
		profile := os.Getenv("HOLDFAST_BENCH_HEAP_PROFILE")
		var lastProfile time.Time
		sample := func() {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakInuse.Load() {
				peakInuse.Store(ms.HeapInuse)
				if profile != "" && time.Since(lastProfile) > time.Second {
					lastProfile = time.Now()
					if f, err := os.Create(profile); err == nil {
						pprof.Lookup("heap").WriteTo(f, 0)
						f.Close()
					}
				}
			}
			off := uint64(offheap.Bytes())
			if off > peakOff.Load() {
				peakOff.Store(off)
			}
			if ms.HeapInuse+off > peakTotal.Load() {
				peakTotal.Store(ms.HeapInuse + off)
			}
			if ms.HeapSys-ms.HeapReleased > peakSys.Load() {
				peakSys.Store(ms.HeapSys - ms.HeapReleased)
			}
		}
		db, drop, err := freshDB(context.Background(), conn, "heap")
		if err != nil {
			b.Fatal(err)
		}
		defer drop()
		// HOLDFAST_BENCH_SERIAL_DELIVERY=1: one batch at a time (less
		// memory, slower), as forwarder.Options.SerialDelivery.
		opts := forwarder.Options{SerialDelivery: os.Getenv("HOLDFAST_BENCH_SERIAL_DELIVERY") == "1"}
		took, err := drainDir(context.Background(), addr, db, dir, opts, sample)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(backlog.SizeBytes)/(1<<20), "backlog_MiB")
		b.ReportMetric(float64(peakInuse.Load())/(1<<20), "peak_heap_inuse_MiB")
		b.ReportMetric(float64(peakSys.Load())/(1<<20), "peak_heap_held_MiB")
		b.ReportMetric(float64(peakOff.Load())/(1<<20), "peak_offheap_MiB")
		b.ReportMetric(float64(peakTotal.Load())/(1<<20), "peak_heap_inuse_plus_offheap_MiB")
		b.ReportMetric(float64(samples)/took.Seconds(), "samples/s")
		b.Logf("drained %d samples (%d records, %.0f MiB of WAL) in %v: peak heap in use plus off-heap %.0f MiB (heap in use %.0f, off-heap %.0f), heap held from the OS %.0f MiB",
			samples, backlog.LastIndex, float64(backlog.SizeBytes)/(1<<20), took.Round(time.Millisecond),
			float64(peakTotal.Load())/(1<<20), float64(peakInuse.Load())/(1<<20), float64(peakOff.Load())/(1<<20), float64(peakSys.Load())/(1<<20))
	}
}
