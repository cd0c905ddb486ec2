package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/holdfast/holdfast/forwarder"
)

// RunMax raises the load (VMs in RFD 125's shape, 22 measurements every
// 10 s) step by step until the collector falls behind (or, when the first
// step already does, lowers it until a step is sustained): a step is sustained
// when everything it offered is in ClickHouse within one period after the
// load ends. It reports the highest sustained rate and its ratio to the
// direct-insert ceiling measured in the same run.
func RunMax(ctx context.Context, env Env) (*Result, error) {
	if env.Binary == "" {
		return nil, fmt.Errorf("max needs the holdfast binary")
	}
	conn, err := forwarder.Dial(env.ClickHouse, "default", "", 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	r := newResult("max")
	r.Machine.ClickHouse = serverVersion(ctx, conn)
	// Two periods of the first step's fleet into a fresh database, as the
	// steps run them: the same rows (fields of every timeseries once, then
	// measurements), inserted as a careful user would (direct.go).
	cst, err := directCeilingStats(ctx, conn, 100_000*22*2, 100_000)
	if err != nil {
		return nil, err
	}
	ceiling := cst.rate()
	r.Metrics["direct_measurements_only_samples_per_s"] = cst.measurementsRate()
	r.Metrics["direct_fields_rows"] = float64(cst.fieldRows)
	r.Notes = append(r.Notes, fmt.Sprintf("direct ceiling: %d samples, %d fields rows (5 per new timeseries), %.1f s in fields inserts, %.1f s in measurements inserts; measurements only: %.0f samples/s",
		cst.samples, cst.fieldRows, cst.tookFields.Seconds(), cst.tookMeas.Seconds(), cst.measurementsRate()))
	const periods = 2
	steps := []int{100_000, 120_000, 140_000, 170_000, 200_000, 250_000, 300_000}
	r.Params["vms_steps"], r.Params["periods_per_step"] = steps, periods
	t := Table{Title: "Load steps until the collector falls behind",
		Columns: []string{"VMs", "offered/s", "delivered/s", "max backlog", "RSS MiB", "sustained"}}
	best := 0.0
	deadline := time.Now().Add(env.Duration)
	step := func(vms int) (bool, error) {
		s, err := runSustained(ctx, env, conn, vms, periods)
		if errors.Is(err, errFellBehind) {
			t.Rows = append(t.Rows, []string{fmt.Sprint(vms), f0(float64(vms*22) / 10), "-", "-", "-", "false (producers dropped)"})
			r.Notes = append(r.Notes, err.Error())
			return false, nil
		}
		if err != nil {
			return false, err
		}
		// Sustained: done within one period (10 s) after the last one.
		ok := s.elapsed <= time.Duration(periods+1)*10*time.Second
		t.Rows = append(t.Rows, []string{fmt.Sprint(vms), f0(s.offered), f0(s.delivered), fmt.Sprint(s.maxBacklog), f0(float64(s.maxRSS) / (1 << 20)), fmt.Sprint(ok)})
		if ok {
			best = max(best, s.offered)
		}
		return ok, nil
	}
	for _, vms := range steps {
		if time.Now().After(deadline) && best > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("budget spent before the step of %d VMs", vms))
			break
		}
		ok, err := step(vms)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
	}
	// The first step fell behind: step down until one is sustained, so the
	// result says what the machine sustains rather than 0.
	for _, vms := range []int{50_000, 20_000, 10_000} {
		if best > 0 {
			break
		}
		if ok, err := step(vms); err != nil {
			return nil, err
		} else if ok {
			r.Notes = append(r.Notes, fmt.Sprintf("the first step fell behind; stepped down to %d VMs", vms))
		}
	}
	r.Tables = append(r.Tables, t)
	r.Metrics["max_sustained_samples_per_s"] = best
	r.Metrics["direct_samples_per_s"] = ceiling
	r.Metrics["max_vs_direct_ratio"] = best / ceiling
	r.target("max_vs_direct_ratio", ">=", 0.6)
	r.target("max_sustained_samples_per_s", ">=", 500_000)
	return r.finish(), nil
}
