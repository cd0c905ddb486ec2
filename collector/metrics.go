package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/offheap"
	"github.com/holdfast/holdfast/internal/promutil"
	"github.com/holdfast/holdfast/quarantine"
)

type metrics struct {
	set           *promutil.Set
	samples       *prometheus.CounterVec
	bytes         *prometheus.CounterVec
	pages         *prometheus.CounterVec
	errors        *prometheus.CounterVec
	producerDrops *prometheus.CounterVec
	restarts      *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	up            *prometheus.GaugeVec
	lastSuccess   *prometheus.GaugeVec
	scrapeSecs    *prometheus.GaugeVec
	walFull       prometheus.Gauge
	walFullTotal  prometheus.Counter
	producers     prometheus.Gauge
	oldestAge     prometheus.GaugeFunc
	backlogBytes  prometheus.GaugeFunc
	inserting     prometheus.GaugeFunc
	ready         prometheus.GaugeFunc
	departed      *prometheus.CounterVec
	sessionResets *prometheus.CounterVec
	sessionSeries *prometheus.GaugeVec
	offHeap       prometheus.GaugeFunc
}

// newMetrics registers the collector's metrics. checkpoint is read at every
// scrape for the forwarding lag, which only the collector can tell (it
// knows when each record was appended).
//
// inserting is read at every scrape too: a hung ClickHouse shows there
// within a scrape, long before the insert's read timeout fails it.
func newMetrics(reg prometheus.Registerer, checkpoint func() Checkpoint, inserting, ready func() float64) (*metrics, error) {
	const ns = "holdfast_collector_"
	byProducer := []string{"producer"}
	m := &metrics{
		samples:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "samples_total", Help: "Samples collected and written to the WAL."}, byProducer),
		bytes:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "page_bytes_total", Help: "Bytes of pages collected."}, byProducer),
		pages:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "pages_total", Help: "Pages collected and written to the WAL."}, byProducer),
		errors:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "errors_total", Help: "Collection errors, by kind (fetch, wal, quarantine, page_too_large: smaller pages asked, too_large: a producer that does not re-cut). Refused samples are in rejected_samples_total."}, []string{"producer", "kind"}),
		producerDrops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "producer_dropped_samples_total", Help: "Samples producers reported lost to their buffer bound."}, byProducer),
		restarts:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "producer_restarts_total", Help: "Producer incarnation changes seen."}, byProducer),
		rejected:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "rejected_samples_total", Help: "Samples refused (invalid, schema conflict, too large) and quarantined; the rest of their pages was taken."}, []string{"producer", "reason"}),
		up:            prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "producer_up", Help: "1 after a successful collection from the producer, 0 after a failed one (absent before the first)."}, byProducer),
		lastSuccess:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "producer_last_success_timestamp_seconds", Help: "Unix time of the last successful collection from the producer (absent before the first)."}, byProducer),
		scrapeSecs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "producer_scrape_duration_seconds",
			Help: "Duration of the last collection from the producer (all pages of one drain, failed ones included); 0 before the first."}, byProducer),
		walFull:      prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "wal_full", Help: "1 while the WAL is over its budget and pages are not acknowledged."}),
		walFullTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "wal_full_refusals_total", Help: "Pages not taken because the WAL was over its budget."}),
		producers:    prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "producers", Help: "Producers being collected."}),
		oldestAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "holdfast_forwarder_oldest_unforwarded_age_seconds",
			Help: "Age of the oldest WAL record not yet in ClickHouse (0 without a backlog): the forwarding lag."},
			func() float64 { return checkpoint().OldestUnforwarded }),
		backlogBytes: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "holdfast_forwarder_backlog_bytes",
			Help: "WAL bytes not yet in ClickHouse (estimated from the average record size)."},
			func() float64 { return float64(checkpoint().BacklogBytes) }),
		inserting: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "holdfast_forwarder_insert_in_progress_seconds",
			Help: "How long the current ClickHouse insert has been running (0 when none is): a hung server shows here at once, long before the insert times out."},
			inserting),
		departed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "producers_departed_total",
			Help: "Producers that left this collector, by reason (departed.go: moved, expired, deregistered, unassigned, removed_by_reload, removed_by_api); their last status is in /v1/status under departed."}, []string{"reason"}),
		sessionResets: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "session_resets_total",
			Help: "Series dictionaries (page version 3 sessions) started over, by reason (new_session: the producer started one, e.g. after a restart; mismatch: a page did not continue the collector's state; limit: over the collector's series bound; defs_needed: a refused sample of a series defined on an earlier page whose definition the forwarder had not stored yet, quarantined from the page served again self-contained)."}, []string{"producer", "reason"}),
		sessionSeries: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "session_series",
			Help: "Series defined in the producer's current session (page version 3); 0 without one."}, byProducer),
		ready: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "ready",
			Help: "1 when /-/ready answers 200, 0 when it answers 503 (the reasons are in its body and in /healthz)."}, ready),
		offHeap: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "holdfast_offheap_bytes",
			Help: "Bytes of per-series state (the forwarder's session entries and written-key table) mapped outside the Go heap: part of the process' RSS, not of go_memstats_*; --memory-limit counts them."},
			func() float64 { return float64(offheap.Bytes()) }),
	}
	var err error
	m.set, err = promutil.Register(reg, m.samples, m.bytes, m.pages, m.errors, m.producerDrops, m.restarts, m.rejected, m.up, m.lastSuccess, m.scrapeSecs, m.walFull, m.walFullTotal, m.producers, m.oldestAge, m.backlogBytes, m.inserting, m.ready, m.departed, m.sessionResets, m.sessionSeries, m.offHeap)
	for _, r := range departReasons {
		m.departed.WithLabelValues(r)
	}
	return m, err
}

// errorKinds and rejectReasons are the label values of errors_total and
// rejected_samples_total, created at 0 with each producer.
var (
	errorKinds = []string{"fetch", "protocol", "wal", "quarantine", "page_too_large", "too_large"}
)

// initProducer creates a new producer's counters at 0, so rate() and
// absent() work from its first scrape instead of from its first event.
func (m *metrics) initProducer(id string) {
	for _, v := range []*prometheus.CounterVec{m.samples, m.bytes, m.pages, m.producerDrops, m.restarts} {
		v.WithLabelValues(id)
	}
	for _, k := range errorKinds {
		m.errors.WithLabelValues(id, k)
	}
	for _, r := range quarantine.SampleCodes {
		m.rejected.WithLabelValues(id, r)
	}
	m.scrapeSecs.WithLabelValues(id)
	for _, r := range sessionResetReasons {
		m.sessionResets.WithLabelValues(id, r)
	}
	m.sessionSeries.WithLabelValues(id)
}

// deleteProducer removes every series of a producer that left the
// collector, so /metrics does not grow with every producer ever seen.
func (m *metrics) deleteProducer(id string) {
	l := prometheus.Labels{"producer": id}
	for _, v := range []*prometheus.CounterVec{m.samples, m.bytes, m.pages, m.errors, m.producerDrops, m.restarts, m.rejected, m.sessionResets} {
		v.DeletePartialMatch(l)
	}
	m.up.DeletePartialMatch(l)
	m.lastSuccess.DeletePartialMatch(l)
	m.scrapeSecs.DeletePartialMatch(l)
	m.sessionSeries.DeletePartialMatch(l)
}
