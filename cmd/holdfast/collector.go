package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/offheap"
)

// collectorFile maps the collector's flags to its config file's keys.
var collectorFile = daemonConfig{
	name:    "holdfast collector",
	aliases: map[string]string{"producer": "producers"},
	// Config files get copied, committed and pasted into tickets: the
	// password comes from a file or the environment, never a key.
	refused: map[string]string{"clickhouse_password": "not accepted; put the password in a file named by clickhouse_password_file (or --clickhouse-password-file), or in $" + envPassword},
}

// collectorFlags are the collector's settings, defined on a FlagSet so
// that the command line, the config file, --print-config and a SIGHUP
// reload all read the same definitions.
type collectorFlags struct {
	cf                                                configFlags
	dataDir, listen, ch, db, cluster, id              *string
	chClient                                          *chClientFlags
	producers                                         urlList
	interval, flushAge, refresh, maxDrainTime, ready  *time.Duration
	drainTimeout, insertHung                          *time.Duration
	walBudget, walReserve, quarantineBudget, memLimit byteSize
	maxPageBytes, maxInflight                         byteSize
	limits                                            sampleLimits
	pageLimit, batchRows, maxDrainPages, maxProducers *int
	maxSeenKeys, gcPercent                            *int
	allowRemote                                       *bool
	producerToken, registryToken, registryURL, advert *string
	log                                               logFlags
}

func defineCollectorFlags(fs *flag.FlagSet) *collectorFlags {
	f := &collectorFlags{walBudget: 4 << 30, walReserve: 16 << 20, quarantineBudget: 256 << 20, memLimit: 512 << 20, maxPageBytes: 8 << 20, maxInflight: 64 << 20}
	f.cf = addConfigFlags(fs)
	f.dataDir = fs.String("data-dir", "holdfast-data", "directory for the WAL and state; a relative one is under $STATE_DIRECTORY when systemd sets it, and refused when the working directory is /")
	f.listen = hostPortFlag(fs, "listen", "127.0.0.1:9464", "admin HTTP address host:port (/v1/checkpoint, /v1/status, /v1/flush, /metrics, /healthz)")
	f.ch = clickHouseFlag(fs, "clickhouse", "127.0.0.1:9000", "ClickHouse native protocol address host:port (no scheme; 9000, or 9440 with TLS), or several separated by commas (tried in order)")
	f.chClient = addCHClientFlags(fs)
	f.db = fs.String("database", "holdfast", "ClickHouse database")
	f.cluster = fs.String("cluster", "", "ClickHouse cluster name (<remote_servers>): replicated, sharded schema ON CLUSTER")
	f.id = fs.String("id", "", "collector id (default: the stored one, or a new one)")
	fs.Var(&f.producers, "producer", "producer base URL, e.g. http://127.0.0.1:9500 (repeatable; in a config file: producers, a list)")
	f.interval = fs.Duration("interval", 10*time.Second, "collection interval for static producers")
	fs.Var(&f.walBudget, "wal-budget", "WAL disk budget; above it pages are not acknowledged (e.g. 4GiB)"+sizeFlag)
	fs.Var(&f.walReserve, "wal-reserve", "free space the WAL leaves on the data directory's disk for the state store (series definitions, checkpoints, quarantine); below it pages are not acknowledged; at least --max-page-bytes plus 5MiB; 0: none"+sizeFlag)
	fs.Var(&f.limits, "sample-limits", "limits a sample must meet, e.g. field_string=4096,datum_bytes=1MiB (also name_len, fields, histogram_bins); default the producerapi defaults")
	fs.Var(&f.quarantineBudget, "quarantine-budget", "bound of the quarantine of refused samples and records; when full, more are counted and logged, not kept, and /healthz says so"+sizeFlag)
	f.pageLimit = fs.Int("page-limit", 10_000, "samples per page requested")
	f.batchRows = fs.Int("batch-rows", 100_000, "forwarder batch size in rows")
	f.maxSeenKeys = fs.Int("max-seen-keys", 1<<24, "timeseries whose fields rows the forwarder remembers writing (16-20 bytes each, grown as they come); keep it above this collector's timeseries, or every timeseries' fields rows are written again each time it fills")
	f.flushAge = fs.Duration("flush-age", 5*time.Second, "forwarder flushes a batch this old")
	f.gcPercent = fs.Int("gc-percent", defaultGCPercent, "how far the Go heap grows past what is live before the next collection, in percent (Go's GOGC; 1 or more): lower holds less memory for more GC work; GOGC in the environment is used when this flag is not given")
	fs.Var(&f.memLimit, "memory-limit", "soft memory limit of the process: the Go heap's is this less the per-series state mapped outside it (holdfast_offheap_bytes); the GC works harder near it; 0 disables"+sizeFlag)
	f.allowRemote = fs.Bool("admin-allow-remote", false, "let non-loopback clients call state-changing admin endpoints")
	f.producerToken = fs.String("producer-token", "", "bearer token sent to producers (static and registry-assigned)")
	f.registryToken = fs.String("registry-token", "", "bearer token sent to the registry (its --auth-token)")
	f.registryURL = urlFlag(fs, "registry", "registry URL, e.g. http://127.0.0.1:9400; the collector registers and collects what it is assigned (and what it was last assigned while the registry is down), and deregisters on SIGTERM")
	f.advert = urlFlag(fs, "advertise", "admin URL told to the registry (default http://LISTEN)")
	f.refresh = fs.Duration("refresh", 15*time.Second, "assignment refresh interval")
	fs.Var(&f.maxPageBytes, "max-page-bytes", "largest page body taken from a producer (asked for as max_bytes); after a larger page the collector asks for smaller ones, and a single sample larger than this is quarantined as too_large"+sizeFlag)
	fs.Var(&f.maxInflight, "max-inflight-bytes", "pages in flight (fetching, decoding, writing), all producers together; at least --max-page-bytes"+sizeFlag)
	f.maxDrainPages = fs.Int("max-drain-pages", 100, "pages taken from one producer per interval at most")
	f.maxDrainTime = fs.Duration("max-drain-time", 0, "time spent draining one producer per interval at most (0: its interval)")
	f.drainTimeout = fs.Duration("drain-timeout", 10*time.Second, "on SIGTERM, how long the forwarder tries to deliver the backlog to ClickHouse before exiting (what is left stays in the WAL for the next start); keep it below systemd's TimeoutStopSec")
	f.ready = fs.Duration("ready-grace", 30*time.Second, "/-/ready waits this long after start for the forwarder to reach ClickHouse before saying not ready")
	f.insertHung = fs.Duration("insert-hung-after", 30*time.Second, "/-/ready and /healthz fail while one ClickHouse insert has run longer than this (a hung server); the insert itself waits for the connection's 2 min read timeout")
	f.log = addLogFlags(fs)
	f.maxProducers = fs.Int("max-producers", 10_000, "producers collected at most (static and assigned); above it PUT /v1/producers is refused and assigned extras are not started")
	return f
}

// parseCollectorFlags parses args and the --config file they name into a
// new FlagSet: at start-up and again on every SIGHUP.
func parseCollectorFlags(args []string, stderr io.Writer) (*flag.FlagSet, *collectorFlags, map[string]bool, error) {
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := defineCollectorFlags(fs)
	set, err := collectorFile.parse(fs, args)
	if err != nil {
		return nil, nil, nil, err
	}
	if *f.dataDir, err = placeDataDir(*f.dataDir); err != nil {
		return nil, nil, nil, err
	}
	if err := checkGCPercent(*f.gcPercent); err != nil {
		return nil, nil, nil, err
	}
	return fs, f, set, nil
}

// defaultGCPercent is the collector's GOGC. At Go's 100 the heap grows
// to twice what is live before each collection; at RFD 125's N=100, 50
// held the collector's steady RSS at 233-239 MiB against 271-297 for
// about 1.05 times the CPU (0.72-0.80 against 0.66-0.77 CPU-s per million
// samples; 25: 210 MiB at 0.94), BENCHMARKS.md "GOGC 50". The CPU target
// (1.0) has the room; the memory one (128 MiB) does not.
const defaultGCPercent = 50

// checkGCPercent refuses a --gc-percent below 1.
func checkGCPercent(pct int) error {
	if pct < 1 {
		return fmt.Errorf("--gc-percent %d: want 1 or more", pct)
	}
	return nil
}

// setGCPercent applies --gc-percent, pct: when the flag was given on the
// command line, or when GOGC is not in the environment (pct is then the
// default); else the runtime already runs at GOGC.
func setGCPercent(pct int, given bool) {
	if given || os.Getenv("GOGC") == "" {
		debug.SetGCPercent(pct)
	}
}

func runCollector(args []string, stdout, stderr io.Writer) int {
	fs, f, set, err := parseCollectorFlags(args, stderr)
	if err != nil {
		return reportParseError("holdfast collector", err, stderr)
	}
	if *f.cf.print {
		if err := collectorFile.printConfig(stdout, fs); err != nil {
			fmt.Fprintf(stderr, "holdfast collector: %v\n", err)
			return 1
		}
		return 0
	}
	setGCPercent(*f.gcPercent, set["gc-percent"])
	if f.memLimit > 0 {
		// The whole process': the Go runtime's limit is this less what
		// per-series state maps outside the heap (internal/offheap).
		offheap.SetMemoryLimit(int64(f.memLimit))
	}
	var logLevel slog.LevelVar
	log, err := f.log.logger(stderr, &logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast collector: %v\n", err)
		return 2
	}
	reg := newDaemonRegistry()
	opts := collector.Options{
		DataDir: *f.dataDir, CollectorID: *f.id, WALBudgetBytes: int64(f.walBudget), WALReserveBytes: reserveOption(int64(f.walReserve)), QuarantineBudgetBytes: int64(f.quarantineBudget), DefaultInterval: *f.interval,
		PageLimit: *f.pageLimit, Registerer: reg, Logger: log, Limits: f.limits.Limits,
		MaxPageBytes: int64(f.maxPageBytes), MaxInflightBytes: int64(f.maxInflight), MaxDrainPages: *f.maxDrainPages,
		MaxDrainTime: *f.maxDrainTime, MaxProducers: *f.maxProducers, ReadyGrace: *f.ready, DrainTimeout: *f.drainTimeout, InsertHungAfter: *f.insertHung,
		Forwarder: forwarder.Options{Addr: *f.ch, Database: *f.db, Cluster: *f.cluster, BatchRows: *f.batchRows, FlushAge: *f.flushAge, MaxSeenKeys: *f.maxSeenKeys, Limits: f.limits.Limits},
	}
	if err := f.chClient.apply(&opts.Forwarder); err != nil {
		fmt.Fprintf(stderr, "holdfast collector: %v\n", err)
		return 2
	}
	for _, u := range f.producers {
		opts.Producers = append(opts.Producers, collector.ProducerConfig{URL: u, AuthToken: *f.producerToken})
	}
	ln, err := net.Listen("tcp", *f.listen)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast collector: admin listener: %v\n", err)
		return 1
	}
	opts.RegistryURL, opts.RefreshInterval, opts.AdvertiseAddr = *f.registryURL, *f.refresh, *f.advert
	opts.RegistryToken, opts.ProducerToken = *f.registryToken, *f.producerToken
	if opts.AdvertiseAddr == "" {
		opts.AdvertiseAddr = "http://" + ln.Addr().String()
	}
	c, err := collector.Open(opts)
	if err != nil {
		ln.Close()
		fmt.Fprintf(stderr, "holdfast collector: %v\n", err)
		return 1
	}
	defer c.Close()
	hupCtx, stopHUP := context.WithCancel(context.Background())
	defer stopHUP()
	reloader := &collectorReloader{args: args, config: *f.cf.file, c: c, log: log, level: &logLevel,
		producers: f.producers, interval: *f.interval}
	onHUP(hupCtx, reloader.reload)
	logCollectorStart(log, c, f, "http://"+ln.Addr().String())
	ctx, stop := signalContext(log)
	defer stop()
	adminCtx, stopAdmin := context.WithCancel(context.Background())
	admin := make(chan error, 1)
	go func() {
		admin <- c.ServeAdmin(adminCtx, ln, collector.AdminOptions{Gatherer: reg, AllowRemoteChanges: *f.allowRemote})
	}()
	runErr := c.Run(ctx)
	stopAdmin()
	<-admin
	cp := c.Checkpoint()
	if runErr != nil {
		log.Error("shutdown: stopped on a forwarder failure", "err", runErr, "backlog_records", cp.BacklogRecords, "checkpoint_index", cp.CheckpointIndex)
		return 1
	}
	log.Info("shutdown: complete; what was not delivered stays in the WAL for the next start",
		"backlog_records", cp.BacklogRecords, "checkpoint_index", cp.CheckpointIndex, "wal_last_index", cp.WALLastIndex)
	return 0
}

// logCollectorStart is the start-up summary: one log line with the
// effective settings and the state the collector opened (WAL range,
// checkpoint, backlog), read from the collector itself so that it agrees
// with /v1/checkpoint.
func logCollectorStart(log *slog.Logger, c *collector.Collector, f *collectorFlags, admin string) {
	cp := c.Checkpoint()
	registry := *f.registryURL
	if registry == "" {
		registry = "none"
	}
	log.Info("collector started", "id", c.ID(), "admin", admin, "data_dir", *f.dataDir,
		"static_producers", len(f.producers), "interval", *f.interval, "registry", registry,
		"clickhouse", *f.ch, "database", *f.db, "wal_budget", formatBytes(int64(f.walBudget)),
		"wal_first_index", cp.WALFirstIndex, "wal_last_index", cp.WALLastIndex,
		"checkpoint_index", cp.CheckpointIndex, "backlog_records", cp.BacklogRecords,
		"wal_size", formatBytes(cp.WALSizeBytes), "config", *f.cf.file)
}

// reserveOption maps --wal-reserve to collector.Options.WALReserveBytes,
// where 0 means the default: the flag's 0 means no reserve.
func reserveOption(flag int64) int64 {
	if flag == 0 {
		return -1
	}
	return flag
}
