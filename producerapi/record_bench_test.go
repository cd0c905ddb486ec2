package producerapi_test

import (
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// BenchmarkDecodePageRecord: decoding a 10,000-sample RFD 125 page record
// into samples with a reused SampleDecoder (what the forwarder did before
// it read record2 into columns), record version 1 vs 2.
//
// Run: go test -run XXX -bench BenchmarkDecodePageRecord ./producerapi
func BenchmarkDecodePageRecord(b *testing.B) {
	samples := sampletest.NewFleet(10_000).Append(nil, 10_000, 1)
	records := map[string][]byte{
		"v1": pa.AppendPageRecord(nil, "p", "i", samples),
		"v2": pa.AppendPageRecord2(nil, "p", "i", true, pa.AppendBlock2(nil, samples)),
	}
	for _, name := range []string{"v1", "v2"} {
		b.Run(name, func(b *testing.B) {
			sd := pa.NewSampleDecoder()
			var rec pa.PageRecord
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := sd.DecodePageRecord(records[name], &rec); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(samples)), "ns/sample")
		})
	}
}
