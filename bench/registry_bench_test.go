package bench

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/state"
	"github.com/holdfast/holdfast/registry"
)

// BenchmarkRegistry measures, over real HTTP on loopback against a registry
// with Pebble state (every change fsynced), the registrations per second it
// sustains with 1 and 16 concurrent clients, and the time for a collector to
// list 10,000 assigned producers in pages of 1,000.
func BenchmarkRegistry(b *testing.B) {
	db, err := state.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	r, err := registry.Open(db, registry.Options{ProducerLease: time.Hour, CollectorLease: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(r.Handler(nil))
	defer hs.Close()
	client := &registry.Client{BaseURL: hs.URL}
	ctx := context.Background()
	if _, err := client.RegisterCollector(ctx, registry.CollectorRegistration{ID: "c"}); err != nil {
		b.Fatal(err)
	}
	const n = 10_000
	register := func(workers int, offset int) float64 {
		start := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += workers {
					_, err := client.RegisterProducer(ctx, registry.ProducerRegistration{ID: fmt.Sprintf("p%06d", offset+i),
						Address: "http://127.0.0.1:9500", Interval: "10s"})
					if err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return n / time.Since(start).Seconds()
	}
	seq := register(1, 0)
	conc := register(16, n) // 20,000 producers registered in all
	// Renewals of the first 10,000 (the steady state of a fleet).
	renew := register(16, 0)
	start := time.Now()
	items, err := client.ListAllAssigned(ctx, "c", 1000)
	if err != nil || len(items) != 2*n {
		b.Fatalf("listing: %d items, %v", len(items), err)
	}
	list := time.Since(start)
	// The same listing of exactly 10,000.
	db2, _ := state.Open(b.TempDir(), nil)
	defer db2.Close()
	r2, _ := registry.Open(db2, registry.Options{ProducerLease: time.Hour, CollectorLease: time.Hour})
	r2.RegisterCollector(registry.CollectorRegistration{ID: "c"})
	for i := 0; i < n; i++ {
		r2.RegisterProducer(registry.ProducerRegistration{ID: fmt.Sprintf("p%06d", i), Address: "http://127.0.0.1:9500", Interval: "10s"})
	}
	hs2 := httptest.NewServer(r2.Handler(nil))
	defer hs2.Close()
	start = time.Now()
	items, err = (&registry.Client{BaseURL: hs2.URL}).ListAllAssigned(ctx, "c", 1000)
	if err != nil || len(items) != n {
		b.Fatalf("listing 10,000: %d, %v", len(items), err)
	}
	list10k := time.Since(start)
	b.ReportMetric(seq, "registrations/s_1client")
	b.ReportMetric(conc, "registrations/s_16clients")
	b.ReportMetric(renew, "renewals/s_16clients")
	b.ReportMetric(list10k.Seconds()*1000, "list_10k_ms")
	b.Logf("registrations/s: %.0f with 1 client, %.0f with 16; renewals/s with 16: %.0f; listing 10,000 producers in pages of 1,000: %v (20,000: %v)",
		seq, conc, renew, list10k.Round(time.Millisecond), list.Round(time.Millisecond))
}
