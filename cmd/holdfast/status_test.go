package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/internal/chtest"
	"github.com/holdfast/holdfast/registry"
)

func TestNormalizeBase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:9464", "http://127.0.0.1:9464"},
		{"http://127.0.0.1:9464", "http://127.0.0.1:9464"},
		{"http://127.0.0.1:9464/", "http://127.0.0.1:9464"},
		{" localhost:9400 ", "http://localhost:9400"},
		{"https://reg.example:443/holdfast/", "https://reg.example:443/holdfast"},
		{"[::1]:9400", "http://[::1]:9400"},
	} {
		if got, err := normalizeBase(tc.in); err != nil || got != tc.want {
			t.Errorf("normalizeBase(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "localhost", "ftp://h:1", "http://", "9400", "http://h:1/?x=1", "h:1:2", "A00/0: #", "h:port", "h:0", "http://u:p@h:1", "h :1"} {
		if got, err := normalizeBase(in); err == nil {
			t.Errorf("normalizeBase(%q) = %q, want an error", in, got)
		}
	}
}

// runStatusBin runs `holdfast status ARGS` as a process.
func runStatusBin(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(holdfastBinary(t), append([]string{"status"}, args...)...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

// TestStatusFleet runs a registry, two collectors (a real ClickHouse) and
// three producers as processes and checks `holdfast status --registry`:
// every collector and producer shown, exit 0 while all is well, whether the
// registry is named as a URL or host:port; exit 1 naming the producer once
// one is killed, and UNREACHABLE once a collector is killed; usage errors
// exit 2.
func TestStatusFleet(t *testing.T) {
	ch := chtest.Addr(t)
	db := fmt.Sprintf("status_fleet_%d", time.Now().UnixNano()%1e9)
	_, raddr := startDaemon(t, `registry on http://(\S+) `, "registry", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(),
		"--producer-lease", "3s", "--collector-lease", "3s")
	reg := "http://" + raddr
	var cols []*daemon
	var admins []string
	for i := 0; i < 2; i++ {
		d, a := startDaemon(t, `admin API on http://(\S+),`, "collector", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(),
			"--clickhouse", ch, "--database", db, "--id", fmt.Sprintf("col-%d", i), "--registry", reg, "--refresh", "300ms")
		cols, admins = append(cols, d), append(admins, a)
	}
	waitUntilTrue(t, "both collectors live in the registry", func() (bool, string) {
		code, out := runStatusBin(t, "--registry", raddr)
		return strings.Count(out, " live ") >= 2, fmt.Sprint(code, out)
	})
	var prods []*daemon
	for i := 0; i < 3; i++ {
		d, _ := startDaemon(t, `listening on (\S+):`, "producer", "--listen", "127.0.0.1:0", "--vms", "1", "--interval", "200ms",
			"--id", fmt.Sprintf("prod-%d", i), "--registry", reg)
		prods = append(prods, d)
	}
	var out string
	waitUntilTrue(t, "a healthy fleet of 2 collectors and 3 producers", func() (bool, string) {
		var code int
		code, out = runStatusBin(t, "--registry", raddr)
		return code == 0 && strings.Count(out, " ok ") == 3, out
	})
	for _, want := range []string{"registry " + reg + ": 2 collector(s), 2 live; 3 producer(s) registered", "col-0", "col-1",
		"prod-0", "prod-1", "prod-2", "LAST SUCCESS", "HEALTHY", "expired producers:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status has no %q:\n%s", want, out)
		}
	}
	// The same with a URL for the registry and host:port or URLs for
	// collectors named directly.
	if code, out := runStatusBin(t, "--registry", reg+"/"); code != 0 || !strings.Contains(out, "HEALTHY") {
		t.Errorf("--registry URL/: exit %d\n%s", code, out)
	}
	if code, out := runStatusBin(t, admins[0], "http://"+admins[1]+"/"); code != 0 || strings.Count(out, " ok ") != 3 {
		t.Errorf("collectors by address: exit %d\n%s", code, out)
	}
	var js fleetView
	if code, out := runStatusBin(t, "--registry", raddr, "--format", "json"); code != 0 || json.Unmarshal([]byte(strings.TrimSpace(out)), &js) != nil || len(js.Collectors) != 2 {
		t.Errorf("--format json: exit %d\n%s", code, out)
	}

	// A producer dies: its collector fails to reach it; status says which.
	prods[1].cmd.Process.Signal(syscall.SIGKILL)
	<-prods[1].done
	waitUntilTrue(t, "the dead producer reported", func() (bool, string) {
		var code int
		code, out = runStatusBin(t, "--registry", raddr)
		return code == 1 && strings.Contains(out, "FAILING") && strings.Contains(out, "producer prod-1 on col-"), out
	})
	t.Logf("fleet with a dead producer:\n%s", out)
	if !strings.Contains(out, "UNHEALTHY") {
		t.Errorf("no verdict:\n%s", out)
	}
	// A collector dies: shown as unreachable (while the registry still
	// lists it), unhealthy.
	cols[1].cmd.Process.Signal(syscall.SIGKILL)
	<-cols[1].done
	code, out := runStatusBin(t, "--registry", raddr)
	if code != 1 || !strings.Contains(out, "UNREACHABLE") || !strings.Contains(out, "collector col-1: unreachable") {
		t.Errorf("a dead collector: exit %d\n%s", code, out)
	}
	if code, out := runStatusBin(t, admins[1]); code != 1 || !strings.Contains(out, "UNREACHABLE") {
		t.Errorf("a dead collector by address: exit %d\n%s", code, out)
	}

	for _, args := range [][]string{{"--registry", "ftp://x:1"}, {"localhost"}, {"--format", "yaml"}, {"--until-samples", "5"}, {"--watch", "1s", "a:1", "b:2"}} {
		if code, out := runStatusBin(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2\n%s", args, code, out)
		}
	}
}

func waitUntilTrue(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last:\n%s", what, last)
}

// TestStatusExpiredProducers: the expired listing is shown when the
// registry offers it (items marked expired), and its absence is tolerated:
// an old registry that answers 400, or ignores the parameter and answers
// its live producers, shows no one as expired and is not unhealthy for it.
func TestStatusExpiredProducers(t *testing.T) {
	for _, tc := range []struct {
		name, expired string
		code          int
		want          string
	}{
		{"offered", `{"items":[{"id":"prod-9","state":"expired","expired_at":"2026-11-21T12:00:00Z","reason":"lease"}]}`, 200, "expired producers: 1\n  prod-9  expired_at=2026-11-21T12:00:00Z  reason=lease"},
		// The shape of the monitor branch's registry (ExpiredProducer: the
		// registration, when and why).
		{"registration and when", `{"items":[{"id":"prod-3","address":"http://h:1","interval":1000000000,"collectors":["col-a","col-b"],"lease_expires":"2026-11-21T12:00:00Z","registered":"2026-11-21T11:00:00Z","expired":"2026-11-21T12:00:01Z","reason":"lease expired: no renewal for 30s"}]}`, 200,
			"expired producers: 1\n  prod-3  expired=2026-11-21T12:00:01Z  reason=lease expired: no renewal for 30s  collectors=col-a,col-b  address=http://h:1"},
		{"none", `{"items":[]}`, 200, "expired producers: none"},
		{"refused", `{"error":"unknown state"}`, 400, "expired producers: not shown (this registry does not list expired producers)"},
		{"ignored", `{"items":[{"id":"prod-1","address":"http://x:1","collectors":[]}]}`, 200, "expired producers: not shown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/v1/collectors":
					fmt.Fprint(w, `{"items":[]}`)
				case r.URL.Path == "/v1/producers" && r.URL.Query().Get("state") == "expired":
					w.WriteHeader(tc.code)
					fmt.Fprint(w, tc.expired)
				case r.URL.Path == "/v1/producers":
					fmt.Fprint(w, `{"items":[]}`)
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			var out strings.Builder
			code := runStatus([]string{"--registry", srv.URL}, &out, &out)
			if code != 0 || !strings.Contains(out.String(), tc.want) {
				t.Fatalf("exit %d, want 0 and %q:\n%s", code, tc.want, out.String())
			}
		})
	}
}

// TestStatusHandoffIsNotIllHealth: a producer failing on a collector the
// registry has already moved it away from (rebalancing, or the old
// collector's refresh not yet taken) is shown as moving and is no problem;
// failing on its assigned collector, or no longer registered at all, is.
func TestStatusHandoffIsNotIllHealth(t *testing.T) {
	failing := func(id string) collector.ProducerStatus {
		return collector.ProducerStatus{ID: id, ConsecutiveFailures: 2, LastError: "403: not among the collectors the registry assigned"}
	}
	v := &fleetView{Registry: "http://r:1", registered: map[string]registry.Producer{
		"moved":  {ID: "moved", Collectors: []string{"col-b"}},
		"broken": {ID: "broken", Collectors: []string{"col-a"}},
	}}
	v.Collectors = []collectorView{{ID: "col-a", Address: "http://a:1", InRegistry: true, Live: true, Assigned: 1,
		Status: &collector.Status{CollectorID: "col-a", State: "running", Producers: []collector.ProducerStatus{failing("moved"), failing("broken"), failing("gone")}}}}
	v.judge(time.Now())
	got := strings.Join(v.Problems, "\n")
	if strings.Contains(got, "producer moved ") || !strings.Contains(got, "producer broken on col-a") || !strings.Contains(got, "producer gone on col-a") || len(v.Problems) != 2 {
		t.Fatalf("problems:\n%s", got)
	}
	var out strings.Builder
	v.print(&out, time.Now())
	if !regexp.MustCompile(`moved\s+moving`).MatchString(out.String()) || !regexp.MustCompile(`broken\s+FAILING`).MatchString(out.String()) {
		t.Fatalf("table:\n%s", out.String())
	}
}

// FuzzNormalizeBase: addresses come from the command line and from the
// registry (collectors' advertised addresses): never a panic, and a
// normalized address normalizes to itself.
func FuzzNormalizeBase(f *testing.F) {
	for _, s := range []string{"127.0.0.1:9464", "http://h:1/", "https://h/x/", "[::1]:1", "", "::", "http://[::1", "h:1:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := normalizeBase(s)
		if err != nil {
			return
		}
		again, err := normalizeBase(got)
		if err != nil || again != got {
			t.Fatalf("normalizeBase(%q) = %q, which normalizes to %q, %v", s, got, again, err)
		}
	})
}

// TestStatusFlagsAfterCollectors: flags may follow the collectors named, as
// the usage line suggests (`holdfast status HOST:PORT --format json`); they
// were once taken for collector addresses and the command exited 2.
func TestStatusFlagsAfterCollectors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/status" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(collector.Status{CollectorID: "col-a", State: "running"})
	}))
	defer srv.Close()
	var out, errs strings.Builder
	code := runStatus([]string{srv.URL, "--format", "json"}, &out, &errs)
	var v any
	if code != 0 || json.Unmarshal([]byte(out.String()), &v) != nil || !strings.Contains(out.String(), "col-a") {
		t.Fatalf("exit %d, want 0 and JSON naming col-a:\n%s%s", code, out.String(), errs.String())
	}
}
