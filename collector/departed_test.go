package collector_test

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/promtest"
	"github.com/holdfast/holdfast/internal/state"
	"github.com/holdfast/holdfast/registry"
)

func departedOf(st collector.Status) map[string]collector.DepartedProducer {
	out := map[string]collector.DepartedProducer{}
	for _, d := range st.Departed {
		out[d.ID] = d
	}
	return out
}

// TestDepartedProducersSayWhy over a real registry and the collector's
// /v1/status: a producer whose lease ran out at the registry, one that
// deregistered, a static one a reload dropped and an assigned one PUT
// /v1/producers dropped each leave a "departed" entry with their last
// status and the reason (expired, deregistered, removed_by_reload,
// removed_by_api), counted in holdfast_collector_producers_departed_total;
// a producer that comes back leaves the departed list.
func TestDepartedProducersSayWhy(t *testing.T) {
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
	metrics := prometheus.NewRegistry()
	c, _ := runCollector(t, collector.Options{DataDir: t.TempDir(), CollectorID: "c", RegistryURL: url, RefreshInterval: 100 * time.Millisecond,
		DrainTimeout: time.Millisecond, Registerer: metrics, Forwarder: forwarder.Options{Addr: "127.0.0.1:1"},
		Producers: []collector.ProducerConfig{{ID: "static1", URL: "http://127.0.0.1:1", Interval: time.Hour}}})
	admin := httptest.NewServer(c.AdminHandler(collector.AdminOptions{Gatherer: metrics}))
	defer admin.Close()
	adminAddr := strings.TrimPrefix(admin.URL, "http://")
	waitFor(t, 5*time.Second, "the collector to register", func() (bool, string) { return len(reg.Collectors()) == 1, "" })
	client := &registry.Client{BaseURL: url}
	register := func(id string) {
		t.Helper()
		if _, err := client.RegisterProducer(ctx, registry.ProducerRegistration{ID: id, Address: "http://127.0.0.1:1/" + id, Interval: "1h"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"renews", "lapses", "leaves"} {
		register(id)
	}
	waitFor(t, 5*time.Second, "the producers assigned", func() (bool, string) {
		return assignedIDs(c) == "lapses,leaves,renews", assignedIDs(c)
	})
	if err := client.DeleteProducer(ctx, "leaves"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetStatic(nil); err != nil { // a reload without static1
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "lapses expired and the reasons known", func() (bool, string) {
		register("renews")
		st, err := collectorStatus(adminAddr)
		if err != nil {
			return false, err.Error()
		}
		d := departedOf(st)
		return d["lapses"].Reason == collector.DepartedExpired && d["leaves"].Reason == collector.DepartedDeregistered &&
			d["static1"].Reason == collector.DepartedRemovedByReload && len(st.Producers) == 1, fmt.Sprintf("%+v", st.Departed)
	})
	st, _ := collectorStatus(adminAddr)
	d := departedOf(st)
	if l := d["lapses"]; !strings.Contains(l.Detail, "expired it at") || !strings.Contains(l.Detail, "last assigned to c") || l.URL != "http://127.0.0.1:1/lapses" || l.Left.IsZero() {
		t.Errorf("lapses: %+v", l)
	}
	text := promtest.Scrape(t, admin.URL)
	for _, want := range []string{
		`holdfast_collector_producers_departed_total{reason="expired"} 1`,
		`holdfast_collector_producers_departed_total{reason="deregistered"} 1`,
		`holdfast_collector_producers_departed_total{reason="removed_by_reload"} 1`,
		`holdfast_collector_producers_departed_total{reason="moved"} 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %s on /metrics", want)
		}
	}

	// lapses comes back: it is collected again and no longer departed.
	register("lapses")
	waitFor(t, 5*time.Second, "lapses back", func() (bool, string) {
		register("renews")
		st := c.Status()
		_, gone := departedOf(st)["lapses"]
		return assignedIDs(c) == "lapses,renews" && !gone, fmt.Sprintf("%s %+v", assignedIDs(c), st.Departed)
	})
}

// TestDepartedByAdminAPI: without a registry, a producer PUT /v1/producers
// no longer lists leaves with reason removed_by_api.
func TestDepartedByAdminAPI(t *testing.T) {
	c, _ := runCollector(t, collector.Options{DataDir: t.TempDir(), CollectorID: "c", DrainTimeout: time.Millisecond,
		Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}})
	if err := c.SetAssigned([]collector.ProducerConfig{{ID: "a", URL: "http://127.0.0.1:1/a"}, {ID: "b", URL: "http://127.0.0.1:1/b"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetAssigned([]collector.ProducerConfig{{ID: "a", URL: "http://127.0.0.1:1/a"}}); err != nil {
		t.Fatal(err)
	}
	st := c.Status()
	if len(st.Departed) != 1 || st.Departed[0].ID != "b" || st.Departed[0].Reason != collector.DepartedRemovedByAPI {
		t.Fatalf("departed %+v", st.Departed)
	}
}
