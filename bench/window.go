package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/holdfast/holdfast/forwarder"
	pa "github.com/holdfast/holdfast/producerapi"
)

// The measured periods of a load step with a warm-up (`max`).
//
// A step's producers each generate warmup+periods periods, one every
// period on their own ticker, each period's samples timestamped from its
// generation on, 1 ns apart; every timeseries gets exactly one sample a
// period. So a timeseries' samples in time order are its periods in order:
// its first warmup samples are warm-up, the rest measured. That is the
// split, per timeseries, and it is exact however the producers' periods
// fall: they start a few seconds apart, and on a loaded machine a producer
// that takes long to generate a period skips ticks, so its later periods
// come late (measured: 12.7 s late over four periods at load average 12),
// and no single timestamp separates every producer's warm-up from its
// measured periods. checkPerSeriesRanks checks every timeseries holds
// exactly warmup+periods samples (with FINAL: none lost, none twice) and
// reads the rank boundaries back from ClickHouse: the earliest first
// measured sample, the latest last warm-up sample and the latest sample.

// stepSpan is where a step's measured periods lie in sample time.
type stepSpan struct {
	period          time.Duration
	warmup, periods int
	measuredFirstNs int64 // the earliest first measured sample of any timeseries
	warmupLastNs    int64 // the latest last warm-up sample of any timeseries
	lastNs          int64 // the latest sample
}

// measuredStart is when the first measured period was generated (sample
// timestamps are the producers' clock, the bench's too).
func (w stepSpan) measuredStart() time.Time { return time.Unix(0, w.measuredFirstNs) }

// loadEnd is when the last measured period ends: one period after the
// latest producer generated it.
func (w stepSpan) loadEnd() time.Time { return time.Unix(0, w.lastNs).Add(w.period) }

// deadline is when a sustained step has everything in ClickHouse: one
// period after the load ends.
func (w stepSpan) deadline() time.Time { return w.loadEnd().Add(w.period) }

// overlap is how long a late producer's warm-up ran on after another's
// measured periods began (0 when the producers kept in step).
func (w stepSpan) overlap() time.Duration {
	return max(0, time.Duration(w.warmupLastNs-w.measuredFirstNs))
}

// offered is the rate the producers actually offered over the measured
// periods: samples over the time from the first measured period's start
// to the load's end. It is the nominal rate when the producers keep in
// step and lower when they fall behind their ticks or start apart.
func (w stepSpan) offered(samples int) float64 {
	d := w.loadEnd().Sub(w.measuredStart())
	if d <= 0 {
		return 0
	}
	return float64(samples) / d.Seconds()
}

// poll is one of runSustained's once-a-second looks at the collector.
type poll struct {
	at        time.Time
	cpu       float64 // collector CPU seconds so far
	rss       int64
	backlog   uint64 // WAL records not yet in ClickHouse
	collected uint64 // samples the collector has taken so far
	machine   cpuTimes
}

// cpuTimes is the machine's CPU time so far, all cores, from /proc/stat's
// first line (in USER_HZ ticks): what the producers, the collector,
// ClickHouse and anything else on the machine used together.
type cpuTimes struct{ busy, total uint64 }

// machineCPU reads /proc/stat (zero when it cannot).
func machineCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseCPULine(line)
}

// parseCPULine parses "cpu user nice system idle iowait irq softirq steal
// ...": idle and iowait are not busy; guest time is already in user.
func parseCPULine(line string) cpuTimes {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" { // user nice system idle iowait irq softirq steal, at least
		return cpuTimes{}
	}
	var t cpuTimes
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cpuTimes{}
		}
		t.total += n
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
	}
	return t
}

// busyShare is the share of the machine's CPU time that was busy between
// two readings (0 without time between them).
func busyShare(from, to cpuTimes) float64 {
	if to.total <= from.total {
		return 0
	}
	return float64(to.busy-from.busy) / float64(to.total-from.total)
}

// windowPolls summarises the polls from `from` on: the largest backlog and
// RSS seen, and the last poll before `from` (the window's CPU is the final
// reading less its; what it had collected says how much of the warm-up
// was still at the producers). Without a poll before `from`, before is
// the zero poll: the collector's start.
func windowPolls(polls []poll, from time.Time) (maxBacklog uint64, maxRSS int64, before poll) {
	for _, p := range polls {
		if p.at.Before(from) {
			before = p
			continue
		}
		maxBacklog, maxRSS = max(maxBacklog, p.backlog), max(maxRSS, p.rss)
	}
	return
}

// latencySample is one entry of runSustained's latency list: the latency of
// up to 1,000 samples first seen in a 100 ms bucket of sample time.
type latencySample struct {
	bucket int64 // sample time / 100 ms
	lat    float64
}

// measuredLatencies is the latencies of the buckets that hold measured
// samples (a bucket holding both, possible only when producers drift a
// whole period apart, counts: the figure errs high).
func measuredLatencies(ls []latencySample, measured map[int64]bool) []float64 {
	var out []float64
	for _, l := range ls {
		if measured[l.bucket] {
			out = append(out, l.lat)
		}
	}
	return out
}

// measureWindow checks a finished step in ClickHouse (every timeseries
// exactly w.warmup+w.periods samples, seen with FINAL), reads where its
// measured periods lie, and summarises them: done is when everything was
// in ClickHouse, cpuEnd the collector's CPU seconds then.
func measureWindow(ctx context.Context, conn driver.Conn, db string, w stepWindow, series int, polls []poll, lats []latencySample, done time.Time, cpuEnd float64) (*measuredPeriods, error) {
	span, buckets, err := checkPerSeriesRanks(ctx, conn, db, series, w)
	if err != nil {
		return nil, err
	}
	m := &measuredPeriods{span: span, samples: series * w.periods, start: span.measuredStart(), done: done, deadline: span.deadline()}
	m.sustained = !done.After(m.deadline)
	m.nominal = float64(m.samples) / (float64(w.periods) * w.period.Seconds())
	m.offered = span.offered(m.samples)
	if d := done.Sub(m.start); d > 0 {
		m.delivered = float64(m.samples) / d.Seconds()
	}
	var before poll
	m.maxBacklog, m.maxRSS, before = windowPolls(polls, m.start)
	m.cpuPerM = (cpuEnd - before.cpu) / (float64(m.samples) / 1e6)
	if last := len(polls) - 1; last >= 0 && before.machine.total > 0 {
		m.machineBusy = busyShare(before.machine, polls[last].machine)
	}
	m.warmupLeft = uint64(series*w.warmup) - min(uint64(series*w.warmup), before.collected)
	m.startBacklog = before.backlog
	ls := measuredLatencies(lats, buckets)
	if len(ls) > 0 {
		slices.Sort(ls)
		q := func(f float64) float64 { return ls[min(len(ls)-1, int(f*float64(len(ls))))] }
		m.p50, m.p99, m.pmax = q(0.5), q(0.99), ls[len(ls)-1]
	}
	return m, nil
}

// stepWindow is a step's shape: its period and how many are warm-up.
type stepWindow struct {
	period          time.Duration
	warmup, periods int
}

// checkPerSeriesRanks is checkPerSeries for a step with a warm-up, and
// reads the step's span back: per timeseries (FINAL), its samples sorted
// by time, the warmup-th is its last warm-up sample and the next its first
// measured one. It also returns the 100 ms buckets of sample time that
// hold measured samples of measurements_f64 (runSustained's latency
// table).
func checkPerSeriesRanks(ctx context.Context, conn driver.Conn, db string, series int, w stepWindow) (stepSpan, map[int64]bool, error) {
	span := stepSpan{period: w.period, warmup: w.warmup, periods: w.periods, measuredFirstNs: math.MaxInt64}
	if w.warmup < 1 || w.periods < 1 || w.period <= 0 {
		return span, nil, fmt.Errorf("bench: a step of %d warm-up and %d measured periods of %v", w.warmup, w.periods, w.period)
	}
	n := w.warmup + w.periods
	var got, wrong uint64
	var example string
	for _, t := range pa.AllDatumTypes() {
		// ts[k] is 1-based; a timeseries with another count makes the
		// step fail, so its ranks do not matter.
		q := fmt.Sprintf(`SELECT count(), countIf(length(ts) != %d),
				anyIf(concat(timeseries_name, ' key ', toString(timeseries_key), ': ', toString(length(ts)), ' samples'), length(ts) != %d),
				min(ts[%d]), max(ts[%d]), max(ts[%d])
			FROM (SELECT timeseries_name, timeseries_key, arraySort(groupArray(timestamp_ns)) AS ts FROM %s.%s FINAL GROUP BY timeseries_name, timeseries_key)`,
			n, n, w.warmup+1, w.warmup, n, db, forwarder.MeasurementsTable(t))
		var k, bad uint64
		var ex string
		var first, warmLast, last int64
		if err := conn.QueryRow(ctx, q).Scan(&k, &bad, &ex, &first, &warmLast, &last); err != nil {
			return span, nil, fmt.Errorf("per-series check: %w", err)
		}
		got, wrong = got+k, wrong+bad
		if bad > 0 && example == "" {
			example = ex
		}
		if k > 0 {
			span.measuredFirstNs = min(span.measuredFirstNs, first)
			span.warmupLastNs, span.lastNs = max(span.warmupLastNs, warmLast), max(span.lastNs, last)
		}
	}
	if got != uint64(series) || wrong != 0 {
		return span, nil, fmt.Errorf("per-series check failed: %d timeseries (want %d), %d without exactly %d samples (e.g. %s)", got, series, wrong, n, example)
	}
	rows, err := conn.Query(ctx, fmt.Sprintf(`SELECT DISTINCT intDiv(t, 100000000) FROM (SELECT arraySort(groupArray(timestamp_ns)) AS ts FROM %s.%s FINAL GROUP BY timeseries_name, timeseries_key)
		ARRAY JOIN arraySlice(ts, %d) AS t`, db, forwarder.MeasurementsTable(pa.DatumF64), w.warmup+1))
	if err != nil {
		return span, nil, fmt.Errorf("measured buckets: %w", err)
	}
	defer rows.Close()
	buckets := map[int64]bool{}
	for rows.Next() {
		var b int64
		if err := rows.Scan(&b); err != nil {
			return span, nil, fmt.Errorf("measured buckets: %w", err)
		}
		buckets[b] = true
	}
	return span, buckets, rows.Err()
}

// producerBufferBytes is the byte bound a `max` step gives each of its
// producers: room for every sample of the step (perProducer samples at
// bytesPerSample, producerapi's estimate of a held fleet sample being
// 740-820 bytes), so the warm-up's start-up (every series defined, every
// fields row written: more than two periods at 100,000 VMs on a busy
// machine) does not force samples out before the steady state is reached.
// All producers together get at most a quarter of memAvailable (a Go heap
// may double its live data between collections, and the machine runs the
// collector and ClickHouse too), and never less than the producers'
// default, 256 MiB.
func producerBufferBytes(perProducer, producers int, memAvailable int64) int64 {
	const bytesPerSample, floor = 1 << 10, 256 << 20
	want := int64(perProducer) * bytesPerSample
	capped := memAvailable / 4 / int64(max(1, producers))
	return max(floor, min(want, capped))
}

// memAvailable is /proc/meminfo's MemAvailable in bytes (0 when unknown).
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// watchAllIn polls a collector's status every 250 ms from a goroutine and
// records the first moment it had taken total samples with no WAL record
// left to forward: when everything was in ClickHouse, to a finer grain
// than runSustained's loop, whose ClickHouse queries take seconds on a busy
// machine. at returns that moment (zero until seen); stop ends the watch.
func watchAllIn(ctx context.Context, admin string, total uint64) (at func() time.Time, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var seen atomic.Int64
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var st collectorProgress
			if getJSON("http://"+admin+"/v1/status", &st) != nil {
				continue
			}
			now := time.Now()
			var collected uint64
			for _, p := range st.Producers {
				collected += p.Samples
			}
			if collected == total && st.Checkpoint.BacklogRecords == 0 {
				seen.Store(now.UnixNano())
				return
			}
		}
	}()
	return func() time.Time {
			if ns := seen.Load(); ns != 0 {
				return time.Unix(0, ns)
			}
			return time.Time{}
		}, func() {
			cancel()
			<-finished
		}
}

// collectorProgress is what the bench reads of a collector's /v1/status:
// its WAL backlog and the samples it took per producer.
type collectorProgress struct {
	Checkpoint struct {
		BacklogRecords uint64 `json:"backlog_records"`
	} `json:"checkpoint"`
	Producers []struct {
		Samples uint64 `json:"samples"`
	} `json:"producers"`
}
