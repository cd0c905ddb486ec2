package producerapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// OldProducer wraps a producer's handler so it answers as a producer built
// before page version 2 did: it does not know the v2 and v3 media types,
// so it never sees them in Accept.
func OldProducer(h http.Handler) http.Handler {
	return stripAccept(h, pa.ContentTypeBinaryV3, pa.ContentTypeBinaryV2)
}

// stripAccept answers as a producer that knows none of types.
func stripAccept(h http.Handler, types ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var kept []string
	parts:
		for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
			for _, ct := range types {
				if strings.Contains(part, ct) {
					continue parts
				}
			}
			kept = append(kept, part)
		}
		r.Header.Set("Accept", strings.Join(kept, ","))
		h.ServeHTTP(w, r)
	})
}

func TestPageNegotiation(t *testing.T) {
	s, hs := newProducer(t, pa.ServerOptions{})
	if err := s.Add(fleet(10, 1)); err != nil {
		t.Fatal(err)
	}
	v3, v2, v1, js := pa.ContentTypeBinaryV3, pa.ContentTypeBinaryV2, pa.ContentTypeBinary, pa.ContentTypeJSON
	tests := []struct{ accept, want string }{
		{v3, v3},
		{v3 + ", " + v2 + ";q=0.95, " + v1 + ";q=0.9, " + js + ";q=0.5", v3}, // the client's Accept
		{v1 + ", " + v2 + ", " + v3, v3},                                     // ties go to v3
		{v3 + ";q=0.5, " + v2, v2},
		{v3 + ";q=0, " + v2 + ";q=0.1", v2},
		{"", js},
		{"*/*", js},
		{js, js},
		{v1, v1},
		{v2, v2},
		{v2 + ", " + v1 + ";q=0.9, " + js + ";q=0.5", v2},
		{v1 + ", " + js + ";q=0.5", v1},       // a collector before v2
		{v1 + ";q=0.5, " + v2 + ";q=0.4", v1}, // q-values win over preference
		{js + ", " + v1 + ", " + v2, v2},      // ties go to v2
		{v2 + ";q=0, " + v1 + ";q=0.1", v1},   // q=0: not acceptable
		{"APPLICATION/VND.HOLDFAST.PAGE.V2+BINARY", v2},
		{"text/html, " + v1 + " ; q=0.8", v1},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/v1/collectors/c/page", nil)
		if tt.accept != "" {
			req.Header.Set("Accept", tt.accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Content-Type"); got != tt.want {
			t.Errorf("Accept %q: served %q, want %q", tt.accept, got, tt.want)
		}
	}
}

// TestEveryClientAgainstEveryProducer: the new client (v3 first), a client
// asking v2 first (a collector before v3), v1 only and JSON, against a new
// producer and producers built before page versions 3 and 2 and one that
// speaks JSON only, all move every sample exactly in the best encoding
// both know; FetchRaw returns the block of a v2 or v3 page only.
func TestEveryClientAgainstEveryProducer(t *testing.T) {
	in := append(sampletest.EveryDatumType(-5), fleet(200, 1)...)
	clients := []struct {
		name    string
		json    bool
		version int
		best    int // the best page version it asks for (0: JSON)
	}{{"new", false, 0, 3}, {"v2-first", false, 2, 2}, {"v1-only", false, 1, 1}, {"json", true, 0, 0}}
	producers := []struct {
		name  string
		strip []string
		best  int
	}{
		{"new", nil, 3},
		{"v2-only", []string{pa.ContentTypeBinaryV3}, 2},
		{"v1-only", []string{pa.ContentTypeBinaryV3, pa.ContentTypeBinaryV2}, 1},
		{"json-only", []string{pa.ContentTypeBinaryV3, pa.ContentTypeBinaryV2, pa.ContentTypeBinary}, 0},
	}
	for _, pr := range producers {
		for _, cl := range clients {
			name := pr.name + " producer, " + cl.name + " client"
			s, err := pa.NewServer(pa.ServerOptions{ID: "p", Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(stripAccept(s.Handler(), pr.strip...))
			defer hs.Close()
			if err := s.Add(in); err != nil {
				t.Fatal(err)
			}
			c := &pa.Client{BaseURL: hs.URL, CollectorID: "c", JSON: cl.json, BinaryVersion: cl.version}
			want := min(pr.best, cl.best)
			var p pa.Page
			n, block, err := c.FetchRaw(context.Background(), pa.FetchRequest{Limit: 1000}, &p)
			if err != nil || n == 0 {
				t.Fatalf("%s: %v", name, err)
			}
			if (block != nil) != (want >= 2) || (want > 0 && p.Version != want) || (p.Session != 0) != (want == 3) {
				t.Fatalf("%s: block %v, version %d, session %x; want version %d", name, block != nil, p.Version, p.Session, want)
			}
			switch want {
			case 3:
				p.Samples, err = pa.DecodeBlock3(block, nil, nil) // a new session's page: self-contained
			case 2:
				p.Samples, err = pa.DecodeBlock2(block, nil)
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			check := func(p *pa.Page) {
				if len(p.Samples) != len(in) {
					t.Fatalf("%s: %d samples, want %d", name, len(p.Samples), len(in))
				}
				for i := range in {
					if !sameSample(&in[i], &p.Samples[i]) {
						t.Fatalf("%s: sample %d differs", name, i)
					}
				}
			}
			check(&p)
			// Fetch decodes whatever came (the same page again: no token;
			// for v3, in a new session, so self-contained).
			var q pa.Page
			if _, err := c.Fetch(context.Background(), pa.FetchRequest{Limit: 1000}, &q); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			check(&q)
		}
	}
}

// TestFetchOfAPageNamingEarlierIDsFails: Fetch decodes a v3 page only when
// it defines every id its samples name; a page of a continued session
// needs the collector's definitions, and Fetch says so instead of guessing.
func TestFetchOfAPageNamingEarlierIDsFails(t *testing.T) {
	s, hs := newProducer(t, pa.ServerOptions{Logger: quiet})
	v := newV3Sim(t, hs.URL, "c")
	s.Add(fleet(50, 1))
	v.get(v.req(false), true)
	s.Add(fleet(50, 2))
	var p pa.Page
	_, err := v.c.Fetch(context.Background(), v.req(true), &p)
	if !errors.Is(err, pa.ErrMalformed) {
		t.Fatalf("Fetch of a page naming earlier ids: %v, want ErrMalformed", err)
	}
	t.Log(err)
}

// TestPageV2ByteLimit: a v2 page is cut to max_bytes measured in its own
// encoding (series entries counted once), and holds more samples than a v1
// page of the same bound; a new session's v3 page as many as v2.
func TestPageV2ByteLimit(t *testing.T) {
	s, hs := newProducer(t, pa.ServerOptions{})
	samples := sampletest.NewFleet(5).Append(nil, 110, 1)
	for round := 0; round < 40; round++ { // the same 110 series again and again
		samples = append(samples, sampletest.NewFleet(5).Append(nil, 110, int64(round+2)*10_000_000_000)...)
	}
	if err := s.Add(samples); err != nil {
		t.Fatal(err)
	}
	const maxBytes = 64 << 10
	got := map[int]int{}
	for _, version := range []int{1, 2, 0} { // v1, v2, v3
		c := &pa.Client{BaseURL: hs.URL, CollectorID: "c" + string(rune('0'+version)), BinaryVersion: version}
		var p pa.Page
		n, err := c.Fetch(context.Background(), pa.FetchRequest{Limit: 10_000, MaxBytes: maxBytes}, &p)
		if err != nil {
			t.Fatal(err)
		}
		if n > maxBytes || !p.More {
			t.Fatalf("version %d: page of %d bytes (more %v), limit %d", version, n, p.More, maxBytes)
		}
		got[p.Version] = len(p.Samples)
	}
	// v3 defines each series once as v2 does; its head has 9 bytes more
	// (the session, the first id).
	if got[2] <= 2*got[1] || got[3] < got[2]-1 {
		t.Fatalf("a %d-byte v2 page holds %d samples, v1 %d, v3 %d: want v2 more than twice v1, v3 as many as v2 less one",
			maxBytes, got[2], got[1], got[3])
	}
	t.Logf("samples in %d bytes: v1 %d, v2 %d, v3 %d", maxBytes, got[1], got[2], got[3])
}

// TestBinaryPagesAnnounceTheirLength: a binary page larger than net/http's
// chunking buffer is sent with its Content-Length, so the collector reads
// it into one buffer of that size rather than growing one.
func TestBinaryPagesAnnounceTheirLength(t *testing.T) {
	s, hs := newProducer(t, pa.ServerOptions{})
	if err := s.Add(fleet(2000, 1)); err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{pa.ContentTypeBinaryV3, pa.ContentTypeBinaryV2} {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/v1/collectors/c"+ct[len(ct)-9:len(ct)-7]+"/page?limit=2000", nil)
		req.Header.Set("Accept", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || len(body) < 8<<10 {
			t.Fatalf("%s: status %d, %d bytes; want a page of at least 8 KiB", ct, resp.StatusCode, len(body))
		}
		if resp.ContentLength != int64(len(body)) {
			t.Errorf("%s: Content-Length %d for a body of %d bytes", ct, resp.ContentLength, len(body))
		}
	}
}
