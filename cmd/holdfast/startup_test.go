package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"syscall"
	"testing"
)

// TestStartUpSummaryAgreesWithState: a collector collects into its WAL
// with ClickHouse unreachable, is stopped, and started again on the same
// data directory without producers. Its start-up summary is a log line
// (stderr, nothing on stdout) whose WAL range, checkpoint and backlog are
// those /v1/checkpoint then reports, and not zero.
func TestStartUpSummaryAgreesWithState(t *testing.T) {
	_, paddr := startDaemon(t, producerUp, "producer", "--listen", "127.0.0.1:0", "--vms", "1", "--interval", "50ms")
	data := t.TempDir()
	args := []string{"collector", "--listen", "127.0.0.1:0", "--data-dir", data, "--clickhouse", "127.0.0.1:1", "--drain-timeout", "1s"}
	first, admin := startDaemon(t, collectorUp, append(args, "--producer", "http://"+paddr, "--interval", "50ms")...)
	first.waitFor(t, "records in the WAL", func() bool {
		_, body := httpGet(t, "http://"+admin+"/v1/checkpoint")
		var cp struct {
			Last uint64 `json:"wal_last_index"`
		}
		json.Unmarshal([]byte(body), &cp)
		return cp.Last >= 3
	})
	first.cmd.Process.Signal(syscall.SIGTERM)
	<-first.done

	second, admin := startDaemon(t, collectorUp, args...)
	if out := second.stdout.String(); out != "" {
		t.Fatalf("the collector wrote to stdout: %q", out)
	}
	line := regexp.MustCompile(`msg="collector started".*`).FindString(second.stderr.String())
	attr := func(name string) uint64 {
		m := regexp.MustCompile(` ` + name + `=(\d+)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no %s in the start-up line %q", name, line)
		}
		n, _ := strconv.ParseUint(m[1], 10, 64)
		return n
	}
	_, body := httpGet(t, "http://"+admin+"/v1/checkpoint")
	var cp struct {
		First      uint64 `json:"wal_first_index"`
		Last       uint64 `json:"wal_last_index"`
		Checkpoint uint64 `json:"checkpoint_index"`
		Backlog    uint64 `json:"backlog_records"`
	}
	if err := json.Unmarshal([]byte(body), &cp); err != nil {
		t.Fatal(err)
	}
	if cp.Last < 3 || cp.Backlog == 0 {
		t.Fatalf("no backlog after the restart: %s", body)
	}
	for name, want := range map[string]uint64{"wal_first_index": cp.First, "wal_last_index": cp.Last, "checkpoint_index": cp.Checkpoint, "backlog_records": cp.Backlog} {
		if got := attr(name); got != want {
			t.Errorf("start-up line says %s=%d, /v1/checkpoint %d\n%s", name, got, want, line)
		}
	}
	for _, attrName := range []string{"data_dir=" + data, "clickhouse=127.0.0.1:1", "wal_budget=4GiB", "static_producers=0", "registry=none"} {
		if !regexp.MustCompile(regexp.QuoteMeta(attrName) + `\b`).MatchString(line) {
			t.Errorf("no %s in the start-up line %q", attrName, line)
		}
	}
}
