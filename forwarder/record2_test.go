package forwarder

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

// Version 2 page records (block v2, series dictionary) go through
// addRecord2: scanned into the columns, series from the cache. These tests
// run the round trip, collision and bisection checks of version 1 on them,
// verified and not.

func TestRecord2RoundTripEveryDatumTypeExactly(t *testing.T) {
	for _, verified := range []bool{true, false} {
		t.Run(map[bool]string{true: "verified", false: "unverified"}[verified], func(t *testing.T) {
			e := newEnv(t, "")
			e.record2, e.verified = true, verified
			checkRoundTrip(t, e)
		})
	}
}

func TestRecord2KeyCollisionIsRefusedNotMerged(t *testing.T) {
	e := newEnv(t, "")
	e.record2, e.verified = true, true
	checkKeyCollisionRefused(t, e)
}

func TestRecord2KeyCollisionAcrossBisection(t *testing.T) {
	e := newEnv(t, "")
	e.record2, e.verified = true, true
	checkKeyCollisionAcrossBisection(t, e)
}

// TestRecordV1WALDrainsAfterUpgrade: a WAL written by a build that wrote
// version 1 page records, with version 2 records appended after the upgrade,
// drains completely, every sample once, through both paths in one batch.
func TestRecordV1WALDrainsAfterUpgrade(t *testing.T) {
	e := newEnv(t, "")
	const ts = 1_700_000_000_000_000_000
	fleet := sampletest.NewFleet(20)
	old := fleet.Append(nil, 2000, ts)
	e.appendPages(old, 100) // version 1, as the old build wrote them
	e.record2, e.verified = true, true
	newer := fleet.Append(nil, 2000, ts+10_000)
	e.appendPages(newer, 100)
	var n1, n2 int
	r := e.wal.NewReader(1)
	for {
		_, rec, ok, err := r.Next()
		if err != nil || !ok {
			break
		}
		switch rec.Payload[0] {
		case 1:
			n1++
		case 2:
			n2++
		}
	}
	if n1 != 20 || n2 != 20 {
		t.Fatalf("WAL holds %d version 1 and %d version 2 records, want 20 and 20", n1, n2)
	}
	f, _ := e.start(e.options())
	e.flush(f, 60*time.Second)
	if got := e.count(false); got != 4000 {
		t.Errorf("%d rows stored (without FINAL), want 4000: every sample once", got)
	}
	back := e.readBack()
	for _, s := range append(old, newer...) {
		d, ok := back[s.TimestampNs]
		if !ok {
			t.Fatalf("sample at %d missing", s.TimestampNs)
		}
		if !sameDatum(s.Datum, d) {
			t.Errorf("sample at %d: wrote %+v, read %+v", s.TimestampNs, s.Datum, d)
		}
	}
}

// TestRecord2InvalidIsQuarantined: an unverified version 2 record with a
// sample or a series that does not validate is quarantined whole, with
// Validate's reason, like a version 1 record; a bad series entry no sample
// refers to is ignored; the rest flows.
func TestRecord2InvalidIsQuarantined(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	const ts = 1_700_000_000_000_000_000
	good := sampletest.NewFleet(3).Append(nil, 300, ts)
	e.record2 = true // unverified
	e.appendPages(good[:100], 50)
	mustAppend := func(p []byte) uint64 {
		idx, err := e.wal.Append(ctx, wal.Record{Type: wal.TypePage, Payload: p})
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	rec2 := func(verified bool, samples ...pa.Sample) []byte {
		return pa.AppendPageRecord2(nil, "p", "i", verified, pa.AppendBlock2(nil, samples))
	}
	badName := good[0]
	badName.Metric.Name = "Bad-Name"
	badName.TimestampNs = 1
	invalidSeries := mustAppend(rec2(false, good[100], badName))
	outOfRange := pa.Sample{Target: good[0].Target, Metric: pa.Named{Name: "small"}, TimestampNs: 2, Datum: pa.Datum{Type: pa.DatumI8, Int: 1000}}
	invalidValue := mustAppend(rec2(false, good[101], outOfRange))
	malformed := mustAppend([]byte{2, 0, 1, 'p', 0, 2, 9, 9})
	// A series entry no sample refers to is legal: its record is delivered.
	tail := good[102]
	table := pa.AppendSeries(pa.AppendSeries(nil, &badName), &tail)
	block := pa.AppendSample2(pa.AppendBlock2Head(nil, 2, table, 1), 1, &tail)
	unreferenced := mustAppend(pa.AppendPageRecord2(nil, "p", "i", false, block))
	e.appendPages(good[103:], 50)

	f, _ := e.start(e.options())
	e.flush(f, 60*time.Second)
	q, err := quarantined(e.state)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{invalidSeries: "Bad-Name", invalidValue: "outside", malformed: "malformed"}
	for _, r := range q {
		w, ok := want[r.Index]
		if !ok {
			t.Errorf("record %d quarantined (%s), not expected", r.Index, r.Reason)
			continue
		}
		if !strings.Contains(r.Reason, w) {
			t.Errorf("record %d quarantined with reason %q, want it to mention %q", r.Index, r.Reason, w)
		}
		delete(want, r.Index)
	}
	for idx, w := range want {
		t.Errorf("record %d (%s) not quarantined", idx, w)
	}
	back := e.readBack()
	for _, s := range append(append([]pa.Sample{}, good[:100]...), good[102:]...) {
		if _, ok := back[s.TimestampNs]; !ok {
			t.Errorf("good sample at %d missing", s.TimestampNs)
		}
	}
	if _, ok := back[good[100].TimestampNs]; ok {
		t.Errorf("a sample of quarantined record %d was stored", invalidSeries)
	}
	_ = unreferenced
}
