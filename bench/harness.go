package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// Machine describes where a result was measured.
type Machine struct {
	Cores       int    `json:"cores"`
	MemoryBytes int64  `json:"memory_bytes"`
	CPU         string `json:"cpu"`
	Disk        string `json:"disk"` // device and free space of the working directory
	Kernel      string `json:"kernel"`
	Go          string `json:"go"`
	ClickHouse  string `json:"clickhouse,omitempty"`
}

// Table is a human-readable table of a result.
type Table struct {
	Title   string     `json:"title"`
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

// Result is one scenario's outcome. Every ratio in Metrics is under a key
// ending in "_ratio", so scripts can find them.
type Result struct {
	Scenario        string             `json:"scenario"`
	Command         string             `json:"command"`
	Machine         Machine            `json:"machine"`
	Started         time.Time          `json:"started"`
	DurationSeconds float64            `json:"duration_seconds"`
	Params          map[string]any     `json:"params"`
	Metrics         map[string]float64 `json:"metrics"`
	Targets         []Target           `json:"targets,omitempty"`
	Tables          []Table            `json:"tables"`
	Notes           []string           `json:"notes,omitempty"`
	Series          map[string][]Point `json:"series,omitempty"` // over time, for charts
}

// Target is a goal a metric is compared with.
type Target struct {
	Metric string  `json:"metric"`
	Op     string  `json:"op"` // ">=" or "<="
	Value  float64 `json:"value"`
	Got    float64 `json:"got"`
	Met    bool    `json:"met"`
}

// Point is one sample of a time series.
type Point struct {
	T float64 `json:"t"` // seconds since the start
	V float64 `json:"v"`
}

func newResult(scenario string) *Result {
	return &Result{Scenario: scenario, Command: strings.Join(os.Args, " "), Machine: describeMachine(), Started: time.Now(),
		Params: map[string]any{}, Metrics: map[string]float64{}, Series: map[string][]Point{}}
}

func (r *Result) target(metric, op string, value float64) {
	got := r.Metrics[metric]
	met := got >= value
	if op == "<=" {
		met = got <= value
	}
	r.Targets = append(r.Targets, Target{Metric: metric, Op: op, Value: value, Got: got, Met: met})
}

func (r *Result) finish() *Result {
	r.DurationSeconds = time.Since(r.Started).Seconds()
	return r
}

// WriteJSON writes the result as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the result as tables for people.
func (r *Result) WriteText(w io.Writer) {
	fmt.Fprintf(w, "\n== %s (%.0f s) ==\n", r.Scenario, r.DurationSeconds)
	m := r.Machine
	fmt.Fprintf(w, "machine: %d cores (%s), %.1f GiB, %s, %s, %s", m.Cores, m.CPU, float64(m.MemoryBytes)/(1<<30), m.Disk, m.Kernel, m.Go)
	if m.ClickHouse != "" {
		fmt.Fprintf(w, ", ClickHouse %s", m.ClickHouse)
	}
	fmt.Fprintf(w, "\ncommand: %s\n", r.Command)
	for _, t := range r.Tables {
		fmt.Fprintf(w, "\n%s\n", t.Title)
		widths := make([]int, len(t.Columns))
		for i, c := range t.Columns {
			widths[i] = len(c)
		}
		for _, row := range t.Rows {
			for i, c := range row {
				widths[i] = max(widths[i], len(c))
			}
		}
		line := func(cells []string) {
			for i, c := range cells {
				fmt.Fprintf(w, "  %*s", widths[i], c)
			}
			fmt.Fprintln(w)
		}
		line(t.Columns)
		for _, row := range t.Rows {
			line(row)
		}
	}
	keys := make([]string, 0, len(r.Metrics))
	for k := range r.Metrics {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "\nmetrics:")
	for _, k := range keys {
		fmt.Fprintf(w, "  %-40s %.4g\n", k, r.Metrics[k])
	}
	for _, t := range r.Targets {
		verdict := "MET"
		if !t.Met {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "target: %s %s %g: got %.4g: %s\n", t.Metric, t.Op, t.Value, t.Got, verdict)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func describeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb)
		m.MemoryBytes = kb << 10
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				m.CPU = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	if out, err := exec.Command("df", "-h", "--output=source,size,avail", ".").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		m.Disk = strings.Join(strings.Fields(lines[len(lines)-1]), " ")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return m
}

// progress prints a line at most every interval.
type progress struct {
	w     io.Writer
	last  time.Time
	every time.Duration
}

func (p *progress) say(format string, args ...any) {
	if p.w == nil || time.Since(p.last) < p.every {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, format+"\n", args...)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }
