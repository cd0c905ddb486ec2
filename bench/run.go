package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/holdfast/holdfast/forwarder"
)

// Env is what a scenario runs with.
type Env struct {
	Dir        string        // working directory
	Duration   time.Duration // time budget (approximate)
	Progress   io.Writer     // live progress lines
	Binary     string        // the holdfast binary, for scenarios that start processes
	ClickHouse string        // native address
	VMsPerSled []int         // rfd125 load steps
	PeerVMs    int           // peer: VMs (default 20,000)
	Warmup     int           // max: warm-up periods per load step, not counted (default 2; at least 1)
	MaxSteps   []int         // max: VMs of its load steps, ascending (default maxSteps)
	Period     time.Duration // measurement period of the load scenarios; default 10 s (tests shorten it)
	// Profile: save a CPU profile of the measured process (collector,
	// Prometheus agent) over the load's second period and after, as
	// cpu-*.pprof in its log directory.
	Profile bool
	// CollectorArgs are extra flags given to every collector process a
	// scenario starts (after its own, so they win), e.g. --memory-limit.
	CollectorArgs []string
}

// compression is the --clickhouse-compression among CollectorArgs (the
// last one wins, as with flags), LZ4 if none: a direct-insert baseline
// dials with it, so that it compares like with like.
func (e Env) compression() forwarder.Compression {
	c := forwarder.CompressionLZ4
	for i, a := range e.CollectorArgs {
		v, ok := "", false
		switch {
		case strings.HasPrefix(a, "--clickhouse-compression="), strings.HasPrefix(a, "-clickhouse-compression="):
			v, ok = a[strings.Index(a, "=")+1:], true
		case (a == "--clickhouse-compression" || a == "-clickhouse-compression") && i+1 < len(e.CollectorArgs):
			v, ok = e.CollectorArgs[i+1], true
		}
		if parsed, err := forwarder.ParseCompression(v); ok && err == nil {
			c = parsed
		}
	}
	return c
}

// dialBaseline connects to addr with the collectors' compression: the
// direct-insert baselines of rfd125, max and recovery, and what the
// scenarios check with.
func (e Env) dialBaseline(addr string) (driver.Conn, error) {
	return forwarder.DialWith(forwarder.ConnOptions{Addr: addr, DialTimeout: 5 * time.Second, Compression: e.compression()})
}

func (e Env) period() time.Duration {
	if e.Period > 0 {
		return e.Period
	}
	return 10 * time.Second
}

// Run runs one scenario by name.
func Run(ctx context.Context, scenario string, env Env) (*Result, error) {
	switch scenario {
	case "wal":
		// Sixteen points, three alternating rounds, a WAL run and a file
		// run of about the same length each.
		run := max(200*time.Millisecond, env.Duration/96)
		return RunWAL(WALOptions{RunTime: run, Dir: env.Dir, Progress: env.Progress})
	case "max":
		return RunMax(ctx, env)
	case "outage":
		return RunOutage(ctx, env)
	case "recovery":
		return RunRecovery(ctx, env)
	case "insert":
		return RunInsert(ctx, env)
	case "rfd125":
		return RunRFD125(ctx, env)
	case "peer":
		return RunPeer(ctx, env)
	}
	return nil, fmt.Errorf("unknown scenario %q", scenario)
}
