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
		// Sixteen points, three alternating rounds, WAL and file each: size
		// the runs so the whole sweep fits the budget at ~300 MB/s.
		bytes := int64(env.Duration.Seconds() / 96 * 150e6)
		bytes = min(256<<20, max(8<<20, bytes))
		return RunWAL(WALOptions{BytesPerRun: bytes, Dir: env.Dir, Progress: env.Progress})
	case "insert":
		return RunInsert(ctx, env)
	case "rfd125":
		return RunRFD125(ctx, env)
	}
	return nil, fmt.Errorf("unknown scenario %q", scenario)
}
