package producerapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// bodyWriter is a ResponseWriter that keeps the last body in a reused
// buffer, so a benchmark measures the producer, not the recorder.
type bodyWriter struct {
	h    http.Header
	body []byte
}

func (w *bodyWriter) Header() http.Header         { return w.h }
func (w *bodyWriter) WriteHeader(int)             {}
func (w *bodyWriter) Write(b []byte) (int, error) { w.body = append(w.body, b...); return len(b), nil }

// pageClient asks one producer handler for pages in one encoding, as a
// collector drained every interval does: each request acknowledges the
// previous page and, for v3, names the session and the ids it has.
type pageClient struct {
	h       http.Handler
	id      string
	accept  string
	token   string
	session uint64
	known   uint64
	w       bodyWriter
}

func (c *pageClient) serve(tb testing.TB) (samples int) {
	q := url.Values{"limit": {"10000"}, "max_bytes": {"268435456"}} // as Client asks (its default body limit)
	if c.token != "" {
		q.Set("token", c.token)
	}
	if c.session != 0 {
		q.Set("session", fmt.Sprintf("%016x", c.session))
		q.Set("known", fmt.Sprint(c.known))
	}
	r := httptest.NewRequest(http.MethodGet, "/v1/collectors/"+c.id+"/page?"+q.Encode(), nil)
	r.Header.Set("Accept", c.accept)
	c.w.body = c.w.body[:0]
	clear(c.w.h)
	c.h.ServeHTTP(&c.w, r)
	var p pa.Page
	block, _, err := pa.ScanPageHead(c.w.body, &p, nil)
	if err != nil {
		tb.Fatal(err)
	}
	c.token = p.Token
	var sc pa.BlockScanner
	if p.Version == pa.PageVersion3 {
		if err := sc.Reset3(block, nil); err != nil {
			tb.Fatal(err)
		}
		c.session, c.known = p.Session, sc.FirstID()+uint64(sc.NumSeries())
	} else if err := sc.Reset(block, nil); err != nil {
		tb.Fatal(err)
	}
	return sc.NumSamples()
}

// BenchmarkServePageV3VsV2: producer CPU per sample to serve a page of
// 10,000 samples of a fleet's 10,000 series (a producer drained every
// interval) in page v2 and in page v3 with an established session, in the
// same run. Reported: wall and CPU (process user + system) ns per sample
// of each, their ratios, and bytes per sample of each. Buffering the samples (Add) and collecting its garbage
// are outside the measure; the two encodings alternate in order.
func BenchmarkServePageV3VsV2(b *testing.B) {
	s, err := pa.NewServer(pa.ServerOptions{ID: "bench", Logger: quiet, MaxPageSamples: 10_000})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	v2 := &pageClient{h: h, id: "v2", accept: pa.ContentTypeBinaryV2, w: bodyWriter{h: http.Header{}}}
	v3 := &pageClient{h: h, id: "v3", accept: pa.ContentTypeBinaryV3, w: bodyWriter{h: http.Header{}}}
	const n = 10_000
	f := sampletest.NewFleet(n / 22)
	batch := f.Append(nil, n, 0)
	round := int64(0)
	next := func() {
		round++
		for i := range batch {
			batch[i].TimestampNs = round * 10_000_000_000
		}
		if err := s.Add(batch); err != nil {
			b.Fatal(err)
		}
	}
	// Establish both cursors and v3's session.
	next()
	v2.serve(b)
	v3.serve(b)
	var t2, t3 time.Duration
	var bytes2, bytes3, samples int
	b.ResetTimer()
	// CPU time of the process (user + system, GC included): on a shared
	// machine wall time also counts waiting for a core.
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var c2, c3 time.Duration
	timed := func(c *pageClient) (int, time.Duration) {
		start, cpu0 := time.Now(), cpu()
		got := c.serve(b)
		if c == v2 {
			c2 += cpu() - cpu0
		} else {
			c3 += cpu() - cpu0
		}
		return got, time.Since(start)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		next()
		runtime.GC() // the buffering's garbage is not the pages' cost
		b.StartTimer()
		// Alternate the order, so neither pays for the other's garbage.
		var got2, got3 int
		var d2, d3 time.Duration
		if i%2 == 0 {
			got2, d2 = timed(v2)
			got3, d3 = timed(v3)
		} else {
			got3, d3 = timed(v3)
			got2, d2 = timed(v2)
		}
		t2, t3 = t2+d2, t3+d3
		if got2 != n || got3 != n {
			b.Fatalf("pages of %d and %d samples, want %d", got2, got3, n)
		}
		bytes2, bytes3, samples = bytes2+len(v2.w.body), bytes3+len(v3.w.body), samples+n
	}
	b.ReportMetric(float64(t2.Nanoseconds())/float64(samples), "v2-ns/sample")
	b.ReportMetric(float64(t3.Nanoseconds())/float64(samples), "v3-ns/sample")
	b.ReportMetric(float64(t3)/float64(t2), "v3/v2")
	b.ReportMetric(float64(c2.Nanoseconds())/float64(samples), "v2-cpu-ns/sample")
	b.ReportMetric(float64(c3.Nanoseconds())/float64(samples), "v3-cpu-ns/sample")
	b.ReportMetric(float64(c3)/float64(c2), "v3/v2-cpu")
	b.ReportMetric(float64(bytes2)/float64(samples), "v2-B/sample")
	b.ReportMetric(float64(bytes3)/float64(samples), "v3-B/sample")
}

// TestServePageV3AllocatesNothingPerSample: once a session holds the
// series, serving a v3 page allocates a fixed number of times (the page's
// own slice and token, the request and its URL), not per sample or per
// series. The count is compared between pages of 1,000 and 10,000 samples
// rather than against a fixed number, because the fixed part varies with
// the race detector and with the runtime's own allocations: one allocation
// per series would add 409 to the difference, one per sample 9,000.
func TestServePageV3AllocatesNothingPerSample(t *testing.T) {
	small, large := allocationsToServePageV3(t, 1_000), allocationsToServePageV3(t, 10_000)
	if grew := large - small; grew > 50 {
		t.Fatalf("serving a v3 page allocated %.0f times at 1,000 samples and %.0f at 10,000: %.0f more, want at most 50 (none per sample or series)", small, large, grew)
	}
	t.Logf("allocations a page: %.0f at 1,000 samples, %.0f at 10,000", small, large)
}

// allocationsToServePageV3 is the mean number of allocations to serve a
// page of n samples over five pages, after three pages that establish the
// session and size the buffers.
func allocationsToServePageV3(t *testing.T, n int) float64 {
	t.Helper()
	s, err := pa.NewServer(pa.ServerOptions{ID: "allocs", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	v3 := &pageClient{h: s.Handler(), id: "v3", accept: pa.ContentTypeBinaryV3, w: bodyWriter{h: http.Header{}}}
	batch := sampletest.NewFleet(n/22).Append(nil, n, 0)
	round := int64(0)
	add := func() {
		round++
		for i := range batch {
			batch[i].TimestampNs = round
		}
		s.Add(batch)
	}
	for i := 0; i < 3; i++ {
		add()
		v3.serve(t)
	}
	var total float64
	for i := 0; i < 5; i++ {
		add()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		got := v3.serve(t)
		runtime.ReadMemStats(&after)
		if got != n {
			t.Fatalf("page of %d samples, want %d", got, n)
		}
		total += float64(after.Mallocs - before.Mallocs)
	}
	return total / 5
}
