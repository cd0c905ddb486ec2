package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestCollectorGCPercent: the collector runs at --gc-percent (default
// defaultGCPercent), or at GOGC from the environment when the flag is not
// given, as its own /metrics reports (go_gc_gogc_percent, read by the Go
// runtime); a value below 1 exits 2 naming the flag.
func TestCollectorGCPercent(t *testing.T) {
	gogc := regexp.MustCompile(`(?m)^go_gc_gogc_percent (\S+)$`)
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{env: "", want: "50"},
		{env: "80", want: "80"},
		{env: "80", args: []string{"--gc-percent", "30"}, want: "30"},
		{env: "", args: []string{"--gc-percent", "100"}, want: "100"},
	} {
		t.Setenv("GOGC", tc.env)
		args := append([]string{"collector", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--clickhouse", "127.0.0.1:1"}, tc.args...)
		d, admin := startDaemon(t, collectorUp, args...)
		code, body := httpGet(t, "http://"+admin+"/metrics")
		m := gogc.FindStringSubmatch(body)
		if code != 200 || m == nil || m[1] != tc.want {
			t.Errorf("GOGC=%q %v: /metrics answered %d, go_gc_gogc_percent %v, want %s", tc.env, tc.args, code, m, tc.want)
		}
		d.alive(t)
	}
	for _, bad := range []string{"0", "-1"} {
		code, _, stderr := runCmd("collector", "--gc-percent", bad, "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
		if code != 2 || !strings.Contains(stderr, "--gc-percent") {
			t.Errorf("--gc-percent %s: exit %d, stderr %q", bad, code, stderr)
		}
	}
}

// TestForwardGCPercent: `holdfast forward` takes --gc-percent as the
// collector does (default defaultGCPercent, GOGC from the environment when
// the flag is not given, the flag over it), as its start-up line reports
// from the Go runtime; a value below 1 exits 2 naming the flag.
func TestForwardGCPercent(t *testing.T) {
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{env: "", want: "50"},
		{env: "80", want: "80"},
		{env: "80", args: []string{"--gc-percent", "30"}, want: "30"},
		{env: "", args: []string{"--gc-percent", "100"}, want: "100"},
		{env: "off", want: "off"},
	} {
		t.Setenv("GOGC", tc.env)
		// Nothing listens on port 1: the forwarder retries until stopped.
		args := append([]string{"forward", "--data-dir", t.TempDir(), "--clickhouse", "127.0.0.1:1"}, tc.args...)
		d, got := startDaemon(t, `gc_percent=(\w+)`, args...)
		if got != tc.want {
			t.Errorf("GOGC=%q %v: started with gc_percent=%s, want %s", tc.env, tc.args, got, tc.want)
		}
		d.alive(t)
	}
	for _, bad := range []string{"0", "-1"} {
		code, _, stderr := runCmd("forward", "--gc-percent", bad, "--data-dir", t.TempDir())
		if code != 2 || !strings.Contains(stderr, "--gc-percent") {
			t.Errorf("--gc-percent %s: exit %d, stderr %q", bad, code, stderr)
		}
	}
}
