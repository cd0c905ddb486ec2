package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

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
	bin := filepath.Join(b.TempDir(), "holdfast")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/holdfast").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	vms := envInt("HOLDFAST_BENCH_VMS", 100_000)
	periods := max(1, envInt("HOLDFAST_BENCH_SECONDS", 60)/10)
	dir := os.Getenv("HOLDFAST_BENCH_LOGS")
	if dir == "" {
		dir = b.TempDir()
	}
	ctx := context.Background()
	ceiling, err := directCeiling(ctx, conn, 2_000_000, 10_000)
	if err != nil {
		b.Fatal(err)
	}
	s, err := runSustained(ctx, Env{Dir: dir, Binary: bin, ClickHouse: addr, Progress: os.Stdout}, conn, vms, 0, periods)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(s.offered, "offered_samples/s")
	b.ReportMetric(s.delivered, "delivered_samples/s")
	b.ReportMetric(ceiling, "direct_samples/s")
	b.ReportMetric(s.offered/ceiling, "e2e_vs_direct_ratio")
	b.ReportMetric(float64(s.maxRSS)/(1<<20), "collector_peak_rss_MiB")
	b.ReportMetric(s.cpu/(float64(s.total)/1e6), "collector_cpu_s/Msample")
	b.ReportMetric(s.p50, "latency_p50_s")
	b.ReportMetric(s.p99, "latency_p99_s")
	b.ReportMetric(float64(s.maxBacklog), "max_backlog_records")
	b.Logf("%d VMs x 22 / 10s over %d producers for %d periods: %d samples, all in ClickHouse once; offered %.0f/s, done in %v (%.0f/s incl. drain); direct insert %.0f/s (ratio %.2f); collector peak RSS %.0f MiB, %.2f CPU s per million samples; latency p50 %.1fs p99 %.1fs max %.1fs; max backlog %d records",
		s.vms, s.producers, s.periods, s.total, s.offered, s.elapsed.Round(time.Second), s.delivered, ceiling, s.offered/ceiling,
		float64(s.maxRSS)/(1<<20), s.cpu/(float64(s.total)/1e6), s.p50, s.p99, s.pmax, s.maxBacklog)
}
