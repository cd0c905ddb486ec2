package producerapi_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// manyFields returns a sample with n target fields.
func manyFields(n int) pa.Sample {
	s := fleet(1, 1)[0]
	s.Target.Fields, s.Metric.Fields = nil, nil
	for i := 0; i < n; i++ {
		s.Target.Fields = append(s.Target.Fields, pa.Field{Name: "f" + strconv.Itoa(i), Value: pa.U64Value(uint64(i))})
	}
	return s
}

func histogram(bins int) pa.Sample {
	s := fleet(1, 1)[0]
	h := &pa.Histogram[int64]{}
	for i := 0; i < bins; i++ {
		h.Bins = append(h.Bins, int64(i))
		h.Counts = append(h.Counts, 1)
	}
	s.Datum = pa.Datum{Type: pa.DatumHistogramI64, StartTimeNs: 1, HistI64: h}
	return s
}

// TestPageLimitsRefuseBeforeDecoding: a page beyond the limits the
// collector asked for is a *LimitError naming the count, in both encodings;
// a page at the limits decodes.
func TestPageLimitsRefuseBeforeDecoding(t *testing.T) {
	lim := &pa.PageLimits{MaxSamples: 10, MaxBytes: 64 << 10, Sample: pa.Limits{MaxFields: 8, MaxHistogramBins: 16}}
	tests := []struct {
		name    string
		samples []pa.Sample
		what    string // "" when the page must decode
	}{
		{"at the sample limit", fleet(10, 1), ""},
		{"one sample too many", fleet(11, 1), "samples"},
		{"fields at the limit", []pa.Sample{manyFields(8)}, ""},
		{"too many fields", []pa.Sample{manyFields(9)}, "fields"},
		{"bins at the limit", []pa.Sample{histogram(16)}, ""},
		{"too many bins", []pa.Sample{histogram(17)}, "histogram bins"},
		{"too many bytes", []pa.Sample{func() pa.Sample {
			s := fleet(1, 1)[0]
			s.Datum = pa.Datum{Type: pa.DatumBytes, Bytes: make([]byte, 65<<10)}
			return s
		}()}, "page bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := pa.Page{Producer: "p", Incarnation: "i", Token: "t", Samples: tt.samples}
			bin := pa.AppendPage(nil, &page)
			js, err := pa.MarshalPageJSON(&page)
			if err != nil {
				t.Fatal(err)
			}
			sd := pa.NewSampleDecoder()
			sd.Limits = lim
			for enc, decode := range map[string]func(*pa.Page) error{
				"binary": func(p *pa.Page) error { return sd.DecodePage(bin, p) },
				"json":   func(p *pa.Page) error { return sd.UnmarshalPageJSON(js, p) },
			} {
				var got pa.Page
				err := decode(&got)
				var le *pa.LimitError
				switch {
				case tt.what == "" && err != nil:
					t.Errorf("%s: %v", enc, err)
				case tt.what == "" && len(got.Samples) != len(tt.samples):
					t.Errorf("%s: %d samples, want %d", enc, len(got.Samples), len(tt.samples))
				case tt.what != "" && !errors.As(err, &le):
					t.Errorf("%s: err = %v, want a *LimitError", enc, err)
				case tt.what != "" && (le.What != tt.what || !errors.Is(err, pa.ErrPageLimit)):
					t.Errorf("%s: err = %v, want one about %s", enc, err, tt.what)
				}
			}
		})
	}
}

// hostilePage is a valid binary page of n minimal samples (15 bytes each:
// empty names, no fields, a timestamp, a bool datum).
func hostilePage(n int) []byte {
	b := pa.AppendPage(nil, &pa.Page{Producer: "p", Incarnation: "i", Token: "t"})
	b = b[:len(b)-1] // the empty block's count
	b = binary.AppendUvarint(b, uint64(n))
	one := []byte{0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, byte(pa.DatumBool), 0, 1}
	for i := 0; i < n; i++ {
		b = append(b, one...)
	}
	return b
}

func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHostilePageCostsNothingToRefuse reproduces the producer that answers
// limit=10000 with a 1,000,000-sample page: with limits, refusing it
// allocates a tiny fraction of its wire size (before the limits existed it
// was decoded whole, ~14x the wire size in Sample structs, which the
// unlimited decoder still shows and the test logs for contrast).
func TestHostilePageCostsNothingToRefuse(t *testing.T) {
	const n = 1_000_000
	b := hostilePage(n)
	var p pa.Page
	if err := pa.DecodePage(b, &p); err != nil || len(p.Samples) != n {
		t.Fatalf("the hostile page is not a valid page: %v", err)
	}
	unlimited := allocated(func() {
		var q pa.Page
		pa.DecodePage(b, &q)
	})
	p = pa.Page{}
	sd := pa.NewSampleDecoder()
	sd.Limits = &pa.PageLimits{MaxSamples: 10_000, MaxBytes: 64 << 20}
	var err error
	limited := allocated(func() { err = sd.DecodePage(b, &p) })
	if !errors.Is(err, pa.ErrPageLimit) {
		t.Fatalf("err = %v, want ErrPageLimit", err)
	}
	t.Logf("wire %d bytes; decoding without limits allocated %d bytes (%.1fx), refusing with limits %d bytes",
		len(b), unlimited, float64(unlimited)/float64(len(b)), limited)
	if limited > uint64(len(b))/100 {
		t.Fatalf("refusing a %d-byte page allocated %d bytes, more than 1%% of its wire size", len(b), limited)
	}
	// The same page in JSON: refused at sample 10,001 without building the array.
	samples := make([]byte, 0, n*8)
	samples = append(samples, `{"version":1,"producer":"p","incarnation":"i","token":"t","samples":[`...)
	one := `{"target":{"name":"","fields":[]},"metric":{"name":"","fields":[]},"timestamp_ns":1,"datum":{"type":"bool","value":true}}`
	for i := 0; i < n/10; i++ {
		if i > 0 {
			samples = append(samples, ',')
		}
		samples = append(samples, one...)
	}
	js := append(samples, "]}"...)
	// JSON cannot know the count before it has decoded that many samples,
	// so the refusal costs what MaxSamples samples cost: keep it small.
	sd.Limits.MaxSamples = 100
	limited = allocated(func() { err = sd.UnmarshalPageJSON(js, &p) })
	if !errors.Is(err, pa.ErrPageLimit) {
		t.Fatalf("JSON: err = %v, want ErrPageLimit", err)
	}
	t.Logf("JSON: wire %d bytes, refusing with limits allocated %d bytes", len(js), limited)
	if limited > uint64(len(js))/10 {
		t.Fatalf("JSON: refusing a %d-byte page allocated %d bytes, more than 10%% of its wire size", len(js), limited)
	}
}

// TestOversizedBodyIsNotRead: a producer streaming a 256 MiB body (with and
// without a Content-Length) costs the client at most a few times the
// MaxPageBytes it asked for, not the body's size; before, a 256 MiB page was
// read whole by default.
func TestOversizedBodyIsNotRead(t *testing.T) {
	const wire = 256 << 20
	chunk := bytes.Repeat([]byte{0}, 1<<20)
	for _, announce := range []bool{false, true} {
		t.Run(fmt.Sprintf("content-length=%v", announce), func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", pa.ContentTypeBinary)
				if announce {
					w.Header().Set("Content-Length", strconv.Itoa(wire))
				}
				w.Write(hostilePage(1000)[:1000])
				for sent := 1000; sent < wire; sent += len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						return // the client stopped reading
					}
				}
			}))
			defer hs.Close()
			const max = 1 << 20
			c := &pa.Client{BaseURL: hs.URL, CollectorID: "c", MaxPageBytes: max, Decoder: pa.NewSampleDecoder()}
			var err error
			var p pa.Page
			cost := allocated(func() { _, err = c.Fetch(context.Background(), pa.FetchRequest{Limit: 10}, &p) })
			if !errors.Is(err, pa.ErrPageLimit) {
				t.Fatalf("err = %v, want ErrPageLimit", err)
			}
			t.Logf("a %d-byte body refused after allocating %d bytes in all (limit %d)", wire, cost, max)
			// A body of unannounced length is read into a doubling buffer
			// (< 4x the limit in all); transport buffers come on top.
			if cost > 8*max {
				t.Fatalf("refusing the body allocated %d bytes, more than 8x the %d-byte limit", cost, max)
			}
		})
	}
}

// FuzzPageLimits: with limits, either decoder never panics, never accepts
// a page beyond them, and refuses only what is beyond them: a page the
// unlimited decoder takes that is within every limit decodes the same.
func FuzzPageLimits(f *testing.F) {
	p := pa.Page{Producer: "p", Incarnation: "i", Token: "t", Samples: sampletest.EveryDatumType(1)}
	f.Add(pa.AppendPage(nil, &p), false)
	js, _ := pa.MarshalPageJSON(&p)
	f.Add(js, true)
	f.Add(hostilePage(40), false)
	f.Add(pa.AppendPage(nil, &pa.Page{Token: "t", Samples: []pa.Sample{manyFields(5), histogram(9)}}), false)
	f.Fuzz(func(t *testing.T, b []byte, isJSON bool) {
		lim := &pa.PageLimits{MaxSamples: 8, MaxBytes: 4096, Sample: pa.Limits{MaxFields: 4, MaxHistogramBins: 8}}
		sd := pa.NewSampleDecoder()
		sd.Limits = lim
		decode, plain := sd.DecodePage, pa.DecodePage
		if isJSON {
			decode, plain = sd.UnmarshalPageJSON, pa.UnmarshalPageJSON
		}
		var limited, unlimited pa.Page
		lerr := decode(b, &limited)
		uerr := plain(b, &unlimited)
		if lerr == nil {
			if uerr != nil {
				t.Fatalf("accepted with limits, refused without: %v", uerr)
			}
			if len(b) > lim.MaxBytes || len(limited.Samples) > lim.MaxSamples || len(limited.Samples) != len(unlimited.Samples) {
				t.Fatalf("accepted %d bytes, %d samples (unlimited %d) beyond the limits", len(b), len(limited.Samples), len(unlimited.Samples))
			}
			for i := range limited.Samples {
				s := &limited.Samples[i]
				if len(s.Target.Fields)+len(s.Metric.Fields) > 4 || histBins(&s.Datum) > 8 {
					t.Fatalf("sample %d beyond the field or bin limit", i)
				}
			}
			return
		}
		if uerr == nil && !errors.Is(lerr, pa.ErrPageLimit) {
			t.Fatalf("refused with limits for a reason other than a limit: %v", lerr)
		}
		if uerr == nil && errors.Is(lerr, pa.ErrPageLimit) && within(&unlimited, len(b)) {
			t.Fatalf("refused a page within the limits: %v", lerr)
		}
	})
}

func histBins(d *pa.Datum) int {
	switch {
	case d.HistI64 != nil:
		return len(d.HistI64.Bins)
	case d.HistU64 != nil:
		return len(d.HistU64.Bins)
	case d.HistF64 != nil:
		return len(d.HistF64.Bins)
	}
	return 0
}

func within(p *pa.Page, size int) bool {
	if size > 4096 || len(p.Samples) > 8 {
		return false
	}
	for i := range p.Samples {
		s := &p.Samples[i]
		if len(s.Target.Fields)+len(s.Metric.Fields) > 4 || histBins(&s.Datum) > 8 {
			return false
		}
	}
	return true
}
