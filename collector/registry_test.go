package collector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/state"
	"github.com/holdfast/holdfast/registry"
)

// fakeRegistry serves a fixed list of producers in pages of 2 and can be
// told to fail a given page.
type fakeRegistry struct {
	mu       sync.Mutex
	ids      []string
	failPage int
	listings int
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodPost && r.URL.Path == "/v1/collectors" {
		json.NewEncoder(w).Encode(registry.CollectorLease{ID: "c", LeaseSeconds: 30})
		return
	}
	page := 1
	if t := r.URL.Query().Get("page_token"); t != "" {
		page, _ = strconv.Atoi(t)
	}
	if page == 1 {
		f.listings++
	}
	if page == f.failPage {
		http.Error(w, `{"error":"injected failure"}`, http.StatusServiceUnavailable)
		return
	}
	var out registry.ProducerPage
	for _, id := range f.ids[min(len(f.ids), 2*(page-1)):min(len(f.ids), 2*page)] {
		out.Items = append(out.Items, registry.AssignedProducer{ID: id, Address: "http://127.0.0.1:1/" + id, Interval: "1h"})
	}
	if 2*page < len(f.ids) {
		out.NextPageToken = strconv.Itoa(page + 1)
	}
	json.NewEncoder(w).Encode(out)
}

func (f *fakeRegistry) set(ids []string, failPage int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids, f.failPage = ids, failPage
	return f.listings
}

func names(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("p%d", i))
	}
	return out
}

func assignedIDs(c *collector.Collector) string {
	var ids []string
	for _, p := range c.Assigned() {
		ids = append(ids, p.ID)
	}
	return strings.Join(ids, ",")
}

func runCollector(t *testing.T, opts collector.Options) (*collector.Collector, func()) {
	t.Helper()
	c, err := collector.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
			c.Close()
		}
	}
	t.Cleanup(stop)
	return c, stop
}

// TestListingFailureChangesNothing: a listing that fails at its third page
// leaves the collector's producers as they were (omicron issue 7124); the
// last complete assignment survives a restart with the registry gone.
func TestListingFailureChangesNothing(t *testing.T) {
	fake := &fakeRegistry{}
	fake.set(names(6), 0)
	hs := httptest.NewServer(fake)
	dataDir := t.TempDir()
	opts := collector.Options{DataDir: dataDir, CollectorID: "c", RegistryURL: hs.URL, RefreshInterval: 50 * time.Millisecond,
		RegistryPageSize: 2, DrainTimeout: time.Millisecond, Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}}
	c, stop := runCollector(t, opts)
	want := "p0,p1,p2,p3,p4,p5"
	waitFor(t, 5*time.Second, "the first assignment", func() (bool, string) { return assignedIDs(c) == want, assignedIDs(c) })

	// Now the registry would say 8 producers, but page 3 fails.
	before := fake.set(names(8), 3)
	waitFor(t, 5*time.Second, "several failed refreshes", func() (bool, string) {
		return fake.set(names(8), 3) >= before+5, ""
	})
	if got := assignedIDs(c); got != want {
		t.Fatalf("a failed listing changed the set to %s", got)
	}
	if st := c.Status(); st.Registry == nil || !strings.Contains(st.Registry.LastRefreshError, "page 3") {
		t.Fatalf("status does not show the failed refresh: %+v", st.Registry)
	}
	// Complete listings change it.
	fake.set(names(8), 0)
	want = "p0,p1,p2,p3,p4,p5,p6,p7"
	waitFor(t, 5*time.Second, "the new assignment", func() (bool, string) { return assignedIDs(c) == want, assignedIDs(c) })

	// Restart before quorum: the registry is gone, the cache is used.
	stop()
	hs.Close()
	c2, _ := runCollector(t, opts)
	if got := assignedIDs(c2); got != want {
		t.Fatalf("after a restart without the registry: %s, want the cached %s", got, want)
	}
}

// TestProducerThatStopsRenewingIsDropped: a producer registers once and never
// renews; after its lease it leaves the collector's set.
func TestProducerThatStopsRenewingIsDropped(t *testing.T) {
	db, err := state.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg, err := registry.Open(db, registry.Options{ProducerLease: 1500 * time.Millisecond, CollectorLease: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go reg.Serve(ctx, ln, nil)
	url := "http://" + ln.Addr().String()
	c, _ := runCollector(t, collector.Options{DataDir: t.TempDir(), CollectorID: "c", RegistryURL: url, RefreshInterval: 100 * time.Millisecond,
		DrainTimeout: time.Millisecond, Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}})
	waitFor(t, 5*time.Second, "the collector to register", func() (bool, string) { return len(reg.Collectors()) == 1, "" })
	client := &registry.Client{BaseURL: url}
	for _, id := range []string{"renews", "lapses"} {
		if _, err := client.RegisterProducer(ctx, registry.ProducerRegistration{ID: id, Address: "http://127.0.0.1:1", Interval: "1h"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "both producers assigned", func() (bool, string) { return assignedIDs(c) == "lapses,renews", assignedIDs(c) })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && assignedIDs(c) != "renews" {
		client.RegisterProducer(ctx, registry.ProducerRegistration{ID: "renews", Address: "http://127.0.0.1:1", Interval: "1h"})
		time.Sleep(200 * time.Millisecond)
	}
	if got := assignedIDs(c); got != "renews" {
		t.Fatalf("after the lease of the producer that stopped renewing: %s", got)
	}
}

// TestSlowListingDoesNotCostTheLease: a real registry whose producer
// listing answers only after the collector gave up on it (an overloaded
// registry, as one just restarted with the whole fleet renewing). The
// collector's lease must stay live throughout: before the fix, renewals ran
// in the same loop as the listing, so each listing held the next renewal
// back until the listing timed out, longer than the lease, and the registry
// expired a live collector and moved its producers (the flake of
// registry.TestRegistryDownLongerThanALease under CI load).
func TestSlowListingDoesNotCostTheLease(t *testing.T) {
	db, err := state.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const lease = 3 * time.Second
	reg, err := registry.Open(db, registry.Options{ProducerLease: time.Hour, CollectorLease: lease})
	if err != nil {
		t.Fatal(err)
	}
	h := reg.Handler(nil)
	// hs.Close waits for the hanging handlers (their requests are cancelled
	// by then); a WaitGroup here raced its Add against the deferred Wait.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/producers") {
			<-r.Context().Done() // answers only once the collector has given up
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer hs.Close()
	_, stop := runCollector(t, collector.Options{DataDir: t.TempDir(), CollectorID: "c", RegistryURL: hs.URL,
		RefreshInterval: 100 * time.Millisecond, RequestTimeout: 4 * time.Second, // each listing hangs 4 s (ResponseHeaderTimeout) > lease
		DrainTimeout: time.Millisecond, Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}})
	defer stop()
	waitFor(t, 10*time.Second, "the collector to register", func() (bool, string) { return len(reg.Collectors()) == 1, "" })
	// Three leases' worth of hanging listings; the registry's expiry runs
	// as Serve would run it.
	for end := time.Now().Add(3 * lease); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if _, gone, err := reg.Expire(); err != nil || len(gone) > 0 {
			t.Fatalf("the registry expired %v (err %v) while the collector was alive and only its listings were slow", gone, err)
		}
		if cs := reg.Collectors(); len(cs) != 1 || !cs[0].Live {
			t.Fatalf("collector not live at the registry: %+v", cs)
		}
	}
}
