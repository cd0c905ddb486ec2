package registry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/promutil"
)

// metrics are the registry's: counters of registrations and expired
// leases (both kinds at 0 from start), and gauges read from the state at
// every scrape (producers, live collectors, producers per collector).
type metrics struct {
	set           *promutil.Set
	registrations *prometheus.CounterVec
	expired       *prometheus.CounterVec
	// producersExpired counts producers removed for their lease: the
	// registry's "a producer died" signal (alert HoldfastProducerExpired).
	producersExpired prometheus.Counter
}

var (
	descProducers  = prometheus.NewDesc("holdfast_registry_producers", "Producers registered.", nil, nil)
	descCollectors = prometheus.NewDesc("holdfast_registry_collectors", "Collectors registered (live or not yet expired).", nil, nil)
	descAssigned   = prometheus.NewDesc("holdfast_registry_assigned_producers", "Producers assigned to each collector.", []string{"collector"}, nil)
	descExpired    = prometheus.NewDesc("holdfast_registry_expired_producers", "Expired producers still listed (GET /v1/producers?state=expired), within the retention.", nil, nil)
)

// stateCollector reads the registry's state at each scrape.
type stateCollector struct{ r *Registry }

func (s stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descProducers
	ch <- descCollectors
	ch <- descAssigned
	ch <- descExpired
}

func (s stateCollector) Collect(ch chan<- prometheus.Metric) {
	s.r.mu.Lock()
	producers, collectors, expired := len(s.r.producers), len(s.r.collectors), len(s.r.expired)
	load := make(map[string]int, len(s.r.collectors))
	for id := range s.r.collectors {
		load[id] = s.r.load[id] // a collector with none shows 0
	}
	s.r.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descProducers, prometheus.GaugeValue, float64(producers))
	ch <- prometheus.MustNewConstMetric(descCollectors, prometheus.GaugeValue, float64(collectors))
	ch <- prometheus.MustNewConstMetric(descExpired, prometheus.GaugeValue, float64(expired))
	for id, n := range load {
		ch <- prometheus.MustNewConstMetric(descAssigned, prometheus.GaugeValue, float64(n), id)
	}
}

func newMetrics(reg prometheus.Registerer, r *Registry) (*metrics, error) {
	m := &metrics{
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "holdfast_registry_registrations_total",
			Help: "New registrations (not renewals), by kind (producer, collector)."}, []string{"kind"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "holdfast_registry_leases_expired_total",
			Help: "Leases that ran out (the producer or collector was removed), by kind (producer, collector)."}, []string{"kind"}),
		producersExpired: prometheus.NewCounter(prometheus.CounterOpts{Name: "holdfast_registry_producers_expired_total",
			Help: "Producers removed because their lease ran out (each is listed at GET /v1/producers?state=expired for the retention)."}),
	}
	for _, k := range []string{"producer", "collector"} {
		m.registrations.WithLabelValues(k)
		m.expired.WithLabelValues(k)
	}
	var err error
	m.set, err = promutil.Register(reg, m.registrations, m.expired, m.producersExpired, stateCollector{r})
	return m, err
}
