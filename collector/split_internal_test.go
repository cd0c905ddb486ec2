package collector

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/holdfast/holdfast/forwarder"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
)

// TestPageTooLargeForOneWALRecordIsSplit: a page whose samples do not fit in
// one WAL record is written as several records, and a single sample that
// fits in none is quarantined as too_large; the page is acknowledged and
// every other sample is in the WAL. (The WAL's record limit is lowered here
// from wal.MaxPayload, 64 MiB, to keep the test small.)
func TestPageTooLargeForOneWALRecordIsSplit(t *testing.T) {
	srv, err := pa.NewServer(pa.ServerOptions{ID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	var samples []pa.Sample
	for i := 0; i < 1000; i++ {
		samples = append(samples, pa.Sample{Target: pa.Named{Name: "t", Fields: []pa.Field{{Name: "i", Value: pa.I64Value(int64(i))}}},
			Metric: pa.Named{Name: "m"}, TimestampNs: int64(i + 1), Datum: pa.Datum{Type: pa.DatumF64, F64: 1}})
	}
	huge := samples[500]
	huge.Metric.Name = "blob"
	huge.Datum = pa.Datum{Type: pa.DatumBytes, Bytes: make([]byte, 8000)}
	samples = append(samples, huge)
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
	c.maxRec = 4096
	p := newProducer(ProducerConfig{ID: "p", URL: hs.URL, Interval: time.Second})
	client := &pa.Client{BaseURL: hs.URL, CollectorID: c.id}
	var token string
	var page pa.Page
	var buf []byte
	if err := c.drain(context.Background(), p, client, &token, &page, &buf); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Released != uint64(len(samples)) {
		t.Fatalf("producer stats %+v: not everything released", st.BufferStats)
	}
	r := c.wal.NewReader(1)
	written, records := 0, 0
	for {
		_, rec, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if len(rec.Payload) > c.maxRec {
			t.Fatalf("record of %d bytes over the limit of %d", len(rec.Payload), c.maxRec)
		}
		var pr pa.PageRecord
		if err := pa.DecodePageRecord(rec.Payload, &pr); err != nil {
			t.Fatal(err)
		}
		written += len(pr.Samples)
		records++
	}
	if written != 1000 || records < 2 {
		t.Fatalf("%d samples in %d WAL records, want 1000 in several", written, records)
	}
	q, _, err := c.q.List(0, 10)
	if err != nil || len(q) != 1 || q[0].Code != quarantine.CodeTooLarge {
		t.Fatalf("quarantine %+v %v", q, err)
	}
	if ss, err := q[0].Samples(); err != nil || len(ss) != 1 || len(ss[0].Datum.Bytes) != 8000 {
		t.Fatalf("quarantined sample %v %v", len(ss), err)
	}
}
