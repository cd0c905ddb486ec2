package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
)

// collectorConfig is the optional JSON config file; flags given on the
// command line win over it.
type collectorConfig struct {
	DataDir          string   `json:"data_dir"`
	Listen           string   `json:"listen"`
	ClickHouse       string   `json:"clickhouse"`
	Database         string   `json:"database"`
	ID               string   `json:"id"`
	Producers        []string `json:"producers"`
	Interval         string   `json:"interval"`
	WALBudget        string   `json:"wal_budget"`
	QuarantineBudget string   `json:"quarantine_budget"`
	SampleLimits     string   `json:"sample_limits"`
	PageLimit        int      `json:"page_limit"`
	BatchRows        int      `json:"batch_rows"`
	FlushAge         string   `json:"flush_age"`
	MemoryLimit      string   `json:"memory_limit"`
	AdminAllowRemote bool     `json:"admin_allow_remote"`
	ProducerToken    string   `json:"producer_token"`
	Registry         string   `json:"registry"`
	RegistryToken    string   `json:"registry_token"`
	Advertise        string   `json:"advertise"`
	Refresh          string   `json:"refresh"`
	MaxPageBytes     string   `json:"max_page_bytes"`
	MaxInflightBytes string   `json:"max_inflight_bytes"`
	MaxDrainPages    int      `json:"max_drain_pages"`
	MaxDrainTime     string   `json:"max_drain_time"`
	MaxProducers     int      `json:"max_producers"`
	ReadyGrace       string   `json:"ready_grace"`
	InsertHungAfter  string   `json:"insert_hung_after"`
	Cluster          string   `json:"cluster"`
	LogLevel         string   `json:"log_level"`
	LogFormat        string   `json:"log_format"`
	// ClickHouse client settings of chflags.go. The password is never a
	// key: it comes from clickhouse_password_file or $HOLDFAST_CLICKHOUSE_PASSWORD
	// (config files get copied, committed and pasted into tickets).
	ClickHouseUser         string `json:"clickhouse_user"`
	ClickHousePasswordFile string `json:"clickhouse_password_file"`
	ClickHouseTLS          bool   `json:"clickhouse_tls"`
	ClickHouseCAFile       string `json:"clickhouse_ca_file"`
	ClickHouseCertFile     string `json:"clickhouse_cert_file"`
	ClickHouseKeyFile      string `json:"clickhouse_key_file"`
	ClickHouseServerName   string `json:"clickhouse_server_name"`
	// ClickHousePassword is here only to refuse it with a useful message.
	ClickHousePassword *string `json:"clickhouse_password"`
}

func runCollector(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "JSON config file (flags win over it)")
	dataDir := fs.String("data-dir", "holdfast-data", "directory for the WAL and state")
	listen := fs.String("listen", "127.0.0.1:9464", "admin HTTP address (/v1/checkpoint, /v1/status, /v1/flush, /metrics, /healthz)")
	ch := fs.String("clickhouse", "127.0.0.1:9000", "ClickHouse native protocol address host:port, or several separated by commas (tried in order)")
	chClient := addCHClientFlags(fs)
	db := fs.String("database", "holdfast", "ClickHouse database")
	cluster := fs.String("cluster", "", "ClickHouse cluster name (<remote_servers>): replicated, sharded schema ON CLUSTER")
	id := fs.String("id", "", "collector id (default: the stored one, or a new one)")
	var producers stringList
	fs.Var(&producers, "producer", "producer base URL, e.g. http://127.0.0.1:9500 (repeatable)")
	interval := fs.Duration("interval", 10*time.Second, "collection interval for static producers")
	walBudget := byteSize(4 << 30)
	fs.Var(&walBudget, "wal-budget", "WAL disk budget; above it pages are not acknowledged (e.g. 4GiB)")
	quarantineBudget := byteSize(256 << 20)
	var limits sampleLimits
	fs.Var(&limits, "sample-limits", "limits a sample must meet, e.g. field_string=4096,datum_bytes=1MiB (also name_len, fields, histogram_bins); default the producerapi defaults")
	fs.Var(&quarantineBudget, "quarantine-budget", "bound of the quarantine of refused samples and records; when full, more are counted and logged, not kept, and /healthz says so")
	pageLimit := fs.Int("page-limit", 10_000, "samples per page requested")
	batchRows := fs.Int("batch-rows", 100_000, "forwarder batch size in rows")
	flushAge := fs.Duration("flush-age", 5*time.Second, "forwarder flushes a batch this old")
	memLimit := byteSize(192 << 20)
	fs.Var(&memLimit, "memory-limit", "soft Go memory limit (GC works harder near it); 0 disables")
	allowRemote := fs.Bool("admin-allow-remote", false, "let non-loopback clients call state-changing admin endpoints")
	producerToken := fs.String("producer-token", "", "bearer token sent to producers (static and registry-assigned)")
	registryToken := fs.String("registry-token", "", "bearer token sent to the registry (its --auth-token)")
	registryURL := fs.String("registry", "", "registry URL; the collector registers and collects what it is assigned (and what it was last assigned while the registry is down)")
	advertise := fs.String("advertise", "", "admin URL told to the registry (default http://LISTEN)")
	refresh := fs.Duration("refresh", 15*time.Second, "assignment refresh interval")
	maxPageBytes := byteSize(8 << 20)
	fs.Var(&maxPageBytes, "max-page-bytes", "largest page body taken from a producer (asked for as max_bytes); after a larger page the collector asks for smaller ones, and a single sample larger than this is quarantined as too_large")
	maxInflight := byteSize(64 << 20)
	fs.Var(&maxInflight, "max-inflight-bytes", "pages in flight (fetching, decoding, writing), all producers together; at least --max-page-bytes")
	maxDrainPages := fs.Int("max-drain-pages", 100, "pages taken from one producer per interval at most")
	maxDrainTime := fs.Duration("max-drain-time", 0, "time spent draining one producer per interval at most (0: its interval)")
	readyGrace := fs.Duration("ready-grace", 30*time.Second, "/-/ready waits this long after start for the forwarder to reach ClickHouse before saying not ready")
	insertHung := fs.Duration("insert-hung-after", 30*time.Second, "/-/ready and /healthz fail while one ClickHouse insert has run longer than this (a hung server); the insert itself waits for the connection's 2 min read timeout")
	logf := addLogFlags(fs)
	maxProducers := fs.Int("max-producers", 10_000, "producers collected at most (static and assigned); above it PUT /v1/producers is refused and assigned extras are not started")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "holdfast collector: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	set := map[string]bool{} // flags given on the command line: they win over the file, also on reload
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *configFile != "" {
		if err := applyConfigFile(*configFile, set, fs); err != nil {
			fmt.Fprintf(stderr, "holdfast collector: %v\n", err)
			return 2
		}
	}
	if memLimit > 0 {
		debug.SetMemoryLimit(int64(memLimit))
	}
	var logLevel slog.LevelVar
	log, err := logf.logger(stderr, &logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast collector: %v\n", err)
		return 2
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBuildInfo(reg)
	opts := collector.Options{
		DataDir: *dataDir, CollectorID: *id, WALBudgetBytes: int64(walBudget), QuarantineBudgetBytes: int64(quarantineBudget), DefaultInterval: *interval,
		PageLimit: *pageLimit, Registerer: reg, Logger: log, Limits: limits.Limits,
		MaxPageBytes: int64(maxPageBytes), MaxInflightBytes: int64(maxInflight), MaxDrainPages: *maxDrainPages,
		MaxDrainTime: *maxDrainTime, MaxProducers: *maxProducers, ReadyGrace: *readyGrace, InsertHungAfter: *insertHung,
		Forwarder: forwarder.Options{Addr: *ch, Database: *db, Cluster: *cluster, BatchRows: *batchRows, FlushAge: *flushAge, Limits: limits.Limits},
	}
	if err := chClient.apply(&opts.Forwarder); err != nil {
		fmt.Fprintf(stderr, "holdfast collector: %v\n", err)
		return 2
	}
	for _, u := range producers {
		opts.Producers = append(opts.Producers, collector.ProducerConfig{URL: u, AuthToken: *producerToken})
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast collector: admin listener: %v\n", err)
		return 1
	}
	opts.RegistryURL, opts.RefreshInterval, opts.AdvertiseAddr = *registryURL, *refresh, *advertise
	opts.RegistryToken, opts.ProducerToken = *registryToken, *producerToken
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
	reloader := &collectorReloader{path: *configFile, set: set, c: c, log: log, level: &logLevel,
		token: *producerToken, producers: producers, interval: *interval}
	onHUP(hupCtx, reloader.reload)
	fmt.Fprintf(stdout, "holdfast collector %s: admin API on http://%s, %d producer(s), data in %s\n", c.ID(), ln.Addr(), len(producers), *dataDir)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	adminCtx, stopAdmin := context.WithCancel(context.Background())
	admin := make(chan error, 1)
	go func() {
		admin <- c.ServeAdmin(adminCtx, ln, collector.AdminOptions{Gatherer: reg, AllowRemoteChanges: *allowRemote})
	}()
	runErr := c.Run(ctx)
	stopAdmin()
	<-admin
	if runErr != nil {
		fmt.Fprintf(stderr, "holdfast collector: %v\n", runErr)
		return 1
	}
	return 0
}

// decodeCollectorConfig reads a config file strictly: unknown keys and a
// plain password are errors.
func decodeCollectorConfig(path string, b []byte) (collectorConfig, error) {
	var cfg collectorConfig
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if cfg.ClickHousePassword != nil {
		return cfg, fmt.Errorf("config %s: clickhouse_password is not accepted; put the password in a file named by clickhouse_password_file (or --clickhouse-password-file), or in $%s", path, envPassword)
	}
	return cfg, nil
}

// applyConfigFile sets every flag not given on the command line from the
// JSON config file.
func applyConfigFile(path string, set map[string]bool, fs *flag.FlagSet) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	cfg, err := decodeCollectorConfig(path, b)
	if err != nil {
		return err
	}
	apply := func(name, value string) error {
		if value == "" || set[name] {
			return nil
		}
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("config %s: %s: %w", path, name, err)
		}
		return nil
	}
	for name, v := range map[string]string{
		"data-dir": cfg.DataDir, "listen": cfg.Listen, "clickhouse": cfg.ClickHouse, "database": cfg.Database,
		"id": cfg.ID, "interval": cfg.Interval, "wal-budget": cfg.WALBudget, "flush-age": cfg.FlushAge,
		"memory-limit": cfg.MemoryLimit, "producer-token": cfg.ProducerToken,
		"registry": cfg.Registry, "registry-token": cfg.RegistryToken, "advertise": cfg.Advertise, "refresh": cfg.Refresh,
		"max-page-bytes": cfg.MaxPageBytes, "max-inflight-bytes": cfg.MaxInflightBytes, "max-drain-time": cfg.MaxDrainTime,
		"ready-grace": cfg.ReadyGrace, "insert-hung-after": cfg.InsertHungAfter,
		"quarantine-budget": cfg.QuarantineBudget, "sample-limits": cfg.SampleLimits,
		"cluster": cfg.Cluster, "log.level": cfg.LogLevel, "log.format": cfg.LogFormat, "clickhouse-user": cfg.ClickHouseUser, "clickhouse-password-file": cfg.ClickHousePasswordFile,
		"clickhouse-ca-file": cfg.ClickHouseCAFile, "clickhouse-cert-file": cfg.ClickHouseCertFile,
		"clickhouse-key-file": cfg.ClickHouseKeyFile, "clickhouse-server-name": cfg.ClickHouseServerName,
	} {
		if err := apply(name, v); err != nil {
			return err
		}
	}
	for name, v := range map[string]int{"page-limit": cfg.PageLimit, "batch-rows": cfg.BatchRows,
		"max-drain-pages": cfg.MaxDrainPages, "max-producers": cfg.MaxProducers} {
		if v != 0 {
			if err := apply(name, fmt.Sprint(v)); err != nil {
				return err
			}
		}
	}
	for name, v := range map[string]bool{"admin-allow-remote": cfg.AdminAllowRemote, "clickhouse-tls": cfg.ClickHouseTLS} {
		if v {
			if err := apply(name, "true"); err != nil {
				return err
			}
		}
	}
	if !set["producer"] {
		for _, p := range cfg.Producers {
			if err := fs.Set("producer", p); err != nil {
				return err
			}
		}
	}
	return nil
}
