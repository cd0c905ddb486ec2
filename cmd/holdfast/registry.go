package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/holdfast/holdfast/internal/state"
	"github.com/holdfast/holdfast/registry"
)

func runRegistry(args []string, stdout, stderr io.Writer) int {
	return serveRegistryWith(context.Background(), true, args, stdout, stderr)
}

// registryFile maps the registry's flags to its config file's keys.
var registryFile = daemonConfig{name: "holdfast registry"}

// serveRegistry is the registry command until ctx ends (tests cancel it).
func serveRegistry(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return serveRegistryWith(ctx, false, args, stdout, stderr)
}

// serveRegistryWith is serveRegistry; with signals, SIGTERM and SIGINT end
// it as they end the collector (logged; a second one exits at once).
func serveRegistryWith(ctx context.Context, signals bool, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addConfigFlags(fs)
	listen := hostPortFlag(fs, "listen", "127.0.0.1:9400", "HTTP address host:port")
	dataDir := fs.String("data-dir", "holdfast-registry", "state directory (Pebble); a relative one is under $STATE_DIRECTORY when systemd sets it, and refused when the working directory is /")
	replicas := fs.Int("replicas", 1, "collectors per producer")
	plase := fs.Duration("producer-lease", 30*time.Second, "producer lease; producers renew at a third of it")
	clase := fs.Duration("collector-lease", 30*time.Second, "collector lease; collectors renew at a third of it")
	token := fs.String("auth-token", "", "require this bearer token on every write (registrations, renewals, deletions, schema reports); reads stay open. Producers and collectors send it with --registry-token")
	rebalance := fs.Int("rebalance-moves-per-minute", 60, "producers moved at most per minute from more to less loaded collectors (a collector that joins or comes back gets its share gradually); 0: never move a producer off a live collector")
	logf := addLogFlags(fs)
	maxSchemas := fs.Int("max-schemas", registry.DefaultMaxSchemas, "timeseries schema versions kept; reports past it are refused (409) and the schemas logged, so a producer inventing field sets cannot grow the registry forever")
	expiredRetention := fs.Duration("expired-retention", registry.DefaultExpiredRetention, "keep an expired producer's last registration listed (GET /v1/producers?state=expired) this long; negative: not kept")
	if _, err := registryFile.parse(fs, args); err != nil {
		return reportParseError("holdfast registry", err, stderr)
	}
	started := flagSnapshot(fs) // before placeDataDir: a reload compares like with like
	if *rebalance < 0 {
		fmt.Fprintln(stderr, "holdfast registry: --rebalance-moves-per-minute must be 0 or more")
		return 2
	}
	if *maxSchemas < 1 {
		fmt.Fprintln(stderr, "holdfast registry: --max-schemas must be at least 1")
		return 2
	}
	var err error
	if *dataDir, err = placeDataDir(*dataDir); err != nil {
		fmt.Fprintf(stderr, "holdfast registry: %v\n", err)
		return 2
	}
	if *cf.print {
		if err := registryFile.printConfig(stdout, fs); err != nil {
			fmt.Fprintf(stderr, "holdfast registry: %v\n", err)
			return 1
		}
		return 0
	}
	var logLevel slog.LevelVar
	log, err := logf.logger(stderr, &logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast registry: %v\n", err)
		return 2
	}
	if signals {
		var stop context.CancelFunc
		ctx, stop = signalContextFrom(ctx, log)
		defer stop()
	}
	db, err := state.Open(filepath.Join(*dataDir, "state"), log)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast registry: %v\n", err)
		return 1
	}
	defer db.Close()
	reg := newDaemonRegistry()
	r, err := registry.Open(db, registry.Options{Replicas: *replicas, ProducerLease: *plase, CollectorLease: *clase, AuthToken: *token, MaxSchemas: *maxSchemas,
		ExpiredRetention: *expiredRetention, RebalancePerMinute: *rebalance, Registerer: reg, Gatherer: reg})
	if err != nil {
		fmt.Fprintf(stderr, "holdfast registry: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast registry: %v\n", err)
		return 1
	}
	writes := "open"
	if *token != "" {
		writes = "need the bearer token"
	}
	registryFile.reloadLevelOnHUP(ctx, log, &logLevel, fs, args, started)
	log.Info("registry started", "url", "http://"+ln.Addr().String(), "replicas", *replicas, "producer_lease", *plase,
		"collector_lease", *clase, "writes", writes, "data_dir", *dataDir, "max_schemas", *maxSchemas, "config", *cf.file,
		"producers", countProducers(r), "collectors", len(r.Collectors()), "schemas", len(r.Schemas()))
	go func() {
		<-ctx.Done()
		log.Info("shutdown: stopping the registry")
	}()
	if err := r.Serve(ctx, ln, log); err != nil {
		fmt.Fprintf(stderr, "holdfast registry: %v\n", err)
		return 1
	}
	return 0
}

// countProducers counts the registered producers (the state the registry
// opened), for the start-up summary; -1 if the listing fails.
func countProducers(r *registry.Registry) int {
	n := 0
	for token := ""; ; {
		page, err := r.ListProducers(token, 1000)
		if err != nil {
			return -1
		}
		n += len(page.Items)
		if token = page.NextPageToken; token == "" {
			return n
		}
	}
}
