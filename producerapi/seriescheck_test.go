package producerapi_test

import (
	"strings"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// seriesCorpus is a good set of series (registered in reg) and variants
// that Validate or the schema check refuse, or that reg does not know.
func seriesCorpus(t testing.TB) (good, other [][]byte, reg *pa.SchemaRegistry) {
	reg = pa.NewSchemaRegistry()
	in := append(sampletest.EveryDatumType(1), sampletest.NewFleet(3).Append(nil, 66, 1)...)
	in = append(in, manyFields(9))
	for i := range in {
		if _, err := reg.Check(&in[i]); err != nil {
			t.Fatal(err)
		}
		good = append(good, pa.AppendSeries(nil, &in[i]))
	}
	base := in[0]
	vary := func(f func(s *pa.Sample)) {
		s := base
		s.Target.Fields = append([]pa.Field(nil), base.Target.Fields...)
		s.Metric.Fields = append([]pa.Field(nil), base.Metric.Fields...)
		f(&s)
		other = append(other, pa.AppendSeries(nil, &s))
	}
	vary(func(s *pa.Sample) { s.Target.Name = "Bad" })
	vary(func(s *pa.Sample) { s.Target.Name = "a__b" })
	vary(func(s *pa.Sample) { s.Metric.Name = "m_" })
	vary(func(s *pa.Sample) { s.Metric.Name = strings.Repeat("m", 129) })
	vary(func(s *pa.Sample) { s.Target.Fields[0].Name = "Id" })
	vary(func(s *pa.Sample) {
		s.Metric.Fields = append(s.Metric.Fields, pa.Field{Name: "id", Value: pa.I64Value(1)})
	})
	vary(func(s *pa.Sample) { s.Target.Fields[1].Value = pa.StringValue(strings.Repeat("x", 1025)) })
	vary(func(s *pa.Sample) { s.Target.Fields[6].Value = pa.FieldValue{Type: pa.FieldI8, Int: 128} })
	vary(func(s *pa.Sample) { s.Target.Fields[7].Value = pa.FieldValue{Type: pa.FieldI16, Int: -1 << 20} })
	vary(func(s *pa.Sample) { s.Target.Fields[8].Value = pa.FieldValue{Type: pa.FieldI32, Int: 1 << 40} })
	vary(func(s *pa.Sample) { s.Target.Fields[9].Value = pa.FieldValue{Type: pa.FieldU8, Uint: 256} })
	vary(func(s *pa.Sample) { s.Target.Fields[10].Value = pa.FieldValue{Type: pa.FieldU16, Uint: 1 << 20} })
	vary(func(s *pa.Sample) { s.Target.Fields[11].Value = pa.FieldValue{Type: pa.FieldU32, Uint: 1 << 40} })
	vary(func(s *pa.Sample) { s.Target.Fields[0].Value = pa.U64Value(1) })                           // schema conflict: field type
	vary(func(s *pa.Sample) { s.Datum.Type = pa.DatumI64 })                                          // schema conflict: datum type
	vary(func(s *pa.Sample) { s.Metric.Fields[0].Name = "zz" })                                      // a version reg does not know
	vary(func(s *pa.Sample) { s.Metric.Fields, s.Target.Fields = s.Target.Fields, s.Metric.Fields }) // sources swapped
	vary(func(s *pa.Sample) {
		for i := 0; i < 60; i++ {
			s.Metric.Fields = append(s.Metric.Fields, pa.Field{Name: "f" + strings.Repeat("x", i+1), Value: pa.BoolValue(true)})
		}
	}) // over MaxFields
	return good, other, reg
}

// slowVerdict is what the collector's allocating check says.
func slowVerdict(raw []byte, reg *pa.SchemaRegistry) (valid bool, added bool) {
	id, err := pa.DecodeSeries(raw)
	if err != nil {
		return false, false
	}
	s := id.Sample()
	if pa.Validate(&s, pa.Limits{}) != nil {
		return false, false
	}
	added, err = reg.Check(&s)
	return err == nil, added
}

func TestSeriesKnownValid(t *testing.T) {
	good, other, reg := seriesCorpus(t)
	for i, raw := range good {
		if !pa.SeriesKnownValid(raw, pa.Limits{}, reg) {
			id, _ := pa.DecodeSeries(raw)
			t.Fatalf("good series %d (%s) not shown valid", i, id.TimeseriesName())
		}
	}
	for i, raw := range other {
		if pa.SeriesKnownValid(raw, pa.Limits{}, reg) {
			t.Fatalf("variant %d shown valid", i)
		}
		if ok, added := slowVerdict(raw, reg); ok && !added {
			t.Fatalf("variant %d: the slow check finds it valid and known; the corpus is wrong", i)
		}
	}
	// Limits are those given.
	if pa.SeriesKnownValid(good[0], pa.Limits{MaxFieldStringLen: 5}, reg) {
		t.Fatal("a string field over the given limit shown valid")
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, raw := range good {
			pa.SeriesKnownValid(raw, pa.Limits{}, reg)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per %d series, want 0", allocs, len(good))
	}
}

// FuzzSeriesKnownValid: never true for an entry the allocating check
// (DecodeSeries, Validate, SchemaRegistry.Check) refuses or does not know.
func FuzzSeriesKnownValid(f *testing.F) {
	good, other, reg := seriesCorpus(f)
	for _, raw := range append(good, other...) {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !pa.SeriesKnownValid(raw, pa.Limits{}, reg) {
			return
		}
		if ok, added := slowVerdict(raw, reg); !ok || added {
			t.Fatalf("shown valid, but the slow check says valid=%v added=%v", ok, added)
		}
	})
}
