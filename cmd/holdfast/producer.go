package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// producerFile maps the demo producer's flags to its config file's keys.
var producerFile = daemonConfig{name: "holdfast producer", aliases: map[string]string{"collector": "collectors"}}

// runProducer runs the demo producer: simulated VMs in the shape of RFD 125's
// load test, 22 measurements each per interval.
func runProducer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("producer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := addConfigFlags(fs)
	listen := hostPortFlag(fs, "listen", "127.0.0.1:9500", "address host:port to serve collectors on")
	id := fs.String("id", "", "producer id (default: demo-<listen address>)")
	vms := fs.Int("vms", 100, "simulated virtual machines (10 projects x 10 teams x sleds of 100 VMs)")
	vmOffset := fs.Int("vm-offset", 0, "id of the first simulated VM (VMs OFFSET to OFFSET+vms-1): give producers that run side by side disjoint ranges")
	interval := fs.Duration("interval", 10*time.Second, "measurement period: every VM reports 22 samples per period")
	total := fs.Int64("total-samples", 0, "stop generating after this many samples (0: never)")
	maxSamples := fs.Int("max-samples", 1_000_000, "buffer bound in samples; the oldest are dropped (and reported) above it")
	maxBytes := byteSize(256 << 20)
	fs.Var(&maxBytes, "max-bytes", "buffer bound in bytes, approximate"+sizeFlag)
	token := fs.String("auth-token", "", "require this bearer token from collectors (every route: page, ack, DELETE, stats)")
	cursorTTL := fs.Duration("cursor-ttl", 15*time.Minute, "expire the cursor of a collector idle this long (what only it held counts as dropped); 0 keeps cursors forever; assigned and --collector cursors never expire")
	maxCollectors := fs.Int("max-collectors", 16, "cap on collector cursors; a new collector id above it is refused (429)")
	maxSessionSeries := fs.Int("max-session-series", 1<<20, "cap on the series ids of a collector's page v3 session (its series dictionary, kept per cursor); at the cap the next page starts a new session")
	registryToken := fs.String("registry-token", "", "bearer token sent to the registry (its --auth-token)")
	registryURL := urlFlag(fs, "registry", "registry URL to register with (and renew), e.g. http://127.0.0.1:9400; collectors come from its assignment")
	advertise := urlFlag(fs, "advertise", "URL collectors reach this producer at (default http://LISTEN)")
	logf := addLogFlags(fs)
	var collectorIDs stringList
	fs.Var(&collectorIDs, "collector", "collector id to hold samples for from the start (repeatable; in a config file: collectors, a list)")
	if _, err := producerFile.parse(fs, args); err != nil {
		return reportParseError("holdfast producer", err, stderr)
	}
	started := flagSnapshot(fs) // before --id and --advertise get their defaults
	if *vms < 1 || *vmOffset < 0 || *interval <= 0 || *cursorTTL < 0 || *maxCollectors < 1 || *maxSessionSeries < 1 {
		fmt.Fprintln(stderr, "holdfast producer: --vms, --max-collectors and --max-session-series must be positive, --vm-offset and --cursor-ttl not negative, --interval a positive duration; no arguments")
		return 2
	}
	if *cf.print {
		if err := producerFile.printConfig(stdout, fs); err != nil {
			fmt.Fprintf(stderr, "holdfast producer: %v\n", err)
			return 1
		}
		return 0
	}
	var logLevel slog.LevelVar
	log, err := logf.logger(stderr, &logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast producer: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "holdfast producer: %v\n", err)
		return 1
	}
	if *id == "" {
		*id = "demo-" + ln.Addr().String()
	}
	reg := newDaemonRegistry() // served on /metrics
	srv, err := pa.NewServer(pa.ServerOptions{ID: *id, MaxSamples: *maxSamples, MaxBytes: int(maxBytes),
		Collectors: collectorIDs, AuthToken: *token, CursorTTL: ttlOption(*cursorTTL), MaxCollectors: *maxCollectors, MaxSessionSeries: *maxSessionSeries, Logger: log,
		Registerer: reg, Gatherer: reg})
	if err != nil {
		fmt.Fprintf(stderr, "holdfast producer: %v\n", err)
		return 1
	}
	ctx, stop := signalContext(log)
	defer stop()
	producerFile.reloadLevelOnHUP(ctx, log, &logLevel, fs, args, started)
	log.Info("producer started", "id", *id, "incarnation", srv.Incarnation(), "listen", ln.Addr().String(),
		"vms", *vms, "first_vm", *vmOffset, "last_vm", *vmOffset+*vms-1, "measurements_per_vm", 22, "interval", *interval,
		"registry", *registryURL, "config", *cf.file)
	var generated atomic.Int64
	go generateFleet(ctx, srv, *vms, *vmOffset, *interval, *total, &generated)
	registered := make(chan struct{})
	if *registryURL != "" {
		if *advertise == "" {
			*advertise = "http://" + ln.Addr().String()
		}
		go func() {
			defer close(registered)
			srv.RunRegistration(ctx, pa.RegistrationOptions{RegistryURL: *registryURL, Address: *advertise,
				Interval: *interval, Kind: "demo", Deregister: true, Token: *registryToken})
		}()
	} else {
		close(registered)
	}
	serveErr := srv.Serve(ctx, ln)
	<-registered // on shutdown, RunRegistration deregisters (2 s at most) before it returns
	if *registryURL != "" {
		log.Info("shutdown: deregistered from the registry (best effort); collectors stop asking for this producer", "registry", *registryURL)
	}
	st := srv.Stats()
	// The demo producer keeps samples in memory: what no collector
	// acknowledged yet goes with the process, and the line says how much.
	log.Info("shutdown: producer stopped", "produced", st.Produced, "released", st.Released, "dropped", st.Dropped, "pending_lost", st.Pending)
	if serveErr != nil {
		fmt.Fprintf(stderr, "holdfast producer: %v\n", serveErr)
		return 1
	}
	return 0
}

// generateFleet adds one period of samples (vms x 22) every interval, starting at
// once, until total samples have been generated.
func generateFleet(ctx context.Context, srv *pa.Server, vms, vmOffset int, interval time.Duration, total int64, generated *atomic.Int64) {
	fleet := sampletest.NewFleet(vms)
	fleet.FirstVM = vmOffset
	perPeriod := int64(vms) * int64(fleet.Measurements)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	chunk := make([]pa.Sample, 0, 10_000)
	for {
		n := perPeriod
		if total > 0 {
			n = min(n, total-generated.Load())
		}
		ts := time.Now().UnixNano()
		for done := int64(0); done < n; {
			k := min(n-done, int64(cap(chunk)))
			chunk = fleet.Append(chunk[:0], int(k), ts+done)
			srv.Add(chunk)
			done += k
		}
		generated.Add(n)
		if total > 0 && generated.Load() >= total {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// ttlOption maps the flag's 0 ("never") to ServerOptions' negative.
func ttlOption(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
