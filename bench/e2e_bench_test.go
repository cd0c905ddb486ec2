package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

func freePort(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func buildHoldfast(b *testing.B) string {
	bin := filepath.Join(b.TempDir(), "holdfast")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/holdfast").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startBin starts a holdfast process; its output goes to a file in
// HOLDFAST_BENCH_LOGS (kept) or a temporary directory.
func startBin(b *testing.B, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	dir := os.Getenv("HOLDFAST_BENCH_LOGS")
	if dir == "" {
		dir = b.TempDir()
	}
	os.MkdirAll(dir, 0o755)
	log, _ := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.log", args[0], time.Now().UnixNano())))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() })
	return cmd
}

// procStats reads a process's resident set and CPU seconds from /proc.
func procStats(pid int) (rssBytes int64, cpuSeconds float64) {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
				rssBytes = kb << 10
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseFloat(fields[11], 64)
		st, _ := strconv.ParseFloat(fields[12], 64)
		cpuSeconds = (ut + st) / 100 // USER_HZ
	}
	return
}

func getStatus(addr string, v any) error {
	resp, err := http.Get("http://" + addr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// BenchmarkRFD125Sustained runs RFD 125's stress load end to end with real
// processes: 100,000 VMs (HOLDFAST_BENCH_VMS) x 22 measurements every 10 s =
// 220,000 samples/s, spread over HOLDFAST_BENCH_PRODUCERS producer processes,
// one collector process, ClickHouse on the same machine, for
// HOLDFAST_BENCH_SECONDS (default 60). It reports the sustained rate, the
// backlog, the collector's peak RSS and CPU seconds per million samples, the
// end-to-end latency (sample timestamp to visible in ClickHouse) and, in the
// same run, the direct-insert ceiling for the same rows.
func BenchmarkRFD125Sustained(b *testing.B) {
	addr, conn := dial(b)
	bin := buildHoldfast(b)
	vms := envInt("HOLDFAST_BENCH_VMS", 100_000)
	producers := envInt("HOLDFAST_BENCH_PRODUCERS", 10)
	seconds := envInt("HOLDFAST_BENCH_SECONDS", 60)
	const period = 10 * time.Second
	periods := max(1, seconds/int(period.Seconds()))
	perProducerVMs := vms / producers
	perProducer := perProducerVMs * 22 * periods
	total := perProducer * producers

	// The ceiling: the same rows inserted straight from memory.
	db := freshDB(b, conn, "ceiling")
	ins := forwarder.NewInserter(conn, db, time.Minute)
	fleet := sampletest.NewFleet(perProducerVMs)
	ceilingSamples := min(total, 2_000_000)
	var batches [][]pa.Sample
	for done := 0; done < ceilingSamples; done += 100_000 {
		batches = append(batches, fleet.Append(nil, min(100_000, ceilingSamples-done), int64(done)))
	}
	start := time.Now()
	for _, s := range batches {
		if err := ins.Insert(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
	direct := float64(ceilingSamples) / time.Since(start).Seconds()
	batches = nil

	db = freshDB(b, conn, "rfd125")
	var paddrs []string
	for i := 0; i < producers; i++ {
		pa := freePort(b)
		startBin(b, bin, "producer", "--listen", pa, "--vms", fmt.Sprint(perProducerVMs), "--interval", period.String(),
			"--total-samples", fmt.Sprint(perProducer), "--max-samples", "2000000")
		paddrs = append(paddrs, pa)
	}
	admin := freePort(b)
	args := []string{"collector", "--data-dir", b.TempDir(), "--listen", admin, "--clickhouse", addr, "--database", db,
		"--interval", "1s", "--flush-age", "2s"}
	for _, p := range paddrs {
		args = append(args, "--producer", "http://"+p)
	}
	collector := startBin(b, bin, args...)
	began := time.Now()
	var maxRSS int64
	var maxBacklog uint64
	var latencies []float64 // seconds, one entry per 1,000 samples seen
	prevBuckets := map[int64]uint64{}
	deadline := began.Add(time.Duration(periods)*period + 5*time.Minute)
	for {
		time.Sleep(time.Second)
		rss, _ := procStats(collector.Process.Pid)
		maxRSS = max(maxRSS, rss)
		var cp struct {
			BacklogRecords uint64 `json:"backlog_records"`
		}
		if err := getStatus(admin+"/v1/checkpoint", &cp); err == nil {
			maxBacklog = max(maxBacklog, cp.BacklogRecords)
		}
		// Newly visible f64 rows, per 100 ms of sample time: each is
		// visible now, so its latency is now minus its timestamp.
		now := time.Now()
		rows, err := conn.Query(context.Background(), fmt.Sprintf(
			"SELECT intDiv(timestamp_ns, 100000000) AS b, count() FROM %s.measurements_f64 WHERE timestamp_ns > %d GROUP BY b",
			db, began.Add(-time.Second).UnixNano()))
		if err == nil {
			for rows.Next() {
				var bucket int64
				var n uint64
				rows.Scan(&bucket, &n)
				if fresh := n - prevBuckets[bucket]; n > prevBuckets[bucket] {
					lat := now.Sub(time.Unix(0, bucket*100_000_000+50_000_000)).Seconds()
					for i := uint64(0); i < (fresh+999)/1000; i++ {
						latencies = append(latencies, lat)
					}
					prevBuckets[bucket] = n
				}
			}
			rows.Close()
		}
		released := 0
		for _, p := range paddrs {
			var st pa.ServerStats
			if getStatus(p+"/v1/stats", &st) == nil && st.Released == uint64(perProducer) {
				released++
			}
		}
		if released == producers && len(latencies) > 0 {
			var cp2 struct {
				BacklogRecords uint64 `json:"backlog_records"`
			}
			if getStatus(admin+"/v1/checkpoint", &cp2) == nil && cp2.BacklogRecords == 0 {
				break
			}
		}
		if now.After(deadline) {
			b.Fatalf("run did not finish: %d of %d producers fully released", released, producers)
		}
	}
	elapsed := time.Since(began)
	_, cpu := procStats(collector.Process.Pid)
	resp, err := http.Post("http://"+admin+"/v1/flush", "", nil)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("flush: %v %v", resp, err)
	}
	var seen uint64
	for _, t := range pa.AllDatumTypes() {
		var n uint64
		if err := conn.QueryRow(context.Background(), fmt.Sprintf("SELECT count() FROM %s.%s FINAL", db, forwarder.MeasurementsTable(t))).Scan(&n); err == nil {
			seen += n
		}
	}
	if seen != uint64(total) {
		b.Fatalf("zero-loss check: ClickHouse holds %d samples, producers released %d", seen, total)
	}
	slices.Sort(latencies)
	q := func(f float64) float64 { return latencies[min(len(latencies)-1, int(f*float64(len(latencies))))] }
	// Producers generate a period at once; the sustained rate is the
	// offered load, delivered with the backlog returning to zero.
	offered := float64(total) / (float64(periods) * period.Seconds())
	delivered := float64(total) / elapsed.Seconds()
	b.ReportMetric(offered, "offered_samples/s")
	b.ReportMetric(delivered, "delivered_samples/s")
	b.ReportMetric(direct, "direct_samples/s")
	b.ReportMetric(offered/direct, "e2e_vs_direct_ratio")
	b.ReportMetric(float64(maxRSS)/(1<<20), "collector_peak_rss_MiB")
	b.ReportMetric(cpu/(float64(total)/1e6), "collector_cpu_s/Msample")
	b.ReportMetric(q(0.5), "latency_p50_s")
	b.ReportMetric(q(0.99), "latency_p99_s")
	b.ReportMetric(float64(maxBacklog), "max_backlog_records")
	b.Logf("%d VMs x 22 / %v over %d producers for %d periods: %d samples, all in ClickHouse once; offered %.0f/s, done in %v (%.0f/s incl. drain); direct insert %.0f/s (ratio %.2f); collector peak RSS %.0f MiB, %.2f CPU s per million samples; latency p50 %.1fs p99 %.1fs max %.1fs; max backlog %d records",
		vms, period, producers, periods, total, offered, elapsed.Round(time.Second), delivered, direct, offered/direct,
		float64(maxRSS)/(1<<20), cpu/(float64(total)/1e6), q(0.5), q(0.99), latencies[len(latencies)-1], maxBacklog)
}
