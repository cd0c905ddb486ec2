package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/sampletest"
	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

// runForward runs the forwarder alone over a data directory: it drains the
// WAL into ClickHouse. With --generate it first appends simulated samples,
// and with --exit-when-drained it stops once everything is checkpointed.
func runForward(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("forward", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "collector data directory (holds wal/ and state/)")
	addr := clickHouseFlag(fs, "clickhouse", "127.0.0.1:9000", "ClickHouse native protocol address host:port (no scheme), or several separated by commas (tried in order)")
	chClient := addCHClientFlags(fs)
	db := fs.String("database", "holdfast", "ClickHouse database")
	cluster := fs.String("cluster", "", "ClickHouse cluster name (<remote_servers>): replicated, sharded schema ON CLUSTER; --clickhouse is one of its servers")
	generate := fs.Int("generate", 0, "append this many simulated fleet samples to the WAL first")
	vms := fs.Int("vms", 1000, "simulated VMs for --generate")
	drained := fs.Bool("exit-when-drained", false, "exit once everything in the WAL is in ClickHouse")
	var budget byteSize
	fs.Var(&budget, "wal-budget", "WAL disk budget (0: none)"+sizeFlag)
	gcPct := fs.Int("gc-percent", defaultGCPercent, "as the collector's --gc-percent: the Go heap's growth past what is live before the next collection, in percent (GOGC; 1 or more); GOGC in the environment is used when this flag is not given")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dataDir == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "holdfast forward: --data-dir is required and takes no arguments")
		return 2
	}
	if err := checkGCPercent(*gcPct); err != nil {
		fmt.Fprintf(stderr, "holdfast forward: %v\n", err)
		return 2
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "gc-percent" })
	setGCPercent(*gcPct, given)
	fwdOpts := forwarder.Options{}
	if err := chClient.apply(&fwdOpts); err != nil {
		fmt.Fprintf(stderr, "holdfast forward: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	log.Info("forward: starting", "data_dir", *dataDir, "clickhouse", *addr, "database", *db, "gc_percent", effectiveGCPercent())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := forward(ctx, log, stdout, forwardConfig{dataDir: *dataDir, addr: *addr, db: *db, cluster: *cluster, client: fwdOpts, generate: *generate, vms: *vms, exitWhenDrained: *drained, budget: int64(budget)}); err != nil {
		fmt.Fprintf(stderr, "holdfast forward: %v\n", err)
		return 1
	}
	return 0
}

type forwardConfig struct {
	dataDir, addr, db string
	cluster           string
	client            forwarder.Options // what the --clickhouse-* client flags set
	generate, vms     int
	exitWhenDrained   bool
	budget            int64
}

// forwarderOptions are the forwarder's options: the client's (user,
// password, TLS, compression: whatever the --clickhouse-* flags set) with the
// server, database and data directory of this run. Starting from the
// client's options, rather than copying named fields, keeps a client flag
// added later from being parsed and then silently dropped, as
// --clickhouse-compression once was.
func (cfg forwardConfig) forwarderOptions(reg prometheus.Registerer, log *slog.Logger) forwarder.Options {
	o := cfg.client
	o.Addr, o.Database, o.Cluster = cfg.addr, cfg.db, cfg.cluster
	o.Registerer, o.Logger = reg, log
	o.SessionDir = filepath.Join(cfg.dataDir, "sessions")
	return o
}

func forward(ctx context.Context, log *slog.Logger, out io.Writer, cfg forwardConfig) error {
	reg := prometheus.NewRegistry()
	l, err := wal.Open(filepath.Join(cfg.dataDir, "wal"), wal.Options{BudgetBytes: cfg.budget, Registerer: reg, Logger: log})
	if err != nil {
		return err
	}
	defer l.Close()
	st, err := state.Open(filepath.Join(cfg.dataDir, "state"), log)
	if err != nil {
		return err
	}
	defer st.Close()
	if cfg.generate > 0 {
		if err := generate(ctx, l, cfg.generate, cfg.vms); err != nil {
			return err
		}
		fmt.Fprintf(out, "appended %d simulated samples to the WAL (indexes ..%d)\n", cfg.generate, l.Stats().LastIndex)
	}
	f, err := forwarder.New(l, st, cfg.forwarderOptions(reg, log))
	if err != nil {
		return err
	}
	defer f.Close()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Run(runCtx) }()
	if cfg.exitWhenDrained {
		// Deliver the last partial batch now rather than after FlushAge.
		go f.Flush(runCtx)
	}
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	began := time.Now()
	for {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			cancel()
			return <-done
		case <-ticker.C:
			fs, ws := f.Status(), l.Stats()
			line := fmt.Sprintf("[%5.1fs] checkpoint %d of %d, backlog %d records, WAL %.1f MiB", time.Since(began).Seconds(),
				fs.CheckpointIndex, ws.LastIndex, ws.LastIndex-fs.CheckpointIndex, float64(ws.SizeBytes)/(1<<20))
			if fs.LastInsertError != "" {
				line += ", retrying: " + fs.LastInsertError
			}
			fmt.Fprintln(out, line)
			if cfg.exitWhenDrained && fs.CheckpointIndex >= ws.LastIndex {
				cancel()
				if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
					return err
				}
				fmt.Fprintf(out, "drained: %d records in ClickHouse database %s, %d quarantined\n", fs.CheckpointIndex, cfg.db, fs.QuarantinedRecords)
				return nil
			}
		}
	}
}

// generate appends n simulated samples as pages of 1,000.
func generate(ctx context.Context, l *wal.Log, n, vms int) error {
	fleet := sampletest.NewFleet(vms)
	ts := time.Now().UnixNano()
	page := make([]pa.Sample, 0, 1000)
	var buf []byte
	for n > 0 {
		k := min(n, 1000)
		page = fleet.Append(page[:0], k, ts)
		ts += int64(k)
		n -= k
		buf = pa.AppendPageRecord(buf[:0], "holdfast-forward-generate", "1", page)
		if _, err := l.Append(ctx, wal.Record{Type: wal.TypePage, Payload: buf}); err != nil {
			return err
		}
	}
	return nil
}

// effectiveGCPercent is the Go runtime's GOGC as it runs (from the flag,
// the environment or Go's default), for the start-up line: a number, or
// "off" (GOGC=off, which the runtime keeps as -1).
func effectiveGCPercent() string {
	sample := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return "unknown"
	}
	if pct := int64(sample[0].Value.Uint64()); pct >= 0 {
		return strconv.FormatInt(pct, 10)
	}
	return "off"
}
