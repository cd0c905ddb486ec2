package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// BenchmarkCollectorRSSByProducers measures one collector process's
// resident memory with 10, 100 and 1,000 producers
// (HOLDFAST_BENCH_RSS_PRODUCERS, comma-separated). The producers are
// producerapi servers on loopback inside this test process; the collector
// is a real `holdfast collector` process with default memory settings,
// writing to ClickHouse. Each producer gets HOLDFAST_BENCH_RSS_SAMPLES
// (default 50) samples every interval (HOLDFAST_BENCH_RSS_INTERVAL_S,
// default 5 s, also the collection interval). After two intervals of
// warm-up, RSS is read from /proc every 500 ms for HOLDFAST_BENCH_SECONDS
// (default 30); reported: median and peak RSS (VmHWM), goroutines, and the
// per-producer cost between the smallest and largest step.
func BenchmarkCollectorRSSByProducers(b *testing.B) {
	addr, _ := dial(b)
	bin := filepath.Join(b.TempDir(), "holdfast")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/holdfast").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	steps := []int{10, 100, 1000}
	if v := os.Getenv("HOLDFAST_BENCH_RSS_PRODUCERS"); v != "" {
		steps = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				b.Fatalf("HOLDFAST_BENCH_RSS_PRODUCERS: %q", v)
			}
			steps = append(steps, n)
		}
	}
	interval := time.Duration(envInt("HOLDFAST_BENCH_RSS_INTERVAL_S", 5)) * time.Second
	perInterval := envInt("HOLDFAST_BENCH_RSS_SAMPLES", 50)
	seconds := envInt("HOLDFAST_BENCH_SECONDS", 30)
	for i := 0; i < b.N; i++ {
		var results []rssResult
		for _, n := range steps {
			r := measureCollectorRSS(b, bin, addr, n, interval, perInterval, time.Duration(seconds)*time.Second)
			results = append(results, r)
			b.ReportMetric(float64(r.median)/(1<<20), fmt.Sprintf("rss_MiB_%d_producers", n))
			b.ReportMetric(float64(r.peak)/(1<<20), fmt.Sprintf("peak_rss_MiB_%d_producers", n))
			b.Logf("%5d producers: RSS median %.1f MiB, peak (VmHWM) %.1f MiB, %d goroutines, %d samples collected (about %d produced up to the last interval)",
				n, float64(r.median)/(1<<20), float64(r.peak)/(1<<20), r.goroutines, r.collected, r.expected)
		}
		if len(results) > 1 {
			lo, hi := results[0], results[len(results)-1]
			per := float64(hi.median-lo.median) / float64(hi.producers-lo.producers)
			b.ReportMetric(per/1024, "rss_KiB_per_producer")
			b.Logf("per-producer RSS cost between %d and %d producers: %.1f KiB", lo.producers, hi.producers, per/1024)
		}
	}
}

type rssResult struct {
	producers           int
	median, peak        int64
	goroutines          int
	collected, expected uint64
}

func measureCollectorRSS(b *testing.B, bin, chAddr string, n int, interval time.Duration, perInterval int, measure time.Duration) rssResult {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var servers []*pa.Server
	var urls []string
	for i := 0; i < n; i++ {
		s, err := pa.NewServer(pa.ServerOptions{ID: fmt.Sprintf("rss-%d-%d", n, i)})
		if err != nil {
			b.Fatal(err)
		}
		hs := httptest.NewServer(s.Handler())
		defer hs.Close()
		servers = append(servers, s)
		urls = append(urls, hs.URL)
	}
	// Every producer gets perInterval samples each interval.
	var produced uint64
	feed := func(ts int64) {
		for _, s := range servers {
			if err := s.Add(sampletest.NewFleet(10).Append(nil, perInterval, ts)); err == nil {
				produced += uint64(perInterval)
			}
		}
	}
	feed(time.Now().UnixNano())
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				feed(now.UnixNano())
			}
		}
	}()

	admin := freeTCPAddr(b)
	args := []string{"collector", "--data-dir", b.TempDir(), "--listen", admin, "--clickhouse", chAddr,
		"--database", fmt.Sprintf("holdfast_rss_%d", n), "--interval", interval.String()}
	for _, u := range urls {
		args = append(args, "--producer", u)
	}
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(b.TempDir(), "collector.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	time.Sleep(2 * interval) // warm-up: every loop has drained at least once
	var rss []int64
	deadline := time.Now().Add(measure)
	for time.Now().Before(deadline) {
		v, err := procStatus(cmd.Process.Pid, "VmRSS")
		if err != nil {
			b.Fatalf("collector exited? %v", err)
		}
		rss = append(rss, v)
		time.Sleep(500 * time.Millisecond)
	}
	peak, _ := procStatus(cmd.Process.Pid, "VmHWM")
	slices.Sort(rss)
	cancel()
	<-fed
	// What was produced up to the last interval has been collected by now
	// (each loop drains once per interval).
	r := rssResult{producers: n, median: rss[len(rss)/2], peak: peak, goroutines: int(metricValue("http://"+admin+"/metrics", "go_goroutines")),
		collected: uint64(metricValue("http://"+admin+"/metrics", "holdfast_collector_samples_total")), expected: produced - uint64(n*perInterval)}
	return r
}

func freeTCPAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// procStatus reads a "kB" line of /proc/PID/status, in bytes.
func procStatus(pid int, key string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == key {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", key, pid)
}

// metricValue sums a metric's samples in a Prometheus text page.
func metricValue(url, name string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}
