package bench

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Env is what a scenario runs with.
type Env struct {
	Dir        string        // working directory
	Duration   time.Duration // time budget (approximate)
	Progress   io.Writer     // live progress lines
	Binary     string        // the holdfast binary, for scenarios that start processes
	ClickHouse string        // native address
	VMsPerSled []int         // rfd125 load steps
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
	}
	return nil, fmt.Errorf("unknown scenario %q", scenario)
}
