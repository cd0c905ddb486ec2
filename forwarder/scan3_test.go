package forwarder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/holdfast/holdfast/internal/sampletest"
	"github.com/holdfast/holdfast/internal/sessdefs"
	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
)

// session3 writes version 3 page records of one session as a collector
// does: a series gets the next id the first time a record carries it, and
// its definition goes in that record only.
type session3 struct {
	producer, incarnation string
	id                    uint64
	ids                   map[string]uint64
	next                  uint64
	verified              bool
}

func newSession3(producer, incarnation string, id uint64) *session3 {
	return &session3{producer: producer, incarnation: incarnation, id: id, ids: map[string]uint64{}, verified: true}
}

// record returns the next record of the session holding samples.
func (s *session3) record(samples []pa.Sample) []byte {
	return s.recordRefusing(samples, nil)
}

// recordRefusing is record with extra definitions that the collector
// refused (no sample of them).
func (s *session3) recordRefusing(samples []pa.Sample, refused []pa.Sample) []byte {
	first := s.next
	var defs, body []byte
	var refusedIDs []uint64
	define := func(smp *pa.Sample) uint64 {
		raw := pa.AppendSeries(nil, smp)
		id, ok := s.ids[string(raw)]
		if !ok {
			id = s.next
			s.next++
			s.ids[string(raw)] = id
			defs = append(defs, raw...)
		}
		return id
	}
	for i := range refused {
		refusedIDs = append(refusedIDs, define(&refused[i]))
	}
	for i := range samples {
		body = pa.AppendSample3(body, define(&samples[i]), &samples[i])
	}
	rec := pa.AppendPageRecord3Head(nil, s.producer, s.incarnation, s.verified, s.id, refusedIDs)
	rec = pa.AppendBlock3Head(rec, first, int(s.next-first), defs, len(samples))
	return append(rec, body...)
}

// scanForwarder3 is scanForwarder with a state store and a quarantine:
// what version 3 records need (their definitions are stored).
func scanForwarder3(t testing.TB, db *pebble.DB) *Forwarder {
	return scanForwarder3Q(t, db, nil, "")
}

// scanForwarder3Q is scanForwarder3 over a given state store and
// quarantine (nil: new ones).
func scanForwarder3Q(t testing.TB, db *pebble.DB, q *quarantine.Store, defsDir string) *Forwarder {
	f := scanForwarder(t)
	if defsDir == "" {
		defsDir = t.TempDir()
	}
	defs, err := sessdefs.Open(defsDir, sessdefs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { defs.CloseAll() })
	if db == nil {
		var err error
		if db, err = state.Open(t.TempDir(), nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
	}
	if q == nil {
		var err error
		if q, err = quarantine.Open(db, quarantine.Options{BudgetBytes: -1}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
	}
	f.state, f.q, f.defs, f.sess = db, q, defs, newSessions(db, defs)
	f.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	return f
}

// TestRecord3RowsEqualRecord2Rows: a session's version 3 records build
// exactly the rows version 2 records of the same samples build, for every
// datum type: first (fields and schemas), again (steady state, samples by
// session id only), and after the writer forgot the keys (identities read
// back from the session's file, fields written again). With wrap, the row
// set after the keys are forgotten has a generation equal to the previous
// one's in its low 8 bits (what session entries keep): the entries must
// not take it for the row set they were admitted into.
func TestRecord3RowsEqualRecord2Rows(t *testing.T) {
	in := append(sampletest.EveryDatumType(math.MinInt64+1000), sampletest.NewFleet(3).Append(nil, 200, 1)...)
	ctx := context.Background()
	for _, c := range []struct{ verified, wrap bool }{{true, false}, {false, false}, {true, true}} {
		verified := c.verified
		v2, v3 := scanForwarder(t), scanForwarder3(t, nil)
		b2, b3 := &batch{}, &batch{}
		b2.reset()
		b3.reset()
		sess := newSession3("p", "i", 0x1234)
		sess.verified = verified
		var page pa.PageRecord
		idx := uint64(0)
		for round := 0; round < 3; round++ {
			for i := 0; i < len(in); i += 7 {
				samples := in[i:min(i+7, len(in))]
				idx++
				r2 := wal.Record{Type: wal.TypePage, Payload: pa.AppendPageRecord2(nil, "p", "i", verified, pa.AppendBlock2(nil, samples))}
				r3 := wal.Record{Type: wal.TypePage, Payload: sess.record(samples)}
				if err := v2.add(ctx, b2, idx, r2, &page); err != nil {
					t.Fatal(err)
				}
				handled, done, err := v3.addRecord3(ctx, b3, idx, r3)
				if err != nil || !handled || done {
					t.Fatalf("record %d: handled=%v done=%v err=%v: the scanning path must take it", idx, handled, done, err)
				}
			}
			compareRowSets(t, b2.rows, b3.rows)
			for _, p := range []struct {
				f *Forwarder
				b *batch
			}{{v2, b2}, {v3, b3}} {
				if round == 1 {
					p.f.w.forgetSeen()
					if c.wrap && p.f == v3 {
						rowSetGen.Store(p.b.rows.gen + 1<<8 - 1)
					}
				} else {
					for k, fp := range p.b.rows.newKeys {
						p.f.w.seenKeys.put(k, fp)
					}
				}
				p.b.reset()
			}
		}
		if q := v3.q.Stats().Records; q != 0 {
			t.Errorf("%d records quarantined", q)
		}
	}
}

// TestScan3AllocatesNothingPerSample: in steady state (the session's
// series resolved, keys written, the batch's arrays grown) a 1,000-sample
// version 3 record allocates nothing per sample.
func TestScan3AllocatesNothingPerSample(t *testing.T) {
	samples := sampletest.NewFleet(50).Append(nil, 1000, 1)
	f := scanForwarder3(t, nil)
	sess := newSession3("p", "i", 7)
	b := &batch{}
	b.reset()
	var page pa.PageRecord
	first := wal.Record{Type: wal.TypePage, Payload: sess.record(samples)}
	steady := wal.Record{Type: wal.TypePage, Payload: sess.record(samples)} // no definitions
	add := func(rec wal.Record) {
		if err := f.add(context.Background(), b, 1, rec, &page); err != nil {
			t.Fatal(err)
		}
	}
	add(first)
	for k, fp := range b.rows.newKeys {
		f.w.seenKeys.put(k, fp)
	}
	for range 3 {
		b.reset()
		add(steady)
		add(steady)
	}
	b.reset()
	allocs := testing.AllocsPerRun(20, func() {
		add(steady)
		add(steady)
		b.reset()
	})
	if allocs > 2 {
		t.Errorf("%.1f allocations per two %d-sample records, want at most one per record", allocs, len(samples))
	}
	if b.rows.rows != 0 || f.q.Stats().Records != 0 {
		t.Fatalf("rows %d, quarantined %d", b.rows.rows, f.q.Stats().Records)
	}
}

// TestRecord3UndefinedIDQuarantined: a record naming an id no record
// defined (its defining record lost) is quarantined whole with a reason
// naming the id, counted; the records after it flow.
func TestRecord3UndefinedIDQuarantined(t *testing.T) {
	f := scanForwarder3(t, nil)
	ctx := context.Background()
	fleet := sampletest.NewFleet(2).Append(nil, 88, 1)
	sess := newSession3("p", "i", 9)
	lost := sess.record(fleet[:44]) // defines ids 0..43, never reaches the forwarder
	_ = lost
	b := &batch{}
	b.reset()
	var page pa.PageRecord
	second := sess.record(fleet[44:]) // names them only
	if err := f.add(ctx, b, 2, wal.Record{Type: wal.TypePage, Payload: second}, &page); err != nil {
		t.Fatal(err)
	}
	other := newSession3("p2", "i", 10)
	if err := f.add(ctx, b, 3, wal.Record{Type: wal.TypePage, Payload: other.record(fleet[:44])}, &page); err != nil {
		t.Fatal(err)
	}
	if b.rows.rows != 44 || len(b.indexes) != 1 || b.indexes[0] != 3 {
		t.Errorf("batch: %d rows, records %v; want 44 rows of record 3", b.rows.rows, b.indexes)
	}
	q, err := quarantined(f.state)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].Index != 2 {
		t.Fatalf("quarantined %+v, want record 2", q)
	}
	if want := "names series id 0 of session 0000000000000009, never defined"; !strings.Contains(q[0].Reason, want) {
		t.Errorf("reason %q, want it to say %q", q[0].Reason, want)
	}
	if got := counterValue(f.m.undefinedSeries); got != 1 {
		t.Errorf("undefined series counter %v, want 1", got)
	}
}

// FuzzAddRecord3: any payload read as a version 3 record (after a record
// defining a session's first series) never panics and never fails the
// forwarder: it is added, quarantined or sent to the decoding path; when
// it is added, its rows are those of the decoded samples.
func FuzzAddRecord3(f *testing.F) {
	fleet := sampletest.NewFleet(2).Append(nil, 88, 1)
	every := sampletest.EveryDatumType(1)
	sess := newSession3("p", "i", 1)
	define := sess.record(fleet[:44])
	f.Add(sess.record(fleet[44:]))
	f.Add(sess.record(every))
	f.Add(newSession3("p", "i", 2).record(every[:5]))
	f.Add(newSession3("p", "i", 1).record(every[:3])) // redefines ids 0..2 of the defining record's session
	unverified := newSession3("q", "i", 3)
	unverified.verified = false
	f.Add(unverified.record(every))
	f.Add(sess.recordRefusing(fleet[:2], every[:1]))
	f.Add([]byte{3, 0, 1, 'p', 1, 'i', 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{3, 1, 1, 'p', 1, 'i', 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 7, 0, 0})
	// One state store and quarantine for every input (opening them is
	// most of an input's cost); each input gets a fresh forwarder, which
	// loads the session from the store.
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	q, err := quarantine.Open(db, quarantine.Options{BudgetBytes: -1})
	if err != nil {
		f.Fatal(err)
	}
	defer q.Close()
	defsDir := f.TempDir()
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) == 0 {
			return
		}
		payload[0] = 3
		fw := scanForwarder3Q(t, db, q, defsDir)
		b := &batch{}
		b.reset()
		var page pa.PageRecord
		ctx := context.Background()
		if err := fw.add(ctx, b, 1, wal.Record{Type: wal.TypePage, Payload: define}, &page); err != nil {
			t.Fatal(err)
		}
		before := b.rows.rows
		if err := fw.add(ctx, b, 2, wal.Record{Type: wal.TypePage, Payload: payload}, &page); err != nil {
			t.Fatalf("add: %v", err)
		}
		taken := len(b.indexes) == 2
		var dec pa.PageRecord
		decErr := decodeRecord3(fw.defs, payload, &dec)
		if taken && decErr != nil {
			t.Fatalf("record added, but it does not decode: %v", decErr)
		}
		if taken && len(b.refused[2]) == 0 && b.rows.rows-before != len(dec.Samples) {
			t.Fatalf("record added with %d rows, it decodes into %d samples", b.rows.rows-before, len(dec.Samples))
		}
	})
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestRecord3Redefinition: a record defining ids again with the same bytes
// (a replay after a restart) is taken; one defining an id with another
// series is quarantined as malformed (bisection and quarantine read a
// block's own definitions first, so its samples would read differently
// there), and the session keeps the first definition.
func TestRecord3Redefinition(t *testing.T) {
	f := scanForwarder3(t, nil)
	ctx := context.Background()
	fleet := sampletest.NewFleet(2).Append(nil, 88, 1)
	a, other := newSession3("p", "i", 4), newSession3("p", "i", 4)
	first := a.record(fleet[:44])
	b := &batch{}
	b.reset()
	var page pa.PageRecord
	for i, p := range [][]byte{first, first, other.record(sampletest.EveryDatumType(5)), a.record(fleet[:44])} {
		if err := f.add(ctx, b, uint64(i+1), wal.Record{Type: wal.TypePage, Payload: p}, &page); err != nil {
			t.Fatal(err)
		}
	}
	if want := []uint64{1, 2, 4}; fmt.Sprint(b.indexes) != fmt.Sprint(want) {
		t.Errorf("records taken %v, want %v", b.indexes, want)
	}
	q, err := quarantined(f.state)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].Index != 3 || !strings.Contains(q[0].Reason, "redefines series id 0") {
		t.Fatalf("quarantined %d records (first %+v), want record 3 as a redefinition", len(q), q)
	}
}

// TestRecord3InvalidQuarantinedSelfContainedDefsKept: an unverified record
// holding a value that does not validate is quarantined whole with
// Validate's reason, stored as a version 2 record of its samples; the
// series it defined stay defined, so a later record naming them by id only
// is taken.
func TestRecord3InvalidQuarantinedSelfContainedDefsKept(t *testing.T) {
	f := scanForwarder3(t, nil)
	ctx := context.Background()
	good := sampletest.NewFleet(1).Append(nil, 22, 1)
	bad := pa.Sample{Target: good[0].Target, Metric: pa.Named{Name: "small"}, TimestampNs: 2, Datum: pa.Datum{Type: pa.DatumI8, Int: 1000}}
	sess := newSession3("p", "i", 11)
	sess.verified = false
	first := sess.record(append(append([]pa.Sample{}, good...), bad))
	later := sess.record(good) // ids only
	b := &batch{}
	b.reset()
	var page pa.PageRecord
	for i, p := range [][]byte{first, later} {
		if err := f.add(ctx, b, uint64(i+1), wal.Record{Type: wal.TypePage, Payload: p}, &page); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.indexes) != 1 || b.indexes[0] != 2 || b.rows.rows != len(good) {
		t.Fatalf("records taken %v with %d rows, want record 2 with %d", b.indexes, b.rows.rows, len(good))
	}
	q, err := quarantined(f.state)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].Index != 1 || !strings.Contains(q[0].Reason, "outside") {
		t.Fatalf("quarantined %d records, want record 1 as invalid", len(q))
	}
	var rec pa.PageRecord
	if err := pa.DecodePageRecord(q[0].Payload, &rec); err != nil || rec.Version != 2 || len(rec.Samples) != len(good)+1 {
		t.Fatalf("quarantined payload: %v, version %d, %d samples; want a version 2 record of %d", err, rec.Version, len(rec.Samples), len(good)+1)
	}
}

// TestRecord3UnreadableDefinitionIsNotMalformed: when the definitions of
// earlier records cannot be read from the session's file (here the file
// is a directory: EISDIR; in production EMFILE or EIO), decoding a record
// whole fails with the read's error, marked errDefinitionUnreadable, and
// neither the decoding path of a record with an invalid sample nor a
// quarantine takes the record for malformed or stores what could not be
// read back: both return the error and the quarantine stays empty. A
// definition the file does not have is the decoder's "undefined series"
// as before.
func TestRecord3UnreadableDefinitionIsNotMalformed(t *testing.T) {
	dir := t.TempDir()
	f := scanForwarder3Q(t, nil, nil, dir)
	good := sampletest.NewFleet(1).Append(nil, 22, 1)
	small := pa.Sample{Target: good[0].Target, Metric: pa.Named{Name: "small"}, TimestampNs: 1, Datum: pa.Datum{Type: pa.DatumI8, Int: 1}}
	sess := newSession3("p", "i", 12)
	sess.verified = false
	first := sess.record(append(append([]pa.Sample{}, good...), small))
	later := sess.record(good) // ids only: every definition from the file
	small.TimestampNs, small.Datum.Int = 2, 1000
	invalid := sess.record([]pa.Sample{good[0], small}) // ids only, a value out of range: the decoding path
	b := &batch{}
	b.reset()
	var page pa.PageRecord
	ctx := context.Background()
	if err := f.add(ctx, b, 1, wal.Record{Type: wal.TypePage, Payload: first}, &page); err != nil {
		t.Fatal(err)
	}
	if err := f.defs.CloseAll(); err != nil { // lookups now open the file by its path
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.defs"))
	if err != nil || len(files) != 1 {
		t.Fatalf("session files %v (%v), want one", files, err)
	}
	var rec pa.PageRecord
	if err := decodeRecord3(f.defs, later, &rec); err != nil || len(rec.Samples) != len(good) {
		t.Fatalf("with the file: %v, %d samples; want %d", err, len(rec.Samples), len(good))
	}
	if err := os.Rename(files[0], files[0]+".aside"); err != nil {
		t.Fatal(err)
	}
	err = decodeRecord3(f.defs, later, &rec)
	if err == nil || errors.Is(err, errDefinitionUnreadable) {
		t.Fatalf("without the file: %v; want the decoder's undefined series, not an unreadable definition", err)
	}
	if err := os.Mkdir(files[0], 0o755); err != nil {
		t.Fatal(err)
	}
	unreadable := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, errDefinitionUnreadable) || !errors.Is(err, syscall.EISDIR) {
			t.Fatalf("%s, file unreadable: %v; want errDefinitionUnreadable wrapping EISDIR", what, err)
		}
	}
	unreadable("decodeRecord3", decodeRecord3(f.defs, later, &rec))
	err = f.add(ctx, b, 2, wal.Record{Type: wal.TypePage, Payload: invalid}, &page)
	unreadable("add of a record with an invalid sample", err)
	if strings.Contains(err.Error(), "quarantining") {
		// The quarantine refuses it too (below), but the decoding path
		// must not take the record for malformed in the first place.
		t.Fatalf("add: %v; the decoding path tried to quarantine the record", err)
	}
	unreadable("quarantine", f.quarantine(QuarantinedRecord{Index: 3, Type: uint8(wal.TypePage), Payload: later, Reason: "rejected"}, "rejected"))
	if n := f.q.Stats().Records; n != 0 {
		t.Fatalf("%d records quarantined, want none", n)
	}
	// The file back: the same record is quarantined as invalid, stored
	// self-contained.
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(files[0]+".aside", files[0]); err != nil {
		t.Fatal(err)
	}
	if err := f.add(ctx, b, 2, wal.Record{Type: wal.TypePage, Payload: invalid}, &page); err != nil {
		t.Fatal(err)
	}
	q, err := quarantined(f.state)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].Index != 2 || !strings.Contains(q[0].Reason, "version 2 record") {
		t.Fatalf("quarantined %+v, want record 2 as invalid, self-contained", q)
	}
}
