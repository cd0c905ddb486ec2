package producerapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// OldProducer wraps a producer's handler so it answers as a producer built
// before page version 2 did: it does not know the v2 media type, so it
// never sees it in Accept.
func OldProducer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var kept []string
		for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
			if !strings.Contains(part, pa.ContentTypeBinaryV2) {
				kept = append(kept, part)
			}
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
	v2, v1, js := pa.ContentTypeBinaryV2, pa.ContentTypeBinary, pa.ContentTypeJSON
	tests := []struct{ accept, want string }{
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

// TestEveryClientAgainstEveryProducer: the new client (v2 first), a client
// asking v1 only (an old collector), and a JSON client, against a new
// producer and one built before page version 2, all move every sample
// exactly; FetchRaw returns the block only for a v2 page.
func TestEveryClientAgainstEveryProducer(t *testing.T) {
	in := append(sampletest.EveryDatumType(-5), fleet(200, 1)...)
	clients := []struct {
		name    string
		json    bool
		version int
	}{{"new", false, 0}, {"v1-only", false, 1}, {"json", true, 0}}
	for _, old := range []bool{false, true} {
		for _, cl := range clients {
			s, err := pa.NewServer(pa.ServerOptions{ID: "p"})
			if err != nil {
				t.Fatal(err)
			}
			h := s.Handler()
			if old {
				h = OldProducer(h)
			}
			hs := httptest.NewServer(h)
			defer hs.Close()
			if err := s.Add(in); err != nil {
				t.Fatal(err)
			}
			c := &pa.Client{BaseURL: hs.URL, CollectorID: "c", JSON: cl.json, BinaryVersion: cl.version}
			wantV2 := !old && !cl.json && cl.version == 0
			var p pa.Page
			n, block, err := c.FetchRaw(context.Background(), pa.FetchRequest{Limit: 1000}, &p)
			if err != nil || n == 0 {
				t.Fatalf("old=%v %s: %v", old, cl.name, err)
			}
			if (block != nil) != wantV2 || (p.Version == 2) != wantV2 {
				t.Fatalf("old=%v %s: block %v, version %d; want v2 %v", old, cl.name, block != nil, p.Version, wantV2)
			}
			if block != nil {
				p.Samples, err = pa.DecodeBlock2(block, nil)
				if err != nil {
					t.Fatal(err)
				}
			}
			check := func(p *pa.Page) {
				if len(p.Samples) != len(in) {
					t.Fatalf("old=%v %s: %d samples, want %d", old, cl.name, len(p.Samples), len(in))
				}
				for i := range in {
					if !sameSample(&in[i], &p.Samples[i]) {
						t.Fatalf("old=%v %s: sample %d differs", old, cl.name, i)
					}
				}
			}
			check(&p)
			// Fetch decodes whatever came (the same page again: no token).
			var q pa.Page
			if _, err := c.Fetch(context.Background(), pa.FetchRequest{Limit: 1000}, &q); err != nil {
				t.Fatal(err)
			}
			check(&q)
		}
	}
}

// TestPageV2ByteLimit: a v2 page is cut to max_bytes measured in its own
// encoding (series entries counted once), and holds more samples than a v1
// page of the same bound.
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
	for _, version := range []int{1, 0} {
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
	if got[2] <= 2*got[1] {
		t.Fatalf("a %d-byte v2 page holds %d samples, v1 %d: want more than twice", maxBytes, got[2], got[1])
	}
	t.Logf("samples in %d bytes: v1 %d, v2 %d", maxBytes, got[1], got[2])
}
