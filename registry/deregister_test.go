package registry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestDeleteCollectorMovesItsProducersNow: DELETE /v1/collectors/{id}
// needs the write token, moves the collector's producers to the live one
// at once (no lease expired: the clock does not move), survives a restart
// of the registry, and answers 404 for an unknown collector.
func TestDeleteCollectorMovesItsProducersNow(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	opts := Options{Now: clk.Now, AuthToken: "tok"}
	r, db := openTest(t, dir, opts)
	r.RegisterCollector(CollectorRegistration{ID: "a"})
	onA := map[string]bool{}
	for i := 0; i < 6; i++ {
		if a := mustRegisterProducer(t, r, prod(i)); a.Collectors[0].ID == "a" {
			onA[a.ID] = true
		}
	}
	r.RegisterCollector(CollectorRegistration{ID: "b"}) // sticky: a keeps all six
	if len(onA) != 6 {
		t.Fatalf("a serves %d producers, want 6", len(onA))
	}
	srv := httptest.NewServer(r.Handler(nil))
	defer srv.Close()
	anon := &Client{BaseURL: srv.URL}
	var ae *APIError
	if err := anon.DeregisterCollector(context.Background(), "a"); !errors.As(err, &ae) || ae.Code != http.StatusUnauthorized {
		t.Fatalf("deregistration without the token: %v", err)
	}
	c := &Client{BaseURL: srv.URL, Token: "tok"}
	if err := c.DeregisterCollector(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeregisterCollector(context.Background(), "a"); !errors.As(err, &ae) || ae.Code != http.StatusNotFound {
		t.Fatalf("second deregistration: %v, want 404", err)
	}
	check := func(r *Registry, when string) {
		t.Helper()
		items, err := (&Client{BaseURL: srv.URL}).ListAllAssigned(context.Background(), "b", 2)
		if err != nil || len(items) != 6 {
			t.Fatalf("%s: b serves %d producers (%v), want 6", when, len(items), err)
		}
		for _, ci := range r.Collectors() {
			if ci.ID == "a" {
				t.Fatalf("%s: collector a still listed", when)
			}
		}
	}
	check(r, "after DELETE")
	srv.Close()
	db.Close()
	r, db = openTest(t, dir, opts)
	defer db.Close()
	srv = httptest.NewServer(r.Handler(nil))
	defer srv.Close()
	check(r, "after a restart")
}
