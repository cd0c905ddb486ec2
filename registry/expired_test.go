package registry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestExpiredProducersStayVisible over HTTP: producers whose lease ran out
// leave the live listing but are listed (paginated) at
// GET /v1/producers?state=expired with their last collectors and the time
// they expired, counted in holdfast_registry_producers_expired_total; the
// record survives a restart, goes when the producer registers again, and
// goes after the retention.
func TestExpiredProducersStayVisible(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	const lease = 10 * time.Second
	reg := prometheus.NewRegistry()
	opts := Options{Now: clk.Now, ProducerLease: lease, CollectorLease: time.Hour, ExpiredRetention: time.Hour, Registerer: reg, Gatherer: reg}
	r, db := openTest(t, dir, opts)
	mustRegisterCollector(t, r, "c1")
	for i := range 5 {
		mustRegisterProducer(t, r, prod(i))
	}
	clk.advance(lease / 2)
	for _, i := range []int{1, 3} { // p00001 and p00003 keep renewing
		mustRegisterProducer(t, r, prod(i))
	}
	clk.advance(lease/2 + time.Second)
	expiredAt := clk.Now()
	if ps, _, err := r.Expire(); err != nil || strings.Join(ps, ",") == "" || len(ps) != 3 {
		t.Fatalf("Expire: %v %v", ps, err)
	}
	hs := httptest.NewServer(r.Handler(nil))
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"\nholdfast_registry_producers_expired_total 3\n", "\nholdfast_registry_expired_producers 3\n"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("no %q on /metrics:\n%s", want, metrics)
		}
	}
	client := &Client{BaseURL: hs.URL}
	ctx := context.Background()
	listExpired := func() []string {
		t.Helper()
		var ids []string
		token := ""
		for {
			page, err := client.ListExpiredPage(ctx, token, 2) // paginated like the rest
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) > 2 {
				t.Fatalf("page of %d items with limit 2", len(page.Items))
			}
			for _, e := range page.Items {
				ids = append(ids, e.ID)
				if !e.Expired.Equal(expiredAt) || len(e.Collectors) != 1 || e.Collectors[0] != "c1" || e.Address == "" || !strings.Contains(e.Reason, "lease expired") {
					t.Errorf("expired record %+v", e)
				}
			}
			if token = page.NextPageToken; token == "" {
				return ids
			}
		}
	}
	if got := strings.Join(listExpired(), ","); got != "p00000,p00002,p00004" {
		t.Fatalf("expired listing %s", got)
	}
	live, err := client.ListProducersPage(ctx, "", 100)
	if err != nil || len(live.Items) != 2 {
		t.Fatalf("live listing %+v %v", live, err)
	}
	if e, err := client.ExpiredProducer(ctx, "p00002"); err != nil || e.ID != "p00002" {
		t.Fatalf("GET /v1/producers/p00002?state=expired: %+v %v", e, err)
	}
	var apiErr *APIError
	if _, err := client.ExpiredProducer(ctx, "p00001"); !errors.As(err, &apiErr) || apiErr.Code != http.StatusNotFound {
		t.Fatalf("a live producer is not expired: %v", err)
	}
	resp, err = http.Get(hs.URL + "/v1/producers?state=dead")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("state=dead: %d", resp.StatusCode)
	}

	// A restart keeps the records.
	db.Close()
	r, db = openTest(t, dir, Options{Now: clk.Now, ProducerLease: lease, CollectorLease: time.Hour, ExpiredRetention: time.Hour})
	defer func() { db.Close() }()
	hs.Config.Handler = r.Handler(nil)
	if got := strings.Join(listExpired(), ","); got != "p00000,p00002,p00004" {
		t.Fatalf("expired listing after a restart: %s", got)
	}
	// Registering again takes a producer off the list.
	mustRegisterProducer(t, r, prod(2))
	if got := strings.Join(listExpired(), ","); got != "p00000,p00004" {
		t.Fatalf("after p00002 came back: %s", got)
	}
	// After the retention the records go.
	clk.advance(59 * time.Minute)
	mustRegisterProducer(t, r, prod(1))
	mustRegisterProducer(t, r, prod(2))
	mustRegisterProducer(t, r, prod(3))
	r.Expire()
	if got := len(listExpired()); got != 2 {
		t.Fatalf("%d expired before the retention ran out, want 2", got)
	}
	clk.advance(2 * time.Minute)
	mustRegisterProducer(t, r, prod(1))
	mustRegisterProducer(t, r, prod(2))
	mustRegisterProducer(t, r, prod(3))
	r.Expire()
	if got := listExpired(); len(got) != 0 {
		t.Fatalf("expired records outlived the retention: %v", got)
	}
}

// TestExpiredProducersBounded: at most MaxExpired records are kept, the
// oldest dropped first.
func TestExpiredProducersBounded(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	r, db := openTest(t, t.TempDir(), Options{Now: clk.Now, ProducerLease: time.Second, MaxExpired: 3})
	defer db.Close()
	for i := range 5 {
		mustRegisterProducer(t, r, prod(i))
		clk.advance(2 * time.Second)
		if _, _, err := r.Expire(); err != nil {
			t.Fatal(err)
		}
	}
	page, err := r.ListExpired("", 100)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range page.Items {
		ids = append(ids, e.ID)
	}
	if got := strings.Join(ids, ","); got != "p00002,p00003,p00004" {
		t.Fatalf("kept %s, want the 3 newest", got)
	}
}

func mustRegisterCollector(t *testing.T, r *Registry, id string) {
	t.Helper()
	if _, err := r.RegisterCollector(CollectorRegistration{ID: id}); err != nil {
		t.Fatal(err)
	}
}
