package producerapi

import (
	"net/netip"
	"testing"
)

// benchSample is a fleet-like sample: a VM target with four fields and a
// metric with one.
func benchSample() Sample {
	return Sample{
		Target: Named{Name: "virtual_machine", Fields: []Field{
			{Name: "project", Value: StringValue("project-3")},
			{Name: "team", Value: StringValue("team-7")},
			{Name: "sled", Value: U32Value(42)},
			{Name: "vm", Value: U64Value(4242)},
			{Name: "addr", Value: IPValue(netip.MustParseAddr("fd00::1"))},
		}},
		Metric: Named{Name: "disk_read_bytes", Fields: []Field{{Name: "slot", Value: U8Value(2)}}},
		Datum:  Datum{Type: DatumCumulativeU64, Uint: 1},
	}
}

// BenchmarkTimeseriesKey must report 0 allocs/op: the forwarder and the
// collector call it per sample.
func BenchmarkTimeseriesKey(b *testing.B) {
	s := benchSample()
	b.ReportAllocs()
	var sink uint64
	for i := 0; i < b.N; i++ {
		sink += TimeseriesKey(&s)
	}
	_ = sink
}

func TestTimeseriesKeyAllocatesNothing(t *testing.T) {
	s := benchSample()
	if n := testing.AllocsPerRun(100, func() { TimeseriesKey(&s) }); n != 0 {
		t.Fatalf("TimeseriesKey allocates %v times per call", n)
	}
}

func TestSchemaVersionOfAllocatesNothing(t *testing.T) {
	s := benchSample()
	if n := testing.AllocsPerRun(100, func() { SchemaVersionOf(&s) }); n != 0 {
		t.Fatalf("SchemaVersionOf allocates %v times per call", n)
	}
	names := []string{"project", "team", "sled", "vm", "addr", "slot"}
	if SchemaVersionOf(&s) != SchemaVersion(names) {
		t.Fatalf("SchemaVersionOf %d, SchemaVersion %d", SchemaVersionOf(&s), SchemaVersion(names))
	}
}
