package bench

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/chtest"
	"github.com/holdfast/holdfast/internal/sampletest"
)

// TestMeasureWindowSplitsPerTimeseries: a step's rows in ClickHouse (2
// warm-up and 2 measured periods of 10 s; one producer in step, one whose
// ticks slipped so that its last warm-up period came after the other's
// first measured one) are split per timeseries by rank: the measured
// periods start at the first producer's third period, the late producer's
// warm-up overlaps them, and only buckets of measured samples count for
// latency. A timeseries short of a measured sample fails the step, and so
// does one with a sample too many.
func TestMeasureWindowSplitsPerTimeseries(t *testing.T) {
	_, conn := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const vms, warmup, periods = 20, 2, 2
	const period = 10 * time.Second
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second).UnixNano()
	at := func(d time.Duration) int64 { return t0 + int64(d) }
	inStep := []time.Duration{0, 10 * time.Second, 20 * time.Second, 30 * time.Second}
	late := []time.Duration{1500 * time.Millisecond, 21 * time.Second, 31 * time.Second, 41 * time.Second}
	// load inserts each producer's periods at the given times; skip drops
	// the k-th sample of the last period of the first producer, extra
	// adds a fifth period to it.
	load := func(skip int, extra bool) string {
		db, drop, err := freshDB(ctx, conn, "window")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(drop)
		ins := forwarder.NewInserter(conn, db)
		for i, times := range [][]time.Duration{inStep, late} {
			f := sampletest.NewFleet(vms)
			f.FirstVM = i * vms
			if extra && i == 0 {
				times = append(times, 40*time.Second)
			}
			for k, d := range times {
				batch := f.Append(nil, vms*22, at(d))
				if i == 0 && k == len(inStep)-1 && skip >= 0 {
					batch = append(batch[:skip], batch[skip+1:]...)
				}
				if err := ins.Insert(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}
		}
		return db
	}
	series := 2 * vms * 22
	w := stepWindow{period: period, warmup: warmup, periods: periods}
	span := vms*22 - 1 // a period's samples are 1 ns apart
	polls := []poll{{at: time.Unix(0, at(15*time.Second)), cpu: 2, backlog: 3, collected: uint64(series)}, {at: time.Unix(0, at(25*time.Second)), cpu: 3, backlog: 9, rss: 7}}
	bucket := func(d time.Duration) int64 { return at(d) / 100_000_000 }
	lats := []latencySample{{bucket(0), 40}, {bucket(1500 * time.Millisecond), 39}, {bucket(10 * time.Second), 38}, {bucket(21 * time.Second), 37},
		{bucket(20 * time.Second), 4}, {bucket(30 * time.Second), 3}, {bucket(31 * time.Second), 2}, {bucket(41 * time.Second), 1}}
	deadline := time.Unix(0, at(41*time.Second)+int64(span)).Add(2 * period)

	db := load(-1, false)
	m, err := measureWindow(ctx, conn, db, w, series, polls, lats, deadline, 5)
	if err != nil {
		t.Fatalf("a clean step: %v", err)
	}
	if m.span.measuredFirstNs != at(20*time.Second) || m.span.warmupLastNs != at(21*time.Second)+int64(span) || m.span.lastNs != at(41*time.Second)+int64(span) {
		t.Errorf("span: first measured +%v, last warm-up +%v, last +%v; want +20s, +21s, +41s (and %d ns)",
			time.Duration(m.span.measuredFirstNs-t0), time.Duration(m.span.warmupLastNs-t0), time.Duration(m.span.lastNs-t0), span)
	}
	if !m.sustained || m.samples != series*periods || m.warmupLeft != uint64(series) || m.startBacklog != 3 || m.maxBacklog != 9 || m.cpuPerM != (5-2)/(float64(series*periods)/1e6) {
		t.Errorf("measured periods: %+v", m)
	}
	if m.pmax != 4 || m.p50 != 3 {
		t.Errorf("latency p50 %v, max %v: want 3 and 4 (the warm-up's 37-40 left out)", m.p50, m.pmax)
	}
	if after, err := measureWindow(ctx, conn, db, w, series, polls, lats, deadline.Add(time.Millisecond), 5); err != nil || after.sustained {
		t.Errorf("done after the deadline: sustained %v, %v", after != nil && after.sustained, err)
	}
	for name, db := range map[string]string{"a measured sample missing": load(7, false), "a sample too many": load(-1, true)} {
		_, err := measureWindow(ctx, conn, db, w, series, polls, lats, deadline, 5)
		if err == nil || !strings.Contains(err.Error(), "per-series check failed") {
			t.Errorf("%s: %v, want the per-series check to fail", name, err)
		}
	}
}

// TestRunSustainedWithWarmupTiny runs a real `max` step small: producer
// and collector processes, 40 VMs, 2 warm-up and 2 measured periods of 2 s.
// Every timeseries is checked in ClickHouse (4 samples each) and the
// measured periods are found after the warm-up; whether the step counts
// as sustained depends on the machine, so it is not asserted.
func TestRunSustainedWithWarmupTiny(t *testing.T) {
	addr := chtest.Addr(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "holdfast")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/holdfast").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, conn := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const vms, warmup, periods = 40, 2, 2
	period := 2 * time.Second
	s, err := runSustained(ctx, Env{Dir: dir, Binary: bin, ClickHouse: addr, Progress: io.Discard, Period: period}, conn, vms, warmup, periods)
	if err != nil {
		t.Fatal(err)
	}
	m := s.measured
	if m == nil {
		t.Fatal("no measured periods after a warm-up")
	}
	if s.total != vms*22*(warmup+periods) || m.samples != vms*22*periods {
		t.Fatalf("%d samples in the step, %d measured; want %d and %d", s.total, m.samples, vms*22*(warmup+periods), vms*22*periods)
	}
	// The measured periods begin about two periods after the first sample
	// and end after the warm-up's last sample.
	if m.span.measuredFirstNs <= m.span.warmupLastNs || m.span.lastNs < m.span.measuredFirstNs {
		t.Errorf("span: first measured %d, last warm-up %d, last %d", m.span.measuredFirstNs, m.span.warmupLastNs, m.span.lastNs)
	}
	if want := float64(vms*22) / period.Seconds(); m.nominal != want || m.offered <= 0 || m.offered > 1.1*want {
		t.Errorf("offered %.0f/s nominal, %.0f/s actual; want %.0f nominal and no more than that", m.nominal, m.offered, want)
	}
	if m.machineBusy <= 0 || m.machineBusy > 1 {
		t.Errorf("machine CPU busy %v over the measured periods, want a share in (0, 1]", m.machineBusy)
	}
	if !m.deadline.Equal(m.span.deadline()) || m.done.IsZero() {
		t.Errorf("deadline %v, all in at %v", m.deadline, m.done)
	}
}
