package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/httpserve"
)

// ErrNoPrometheus: the peer scenario needs Debian's prometheus binary.
var ErrNoPrometheus = errors.New("bench: prometheus is not installed (scripts/prometheus.sh install)")

// prometheusBinary finds the prometheus binary.
func prometheusBinary() (string, error) {
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		return "/usr/bin/prometheus", nil
	}
	return "", ErrNoPrometheus
}

// agentRun is the agent side of the peer scenario.
type agentRun struct {
	samples  int64 // delivered to the sink when the CPU was read
	requests int64
	bytes    int64
	cpu      float64 // CPU seconds of the agent process until then
	maxRSS   int64
	elapsed  time.Duration
	appended int64 // prometheus_agent_samples_appended_total at that moment
}

// RunPeer compares holdfast with Prometheus in agent mode on the same
// fleet at the same rate, one after the other in the same run: the agent
// scraping the fleet as text exposition (a `holdfast bench target`
// process) and remote-writing to a counting sink in this process, then
// holdfast's producers, collector and ClickHouse as in rfd125. Each side's
// cost is its one process's CPU seconds (utime+stime) and peak RSS: the
// agent's, the collector's. Each gets half the budget.
func RunPeer(ctx context.Context, env Env) (*Result, error) {
	if env.Binary == "" {
		return nil, fmt.Errorf("peer needs the holdfast binary")
	}
	prom, err := prometheusBinary()
	if err != nil {
		return nil, err
	}
	conn, err := forwarder.Dial(env.ClickHouse, "default", "", 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	vms := env.PeerVMs
	if vms <= 0 {
		vms = 20_000
	}
	period := env.period()
	periods := max(2, int(env.Duration/2/period)-1)
	r := newResult("peer")
	r.Machine.ClickHouse = serverVersion(ctx, conn)
	r.Params["vms"], r.Params["periods"], r.Params["period_seconds"] = vms, periods, period.Seconds()
	r.Params["prometheus"] = prometheusVersion(prom)

	a, err := runAgent(ctx, env, prom, vms, periods)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	h, err := runSustained(ctx, env, conn, vms, 0, periods)
	if err != nil {
		return nil, fmt.Errorf("holdfast: %w", err)
	}
	fleetM := float64(vms*22*periods) / 1e6
	hPerM := h.cpu / (float64(h.total) / 1e6)
	aPerM := a.cpu / (float64(a.samples) / 1e6)
	r.Metrics["holdfast_vs_agent_cpu_ratio"] = h.cpu / a.cpu
	r.Metrics["holdfast_cpu_s"], r.Metrics["agent_cpu_s"] = h.cpu, a.cpu
	r.Metrics["holdfast_cpu_s_per_msample"] = hPerM
	r.Metrics["agent_cpu_s_per_msample"] = aPerM
	r.Metrics["agent_cpu_s_per_fleet_msample"] = a.cpu / fleetM
	r.Metrics["holdfast_rss_mib"] = float64(h.maxRSS) / (1 << 20)
	r.Metrics["agent_rss_mib"] = float64(a.maxRSS) / (1 << 20)
	r.Metrics["holdfast_samples"], r.Metrics["agent_samples"] = float64(h.total), float64(a.samples)
	r.Metrics["samples_per_s"] = float64(vms*22) / period.Seconds()
	r.Metrics["agent_remote_write_bytes_per_sample"] = float64(a.bytes) / float64(a.samples)
	r.target("holdfast_vs_agent_cpu_ratio", "<=", 0.5)
	r.Tables = append(r.Tables, Table{Title: fmt.Sprintf("%d VMs (%.0f samples/s), %d periods of %v: one process each", vms, float64(vms*22)/period.Seconds(), periods, period),
		Columns: []string{"", "process", "samples", "CPU s", "CPU s/M samples", "CPU s/M fleet samples", "peak RSS MiB", "wall s"},
		Rows: [][]string{
			{"holdfast", "collector", fmt.Sprint(h.total), f2(h.cpu), f2(hPerM), f2(h.cpu / fleetM), f0(float64(h.maxRSS) / (1 << 20)), f0(h.elapsed.Seconds())},
			{"Prometheus agent", "prometheus", fmt.Sprint(a.samples), f2(a.cpu), f2(aPerM), f2(a.cpu / fleetM), f0(float64(a.maxRSS) / (1 << 20)), f0(a.elapsed.Seconds())},
		}})
	r.Notes = append(r.Notes,
		fmt.Sprintf("the agent's samples are %d per VM per scrape (each of the 2 histograms is %d series: buckets, _sum, _count) plus 5 synthetic series per target; 'fleet samples' are holdfast's 22 per VM per period", exposedSamplesPerVM(), (exposedSamplesPerVM()-20)/2),
		fmt.Sprintf("agent: %d remote-write requests, %.1f bytes per sample on the wire; all %d samples it had appended when measured reached the sink", a.requests, float64(a.bytes)/float64(a.samples), a.appended),
		"holdfast: every sample fsync'd in the WAL before the producer is acknowledged, and in ClickHouse (checked exactly); the agent fsyncs its WAL only when a 128 MiB segment closes and nothing is acknowledged to the target")
	return r.finish(), nil
}

// runAgent runs a target and a Prometheus agent for periods scrapes of vms
// VMs, and measures the agent until the sink holds every sample of those
// scrapes.
func runAgent(ctx context.Context, env Env, prom string, vms, periods int) (*agentRun, error) {
	period := env.period()
	dir := filepath.Join(env.Dir, fmt.Sprintf("peer-agent-%d", vms))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ps := &procs{logDir: dir}
	defer ps.stop()

	sink := newRemoteWriteSink()
	sinkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sctx, stopSink := context.WithCancel(ctx)
	defer stopSink()
	go httpserve.Serve(sctx, sinkLn, sink, time.Minute)

	targetAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if _, err := ps.start(env.Binary, "bench", "target", "--listen", targetAddr, "--vms", fmt.Sprint(vms), "--period", period.String()); err != nil {
		return nil, err
	}
	shards := TargetOptions{VMs: vms}.shards()
	if err := waitHTTP(ctx, "http://"+targetAddr+"/metrics/0", 30*time.Second); err != nil {
		return nil, fmt.Errorf("target: %w (log in %s)", err, dir)
	}
	web, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(cfg, agentConfig(targetAddr, "http://"+sinkLn.Addr().String()+"/write", len(shards), period), 0o644); err != nil {
		return nil, err
	}
	agent, err := ps.start(prom, "--enable-feature=agent", "--config.file="+cfg, "--storage.agent.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web, "--log.level=warn")
	if err != nil {
		return nil, err
	}
	saveProfile(ctx, env, "http://"+web, filepath.Join(dir, "cpu-agent.pprof"), periods)
	perRound := int64(vms*exposedSamplesPerVM() + 5*len(shards))
	want := int64(periods) * perRound
	a := &agentRun{}
	began := time.Now()
	deadline := began.Add(time.Duration(periods+3)*period + time.Minute)
	pr := &progress{w: env.Progress, every: 5 * time.Second}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		rss, cpu := procStats(agent.Process.Pid)
		a.maxRSS = max(a.maxRSS, rss)
		got := sink.samples.Load()
		pr.say("peer agent: %4.0fs sink has %d of %d samples, agent RSS %.0f MiB, CPU %.1f s", time.Since(began).Seconds(), got, want, float64(rss)/(1<<20), cpu)
		if got >= want {
			a.cpu, a.elapsed = cpu, time.Since(began)
			a.samples, a.requests, a.bytes = got, sink.requests.Load(), sink.bytes.Load()
			break
		}
		if bad := sink.bad.Load(); bad > 0 {
			return nil, fmt.Errorf("sink refused %d requests: %v", bad, sink.lastErr)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the sink got %d of %d samples in %v (logs in %s)", got, want, time.Since(began).Round(time.Second), dir)
		}
	}
	// Delivery: every sample the agent says it appended reaches the sink.
	appended, err := promCounter("http://"+web+"/metrics", "prometheus_agent_samples_appended_total")
	if err != nil {
		return nil, err
	}
	a.appended = int64(appended)
	for sink.samples.Load() < a.appended {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the agent appended %d samples, the sink got %d (logs in %s)", a.appended, sink.samples.Load(), dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return a, nil
}

// agentConfig scrapes every shard of the target every period and
// remote-writes to url with the default queue settings.
func agentConfig(target, url string, shards int, period time.Duration) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %v\n  scrape_timeout: %v\nscrape_configs:\n", period, period)
	for i := 0; i < shards; i++ {
		fmt.Fprintf(&b, "  - job_name: fleet-%d\n    metrics_path: /metrics/%d\n    static_configs:\n      - targets: ['%s']\n", i, i, target)
	}
	fmt.Fprintf(&b, "remote_write:\n  - url: %s\n", url)
	return []byte(b.String())
}

// saveProfile, with env.Profile, fetches a CPU profile from a Go
// process's /debug/pprof/profile into path in the background, starting
// after one period, for at most 30 s of the load's remaining periods-1.
func saveProfile(ctx context.Context, env Env, base, path string, periods int) {
	if !env.Profile {
		return
	}
	period := env.period()
	secs := max(1, min(30, int((time.Duration(periods-1)*period).Seconds())))
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(period):
		}
		client := http.Client{Timeout: time.Duration(secs+30) * time.Second}
		resp, err := client.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs))
		if err != nil {
			return
		}
		defer resp.Body.Close()
		if f, err := os.Create(path); err == nil {
			io.Copy(f, resp.Body)
			f.Close()
		}
	}()
}

// waitHTTP waits until url answers 200.
func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := http.Client{Timeout: 10 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// promCounter reads a counter from a text exposition: the sum over its
// label sets (prometheus_agent_samples_appended_total has a type label).
func promCounter(url, name string) (float64, error) {
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", url, name, err)
		}
		sum, found = sum+v, true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("%s: no %s", url, name)
	}
	return sum, nil
}

func prometheusVersion(bin string) string {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}
