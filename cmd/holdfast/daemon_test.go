package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests of this file run the real binary, built once with the ldflags
// `make build` passes, so that signals reach a process exactly as they do
// in production (Go's default for SIGHUP is to exit 129).
const (
	testVersion   = "v9.9.9-test"
	testRevision  = "abc123def"
	testBuildDate = "2026-01-02T03:04:05Z"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func holdfastBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "holdfast-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "holdfast")
		ld := fmt.Sprintf("-X main.version=%s -X main.revision=%s -X main.buildDate=%s", testVersion, testRevision, testBuildDate)
		out, err := exec.Command("go", "build", "-ldflags", ld, "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// daemon is one running holdfast process.
type daemon struct {
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
	exitErr        error
}

// The start-up log lines of the daemons (logfmt or JSON); the first group
// is the address each listens on.
const (
	collectorUp = `collector started.*?admin"?[=:]"?http://([^\s",]+)`
	registryUp  = `registry started.*?url"?[=:]"?http://([^\s",]+)`
	producerUp  = `producer started.*?listen"?[=:]"?([^\s",]+)`
)

// legacyUp maps the patterns of the stdout lines the daemons printed before
// their start-up summaries became log lines, for tests written against them.
var legacyUp = map[string]string{
	`admin API on http://(\S+),`: collectorUp,
	`registry on http://(\S+) `:  registryUp,
	`listening on (\S+):`:        producerUp,
}

// startDaemon runs holdfast args and waits for its output (the start-up
// summary is a log line on stderr) to match up; the first group of up is
// returned (the address it listens on).
func startDaemon(t *testing.T, up string, args ...string) (*daemon, string) {
	t.Helper()
	d := &daemon{cmd: exec.Command(holdfastBinary(t), args...), done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exitErr = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(time.Minute):
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	if now, ok := legacyUp[up]; ok {
		up = now
	}
	re := regexp.MustCompile(up)
	var addr string
	d.waitFor(t, "start-up line "+up, func() bool {
		m := re.FindStringSubmatch(d.stdout.String() + d.stderr.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	return d, addr
}

// waitFor polls cond while the process lives; it fails if the process exits.
func (d *daemon) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		select {
		case <-d.done:
			t.Fatalf("waiting for %s: process exited (%v)\nstdout:\n%s\nstderr:\n%s", what, d.exitErr, d.stdout.String(), d.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not after 2 minutes\nstderr:\n%s", what, d.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) alive(t *testing.T) {
	t.Helper()
	select {
	case <-d.done:
		t.Fatalf("process exited (%v)\nstderr:\n%s", d.exitErr, d.stderr.String())
	default:
	}
}

func (d *daemon) hup(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestVersionCommand: `holdfast --version` and `holdfast version` print the
// ldflags' version, revision and build date and the Go version.
func TestVersionCommand(t *testing.T) {
	bin := holdfastBinary(t)
	for _, arg := range []string{"--version", "version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		for _, want := range []string{"holdfast, version " + testVersion, "(revision: " + testRevision + ")", "build date:       " + testBuildDate, "go version:       " + runtime.Version()} {
			if !strings.Contains(string(out), want) {
				t.Errorf("holdfast %s: no %q in\n%s", arg, want, out)
			}
		}
	}
	// Without ldflags (go test builds in-process): the fields are still there.
	if code, out, _ := runCmd("version"); code != 0 || !strings.Contains(out, "go version:       "+runtime.Version()) || !strings.Contains(out, "revision: ") {
		t.Fatalf("in-process version: %d %q", code, out)
	}
	if code, _, _ := runCmd("version", "extra"); code != 2 {
		t.Fatalf("version with an argument: exit %d, want 2", code)
	}
}

// TestLogFlagsRefusedAtStartUp: an invalid --log.level or --log.format stops
// every daemon at start-up (exit 2) with an error naming the flag.
func TestLogFlagsRefusedAtStartUp(t *testing.T) {
	for _, daemon := range []string{"collector", "registry", "producer"} {
		for _, tc := range []struct{ flag, value string }{{"--log.level", "loud"}, {"--log.format", "xml"}} {
			args := []string{daemon, tc.flag, tc.value, "--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}
			if daemon == "producer" {
				args = args[:len(args)-2]
			}
			code, _, stderr := runCmd(args...)
			if code != 2 || !strings.Contains(stderr, tc.flag+` "`+tc.value+`"`) {
				t.Errorf("%s %s %s: exit %d, stderr %q", daemon, tc.flag, tc.value, code, stderr)
			}
		}
	}
}

type statusProducer struct {
	ID      string `json:"id"`
	Samples uint64 `json:"samples"`
	Static  bool   `json:"static"`
}

func collectorProducers(t *testing.T, admin string) map[string]statusProducer {
	t.Helper()
	code, body := httpGet(t, "http://"+admin+"/v1/status")
	if code != 200 {
		t.Fatalf("/v1/status: %d %s", code, body)
	}
	var st struct {
		Producers []statusProducer `json:"producers"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	out := map[string]statusProducer{}
	for _, p := range st.Producers {
		out[p.ID] = p
	}
	return out
}

// TestCollectorSIGHUPReload runs a collector on a --config file and two
// producers, all real processes. The collector's /metrics carries
// holdfast_build_info. SIGHUP after the file gained a producer: the
// collector stays up, collects the new one and keeps the old one's loop
// (its sample count never goes back); SIGHUP with an invalid file: refused
// with a log line, the collector stays up with the same producers, still
// collecting. Fails on a binary without SIGHUP handling (exit 129).
func TestCollectorSIGHUPReload(t *testing.T) {
	_, a := startDaemon(t, producerUp, "producer", "--listen", "127.0.0.1:0", "--vms", "1", "--interval", "50ms")
	_, b := startDaemon(t, producerUp, "producer", "--listen", "127.0.0.1:0", "--vms", "1", "--interval", "50ms")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "collector.json")
	writeCfg := func(body string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := func(level string, producers ...string) string {
		urls, _ := json.Marshal(producers)
		return fmt.Sprintf(`{"producers": %s, "interval": "100ms", "data_dir": %q, "clickhouse": "127.0.0.1:1", "log_level": %q}`, urls, filepath.Join(dir, "data"), level)
	}
	urlA, urlB := "http://"+a, "http://"+b
	writeCfg(cfg("info", urlA))
	c, admin := startDaemon(t, collectorUp, "collector", "--config", cfgPath, "--listen", "127.0.0.1:0")

	_, metrics := httpGet(t, "http://"+admin+"/metrics")
	want := fmt.Sprintf(`holdfast_build_info{goversion=%q,revision=%q,version=%q} 1`, runtime.Version(), testRevision, testVersion)
	if !strings.Contains(metrics, want) {
		t.Fatalf("collector /metrics has no %s", want)
	}

	c.waitFor(t, "samples from A", func() bool { return collectorProducers(t, admin)[urlA].Samples > 0 })
	writeCfg(cfg("debug", urlA, urlB))
	before := collectorProducers(t, admin)[urlA].Samples
	c.hup(t)
	c.waitFor(t, "samples from B after SIGHUP", func() bool {
		p, ok := collectorProducers(t, admin)[urlB]
		return ok && p.Static && p.Samples > 0
	})
	if after := collectorProducers(t, admin)[urlA].Samples; after < before {
		t.Fatalf("A's samples went from %d to %d: its loop was restarted", before, after)
	}
	if !strings.Contains(c.stderr.String(), "configuration reloaded") || !strings.Contains(c.stderr.String(), "log_level=DEBUG") {
		t.Fatalf("no reload log line:\n%s", c.stderr.String())
	}

	writeCfg(`{"producers": ["` + urlA + `"], "interval": "soon"}`)
	c.hup(t)
	c.waitFor(t, "the refusal of an invalid file", func() bool {
		return strings.Contains(c.stderr.String(), "configuration reload refused")
	})
	writeCfg(`{"producers": [`)
	c.hup(t)
	c.waitFor(t, "the refusal of a malformed file", func() bool {
		return strings.Count(c.stderr.String(), "configuration reload refused") == 2
	})
	// Every reload names its file, the refused ones too (a file that does
	// not parse used to be logged as config="").
	if n, want := strings.Count(c.stderr.String(), "reloading the configuration"), strings.Count(c.stderr.String(), "reloading the configuration\" config="+cfgPath); n != 3 || want != 3 {
		t.Fatalf("%d reload lines, %d naming %s:\n%s", n, want, cfgPath, c.stderr.String())
	}
	ps := collectorProducers(t, admin)
	if len(ps) != 2 {
		t.Fatalf("after invalid reloads the producers are %v, want A and B", ps)
	}
	bNow := ps[urlB].Samples
	c.waitFor(t, "B still collected", func() bool { return collectorProducers(t, admin)[urlB].Samples > bNow })
	c.alive(t)
}

// TestDaemonsSurviveSIGHUP: a registry, a producer and a collector without
// --config log a SIGHUP and keep serving (today's Go default would exit 129).
func TestDaemonsSurviveSIGHUP(t *testing.T) {
	reg, raddr := startDaemon(t, registryUp, "registry", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	prod, paddr := startDaemon(t, producerUp, "producer", "--listen", "127.0.0.1:0", "--vms", "1", "--log.format", "json")
	col, caddr := startDaemon(t, collectorUp, "collector", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--clickhouse", "127.0.0.1:1")
	for _, d := range []struct {
		d    *daemon
		url  string
		logs string
	}{{reg, "http://" + raddr + "/v1/producers", "SIGHUP received"}, {prod, "http://" + paddr + "/", `"msg":"SIGHUP received`}, {col, "http://" + caddr + "/healthz", "no --config file"}} {
		d.d.hup(t)
		d.d.waitFor(t, d.logs, func() bool { return strings.Contains(d.d.stderr.String(), d.logs) })
		httpGet(t, d.url) // any answer: it still serves
		d.d.alive(t)
	}
}

// TestBuildFactsModified: "-modified" marks a binary the toolchain saw
// built from a modified tree, unless its version already ends in -dirty
// (make build's, from git describe --dirty).
func TestBuildFactsModified(t *testing.T) {
	dirty := &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-11-22T00:00:00Z"}}}
	if f := factsOf("", "", "", dirty); f.Revision != "abc" || !f.Modified || f.BuildDate != "2026-11-22T00:00:00Z" || f.Version != "devel" {
		t.Errorf("plain go build of a dirty tree: %+v", f)
	}
	if f := factsOf("abc-dirty", "abcdef", "2026-11-21", dirty); f.Revision != "abcdef" || f.Modified || f.Version != "abc-dirty" || f.BuildDate != "2026-11-21" {
		t.Errorf("make build of a dirty tree: %+v", f)
	}
	if f := factsOf("v1.2.0", "abcdef", "2026-11-21", dirty); !f.Modified {
		t.Errorf("make build VERSION=v1.2.0 of a modified tree: %+v, want it marked modified", f)
	}
	if f := factsOf("", "", "", nil); f.Revision != "unknown" || f.Version != "devel" || f.BuildDate != "unknown" {
		t.Errorf("no build info: %+v", f)
	}
}
