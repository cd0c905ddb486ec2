package forwarder

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/promutil"
)

type metrics struct {
	set                *promutil.Set
	rowsInserted       prometheus.Counter
	recordsDone        prometheus.Counter
	batches            prometheus.Counter
	insertSeconds      prometheus.Histogram
	batchRows          prometheus.Histogram
	transientErrors    prometheus.Counter
	rejectedInserts    prometheus.Counter
	quarantined        *prometheus.CounterVec
	keyCollisions      prometheus.Counter
	checkpoint         prometheus.Gauge
	backlogRecords     prometheus.GaugeFunc
	seenRestarts       prometheus.CounterFunc
	seriesMisses       prometheus.Counter
	undefinedSeries    prometheus.Counter
	diskWaits          prometheus.Counter
	sessionsLoaded     prometheus.Gauge
	sessionFileRepairs prometheus.Counter
	sessionIDs         prometheus.Gauge
	sessionFiles       prometheus.Gauge
	sessionFileBytes   prometheus.Gauge
	all                []prometheus.Collector
}

// newMetrics registers the forwarder's metrics; backlog reports the WAL
// records not yet checkpointed, read at every scrape (a gauge set only when
// the forwarder caught up read 0 exactly while it was falling behind).
func newMetrics(reg prometheus.Registerer, backlog, seenRestarts func() float64) (*metrics, error) {
	m := &metrics{}
	ns := "holdfast_forwarder_"
	m.rowsInserted = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "rows_inserted_total", Help: "Measurement rows inserted into ClickHouse (replays included)."})
	m.recordsDone = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "records_forwarded_total", Help: "WAL records covered by a checkpoint (inserted or quarantined)."})
	m.batches = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "batches_total", Help: "Batches delivered and checkpointed."})
	m.insertSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "insert_duration_seconds", Help: "Time to deliver one batch, retries excluded.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)})
	m.batchRows = prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "batch_rows", Help: "Rows per delivered batch.", Buckets: prometheus.ExponentialBuckets(10, 4, 9)})
	m.transientErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "transient_errors_total", Help: "Failed deliveries that will be retried (ClickHouse unreachable, overloaded, timed out)."})
	m.rejectedInserts = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "rejected_inserts_total", Help: "Inserts ClickHouse refused for their data; each starts a bisection."})
	m.quarantined = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "quarantined_records_total", Help: "WAL records moved to quarantine, by reason."}, []string{"reason"})
	for _, r := range []string{"malformed", "unknown_type", "invalid", "corrupt", "rejected", "key_collision", reasonUndefined} {
		m.quarantined.WithLabelValues(r) // at 0 from start, for rate() and alerts
	}
	m.keyCollisions = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "key_collisions_total", Help: "Samples refused (quarantined) because their timeseries key is another timeseries' (FNV-1a 64 collision)."})
	m.checkpoint = prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "checkpoint_index", Help: "Index of the last WAL record known to be in ClickHouse."})
	m.backlogRecords = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: ns + "backlog_records", Help: "WAL records written but not yet checkpointed."}, backlog)
	m.seenRestarts = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: ns + "written_keys_restarts_total", Help: "Times the set of timeseries keys whose fields rows were written was full (MaxSeenKeys) and started over; each makes every timeseries' fields rows be written again."}, seenRestarts)
	m.all = []prometheus.Collector{m.rowsInserted, m.recordsDone, m.batches, m.insertSeconds, m.batchRows,
		m.transientErrors, m.rejectedInserts, m.quarantined, m.checkpoint, m.backlogRecords, m.keyCollisions, m.seenRestarts}
	m.seriesMisses = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "series_cache_misses_total", Help: "Series entries of version 2 records not in the series cache, decoded and keyed (once per series while it stays cached)."})
	m.undefinedSeries = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "undefined_series_records_total", Help: "Version 3 records quarantined because a sample names a session series id whose definition is not in the WAL or the state store (its record was lost)."})
	m.sessionsLoaded = prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "sessions_loaded", Help: "Version 3 series sessions whose id arrays are in memory."})
	m.sessionIDs = prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "session_ids", Help: "Series ids of the sessions in memory (about 21 bytes of memory each: a 20-byte entry and its datum type)."})
	m.diskWaits = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "disk_space_waits_total", Help: "Times reading stopped before a version 3 record because the data directory's disk had no room to store its series definitions (the state store cannot fail a write safely); reading resumes when deliveries have truncated the WAL."})
	m.sessionFileRepairs = prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "session_file_repairs_total", Help: "Session definition files cut back at a record that did not read back (a torn write or a damaged disk); the cut bytes are copied aside."})
	m.sessionFiles = prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "session_files", Help: "Page v3 session definition files in the data directory's sessions/ (about one per producer collected); updated every minute."})
	m.sessionFileBytes = prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "session_file_bytes", Help: "Bytes of the page v3 session definition files (about 120 bytes a series); updated every minute."})
	m.all = append(m.all, m.sessionFiles, m.sessionFileBytes, m.sessionFileRepairs, m.seriesMisses, m.undefinedSeries, m.diskWaits, m.sessionsLoaded, m.sessionIDs)
	var err error
	m.set, err = promutil.Register(reg, m.all...)
	return m, err
}

func (m *metrics) unregister() { m.set.Unregister() }
