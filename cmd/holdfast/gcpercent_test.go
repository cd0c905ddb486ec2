package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestGCPercent: the collector and `holdfast forward` run at --gc-percent
// (default defaultGCPercent), or at GOGC from the environment when the
// flag is not given, as the Go runtime reports it: the collector on its
// /metrics (go_gc_gogc_percent), forward in its start-up line (which says
// "off" for GOGC=off). A value below 1 exits 2 naming the flag.
func TestGCPercent(t *testing.T) {
	gogc := regexp.MustCompile(`(?m)^go_gc_gogc_percent (\S+)$`)
	commands := []struct {
		name string
		// off is what GOGC=off reads as; "" for the collector, whose
		// /metrics (client_golang) shows the runtime's -1 as 2^64-1.
		off string
		// start runs the command with args and returns its GC percent.
		start func(t *testing.T, args []string) string
		// bad is the command's arguments besides a bad --gc-percent: the
		// command must refuse the flag itself, not another one.
		bad []string
	}{
		{"collector", "", func(t *testing.T, args []string) string {
			args = append([]string{"collector", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--clickhouse", "127.0.0.1:1"}, args...)
			d, admin := startDaemon(t, collectorUp, args...)
			defer d.alive(t)
			code, body := httpGet(t, "http://"+admin+"/metrics")
			if m := gogc.FindStringSubmatch(body); code == 200 && m != nil {
				return m[1]
			}
			return "no go_gc_gogc_percent on /metrics"
		}, []string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}},
		// Nothing listens on port 1: the forwarder retries until stopped.
		{"forward", "off", func(t *testing.T, args []string) string {
			args = append([]string{"forward", "--data-dir", t.TempDir(), "--clickhouse", "127.0.0.1:1"}, args...)
			d, got := startDaemon(t, `gc_percent=(\S+)`, args...)
			d.alive(t)
			return got
		}, []string{"--data-dir", t.TempDir()}},
	}
	for _, cmd := range commands {
		t.Run(cmd.name, func(t *testing.T) {
			for _, tc := range []struct {
				env  string
				args []string
				want string
			}{
				{env: "", want: "50"},
				{env: "80", want: "80"},
				{env: "80", args: []string{"--gc-percent", "30"}, want: "30"},
				{env: "", args: []string{"--gc-percent", "100"}, want: "100"},
				{env: "off", want: cmd.off},
			} {
				if tc.want == "" {
					continue
				}
				t.Setenv("GOGC", tc.env)
				if got := cmd.start(t, tc.args); got != tc.want {
					t.Errorf("GOGC=%q %v: runs at %s, want %s", tc.env, tc.args, got, tc.want)
				}
			}
			for _, bad := range []string{"0", "-1"} {
				code, _, stderr := runCmd(append([]string{cmd.name, "--gc-percent", bad}, cmd.bad...)...)
				if code != 2 || !strings.Contains(stderr, "--gc-percent "+bad) {
					t.Errorf("--gc-percent %s: exit %d, stderr %q", bad, code, stderr)
				}
			}
		})
	}
}
