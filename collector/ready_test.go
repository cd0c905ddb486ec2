package collector_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/chtest"
)

// readyCollector runs a collector with no producers forwarding to chAddr
// and serves its admin API over real HTTP.
func readyCollector(t *testing.T, chAddr string, grace time.Duration) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := collector.Open(collector.Options{
		DataDir: t.TempDir(), CollectorID: "ready", StallAfter: time.Hour, ReadyGrace: grace,
		DrainTimeout: 100 * time.Millisecond, Registerer: reg,
		Forwarder: forwarder.Options{Addr: chAddr, Database: "e2e_ready", DialTimeout: 500 * time.Millisecond,
			BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	hs := httptest.NewServer(c.AdminHandler(collector.AdminOptions{Gatherer: reg}))
	t.Cleanup(func() {
		hs.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		c.Close()
	})
	return hs.URL
}

func getReady(t *testing.T, url string) (int, collector.Readiness, string) {
	t.Helper()
	resp, err := http.Get(url + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r collector.Readiness
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, r, string(raw)
}

func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestHealthyAndReady: /-/healthy answers 200 whatever ClickHouse does;
// /-/ready is 200 inside the start-up grace while ClickHouse is not
// reached, 503 once the grace is over, 503 at once (grace or not) when the
// address fails the handshake, and 200 once ClickHouse answered.
func TestHealthyAndReady(t *testing.T) {
	t.Run("inside grace", func(t *testing.T) {
		url := readyCollector(t, closedAddr(t), time.Hour)
		resp, err := http.Get(url + "/-/healthy")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/-/healthy: %d", resp.StatusCode)
		}
		code, r, body := getReady(t, url)
		if code != http.StatusOK || !r.Ready || r.ClickHouseReached || r.Backpressure {
			t.Fatalf("/-/ready inside the grace: %d %s", code, body)
		}
	})
	t.Run("grace over", func(t *testing.T) {
		url := readyCollector(t, closedAddr(t), time.Nanosecond)
		code, r, body := getReady(t, url)
		if code != http.StatusServiceUnavailable || r.Ready || len(r.Reasons) != 1 || !strings.Contains(r.Reasons[0], "has not reached ClickHouse") {
			t.Fatalf("/-/ready after the grace: %d %s", code, body)
		}
	})
	t.Run("handshake refused", func(t *testing.T) {
		hs := httptest.NewServer(http.NotFoundHandler()) // an HTTP port, not ClickHouse's native one
		defer hs.Close()
		url := readyCollector(t, hs.Listener.Addr().String(), time.Hour)
		waitFor(t, 60*time.Second, "/-/ready to refuse with the start-up check", func() (bool, string) {
			code, r, body := getReady(t, url)
			return code == http.StatusServiceUnavailable && !r.Ready && len(r.Reasons) == 1 && strings.Contains(r.Reasons[0], "start-up check"), body
		})
	})
	t.Run("reached", func(t *testing.T) {
		url := readyCollector(t, chtest.Addr(t), time.Nanosecond)
		waitFor(t, 60*time.Second, "/-/ready once ClickHouse answered", func() (bool, string) {
			code, r, body := getReady(t, url)
			return code == http.StatusOK && r.Ready && r.ClickHouseReached, body
		})
	})
}
