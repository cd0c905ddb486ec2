package producerapi

import (
	"github.com/prometheus/client_golang/prometheus"
)

// serverMetrics reads the server's counts at each scrape (Stats), so the
// numbers on /metrics are exactly those of /v1/stats and cost nothing on
// the sample path. Every series carries the producer's id as a constant
// label, so several Servers can share one registry; per-cursor series come
// and go with their cursors.
type serverMetrics struct {
	s     *Server
	descs []*prometheus.Desc
	// buffer and server counts
	produced, released, dropped, pending, bytes, rejected, expired, refused, cursors, sessions *prometheus.Desc
	// per cursor (label collector)
	cursorPending, cursorAcked, cursorSeries *prometheus.Desc
}

func newServerMetrics(s *Server) *serverMetrics {
	const ns = "holdfast_producer_"
	cl := prometheus.Labels{"producer": s.opts.ID}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(ns+name, help, labels, cl)
	}
	m := &serverMetrics{s: s,
		produced: d("samples_produced_total", "Samples accepted into the buffer."),
		released: d("samples_released_total", "Samples acknowledged by every collector and freed."),
		dropped:  d("samples_dropped_total", "Samples some collector never got: forced out by the buffer bound, or their cursor expired or was deleted."),
		pending:  d("samples_pending", "Samples in the buffer or in an unacknowledged page (produced = released + dropped + pending)."),
		bytes:    d("buffer_bytes", "Approximate memory of the buffered samples."),
		rejected: d("samples_rejected_total", "Invalid samples refused when added."),
		expired:  d("cursors_expired_total", "Collector cursors removed after being idle for the cursor TTL."),
		refused:  d("collectors_refused_total", "Page requests refused a cursor (collector not assigned, or above the cap)."),
		cursors:  d("cursors", "Collector cursors held."),
		sessions: d("sessions_started_total", "Page v3 sessions (series dictionaries) started: a collector (re)start, or a request that did not continue its cursor's session."),
		cursorPending: d("cursor_pending_samples", "Samples a collector has not acknowledged yet (not yet served, or in its outstanding page).",
			"collector"),
		cursorAcked: d("cursor_acked_samples_total", "Samples a collector acknowledged since its cursor was created.", "collector"),
		cursorSeries: d("cursor_session_series", "Series ids defined in a collector's page v3 session (0 without one); bounded by MaxSessionSeries plus a page.",
			"collector"),
	}
	m.descs = []*prometheus.Desc{m.produced, m.released, m.dropped, m.pending, m.bytes, m.rejected, m.expired, m.refused, m.cursors, m.sessions,
		m.cursorPending, m.cursorAcked, m.cursorSeries}
	return m
}

func (m *serverMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
}

func (m *serverMetrics) Collect(ch chan<- prometheus.Metric) {
	st := m.s.Stats()
	c := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	c(m.produced, st.Produced)
	c(m.released, st.Released)
	c(m.dropped, st.Dropped)
	g(m.pending, float64(st.Pending))
	g(m.bytes, float64(st.Bytes))
	c(m.rejected, st.Rejected)
	c(m.expired, st.Expired)
	c(m.refused, st.Refused)
	g(m.cursors, float64(len(st.Collectors)))
	c(m.sessions, st.Sessions)
	for id, cs := range st.Collectors {
		g(m.cursorPending, float64(cs.Unserved+uint64(cs.Outstanding)), id)
		c(m.cursorAcked, cs.Acked, id)
		g(m.cursorSeries, float64(cs.SessionSeries), id)
	}
}
