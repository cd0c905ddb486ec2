package registry

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/promtest"
)

// TestMetrics over HTTP: the counters are there at 0 from start; a new
// producer and collector count as registrations (renewals do not), the
// gauges show producers per collector, and expired leases are counted.
func TestMetrics(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	reg := prometheus.NewRegistry()
	r, db := openTest(t, t.TempDir(), Options{Now: clk.Now, Registerer: reg, Gatherer: reg})
	defer db.Close()
	hs := httptest.NewServer(r.Handler(nil))
	defer hs.Close()
	promtest.WantLines(t, "fresh", promtest.Scrape(t, hs.URL),
		`holdfast_registry_registrations_total{kind="collector"} 0`,
		`holdfast_registry_registrations_total{kind="producer"} 0`,
		`holdfast_registry_leases_expired_total{kind="collector"} 0`,
		`holdfast_registry_leases_expired_total{kind="producer"} 0`,
		`holdfast_registry_producers 0`, `holdfast_registry_collectors 0`)
	if _, err := r.RegisterCollector(CollectorRegistration{ID: "c"}); err != nil {
		t.Fatal(err)
	}
	mustRegisterProducer(t, r, prod(1))
	mustRegisterProducer(t, r, prod(1)) // a renewal
	mustRegisterProducer(t, r, prod(2))
	promtest.WantLines(t, "registered", promtest.Scrape(t, hs.URL),
		`holdfast_registry_registrations_total{kind="collector"} 1`,
		`holdfast_registry_registrations_total{kind="producer"} 2`,
		`holdfast_registry_producers 2`, `holdfast_registry_collectors 1`,
		`holdfast_registry_assigned_producers{collector="c"} 2`)
	clk.advance(time.Hour)
	if _, _, err := r.Expire(); err != nil {
		t.Fatal(err)
	}
	promtest.WantLines(t, "expired", promtest.Scrape(t, hs.URL),
		`holdfast_registry_leases_expired_total{kind="collector"} 1`,
		`holdfast_registry_leases_expired_total{kind="producer"} 2`,
		`holdfast_registry_producers 0`, `holdfast_registry_collectors 0`)
}
