package forwarder

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/holdfast/holdfast/internal/sampletest"
	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

// Version 3 page records (a session's series dictionary) against a real
// ClickHouse: restarts after the WAL lost a session's definitions,
// bisection, supersession.

// appendRecord appends one page record payload and returns its index.
func (e *env) appendRecord(payload []byte) uint64 {
	e.t.Helper()
	idx, err := e.wal.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: payload})
	if err != nil {
		e.t.Fatal(err)
	}
	return idx
}

// checkExactly checks that ClickHouse holds exactly the samples in want,
// each once (counted without FINAL), with their values.
func (e *env) checkExactly(want []pa.Sample) {
	e.t.Helper()
	if got := e.count(false); got != uint64(len(want)) {
		e.t.Errorf("%d rows stored (without FINAL), want %d: every sample exactly once", got, len(want))
	}
	back := e.readBack()
	for _, s := range want {
		d, ok := back[s.TimestampNs]
		if !ok {
			e.t.Fatalf("sample at %d missing", s.TimestampNs)
		}
		if !sameDatum(s.Datum, d) {
			e.t.Errorf("sample at %d: wrote %+v, read %+v", s.TimestampNs, s.Datum, d)
		}
	}
}

// distinctTimes gives every sample its own timestamp (readBack keys by it).
func distinctTimes(samples []pa.Sample, t0 int64) []pa.Sample {
	for i := range samples {
		samples[i].TimestampNs = t0 + int64(i)
	}
	return samples
}

// sessionKeys counts the Pebble keys under prefix+session key.
func sessionKeys(t *testing.T, db *pebble.DB, prefix []byte, skey string) int {
	t.Helper()
	lower, upper := state.PrefixBounds(append(append([]byte{}, prefix...), skey...))
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	return n
}

// TestRecord3RestartAfterTruncation: a forwarder drains a session's first
// records (the only ones holding its definitions), the WAL is truncated
// past them, the process stops (WAL and state store closed and opened
// again, nothing in memory kept); records of the same session naming
// those ids only are written meanwhile. The restarted forwarder loads the
// definitions from the state store and drains the rest: every sample
// exactly once.
func TestRecord3RestartAfterTruncation(t *testing.T) {
	e := newEnv(t, "")
	const ts = 1_700_000_000_000_000_000
	fleet := sampletest.NewFleet(5)
	sess := newSession3("test", "inc-1", 0xfeedface)
	var all []pa.Sample
	page := func(i int) []pa.Sample {
		p := distinctTimes(fleet.Append(nil, 110, 0), ts+int64(i)*1000)
		all = append(all, p...)
		return p
	}
	defining := e.appendRecord(sess.record(page(0))) // every series defined here
	// Enough records to fill the first segment: the WAL drops whole
	// segments.
	for i := 1; i < 120; i++ {
		e.appendRecord(sess.record(page(i)))
	}
	f, stop := e.start(e.options())
	e.flush(f, time.Minute)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if first := e.wal.Stats().FirstIndex; first <= defining {
		t.Fatalf("WAL starts at %d: not truncated past the defining record %d", first, defining)
	}
	e.close()
	e.open()
	for i := 120; i < 130; i++ {
		e.appendRecord(sess.record(page(i)))
	}
	f, _ = e.start(e.options())
	e.flush(f, time.Minute)
	if q, err := quarantined(e.state); err != nil || len(q) != 0 {
		for _, r := range q {
			t.Errorf("record %d quarantined: %s", r.Index, r.Reason)
		}
		t.Fatalf("%d records quarantined (%v), want none", len(q), err)
	}
	e.checkExactly(all)
}

// TestRecord3BisectionQuarantinesTheBadRecord: ClickHouse refuses every
// i64 row; a batch of version 3 records holds one record with an i64
// sample. Bisection rebuilds the halves from the WAL (definitions of
// earlier records from the state store), quarantines exactly that record,
// self-contained (a version 2 record of its samples, which reads without
// the session), and delivers every other record.
func TestRecord3BisectionQuarantinesTheBadRecord(t *testing.T) {
	e := newEnv(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := EnsureSchema(ctx, e.conn, e.db); err != nil {
		t.Fatal(err)
	}
	if err := e.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.measurements_i64 ADD COLUMN refuse UInt8 MATERIALIZED toUInt8(timeseries_name)", e.db)); err != nil {
		t.Fatal(err)
	}
	const ts = 1_700_000_000_000_000_000
	var good, i64 []pa.Sample
	for _, s := range distinctTimes(sampletest.NewFleet(4).Append(nil, 88*8, 0), ts) {
		if s.Datum.Type == pa.DatumI64 {
			i64 = append(i64, s)
		} else {
			good = append(good, s)
		}
	}
	sess := newSession3("test", "inc-1", 42)
	per := len(good) / 8
	var want []pa.Sample
	var bad uint64
	var badSamples []pa.Sample
	for i := 0; i < 8; i++ {
		p := good[i*per : (i+1)*per]
		if i == 5 {
			badSamples = append(append([]pa.Sample{}, p...), i64[0])
			bad = e.appendRecord(sess.record(badSamples))
			continue
		}
		want = append(want, p...)
		e.appendRecord(sess.record(p))
	}
	f, _ := e.start(e.options())
	e.flush(f, time.Minute)
	q, err := quarantined(e.state)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].Index != bad || !strings.Contains(q[0].Reason, "rejected by ClickHouse") {
		for _, r := range q {
			t.Errorf("record %d quarantined: %s", r.Index, r.Reason)
		}
		t.Fatalf("%d records quarantined, want record %d rejected", len(q), bad)
	}
	var rec pa.PageRecord
	if err := pa.DecodePageRecord(q[0].Payload, &rec); err != nil {
		t.Fatalf("the quarantined payload does not read on its own: %v", err)
	}
	if rec.Version != 2 || rec.Producer != "test" || rec.Incarnation != "inc-1" || len(rec.Samples) != len(badSamples) {
		t.Fatalf("quarantined payload: version %d, %q/%q, %d samples; want version 2, test/inc-1, %d samples", rec.Version, rec.Producer, rec.Incarnation, len(rec.Samples), len(badSamples))
	}
	for i := range badSamples {
		if rec.Samples[i].TimeseriesName() != badSamples[i].TimeseriesName() || rec.Samples[i].TimestampNs != badSamples[i].TimestampNs || !sameDatum(rec.Samples[i].Datum, badSamples[i].Datum) {
			t.Fatalf("quarantined sample %d is %+v, want %+v", i, rec.Samples[i], badSamples[i])
		}
	}
	e.checkExactly(want)
}

// TestRecord3SupersededSessionDeleted: once the checkpoint passed the first
// record of a producer's new session, the old session's definitions and
// metadata leave the state store; the new one's stay. Samples of both
// arrive exactly once.
func TestRecord3SupersededSessionDeleted(t *testing.T) {
	e := newEnv(t, "")
	const ts = 1_700_000_000_000_000_000
	fleet := sampletest.NewFleet(2)
	old, cur := newSession3("test", "inc-1", 1), newSession3("test", "inc-1", 2)
	other := newSession3("other", "inc-1", 1) // another producer's: untouched
	var all []pa.Sample
	page := func(i int) []pa.Sample {
		p := distinctTimes(fleet.Append(nil, 44, 0), ts+int64(i)*1000)
		all = append(all, p...)
		return p
	}
	e.appendRecord(old.record(page(0)))
	e.appendRecord(other.record(page(1)))
	e.appendRecord(old.record(page(2)))
	e.appendRecord(cur.record(page(3)))
	f, stop := e.start(e.options())
	e.flush(f, time.Minute)
	key := func(s *session3) string {
		return string(sessionKey(nil, []byte(s.producer), []byte(s.incarnation), s.id))
	}
	if n := sessionKeys(t, e.state, sessDefPrefix, key(cur)); n != len(cur.ids) {
		t.Fatalf("%d definitions of the new session stored, want %d", n, len(cur.ids))
	}
	// The next delivery joins the one that passed the new session's
	// first record, and deletes the old session then.
	e.appendRecord(cur.record(page(4)))
	e.flush(f, time.Minute)
	for _, c := range []struct {
		s    *session3
		want int
	}{{old, 0}, {cur, len(cur.ids)}, {other, len(other.ids)}} {
		if n := sessionKeys(t, e.state, sessDefPrefix, key(c.s)); n != c.want {
			t.Errorf("session %s/%d: %d definitions stored, want %d", c.s.producer, c.s.id, n, c.want)
		}
		want := min(c.want, 1)
		if n := sessionKeys(t, e.state, sessMetaPrefix, key(c.s)); n != want {
			t.Errorf("session %s/%d: %d metadata keys, want %d", c.s.producer, c.s.id, n, want)
		}
	}
	e.checkExactly(all)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.sess.m[key(old)]; ok {
		t.Error("the old session is still in memory")
	}
}

const crashChild3Env = "HOLDFAST_FORWARDER_CRASH_CHILD3"

// TestCrashChild3 is the child of TestRecord3KilledAfterTruncation: it
// forwards in small batches and SIGKILLs itself right after its third
// insert, before that batch's checkpoint.
func TestCrashChild3(t *testing.T) {
	spec := os.Getenv(crashChild3Env)
	if spec == "" {
		return
	}
	parts := strings.Split(spec, "|")
	e := &env{t: t, addr: parts[0], db: parts[1], dir: parts[2]}
	e.open()
	opts := e.options()
	opts.BatchRows = 5000
	opts.SerialDelivery = true
	f, err := New(e.wal, e.state, opts)
	if err != nil {
		t.Fatal(err)
	}
	inserts := 0
	f.afterInsert = func() {
		if inserts++; inserts == 3 {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	f.Run(context.Background())
	t.Fatal("forwarder returned instead of being killed")
}

// TestRecord3KilledAfterTruncation: a forwarder process reads a session's
// defining record, delivers two batches (the WAL truncated past that
// record) and is SIGKILLed after inserting the third, before its
// checkpoint: the definitions it stored (NoSync) are what the restarted
// forwarder has, and it drains the rest: every sample seen exactly once.
func TestRecord3KilledAfterTruncation(t *testing.T) {
	e := newEnv(t, "")
	const ts = 1_700_000_000_000_000_000
	fleet := sampletest.NewFleet(5)
	sess := newSession3("test", "inc-1", 0xdecaf)
	var all []pa.Sample
	for i := 0; i < 200; i++ {
		p := distinctTimes(fleet.Append(nil, 110, 0), ts+int64(i)*1000)
		all = append(all, p...)
		e.appendRecord(sess.record(p))
	}
	e.close() // the child takes the WAL's lock
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild3$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%s", crashChild3Env, e.addr, e.db, e.dir))
	out, err := cmd.CombinedOutput()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed: %v\n%s", err, out)
	}
	e.open()
	ckpt, err := LoadCheckpoint(e.state)
	if err != nil {
		t.Fatal(err)
	}
	if first := e.wal.Stats().FirstIndex; first <= 1 || ckpt == 0 {
		t.Fatalf("after the kill: checkpoint %d, WAL starts at %d; want the defining record 1 truncated", ckpt, first)
	}
	f, _ := e.start(e.options())
	e.flush(f, time.Minute)
	if q, err := quarantined(e.state); err != nil || len(q) != 0 {
		for _, r := range q {
			t.Errorf("record %d quarantined: %s", r.Index, r.Reason)
		}
		t.Fatalf("%d records quarantined (%v), want none", len(q), err)
	}
	if final := e.count(true); final != uint64(len(all)) {
		t.Fatalf("readers see %d samples, want %d", final, len(all))
	}
	back := e.readBack()
	for _, s := range all {
		if d, ok := back[s.TimestampNs]; !ok || !sameDatum(s.Datum, d) {
			t.Fatalf("sample at %d: got %+v want %+v", s.TimestampNs, d, s.Datum)
		}
	}
}
