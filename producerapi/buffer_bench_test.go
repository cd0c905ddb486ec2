package producerapi_test

import (
	"net/http"
	"runtime"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// BenchmarkBufferPeriodBehind: a producer of 220,000 series (one of RFD
// 125's N=100 sleds' ten) whose collector is a period behind, so the
// buffer holds one to two periods. Each op adds a period in batches of
// 10,000 and serves (page v3, established session) and acknowledges the
// period before it. Reported: ns and bytes allocated per sample added
// (process-wide, so the pages' encoding counts too).
func BenchmarkBufferPeriodBehind(b *testing.B) {
	const series, batchLen = 220_000, 10_000
	s, err := pa.NewServer(pa.ServerOptions{ID: "bench", Logger: quiet, MaxSamples: 4 * series, MaxBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	c := &pageClient{h: s.Handler(), id: "c", accept: pa.ContentTypeBinaryV3, w: bodyWriter{h: http.Header{}}}
	f := sampletest.NewFleet(series / 22)
	batches := make([][]pa.Sample, series/batchLen)
	for i := range batches {
		batches[i] = f.Append(nil, batchLen, 0)
	}
	period := int64(0)
	addPeriod := func() {
		period++
		for _, batch := range batches {
			for i := range batch {
				batch[i].TimestampNs = period
			}
			if err := s.Add(batch); err != nil {
				b.Fatal(err)
			}
		}
	}
	takePeriod := func() {
		for taken := 0; taken < series; {
			taken += c.serve(b)
		}
	}
	// Two periods in, one taken: the session holds every series and the
	// buffer a period.
	addPeriod()
	addPeriod()
	takePeriod()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		addPeriod()
		takePeriod()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	samples := float64(b.N) * series
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/samples, "ns/sample")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/samples, "B/sample")
}
