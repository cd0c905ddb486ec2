package collector_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/chserver"
	"github.com/holdfast/holdfast/internal/chtest"
	"github.com/holdfast/holdfast/internal/promtest"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

var (
	insertGauge = regexp.MustCompile(`(?m)^holdfast_forwarder_insert_in_progress_seconds (\S+)$`)
	readyGauge  = regexp.MustCompile(`(?m)^holdfast_collector_ready (\S+)$`)
)

// TestHungClickHouseShowsAsInsertInProgress reproduces the measured
// failure: a SIGSTOPped ClickHouse accepts the connection and never
// answers, so an INSERT waits for the 2 min read timeout while /healthz
// said 200 and last_insert_error stayed empty. Now the insert in progress
// shows in /v1/checkpoint, on /metrics and in /-/ready's answer at once,
// and /-/ready, /healthz and holdfast_collector_ready fail once it is
// older than InsertHungAfter;
// after SIGCONT everything is delivered and the collector is ready again.
func TestHungClickHouseShowsAsInsertInProgress(t *testing.T) {
	chtest.Addr(t) // a ClickHouse is installed where this is set
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := chserver.Start(ctx, filepath.Join(t.TempDir(), "ch"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	// Runs before Stop (cleanups run last first): a stopped server ignores SIGTERM.
	t.Cleanup(func() { srv.Signal(syscall.SIGCONT) })

	prod, err := pa.NewServer(pa.ServerOptions{ID: "hung"})
	if err != nil {
		t.Fatal(err)
	}
	fleet := sampletest.NewFleet(3)
	prod.Add(fleet.Append(nil, 30, 1_700_000_000_000_000_000))
	ps := httptest.NewServer(prod.Handler())
	defer ps.Close()

	reg := prometheus.NewRegistry()
	c, err := collector.Open(collector.Options{
		DataDir: t.TempDir(), CollectorID: "hung", StallAfter: time.Hour, ReadyGrace: time.Hour, InsertHungAfter: time.Second,
		DefaultInterval: 50 * time.Millisecond, DrainTimeout: 100 * time.Millisecond, Registerer: reg,
		Producers: []collector.ProducerConfig{{ID: "hung", URL: ps.URL}},
		Forwarder: forwarder.Options{Addr: srv.Addr, Database: "e2e_hung", FlushAge: 50 * time.Millisecond, DialTimeout: time.Second,
			BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	hs := httptest.NewServer(c.AdminHandler(collector.AdminOptions{Gatherer: reg}))
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "http://")

	checkpoint := func() collector.Checkpoint {
		var cp collector.Checkpoint
		if err := getJSON(hs.URL+"/v1/checkpoint", &cp); err != nil {
			t.Fatal(err)
		}
		return cp
	}
	// gauges returns holdfast_forwarder_insert_in_progress_seconds and
	// holdfast_collector_ready.
	gauges := func() (inserting, ready float64) {
		text := promtest.Scrape(t, hs.URL)
		m, r := insertGauge.FindStringSubmatch(text), readyGauge.FindStringSubmatch(text)
		if m == nil || r == nil {
			t.Fatal("no holdfast_forwarder_insert_in_progress_seconds or holdfast_collector_ready on /metrics")
		}
		inserting, _ = strconv.ParseFloat(m[1], 64)
		ready, _ = strconv.ParseFloat(r[1], 64)
		return inserting, ready
	}
	healthz := func() int {
		resp, err := http.Get(hs.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	delivered := func(what string) {
		waitFor(t, 60*time.Second, what, func() (bool, string) {
			cp := checkpoint()
			code, r, body := getReady(t, hs.URL)
			inserting, ready := gauges()
			return cp.WALLastIndex > 0 && cp.CheckpointIndex == cp.WALLastIndex && cp.InsertInProgress == 0 &&
				code == http.StatusOK && r.ClickHouseReached && inserting == 0 && ready == 1 && healthz() == http.StatusOK, fmt.Sprintf("%+v %s", cp, body)
		})
	}
	delivered("the first samples delivered")

	if err := srv.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	prod.Add(fleet.Append(nil, 30, 1_700_000_001_000_000_000))
	waitFor(t, 60*time.Second, "the insert in progress in /v1/checkpoint and on /metrics", func() (bool, string) {
		cp := checkpoint()
		inserting, _ := gauges()
		return cp.InsertInProgress > 0 && inserting > 0, fmt.Sprintf("%+v", cp)
	})
	waitFor(t, 60*time.Second, "/-/ready and /healthz to fail on the hung insert", func() (bool, string) {
		code, r, body := getReady(t, hs.URL)
		hung := code == http.StatusServiceUnavailable && !r.Ready && r.InsertInProgress > 1 &&
			len(r.Reasons) == 1 && strings.Contains(r.Reasons[0], "insert in progress")
		inserting, ready := gauges()
		return hung && healthz() == http.StatusServiceUnavailable && inserting > 1 && ready == 0, body
	})
	if cp := checkpoint(); cp.LastInsertError != "" || cp.CheckpointIndex == cp.WALLastIndex {
		t.Fatalf("the hung insert should neither fail nor finish yet: %+v", cp)
	}
	if err := srv.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	delivered("everything delivered after SIGCONT")
	if st, err := collectorStatus(addr); err != nil || st.Producers[0].Samples != 60 {
		t.Fatalf("collected %+v, %v; want 60 samples", st.Producers, err)
	}
}
