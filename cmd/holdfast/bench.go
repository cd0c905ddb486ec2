package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/holdfast/holdfast/bench"
	"github.com/holdfast/holdfast/internal/chserver"
)

var scenarios = []string{"wal", "insert", "rfd125", "max", "outage", "recovery", "peer"}

// runBench runs benchmark scenarios with real processes and writes a table
// and, with --out, JSON (every ratio under a key ending in _ratio).
func runBench(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "target" { // hidden: the peer scenario's exposition target
		return runBenchTarget(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 2*time.Minute, "time budget of each scenario (approximate)")
	out := fs.String("out", "", "write the JSON result here (with several scenarios: a directory)")
	ch := fs.String("clickhouse", "", "ClickHouse native address; default: start a private server")
	dir := fs.String("dir", "", "working directory for WALs and the private ClickHouse (default: a temporary one)")
	vms := fs.String("vms", "10,20,50,100", "rfd125: VMs per sled (10 projects x 10 teams x 10 sleds x N)")
	profile := fs.Bool("profile", false, "save CPU profiles of the measured processes (collector, Prometheus agent) in the working directory (with --dir to keep them)")
	peerVMs := fs.Int("peer-vms", 20_000, "peer: VMs (22 samples each every 10 s) for both holdfast and the Prometheus agent")
	var collectorArgs stringList
	fs.Var(&collectorArgs, "collector-arg", "an extra flag for every collector a scenario starts, e.g. --collector-arg=--memory-limit=256MiB (repeatable)")
	warmup := fs.Int("warmup", 2, "max: warm-up periods of each load step, not counted (the first defines every series and writes its fields rows)")
	maxSteps := fs.String("steps", "", "max: VMs of its load steps, ascending, e.g. 200000,230000 (default 100000,120000,140000,170000,200000,230000,260000,300000)")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "holdfast bench: want a scenario: %s or all\n", strings.Join(scenarios, ", "))
		return 2
	}
	which := args[0]
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
		return 2
	}
	vmList, err := parseVMList(*vms)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast bench: --vms: %v\n", err)
		return 2
	}
	var steps []int
	if *maxSteps != "" {
		var err error
		if steps, err = parseStepList(*maxSteps); err != nil {
			fmt.Fprintf(stderr, "holdfast bench: --steps: %v\n", err)
			return 2
		}
	}
	run := []string{which}
	if which == "all" {
		run = scenarios
	} else if !contains(scenarios, which) {
		fmt.Fprintf(stderr, "holdfast bench: unknown scenario %q (have %s, all)\n", which, strings.Join(scenarios, ", "))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work := *dir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "holdfast-bench-"); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer os.RemoveAll(work)
	}
	self, _ := os.Executable()
	env := bench.Env{Dir: work, Duration: *duration, Progress: stdout, Binary: self, ClickHouse: *ch}
	if *ch == "" && (contains(run, "insert") || contains(run, "rfd125") || contains(run, "max") || contains(run, "peer")) { // outage and recovery start their own
		srv, err := chserver.Start(ctx, filepath.Join(work, "clickhouse"))
		if err != nil {
			fmt.Fprintf(stderr, "holdfast bench: %v\n", err)
			return 1
		}
		defer srv.Stop()
		env.ClickHouse = srv.Addr
		fmt.Fprintf(stdout, "bench: private ClickHouse at %s\n", srv.Addr)
	}
	env.VMsPerSled = vmList
	env.PeerVMs = *peerVMs
	env.Warmup = *warmup
	env.MaxSteps = steps
	env.Profile = *profile
	env.CollectorArgs = collectorArgs
	failed := false
	for _, s := range run {
		fmt.Fprintf(stdout, "bench: %s (budget %v)\n", s, *duration)
		res, err := bench.Run(ctx, s, env)
		if err != nil {
			fmt.Fprintf(stderr, "holdfast bench %s: %v\n", s, err)
			failed = true
			continue
		}
		res.WriteText(stdout)
		if *out != "" {
			path := *out
			if len(run) > 1 {
				os.MkdirAll(path, 0o755)
				path = filepath.Join(path, s+".json")
			}
			f, err := os.Create(path)
			if err == nil {
				err = res.WriteJSON(f)
				f.Close()
			}
			if err == nil && len(res.Series) > 0 {
				svg := strings.TrimSuffix(path, ".json") + ".svg"
				var f *os.File
				if f, err = os.Create(svg); err == nil {
					err = res.WriteSVG(f)
					f.Close()
					fmt.Fprintf(stdout, "bench: wrote %s\n", svg)
				}
			}
			if err != nil {
				fmt.Fprintf(stderr, "holdfast bench: writing %s: %v\n", path, err)
				failed = true
			} else {
				fmt.Fprintf(stdout, "bench: wrote %s\n", path)
			}
		}
	}
	if failed {
		return 1
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// parseVMList parses a list of VMs above 0 (rfd125's --vms).
func parseVMList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a number of VMs above 0", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseStepList parses max's --steps: VMs above 0, ascending.
func parseStepList(s string) ([]int, error) {
	out, err := parseVMList(s)
	if err != nil {
		return nil, err
	}
	for i := 1; i < len(out); i++ {
		if out[i] <= out[i-1] {
			return nil, fmt.Errorf("%d after %d: steps go up", out[i], out[i-1])
		}
	}
	return out, nil
}

// runBenchTarget serves the fleet as Prometheus text exposition, for the
// agent the peer scenario runs (bench.ServeTarget).
func runBenchTarget(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench target", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve /metrics/SHARD on")
	vms := fs.Int("vms", 10_000, "simulated VMs in all")
	shardVMs := fs.Int("shard-vms", 10_000, "VMs per scrape target (/metrics/0, /metrics/1, ...)")
	period := fs.Duration("period", 10*time.Second, "values change every period")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *vms < 1 || *shardVMs < 1 || *period <= 0 {
		fmt.Fprintln(stderr, "holdfast bench target: --vms and --shard-vms must be positive, --period a positive duration; no arguments")
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast bench target: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "holdfast bench target on %s: %d VMs, %d per target, every %v\n", ln.Addr(), *vms, *shardVMs, *period)
	if err := bench.ServeTarget(ctx, ln, bench.TargetOptions{VMs: *vms, ShardVMs: *shardVMs, Period: *period}); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "holdfast bench target: %v\n", err)
		return 1
	}
	return 0
}
