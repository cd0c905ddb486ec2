package sampletest

import (
	"testing"

	pa "github.com/holdfast/holdfast/producerapi"
)

// TestFleetLooksLikeData: every sample validates; CPU stays a percentage and
// moves smoothly; counters never go down; fleets with different FirstVM
// never share a timeseries.
func TestFleetLooksLikeData(t *testing.T) {
	a, b := NewFleet(50), NewFleet(50)
	b.FirstVM = 50
	keys := map[uint64]bool{}
	last := map[uint64]pa.Sample{}
	for period := 0; period < 30; period++ {
		for fi, f := range []*Fleet{a, b} {
			for _, s := range f.Append(nil, 50*22, int64(1_000+period*10_000+fi*5_000)) {
				if err := pa.Validate(&s, pa.Limits{}); err != nil {
					t.Fatal(err)
				}
				k := pa.TimeseriesKey(&s)
				if period == 0 {
					if keys[k] {
						t.Fatalf("two samples of period 0 share timeseries %s %v", s.TimeseriesName(), s.Target.Fields)
					}
					keys[k] = true
				}
				prev, seen := last[k]
				last[k] = s
				switch s.Datum.Type {
				case pa.DatumF64:
					if v := s.Datum.F64; v < 0 || v > 100 {
						t.Fatalf("%s = %v, not a percentage", s.TimeseriesName(), v)
					}
					if seen && (s.Datum.F64-prev.Datum.F64 > 10 || prev.Datum.F64-s.Datum.F64 > 10) {
						t.Fatalf("%s jumps from %v to %v in one period", s.TimeseriesName(), prev.Datum.F64, s.Datum.F64)
					}
				case pa.DatumCumulativeU64:
					if seen && s.Datum.Uint <= prev.Datum.Uint {
						t.Fatalf("counter %s went from %d to %d", s.TimeseriesName(), prev.Datum.Uint, s.Datum.Uint)
					}
				case pa.DatumHistogramF64:
					if seen && s.Datum.HistF64.Counts[1] <= prev.Datum.HistF64.Counts[1] {
						t.Fatalf("histogram counts did not grow")
					}
				}
			}
		}
	}
	if len(keys) != 2*50*22 {
		t.Fatalf("%d timeseries, want %d", len(keys), 2*50*22)
	}
}

// TestFleetStartTimeFixedFromTimestampZero: a fleet whose first timestamp
// is 0 keeps start time 0 for its counters in later calls. Taking start == 0
// for "not set" moved it to the second call's timestamp: one counter with two
// start times, which are two series of rows since start_time_ns is in the
// sorting key.
func TestFleetStartTimeFixedFromTimestampZero(t *testing.T) {
	f := NewFleet(2)
	starts := map[int64]bool{}
	for call := int64(0); call < 3; call++ {
		for _, s := range f.Append(nil, 44, call*1_000) {
			if s.Datum.Type.HasStartTime() {
				starts[s.Datum.StartTimeNs] = true
			}
		}
	}
	if len(starts) != 1 || !starts[0] {
		t.Fatalf("counter start times %v, want only 0", starts)
	}
}

// TestFleetSharesIdentities: a VM's samples share one target and a
// measurement's one metric (what a producer keeps), with the values a
// fresh target has; a fleet's identities are its own (FirstVM included).
func TestFleetSharesIdentities(t *testing.T) {
	f := &Fleet{VMs: 3, Measurements: 22, FirstVM: 7}
	first := f.Append(nil, 3*22, 1)
	second := f.Append(nil, 3*22, 2)
	for i := range first {
		a, b := first[i].Target.Fields, second[i].Target.Fields
		if &a[0] != &b[0] || &first[i].Metric.Fields[0] != &second[i].Metric.Fields[0] {
			t.Fatalf("sample %d: two periods do not share their identity", i)
		}
		want := fleetTarget(7 + i/22)
		if first[i].Target.Name != want.Name || len(a) != len(want.Fields) || cap(a) != len(a) {
			t.Fatalf("sample %d: target %+v, want %+v (and no room to append into)", i, first[i].Target, want)
		}
		for j := range a {
			if a[j] != want.Fields[j] {
				t.Fatalf("sample %d field %d: %+v, want %+v", i, j, a[j], want.Fields[j])
			}
		}
	}
	other := &Fleet{VMs: 3, Measurements: 22, FirstVM: 10}
	if o := other.Append(nil, 1, 1)[0]; o.Target.Fields[3].Value.Uint != 10 || &o.Target.Fields[0] == &first[0].Target.Fields[0] {
		t.Fatalf("another fleet's first VM: %+v", o.Target)
	}
}
