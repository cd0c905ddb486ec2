package bench

import (
	"testing"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// TestSessionRecordsDecodeToTheFleet: the bench's version 3 records, read
// in order with each session's definitions, are the fleet's samples, and a
// second period defines nothing new.
func TestSessionRecordsDecodeToTheFleet(t *testing.T) {
	const vms, page = 20_000, 1000 // two producers, 440 pages a period
	fleet, want := sampletest.NewFleet(vms), sampletest.NewFleet(vms)
	w := newSessionRecords(vms, fleet.Measurements, page)
	defs := map[string]map[uint64][]byte{} // producer -> id -> entry
	var samples, wantSamples []pa.Sample
	var h pa.Record3Head
	var rec pa.PageRecord
	var sc pa.BlockScanner
	for i := 0; i < 2*vms*22/page; i++ {
		samples = fleet.Append(samples[:0], page, int64(i*page))
		buf := w.record(nil, i, samples)
		if err := pa.ParsePageRecord3(buf, &h); err != nil {
			t.Fatal(err)
		}
		d := defs[string(h.Producer)]
		if d == nil {
			d = map[uint64][]byte{}
			defs[string(h.Producer)] = d
		}
		if err := sc.Reset3(h.Block, nil); err != nil {
			t.Fatal(err)
		}
		if i >= vms*22/page && sc.NumSeries() != 0 {
			t.Fatalf("page %d of the second period defines %d series", i, sc.NumSeries())
		}
		for j := 0; j < sc.NumSeries(); j++ {
			d[sc.FirstID()+uint64(j)] = append([]byte(nil), sc.Series(j).Raw...)
		}
		if err := pa.DecodePageRecord3(buf, &rec, func(id uint64) ([]byte, bool) { raw, ok := d[id]; return raw, ok }); err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		wantSamples = want.Append(wantSamples[:0], page, int64(i*page))
		for j := range wantSamples {
			if pa.TimeseriesKey(&rec.Samples[j]) != pa.TimeseriesKey(&wantSamples[j]) || rec.Samples[j].TimestampNs != wantSamples[j].TimestampNs {
				t.Fatalf("page %d sample %d is not the fleet's", i, j)
			}
		}
	}
	if len(defs) != 2 || len(defs["bench-0"]) != 10_000*22 {
		t.Fatalf("%d producers, the first with %d series; want 2 with 220,000", len(defs), len(defs["bench-0"]))
	}
}
