package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// promtool returns the path of Prometheus' promtool (Debian package
// prometheus, installed by scripts/test.sh). Without it the test is skipped
// on a developer's machine and FAILS under CI=true.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("promtool is not installed but CI=true: scripts/test.sh installs Debian's prometheus package")
	}
	t.Skip("promtool is not installed (apt-get install prometheus, or run make test)")
	return ""
}

func runPromtool(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAlertRules: docs/alerts.yml passes `promtool check rules`, and the
// unit tests of docs/alerts_test.yml (`promtool test rules`) pass: alerts
// fire on the series that should fire them and stay quiet otherwise. Every
// alert's runbook_url names a heading of README.md's alert runbook.
func TestAlertRules(t *testing.T) {
	rules, err := os.ReadFile("../../docs/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, l := range strings.Split(string(readme), "\n") {
		if h, ok := strings.CutPrefix(l, "#### "); ok {
			anchors[strings.ToLower(strings.TrimSpace(h))] = true
		}
	}
	runbooks := 0
	for _, l := range strings.Split(string(rules), "\n") {
		if _, after, ok := strings.Cut(l, "README.md#"); ok {
			runbooks++
			if a := strings.TrimRight(after, `"' `); !anchors[a] {
				t.Errorf("runbook anchor #%s has no heading in README.md", a)
			}
		}
	}
	if alerts := strings.Count(string(rules), "- alert: "); runbooks != alerts {
		t.Errorf("%d alerts but %d runbook links", alerts, runbooks)
	}
	if out, err := runPromtool(t, nil, "check", "rules", "../../docs/alerts.yml"); err != nil {
		t.Fatalf("promtool check rules docs/alerts.yml: %v\n%s", err, out)
	}
	if out, err := runPromtool(t, nil, "test", "rules", "../../docs/alerts_test.yml"); err != nil {
		t.Fatalf("promtool test rules docs/alerts_test.yml: %v\n%s", err, out)
	}
}

// TestMetricsPassPromtoolLint runs a registry, a producer registered with
// it and a collector collecting from the producer as real processes, and
// pipes each one's /metrics through `promtool check metrics`: any lint
// problem (a counter without _total, a unit in the wrong place, a missing
// HELP) fails the test. It also checks that the families the alerts of
// docs/alerts.yml use are on /metrics, so a renamed metric cannot leave an
// alert that never fires.
func TestMetricsPassPromtoolLint(t *testing.T) {
	promtool(t)
	_, raddr := startDaemon(t, `registry on http://(\S+) `, "registry", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	_, paddr := startDaemon(t, `listening on (\S+):`, "producer", "--listen", "127.0.0.1:0", "--vms", "1", "--interval", "100ms",
		"--registry", "http://"+raddr)
	// With a ClickHouse (make test) the forwarder's histograms have
	// samples too; without one the collector collects into its WAL.
	ch := os.Getenv("HOLDFAST_CLICKHOUSE")
	if ch == "" {
		ch = "127.0.0.1:1"
	}
	cd, caddr := startDaemon(t, `admin API on http://(\S+),`, "collector", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(),
		"--clickhouse", ch, "--database", "promtool_lint", "--flush-age", "100ms", "--interval", "100ms", "--producer", "http://"+paddr)
	// Collected once: the per-producer series and the producer's cursor
	// exist (and, with a ClickHouse, a batch was inserted).
	cd.waitFor(t, "a first collection", func() bool {
		_, m := httpGet(t, "http://"+caddr+"/metrics")
		return strings.Contains(m, "\nholdfast_collector_producer_up{") &&
			(ch == "127.0.0.1:1" || !strings.Contains(m, "\nholdfast_forwarder_batches_total 0\n"))
	})
	all := ""
	for _, d := range []struct{ name, addr string }{{"registry", raddr}, {"producer", paddr}, {"collector", caddr}} {
		code, body := httpGet(t, "http://"+d.addr+"/metrics")
		if code != 200 {
			t.Fatalf("%s /metrics: %d %s", d.name, code, body)
		}
		out, err := runPromtool(t, []byte(body), "check", "metrics")
		if err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("promtool check metrics on the %s's /metrics: %v\n%s", d.name, err, out)
		}
		all += body
	}
	rules, err := os.ReadFile("../../docs/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	names := alertMetrics(string(rules))
	if len(names) < 10 {
		t.Fatalf("only %d metric names found in docs/alerts.yml's expressions: %v", len(names), names)
	}
	for _, name := range names {
		if !strings.Contains(all, "\n"+name+" ") && !strings.Contains(all, "\n"+name+"{") {
			t.Errorf("docs/alerts.yml uses %s, which no daemon serves", name)
		}
	}
}

// alertMetrics returns the holdfast_* names in the rules' expressions
// (the expr: lines).
func alertMetrics(rules string) []string {
	var exprs strings.Builder
	for _, l := range strings.Split(rules, "\n") {
		if e, ok := strings.CutPrefix(strings.TrimSpace(l), "expr:"); ok {
			exprs.WriteString(e + "\n")
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, f := range strings.FieldsFunc(exprs.String(), func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}) {
		if strings.HasPrefix(f, "holdfast_") && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}
