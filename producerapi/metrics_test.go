package producerapi_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/promtest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// TestProducerMetrics over HTTP: the library's /metrics (through the
// Registerer and Gatherer the embedding program passes) shows the buffer's
// counts and each cursor's pending and acknowledged samples, agreeing with
// /v1/stats at every step: a configured collector's cursor at 0 before it
// asks, a partly acknowledged page (released once every cursor had it), a
// cursor that expires (counted, its series gone), and a second Server on the same
// registry with its own series.
func TestProducerMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, hs := newProducer(t, pa.ServerOptions{ID: "p1", CursorTTL: 10 * time.Minute, Collectors: []string{"c1"}, Logger: quiet,
		Registerer: reg, Gatherer: reg})
	pa.SetClock(s, func() time.Time { return now })
	const p = `{producer="p1"}`
	promtest.WantLines(t, "fresh", promtest.Scrape(t, hs.URL),
		"holdfast_producer_samples_produced_total"+p+" 0", "holdfast_producer_samples_dropped_total"+p+" 0",
		"holdfast_producer_cursors_expired_total"+p+" 0", "holdfast_producer_cursors"+p+" 1",
		`holdfast_producer_cursor_pending_samples{collector="c1",producer="p1"} 0`,
		`holdfast_producer_cursor_acked_samples_total{collector="c1",producer="p1"} 0`,
		"holdfast_producer_sessions_started_total"+p+" 0",
		`holdfast_producer_cursor_session_series{collector="c1",producer="p1"} 0`)

	s.Add(fleet(10, 0))
	a := httpPage(t, hs.URL, "", "c1", "", 4, 0, true)
	httpPage(t, hs.URL, "", "c1", a.page.Token, 100, 0, true) // acks 4, takes 6
	gone := httpPage(t, hs.URL, "", "gone", "", 3, 0, true)   // starts after the 4 released; takes 3, never acks
	if len(gone.page.Samples) != 3 {
		t.Fatalf("gone: %d %s", gone.status, gone.errMsg)
	}
	promtest.WantLines(t, "after a partial acknowledgement", promtest.Scrape(t, hs.URL),
		"holdfast_producer_samples_produced_total"+p+" 10", "holdfast_producer_samples_released_total"+p+" 4",
		"holdfast_producer_samples_pending"+p+" 6", "holdfast_producer_cursors"+p+" 2",
		`holdfast_producer_cursor_pending_samples{collector="c1",producer="p1"} 6`,
		`holdfast_producer_cursor_acked_samples_total{collector="c1",producer="p1"} 4`,
		`holdfast_producer_cursor_pending_samples{collector="gone",producer="p1"} 6`,
		`holdfast_producer_cursor_acked_samples_total{collector="gone",producer="p1"} 0`)

	// A page v3 collector: a session started, its ids counted.
	v := newV3Sim(t, hs.URL, "v3")
	v.get(v.req(false), true)
	promtest.WantLines(t, "a v3 session", promtest.Scrape(t, hs.URL),
		"holdfast_producer_sessions_started_total"+p+" 1",
		fmt.Sprintf(`holdfast_producer_cursor_session_series{collector="v3",producer="p1"} %d`, len(v.defs)))
	s.DeleteCollector("v3")

	now = now.Add(11 * time.Minute) // "gone" expires
	text := promtest.Scrape(t, hs.URL)
	promtest.WantLines(t, "after the cursor expired", text,
		"holdfast_producer_cursors_expired_total"+p+" 1", "holdfast_producer_cursors"+p+" 1",
		"holdfast_producer_samples_dropped_total"+p+" 0", "holdfast_producer_samples_released_total"+p+" 4")
	if strings.Contains(text, `collector="gone"`) {
		t.Errorf("the expired cursor's series stayed:\n%s", text)
	}
	st := s.Stats()
	if st.Collectors["c1"].Acked != 4 || st.Released != 4 {
		t.Errorf("/v1/stats disagrees: %+v %+v", st.BufferStats, st.Collectors)
	}

	// A second producer in the same process: its own series, no clash.
	if _, err := pa.NewServer(pa.ServerOptions{ID: "p2", Registerer: reg, Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	promtest.WantLines(t, "two producers", promtest.Scrape(t, hs.URL),
		"holdfast_producer_samples_produced_total"+p+" 10", `holdfast_producer_samples_produced_total{producer="p2"} 0`)
	if _, err := pa.NewServer(pa.ServerOptions{ID: "p2", Registerer: reg, Logger: quiet}); err == nil {
		t.Error("a second producer with the same id registered its metrics")
	}
}
