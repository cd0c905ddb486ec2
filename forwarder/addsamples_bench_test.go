package forwarder

import (
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
)

// BenchmarkAddSamples measures the per-sample cost of turning validated
// samples into rows, key and collision fingerprint included, for a fleet
// whose keys are all known (the steady state).
func BenchmarkAddSamples(b *testing.B) {
	samples := sampletest.NewFleet(1000).Append(nil, 22_000, 1)
	w := newWriter(nil, "db", 1<<18)
	rs := newRowSet()
	w.addSamples(rs, samples, nil)
	for k, fp := range rs.newKeys {
		w.seenKeys.put(k, fp)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rs := newRowSet()
		w.addSamples(rs, samples, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(samples)), "ns/sample")
}
