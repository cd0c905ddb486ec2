package producerapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestFetchSendsLimitsAndReportsTooLargePages: the request carries limit
// and max_bytes; a body over the client's limit is not read past it and
// comes back as a *PageTooLargeError naming the page's token and size in
// samples, read from its head.
func TestFetchSendsLimitsAndReportsTooLargePages(t *testing.T) {
	page := Page{Version: 1, Producer: "p", Incarnation: "inc", Token: "tok", Samples: []Sample{
		{Target: Named{Name: "t"}, Metric: Named{Name: "m"}, TimestampNs: 1, Datum: Datum{Type: DatumBytes, Bytes: make([]byte, 5000)}}}}
	var query string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		w.Header().Set("Content-Type", ContentTypeBinary)
		w.Write(AppendPage(nil, &page))
	}))
	defer hs.Close()
	c := &Client{BaseURL: hs.URL, CollectorID: "c", MaxPageBytes: 4096}
	var p Page
	_, err := c.Fetch(context.Background(), FetchRequest{Token: "prev", Limit: 7, MaxBytes: 100_000}, &p)
	var tl *PageTooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrPageTooLarge) {
		t.Fatalf("err %v, want a *PageTooLargeError", err)
	}
	if tl.Token != "tok" || tl.Samples != 1 || tl.Incarnation != "inc" || tl.Limit != 4096 {
		t.Fatalf("%+v", tl)
	}
	// max_bytes is capped by the client's own limit.
	if query != "limit=7&max_bytes=4096&token=prev" {
		t.Fatalf("query %q", query)
	}
	c.MaxPageBytes = 1 << 20
	if _, err := c.Fetch(context.Background(), FetchRequest{MaxBytes: 2048}, &p); err != nil || p.Token != "tok" || len(p.Samples) != 1 {
		t.Fatalf("within the body limit (though over max_bytes) a page is taken: %v %+v", err, p)
	}
	if query != "max_bytes=2048" {
		t.Fatalf("query %q", query)
	}
}

func FuzzDecodePageHead(f *testing.F) {
	f.Add(AppendPage(nil, &Page{Producer: "p", Incarnation: "i", Token: "t", Samples: []Sample{{Target: Named{Name: "t"}, Metric: Named{Name: "m"}}}}))
	f.Add([]byte("HFPG\x01"))
	// Version 3 pages as the producer encodes them: a new session's page,
	// and a continued session's page naming ids it does not define.
	ss := newSession()
	enc := page3Encoder{ss: ss}
	samples := []Sample{{Target: Named{Name: "t"}, Metric: Named{Name: "m"}, Datum: Datum{Type: DatumF64, F64: 1}},
		{Target: Named{Name: "t", Fields: []Field{{Name: "k", Value: StringValue("v")}}}, Metric: Named{Name: "m"}, Datum: Datum{Type: DatumU64, Uint: 2}}}
	for round := 0; round < 2; round++ {
		p := Page{Producer: "p", Incarnation: "i", Token: "t"}
		enc.reset(&p)
		for i := range samples {
			enc.add(&samples[i])
		}
		f.Add(enc.appendPage(nil, &p))
		ss.ack()
	}
	f.Add([]byte("HFPG\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Page
		n, err := decodePageHead(b, &p)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// -1: a v2 or v3 head whose definitions are not all there.
		if n < -1 || n > len(b) || (n == -1 && p.Version < PageVersion2) {
			t.Fatalf("count %d from %d bytes", n, len(b))
		}
		// A page that decodes whole agrees with its head.
		var full Page
		if DecodePage(b, &full) == nil && (full.Token != p.Token || len(full.Samples) != n || !bytes.Equal([]byte(full.Producer), []byte(p.Producer))) {
			t.Fatalf("head %+v (%d samples) disagrees with page %+v", p, n, full)
		}
	})
}

func FuzzPageRecordOrigin(f *testing.F) {
	f.Add(AppendPageRecord(nil, "producer", "inc", nil))
	f.Add([]byte{1, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, inc, err := PageRecordOrigin(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		var rec PageRecord
		if DecodePageRecord(b, &rec) == nil && (rec.Producer != p || rec.Incarnation != inc) {
			t.Fatalf("origin %q %q, record says %q %q", p, inc, rec.Producer, rec.Incarnation)
		}
	})
}
