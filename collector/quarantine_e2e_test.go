package collector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/collector"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
)

// testSample is a valid sample of timeseries test_vm:gauge, distinct per
// (vm, ts).
func testSample(vm int, ts int64) pa.Sample {
	return pa.Sample{
		Target:      pa.Named{Name: "test_vm", Fields: []pa.Field{{Name: "vm", Value: pa.U64Value(uint64(vm))}, {Name: "note", Value: pa.StringValue("ok")}}},
		Metric:      pa.Named{Name: "gauge"},
		TimestampNs: ts,
		Datum:       pa.Datum{Type: pa.DatumF64, F64: float64(vm) + 0.5},
	}
}

// invalidSample breaks the collector's default limits (a string field over
// 1,024 bytes) but not the test producer's; its schema is the valid ones'.
func invalidSample(vm int, ts int64) pa.Sample {
	s := testSample(vm, ts)
	s.Target.Fields[1].Value = pa.StringValue(strings.Repeat("x", 2000))
	return s
}

// startLibProducer runs a producer built on the producerapi library (the one
// producers embed) on a real HTTP listener, holding samples; its limits are
// looser than the collector's so it can hand out samples the collector
// refuses.
func startLibProducer(t *testing.T, samples []pa.Sample) string {
	t.Helper()
	srv, err := pa.NewServer(pa.ServerOptions{ID: "lib-producer", Limits: pa.Limits{MaxFieldStringLen: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Add(samples); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// pages builds n pages of 100 samples; bad(page, i) says which are refused
// and how.
func pages(n int, bad func(page, i int) *pa.Sample) (all []pa.Sample, valid int) {
	ts := time.Now().UnixNano()
	for p := 0; p < n; p++ {
		for i := 0; i < 100; i++ {
			ts++
			if s := bad(p, i); s != nil {
				s.TimestampNs = ts
				all = append(all, *s)
				continue
			}
			all = append(all, testSample(p*100+i, ts))
			valid++
		}
	}
	return all, valid
}

// invalidWhere is a bad function for pages: the samples at the indexes
// where (of each page) is true are invalid.
func invalidWhere(where func(i int) bool) func(page, i int) *pa.Sample {
	return func(p, i int) *pa.Sample {
		if !where(i) {
			return nil
		}
		s := invalidSample(p*100+i, 0)
		return &s
	}
}

func hf(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(holdfastBin, args...).CombinedOutput()
	return string(out), err
}

func metricLine(t *testing.T, admin, prefix string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestOneInvalidSampleDoesNotStallTheProducer is issue 8's reproduction: one
// invalid sample in each 100-sample page. Today the first such page is
// refused whole and served forever (the producer stalls after 3 pages); now
// the other 99 of every page arrive in ClickHouse exactly once, the
// producer releases everything, and each bad sample is in the quarantine
// with its reason and counted. The quarantine is then read, exported and
// replayed with the CLI, through the admin API and from the data directory.
func TestOneInvalidSampleDoesNotStallTheProducer(t *testing.T) {
	ch := newClickHouse(t, "")
	db := ch.database("quarantine")
	samples, valid := pages(10, invalidWhere(func(i int) bool { return i == 37 }))
	addr := startLibProducer(t, samples)
	admin := freeAddr(t)
	dataDir := t.TempDir()
	c := startProc(t, "collector", collectorArgs(dataDir, admin, ch.addr, db, []string{addr}, "--page-limit", "100")...)
	waitReleased(t, addr, uint64(len(samples)), time.Minute)
	flush(t, admin)
	ch.expect(db, uint64(valid))

	st, err := collectorStatus(admin)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Producers) != 1 || st.Producers[0].RejectedSamples != 10 || !strings.Contains(st.Producers[0].LastRejectReason, `"note"`) ||
		st.Quarantine.Samples != 10 || st.Quarantine.Full {
		t.Fatalf("status: producers %+v, quarantine %+v", st.Producers, st.Quarantine)
	}
	if l := metricLine(t, admin, `holdfast_collector_rejected_samples_total{producer="http://`+addr+`",reason="invalid"}`); !strings.HasSuffix(l, " 10") {
		t.Fatalf("rejected metric: %q", l)
	}

	// Through the admin API (the collector holds the state store's lock).
	out, err := hf(t, "quarantine", "list", "--admin", admin)
	if err != nil || strings.Count(out, "\tsample\t") != 10 || !strings.Contains(out, "invalid") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	var first quarantine.View
	out, err = hf(t, "quarantine", "show", "--admin", admin, "1")
	if err != nil || json.Unmarshal([]byte(out), &first) != nil || len(first.Samples) != 1 || first.Producer != "http://"+addr || first.Incarnation == "" ||
		first.ReasonCode != quarantine.CodeInvalid || !strings.Contains(string(first.Samples[0]), "xxxx") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	out, err = hf(t, "quarantine", "export", "--admin", admin)
	if err != nil || strings.Count(out, "\n") != 10 {
		t.Fatalf("export: %v\n%s", err, out)
	}
	// Still invalid under the same rules: kept, with the reason updated.
	out, err = hf(t, "quarantine", "replay", "--admin", admin)
	if err != nil || !strings.Contains(out, "replayed 0 entries") || !strings.Contains(out, "10 still refused") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	c.stop()

	// From the stopped collector's data directory.
	out, err = hf(t, "quarantine", "list", "--data-dir", dataDir)
	if err != nil || strings.Count(out, "\tsample\t") != 10 || !strings.Contains(out, "replay refused it again") {
		t.Fatalf("list --data-dir: %v\n%s", err, out)
	}
	out, err = hf(t, "quarantine", "export", "--data-dir", dataDir)
	if err != nil || strings.Count(out, "\n") != 10 {
		t.Fatalf("export --data-dir: %v\n%s", err, out)
	}

	// The fix: the collector accepts longer strings. Replay takes them.
	c = startProc(t, "collector-2", collectorArgs(dataDir, admin, ch.addr, db, []string{addr}, "--page-limit", "100", "--sample-limits", "field_string=4096")...)
	waitUp(t, admin)
	out, err = hf(t, "quarantine", "replay", "--admin", admin)
	if err != nil || !strings.Contains(out, "replayed 10 entries (10 samples)") {
		t.Fatalf("replay after the fix: %v\n%s", err, out)
	}
	flush(t, admin)
	ch.expect(db, uint64(len(samples)))
	if st, _ := collectorStatus(admin); st.Quarantine.Entries != 0 {
		t.Fatalf("quarantine after replay: %+v", st.Quarantine)
	}
	c.stop()
}

// TestSchemaConflictQuarantinesOnlyTheConflictingSamples: mid-stream, some
// samples of test_vm:gauge arrive with the same field set but another field
// type or datum type. Only those are quarantined; everything else arrives.
func TestSchemaConflictQuarantinesOnlyTheConflictingSamples(t *testing.T) {
	ch := newClickHouse(t, "")
	db := ch.database("schema")
	samples, valid := pages(6, func(p, i int) *pa.Sample {
		if p < 2 || i%10 != 3 {
			return nil
		}
		s := testSample(p*100+i, 0)
		if i%20 == 3 {
			s.Target.Fields[0].Value = pa.I64Value(int64(p*100 + i)) // same field, another type
		} else {
			s.Datum = pa.Datum{Type: pa.DatumI64, Int: 7} // same fields, another datum type
		}
		return &s
	})
	addr := startLibProducer(t, samples)
	admin := freeAddr(t)
	c := startProc(t, "collector", collectorArgs(t.TempDir(), admin, ch.addr, db, []string{addr}, "--page-limit", "100")...)
	waitReleased(t, addr, uint64(len(samples)), time.Minute)
	flush(t, admin)
	ch.expect(db, uint64(valid))
	st, err := collectorStatus(admin)
	if err != nil {
		t.Fatal(err)
	}
	conflicts := uint64(len(samples) - valid)
	if st.Producers[0].RejectedSamples != conflicts || st.Quarantine.Samples != conflicts {
		t.Fatalf("want %d conflicts quarantined; producer %+v quarantine %+v", conflicts, st.Producers[0], st.Quarantine)
	}
	var page collector.QuarantinePage
	if err := getJSON("http://"+admin+"/v1/quarantine?limit=1000", &page); err != nil {
		t.Fatal(err)
	}
	for _, e := range page.Entries {
		if e.ReasonCode != quarantine.CodeSchema || !strings.Contains(e.Reason, "conflicts with its schema") {
			t.Fatalf("entry %+v", e)
		}
	}
	if l := metricLine(t, admin, `holdfast_collector_rejected_samples_total{producer="http://`+addr+`",reason="schema"}`); !strings.HasSuffix(l, fmt.Sprintf(" %d", conflicts)) {
		t.Fatalf("rejected metric: %q", l)
	}
	c.stop()
}

// TestQuarantineEntrySurvivesSIGKILLAfterAck: the refused samples are synced
// before the page is acknowledged, so a SIGKILL right after the producer
// released the page keeps them.
func TestQuarantineEntrySurvivesSIGKILLAfterAck(t *testing.T) {
	ch := newClickHouse(t, "")
	db := ch.database("qkill")
	samples, _ := pages(3, invalidWhere(func(i int) bool { return i == 99 }))
	addr := startLibProducer(t, samples)
	admin := freeAddr(t)
	dataDir := t.TempDir()
	c := startProc(t, "collector", collectorArgs(dataDir, admin, ch.addr, db, []string{addr}, "--page-limit", "100")...)
	waitReleased(t, addr, uint64(len(samples)), time.Minute)
	c.kill() // SIGKILL
	out, err := hf(t, "quarantine", "list", "--data-dir", dataDir)
	if err != nil || strings.Count(out, "\tsample\t") != 3 {
		t.Fatalf("list after SIGKILL: %v\n%s", err, out)
	}
}

// TestQuarantineBoundIsLoud: a quarantine too small for what is refused
// fills; further refused samples are counted per producer and reason and
// logged, /healthz and /v1/status say so, and the good samples keep flowing.
func TestQuarantineBoundIsLoud(t *testing.T) {
	ch := newClickHouse(t, "")
	db := ch.database("qfull")
	samples, valid := pages(5, invalidWhere(func(i int) bool { return i%10 == 0 }))
	addr := startLibProducer(t, samples)
	admin := freeAddr(t)
	c := startProc(t, "collector", collectorArgs(t.TempDir(), admin, ch.addr, db, []string{addr}, "--page-limit", "100", "--quarantine-budget", "16KiB")...)
	waitReleased(t, addr, uint64(len(samples)), time.Minute)
	flush(t, admin)
	ch.expect(db, uint64(valid))
	st, err := collectorStatus(admin)
	if err != nil {
		t.Fatal(err)
	}
	q := st.Quarantine
	if !q.Full || q.Overflow == 0 || q.Entries+q.Overflow != uint64(len(samples)-valid) || q.Bytes > 16<<10 {
		t.Fatalf("quarantine %+v, %d refused", q, len(samples)-valid)
	}
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(b.String(), "quarantine full") {
		t.Fatalf("healthz %d: %s", resp.StatusCode, b.String())
	}
	if l := metricLine(t, admin, `holdfast_quarantine_overflow_total{producer="http://`+addr+`",reason="invalid"}`); !strings.HasSuffix(l, fmt.Sprintf(" %d", q.Overflow)) {
		t.Fatalf("overflow metric: %q", l)
	}
	if l := metricLine(t, admin, "holdfast_quarantine_full "); l != "holdfast_quarantine_full 1" {
		t.Fatalf("full gauge: %q", l)
	}
	if !strings.Contains(c.out.String(), "quarantine full") {
		t.Fatal("no log line says the quarantine is full")
	}
	c.stop()
}

// TestForwarderRecordsInTheQuarantineCLI: WAL records the forwarder cannot
// deliver (here: written by a collector with looser limits, read by one with
// the defaults) are in the same quarantine as refused samples; the CLI lists
// and shows them, and replays them once the rules accept them again, after
// which they arrive in ClickHouse exactly once.
func TestForwarderRecordsInTheQuarantineCLI(t *testing.T) {
	ch := newClickHouse(t, "")
	db := ch.database("qrecords")
	samples, _ := pages(3, invalidWhere(func(i int) bool { return i == 37 }))
	addr := startLibProducer(t, samples)
	admin := freeAddr(t)
	dataDir := t.TempDir()
	loose := []string{"--page-limit", "100", "--sample-limits", "field_string=4096"}
	// 1: collects everything into the WAL, ClickHouse unreachable.
	c := startProc(t, "collector-1", collectorArgs(dataDir, admin, "127.0.0.1:1", db, []string{addr}, loose...)...)
	waitReleased(t, addr, uint64(len(samples)), time.Minute)
	c.kill()
	// 2: default limits: the forwarder refuses the three records.
	c = startProc(t, "collector-2", collectorArgs(dataDir, admin, ch.addr, db, nil)...)
	flush(t, admin)
	ch.expect(db, 0)
	out, err := hf(t, "quarantine", "list", "--admin", admin)
	if err != nil || strings.Count(out, "\trecord\t") != 3 {
		t.Fatalf("list: %v\n%s", err, out)
	}
	var v quarantine.View
	out, err = hf(t, "quarantine", "show", "--admin", admin, "2")
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Kind != "record" || len(v.Samples) != 100 || v.Producer != "http://"+addr || v.WALIndex == 0 {
		t.Fatalf("show: %v\n%s", err, tail(out, 2000))
	}
	out, err = hf(t, "quarantine", "replay", "--admin", admin, "1", "2", "3")
	if err != nil || !strings.Contains(out, "3 still refused") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	c.stop()
	// 3: the limits are loose again: replay delivers all of it, once.
	c = startProc(t, "collector-3", collectorArgs(dataDir, admin, ch.addr, db, nil, loose...)...)
	waitUp(t, admin)
	out, err = hf(t, "quarantine", "replay", "--admin", admin)
	if err != nil || !strings.Contains(out, "replayed 3 entries (300 samples)") {
		t.Fatalf("replay after the fix: %v\n%s", err, out)
	}
	flush(t, admin)
	ch.expect(db, uint64(len(samples)))
	c.stop()
}

// TestQuarantineCrashLoop: the collector is SIGKILLed at random moments
// while a producer hands out pages holding invalid samples. After the last
// restart every valid sample the producer released is in ClickHouse exactly
// once, and every invalid one is in the quarantine (a page served again after
// a kill may quarantine a sample twice; none is missing).
func TestQuarantineCrashLoop(t *testing.T) {
	ch := newClickHouse(t, "")
	db := ch.database("qcrash")
	const total, rate = 3000, 600 // samples, per second
	base := time.Now().UnixNano()
	// Which samples are invalid is decided up front: the producer's
	// goroutine only reads it (it wrote it before, racing the test's reads).
	isInvalid := func(i int) bool { return i%50 == 17 }
	invalid := map[int64]bool{}
	for i := 0; i < total; i++ {
		if isInvalid(i) {
			invalid[base+int64(i)] = true
		}
	}
	srv, err := pa.NewServer(pa.ServerOptions{ID: "lib-producer", Limits: pa.Limits{MaxFieldStringLen: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	began, next := time.Now(), 0
	srv.Register(pa.ProducerFunc(func(_ context.Context, dst []pa.Sample) ([]pa.Sample, error) {
		due := min(total, int(time.Since(began).Seconds()*rate))
		for ; next < due; next++ {
			ts := base + int64(next)
			s := testSample(next, ts)
			if isInvalid(next) {
				s = invalidSample(next, ts)
			}
			dst = append(dst, s)
		}
		return dst, nil
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	defer func() { cancel(); <-done }()
	addr := ln.Addr().String()

	dataDir := t.TempDir()
	rng := rand.New(rand.NewPCG(11, uint64(time.Now().UnixNano())))
	kills := 8
	for i := 0; i < kills; i++ {
		admin := freeAddr(t)
		c := startProc(t, fmt.Sprintf("collector-run-%d", i), collectorArgs(dataDir, admin, ch.addr, db, []string{addr}, "--page-limit", "100", "--interval", "50ms")...)
		time.Sleep(time.Duration(200+rng.IntN(500)) * time.Millisecond)
		c.kill()
	}
	admin := freeAddr(t)
	c := startProc(t, "collector-final", collectorArgs(dataDir, admin, ch.addr, db, []string{addr}, "--page-limit", "100", "--interval", "50ms")...)
	waitReleased(t, addr, total, 2*time.Minute)
	flush(t, admin)
	ch.expect(db, uint64(total-len(invalid)))
	c.stop()

	out, err := hf(t, "quarantine", "export", "--data-dir", dataDir)
	if err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	found := map[int64]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var v quarantine.View
		if err := json.Unmarshal([]byte(line), &v); err != nil || len(v.Samples) != 1 {
			t.Fatalf("export line %q: %v", line, err)
		}
		var s pa.Sample
		if err := pa.UnmarshalSampleJSON(v.Samples[0], &s); err != nil {
			t.Fatal(err)
		}
		if !invalid[s.TimestampNs] {
			t.Fatalf("a valid sample was quarantined: %+v", v)
		}
		found[s.TimestampNs]++
	}
	if len(found) != len(invalid) {
		t.Fatalf("%d of %d invalid samples in the quarantine", len(found), len(invalid))
	}
	t.Logf("%d SIGKILLs; %d valid samples in ClickHouse once each; %d invalid ones quarantined (%d entries)", kills, total-len(invalid), len(invalid), strings.Count(out, "\n"))
}
