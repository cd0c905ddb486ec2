package collector

import (
	"hash/crc32"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

// BenchmarkPagePath is the collector's per-page work for a 10,000-sample
// RFD 125 page, from the received body to the WAL record's payload (and
// its CRC, as the WAL envelope computes it), without network or disk:
//
//	v1-before  binary v1 page: decode, Validate + schema check per sample,
//	           version 1 record (the path before page version 2)
//	v1         binary v1 page: the same, converted once into a version 2 record
//	v2         binary v2 page verified in place, written as received
//	v2-cold    v2 with the series cache off: every series checked on every
//	           page (SeriesKnownValid, as the registry knows the schemas)
//	v2-thrash  v2 with a 256 KiB cache: every series checked, remembered
//	           and forgotten (a fleet with more series than the cache holds)
//	v3         binary v3 page of a session that holds its series (the
//	           steady state of a producer drained every interval): no
//	           definitions, samples by id, verified in place
//	v3-first   v3, the session's first page: every series defined and
//	           checked (SeriesKnownValid, as the registry knows the schemas)
//
// Run: go test -run XXX -bench BenchmarkPagePath -benchtime 200x ./collector
func BenchmarkPagePath(b *testing.B) {
	const n = 10_000
	fleet := sampletest.NewFleet(10_000)
	// The second period of the fleet: every series seen once before (the
	// steady state of a collector), as the warm-up page below shows them.
	warm := fleet.Append(nil, n, 1_700_000_000_000_000_000)
	samples := fleet.Append(nil, n, 1_700_000_010_000_000_000)
	page := pa.Page{Producer: "sled-0", Incarnation: "9f1c5c1e-6a4e-4f4e-9d43-1d7c0e0b1a11", Token: "t", Samples: samples}
	bodyV1 := pa.AppendPage(nil, &page)
	bodyV2 := pa.AppendPage2(nil, &page)
	warmV2 := pa.AppendPage2(nil, &pa.Page{Producer: "sled-0", Token: "t", Samples: warm})
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	newC := func() *Collector {
		return &Collector{schemas: pa.NewSchemaRegistry(), maxRec: wal.MaxPayload}
	}
	lim := &pa.PageLimits{MaxSamples: n, Sample: pa.Limits{}}
	perSample := func(b *testing.B, run func()) {
		run() // warm up the caches and buffers
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		cpu0 := cpuTime()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			run()
		}
		b.StopTimer()
		cpu := cpuTime() - cpu0
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
		// The process's CPU time (GC included): on a shared machine wall
		// time also counts waiting for a core.
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/sample")
		b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(b.N*n), "B/sample")
		b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(b.N*n), "allocs/sample")
	}
	var sink uint32
	v1 := func(b *testing.B, before bool) {
		c := newC()
		dec := pa.NewSampleDecoder()
		dec.Limits = lim
		var p pa.Page
		var buf []byte
		var enc pa.Block2Encoder
		perSample(b, func() {
			if err := dec.DecodePage(bodyV1, &p); err != nil {
				b.Fatal(err)
			}
			valid, rejected := c.sortPage(&p)
			if valid != n || len(rejected) != 0 {
				b.Fatal("refused samples")
			}
			if before {
				buf = pa.AppendPageRecord(buf[:0], "sled-0", p.Incarnation, p.Samples)
			} else {
				buf = enc.Append(pa.AppendPageRecord2Head(buf[:0], "sled-0", p.Incarnation, true), p.Samples)
			}
			sink += crc32.Checksum(buf, castagnoli)
		})
		b.ReportMetric(float64(len(bodyV1))/n, "page-B/sample")
		b.ReportMetric(float64(len(buf))/n, "record-B/sample")
	}
	v2 := func(b *testing.B, cacheMax int) {
		c := newC()
		var buf []byte
		var p pa.Page
		take := func(body []byte) {
			block, _, err := pa.ScanPageHead(body, &p, lim)
			if err != nil {
				b.Fatal(err)
			}
			w := pageWorkPool.Get().(*pageWork)
			if rejected, err := c.verifyPage2(w, block, lim); err != nil || len(rejected) != 0 {
				b.Fatal(err, len(rejected))
			}
			var ok bool
			if buf, ok = c.record2("sled-0", p.Incarnation, w, block, buf[:0]); !ok {
				b.Fatal("record too large")
			}
			w.release()
			sink += crc32.Checksum(buf, castagnoli)
		}
		c.series.max = cacheMax // 1: every entry is larger than the cache, none kept
		take(warmV2)
		perSample(b, func() { take(bodyV2) })
		b.ReportMetric(float64(len(bodyV2))/n, "page-B/sample")
		b.ReportMetric(float64(len(buf))/n, "record-B/sample")
	}
	v3 := func(b *testing.B, first bool) {
		c := newC()
		var buf []byte
		var p pa.Page
		var s session
		f := newFakeSessions()
		_, body1 := f.serve(0, 0, false, samples) // defines the page's series
		take := func(body []byte, commit bool) {
			block, _, err := pa.ScanPageHead(body, &p, lim)
			if err != nil {
				b.Fatal(err)
			}
			w := pageWorkPool.Get().(*pageWork)
			if rejected, err := c.verifyPage3(w, &s, p.Session, p.Incarnation, block, lim); err != nil || len(rejected) != 0 {
				b.Fatal(err, len(rejected))
			}
			var ok bool
			if buf, ok = c.record3("sled-0", p.Incarnation, w, block, buf[:0]); !ok {
				b.Fatal("record too large")
			}
			if commit {
				s.stage(&w.pend)
				s.commit()
			}
			w.release()
			sink += crc32.Checksum(buf, castagnoli)
		}
		if first {
			perSample(b, func() { take(body1, false) })
			b.ReportMetric(float64(len(body1))/n, "page-B/sample")
		} else {
			take(body1, true)
			_, body2 := f.serve(s.id, uint64(len(s.types)), true, samples) // the same series again
			perSample(b, func() { take(body2, false) })
			b.ReportMetric(float64(len(body2))/n, "page-B/sample")
		}
		b.ReportMetric(float64(len(buf))/n, "record-B/sample")
	}
	b.Run("v1-before", func(b *testing.B) { v1(b, true) })
	b.Run("v1", func(b *testing.B) { v1(b, false) })
	b.Run("v2", func(b *testing.B) { v2(b, 0) })
	b.Run("v2-cold", func(b *testing.B) { v2(b, 1) })
	b.Run("v2-thrash", func(b *testing.B) { v2(b, 256<<10) })
	b.Run("v3", func(b *testing.B) { v3(b, false) })
	b.Run("v3-first", func(b *testing.B) { v3(b, true) })
	_ = sink
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
