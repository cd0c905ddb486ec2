package bench

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/holdfast/holdfast/internal/httpserve"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// The exposition target of `holdfast bench peer`: the fleet the holdfast
// producers generate, served as Prometheus text exposition (version 0.0.4)
// for an agent to scrape. Each shard of ShardVMs VMs is one scrape target
// at /metrics/SHARD, as each holdfast producer process serves 10,000 VMs.
// A shard renders the next period of its fleet when a scrape comes in a new
// period, so values change every period like the producers'.

// TargetOptions configure ServeTarget.
type TargetOptions struct {
	VMs      int           // in all
	ShardVMs int           // per scrape target; default 10,000
	Period   time.Duration // values change every period; default 10 s
}

func (o TargetOptions) withDefaults() TargetOptions {
	if o.ShardVMs <= 0 {
		o.ShardVMs = 10_000
	}
	if o.Period <= 0 {
		o.Period = 10 * time.Second
	}
	return o
}

// shards returns the VMs of each shard.
func (o TargetOptions) shards() []int {
	o = o.withDefaults()
	n := max(1, (o.VMs+o.ShardVMs-1)/o.ShardVMs)
	out := make([]int, n)
	for i := range out {
		out[i] = min(o.ShardVMs, o.VMs-i*o.ShardVMs)
	}
	return out
}

type targetShard struct {
	mu      sync.Mutex
	fleet   *sampletest.Fleet
	vms     int
	period  int64 // rendered period; -1 before the first
	page    []byte
	samples []pa.Sample
}

// ServeTarget serves the fleet's shards on ln until ctx ends.
func ServeTarget(ctx context.Context, ln net.Listener, o TargetOptions) error {
	o = o.withDefaults()
	start := time.Now()
	var shards []*targetShard
	for i, vms := range o.shards() {
		f := sampletest.NewFleet(vms)
		f.FirstVM = i * o.ShardVMs
		shards = append(shards, &targetShard{fleet: f, vms: vms, period: -1})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics/{shard}", func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(r.PathValue("shard"))
		if err != nil || i < 0 || i >= len(shards) {
			http.NotFound(w, r)
			return
		}
		s := shards[i]
		now := time.Now()
		p := int64(now.Sub(start) / o.Period)
		s.mu.Lock()
		defer s.mu.Unlock()
		if p != s.period {
			// Timestamps as the producers give them: the period's start.
			s.samples = s.fleet.Append(s.samples[:0], s.vms*s.fleet.Measurements, start.Add(time.Duration(p)*o.Period).UnixNano())
			s.page = appendExposition(s.page[:0], s.samples)
			s.period = p
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(s.page)
	})
	return httpserve.Serve(ctx, ln, mux, time.Minute)
}

// appendExposition appends samples as text exposition, one family per
// timeseries name (the format wants a family's lines together), without
// timestamps (the scraper stamps them, as it does for any target).
// Gauges: f64, i64...; counters: cumulative datums; histograms: one line
// per bin edge with cumulative counts (le = the next bin's lower edge, the
// last +Inf), then _sum and _count. Other datum types are left out.
func appendExposition(dst []byte, samples []pa.Sample) []byte {
	var order []string
	byName := map[string][]int{}
	for i := range samples {
		n := samples[i].Target.Name + "_" + samples[i].Metric.Name
		if _, ok := byName[n]; !ok {
			order = append(order, n)
		}
		byName[n] = append(byName[n], i)
	}
	var labels []byte
	for _, name := range order {
		idx := byName[name]
		t := samples[idx[0]].Datum.Type
		kind := "gauge"
		switch {
		case t.IsHistogram():
			kind = "histogram"
		case t.HasStartTime():
			kind, name = "counter", name+"_total" // the exposition's convention
		}
		dst = fmt.Appendf(dst, "# TYPE %s %s\n", name, kind)
		for _, i := range idx {
			s := &samples[i]
			if s.Datum.Missing || s.Datum.Type != t {
				continue
			}
			labels = appendLabels(labels[:0], s)
			if t == pa.DatumHistogramF64 {
				h := s.Datum.HistF64
				var cum uint64
				for b := range h.Counts {
					cum += h.Counts[b]
					le := "+Inf"
					if b+1 < len(h.Bins) {
						le = strconv.FormatFloat(h.Bins[b+1], 'g', -1, 64)
					}
					dst = append(dst, name...)
					dst = append(dst, "_bucket{"...)
					dst = append(dst, labels...)
					dst = append(dst, `,le="`...)
					dst = append(dst, le...)
					dst = append(dst, "\"} "...)
					dst = strconv.AppendUint(dst, cum, 10)
					dst = append(dst, '\n')
				}
				dst = appendLine(dst, name+"_sum", labels, h.Sum)
				dst = appendLine(dst, name+"_count", labels, float64(cum))
				continue
			}
			if v, ok := scalar(&s.Datum); ok {
				dst = appendLine(dst, name, labels, v)
			}
		}
	}
	return dst
}

func appendLine(dst []byte, name string, labels []byte, v float64) []byte {
	dst = append(dst, name...)
	dst = append(dst, '{')
	dst = append(dst, labels...)
	dst = append(dst, "} "...)
	switch {
	case math.IsInf(v, 1):
		dst = append(dst, "+Inf"...)
	case math.IsInf(v, -1):
		dst = append(dst, "-Inf"...)
	case math.IsNaN(v):
		dst = append(dst, "NaN"...)
	default:
		dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
	}
	return append(dst, '\n')
}

// labelEscaper escapes a label value (read-only, safe for concurrent use).
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// appendLabels writes a sample's target and metric fields as labels.
func appendLabels(dst []byte, s *pa.Sample) []byte {
	first := true
	for _, group := range [2][]pa.Field{s.Target.Fields, s.Metric.Fields} {
		for _, f := range group {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, f.Name...)
			dst = append(dst, `="`...)
			switch f.Value.Type {
			case pa.FieldString:
				dst = append(dst, labelEscaper.Replace(f.Value.Str)...)
			case pa.FieldI8, pa.FieldI16, pa.FieldI32, pa.FieldI64:
				dst = strconv.AppendInt(dst, f.Value.Int, 10)
			case pa.FieldU8, pa.FieldU16, pa.FieldU32, pa.FieldU64:
				dst = strconv.AppendUint(dst, f.Value.Uint, 10)
			case pa.FieldBool:
				dst = strconv.AppendBool(dst, f.Value.Bool)
			default:
				dst = append(dst, f.Value.String()...)
			}
			dst = append(dst, '"')
		}
	}
	return dst
}

// scalar is a non-histogram datum as a float, as Prometheus holds every
// value.
func scalar(d *pa.Datum) (float64, bool) {
	switch d.Type {
	case pa.DatumF64, pa.DatumCumulativeF64:
		return d.F64, true
	case pa.DatumF32, pa.DatumCumulativeF32:
		return float64(d.F32), true
	case pa.DatumBool:
		if d.Bool {
			return 1, true
		}
		return 0, true
	case pa.DatumI8, pa.DatumI16, pa.DatumI32, pa.DatumI64, pa.DatumCumulativeI64:
		return float64(d.Int), true
	case pa.DatumU8, pa.DatumU16, pa.DatumU32, pa.DatumU64, pa.DatumCumulativeU64:
		return float64(d.Uint), true
	}
	return 0, false
}

// exposedSamplesPerVM is how many samples a scrape of one VM of the fleet
// yields (a histogram is several series in Prometheus).
func exposedSamplesPerVM() int {
	page := appendExposition(nil, sampletest.NewFleet(1).Append(nil, 22, 0))
	n := 0
	for _, line := range strings.Split(string(page), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n
}
