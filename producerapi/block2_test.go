package producerapi_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// block2Corpus is every datum and field type with edge values (NaN with a
// payload, -0, ±Inf, integer extremes, empty and non-UTF-8 bytes, missing
// datums, every histogram type) plus an RFD 125 fleet's samples.
func block2Corpus() []pa.Sample {
	in := sampletest.EveryDatumType(math.MinInt64)
	return sampletest.NewFleet(10).Append(in, 500, 1_700_000_000_123_456_789)
}

func TestBlock2RoundTripExact(t *testing.T) {
	in := block2Corpus()
	block := pa.AppendBlock2(nil, in)
	out, err := pa.DecodeBlock2(block, nil)
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
	if again := pa.AppendBlock2(nil, out); !bytes.Equal(again, block) {
		t.Fatal("encoding is not stable across a round trip")
	}
	// The dictionary holds each distinct series once.
	var sc pa.BlockScanner
	if err := sc.Reset(block, nil); err != nil {
		t.Fatal(err)
	}
	distinct := map[string]bool{}
	for i := range in {
		distinct[string(pa.AppendSeries(nil, &in[i]))] = true
	}
	if sc.NumSeries() != len(distinct) || sc.NumSamples() != len(in) {
		t.Fatalf("%d series and %d samples, want %d and %d", sc.NumSeries(), sc.NumSamples(), len(distinct), len(in))
	}
	// The empty block.
	if out, err := pa.DecodeBlock2(pa.AppendBlock2(nil, nil), nil); err != nil || len(out) != 0 {
		t.Fatalf("empty block: %v, %d samples", err, len(out))
	}
}

// TestBlockScannerMatchesDecode: the views and the series entries say what
// the decoded samples say.
func TestBlockScannerMatchesDecode(t *testing.T) {
	in := block2Corpus()
	block := pa.AppendBlock2(nil, in)
	var sc pa.BlockScanner
	for round := 0; round < 2; round++ { // the second round reuses the scanner
		if err := sc.Reset(block, &pa.PageLimits{MaxSamples: len(in)}); err != nil {
			t.Fatal(err)
		}
		var v pa.SampleView
		i := 0
		for sc.Next(&v) {
			sv := sc.Series(v.Series)
			id, err := pa.DecodeSeries(sv.Raw)
			if err != nil {
				t.Fatalf("sample %d: %v", i, err)
			}
			got := pa.Sample{Target: id.Target, Metric: id.Metric, TimestampNs: v.TimestampNs, Datum: v.Datum()}
			if sv.DatumType != v.Type || id.DatumType != v.Type || !sameSample(&in[i], &got) {
				t.Fatalf("sample %d differs:\n in: %+v\nout: %+v", i, in[i], got)
			}
			if want := pa.AppendSample2(nil, v.Series, &in[i]); !bytes.Equal(v.Raw, want) {
				t.Fatalf("sample %d: Raw %x, want %x", i, v.Raw, want)
			}
			i++
		}
		if sc.Err() != nil || i != len(in) {
			t.Fatalf("scanned %d of %d: %v", i, len(in), sc.Err())
		}
	}
}

// TestBlock2FilterBySampleRanges: a block rebuilt from the series table and
// some samples' raw bytes decodes to exactly those samples.
func TestBlock2FilterBySampleRanges(t *testing.T) {
	in := block2Corpus()
	block := pa.AppendBlock2(nil, in)
	var sc pa.BlockScanner
	if err := sc.Reset(block, nil); err != nil {
		t.Fatal(err)
	}
	var kept []pa.Sample
	var body []byte
	var v pa.SampleView
	for i := 0; sc.Next(&v); i++ {
		if i%3 == 1 {
			continue
		}
		kept = append(kept, in[i])
		body = append(body, v.Raw...)
	}
	if sc.Err() != nil {
		t.Fatal(sc.Err())
	}
	filtered := append(pa.AppendBlock2Head(nil, sc.NumSeries(), sc.SeriesTable(), len(kept)), body...)
	out, err := pa.DecodeBlock2(filtered, nil)
	if err != nil || len(out) != len(kept) {
		t.Fatalf("%v: %d samples, want %d", err, len(out), len(kept))
	}
	for i := range kept {
		if !sameSample(&kept[i], &out[i]) {
			t.Fatalf("sample %d differs", i)
		}
	}
}

// TestBlock2GaugeSampleSize: an RFD 125 f64 gauge costs 18 bytes a sample
// once its series is in the dictionary.
func TestBlock2GaugeSampleSize(t *testing.T) {
	samples := sampletest.NewFleet(1).Append(nil, 22, 1)
	for i := range samples {
		if s := &samples[i]; s.Datum.Type == pa.DatumF64 {
			if n := len(pa.AppendSample2(nil, 0, s)); n != 18 {
				t.Fatalf("f64 gauge sample of %d bytes, want 18", n)
			}
			v1 := len(pa.AppendSamples(nil, samples[i:i+1])) - 2
			t.Logf("f64 gauge: 18 bytes in block v2, %d in v1", v1)
			return
		}
	}
	t.Fatal("the fleet has no f64 gauge")
}

func TestBlock2Rejects(t *testing.T) {
	in := sampletest.EveryDatumType(5)[:3]
	good := pa.AppendBlock2(nil, in)
	var sc pa.BlockScanner
	if err := sc.Reset(good, nil); err != nil {
		t.Fatal(err)
	}
	head := pa.AppendBlock2Head(nil, sc.NumSeries(), sc.SeriesTable(), 1)
	badIndex := append(append([]byte{}, head...), pa.AppendSample2(nil, sc.NumSeries(), &in[0])...)
	badFlags := append(append([]byte{}, head...), pa.AppendSample2(nil, 0, &in[0])...)
	badFlags[len(head)+1+8] = 0x82
	badType := append([]byte{2, 1}, pa.AppendSeries(nil, &in[0])...)
	badType[len(badType)-1] = 99
	badType = append(badType, 0)
	tests := []struct {
		name  string
		block []byte
		want  string
	}{
		{"empty", nil, "unexpected end of block"},
		{"version", append([]byte{1}, good[1:]...), "unsupported block version 1"},
		{"truncated", good[:len(good)-1], "sample 2 at byte"},
		{"truncated series", good[:40], "series 0"},
		{"trailing", append(append([]byte{}, good...), 0), "trailing garbage"},
		{"huge series count", []byte{2, 0xff, 0xff, 0xff, 0xff, 0x0f}, "exceeds the remaining"},
		{"huge sample count", []byte{2, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}, "exceeds the remaining"},
		{"series index", badIndex, "series index"},
		{"sample flags", badFlags, "unknown sample flags"},
		{"datum type", badType, "unknown datum type 99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pa.DecodeBlock2(tt.block, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, pa.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed containing %q", err, tt.want)
			}
			var sc pa.BlockScanner
			var v pa.SampleView
			if err := sc.Reset(tt.block, nil); err == nil {
				for sc.Next(&v) {
				}
			}
			if sc.Err() == nil || !errors.Is(sc.Err(), pa.ErrMalformed) {
				t.Fatalf("scanner: err = %v, want ErrMalformed", sc.Err())
			}
		})
	}
}

// repeated returns n samples of s's series, 1 ns apart.
func repeated(s pa.Sample, n int) []pa.Sample {
	out := make([]pa.Sample, n)
	for i := range out {
		out[i] = s
		out[i].TimestampNs += int64(i)
	}
	return out
}

func TestBlockScannerLimits(t *testing.T) {
	tests := []struct {
		name    string
		samples []pa.Sample
		lim     pa.PageLimits
		what    string
	}{
		{"samples", repeated(fleet(1, 1)[0], 10), pa.PageLimits{MaxSamples: 9}, "samples"},
		{"fields", []pa.Sample{manyFields(9)}, pa.PageLimits{Sample: pa.Limits{MaxFields: 8}}, "fields"},
		{"bins", []pa.Sample{histogram(17)}, pa.PageLimits{Sample: pa.Limits{MaxHistogramBins: 16}}, "histogram bins"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			block := pa.AppendBlock2(nil, tt.samples)
			var sc pa.BlockScanner
			var v pa.SampleView
			if err := sc.Reset(block, &tt.lim); err == nil {
				for sc.Next(&v) {
				}
			}
			var le *pa.LimitError
			if !errors.As(sc.Err(), &le) || le.What != tt.what {
				t.Fatalf("err = %v, want a LimitError on %s", sc.Err(), tt.what)
			}
			// Just within the limits, the same block passes.
			if err := sc.Reset(block, nil); err != nil {
				t.Fatal(err)
			}
			for sc.Next(&v) {
			}
			if sc.Err() != nil {
				t.Fatal(sc.Err())
			}
		})
	}
	// More series than MaxSamples: refused before the table is read.
	var sc pa.BlockScanner
	err := sc.Reset(append([]byte{2, 200, 1}, make([]byte, 1000)...), &pa.PageLimits{MaxSamples: 100})
	var le *pa.LimitError
	if !errors.As(err, &le) || le.What != "series" {
		t.Fatalf("err = %v, want a LimitError on series", err)
	}
}

// TestBlockScannerAllocatesNothing: scanning a 10,000-sample page costs no
// allocation once the scanner has seen a block that large.
func TestBlockScannerAllocatesNothing(t *testing.T) {
	in := append(sampletest.EveryDatumType(1), sampletest.NewFleet(500).Append(nil, 10_000, 1)...)
	block := pa.AppendBlock2(nil, in)
	lim := &pa.PageLimits{MaxSamples: 20_000}
	var sc pa.BlockScanner
	var v pa.SampleView
	n := 0
	allocs := testing.AllocsPerRun(20, func() {
		n = 0
		if sc.Reset(block, lim) != nil {
			t.Fatal(sc.Err())
		}
		for sc.Next(&v) {
			if pa.ValidateSampleView("x:y", &v, pa.Limits{}) != nil {
				n = -1 << 30
			}
			n++
		}
	})
	if sc.Err() != nil || n != len(in) {
		t.Fatalf("scanned %d of %d: %v", n, len(in), sc.Err())
	}
	if allocs != 0 {
		t.Fatalf("%.1f allocations per block of %d samples, want 0", allocs, len(in))
	}
}

// TestValidateSampleViewMatchesValidate: the series checked once plus each
// value checked in place refuse exactly what Validate refuses.
func TestValidateSampleViewMatchesValidate(t *testing.T) {
	in := sampletest.EveryDatumType(1)
	base := in[0]
	with := func(d pa.Datum) pa.Sample { s := base; s.Metric = pa.Named{Name: "m"}; s.Datum = d; return s }
	in = append(in,
		with(pa.Datum{Type: pa.DatumI8, Int: 128}),
		with(pa.Datum{Type: pa.DatumI16, Int: -40000}),
		with(pa.Datum{Type: pa.DatumI32, Int: 1 << 40}),
		with(pa.Datum{Type: pa.DatumU8, Uint: 256}),
		with(pa.Datum{Type: pa.DatumU16, Uint: 1 << 20}),
		with(pa.Datum{Type: pa.DatumU32, Uint: 1 << 40}),
		with(pa.Datum{Type: pa.DatumString, Str: strings.Repeat("x", 65<<10)}),
		with(pa.Datum{Type: pa.DatumBytes, Bytes: make([]byte, 65<<10)}),
		with(pa.Datum{Type: pa.DatumHistogramI64, HistI64: &pa.Histogram[int64]{}}),
		with(pa.Datum{Type: pa.DatumHistogramI64, HistI64: &pa.Histogram[int64]{Bins: []int64{1, 1}, Counts: []uint64{1, 2}}}),
		with(pa.Datum{Type: pa.DatumHistogramU64, HistU64: &pa.Histogram[uint64]{Bins: []uint64{2, 1}, Counts: []uint64{1, 2}}}),
		with(pa.Datum{Type: pa.DatumHistogramF64, HistF64: &pa.Histogram[float64]{Bins: []float64{0, math.NaN()}, Counts: []uint64{1, 2}}}),
		with(pa.Datum{Type: pa.DatumHistogramF64, HistF64: &pa.Histogram[float64]{Bins: []float64{1, 0}, Counts: []uint64{1, 2}}}),
		with(pa.Datum{Type: pa.DatumHistogramF64, HistF64: &pa.Histogram[float64]{Bins: make([]float64, 5000), Counts: make([]uint64, 5000)}}),
		func() pa.Sample { s := with(pa.Datum{Type: pa.DatumF64}); s.Target.Name = "Bad"; return s }(),
		func() pa.Sample {
			s := with(pa.Datum{Type: pa.DatumF64})
			s.Metric.Fields = base.Target.Fields[:1]
			return s
		}(),
	)
	block := pa.AppendBlock2(nil, in)
	var sc pa.BlockScanner
	if err := sc.Reset(block, nil); err != nil {
		t.Fatal(err)
	}
	var v pa.SampleView
	refused := 0
	for i := 0; sc.Next(&v); i++ {
		id, err := pa.DecodeSeries(sc.Series(v.Series).Raw)
		if err != nil {
			t.Fatal(err)
		}
		ss := id.Sample()
		got := pa.Validate(&ss, pa.Limits{})
		if got == nil {
			got = pa.ValidateSampleView(id.TimeseriesName(), &v, pa.Limits{})
		}
		want := pa.Validate(&in[i], pa.Limits{})
		if (got == nil) != (want == nil) {
			t.Fatalf("sample %d (%s): in place %v, Validate %v", i, in[i].Datum.Type, got, want)
		}
		if want != nil {
			refused++
			if got.Error() != want.Error() {
				t.Errorf("sample %d: message %q, Validate says %q", i, got, want)
			}
		}
	}
	if sc.Err() != nil || refused != 16 {
		t.Fatalf("refused %d, want 16: %v", refused, sc.Err())
	}
}

func TestPage2RoundTrip(t *testing.T) {
	in := pa.Page{Producer: "p", Incarnation: "inc", Token: "tok", Dropped: 7, More: true, Samples: block2Corpus()}
	b := pa.AppendPage2(nil, &in)
	var out pa.Page
	if err := pa.DecodePage(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Version != pa.PageVersion2 || out.Producer != "p" || out.Incarnation != "inc" || out.Token != "tok" || out.Dropped != 7 || !out.More || len(out.Samples) != len(in.Samples) {
		t.Fatalf("page head differs: %+v", out)
	}
	for i := range in.Samples {
		if !sameSample(&in.Samples[i], &out.Samples[i]) {
			t.Fatalf("sample %d differs", i)
		}
	}
	var head pa.Page
	block, off, err := pa.ScanPageHead(b, &head, nil)
	if err != nil || head.Version != 2 || head.Token != "tok" || !bytes.Equal(block, pa.AppendBlock2(nil, in.Samples)) || off+len(block) != len(b) {
		t.Fatalf("ScanPageHead: %v %+v", err, head)
	}
	// The decoder with limits refuses a v2 page over them, like a v1 page.
	sd := pa.NewSampleDecoder()
	sd.Limits = &pa.PageLimits{MaxSamples: len(in.Samples) - 1}
	if err := sd.DecodePage(b, &out); !errors.Is(err, pa.ErrPageLimit) {
		t.Fatalf("err = %v, want ErrPageLimit", err)
	}
	if _, _, err := pa.ScanPageHead(b, &head, &pa.PageLimits{MaxBytes: len(b) - 1}); !errors.Is(err, pa.ErrPageLimit) {
		t.Fatalf("err = %v, want ErrPageLimit", err)
	}
}

func TestPageRecord2(t *testing.T) {
	in := block2Corpus()
	block := pa.AppendBlock2(nil, in)
	for _, verified := range []bool{true, false} {
		rec := pa.AppendPageRecord2(nil, "prod", "inc", verified, block)
		v, prod, inc, ver, got, err := pa.ScanPageRecord(rec)
		if err != nil || v != 2 || prod != "prod" || inc != "inc" || ver != verified || !bytes.Equal(got, block) {
			t.Fatalf("ScanPageRecord = %d %q %q %v, %v", v, prod, inc, ver, err)
		}
		var pr pa.PageRecord
		for _, dec := range []func([]byte, *pa.PageRecord) error{pa.DecodePageRecord, pa.NewSampleDecoder().DecodePageRecord} {
			if err := dec(rec, &pr); err != nil || pr.Version != 2 || pr.Verified != verified || pr.Producer != "prod" || len(pr.Samples) != len(in) {
				t.Fatalf("DecodePageRecord: %v %+v", err, pr.Version)
			}
			for i := range in {
				if !sameSample(&in[i], &pr.Samples[i]) {
					t.Fatalf("sample %d differs", i)
				}
			}
		}
		if p, i, err := pa.PageRecordOrigin(rec); err != nil || p != "prod" || i != "inc" {
			t.Fatalf("PageRecordOrigin = %q %q %v", p, i, err)
		}
	}
	// Version 1 records still read.
	rec1 := pa.AppendPageRecord(nil, "prod", "inc", in)
	v, prod, _, ver, block1, err := pa.ScanPageRecord(rec1)
	if err != nil || v != 1 || prod != "prod" || ver || !bytes.Equal(block1, pa.AppendSamples(nil, in)) {
		t.Fatalf("ScanPageRecord(v1) = %d %q %v %v", v, prod, ver, err)
	}
	for _, bad := range [][]byte{nil, {2}, {2, 2}, {3, 0}} {
		if _, _, _, _, _, err := pa.ScanPageRecord(bad); !errors.Is(err, pa.ErrMalformed) {
			t.Fatalf("ScanPageRecord(%x): err = %v", bad, err)
		}
	}
}

func block2Seeds(f *testing.F) {
	f.Add(pa.AppendBlock2(nil, sampletest.EveryDatumType(1)))
	f.Add(pa.AppendBlock2(nil, sampletest.NewFleet(3).Append(nil, 30, 1)))
	f.Add(pa.AppendBlock2(nil, []pa.Sample{manyFields(9), histogram(17)}))
	f.Add([]byte{2, 0, 0})
	f.Add([]byte{2, 1, 0, 0, 0, 0, 11, 1, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 8})
}

// FuzzBlockScanner: the scanner never panics, agrees with DecodeBlock2, and
// with limits accepts nothing over them.
func FuzzBlockScanner(f *testing.F) {
	block2Seeds(f)
	lim := &pa.PageLimits{MaxSamples: 50, Sample: pa.Limits{MaxFields: 8, MaxHistogramBins: 16}}
	f.Fuzz(func(t *testing.T, block []byte) {
		var sc pa.BlockScanner
		var v pa.SampleView
		n := 0
		if sc.Reset(block, nil) == nil {
			for sc.Next(&v) {
				_ = pa.ValidateSampleView("x", &v, pa.Limits{})
				_ = v.Datum()
				if len(v.Raw) == 0 || v.Series >= sc.NumSeries() {
					t.Fatalf("bad view %+v", v)
				}
				n++
			}
		}
		decoded, err := pa.DecodeBlock2(block, nil)
		if (err == nil) != (sc.Err() == nil) || (err == nil && n != len(decoded)) {
			t.Fatalf("scanner (%d, %v) and DecodeBlock2 (%d, %v) disagree", n, sc.Err(), len(decoded), err)
		}
		if sc.Reset(block, lim) == nil {
			for sc.Next(&v) {
				if v.Hist.NBins > 16 {
					t.Fatalf("%d bins over the limit", v.Hist.NBins)
				}
			}
			if sc.NumSamples() > 50 || sc.NumSeries() > 50 {
				t.Fatal("accepted counts over the limits")
			}
		}
		for i := 0; sc.Err() == nil && i < sc.NumSeries(); i++ {
			id, err := pa.DecodeSeries(sc.Series(i).Raw)
			if err != nil {
				t.Fatalf("series %d passed Reset but does not decode: %v", i, err)
			}
			if n := len(id.Target.Fields) + len(id.Metric.Fields); n > 8 {
				t.Fatalf("series %d has %d fields, over the limit", i, n)
			}
		}
	})
}

// FuzzDecodeBlock2: what decodes survives re-encoding unchanged and can be
// validated and hashed.
func FuzzDecodeBlock2(f *testing.F) {
	block2Seeds(f)
	f.Fuzz(func(t *testing.T, block []byte) {
		samples, err := pa.DecodeBlock2(block, nil)
		if err != nil {
			if !errors.Is(err, pa.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := pa.DecodeBlock2(pa.AppendBlock2(nil, samples), nil)
		if err != nil || len(again) != len(samples) {
			t.Fatalf("re-encoded block does not decode: %v", err)
		}
		for i := range samples {
			if !sameSample(&samples[i], &again[i]) {
				t.Fatalf("sample %d changed across re-encoding", i)
			}
			_ = pa.Validate(&samples[i], pa.Limits{})
			_ = pa.TimeseriesKey(&samples[i])
		}
	})
}
