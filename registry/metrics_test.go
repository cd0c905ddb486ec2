package registry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func scrapeRegistry(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

func wantLines(t *testing.T, when, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("%s: no %q in\n%s", when, l, text)
		}
	}
}

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
	wantLines(t, "fresh", scrapeRegistry(t, hs.URL),
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
	wantLines(t, "registered", scrapeRegistry(t, hs.URL),
		`holdfast_registry_registrations_total{kind="collector"} 1`,
		`holdfast_registry_registrations_total{kind="producer"} 2`,
		`holdfast_registry_producers 2`, `holdfast_registry_collectors 1`,
		`holdfast_registry_assigned_producers{collector="c"} 2`)
	clk.advance(time.Hour)
	if _, _, err := r.Expire(); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "expired", scrapeRegistry(t, hs.URL),
		`holdfast_registry_leases_expired_total{kind="collector"} 1`,
		`holdfast_registry_leases_expired_total{kind="producer"} 2`,
		`holdfast_registry_producers 0`, `holdfast_registry_collectors 0`)
}
