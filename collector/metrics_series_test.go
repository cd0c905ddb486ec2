package collector_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/promtest"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// perProducer are the families keyed by producer: created with a producer,
// deleted with it.
var perProducer = []string{
	"holdfast_collector_samples_total", "holdfast_collector_page_bytes_total", "holdfast_collector_pages_total",
	"holdfast_collector_errors_total", "holdfast_collector_producer_dropped_samples_total",
	"holdfast_collector_producer_restarts_total", "holdfast_collector_rejected_samples_total",
	"holdfast_collector_producer_up", "holdfast_collector_producer_last_success_timestamp_seconds",
	"holdfast_collector_producer_scrape_duration_seconds", "holdfast_collector_drain_limited_total",
	"holdfast_quarantine_overflow_total", "holdfast_collector_session_resets_total", "holdfast_collector_session_series",
}

// seriesOf returns the sample lines of /metrics whose labels include
// producer="id".
func seriesOf(text, id string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if l := sc.Text(); !strings.HasPrefix(l, "#") && strings.Contains(l, `producer="`+id+`"`) {
			out = append(out, l)
		}
	}
	return out
}

// TestMetricsSeriesLifecycle over HTTP: a fresh collector shows every
// counter that has no per-producer label (at 0); a producer put into the
// assignment gets its counters at 0 before anything happens to it, then
// producer_up 1 and a last-success time; removed with PUT /v1/producers,
// every series of it leaves /metrics while the other producer's stay.
func TestMetricsSeriesLifecycle(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, err := collector.Open(collector.Options{
		DataDir: t.TempDir(), CollectorID: "series", DefaultInterval: 50 * time.Millisecond, StallAfter: time.Hour,
		DrainTimeout: 100 * time.Millisecond, Registerer: reg,
		Forwarder: forwarder.Options{Addr: closedAddr(t), Database: "e2e_series", DialTimeout: 200 * time.Millisecond,
			BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	hs := httptest.NewServer(c.AdminHandler(collector.AdminOptions{Gatherer: reg}))
	defer hs.Close()

	fresh := promtest.Scrape(t, hs.URL)
	checked := 0
	for _, l := range strings.Split(fresh, "\n") {
		name, ok := strings.CutPrefix(l, "# TYPE ")
		if !ok || !strings.HasSuffix(name, " counter") {
			continue
		}
		name = strings.TrimSuffix(name, " counter")
		if strings.Contains(strings.Join(perProducer, " "), name) {
			continue
		}
		checked++
		if !strings.Contains(fresh, "\n"+name+" 0\n") && !strings.Contains(fresh, "\n"+name+"{") {
			t.Errorf("counter %s has no series on a fresh collector", name)
		}
	}
	if checked < 5 {
		t.Errorf("only %d counters without a producer label on /metrics:\n%s", checked, fresh)
	}
	for _, name := range []string{"holdfast_collector_wal_full_refusals_total"} {
		if !strings.Contains(fresh, "\n"+name+" 0\n") {
			t.Errorf("%s not at 0 on a fresh collector", name)
		}
	}
	// A labelled counter with no series has no TYPE line either: name them.
	for _, want := range []string{
		`holdfast_quarantine_stored_total{kind="sample",reason="invalid"} 0`,
		`holdfast_quarantine_stored_total{kind="record",reason="rejected"} 0`,
	} {
		if !strings.Contains(fresh, "\n"+want+"\n") {
			t.Errorf("no %s on a fresh collector", want)
		}
	}

	var urls []string
	for _, id := range []string{"a", "b"} {
		srv, err := pa.NewServer(pa.ServerOptions{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		srv.Add(sampletest.NewFleet(3).Append(nil, 30, 1))
		ps := httptest.NewServer(srv.Handler())
		defer ps.Close()
		urls = append(urls, ps.URL)
	}
	put := func(body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, hs.URL+"/v1/producers", bytes.NewBufferString(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT /v1/producers: %d %s", resp.StatusCode, b)
		}
	}
	put(`[{"id":"a","url":"` + urls[0] + `","interval":"1h"},{"id":"b","url":"` + urls[1] + `","interval":"50ms"}]`)
	// a's first collection is somewhere in its first half hour: its
	// counters are there at 0 anyway.
	text := promtest.Scrape(t, hs.URL)
	for _, want := range []string{
		`holdfast_collector_samples_total{producer="a"} 0`,
		`holdfast_collector_errors_total{kind="fetch",producer="a"} 0`,
		`holdfast_collector_session_resets_total{producer="a",reason="defs_needed"} 0`,
		`holdfast_collector_session_series{producer="a"} 0`,
		`holdfast_collector_rejected_samples_total{producer="a",reason="schema"} 0`,
		`holdfast_collector_producer_scrape_duration_seconds{producer="a"} 0`,
		`holdfast_collector_drain_limited_total{producer="a"} 0`,
		`holdfast_quarantine_overflow_total{producer="a",reason="invalid"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %s right after the PUT", want)
		}
	}
	waitFor(t, 60*time.Second, "b collected", func() (bool, string) {
		text := promtest.Scrape(t, hs.URL)
		return strings.Contains(text, `holdfast_collector_producer_up{producer="b"} 1`) &&
			strings.Contains(text, `holdfast_collector_producer_last_success_timestamp_seconds{producer="b"}`) &&
			strings.Contains(text, `holdfast_collector_samples_total{producer="b"} 30`) &&
			!strings.Contains(text, "holdfast_collector_producer_scrape_duration_seconds{producer=\"b\"} 0\n"), strings.Join(seriesOf(text, "b"), "\n")
	})
	put(`[{"id":"a","url":"` + urls[0] + `","interval":"1h"}]`)
	waitFor(t, 60*time.Second, "b's series gone", func() (bool, string) {
		s := seriesOf(promtest.Scrape(t, hs.URL), "b")
		return len(s) == 0, strings.Join(s, "\n")
	})
	if s := seriesOf(promtest.Scrape(t, hs.URL), "a"); len(s) < 5 {
		t.Fatalf("a's series went too: %v", s)
	}
}
