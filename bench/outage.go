package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/chserver"
	pa "github.com/holdfast/holdfast/producerapi"
)

// load is a set of producer processes and one collector process.
type load struct {
	env       Env
	ps        *procs
	paddrs    []string
	admin     string
	colArgs   []string
	collector int // pid
	perProd   int
	total     int
	dataDir   string
	began     time.Time
	series    map[string][]Point
}

func startLoad(env Env, name, chAddr, db string, vms, periods int, extra ...string) (*load, error) {
	dir := filepath.Join(env.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	producers := max(1, vms/10_000)
	l := &load{env: env, ps: &procs{logDir: dir}, dataDir: filepath.Join(dir, "data"), series: map[string][]Point{}}
	l.perProd = vms / producers * 22 * periods
	l.total = l.perProd * producers
	for i := 0; i < producers; i++ {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		// Each producer its own VMs: no two report the same timeseries.
		if _, err := l.ps.start(env.Binary, "producer", "--listen", a, "--vms", fmt.Sprint(vms/producers), "--vm-offset", fmt.Sprint(i*(vms/producers)), "--interval", "10s",
			"--total-samples", fmt.Sprint(l.perProd), "--max-samples", "6000000", "--max-bytes", "4GiB"); err != nil {
			l.ps.stop()
			return nil, err
		}
		l.paddrs = append(l.paddrs, a)
	}
	var err error
	if l.admin, err = freeAddr(); err != nil {
		l.ps.stop()
		return nil, err
	}
	l.colArgs = append([]string{"collector", "--data-dir", l.dataDir, "--listen", l.admin, "--clickhouse", chAddr,
		"--database", db, "--interval", "1s", "--flush-age", "2s"}, extra...)
	for _, p := range l.paddrs {
		l.colArgs = append(l.colArgs, "--producer", "http://"+p)
	}
	l.colArgs = append(l.colArgs, env.CollectorArgs...)
	l.began = time.Now()
	if err := l.startCollector(); err != nil {
		l.ps.stop()
		return nil, err
	}
	return l, nil
}

func (l *load) startCollector() error {
	cmd, err := l.ps.start(l.env.Binary, l.colArgs...)
	if err != nil {
		return err
	}
	l.collector = cmd.Process.Pid
	return nil
}

func (l *load) killCollector() {
	for _, c := range l.ps.cmds {
		if c.Process.Pid == l.collector {
			c.Process.Kill()
			c.Wait()
		}
	}
}

// loadState is one poll of the collector and the producers.
type loadState struct {
	t                       float64
	state                   string
	walMiB                  float64
	backlog                 uint64
	collected               float64
	lastSuccess             time.Time
	pending, released, drop uint64
	rssMiB                  float64
	ok                      bool
}

func (l *load) poll() loadState {
	s := loadState{t: time.Since(l.began).Seconds()}
	var st struct {
		State      string `json:"state"`
		Checkpoint struct {
			BacklogRecords uint64 `json:"backlog_records"`
			WALSizeBytes   int64  `json:"wal_size_bytes"`
		} `json:"checkpoint"`
		Producers []struct {
			Samples     uint64    `json:"samples"`
			LastSuccess time.Time `json:"last_success"`
		} `json:"producers"`
	}
	if getJSON("http://"+l.admin+"/v1/status", &st) == nil {
		s.ok, s.state, s.backlog, s.walMiB = true, st.State, st.Checkpoint.BacklogRecords, float64(st.Checkpoint.WALSizeBytes)/(1<<20)
		for _, p := range st.Producers {
			s.collected += float64(p.Samples)
			if p.LastSuccess.After(s.lastSuccess) {
				s.lastSuccess = p.LastSuccess
			}
		}
	}
	for _, p := range l.paddrs {
		var ps pa.ServerStats
		if getJSON("http://"+p+"/v1/stats", &ps) == nil {
			s.pending += ps.Pending
			s.released += ps.Released
			s.drop += ps.Dropped
		}
	}
	rss, _ := procStats(l.collector)
	s.rssMiB = float64(rss) / (1 << 20)
	if s.ok {
		l.series["wal_mib"] = append(l.series["wal_mib"], Point{s.t, s.walMiB})
		l.series["backlog_records"] = append(l.series["backlog_records"], Point{s.t, float64(s.backlog)})
		l.series["producers_pending"] = append(l.series["producers_pending"], Point{s.t, float64(s.pending)})
		l.series["collector_rss_mib"] = append(l.series["collector_rss_mib"], Point{s.t, s.rssMiB})
	}
	return s
}

// waitUntil polls every second until cond holds or the deadline passes.
func (l *load) waitUntil(ctx context.Context, timeout time.Duration, what string, cond func(loadState) bool) (loadState, error) {
	deadline := time.Now().Add(timeout)
	pr := &progress{w: l.env.Progress, every: 5 * time.Second}
	for {
		s := l.poll()
		pr.say("  %5.0fs %s: state %s, WAL %.0f MiB, backlog %d records, producers pending %d, released %d of %d",
			s.t, what, s.state, s.walMiB, s.backlog, s.pending, s.released, l.total)
		if cond(s) {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("timed out waiting for %s (logs in %s)", what, l.ps.logDir)
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func countFinal(ctx context.Context, conn driver.Conn, db string) uint64 {
	var seen uint64
	for _, t := range pa.AllDatumTypes() {
		var n uint64
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.%s FINAL", db, forwarder.MeasurementsTable(t))).Scan(&n); err == nil {
			seen += n
		}
	}
	return seen
}

// privateClickHouse starts a ClickHouse of the scenario's own (it will be
// stopped and started) and a result stamped with its version.
func privateClickHouse(ctx context.Context, env Env, scenario string) (*chserver.Server, driver.Conn, *Result, error) {
	srv, err := chserver.Start(ctx, filepath.Join(env.Dir, scenario+"-clickhouse"))
	if err != nil {
		return nil, nil, nil, err
	}
	conn, err := env.dialBaseline(srv.Addr)
	if err != nil {
		srv.Stop()
		return nil, nil, nil, err
	}
	r := newResult(scenario)
	r.Machine.ClickHouse = serverVersion(ctx, conn)
	return srv, conn, r, nil
}

// RunOutage: ClickHouse is stopped under load (20,000 VMs, 44,000
// samples/s) for a third of the budget. The WAL grows until its budget
// (64 MiB), the collector applies backpressure (producers keep their data),
// and once ClickHouse is back everything is caught up with zero loss.
func RunOutage(ctx context.Context, env Env) (*Result, error) {
	srv, conn, r, err := privateClickHouse(ctx, env, "outage")
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	defer conn.Close()
	outage := max(20*time.Second, env.Duration/3)
	periods := max(3, int((outage+20*time.Second)/(10*time.Second)))
	const vms, budget = 20_000, "64MiB"
	r.Params["vms"], r.Params["outage_seconds"], r.Params["periods"], r.Params["wal_budget"] = vms, outage.Seconds(), periods, budget
	l, err := startLoad(env, "outage", srv.Addr, "holdfast_outage", vms, periods, "--wal-budget", budget)
	if err != nil {
		return nil, err
	}
	defer l.ps.stop()
	if _, err := l.waitUntil(ctx, time.Minute, "first data in ClickHouse", func(s loadState) bool { return s.ok && s.collected > 0 && s.backlog == 0 }); err != nil {
		return nil, err
	}
	srv.Stop()
	stopped := time.Now()
	fmt.Fprintf(env.Progress, "outage: ClickHouse stopped for %v\n", outage)
	var toBackpressure float64 = -1
	var maxWAL float64
	var maxPending uint64
	for time.Since(stopped) < outage {
		s := l.poll()
		maxWAL, maxPending = max(maxWAL, s.walMiB), max(maxPending, s.pending)
		if s.state == "backpressure" && toBackpressure < 0 {
			toBackpressure = time.Since(stopped).Seconds()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	if err := srv.Restart(ctx); err != nil {
		return nil, err
	}
	restarted := time.Now()
	fmt.Fprintln(env.Progress, "outage: ClickHouse back")
	last, err := l.waitUntil(ctx, 10*time.Minute, "catch-up", func(s loadState) bool {
		maxWAL, maxPending = max(maxWAL, s.walMiB), max(maxPending, s.pending)
		return s.released == uint64(l.total) && s.backlog == 0 && s.collected == float64(l.total)
	})
	if err != nil {
		return nil, err
	}
	catchUp := time.Since(restarted).Seconds()
	seen := countFinal(ctx, conn, "holdfast_outage")
	r.Metrics["outage_s"] = outage.Seconds()
	r.Metrics["time_to_backpressure_s"] = toBackpressure
	r.Metrics["max_wal_mib"] = maxWAL
	r.Metrics["max_producer_pending_samples"] = float64(maxPending)
	r.Metrics["producer_dropped_samples"] = float64(last.drop)
	r.Metrics["catch_up_s"] = catchUp
	r.Metrics["samples"] = float64(l.total)
	r.Metrics["samples_in_clickhouse"] = float64(seen)
	r.Metrics["zero_loss"] = 0
	if seen == uint64(l.total) && last.drop == 0 {
		r.Metrics["zero_loss"] = 1
	}
	r.target("zero_loss", ">=", 1)
	r.Tables = append(r.Tables, Table{Title: "ClickHouse outage under load (20,000 VMs, 44,000 samples/s offered)",
		Columns: []string{"outage s", "to backpressure s", "max WAL MiB", "max pending at producers", "dropped", "catch-up s", "in ClickHouse"},
		Rows:    [][]string{{f0(outage.Seconds()), fmt.Sprintf("%.0f", toBackpressure), f0(maxWAL), fmt.Sprint(maxPending), fmt.Sprint(last.drop), f0(catchUp), fmt.Sprintf("%d of %d", seen, l.total)}}})
	r.Series = l.series
	return r.finish(), nil
}

// RunRecovery builds a backlog (RFD 125's full load, 220,000 samples/s, with
// ClickHouse stopped) until the producers are done, kills the collector with
// SIGKILL, starts ClickHouse and the collector again, and measures the time
// to the first collection, the drain rate against direct inserts measured in
// the same run, and the collector's memory while the backlog shrinks.
func RunRecovery(ctx context.Context, env Env) (*Result, error) {
	srv, conn, r, err := privateClickHouse(ctx, env, "recovery")
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	defer conn.Close()
	periods := max(2, int(env.Duration.Seconds()/3/10))
	// The ceiling inserts the very rows the backlog will hold.
	ceiling, err := directCeiling(ctx, conn, 100_000*22*periods, 100_000)
	if err != nil {
		return nil, err
	}
	db, _, err := freshDB(ctx, conn, "recovery")
	if err != nil {
		return nil, err
	}
	r.Params["vms"], r.Params["periods"] = 100_000, periods
	srv.Stop()
	l, err := startLoad(env, "recovery", srv.Addr, db, 100_000, periods, "--wal-budget", "16GiB")
	if err != nil {
		return nil, err
	}
	defer l.ps.stop()
	built, err := l.waitUntil(ctx, 10*time.Minute, "the backlog", func(s loadState) bool { return s.released == uint64(l.total) })
	if err != nil {
		return nil, err
	}
	l.killCollector()
	fmt.Fprintf(env.Progress, "recovery: backlog of %d samples (%.0f MiB of WAL) built; collector killed with SIGKILL\n", l.total, built.walMiB)
	if err := srv.Restart(ctx); err != nil {
		return nil, err
	}
	restart := time.Now()
	if err := l.startCollector(); err != nil {
		return nil, err
	}
	var firstLoop float64 = -1
	var peakRSS float64
	drainStart := len(l.series["collector_rss_mib"])
	last, err := l.waitUntil(ctx, 30*time.Minute, "the drain", func(s loadState) bool {
		if s.ok && firstLoop < 0 {
			firstLoop = time.Since(restart).Seconds()
		}
		peakRSS = max(peakRSS, s.rssMiB)
		return s.ok && s.backlog == 0
	})
	if err != nil {
		return nil, err
	}
	drainS := time.Since(restart).Seconds()
	seen := countFinal(ctx, conn, db)
	rate := float64(l.total) / drainS
	r.Metrics["backlog_samples"] = float64(l.total)
	r.Metrics["backlog_wal_mib"] = built.walMiB
	r.Metrics["time_to_admin_api_s"] = firstLoop
	r.Metrics["drain_s"] = drainS
	r.Metrics["drain_samples_per_s"] = rate
	r.Metrics["direct_samples_per_s"] = ceiling
	r.Metrics["drain_vs_direct_ratio"] = rate / ceiling
	r.Metrics["peak_rss_during_drain_mib"] = peakRSS
	r.Metrics["samples_in_clickhouse"] = float64(seen)
	r.target("drain_vs_direct_ratio", ">=", 0.8)
	r.Tables = append(r.Tables, Table{Title: "Recovery of a backlog after SIGKILL (ClickHouse down while it built)",
		Columns: []string{"backlog samples", "WAL MiB", "API up s", "drain s", "drain/s", "direct/s", "ratio", "peak RSS MiB", "in ClickHouse"},
		Rows:    [][]string{{fmt.Sprint(l.total), f0(built.walMiB), fmt.Sprintf("%.1f", firstLoop), f0(drainS), f0(rate), f0(ceiling), f2(rate / ceiling), f0(peakRSS), fmt.Sprintf("%d of %d", seen, l.total)}}})
	if seen != uint64(l.total) || last.drop != 0 {
		return nil, fmt.Errorf("zero-loss check failed: ClickHouse holds %d of %d samples, producers dropped %d", seen, l.total, last.drop)
	}
	r.Series = map[string][]Point{"collector_rss_mib": l.series["collector_rss_mib"][drainStart:], "backlog_records": l.series["backlog_records"][drainStart:]}
	return r.finish(), nil
}
