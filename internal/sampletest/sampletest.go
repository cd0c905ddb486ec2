// Package sampletest builds samples for tests and benchmarks: one of every
// datum type with edge-case values, and a steady stream shaped like a fleet of
// virtual machines.
package sampletest

import (
	"fmt"
	"math"
	"net/netip"

	pa "github.com/holdfast/holdfast/producerapi"
)

// target returns the target used by EveryDatumType.
func target(id int) pa.Named {
	return pa.Named{Name: "edge_case", Fields: []pa.Field{
		{Name: "id", Value: pa.I64Value(int64(id))},
		{Name: "host", Value: pa.StringValue("sled-0 ünïcode")},
		{Name: "addr", Value: pa.IPValue(netip.MustParseAddr("fd00::1"))},
		{Name: "addr4", Value: pa.IPValue(netip.MustParseAddr("10.0.0.1"))},
		{Name: "uuid", Value: pa.UUIDValue([16]byte{0xde, 0xad, 0xbe, 0xef, 15: 1})},
		{Name: "flag", Value: pa.BoolValue(true)},
		{Name: "small", Value: pa.I8Value(math.MinInt8)},
		{Name: "mid", Value: pa.I16Value(math.MaxInt16)},
		{Name: "wide", Value: pa.I32Value(math.MinInt32)},
		{Name: "ubyte", Value: pa.U8Value(math.MaxUint8)},
		{Name: "ushort", Value: pa.U16Value(math.MaxUint16)},
		{Name: "uint", Value: pa.U32Value(math.MaxUint32)},
		{Name: "ulong", Value: pa.U64Value(math.MaxUint64)},
	}}
}

// EveryDatumType returns samples covering every datum type, each with the
// values that break imprecise storage: NaN, ±Inf, -0, integer extremes,
// empty and non-UTF-8 bytes, a missing datum of every type. Timestamps start at
// ts and increase by one nanosecond per sample.
func EveryDatumType(ts int64) []pa.Sample {
	var out []pa.Sample
	add := func(metric string, d pa.Datum) {
		out = append(out, pa.Sample{
			Target:      target(0),
			Metric:      pa.Named{Name: metric, Fields: []pa.Field{{Name: "n", Value: pa.U64Value(uint64(len(out)))}}},
			TimestampNs: ts + int64(len(out)),
			Datum:       d,
		})
	}
	nan := math.Float64frombits(0x7ff8_0000_dead_beef) // a NaN with a payload
	negZero := math.Copysign(0, -1)
	for _, b := range []bool{true, false} {
		add("bool", pa.Datum{Type: pa.DatumBool, Bool: b})
	}
	for _, v := range []int64{math.MinInt8, -1, 0, math.MaxInt8} {
		add("i8", pa.Datum{Type: pa.DatumI8, Int: v})
	}
	for _, v := range []int64{math.MinInt16, math.MaxInt16} {
		add("i16", pa.Datum{Type: pa.DatumI16, Int: v})
	}
	for _, v := range []int64{math.MinInt32, math.MaxInt32} {
		add("i32", pa.Datum{Type: pa.DatumI32, Int: v})
	}
	for _, v := range []int64{math.MinInt64, -1, 0, math.MaxInt64} {
		add("i64", pa.Datum{Type: pa.DatumI64, Int: v})
		add("cumulative_i64", pa.Datum{Type: pa.DatumCumulativeI64, Int: v, StartTimeNs: math.MinInt64 + 1})
	}
	for _, v := range []uint64{0, math.MaxUint8} {
		add("u8", pa.Datum{Type: pa.DatumU8, Uint: v})
	}
	add("u16", pa.Datum{Type: pa.DatumU16, Uint: math.MaxUint16})
	add("u32", pa.Datum{Type: pa.DatumU32, Uint: math.MaxUint32})
	for _, v := range []uint64{0, 1 << 63, math.MaxUint64} {
		add("u64", pa.Datum{Type: pa.DatumU64, Uint: v})
		add("cumulative_u64", pa.Datum{Type: pa.DatumCumulativeU64, Uint: v, StartTimeNs: 1})
	}
	for _, v := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(negZero), math.MaxFloat32, math.SmallestNonzeroFloat32, math.Float32frombits(0x7fc0_beef)} {
		add("f32", pa.Datum{Type: pa.DatumF32, F32: v})
		add("cumulative_f32", pa.Datum{Type: pa.DatumCumulativeF32, F32: v, StartTimeNs: math.MaxInt64})
	}
	for _, v := range []float64{nan, math.Inf(1), math.Inf(-1), negZero, math.MaxFloat64, math.SmallestNonzeroFloat64, 0.1} {
		add("f64", pa.Datum{Type: pa.DatumF64, F64: v})
		add("cumulative_f64", pa.Datum{Type: pa.DatumCumulativeF64, F64: v, StartTimeNs: -5})
	}
	for _, v := range []string{"", "ünïcode ✓", "tab\tnew\nline'quote\"\\"} {
		add("string", pa.Datum{Type: pa.DatumString, Str: v})
	}
	for _, v := range [][]byte{{}, {0xff, 0xfe, 0x00, 0x80}, []byte("plain")} {
		add("bytes", pa.Datum{Type: pa.DatumBytes, Bytes: v})
	}
	add("histogram_i64", pa.Datum{Type: pa.DatumHistogramI64, StartTimeNs: 7, HistI64: &pa.Histogram[int64]{
		Bins: []int64{math.MinInt64, -1, 0, math.MaxInt64}, Counts: []uint64{0, 1, math.MaxUint64, 3},
		Min: math.MinInt64, Max: math.MaxInt64, Sum: -1}})
	add("histogram_u64", pa.Datum{Type: pa.DatumHistogramU64, StartTimeNs: 8, HistU64: &pa.Histogram[uint64]{
		Bins: []uint64{0, 10, math.MaxUint64}, Counts: []uint64{5, 6, 7}, Min: 0, Max: math.MaxUint64, Sum: 12345}})
	add("histogram_f64", pa.Datum{Type: pa.DatumHistogramF64, StartTimeNs: 9, HistF64: &pa.Histogram[float64]{
		Bins: []float64{math.Inf(-1), negZero, 0.5, math.Inf(1)}, Counts: []uint64{1, 2, 3, 4},
		Min: math.Inf(-1), Max: nan, Sum: negZero}})
	for _, t := range pa.AllDatumTypes() {
		d := pa.Datum{Type: t, Missing: true}
		if t.HasStartTime() {
			d.StartTimeNs = 42
		}
		add("missing_"+t.String(), d)
	}
	return out
}

// Fleet generates samples shaped like RFD 125's load test: VMs in sleds in
// teams in projects, each VM reporting Measurements samples per period
// (gauges, cumulative counters and a histogram). The values look like data,
// deterministic per VM and period: CPU busy follows a slow daily-like wave
// with a per-VM phase (idle is 100 minus busy), byte counters grow
// monotonically at a per-VM rate, memory drifts slowly, and the latency
// histogram accumulates a plausible distribution (mostly 1-10 ms).
type Fleet struct {
	VMs          int // number of virtual machines
	Measurements int // samples per VM per period; default 22
	// FirstVM is the id of the fleet's first VM: VMs FirstVM to
	// FirstVM+VMs-1. Producers that run side by side must have disjoint
	// ranges, or two of them report the very same timeseries.
	FirstVM int
	next    int // position in the current period
	// identities caches each VM's target and each measurement's metric,
	// shared by all their samples (as a real producer keeps its target):
	// generating a fleet is then mostly datum arithmetic, not allocating
	// ~600 bytes of field slices and strings per sample (at 200,000 VMs
	// the bench's generator was a third of the machine, zeroing fresh
	// pages). Callers must not change a returned sample's Fields in place.
	targets []pa.Named
	metrics []pa.Named
	period  int64
	start   int64 // start time of the cumulative series: the first timestamp
	started bool  // start is set (0 is a valid first timestamp)
}

// NewFleet returns a fleet of vms virtual machines, ids 0 to vms-1.
func NewFleet(vms int) *Fleet { return &Fleet{VMs: vms, Measurements: 22} }

// Append appends n samples to dst with timestamps from ts on (1 ns apart, so
// each sample has a distinct identity) and returns it.
func (f *Fleet) Append(dst []pa.Sample, n int, ts int64) []pa.Sample {
	per := f.Measurements
	if !f.started {
		f.start, f.started = ts, true
	}
	for i := 0; i < n; i++ {
		vm := (f.next / per) % f.VMs
		m := f.next % per
		f.next++
		if f.next == per*f.VMs {
			f.next = 0
			f.period++
		}
		dst = append(dst, fleetSample(f.target(vm), f.metric(m), f.FirstVM+vm, m, ts+int64(i), f.period, f.start))
	}
	return dst
}

var metricNames = [...]string{"cpu_busy", "cpu_idle", "disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes", "memory_used", "latency"}

// unit returns a deterministic value in [0, 1) for (vm, salt): per-VM
// character (phase, rates) without a random generator.
func unit(vm, salt int) float64 {
	x := uint64(vm)*0x9E3779B97F4A7C15 + uint64(salt)*0xBF58476D1CE4E5B9
	x ^= x >> 31
	x *= 0x94D049BB133111EB
	x ^= x >> 29
	return float64(x>>11) / (1 << 53)
}

// cpuBusy is a VM's CPU busy percentage in a period: a wave 144 periods
// long (a day of 10-minute periods, or 24 minutes at 10 s) around a per-VM
// mean, with a small per-period wobble, kept within [0, 100].
func cpuBusy(vm int, period int64) float64 {
	mean := 15 + 50*unit(vm, 1)
	wave := 20 * math.Sin(2*math.Pi*(float64(period)/144+unit(vm, 2)))
	wobble := 3 * (unit(vm*7919+int(period), 3) - 0.5)
	return math.Round(100*math.Min(100, math.Max(0, mean+wave+wobble))) / 100
}

var latencyBins = []float64{0, 0.001, 0.01, 0.1, 1}

// target returns VM i's (0-based in the fleet) target, made once.
func (f *Fleet) target(i int) pa.Named {
	if len(f.targets) != f.VMs {
		f.targets = make([]pa.Named, f.VMs)
	}
	if f.targets[i].Name == "" {
		f.targets[i] = fleetTarget(f.FirstVM + i)
	}
	return f.targets[i]
}

// metric returns measurement m's metric, made once.
func (f *Fleet) metric(m int) pa.Named {
	for len(f.metrics) <= m {
		k := len(f.metrics)
		f.metrics = append(f.metrics, pa.Named{Name: metricNames[k%len(metricNames)], Fields: []pa.Field{{Name: "slot", Value: pa.U8Value(uint8(k))}}})
	}
	return f.metrics[m]
}

func fleetTarget(vm int) pa.Named {
	return pa.Named{Name: "virtual_machine", Fields: []pa.Field{
		{Name: "project", Value: pa.StringValue(fmt.Sprintf("project-%d", vm/1000%10))},
		{Name: "team", Value: pa.StringValue(fmt.Sprintf("team-%d", vm/100%10))},
		{Name: "sled", Value: pa.U32Value(uint32(vm / 100))},
		{Name: "vm", Value: pa.U64Value(uint64(vm))},
	}}
}

func fleetSample(tgt, met pa.Named, vm, m int, ts, period, start int64) pa.Sample {
	var d pa.Datum
	elapsed := period + 1 // periods since the series started, this one included
	switch k := m % len(metricNames); k {
	case 0:
		d = pa.Datum{Type: pa.DatumF64, F64: cpuBusy(vm+m, period)}
	case 1:
		d = pa.Datum{Type: pa.DatumF64, F64: math.Round(100*(100-cpuBusy(vm+m-1, period))) / 100}
	case 2, 3, 4, 5:
		// Bytes per period: 64 KiB to 64 MiB, fixed per VM and counter.
		rate := uint64(64<<10) << uint(10*unit(vm, 10+m))
		d = pa.Datum{Type: pa.DatumCumulativeU64, Uint: uint64(elapsed) * rate, StartTimeNs: start}
	case 6:
		base := int64(512<<20) << uint(4*unit(vm, 20)) // 512 MiB to 8 GiB
		d = pa.Datum{Type: pa.DatumI64, Int: base + int64(float64(base)*0.2*math.Sin(float64(period)/30+unit(vm, 21)*6))}
	default:
		// Requests per period grow the cumulative counts: most between
		// 1 and 10 ms, some slower, a few over 100 ms.
		reqs := uint64(100 + 900*unit(vm, 30))
		share := [5]float64{0.05, 0.70, 0.22, 0.029, 0.001}
		counts := make([]uint64, len(latencyBins))
		var total uint64
		for i, p := range share {
			counts[i] = uint64(elapsed) * uint64(float64(reqs)*p)
			total += counts[i]
		}
		d = pa.Datum{Type: pa.DatumHistogramF64, StartTimeNs: start, HistF64: &pa.Histogram[float64]{
			Bins: latencyBins, Counts: counts, Min: 0.0002, Max: 0.35 + unit(vm, 31)/2, Sum: float64(total) * 0.0045}}
	}
	return pa.Sample{Target: tgt, Metric: met, TimestampNs: ts, Datum: d}
}
