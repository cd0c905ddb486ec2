package collector

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
)

// fakeProducer serves one page of samples (which may be invalid: the
// library producer refuses those) in the encoding Accept asks for, as a
// producer built before page version 2 does when v1Only, and reports
// whether the page was acknowledged.
func fakeProducer(in []pa.Sample, v1Only bool) (http.Handler, *atomic.Bool) {
	acked := new(atomic.Bool)
	const token = "tok"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") == token {
			acked.Store(true)
		}
		if r.Method == http.MethodPost {
			return
		}
		p := pa.Page{Version: 1, Producer: "p", Incarnation: "inc"}
		if !acked.Load() {
			p.Token, p.Samples = token, in
		}
		accept := r.Header.Get("Accept")
		switch {
		case strings.Contains(accept, pa.ContentTypeBinaryV2) && !v1Only:
			w.Header().Set("Content-Type", pa.ContentTypeBinaryV2)
			w.Write(pa.AppendPage2(nil, &p))
		case strings.Contains(accept, pa.ContentTypeBinary):
			w.Header().Set("Content-Type", pa.ContentTypeBinary)
			w.Write(pa.AppendPage(nil, &p))
		default:
			b, _ := pa.MarshalPageJSON(&p)
			w.Header().Set("Content-Type", pa.ContentTypeJSON)
			w.Write(b)
		}
	}), acked
}

// mixedSamples is a fleet's samples with every kind of refusal among them:
// a value out of range, a histogram out of shape, an invalid series name,
// and a schema conflict (the same timeseries and field names as a good
// series, another field type).
func mixedSamples() []pa.Sample {
	in := sampletest.EveryDatumType(1)
	in = sampletest.NewFleet(20).Append(in, 400, 1_000)
	bad := func(i int, f func(*pa.Sample)) {
		s := in[i]
		s.TimestampNs += 1_000_000
		f(&s)
		in = append(in[:i], append([]pa.Sample{s}, in[i:]...)...)
	}
	bad(3, func(s *pa.Sample) { s.Datum = pa.Datum{Type: pa.DatumI8, Int: 1000} })
	bad(50, func(s *pa.Sample) {
		s.Datum = pa.Datum{Type: pa.DatumHistogramU64, StartTimeNs: 1, HistU64: &pa.Histogram[uint64]{Bins: []uint64{5, 1}, Counts: []uint64{1, 1}}}
	})
	bad(120, func(s *pa.Sample) { s.Target.Name = "Bad Name" })
	bad(300, func(s *pa.Sample) {
		s.Target.Fields = append([]pa.Field(nil), s.Target.Fields...)
		s.Target.Fields[0].Value = pa.I64Value(7) // same name, another type
	})
	return in
}

type walContent struct {
	samples  []pa.Sample
	payloads [][]byte
	versions []int
	verified []bool
}

func readWAL(t *testing.T, c *Collector) walContent {
	t.Helper()
	var out walContent
	r := c.wal.NewReader(1)
	for {
		_, rec, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		var pr pa.PageRecord
		if err := pa.DecodePageRecord(rec.Payload, &pr); err != nil {
			t.Fatal(err)
		}
		out.samples = append(out.samples, pr.Samples...)
		out.payloads = append(out.payloads, append([]byte(nil), rec.Payload...))
		out.versions = append(out.versions, pr.Version)
		out.verified = append(out.verified, pr.Verified)
	}
}

// drainOnce serves in from a fake producer (old: one built before page
// version 2) and drains it into a fresh collector whose client asks for
// clientVersion (0: the default, v2 first; 1: binary v1 only; -1: JSON).
func drainOnce(t *testing.T, in []pa.Sample, old bool, clientVersion int, maxRec int) *Collector {
	t.Helper()
	h, acked := fakeProducer(in, old)
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	c, err := Open(Options{DataDir: t.TempDir(), Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if maxRec > 0 {
		c.maxRec = maxRec
	}
	p := newProducer(ProducerConfig{ID: "p", URL: hs.URL, Interval: time.Second})
	client := c.newClient(p.config())
	if clientVersion < 0 {
		client.JSON = true
	} else {
		client.BinaryVersion = clientVersion
	}
	var token string
	var page pa.Page
	var buf []byte
	if err := c.drain(context.Background(), p, client, &token, &page, &buf); err != nil {
		t.Fatal(err)
	}
	if !acked.Load() {
		t.Fatal("the page was not acknowledged")
	}
	return c
}

func quarantined(t *testing.T, c *Collector) []quarantine.Entry {
	t.Helper()
	q, _, err := c.q.List(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestV2PageVerifiedInPlaceLikeV1: the same samples served as a v2 page
// (verified in place), as a v1 page (a v1-only client) and by a producer
// built before v2 end up the same in the WAL and in the quarantine (codes,
// reasons, payloads), and every record is a verified version 2 record.
func TestV2PageVerifiedInPlaceLikeV1(t *testing.T) {
	in := mixedSamples()
	type result struct {
		wal walContent
		q   []quarantine.Entry
	}
	var results []result
	for _, tc := range []struct {
		name    string
		old     bool
		version int
	}{{"v2", false, 0}, {"v1 client", false, 1}, {"old producer", true, 0}, {"json", false, -1}} {
		c := drainOnce(t, in, tc.old, tc.version, 0)
		r := result{readWAL(t, c), quarantined(t, c)}
		for i := range r.wal.versions {
			if r.wal.versions[i] != 2 || !r.wal.verified[i] {
				t.Fatalf("%s: record %d of version %d, verified %v", tc.name, i, r.wal.versions[i], r.wal.verified[i])
			}
		}
		if len(r.wal.samples)+len(r.q) != len(in) || len(r.q) != 4 {
			t.Fatalf("%s: %d samples in the WAL, %d quarantined, of %d", tc.name, len(r.wal.samples), len(r.q), len(in))
		}
		results = append(results, r)
	}
	want := results[1] // the v1 path, as before page version 2
	for k, r := range results {
		for i := range want.wal.samples {
			if !sameSample(&want.wal.samples[i], &r.wal.samples[i]) {
				t.Fatalf("result %d: WAL sample %d differs", k, i)
			}
		}
		for i := range want.q {
			a, b := want.q[i], r.q[i]
			if a.Code != b.Code || a.Reason != b.Reason || !bytes.Equal(a.Payload, b.Payload) {
				t.Fatalf("result %d: quarantine entry %d differs:\n%s %q\n%s %q", k, i, a.Code, a.Reason, b.Code, b.Reason)
			}
		}
	}
	codes := map[string]int{}
	for _, e := range want.q {
		codes[e.Code]++
	}
	if codes[quarantine.CodeInvalid] != 3 || codes[quarantine.CodeSchema] != 1 {
		t.Fatalf("quarantine codes %v", codes)
	}
}

// TestV2PageWrittenAsReceived: a v2 page whose samples are all valid is
// written as the record head followed by the very block the producer sent.
func TestV2PageWrittenAsReceived(t *testing.T) {
	in := sampletest.NewFleet(20).Append(sampletest.EveryDatumType(1), 300, 1)
	c := drainOnce(t, in, false, 0, 0)
	w := readWAL(t, c)
	if len(w.payloads) != 1 {
		t.Fatalf("%d records", len(w.payloads))
	}
	want := pa.AppendPageRecord2(nil, "p", "inc", true, pa.AppendBlock2(nil, in))
	if !bytes.Equal(w.payloads[0], want) {
		t.Fatal("the record is not the head plus the received block")
	}
}

// TestV2PageSplitWithOwnSeriesTables: a v2 page too large for one WAL
// record is written as several, each with only its own series, and a
// sample too large for any record is quarantined.
func TestV2PageSplitWithOwnSeriesTables(t *testing.T) {
	in := sampletest.NewFleet(100).Append(nil, 2000, 1)
	huge := in[700]
	huge.Metric = pa.Named{Name: "blob"}
	huge.Datum = pa.Datum{Type: pa.DatumBytes, Bytes: make([]byte, 8000)}
	in = append(in, huge)
	c := drainOnce(t, in, false, 0, 4096)
	w := readWAL(t, c)
	if len(w.samples) != 2000 || len(w.payloads) < 10 {
		t.Fatalf("%d samples in %d records", len(w.samples), len(w.payloads))
	}
	for i, p := range w.payloads {
		if len(p) > 4096 {
			t.Fatalf("record %d of %d bytes", i, len(p))
		}
	}
	for i := range in[:2000] {
		if !sameSample(&in[i], &w.samples[i]) {
			t.Fatalf("sample %d differs", i)
		}
	}
	q := quarantined(t, c)
	if len(q) != 1 || q[0].Code != quarantine.CodeTooLarge {
		t.Fatalf("quarantine %+v", q)
	}
}

// TestSeriesCacheRemembersGoodSeriesOnly: after a page, its good series are
// known and its refused ones are not.
func TestSeriesCacheRemembersGoodSeriesOnly(t *testing.T) {
	in := mixedSamples()
	c := drainOnce(t, in, false, 0, 0)
	block := pa.AppendBlock2(nil, in)
	var sc pa.BlockScanner
	if err := sc.Reset(block, nil); err != nil {
		t.Fatal(err)
	}
	ref := make([]bool, sc.NumSeries())
	for i := range ref {
		ref[i] = true
	}
	good := make([]bool, sc.NumSeries())
	if misses := c.series.lookup(&sc, ref, good); misses != 3 {
		t.Fatalf("%d series unknown after the page, want the 3 refused ones", misses)
	}
	// A full cache keeps what it holds (the first series that fit) rather
	// than start over or grow; it starts over once it has been full for
	// seriesCacheRefresh.
	small := seriesCache{max: 1000}
	all := make([]int, sc.NumSeries())
	for i := range all {
		all[i] = i
	}
	for round := 0; round < 2; round++ {
		small.add(&sc, all)
		if len(small.arena) > 1000 || len(small.m) == 0 {
			t.Fatalf("cache of %d bytes, %d entries, bound 1000", len(small.arena), len(small.m))
		}
		known := make([]bool, sc.NumSeries())
		small.lookup(&sc, ref, known)
		if !known[0] || known[len(known)-1] {
			t.Fatalf("round %d: first series known %v, last %v: want the first kept, the last not taken", round, known[0], known[len(known)-1])
		}
	}
	small.fullAt = small.fullAt.Add(-seriesCacheRefresh)
	small.add(&sc, all[len(all)-1:])
	known := make([]bool, sc.NumSeries())
	small.lookup(&sc, ref, known)
	if known[0] || !known[len(known)-1] {
		t.Fatalf("after the refresh: first series known %v, last %v: want it started over", known[0], known[len(known)-1])
	}
}

// sameSample compares samples bit for bit (floats by their bits).
func sameSample(a, b *pa.Sample) bool {
	x := pa.AppendSamples(nil, []pa.Sample{*a})
	y := pa.AppendSamples(nil, []pa.Sample{*b})
	return bytes.Equal(x, y) && math.Float64bits(a.Datum.F64) == math.Float64bits(b.Datum.F64)
}
