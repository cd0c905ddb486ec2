package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"

	"github.com/holdfast/holdfast/internal/chtest"
	"github.com/holdfast/holdfast/internal/sampletest"
)

// needPrometheus returns the prometheus binary: skipped without one on a
// developer's machine, FAILS under CI=true (scripts/test.sh installs it).
func needPrometheus(t *testing.T) string {
	t.Helper()
	p, err := prometheusBinary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v, but CI=true: the peer scenario must be tested in CI (make test installs it)", err)
		}
		t.Skipf("%v", err)
	}
	return p
}

// TestPeerScenarioTiny runs `holdfast bench peer` small and fast: a real
// Prometheus agent scraping a real target process into the sink, then
// holdfast's producers, collector and ClickHouse, both on 40 VMs for two
// 2-second periods. It proves the scenario works end to end: the sink got
// every sample the agent appended, ClickHouse every sample holdfast's
// producers released, and both costs were read.
func TestPeerScenarioTiny(t *testing.T) {
	needPrometheus(t)
	addr := chtest.Addr(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "holdfast")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/holdfast").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const vms = 40
	period := 2 * time.Second
	r, err := RunPeer(ctx, Env{Dir: dir, Binary: bin, ClickHouse: addr, PeerVMs: vms, Period: period, Duration: 6 * period})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	r.WriteText(&out)
	t.Log(out.String())
	const periods = 2
	if got := r.Metrics["holdfast_samples"]; got != vms*22*periods {
		t.Errorf("holdfast delivered %v samples, want %d", got, vms*22*periods)
	}
	// Two scrape rounds: 34 samples per VM and 5 synthetic per target.
	if got, want := r.Metrics["agent_samples"], float64(periods*(vms*exposedSamplesPerVM()+5)); got < want {
		t.Errorf("the sink got %v samples, want at least %v", got, want)
	}
	for _, k := range []string{"holdfast_cpu_s", "agent_cpu_s", "holdfast_rss_mib", "agent_rss_mib", "holdfast_vs_agent_cpu_ratio"} {
		if v := r.Metrics[k]; !(v > 0) {
			t.Errorf("%s = %v, want > 0", k, v)
		}
	}
	if len(r.Targets) != 1 || r.Targets[0].Metric != "holdfast_vs_agent_cpu_ratio" {
		t.Errorf("targets %+v, want holdfast_vs_agent_cpu_ratio", r.Targets)
	}
}

// TestExpositionIsValidPrometheusText checks the target's page with
// promtool: a page Prometheus refuses would make the agent's side cheap.
func TestExpositionIsValidPrometheusText(t *testing.T) {
	needPrometheus(t)
	promtool := filepath.Join(filepath.Dir(must(prometheusBinary())), "promtool")
	page := appendExposition(nil, sampletest.NewFleet(3).Append(nil, 3*22, 1))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(page))
	out, err := cmd.CombinedOutput()
	// promtool exits 3 for lint remarks (no HELP text), 1 for errors.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "error") {
		t.Fatalf("promtool check metrics:\n%s", out)
	}
	lines := 0
	for _, l := range strings.Split(string(page), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines++
		}
	}
	if want := 3 * exposedSamplesPerVM(); lines != want || exposedSamplesPerVM() != 34 {
		t.Fatalf("%d sample lines for 3 VMs, want %d (34 per VM: 20 scalars, 2 histograms of 7)", lines, want)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Protobuf wire helpers for building test requests.
func pbTag(b []byte, field, wire int) []byte { return binary.AppendUvarint(b, uint64(field<<3|wire)) }
func pbBytes(b []byte, field int, v []byte) []byte {
	return append(binary.AppendUvarint(pbTag(b, field, 2), uint64(len(v))), v...)
}

// writeRequest builds a remote-write WriteRequest: per timeseries, a label
// and n samples; and a metadata entry, which is not a timeseries.
func writeRequest(samplesPer ...int) []byte {
	var b []byte
	for _, n := range samplesPer {
		label := pbBytes(pbBytes(nil, 1, []byte("__name__")), 2, []byte("up"))
		ts := pbBytes(nil, 1, label)
		for i := 0; i < n; i++ {
			s := binary.LittleEndian.AppendUint64(pbTag(nil, 1, 1), 0x3ff0000000000000) // value 1.0
			s = binary.AppendUvarint(pbTag(s, 2, 0), uint64(1_700_000_000_000+i))       // timestamp
			ts = pbBytes(ts, 2, s)
		}
		b = pbBytes(b, 1, ts)
	}
	return pbBytes(b, 3, []byte{0x08, 0x01})
}

func TestCountRemoteWrite(t *testing.T) {
	for _, tc := range []struct {
		name             string
		in               []byte
		series, samples  int
		wantErrSubstring string
	}{
		{"empty", nil, 0, 0, ""},
		{"three series", writeRequest(3, 1, 0), 3, 4, ""},
		{"truncated", writeRequest(3)[:10], 0, 0, "malformed"},
		{"bad wire type", []byte{0x0f}, 0, 0, "wire type"},
		{"length past end", []byte{0x0a, 0x05, 0x00}, 0, 0, "bad length"},
		{"field zero", []byte{0x02, 0x00}, 0, 0, "field number 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			series, samples, err := countRemoteWrite(tc.in)
			if tc.wantErrSubstring != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSubstring) || !errors.Is(err, errProto) {
					t.Fatalf("err = %v, want one wrapping errProto with %q", err, tc.wantErrSubstring)
				}
				return
			}
			if err != nil || series != tc.series || samples != tc.samples {
				t.Fatalf("got %d series, %d samples, %v; want %d, %d", series, samples, err, tc.series, tc.samples)
			}
		})
	}
}

// FuzzCountRemoteWrite: the sink decodes bytes from another program; it
// must never panic and never count more samples than bytes.
func FuzzCountRemoteWrite(f *testing.F) {
	f.Add(writeRequest(2, 5))
	f.Add(snappy.Encode(nil, writeRequest(1)))
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		series, samples, err := countRemoteWrite(b)
		if err == nil && (series > len(b) || samples > len(b)) {
			t.Fatalf("%d series, %d samples in %d bytes", series, samples, len(b))
		}
		if _, err := snappyDecode(nil, b); err != nil && !strings.HasPrefix(err.Error(), "snappy:") {
			t.Fatalf("snappy error without its prefix: %v", err)
		}
	})
}

// TestSinkCountsAndRefuses: the sink answers 204 to a snappy-compressed
// WriteRequest and counts its samples, and 400 to a body that is not one,
// counting it as bad (the scenario then stops with that error).
func TestSinkCountsAndRefuses(t *testing.T) {
	sink := newRemoteWriteSink()
	srv := httptest.NewServer(sink)
	defer srv.Close()
	post := func(body []byte) int {
		resp, err := http.Post(srv.URL+"/write", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(snappy.Encode(nil, writeRequest(2, 3))); code != http.StatusNoContent {
		t.Fatalf("valid request: %d", code)
	}
	if code := post(snappy.Encode(nil, writeRequest(1))); code != http.StatusNoContent {
		t.Fatalf("valid request: %d", code)
	}
	if code := post(writeRequest(1)); code != http.StatusBadRequest { // not snappy
		t.Fatalf("uncompressed body: %d, want 400", code)
	}
	if code := post(snappy.Encode(nil, []byte{0x0a, 0x7f})); code != http.StatusBadRequest {
		t.Fatalf("malformed protobuf: %d, want 400", code)
	}
	if got := [4]int64{sink.requests.Load(), sink.series.Load(), sink.samples.Load(), sink.bad.Load()}; got != [4]int64{2, 3, 6, 2} {
		t.Fatalf("requests, series, samples, bad = %v, want [2 3 6 2]", got)
	}
}
