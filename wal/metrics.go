package wal

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/promutil"
)

// metrics are the log's self-metrics, registered on the Registerer given in
// Options and unregistered by Close.
type metrics struct {
	set              *promutil.Set
	recordsAppended  prometheus.Counter
	bytesAppended    prometheus.Counter
	syncSeconds      prometheus.Histogram
	groupRecords     prometheus.Histogram
	sizeBytes        prometheus.Gauge
	budgetBytes      prometheus.Gauge
	firstIndex       prometheus.Gauge
	lastIndex        prometheus.Gauge
	segments         prometheus.Gauge
	repairs          prometheus.Counter
	fullRejections   prometheus.Counter
	appendErrors     prometheus.Counter
	segmentsTruncate prometheus.Counter
	failed           prometheus.Gauge
	recoveries       prometheus.Counter
	all              []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "holdfast_wal_" + name, Help: help})
		m.all = append(m.all, c)
		return c
	}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "holdfast_wal_" + name, Help: help})
		m.all = append(m.all, g)
		return g
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "holdfast_wal_" + name, Help: help, Buckets: buckets})
		m.all = append(m.all, h)
		return h
	}
	m.recordsAppended = counter("records_appended_total", "Records appended and fsynced.")
	m.bytesAppended = counter("bytes_appended_total", "Bytes appended and fsynced, framing included.")
	m.syncSeconds = histogram("fsync_duration_seconds", "Time to write and fsync one commit group.", prometheus.ExponentialBuckets(0.0001, 2, 16))
	m.groupRecords = histogram("group_records", "Records per commit group (one write, one fsync).", prometheus.ExponentialBuckets(1, 2, 12))
	m.sizeBytes = gauge("size_bytes", "Bytes the log holds on disk.")
	m.budgetBytes = gauge("budget_bytes", "The disk budget; 0 means none.")
	m.firstIndex = gauge("first_index", "Index of the first record held.")
	m.lastIndex = gauge("last_index", "Index of the last record written.")
	m.segments = gauge("segments", "Segment files held.")
	m.repairs = counter("repairs_total", "Repairs of a torn or damaged last segment at open.")
	m.fullRejections = counter("full_rejections_total", "Appends refused because the log was over its disk budget.")
	m.appendErrors = counter("append_errors_total", "Write or fsync failures; each puts the log in the failed state.")
	m.segmentsTruncate = counter("segments_truncated_total", "Segment files removed behind the checkpoint.")
	m.failed = gauge("failed", "1 while the log refuses appends after a write or fsync error (it recovers by itself).")
	m.recoveries = counter("recoveries_total", "Times a failed log recovered by itself (tail re-checked and repaired, handle reopened).")
	var err error
	m.set, err = promutil.Register(reg, m.all...)
	return m, err
}

func (m *metrics) unregister() { m.set.Unregister() }
