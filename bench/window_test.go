package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestStepSpanArithmetic: the measured periods run from the earliest first
// measured sample to one period after the latest sample; the deadline is
// one period later; the actual offered rate falls below the nominal when
// producers drift apart, and a late producer's warm-up shows as overlap.
func TestStepSpanArithmetic(t *testing.T) {
	const p = 10 * time.Second
	const t0 = int64(1_700_000_000_000_000_000)
	sec := func(s float64) int64 { return t0 + int64(s*float64(time.Second)) }
	tests := []struct {
		name                  string
		first, warmLast, last int64
		samples               int
		offered               float64
		overlap               time.Duration
		deadline              int64
	}{
		// 2 warm-up periods at 0 and 10 s, measured at 20 and 30 s.
		{"in step", sec(20), sec(10.0002), sec(30.0002), 4_400_000, 4_400_000 / 20.0002, 0, sec(50.0002)},
		// A second producer 3 s behind: its periods at 3, 13, 23, 33 s.
		{"started 3 s apart", sec(20), sec(13), sec(33), 4_400_000, 4_400_000 / 23.0, 0, sec(53)},
		// A producer whose ticks slipped: its warm-up's last period at
		// 22 s, after the others' measured periods began at 20 s.
		{"a late producer", sec(20), sec(22), sec(42), 4_400_000, 4_400_000 / 32.0, 2 * time.Second, sec(62)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := stepSpan{period: p, warmup: 2, periods: 2, measuredFirstNs: tt.first, warmupLastNs: tt.warmLast, lastNs: tt.last}
			if got := w.offered(tt.samples); math.Abs(got-tt.offered) > 1e-6*tt.offered {
				t.Errorf("offered %.3f/s, want %.3f/s", got, tt.offered)
			}
			if got := w.overlap(); got != tt.overlap {
				t.Errorf("overlap %v, want %v", got, tt.overlap)
			}
			if got := w.deadline(); !got.Equal(time.Unix(0, tt.deadline)) {
				t.Errorf("deadline %v, want %v", got, time.Unix(0, tt.deadline))
			}
			if got := w.measuredStart(); !got.Equal(time.Unix(0, tt.first)) {
				t.Errorf("measured start %v, want %v", got, time.Unix(0, tt.first))
			}
		})
	}
}

// TestWindowPollsCoverTheMeasuredPeriods: backlog and RSS peaks of the
// warm-up do not count, and the CPU baseline is the last reading before
// the measured periods.
func TestWindowPollsCoverTheMeasuredPeriods(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	polls := []poll{
		{at(1), 1.0, 900, 50, 1000, cpuTimes{10, 100}}, // the warm-up's peaks
		{at(2), 2.5, 800, 40, 2000, cpuTimes{20, 200}},
		{at(3), 3.0, 300, 4, 4000, cpuTimes{30, 300}},
		{at(4), 3.5, 350, 7, 5000, cpuTimes{40, 400}},
		{at(5), 4.0, 320, 0, 6000, cpuTimes{50, 500}},
	}
	tests := []struct {
		name    string
		from    time.Time
		backlog uint64
		rss     int64
		before  poll
		polls   []poll
	}{
		{"after the warm-up", at(3), 7, 350, polls[1], polls},
		{"between polls", at(3).Add(-time.Millisecond), 7, 350, polls[1], polls},
		{"from the start", at(0), 50, 900, poll{}, polls},
		{"after the last poll", at(6), 0, 0, polls[4], polls},
		{"no polls", at(3), 0, 0, poll{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, r, before := windowPolls(tt.polls, tt.from)
			if b != tt.backlog || r != tt.rss || before != tt.before {
				t.Fatalf("windowPolls = backlog %d, RSS %d, before %+v; want %d, %d, %+v", b, r, before, tt.backlog, tt.rss, tt.before)
			}
		})
	}
}

// TestMeasuredLatenciesDropTheWarmUp: only buckets holding measured
// samples count.
func TestMeasuredLatenciesDropTheWarmUp(t *testing.T) {
	ls := []latencySample{{100, 30}, {101, 29}, {249, 20}, {250, 3}, {251, 2}, {400, 1}}
	measured := map[int64]bool{250: true, 251: true, 400: true, 500: true}
	if got, want := measuredLatencies(ls, measured), []float64{3, 2, 1}; !slices.Equal(got, want) {
		t.Fatalf("measured latencies %v, want %v", got, want)
	}
	if got := measuredLatencies(ls, nil); len(got) != 0 {
		t.Fatalf("latencies without measured buckets: %v", got)
	}
}

// TestProducerBufferBytes: room for the whole step, within a quarter of
// the available memory, never below the producers' default.
func TestProducerBufferBytes(t *testing.T) {
	const mib, gib = 1 << 20, 1 << 30
	tests := []struct {
		name                   string
		perProducer, producers int
		avail                  int64
		want                   int64
	}{
		{"room for the step", 880_000, 10, 64 * gib, 880_000 << 10},
		{"capped by memory", 880_000, 10, 16 * gib, 16 * gib / 4 / 10},
		{"never below the default", 880_000, 30, 8 * gib, 256 * mib},
		{"small step", 1_000, 1, 64 * gib, 256 * mib},
		{"memory unknown", 880_000, 10, 0, 256 * mib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := producerBufferBytes(tt.perProducer, tt.producers, tt.avail); got != tt.want {
				t.Fatalf("producerBufferBytes(%d, %d, %d) = %d, want %d", tt.perProducer, tt.producers, tt.avail, got, tt.want)
			}
		})
	}
}

// TestWatchAllInSeesTheFirstCompleteStatus: the moment recorded is that of
// the first status with every sample taken and no record left to forward
// (not one with samples still missing, nor one with a backlog).
func TestWatchAllInSeesTheFirstCompleteStatus(t *testing.T) {
	var calls atomic.Int64
	var completeFrom atomic.Int64 // unix ns of the first complete answer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		samples, backlog := 1000, 0
		switch {
		case n <= 2:
			samples = 999 // a sample still at the producer
		case n <= 4:
			backlog = 3 // all taken, not all forwarded
		default:
			completeFrom.CompareAndSwap(0, time.Now().UnixNano())
		}
		fmt.Fprintf(w, `{"checkpoint": {"backlog_records": %d}, "producers": [{"samples": %d}, {"samples": 0}]}`, backlog, samples)
	}))
	defer srv.Close()
	at, stop := watchAllIn(context.Background(), strings.TrimPrefix(srv.URL, "http://"), 1000)
	defer stop()
	deadline := time.Now().Add(30 * time.Second)
	for at().IsZero() {
		if time.Now().After(deadline) {
			t.Fatalf("no complete status seen after %d calls", calls.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	first := time.Unix(0, completeFrom.Load())
	if got := at(); got.Before(first) || calls.Load() < 5 {
		t.Fatalf("all in at %v, before the first complete status at %v (%d calls)", got, first, calls.Load())
	}
	stop()
	n := calls.Load()
	time.Sleep(600 * time.Millisecond)
	if calls.Load() != n {
		t.Fatalf("the watch went on polling after it saw everything in")
	}
}

// TestMachineCPUShare: /proc/stat's cpu line, idle and iowait not busy.
func TestMachineCPUShare(t *testing.T) {
	tests := []struct {
		line string
		want cpuTimes
	}{
		{"cpu  100 5 50 800 40 0 5 0 0 0", cpuTimes{busy: 160, total: 1000}},
		{"cpu  1 2 3 4", cpuTimes{}},               // too short
		{"cpu0 100 5 50 800 40 0 5 0", cpuTimes{}}, // a core, not the machine
		{"cpu  x 5 50 800 40 0 5 0", cpuTimes{}},
	}
	for _, tt := range tests {
		if got := parseCPULine(tt.line); got != tt.want {
			t.Errorf("parseCPULine(%q) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
	if got := busyShare(cpuTimes{160, 1000}, cpuTimes{310, 1200}); got != 0.75 {
		t.Errorf("busy share %v, want 0.75", got)
	}
	if got := busyShare(cpuTimes{160, 1000}, cpuTimes{160, 1000}); got != 0 {
		t.Errorf("busy share without time %v, want 0", got)
	}
	if m := machineCPU(); m.total == 0 || m.busy > m.total {
		t.Errorf("this machine's /proc/stat read as %+v", m)
	}
}
