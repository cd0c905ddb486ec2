package collector

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/forwarder"
	pa "github.com/holdfast/holdfast/producerapi"
)

// TestFailedQuarantineWriteIsNotAcknowledged: when the quarantine write of
// a page's refused samples fails, the page is not acknowledged (the producer
// keeps all of it, over real HTTP); once the store works again the page
// served again is taken, its refused sample quarantined, and released. The
// SIGKILL test cannot show this: the kill comes after the release.
func TestFailedQuarantineWriteIsNotAcknowledged(t *testing.T) {
	srv, err := pa.NewServer(pa.ServerOptions{ID: "p", Limits: pa.Limits{MaxFieldStringLen: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	var samples []pa.Sample
	for i := 0; i < 10; i++ {
		samples = append(samples, pa.Sample{Target: pa.Named{Name: "t", Fields: []pa.Field{{Name: "i", Value: pa.I64Value(int64(i))}}},
			Metric: pa.Named{Name: "m"}, TimestampNs: int64(i + 1), Datum: pa.Datum{Type: pa.DatumF64, F64: 1}})
	}
	samples[4].Target.Fields[0].Value = pa.StringValue(strings.Repeat("x", 8192)) // over the collector's default limit
	if err := srv.Add(samples); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c, err := Open(Options{DataDir: t.TempDir(), Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	broken := errors.New("quarantine write failed (test)")
	c.qFault = func() error { return broken }
	p := newProducer(ProducerConfig{ID: "p", URL: hs.URL, Interval: time.Second})
	client := &pa.Client{BaseURL: hs.URL, CollectorID: c.id}
	var token string
	var page pa.Page
	var buf []byte
	if err := c.drain(context.Background(), p, client, &token, &page, &buf); !errors.Is(err, broken) {
		t.Fatalf("drain: %v, want the quarantine's error", err)
	}
	if token != "" {
		t.Fatalf("token %q kept for acknowledgement after a failed quarantine write", token)
	}
	c.ackNow(context.Background(), client, &token)
	if st := srv.Stats(); st.Released != 0 || st.Pending != uint64(len(samples)) {
		t.Fatalf("producer %+v: the page was released although its refused sample is kept nowhere", st.BufferStats)
	}
	if st := c.q.Stats(); st.Entries != 0 {
		t.Fatalf("quarantine %+v", st)
	}
	c.qFault = nil
	if err := c.drain(context.Background(), p, client, &token, &page, &buf); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Released != uint64(len(samples)) {
		t.Fatalf("producer %+v after the store recovered", st.BufferStats)
	}
	if st := c.q.Stats(); st.Entries != 1 {
		t.Fatalf("quarantine %+v: want the refused sample", st)
	}
}
