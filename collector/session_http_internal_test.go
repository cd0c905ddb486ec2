package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// TestV3SessionWithTheLibraryProducer: the collector's drain against the
// library producer over HTTP, page version 3. The first drain defines the
// fleet's series; the next defines none (its records are ~20 bytes a
// sample); a collector state that no longer matches the producer's (here
// it forgot an id) makes the producer start a new session, which the
// collector follows (new_session); a page that does not continue the
// session (rewritten by a proxy) makes the collector start over
// (mismatch) and the page comes again in a new session; a failed WAL append leaves the session
// as it was and the page served again in it is taken; a series refused for
// its schema has its samples quarantined on every page without a reset.
// Every sample is in the WAL exactly once.
//
// It needs the producer's and the client's side of page version 3
// (producerapi, helper P's branch): without them the pages are version 2
// and it skips.
func TestV3SessionWithTheLibraryProducer(t *testing.T) {
	srv, err := pa.NewServer(pa.ServerOptions{ID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	var tamper atomic.Bool // the next continuing v3 page claims a first id one too far
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if rec.Header().Get("Content-Type") == pa.ContentTypeBinaryV3 && tamper.Load() {
			var page pa.Page
			if block, off, err := pa.ScanPageHead(body, &page, nil); err == nil && len(block) > 1 {
				if first, n := binary.Uvarint(block[1:]); n > 0 && first > 0 {
					tamper.Store(false)
					b := binary.AppendUvarint(append(append([]byte(nil), body[:off]...), block[0]), first+1)
					body = append(b, block[1+n:]...)
				}
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	defer hs.Close()
	c, err := Open(Options{DataDir: t.TempDir(), Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := newProducer(ProducerConfig{ID: "p", URL: hs.URL, Interval: time.Second})
	c.m.initProducer("p")
	client := c.newClient(p.config())
	var token string
	var page pa.Page
	var buf []byte
	drain := func() error { return c.drain(context.Background(), p, client, &token, &page, &buf) }

	fleet := sampletest.NewFleet(200) // 4,400 series
	var want []pa.Sample
	conflicting := 0
	round := func(ts int64) []pa.Sample {
		in := fleet.Append(nil, 4400, ts)
		// A series whose field has another type than the fleet's schema.
		bad := in[0]
		bad.TimestampNs++
		bad.Target.Fields = append([]pa.Field(nil), bad.Target.Fields...)
		bad.Target.Fields[0].Value = pa.I64Value(7)
		if err := srv.Add(append(in, bad)); err != nil {
			t.Fatal(err)
		}
		conflicting++
		want = append(want, in...)
		return in
	}
	round(1_000)
	if err := drain(); err != nil {
		t.Fatal(err)
	}
	if p.sess.id == 0 {
		t.Skip("the producer or the client does not speak page version 3 (producerapi's side not merged)")
	}
	if len(p.sess.types) != 4401 {
		t.Fatalf("%d series in the session, want 4401", len(p.sess.types))
	}
	records := len(readWAL3(t, c).records)
	round(10_000_000_000)
	if err := drain(); err != nil {
		t.Fatal(err)
	}
	w := readWAL3(t, c)
	size := 0
	for _, r := range w.records[records:] {
		size += len(r)
	}
	if per := size / 4400; len(p.sess.types) != 4401 || per > 30 {
		t.Fatalf("second drain: %d series, %d record bytes a sample", len(p.sess.types), per)
	}
	t.Logf("steady record: %d bytes a sample", size/4400)

	// The collector's state no longer matches: the producer starts over.
	first := p.sess.id
	p.sess.types = p.sess.types[:len(p.sess.types)-1]
	round(20_000_000_000)
	if err := drain(); err != nil {
		t.Fatal(err)
	}
	if p.sess.id == first || testResets(c, "p", sessionNew) != 1 || len(p.sess.types) != 4401 {
		t.Fatalf("session %x (was %x), %d series, new_session resets %v", p.sess.id, first, len(p.sess.types), testResets(c, "p", sessionNew))
	}

	// A page that does not continue the session (a producer that lost
	// track, here a proxy that rewrites its first id): the collector drops
	// its state and asks again without a session; the producer serves the
	// page again, self-contained, in a new session.
	before := p.sess.id
	tamper.Store(true)
	round(25_000_000_000)
	if err := drain(); err != nil {
		t.Fatal(err)
	}
	if tamper.Load() || p.sess.id == before || testResets(c, "p", sessionMismatch) != 1 || len(p.sess.types) != 4401 {
		t.Fatalf("session %x (was %x), %d series, mismatch resets %v", p.sess.id, before, len(p.sess.types), testResets(c, "p", sessionMismatch))
	}

	// A failed WAL append: not taken, session unchanged, taken next time.
	second, n := p.sess.id, len(p.sess.types)
	failed := false
	c.wFault = func() error {
		if !failed {
			failed = true
			return errors.New("injected WAL failure")
		}
		return nil
	}
	round(30_000_000_000)
	if err := drain(); err == nil {
		t.Fatal("the failed append was not reported")
	}
	if p.sess.id != second || len(p.sess.types) != n {
		t.Fatalf("session %x/%d after a failed append, want %x/%d", p.sess.id, len(p.sess.types), second, n)
	}
	if err := drain(); err != nil {
		t.Fatal(err)
	}
	if p.sess.id != second {
		t.Fatalf("session %x after the page was taken again, want %x", p.sess.id, second)
	}
	if st := srv.Stats(); st.Released != uint64(len(want)+conflicting) {
		t.Fatalf("producer released %d of %d", st.Released, len(want)+conflicting)
	}
	got := readWAL3(t, c).samples
	sameSamples(t, "WAL", want, got)
	if q := quarantined(t, c); len(q) != conflicting {
		t.Fatalf("%d quarantined, want %d", len(q), conflicting)
	}
	for _, r := range []string{sessionDefsNeeded, sessionLimit} {
		if n := testResets(c, "p", r); n != 0 {
			t.Fatalf("%v resets for %s", n, r)
		}
	}
}
