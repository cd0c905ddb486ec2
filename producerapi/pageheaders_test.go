package producerapi_test

import (
	"errors"
	"testing"

	pa "github.com/holdfast/holdfast/producerapi"
)

// TestTooLargePageIsNeverADeadEnd: a page over the client's body limit
// tells the client its sample count and token in either encoding (the
// X-Holdfast-* headers; a JSON body cannot be read in part), so a collector
// can ask for fewer samples, and acknowledge a page of one sample that can
// never fit. Before, a JSON page over the limit said neither (Samples -1,
// no token): the collector halved down to one sample and then failed
// forever.
func TestTooLargePageIsNeverADeadEnd(t *testing.T) {
	for _, json := range []bool{false, true} {
		name := "binary"
		if json {
			name = "json"
		}
		t.Run(name, func(t *testing.T) {
			s, hs := newProducer(t, pa.ServerOptions{Logger: quiet})
			huge := fleet(1, 1)[0]
			huge.Datum = pa.Datum{Type: pa.DatumBytes, Bytes: make([]byte, 40<<10)}
			samples := append(fleet(200, 2), huge)
			samples = append(samples, fleet(5, 1000)...)
			if err := s.Add(samples); err != nil {
				t.Fatal(err)
			}
			c := &pa.Client{BaseURL: hs.URL, CollectorID: "c", JSON: json, MaxPageBytes: 16 << 10}
			var p pa.Page
			req := pa.FetchRequest{Limit: 1000}
			tok, got, tooLarge := "", 0, 0
			for i := 0; i < 1000; i++ {
				req.Token = tok
				_, err := c.Fetch(t.Context(), req, &p)
				var tl *pa.PageTooLargeError
				if errors.As(err, &tl) {
					tooLarge++
					if tl.Samples != 1 || tl.Token == "" || tl.Incarnation != s.Incarnation() {
						t.Fatalf("too large page: %+v: want 1 sample, its token and incarnation", tl)
					}
					tok = tl.Token // acknowledge it: it can never fit
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				got += len(p.Samples)
				if p.Token == "" {
					break
				}
				tok = p.Token
			}
			if tooLarge != 1 || got != len(samples)-1 {
				t.Fatalf("got %d samples and %d too-large pages, want %d and 1", got, tooLarge, len(samples)-1)
			}
			if st := s.Stats(); st.Released != uint64(len(samples)) || st.Pending != 0 {
				t.Fatalf("stats %+v", st.BufferStats)
			}
		})
	}
}
