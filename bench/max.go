package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"
)

// maxSteps are max's load steps (VMs) by default, and maxStepsDown those
// it steps down through when the first falls behind.
var (
	maxSteps     = []int{100_000, 120_000, 140_000, 170_000, 200_000, 230_000, 260_000, 300_000}
	maxStepsDown = []int{80_000, 50_000, 20_000, 10_000}
)

// RunMax raises the load (VMs in RFD 125's shape, 22 measurements every
// 10 s) step by step until the collector falls behind (or, when the first
// step already does, lowers it until a step is sustained). Each step is a
// fresh fleet, collector and database that runs maxWarmup periods which
// are not counted (the first defines every series and writes its fields
// rows: start-up, not the steady state) and then maxPeriods measured ones;
// a step is sustained when every sample of its measured periods is in
// ClickHouse within one period after the last of them ends and no producer
// dropped a sample, and every sample of the step is checked in ClickHouse
// exactly once, per timeseries and per side of the warm-up split
// (window.go). It reports the highest sustained rate and its ratio to the
// direct-insert ceilings measured in the same run: the steady-state one
// (measurements rows of a fleet whose fields are written: the same work as
// the measured periods; the target's denominator) and the one with every
// row of two fresh periods (reported as before).
func RunMax(ctx context.Context, env Env) (*Result, error) {
	if env.Binary == "" {
		return nil, fmt.Errorf("max needs the holdfast binary")
	}
	conn, err := env.dialBaseline(env.ClickHouse)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	r := newResult("max")
	r.Machine.ClickHouse = serverVersion(ctx, conn)
	warmup, periods := maxWarmup, maxPeriods
	if env.Warmup > 0 {
		warmup = env.Warmup
	}
	// The first step's fleet as the steps load it, inserted as a careful
	// user would (direct.go): the warm-up periods with every timeseries'
	// fields, then the measured periods, measurements rows only.
	fresh, steady, err := directSteadyCeiling(ctx, conn, 100_000, warmup, periods)
	if err != nil {
		return nil, err
	}
	ceiling, steadyCeiling := fresh.rate(), steady.rate()
	r.Metrics["direct_samples_per_s"] = ceiling
	r.Metrics["direct_measurements_only_samples_per_s"] = fresh.measurementsRate()
	r.Metrics["direct_fields_rows"] = float64(fresh.fieldRows)
	r.Metrics["direct_steady_samples_per_s"] = steadyCeiling
	r.Metrics["direct_steady_fields_rows"] = float64(steady.fieldRows)
	r.Notes = append(r.Notes,
		fmt.Sprintf("direct ceiling with fields (%d fresh periods of 100,000 VMs): %d samples, %d fields rows (5 per new timeseries), %.1f s in fields inserts, %.1f s in measurements inserts: %.0f samples/s (%.0f/s counting the measurements inserts only)",
			warmup, fresh.samples, fresh.fieldRows, fresh.tookFields.Seconds(), fresh.tookMeas.Seconds(), ceiling, fresh.measurementsRate()),
		fmt.Sprintf("direct ceiling in steady state (the %d periods after those, every timeseries known): %d samples, %d fields rows, %.1f s of inserts: %.0f samples/s",
			periods, steady.samples, steady.fieldRows, steady.took.Seconds(), steadyCeiling))
	steps := maxSteps
	if len(env.MaxSteps) > 0 {
		if !slices.IsSorted(env.MaxSteps) || env.MaxSteps[0] <= 0 {
			return nil, fmt.Errorf("max: steps %v: want VMs above 0, ascending", env.MaxSteps)
		}
		steps = env.MaxSteps
	}
	// Below the first step only: a run that starts higher (--steps) steps
	// down through the default ladder's lower rungs.
	var down []int
	for _, v := range maxStepsDown {
		if v < steps[0] {
			down = append(down, v)
		}
	}
	r.Params["vms_steps"], r.Params["vms_steps_down"] = steps, down
	r.Params["warmup_periods_per_step"], r.Params["periods_per_step"], r.Params["period_seconds"] = warmup, periods, env.period().Seconds()
	t := Table{Title: fmt.Sprintf("Load steps until the collector falls behind (each: %d warm-up periods, not counted, then %d measured)", warmup, periods),
		Columns: []string{"VMs", "warm-up left at start", "offered/s (nominal / actual)", "delivered/s", "max backlog", "RSS MiB (measured / step)", "CPU s/M", "machine CPU busy", "p50 s", "p99 s", "all in, s after load end", "sustained"}}
	var best *measuredPeriods
	deadline := time.Now().Add(env.Duration)
	step := func(vms int) (bool, error) {
		// A step's start-up commits its WAL often (the pages carry the
		// series definitions), and in one run its commits took 1.3-2.3 s
		// each ("wal: slow commit", 18:49 UTC) with the disk busy after
		// the ceiling's inserts (700 MB dirty at their end). Flush what is
		// dirty before the step, so it does not start behind the bench's
		// own writes; the note says how long that took.
		began := time.Now()
		syscall.Sync()
		r.Notes = append(r.Notes, fmt.Sprintf("%d VMs: sync(2) before the step took %.1f s", vms, time.Since(began).Seconds()))
		s, err := runSustained(ctx, env, conn, vms, warmup, periods)
		if errors.Is(err, errFellBehind) {
			t.Rows = append(t.Rows, []string{fmt.Sprint(vms), "-", f0(float64(vms*22)/env.period().Seconds()) + " / -", "-", "-", "-", "-", "-", "-", "-", "-", "false (producers dropped)"})
			r.Notes = append(r.Notes, err.Error())
			return false, nil
		}
		if err != nil {
			return false, err
		}
		m := s.measured
		after := m.done.Sub(m.span.loadEnd()).Seconds()
		t.Rows = append(t.Rows, []string{fmt.Sprint(vms), fmt.Sprintf("%d samples, %d records", m.warmupLeft, m.startBacklog), f0(m.nominal) + " / " + f0(m.offered), f0(m.delivered), fmt.Sprint(m.maxBacklog),
			fmt.Sprintf("%.0f / %.0f", float64(m.maxRSS)/(1<<20), float64(s.maxRSS)/(1<<20)), f2(m.cpuPerM), fmt.Sprintf("%.0f%%", 100*m.machineBusy),
			fmt.Sprintf("%.1f", m.p50), fmt.Sprintf("%.1f", m.p99), fmt.Sprintf("%.1f", after), fmt.Sprint(m.sustained)})
		r.Notes = append(r.Notes, fmt.Sprintf("%d VMs: every timeseries checked: %d samples (%d warm-up, %d measured); measured periods from %s to %s (load end), all in at %s, deadline %s; a late producer's warm-up overlapped others' measured periods by %v; producers' byte bound %d MiB",
			vms, warmup+periods, warmup, periods, m.start.Format("15:04:05.000"), m.span.loadEnd().Format("15:04:05.000"), m.done.Format("15:04:05.000"), m.deadline.Format("15:04:05.000"),
			m.span.overlap().Round(time.Millisecond), m.bufferBytes>>20))
		if m.sustained && (best == nil || m.offered > best.offered) {
			best = m
		}
		return m.sustained, nil
	}
	for _, vms := range steps {
		if time.Now().After(deadline) && best != nil {
			r.Notes = append(r.Notes, fmt.Sprintf("budget spent before the step of %d VMs: the highest sustained rate is a lower bound", vms))
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
	for _, vms := range down {
		if best != nil {
			break
		}
		if ok, err := step(vms); err != nil {
			return nil, err
		} else if ok {
			r.Notes = append(r.Notes, fmt.Sprintf("the first step fell behind; stepped down to %d VMs", vms))
		}
	}
	r.Tables = append(r.Tables, t)
	rate := 0.0
	if best != nil {
		rate = best.offered
		r.Metrics["max_sustained_collector_cpu_s_per_msample"] = best.cpuPerM
		r.Metrics["max_sustained_collector_rss_mib"] = float64(best.maxRSS) / (1 << 20)
		r.Metrics["max_sustained_latency_p99_s"] = best.p99
		r.Metrics["max_sustained_max_backlog_records"] = float64(best.maxBacklog)
		r.Metrics["max_sustained_machine_cpu_busy_share"] = best.machineBusy
	}
	r.Metrics["max_sustained_samples_per_s"] = rate
	r.Metrics["max_vs_direct_steady_ratio"] = rate / steadyCeiling
	r.Metrics["max_vs_direct_ratio"] = rate / ceiling
	r.target("max_vs_direct_steady_ratio", ">=", 0.6)
	r.target("max_sustained_samples_per_s", ">=", 500_000)
	r.Notes = append(r.Notes, "rates, backlog, CPU and latency are the measured periods' (from the first measured period's start until all was in ClickHouse); RSS: the measured periods' peak / the whole step's, warm-up included; machine CPU busy: the share of all cores' time busy over the measured periods (/proc/stat: producers, collector, ClickHouse and anything else); warm-up left at start: warm-up samples not yet collected and WAL records not yet in ClickHouse at the last poll before the measured periods (0 and 0: the step was in steady state when measured)")
	return r.finish(), nil
}

// maxWarmup and maxPeriods are a `max` step's warm-up periods (not
// counted; Env.Warmup overrides) and measured periods.
const maxWarmup, maxPeriods = 2, 2
