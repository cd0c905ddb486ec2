package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// TestListCollectorsPaginated: GET /v1/collectors?limit=N&page_token=T pages
// through every collector with its load, sorted by id, like
// GET /v1/producers; a collector registered during the listing past the
// cursor is listed once; without parameters the answer is the bare array of
// before; bad limits and foreign tokens are 400.
func TestListCollectorsPaginated(t *testing.T) {
	r, db := openTest(t, t.TempDir(), Options{ProducerLease: time.Hour, CollectorLease: time.Hour})
	defer db.Close()
	for i := 0; i < 25; i++ {
		if _, err := r.RegisterCollector(CollectorRegistration{ID: fmt.Sprintf("c%02d", i), Address: "http://127.0.0.1:9464"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i++ {
		mustRegisterProducer(t, r, prod(i))
	}
	hs := httptest.NewServer(r.Handler(nil))
	defer hs.Close()
	c := &Client{BaseURL: hs.URL}
	ctx := context.Background()
	var ids []string
	load, pages, token := 0, 0, ""
	for {
		p, err := c.ListCollectorsPage(ctx, token, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range p.Items {
			if !it.Live || it.Address == "" {
				t.Fatalf("item %+v", it)
			}
			ids = append(ids, it.ID)
			load += it.Producers
		}
		if pages == 1 {
			// Registered mid-listing, after the cursor: listed once.
			if _, err := r.RegisterCollector(CollectorRegistration{ID: "c99", Address: "http://127.0.0.1:9465"}); err != nil {
				t.Fatal(err)
			}
		}
		if p.NextPageToken == "" {
			break
		}
		token = p.NextPageToken
	}
	if len(ids) != 26 || !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != 26 || pages != 3 || load != 100 {
		t.Fatalf("%d collectors in %d pages, load %d (sorted %v): %v", len(ids), pages, load, slices.IsSorted(ids), ids)
	}

	// The answer before pagination stays for clients written against it.
	resp, err := http.Get(hs.URL + "/v1/collectors")
	if err != nil {
		t.Fatal(err)
	}
	var all []CollectorInfo
	err = json.NewDecoder(resp.Body).Decode(&all)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(all) != 26 {
		t.Fatalf("unpaginated: %d %v, %d collectors", resp.StatusCode, err, len(all))
	}

	producersPage, err := c.ListProducersPage(ctx, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	assignedPage, err := c.ListAssignedPage(ctx, "c00", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"!!", producersPage.NextPageToken, assignedPage.NextPageToken} {
		var ae *APIError
		if _, err := c.ListCollectorsPage(ctx, tok, 10); !errors.As(err, &ae) || ae.Code != 400 {
			t.Errorf("token %q: %v", tok, err)
		}
	}
	for _, q := range []string{"limit=0", "limit=10001", "limit=x"} {
		resp, err := http.Get(hs.URL + "/v1/collectors?" + q)
		if err != nil || resp.StatusCode != 400 {
			t.Errorf("%s: %v %v", q, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
}
