package registry

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openTest(t *testing.T, dir string, opts Options) (*Registry, *pebble.DB) {
	t.Helper()
	db, err := state.Open(filepath.Join(dir, "state"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, db
}

func prod(i int) ProducerRegistration {
	return ProducerRegistration{ID: fmt.Sprintf("p%05d", i), Address: fmt.Sprintf("http://127.0.0.1:%d", 20000+i%40000), Interval: "10s", Kind: "demo"}
}

func mustRegisterProducer(t *testing.T, r *Registry, reg ProducerRegistration) ProducerAssignment {
	t.Helper()
	a, err := r.RegisterProducer(reg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func listAll(t *testing.T, r *Registry, collector string, pageSize int) []string {
	t.Helper()
	var ids []string
	token := ""
	for {
		p, err := r.ListAssigned(collector, token, pageSize)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			ids = append(ids, it.ID)
		}
		if p.NextPageToken == "" {
			return ids
		}
		token = p.NextPageToken
	}
}

func TestAssignmentBalancedStickyAndMovedOnDeath(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	r, db := openTest(t, t.TempDir(), Options{Now: clk.Now, CollectorLease: 10 * time.Second, ProducerLease: time.Hour})
	defer db.Close()
	for _, c := range []string{"c1", "c2", "c3"} {
		if _, err := r.RegisterCollector(CollectorRegistration{ID: c, Address: "http://127.0.0.1:9464"}); err != nil {
			t.Fatal(err)
		}
	}
	first := map[string]string{}
	for i := 0; i < 30; i++ {
		a := mustRegisterProducer(t, r, prod(i))
		if len(a.Collectors) != 1 {
			t.Fatalf("producer %d got %d collectors", i, len(a.Collectors))
		}
		first[a.ID] = a.Collectors[0].ID
	}
	for _, c := range []string{"c1", "c2", "c3"} {
		if n := len(listAll(t, r, c, 7)); n != 10 {
			t.Fatalf("%s has %d producers, want 10 (balanced)", c, n)
		}
	}
	// Renewals are sticky.
	for i := 0; i < 30; i++ {
		if a := mustRegisterProducer(t, r, prod(i)); a.Collectors[0].ID != first[a.ID] {
			t.Fatalf("renewal moved %s from %s to %s", a.ID, first[a.ID], a.Collectors[0].ID)
		}
	}
	// c3 stops renewing: its producers move to c1 and c2 once its lease ends.
	clk.advance(6 * time.Second)
	r.RegisterCollector(CollectorRegistration{ID: "c1"})
	r.RegisterCollector(CollectorRegistration{ID: "c2"})
	clk.advance(5 * time.Second)
	if _, cs, err := r.Expire(); err != nil || len(cs) != 1 || cs[0] != "c3" {
		t.Fatalf("Expire: %v %v", cs, err)
	}
	c1, c2 := listAll(t, r, "c1", 4), listAll(t, r, "c2", 4)
	if len(c1)+len(c2) != 30 || len(c1) < 14 || len(c2) < 14 {
		t.Fatalf("after c3 died: c1 %d, c2 %d producers", len(c1), len(c2))
	}
	if n := len(listAll(t, r, "c3", 4)); n != 0 {
		t.Fatalf("dead c3 still lists %d producers", n)
	}
	for id, was := range first {
		p, _ := r.Producer(id)
		if was != "c3" && p.Collectors[0] != was {
			t.Fatalf("%s moved from live %s", id, was)
		}
	}
}

func TestReplicas(t *testing.T) {
	r, db := openTest(t, t.TempDir(), Options{Replicas: 2})
	defer db.Close()
	mustRegisterProducer(t, r, prod(1)) // before any collector: assigned when they come
	for _, c := range []string{"a", "b", "c"} {
		r.RegisterCollector(CollectorRegistration{ID: c})
	}
	for i := 2; i < 12; i++ {
		a := mustRegisterProducer(t, r, prod(i))
		if len(a.Collectors) != 2 || a.Collectors[0].ID == a.Collectors[1].ID {
			t.Fatalf("replicas: %+v", a.Collectors)
		}
	}
	if p, _ := r.Producer(prod(1).ID); len(p.Collectors) != 2 {
		t.Fatalf("a producer registered before any collector got %v", p.Collectors)
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	r, db := openTest(t, dir, Options{})
	before1, before2 := populate(t, r)
	db.Close()
	r, db = openTest(t, dir, Options{})
	defer db.Close()
	wantAsBefore(t, r, before1, before2)
}

// populate registers collectors c1 and c2 and 50 producers, deletes
// prod(7) and adds a schema; it returns what c1 and c2 list.
func populate(t *testing.T, r *Registry) (before1, before2 []string) {
	t.Helper()
	for _, c := range []CollectorRegistration{{ID: "c1", Address: "http://127.0.0.1:1"}, {ID: "c2", Address: "http://127.0.0.1:2"}} {
		if _, err := r.RegisterCollector(c); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 50; i++ {
		mustRegisterProducer(t, r, prod(i))
	}
	if err := r.DeleteProducer(prod(7).ID); err != nil {
		t.Fatal(err)
	}
	if err := r.AddSchemas([]pa.TimeseriesSchema{{Name: "a:b", DatumType: pa.DatumF64, Version: 1}}); err != nil {
		t.Fatal(err)
	}
	return listAll(t, r, "c1", 9), listAll(t, r, "c2", 9)
}

// wantAsBefore checks a reopened registry against what the one before held:
// collectors c1 and c2 listing before1 and before2 (49 producers between
// them), prod(7) deleted, one schema.
func wantAsBefore(t *testing.T, r *Registry, before1, before2 []string) {
	t.Helper()
	if a, b := listAll(t, r, "c1", 9), listAll(t, r, "c2", 9); strings.Join(a, ",") != strings.Join(before1, ",") || strings.Join(b, ",") != strings.Join(before2, ",") {
		t.Fatalf("assignments after reopening: %d and %d producers, want %d and %d as answered", len(a), len(b), len(before1), len(before2))
	}
	if len(before1)+len(before2) != 49 {
		t.Fatalf("%d producers listed, want 49", len(before1)+len(before2))
	}
	if _, err := r.Producer(prod(7).ID); err == nil {
		t.Fatal("a deleted producer came back")
	}
	if len(r.Collectors()) != 2 || len(r.Schemas()) != 1 {
		t.Fatalf("collectors %v schemas %v", r.Collectors(), r.Schemas())
	}
}

func TestProducerLeaseExpires(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	r, db := openTest(t, t.TempDir(), Options{Now: clk.Now, ProducerLease: 10 * time.Second, CollectorLease: time.Hour})
	defer db.Close()
	r.RegisterCollector(CollectorRegistration{ID: "c"})
	mustRegisterProducer(t, r, prod(1))
	mustRegisterProducer(t, r, prod(2))
	clk.advance(8 * time.Second)
	mustRegisterProducer(t, r, prod(2)) // renews; prod(1) does not
	clk.advance(3 * time.Second)
	ps, _, err := r.Expire()
	if err != nil || len(ps) != 1 || ps[0] != prod(1).ID {
		t.Fatalf("Expire: %v %v", ps, err)
	}
	if got := listAll(t, r, "c", 10); len(got) != 1 || got[0] != prod(2).ID {
		t.Fatalf("collector lists %v", got)
	}
}

// TestPaginationUnderChurn: 10,000 producers listed in pages while others
// register and leave: every producer that exists throughout is listed
// exactly once (oximeter's issue 4498 reassigned only the first page).
func TestPaginationUnderChurn(t *testing.T) {
	// Both leases outlast the setup: 10,000 synced registrations took more
	// than the default 30 s collector lease on a loaded machine, and the
	// producers registered after it got no collector.
	r, db := openTest(t, t.TempDir(), Options{ProducerLease: time.Hour, CollectorLease: time.Hour})
	defer db.Close()
	r.RegisterCollector(CollectorRegistration{ID: "c"})
	const stable = 10_000
	for i := 0; i < stable; i++ {
		mustRegisterProducer(t, r, prod(2*i)) // even ids stay
	}
	hs := httptest.NewServer(r.Handler(nil))
	defer hs.Close()
	client := &Client{BaseURL: hs.URL}
	var stop atomic.Bool
	var churned atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // odd ids come and go during the listing
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			id := 2*(i%stable) + 1
			if i%3 == 2 {
				r.DeleteProducer(prod(id).ID)
			} else {
				r.RegisterProducer(prod(id))
			}
			churned.Add(1)
		}
	}()
	seen := map[string]int{}
	token := ""
	for pages := 0; ; pages++ {
		p, err := client.ListAssignedPage(context.Background(), "c", token, 250)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			seen[it.ID]++
		}
		if p.NextPageToken == "" {
			break
		}
		token = p.NextPageToken
		time.Sleep(time.Millisecond) // let the churn interleave
	}
	stop.Store(true)
	wg.Wait()
	for i := 0; i < stable; i++ {
		if n := seen[prod(2*i).ID]; n != 1 {
			t.Fatalf("stable producer %s listed %d times", prod(2*i).ID, n)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s listed %d times", id, n)
		}
	}
	t.Logf("listed %d producers (%d stable) while %d registrations/deletions ran", len(seen), stable, churned.Load())
	if churned.Load() < 100 {
		t.Fatalf("only %d changes during the listing: the test did not exercise churn", churned.Load())
	}
}

func TestHTTPErrors(t *testing.T) {
	r, db := openTest(t, t.TempDir(), Options{})
	defer db.Close()
	hs := httptest.NewServer(r.Handler(nil))
	defer hs.Close()
	do := func(method, path, body string) int {
		req, _ := http.NewRequest(method, hs.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/v1/producers", `{"id":"p1","address":"http://127.0.0.1:1","interval":"10s"}`, 200},
		{"POST", "/v1/producers", `{"id":"bad id","address":"http://127.0.0.1:1","interval":"10s"}`, 400},
		{"POST", "/v1/producers", `{"id":"p2","address":"ftp://x","interval":"10s"}`, 400},
		{"POST", "/v1/producers", `{"id":"p2","address":"http://127.0.0.1:1","interval":"forever"}`, 400},
		{"POST", "/v1/producers", `{"id":"p2","address":"http://127.0.0.1:1","interval":"10s","extra":1}`, 400},
		{"POST", "/v1/producers", `{not json`, 400},
		{"POST", "/v1/producers", `{"id":"` + strings.Repeat("x", 70<<10) + `"}`, 413},
		{"GET", "/v1/producers/p1", "", 200},
		{"GET", "/v1/producers/nope", "", 404},
		{"PATCH", "/v1/producers/p1", `{"interval":"5s"}`, 200},
		{"PATCH", "/v1/producers/p1", `{"address":"nope"}`, 400},
		{"PATCH", "/v1/producers/nope", `{"interval":"5s"}`, 404},
		{"DELETE", "/v1/producers/p1", "", 200},
		{"DELETE", "/v1/producers/p1", "", 404},
		{"POST", "/v1/collectors", `{"id":"c1","address":"http://127.0.0.1:9464"}`, 200},
		{"GET", "/v1/collectors/c1/producers?limit=0", "", 400},
		{"GET", "/v1/collectors/c1/producers?limit=x", "", 400},
		{"GET", "/v1/collectors/c1/producers?page_token=%21%21", "", 400},
		{"GET", "/v1/collectors/c1/producers?page_token=" + encodeToken("c2", "p1"), "", 400},
		{"POST", "/v1/timeseries-schema", `[{"timeseries_name":"a:b","fields":[],"datum_type":11,"version":1}]`, 200},
		{"POST", "/v1/timeseries-schema", `[{"timeseries_name":"a:b","fields":[],"datum_type":5,"version":1}]`, 409},
		{"GET", "/v1/timeseries-schema", "", 200},
		{"PUT", "/v1/producers", "", 405},
		{"GET", "/nope", "", 404},
	}
	for _, tt := range tests {
		if got := do(tt.method, tt.path, tt.body); got != tt.want {
			t.Errorf("%s %s %.40s = %d, want %d", tt.method, tt.path[:min(len(tt.path), 60)], tt.body, got, tt.want)
		}
	}
	_ = bytes.MinRead
}
