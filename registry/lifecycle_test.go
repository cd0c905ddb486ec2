package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	pa "github.com/holdfast/holdfast/producerapi"
)

// TestRestartMeasuresLeasesFromRestart: a registry down for ten leases
// comes back on the same Pebble directory; its first expiry must not remove
// anyone (issue 8 item 7: it expired and reshuffled the whole fleet). Those
// who renew within a lease of the restart keep their assignment; those who
// do not expire one lease after it.
func TestRestartMeasuresLeasesFromRestart(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	const lease = 10 * time.Second
	opts := Options{Now: clk.Now, ProducerLease: lease, CollectorLease: lease}
	r, db := openTest(t, dir, opts)
	for _, c := range []string{"c1", "c2", "c3"} {
		r.RegisterCollector(CollectorRegistration{ID: c})
	}
	before := map[string][]string{}
	for i := 0; i < 30; i++ {
		a := mustRegisterProducer(t, r, prod(i))
		for _, c := range a.Collectors {
			before[a.ID] = append(before[a.ID], c.ID)
		}
	}
	db.Close()
	clk.advance(10 * lease) // the outage
	r, db = openTest(t, dir, opts)
	defer db.Close()
	if ps, cs, err := r.Expire(); err != nil || len(ps)+len(cs) != 0 {
		t.Fatalf("first expiry after the restart removed producers %v and collectors %v (%v)", ps, cs, err)
	}
	// Everyone but c3 and p00029 renews within the grace lease.
	clk.advance(lease / 2)
	r.RegisterCollector(CollectorRegistration{ID: "c1"})
	r.RegisterCollector(CollectorRegistration{ID: "c2"})
	moved := 0
	for i := 0; i < 29; i++ {
		a := mustRegisterProducer(t, r, prod(i))
		var now []string
		for _, c := range a.Collectors {
			now = append(now, c.ID)
		}
		if !slices.Equal(now, before[a.ID]) {
			moved++
		}
	}
	if moved != 0 {
		t.Fatalf("%d producers were reassigned by a registry restart", moved)
	}
	if ps, cs, _ := r.Expire(); len(ps)+len(cs) != 0 {
		t.Fatalf("expired within the grace lease: %v %v", ps, cs)
	}
	clk.advance(lease/2 + time.Second) // past the grace lease: the silent ones go
	ps, cs, err := r.Expire()
	if err != nil || !slices.Equal(ps, []string{prod(29).ID}) || !slices.Equal(cs, []string{"c3"}) {
		t.Fatalf("after the grace lease expired producers %v, collectors %v (%v)", ps, cs, err)
	}
}

// TestListProducersPaginated: GET /v1/producers lists every producer once,
// sorted, in pages, over HTTP.
func TestListProducersPaginated(t *testing.T) {
	r, db := openTest(t, t.TempDir(), Options{ProducerLease: time.Hour})
	defer db.Close()
	r.RegisterCollector(CollectorRegistration{ID: "c"})
	for i := 0; i < 2500; i++ {
		mustRegisterProducer(t, r, prod(i))
	}
	hs := httptest.NewServer(r.Handler(nil))
	defer hs.Close()
	c := &Client{BaseURL: hs.URL}
	var ids []string
	token, pages := "", 0
	for {
		p, err := c.ListProducersPage(context.Background(), token, 700)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range p.Items {
			if len(it.Collectors) != 1 || it.Address == "" {
				t.Fatalf("item %+v", it)
			}
			ids = append(ids, it.ID)
		}
		if p.NextPageToken == "" {
			break
		}
		token = p.NextPageToken
	}
	if len(ids) != 2500 || !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != 2500 || pages != 4 {
		t.Fatalf("%d producers in %d pages (sorted %v)", len(ids), pages, slices.IsSorted(ids))
	}
	resp, err := http.Get(hs.URL + "/v1/producers?page_token=bad")
	if err != nil || resp.StatusCode != 400 {
		t.Fatalf("bad token: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}

// TestWritesNeedTheToken: with AuthToken set, every write is refused
// without it and changes nothing; reads stay open; a Client with the token
// works.
func TestWritesNeedTheToken(t *testing.T) {
	r, db := openTest(t, t.TempDir(), Options{AuthToken: "reg-secret"})
	defer db.Close()
	hs := httptest.NewServer(r.Handler(nil))
	defer hs.Close()
	ctx := context.Background()
	for _, tok := range []string{"", "wrong"} {
		c := &Client{BaseURL: hs.URL, Token: tok}
		var ae *APIError
		if _, err := c.RegisterCollector(ctx, CollectorRegistration{ID: "c"}); !errors.As(err, &ae) || ae.Code != 401 {
			t.Fatalf("collector registration with token %q: %v", tok, err)
		}
		if _, err := c.RegisterProducer(ctx, prod(1)); !errors.As(err, &ae) || ae.Code != 401 {
			t.Fatalf("producer registration with token %q: %v", tok, err)
		}
		if err := c.ReportSchemas(ctx, []pa.TimeseriesSchema{{Name: "a:b", DatumType: pa.DatumF64, Version: 1}}); !errors.As(err, &ae) || ae.Code != 401 {
			t.Fatalf("schema report with token %q: %v", tok, err)
		}
	}
	if len(r.Collectors()) != 0 || len(r.Schemas()) != 0 {
		t.Fatal("an unauthenticated write changed the registry")
	}
	good := &Client{BaseURL: hs.URL, Token: "reg-secret"}
	if _, err := good.RegisterCollector(ctx, CollectorRegistration{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := good.RegisterProducer(ctx, prod(1)); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{http.MethodDelete, http.MethodPatch} {
		req, _ := http.NewRequest(m, hs.URL+"/v1/producers/"+prod(1).ID, strings.NewReader(`{}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 401 {
			t.Fatalf("%s without the token: %v %v", m, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
	open := &Client{BaseURL: hs.URL} // reads need no token
	if ps, err := open.ListAllAssigned(ctx, "c", 10); err != nil || len(ps) != 1 {
		t.Fatalf("open read: %v %v", ps, err)
	}
}

// TestSchemaVersionsBatchesAndPages: 5,000 schemas (far more than one 64 KiB
// body) are reported in batches without a 413 and listed back in pages;
// two versions of one timeseries are both kept; only the same name and
// version with different fields is a conflict, and the rest of its report
// is stored anyway.
func TestSchemaVersionsBatchesAndPages(t *testing.T) {
	r, db := openTest(t, t.TempDir(), Options{})
	defer db.Close()
	hs := httptest.NewServer(r.Handler(nil))
	defer hs.Close()
	c := &Client{BaseURL: hs.URL}
	ctx := context.Background()
	var schemas []pa.TimeseriesSchema
	for i := 0; i < 5000; i++ {
		s := pa.TimeseriesSchema{Name: fmt.Sprintf("target_%04d:metric", i), DatumType: pa.DatumF64, Version: 1}
		for f := 0; f < 4; f++ {
			s.Fields = append(s.Fields, pa.FieldSchema{Name: fmt.Sprintf("field_%d", f), Type: pa.FieldString, Source: pa.SourceTarget})
		}
		schemas = append(schemas, s)
	}
	if err := c.ReportSchemas(ctx, schemas); err != nil {
		t.Fatalf("reporting 5,000 schemas: %v", err)
	}
	// A second version of one timeseries (a field added), reported by a newer producer.
	v2 := schemas[0]
	v2.Version = 2
	v2.Fields = append(slices.Clone(v2.Fields), pa.FieldSchema{Name: "zone", Type: pa.FieldString, Source: pa.SourceTarget})
	if err := c.ReportSchemas(ctx, []pa.TimeseriesSchema{v2}); err != nil {
		t.Fatalf("a new version: %v", err)
	}
	// A contradiction: version 1 of target_0001 with another datum type, in
	// a report with one new schema.
	bad := schemas[1]
	bad.DatumType = pa.DatumI64
	fresh := pa.TimeseriesSchema{Name: "fresh:one", DatumType: pa.DatumBool, Version: 1, Fields: []pa.FieldSchema{}}
	var ae *APIError
	if err := c.ReportSchemas(ctx, []pa.TimeseriesSchema{bad, fresh}); !errors.As(err, &ae) || ae.Code != http.StatusConflict || !strings.Contains(ae.Msg, "target_0001:metric version 1") {
		t.Fatalf("conflict: %v", err)
	}
	all, err := c.Schemas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5002 {
		t.Fatalf("listed %d schemas, want 5002", len(all))
	}
	if all[0].Name != "fresh:one" || all[1].Name != schemas[0].Name || all[1].Version != 1 || all[2].Version != 2 || len(all[2].Fields) != 5 {
		t.Fatalf("order or versions: %+v %+v %+v", all[0], all[1], all[2])
	}
	// A restart keeps every version.
	r2, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r2.Schemas()); n != 5002 {
		t.Fatalf("%d schemas after reopening", n)
	}
}

// TestRenewalWritesNothing: a renewal that changes nothing but the lease is
// not written to Pebble, so renewals do not queue behind each other's
// fsyncs under the registry's lock (on a loaded disk that queue outlasted
// the collectors' leases and moved producers; see
// TestRegistryDownLongerThanALease). A change is still written, and the
// lease a renewal gave is not lost by a restart: Open grants a full one.
func TestRenewalWritesNothing(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	const lease = 10 * time.Second
	opts := Options{Now: clk.Now, ProducerLease: lease, CollectorLease: lease}
	r, db := openTest(t, dir, opts)
	r.RegisterCollector(CollectorRegistration{ID: "c1"})
	mustRegisterProducer(t, r, prod(1))
	walBytes := func() uint64 { return db.Metrics().WAL.BytesIn }
	before := walBytes()
	for i := 0; i < 100; i++ {
		clk.advance(lease / 3)
		if _, err := r.RegisterCollector(CollectorRegistration{ID: "c1"}); err != nil {
			t.Fatal(err)
		}
		mustRegisterProducer(t, r, prod(1))
	}
	if got := walBytes(); got != before {
		t.Fatalf("100 plain renewals wrote %d bytes to Pebble's WAL", got-before)
	}
	if ps, cs, err := r.Expire(); err != nil || len(ps)+len(cs) != 0 {
		t.Fatalf("renewed registrations expired: producers %v, collectors %v (%v)", ps, cs, err)
	}
	changed := prod(1)
	changed.Address = "http://127.0.0.1:1"
	mustRegisterProducer(t, r, changed)
	if walBytes() == before {
		t.Fatal("a changed address was not written")
	}
	db.Close()
	clk.advance(lease / 2)
	r, db = openTest(t, dir, opts)
	defer db.Close()
	clk.advance(lease / 2) // past the stored leases, within the one Open grants
	if ps, cs, err := r.Expire(); err != nil || len(ps)+len(cs) != 0 {
		t.Fatalf("after a restart: producers %v, collectors %v expired (%v)", ps, cs, err)
	}
	p, err := r.Producer(prod(1).ID)
	if err != nil || p.Address != changed.Address || !slices.Equal(p.Collectors, []string{"c1"}) {
		t.Fatalf("after a restart: %+v, %v", p, err)
	}
}
