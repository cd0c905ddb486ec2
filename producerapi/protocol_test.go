package producerapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

func newProducer(t *testing.T, opts pa.ServerOptions) (*pa.Server, *httptest.Server) {
	t.Helper()
	if opts.ID == "" {
		opts.ID = "test-producer"
	}
	s, err := pa.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, hs
}

func fleet(n int, ts int64) []pa.Sample { return sampletest.NewFleet(7).Append(nil, n, ts) }

func fetch(t *testing.T, c *pa.Client, token string, limit int) pa.Page {
	t.Helper()
	var p pa.Page
	if _, err := c.Fetch(context.Background(), pa.FetchRequest{Token: token, Limit: limit}, &p); err != nil {
		t.Fatalf("Fetch(token=%q): %v", token, err)
	}
	return p
}

func TestPagesAndTokens(t *testing.T) {
	s, hs := newProducer(t, pa.ServerOptions{})
	if err := s.Add(fleet(25, 1000)); err != nil {
		t.Fatal(err)
	}
	a := &pa.Client{BaseURL: hs.URL, CollectorID: "a"}
	p1 := fetch(t, a, "", 10)
	if len(p1.Samples) != 10 || p1.Token == "" || !p1.More || p1.Incarnation != s.Incarnation() || p1.Producer != "test-producer" {
		t.Fatalf("first page: %d samples, token %q, more %v, incarnation %q", len(p1.Samples), p1.Token, p1.More, p1.Incarnation)
	}
	// Without a token (a restarted collector): the same page, unchanged.
	again := fetch(t, a, "", 10)
	if again.Token != p1.Token || again.Samples[0].TimestampNs != p1.Samples[0].TimestampNs || len(again.Samples) != 10 {
		t.Fatalf("re-serve without token changed the page")
	}
	// A stale or made-up token: the same page again, nothing released.
	for _, bad := range []string{"garbage", strings.Repeat("A", 43)} {
		if p := fetch(t, a, bad, 10); p.Token != p1.Token {
			t.Fatalf("token %q moved the cursor", bad)
		}
	}
	if st := s.Stats(); st.Released != 0 || st.Pending != 25 {
		t.Fatalf("after bad tokens: %+v", st.BufferStats)
	}
	// The right token acknowledges and gets the next page.
	p2 := fetch(t, a, p1.Token, 10)
	if p2.Token == p1.Token || p2.Samples[0].TimestampNs != p1.Samples[9].TimestampNs+1 {
		t.Fatalf("ack did not advance: %v", p2.Samples[0].TimestampNs)
	}
	if st := s.Stats(); st.Released != 10 || st.Pending != 15 {
		t.Fatalf("after the ack: %+v", st.BufferStats)
	}
	// The old token is stale now: the outstanding page (p2) comes back.
	if p := fetch(t, a, p1.Token, 10); p.Token != p2.Token {
		t.Fatal("a stale token moved the cursor")
	}
	// Ack-only releases without fetching; a second ack of it is refused.
	if ok, err := a.Ack(context.Background(), p2.Token); !ok || err != nil {
		t.Fatalf("ack-only: %v %v", ok, err)
	}
	if ok, err := a.Ack(context.Background(), p2.Token); ok || err != nil {
		t.Fatalf("second ack of the same token: %v %v", ok, err)
	}
	p3 := fetch(t, a, "", 10)
	if len(p3.Samples) != 5 || p3.More || p3.Samples[0].TimestampNs != p2.Samples[9].TimestampNs+1 {
		t.Fatalf("after ack-only: %d samples, more %v", len(p3.Samples), p3.More)
	}
	empty := fetch(t, a, p3.Token, 10)
	if len(empty.Samples) != 0 || empty.Token != "" {
		t.Fatalf("empty page: %+v", empty)
	}
	if st := s.Stats(); st.Released != 25 || st.Pending != 0 {
		t.Fatalf("at the end: %+v", st.BufferStats)
	}
}

func TestForeignAndOldIncarnationTokensReleaseNothing(t *testing.T) {
	s, hs := newProducer(t, pa.ServerOptions{Collectors: []string{"a", "b"}})
	s.Add(fleet(10, 1))
	a := &pa.Client{BaseURL: hs.URL, CollectorID: "a"}
	b := &pa.Client{BaseURL: hs.URL, CollectorID: "b"}
	pa1, pb1 := fetch(t, a, "", 5), fetch(t, b, "", 5)
	// b's token presented by a is foreign: a gets its own page back.
	if p := fetch(t, a, pb1.Token, 5); p.Token != pa1.Token {
		t.Fatal("a foreign token released a's page")
	}
	if ok, _ := a.Ack(context.Background(), pb1.Token); ok {
		t.Fatal("ack with a foreign token succeeded")
	}
	// A token from a previous incarnation of the producer.
	old, oldHS := newProducer(t, pa.ServerOptions{ID: "test-producer"})
	old.Add(fleet(3, 1))
	oldPage := fetch(t, &pa.Client{BaseURL: oldHS.URL, CollectorID: "a"}, "", 5)
	if oldPage.Incarnation == pa1.Incarnation {
		t.Fatal("two servers share an incarnation")
	}
	if p := fetch(t, a, oldPage.Token, 5); p.Token != pa1.Token {
		t.Fatal("a token from another incarnation released a page")
	}
	// A sample leaves only when both collectors acknowledged it.
	fetch(t, a, pa1.Token, 5)
	if st := s.Stats(); st.Released != 0 || st.Pending != 10 {
		t.Fatalf("released before b acknowledged: %+v", st.BufferStats)
	}
	fetch(t, b, pb1.Token, 5)
	if st := s.Stats(); st.Released != 5 {
		t.Fatalf("after both acknowledged: %+v", st.BufferStats)
	}
}

func TestOverflowDropsAreCountedAndReported(t *testing.T) {
	s, hs := newProducer(t, pa.ServerOptions{MaxSamples: 20, Collectors: []string{"a", "b"}})
	a := &pa.Client{BaseURL: hs.URL, CollectorID: "a"}
	b := &pa.Client{BaseURL: hs.URL, CollectorID: "b"}
	s.Add(fleet(10, 0))
	held := fetch(t, a, "", 10) // a holds 0..9 in its outstanding page
	s.Add(fleet(25, 10))        // 35 samples for a bound of 20: the 15 oldest go
	st := s.Stats()
	if st.Dropped != 15 || st.Pending != 20 {
		t.Fatalf("stats after overflow: %+v", st.BufferStats)
	}
	// a's outstanding page is re-served unchanged even though its samples
	// left the buffer, and reports no drop: a lost 10..14.
	if p := fetch(t, a, "", 10); p.Token != held.Token || len(p.Samples) != 10 || p.Samples[0].TimestampNs != 0 {
		t.Fatal("outstanding page changed after overflow")
	}
	next := fetch(t, a, held.Token, 100)
	if next.Dropped != 5 || len(next.Samples) != 20 || next.Samples[0].TimestampNs != 15 {
		t.Fatalf("a's next page: dropped %d, %d samples from %d; want dropped 5, 20 from 15", next.Dropped, len(next.Samples), next.Samples[0].TimestampNs)
	}
	// b had been served nothing: it lost all 15.
	pb := fetch(t, b, "", 100)
	if pb.Dropped != 15 || len(pb.Samples) != 20 {
		t.Fatalf("b's page: dropped %d, %d samples", pb.Dropped, len(pb.Samples))
	}
	// The drop count is reported once.
	if p := fetch(t, b, pb.Token, 100); p.Dropped != 0 {
		t.Fatalf("drops reported twice: %d", p.Dropped)
	}
}

func TestBothEncodingsRoundTripExactly(t *testing.T) {
	for _, useJSON := range []bool{false, true} {
		s, hs := newProducer(t, pa.ServerOptions{})
		in := sampletest.EveryDatumType(-5)
		if err := s.Add(in); err != nil {
			t.Fatal(err)
		}
		p := fetch(t, &pa.Client{BaseURL: hs.URL, CollectorID: "c", JSON: useJSON}, "", 1000)
		if len(p.Samples) != len(in) {
			t.Fatalf("json=%v: %d samples, want %d", useJSON, len(p.Samples), len(in))
		}
		for i := range in {
			if !sameSample(&in[i], &p.Samples[i]) {
				t.Fatalf("json=%v: sample %d differs:\n in %+v\nout %+v", useJSON, i, in[i], p.Samples[i])
			}
		}
	}
}

func TestHTTPErrors(t *testing.T) {
	_, hs := newProducer(t, pa.ServerOptions{AuthToken: "s3cret"})
	get := func(method, path, auth string) *http.Response {
		req, _ := http.NewRequest(method, hs.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	tests := []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/v1/collectors/a/page", "", 401},
		{"GET", "/v1/collectors/a/page", "wrong", 401},
		{"GET", "/v1/collectors/a/page", "s3cret", 200},
		{"GET", "/v1/collectors/bad%20id/page", "s3cret", 400},
		{"GET", "/v1/collectors/a/page?limit=-1", "s3cret", 400},
		{"GET", "/v1/collectors/a/page?limit=x", "s3cret", 400},
		{"POST", "/v1/collectors/a/ack", "s3cret", 400},
		{"POST", "/v1/collectors/a/ack?token=nope", "s3cret", 409},
		{"GET", "/v1/collectors/a/page?token=" + strings.Repeat("x", 300), "s3cret", 400},
		{"DELETE", "/v1/collectors/a/page", "s3cret", 405},
		{"GET", "/nope", "s3cret", 404},
	}
	for _, tt := range tests {
		if got := get(tt.method, tt.path, tt.auth).StatusCode; got != tt.want {
			t.Errorf("%s %s (auth %q) = %d, want %d", tt.method, tt.path[:min(len(tt.path), 50)], tt.auth, got, tt.want)
		}
	}
	c := &pa.Client{BaseURL: hs.URL, CollectorID: "a"}
	var p pa.Page
	if _, err := c.Fetch(context.Background(), pa.FetchRequest{}, &p); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("client without the token: %v", err)
	}
}

// TestInvalidSamplesAreRejectedAtAdd: wherever invalid samples sit in a
// batch, the valid ones beside them are buffered, in order, and served; the
// invalid are counted and named in the error; the caller's slice is not
// changed.
func TestInvalidSamplesAreRejectedAtAdd(t *testing.T) {
	for _, tt := range []struct {
		name string
		bad  []bool
	}{
		{"none", []bool{false, false, false}},
		{"middle", []bool{false, true, false}},
		{"first", []bool{true, false, false}},
		{"last", []bool{false, false, true}},
		{"first and last", []bool{true, false, true}},
		{"all", []bool{true, true, true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newProducer(t, pa.ServerOptions{})
			batch := fleet(len(tt.bad), 0)
			var want []pa.Sample
			rejected := 0
			for i, bad := range tt.bad {
				if bad {
					batch[i].Metric.Name = "Bad"
					rejected++
				} else {
					want = append(want, batch[i])
				}
			}
			before := slices.Clone(batch)
			err := s.Add(batch)
			if (err != nil) != (rejected > 0) || (err != nil && !strings.Contains(err.Error(), "Bad")) {
				t.Fatalf("Add with %d invalid samples: %v", rejected, err)
			}
			if !reflect.DeepEqual(batch, before) {
				t.Fatal("Add changed the caller's slice")
			}
			// The caller may reuse its slice at once: the buffer must
			// hold copies, not the caller's array.
			for i := range batch {
				batch[i].TimestampNs, batch[i].Metric.Name = -1, "reused"
			}
			if st := s.Stats(); st.Rejected != uint64(rejected) || st.Pending != uint64(len(want)) {
				t.Fatalf("stats: rejected %d pending %d, want %d and %d", st.Rejected, st.Pending, rejected, len(want))
			}
			p, err := s.ServePage(context.Background(), pa.PageRequest{Collector: "c", Binary: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Samples) != len(want) {
				t.Fatalf("served %d samples, want %d", len(p.Samples), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(p.Samples[i], want[i]) {
					t.Fatalf("served sample %d is %+v, want %+v", i, p.Samples[i], want[i])
				}
			}
		})
	}
}

func FuzzDecodePage(f *testing.F) {
	p := pa.Page{Producer: "p", Incarnation: "i", Token: "t", Dropped: 3, More: true, Samples: sampletest.EveryDatumType(1)}
	f.Add(pa.AppendPage(nil, &p))
	f.Add([]byte("HFPG\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p pa.Page
		if err := pa.DecodePage(b, &p); err != nil {
			return
		}
		var q pa.Page
		if err := pa.DecodePage(pa.AppendPage(nil, &p), &q); err != nil || len(q.Samples) != len(p.Samples) || q.Token != p.Token {
			t.Fatalf("re-encoded page does not decode the same: %v", err)
		}
	})
}

func FuzzUnmarshalPageJSON(f *testing.F) {
	p := pa.Page{Producer: "p", Incarnation: "i", Token: "t", Samples: sampletest.EveryDatumType(1)}
	b, _ := pa.MarshalPageJSON(&p)
	f.Add(b)
	f.Add([]byte(`{"version":1,"samples":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p pa.Page
		if err := pa.UnmarshalPageJSON(b, &p); err != nil {
			return
		}
		out, err := pa.MarshalPageJSON(&p)
		if err != nil {
			t.Fatalf("decoded page does not encode: %v", err)
		}
		var q pa.Page
		if err := pa.UnmarshalPageJSON(out, &q); err != nil || len(q.Samples) != len(p.Samples) {
			t.Fatalf("re-encoded page does not decode: %v", err)
		}
		for i := range p.Samples {
			if !sameSample(&p.Samples[i], &q.Samples[i]) {
				t.Fatalf("sample %d changed across JSON re-encoding", i)
			}
		}
	})
}
