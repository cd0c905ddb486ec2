package producerapi_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

func goldenSample() pa.Sample {
	return pa.Sample{
		Target: pa.Named{Name: "virtual_machine", Fields: []pa.Field{
			{Name: "project", Value: pa.StringValue("p1")},
			{Name: "vm", Value: pa.UUIDValue([16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})},
			{Name: "addr", Value: pa.IPValue(netip.MustParseAddr("192.0.2.1"))},
		}},
		Metric: pa.Named{Name: "cpu_busy", Fields: []pa.Field{
			{Name: "cpu", Value: pa.U32Value(3)},
			{Name: "neg", Value: pa.I8Value(-2)},
			{Name: "on", Value: pa.BoolValue(true)},
		}},
		TimestampNs: 1,
		Datum:       pa.Datum{Type: pa.DatumCumulativeF64, F64: 1.5, StartTimeNs: 0},
	}
}

// TestTimeseriesKeyGolden pins the key: changing it silently would split every
// stored timeseries in two. DESIGN.md documents the bytes hashed.
func TestTimeseriesKeyGolden(t *testing.T) {
	s := goldenSample()
	const want uint64 = 0x2b6b70bc87ef1c29
	got := pa.TimeseriesKey(&s)
	if got != want {
		t.Fatalf("TimeseriesKey = %#016x, want %#016x: the key's byte layout changed", got, want)
	}
	if ref := referenceKey(); ref != want {
		t.Fatalf("the documented layout hashes to %#016x, the pinned key is %#016x", ref, want)
	}
	// Field order does not matter; values, names, types and datum type do.
	r := goldenSample()
	r.Target.Fields[0], r.Target.Fields[2] = r.Target.Fields[2], r.Target.Fields[0]
	r.Metric.Fields[0], r.Metric.Fields[1] = r.Metric.Fields[1], r.Metric.Fields[0]
	if k := pa.TimeseriesKey(&r); k != want {
		t.Errorf("reordered fields changed the key: %#x", k)
	}
	r.TimestampNs, r.Datum.F64 = 99, 2
	if k := pa.TimeseriesKey(&r); k != want {
		t.Errorf("timestamp or value changed the key: %#x", k)
	}
	for name, mutate := range map[string]func(*pa.Sample){
		"field value": func(s *pa.Sample) { s.Metric.Fields[0].Value = pa.U32Value(4) },
		"field type":  func(s *pa.Sample) { s.Metric.Fields[0].Value = pa.U64Value(3) },
		"field name":  func(s *pa.Sample) { s.Metric.Fields[0].Name = "cpu2" },
		"datum type":  func(s *pa.Sample) { s.Datum.Type = pa.DatumCumulativeI64 },
		"metric name": func(s *pa.Sample) { s.Metric.Name = "cpu_idle" },
		"ipv4 vs v6":  func(s *pa.Sample) { s.Target.Fields[2].Value = pa.IPValue(netip.MustParseAddr("::ffff:192.0.2.1")) },
		"name split":  func(s *pa.Sample) { s.Target.Name, s.Metric.Name = "virtual_machine_cpu", "busy" },
		"extra field": func(s *pa.Sample) {
			s.Metric.Fields = append(s.Metric.Fields, pa.Field{Name: "x", Value: pa.BoolValue(false)})
		},
		"string value": func(s *pa.Sample) { s.Target.Fields[0].Value = pa.StringValue("p2") },
	} {
		m := goldenSample()
		mutate(&m)
		if pa.TimeseriesKey(&m) == want {
			t.Errorf("%s: key did not change", name)
		}
	}
}

// referenceKey hashes the golden sample by following DESIGN.md's description
// of the key literally, as another implementation would.
func referenceKey() uint64 {
	var b []byte
	u32 := func(v int) { b = binary.LittleEndian.AppendUint32(b, uint32(v)) }
	str := func(s string) { u32(len(s)); b = append(b, s...) }
	str("virtual_machine:cpu_busy")
	u32(6)
	// sorted by name: addr, cpu, neg, on, project, vm
	str("addr")
	b = append(b, byte(pa.FieldIPAddr), 4, 192, 0, 2, 1)
	str("cpu")
	b = append(b, byte(pa.FieldU32))
	b = binary.LittleEndian.AppendUint64(b, 3)
	str("neg")
	b = append(b, byte(pa.FieldI8))
	b = binary.LittleEndian.AppendUint64(b, uint64(0xfffffffffffffffe))
	str("on")
	b = append(b, byte(pa.FieldBool), 1)
	str("project")
	b = append(b, byte(pa.FieldString))
	str("p1")
	str("vm")
	b = append(b, byte(pa.FieldUUID), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
	b = append(b, byte(pa.DatumCumulativeF64))
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", 129)
	tests := []struct {
		name   string
		mutate func(*pa.Sample)
		want   string // substring of the error; "" for valid
	}{
		{"valid", func(*pa.Sample) {}, ""},
		{"empty target name", func(s *pa.Sample) { s.Target.Name = "" }, "target name: empty name"},
		{"uppercase metric", func(s *pa.Sample) { s.Metric.Name = "CpuBusy" }, "must start with a lowercase letter"},
		{"dash", func(s *pa.Sample) { s.Metric.Name = "cpu-busy" }, `character '-'`},
		{"trailing underscore", func(s *pa.Sample) { s.Metric.Name = "cpu_" }, "must not end with an underscore"},
		{"double underscore", func(s *pa.Sample) { s.Metric.Name = "cpu__busy" }, "doubled underscore"},
		{"long name", func(s *pa.Sample) { s.Metric.Name = long }, "exceeds the limit of 128"},
		{"duplicate field across groups", func(s *pa.Sample) { s.Metric.Fields[0].Name = "project" }, `field "project": appears more than once`},
		{"duplicate field in group", func(s *pa.Sample) { s.Metric.Fields[1].Name = "cpu" }, `field "cpu": appears more than once`},
		{"u32 field too big", func(s *pa.Sample) { s.Metric.Fields[0].Value.Uint = 1 << 32 }, "exceeds 4294967295"},
		{"i8 field out of range", func(s *pa.Sample) { s.Metric.Fields[1].Value.Int = 128 }, "outside [-128, 127]"},
		{"unknown field type", func(s *pa.Sample) { s.Metric.Fields[1].Value.Type = 99 }, "unknown field type 99"},
		{"invalid ip", func(s *pa.Sample) { s.Target.Fields[2].Value.IP = netip.Addr{} }, "invalid IP address"},
		{"long field string", func(s *pa.Sample) { s.Target.Fields[0].Value.Str = strings.Repeat("x", 1025) }, "exceeds the limit of 1024"},
		{"unknown datum type", func(s *pa.Sample) { s.Datum.Type = 0 }, "unknown datum type 0"},
		{"start time on gauge", func(s *pa.Sample) { s.Datum = pa.Datum{Type: pa.DatumF64, StartTimeNs: 5} }, "must not have a start time"},
		{"u8 datum too big", func(s *pa.Sample) { s.Datum = pa.Datum{Type: pa.DatumU8, Uint: 256} }, "exceeds 255"},
		{"huge bytes", func(s *pa.Sample) { s.Datum = pa.Datum{Type: pa.DatumBytes, Bytes: make([]byte, 64<<10+1)} }, "exceed the limit"},
		{"histogram without bins", func(s *pa.Sample) {
			s.Datum = pa.Datum{Type: pa.DatumHistogramI64, HistI64: &pa.Histogram[int64]{}}
		}, "no bins"},
		{"histogram counts mismatch", func(s *pa.Sample) {
			s.Datum = pa.Datum{Type: pa.DatumHistogramU64, HistU64: &pa.Histogram[uint64]{Bins: []uint64{1, 2}, Counts: []uint64{1}}}
		}, "2 bins but 1 counts"},
		{"histogram unsorted", func(s *pa.Sample) {
			s.Datum = pa.Datum{Type: pa.DatumHistogramF64, HistF64: &pa.Histogram[float64]{Bins: []float64{1, 1}, Counts: []uint64{1, 1}}}
		}, "not strictly increasing at bin 1"},
		{"histogram NaN bin", func(s *pa.Sample) {
			s.Datum = pa.Datum{Type: pa.DatumHistogramF64, HistF64: &pa.Histogram[float64]{Bins: []float64{math.NaN()}, Counts: []uint64{1}}}
		}, "NaN bin"},
		{"histogram nil", func(s *pa.Sample) { s.Datum = pa.Datum{Type: pa.DatumHistogramF64} }, "without a histogram"},
		{"missing datum needs no value", func(s *pa.Sample) { s.Datum = pa.Datum{Type: pa.DatumHistogramF64, Missing: true, StartTimeNs: 3} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := goldenSample()
			tt.mutate(&s)
			err := pa.Validate(&s, pa.Limits{})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
			if !errors.Is(err, pa.ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid")
			}
		})
	}
	for _, s := range sampletest.EveryDatumType(1) {
		if err := pa.Validate(&s, pa.Limits{}); err != nil {
			t.Errorf("edge-case sample rejected: %v", err)
		}
	}
}

func TestSchemaRegistryConflicts(t *testing.T) {
	reg := pa.NewSchemaRegistry()
	s := goldenSample()
	if added, err := reg.Check(&s); err != nil || !added {
		t.Fatalf("first sample: added=%v err=%v", added, err)
	}
	reordered := goldenSample()
	reordered.Metric.Fields[0], reordered.Metric.Fields[2] = reordered.Metric.Fields[2], reordered.Metric.Fields[0]
	if added, err := reg.Check(&reordered); err != nil || added {
		t.Fatalf("same schema, other order: added=%v err=%v", added, err)
	}
	tests := []struct {
		name   string
		mutate func(*pa.Sample)
		want   string
	}{
		{"datum type", func(s *pa.Sample) { s.Datum.Type = pa.DatumCumulativeI64 }, "datum type is cumulative_i64, schema says cumulative_f64"},
		{"field type", func(s *pa.Sample) { s.Metric.Fields[0].Value = pa.U64Value(3) }, `field "cpu" has type u64, schema says u32`},
		{"moved field", func(s *pa.Sample) {
			s.Target.Fields = append(s.Target.Fields, s.Metric.Fields[2])
			s.Metric.Fields = s.Metric.Fields[:2]
		}, `field "on" is a target field, schema says metric`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := goldenSample()
			tt.mutate(&c)
			_, err := reg.Check(&c)
			var conflict *pa.SchemaConflictError
			if !errors.As(err, &conflict) || !strings.Contains(err.Error(), tt.want) || conflict.Timeseries != "virtual_machine:cpu_busy" {
				t.Fatalf("err = %v, want a conflict containing %q", err, tt.want)
			}
		})
	}
	if got := reg.Schemas(); len(got) != 1 || got[0].Name != "virtual_machine:cpu_busy" || len(got[0].Fields) != 6 {
		t.Fatalf("Schemas() = %+v", got)
	}
}

// sameSample compares samples bit for bit, floats by their bits.
func sameSample(a, b *pa.Sample) bool {
	if !reflect.DeepEqual(a.Target, b.Target) || !reflect.DeepEqual(a.Metric, b.Metric) || a.TimestampNs != b.TimestampNs {
		return false
	}
	x, y := a.Datum, b.Datum
	if math.Float64bits(x.F64) != math.Float64bits(y.F64) || math.Float32bits(x.F32) != math.Float32bits(y.F32) {
		return false
	}
	if x.HistF64 != nil && y.HistF64 != nil {
		hx, hy := *x.HistF64, *y.HistF64
		for _, pair := range [][2]float64{{hx.Min, hy.Min}, {hx.Max, hy.Max}, {hx.Sum, hy.Sum}} {
			if math.Float64bits(pair[0]) != math.Float64bits(pair[1]) {
				return false
			}
		}
		for i := range hx.Bins {
			if math.Float64bits(hx.Bins[i]) != math.Float64bits(hy.Bins[i]) {
				return false
			}
		}
		x.HistF64, y.HistF64 = nil, nil
		if !reflect.DeepEqual(hx.Counts, hy.Counts) {
			return false
		}
	}
	x.F64, y.F64, x.F32, y.F32 = 0, 0, 0, 0
	if (x.Bytes == nil) != (y.Bytes == nil) && x.Type == pa.DatumBytes && !x.Missing {
		return false
	}
	if x.Type != pa.DatumBytes || x.Missing {
		x.Bytes, y.Bytes = nil, nil
	}
	return reflect.DeepEqual(x, y)
}

func TestBinaryRoundTripExact(t *testing.T) {
	in := sampletest.EveryDatumType(math.MinInt64)
	in = sampletest.NewFleet(10).Append(in, 100, 1_700_000_000_123_456_789)
	block := pa.AppendSamples(nil, in)
	out, err := pa.DecodeSamples(block, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d samples, want %d", len(out), len(in))
	}
	for i := range in {
		if !sameSample(&in[i], &out[i]) {
			t.Fatalf("sample %d differs:\n in: %+v\nout: %+v", i, in[i], out[i])
		}
		if pa.TimeseriesKey(&in[i]) != pa.TimeseriesKey(&out[i]) {
			t.Fatalf("sample %d: key changed in transit", i)
		}
	}
	// Re-encoding the decoded samples gives the same bytes.
	if again := pa.AppendSamples(nil, out); !bytes.Equal(again, block) {
		t.Fatal("encoding is not stable across a round trip")
	}
}

// TestSampleDecoderMatchesDecodeSamples: interning and field arenas change
// nothing in what is decoded, across many blocks decoded with one decoder.
func TestSampleDecoderMatchesDecodeSamples(t *testing.T) {
	sd := pa.NewSampleDecoder()
	fleet := sampletest.NewFleet(50)
	var reused []pa.Sample
	for round := 0; round < 5; round++ {
		in := append(sampletest.EveryDatumType(int64(round)), fleet.Append(nil, 500, int64(round)*1000)...)
		block := pa.AppendSamples(nil, in)
		plain, err1 := pa.DecodeSamples(block, nil)
		var err2 error
		reused, err2 = sd.DecodeSamples(block, reused[:0])
		if err1 != nil || err2 != nil || len(plain) != len(reused) {
			t.Fatalf("round %d: %v %v %d %d", round, err1, err2, len(plain), len(reused))
		}
		for i := range plain {
			if !sameSample(&plain[i], &reused[i]) || !sameSample(&in[i], &reused[i]) {
				t.Fatalf("round %d sample %d differs", round, i)
			}
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := pa.AppendSamples(nil, sampletest.EveryDatumType(5)[:3])
	tests := []struct {
		name  string
		block []byte
		want  string
	}{
		{"empty", nil, "unexpected end of block"},
		{"version", append([]byte{2}, good[1:]...), "unsupported block version 2"},
		{"truncated", good[:len(good)-1], "sample 2 at byte"},
		{"trailing", append(append([]byte{}, good...), 0), "trailing garbage"},
		{"huge count", []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}, "exceeds the remaining"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pa.DecodeSamples(tt.block, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, pa.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed containing %q", err, tt.want)
			}
		})
	}
}

func FuzzDecodeSamples(f *testing.F) {
	f.Add(pa.AppendSamples(nil, sampletest.EveryDatumType(1)))
	f.Add(pa.AppendSamples(nil, sampletest.NewFleet(3).Append(nil, 5, 1)))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, block []byte) {
		samples, err := pa.DecodeSamples(block, nil)
		interned, ierr := pa.NewSampleDecoder().DecodeSamples(block, nil)
		if (err == nil) != (ierr == nil) || len(samples) != len(interned) {
			t.Fatalf("the interning decoder disagrees: %v vs %v", err, ierr)
		}
		if err != nil {
			return
		}
		for i := range samples {
			if !sameSample(&samples[i], &interned[i]) {
				t.Fatalf("the interning decoder decoded sample %d differently", i)
			}
		}
		// What decodes survives a re-encoding unchanged (the input may use
		// non-canonical varints, so compare samples, not bytes), and can be
		// validated and hashed without panicking.
		again, err := pa.DecodeSamples(pa.AppendSamples(nil, samples), nil)
		if err != nil || len(again) != len(samples) {
			t.Fatalf("re-encoded block does not decode: %v", err)
		}
		for i := range samples {
			if !sameSample(&samples[i], &again[i]) {
				t.Fatalf("sample %d changed across re-encoding", i)
			}
		}
		for i := range samples {
			_ = pa.Validate(&samples[i], pa.Limits{})
			_ = pa.TimeseriesKey(&samples[i])
		}
	})
}
