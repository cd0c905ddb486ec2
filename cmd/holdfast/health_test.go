package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestDaemonHealthEndpoints runs a registry, a producer and two collectors
// (ClickHouse unreachable; one inside its ready grace, one with it over,
// set by its config file's ready_grace) as
// real processes: /-/healthy is 200 on each; /-/ready is 200 on the
// registry, the producer and the collector inside its grace, 503 on the
// other; the registry's /metrics carries holdfast_build_info and its
// counters at 0.
func TestDaemonHealthEndpoints(t *testing.T) {
	_, raddr := startDaemon(t, registryUp, "registry", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	_, paddr := startDaemon(t, producerUp, "producer", "--listen", "127.0.0.1:0", "--vms", "1")
	_, c1 := startDaemon(t, collectorUp, "collector", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--clickhouse", "127.0.0.1:1", "--ready-grace", "1h")
	// The other's grace comes from its config file's ready_grace.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "collector.json")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"data_dir": %q, "clickhouse": "127.0.0.1:1", "ready_grace": "1ns"}`, filepath.Join(dir, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	_, c2 := startDaemon(t, collectorUp, "collector", "--listen", "127.0.0.1:0", "--config", cfg)
	for _, c := range []struct {
		url  string
		code int
	}{
		{raddr + "/-/healthy", http.StatusOK}, {raddr + "/-/ready", http.StatusOK},
		{paddr + "/-/healthy", http.StatusOK}, {paddr + "/-/ready", http.StatusOK},
		{c1 + "/-/healthy", http.StatusOK}, {c1 + "/-/ready", http.StatusOK},
		{c2 + "/-/healthy", http.StatusOK}, {c2 + "/-/ready", http.StatusServiceUnavailable},
	} {
		if code, body := httpGet(t, "http://"+c.url); code != c.code {
			t.Errorf("%s: %d (want %d) %s", c.url, code, c.code, body)
		}
	}
	_, metrics := httpGet(t, "http://"+raddr+"/metrics")
	for _, want := range []string{
		fmt.Sprintf(`holdfast_build_info{goversion=%q,revision=%q,version=%q} 1`, runtime.Version(), testRevision, testVersion),
		`holdfast_registry_registrations_total{kind="producer"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("registry /metrics has no %s", want)
		}
	}
}
