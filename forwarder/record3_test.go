package forwarder

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/sampletest"
	"github.com/holdfast/holdfast/internal/sessdefs"
	"github.com/holdfast/holdfast/internal/state"
	"github.com/holdfast/holdfast/internal/tmpfstest"
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

// appendRecords3 appends records version 3 records of sess, each of
// perRecord samples of fleet at distinct times (record i from
// 1_700_000_000_000_000_000 + 1000i on), and returns their samples.
func (e *env) appendRecords3(sess *session3, fleet *sampletest.Fleet, records, perRecord int) []pa.Sample {
	e.t.Helper()
	const ts = 1_700_000_000_000_000_000
	var all []pa.Sample
	for i := 0; i < records; i++ {
		p := distinctTimes(fleet.Append(nil, perRecord, 0), ts+int64(i)*1000)
		all = append(all, p...)
		e.appendRecord(sess.record(p))
	}
	return all
}

// distinctTimes gives every sample its own timestamp (readBack keys by it).
func distinctTimes(samples []pa.Sample, t0 int64) []pa.Sample {
	for i := range samples {
		samples[i].TimestampNs = t0 + int64(i)
	}
	return samples
}

// sessionDefs counts the definitions in a session's file.
func sessionDefs(t *testing.T, dir, skey string) int {
	t.Helper()
	n := 0
	if err := reopenDefs(t, dir).Load(skey, func(uint32, []byte) { n++ }); err != nil {
		t.Fatal(err)
	}
	return n
}

// reopenDefs opens a store of session files again (a restart), closed
// when the test ends.
func reopenDefs(t testing.TB, dir string) *sessdefs.Store {
	t.Helper()
	s, err := sessdefs.Open(dir, sessdefs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.CloseAll() })
	return s
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
	e.drainPast(defining)
	e.close()
	e.open()
	e.drainAgain(sess, page, 120, 130, &all)
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
	if n := sessionDefs(t, e.dir+"/sessions", key(cur)); n != len(cur.ids) {
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
		if n := sessionDefs(t, e.dir+"/sessions", key(c.s)); n != c.want {
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
// checkpoint: the definitions it wrote to the session file are what the restarted
// forwarder has, and it drains the rest: every sample seen exactly once.
func TestRecord3KilledAfterTruncation(t *testing.T) {
	e := newEnv(t, "")
	all := e.appendRecords3(newSession3("test", "inc-1", 0xdecaf), sampletest.NewFleet(5), 200, 110)
	e.killedChild("TestCrashChild3", crashChild3Env, fmt.Sprintf("%s|%s|%s", e.addr, e.db, e.dir))
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

// TestRecord3DefinitionsMovedFromTheStateStore: a state store written by a
// version that kept session definitions in Pebble (sessdef/), with the WAL
// truncated past the records that defined them. The forwarder moves them
// into the session's file at start (deleting them from Pebble and a stray
// file no session names) and drains the later records, which name the
// moved definitions: every sample exactly once, nothing quarantined (a
// definition not moved would quarantine its samples' records as naming an
// undefined series).
func TestRecord3DefinitionsMovedFromTheStateStore(t *testing.T) {
	e := newEnv(t, "")
	const ts = 1_700_000_000_000_000_000
	fleet := sampletest.NewFleet(5)
	sess := newSession3("test", "inc-1", 0xfeedface)
	skey := string(sessionKey(nil, []byte(sess.producer), []byte(sess.incarnation), sess.id))
	var all []pa.Sample
	page := func(i int) []pa.Sample {
		p := distinctTimes(fleet.Append(nil, 110, 0), ts+int64(i)*1000)
		all = append(all, p...)
		return p
	}
	defining := e.appendRecord(sess.record(page(0)))
	for i := 1; i < 120; i++ {
		e.appendRecord(sess.record(page(i)))
	}
	e.drainPast(defining)
	e.close()

	// Rewrite the state as the earlier version left it.
	sessDir := e.dir + "/sessions"
	type def struct {
		id  uint32
		raw []byte
	}
	var defs []def
	if err := reopenDefs(t, sessDir).Load(skey, func(id uint32, raw []byte) {
		defs = append(defs, def{id, append([]byte(nil), raw...)})
	}); err != nil {
		t.Fatal(err)
	}
	if len(defs) != 110 {
		t.Fatalf("%d definitions in the session's file, want 110", len(defs))
	}
	if err := os.RemoveAll(sessDir); err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(e.dir+"/state", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range defs {
		if err := db.Set(defKey(nil, skey, uint64(d.id)), d.raw, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	// Definitions of a session the state store does not know: dropped.
	if err := db.Set(defKey(nil, "gone\x00inc\x00\x00\x00\x00\x00\x00\x00\x00\x01", 0), defs[0].raw, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	stray := reopenDefs(t, sessDir)
	if err := stray.Append("stray\x00inc\x00\x00\x00\x00\x00\x00\x00\x00\x02", 0, defs[0].raw); err != nil {
		t.Fatal(err)
	}
	if err := stray.CloseAll(); err != nil {
		t.Fatal(err)
	}

	e.open()
	e.drainAgain(sess, page, 120, 130, &all)
	if n := sessionKeys(t, e.state, sessDefPrefix, ""); n != 0 {
		t.Errorf("%d definitions left in the state store", n)
	}
	// The session was the previous run's: once its records are drained it
	// is deleted, and the stray file went at start.
	if files, _ := filepath.Glob(sessDir + "/*.defs"); len(files) != 0 {
		t.Errorf("session files %v left, want none", files)
	}
}

// TestRecord3DamagedSessionFile: a byte of a session's definitions file
// flips while the collector is down, after the WAL was truncated past the
// defining record. At start the file is cut back before the damaged
// definition (the cut bytes copied aside, the repair counted and logged);
// the records that follow, whose samples name definitions now lost, are
// quarantined with their reason, and a record naming only definitions
// before the damage is delivered.
func TestRecord3DamagedSessionFile(t *testing.T) {
	e := newEnv(t, "")
	const ts = 1_700_000_000_000_000_000
	fleet := sampletest.NewFleet(5)
	sess := newSession3("test", "inc-1", 0xbad)
	skey := string(sessionKey(nil, []byte(sess.producer), []byte(sess.incarnation), sess.id))
	series := fleet.Append(nil, 110, 0)
	var delivered []pa.Sample
	for i := 0; i < 120; i++ {
		p := distinctTimes(series, ts+int64(i)*1000)
		delivered = append(delivered, p...)
		e.appendRecord(sess.record(p))
	}
	e.drainPast(1)
	// Flip a byte in the 60th definition (ids are defined in order).
	path := filepath.Join(e.dir, "sessions")
	files, _ := filepath.Glob(path + "/*.defs")
	if len(files) != 1 {
		t.Fatalf("session files %v, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	at := -1
	n := 0
	if err := reopenDefs(t, path).Load(skey, func(id uint32, raw []byte) {
		if n++; n == 60 {
			at = bytes.Index(b, raw)
		}
	}); err != nil || at < 0 {
		t.Fatalf("finding the 60th definition: %v", err)
	}
	b[at+3] ^= 0x10
	if err := os.WriteFile(files[0], b, 0o644); err != nil {
		t.Fatal(err)
	}

	// Ten records naming every series, one naming the first ten only.
	var damaged []uint64
	for i := 120; i < 130; i++ {
		damaged = append(damaged, e.appendRecord(sess.record(distinctTimes(series, ts+int64(i)*1000))))
	}
	first10 := distinctTimes(series[:10], ts+int64(130)*1000)
	delivered = append(delivered, first10...)
	e.appendRecord(sess.record(first10))
	reg := prometheus.NewRegistry()
	opts := e.options()
	opts.Registerer = reg
	f, _ := e.start(opts)
	// Set at start, before the file is read (and repaired).
	if n, bytes := gaugeValue(f.m.sessionFiles), gaugeValue(f.m.sessionFileBytes); n != 1 || bytes != float64(len(b)) {
		t.Errorf("session file gauges at start: %v files, %v bytes; want 1 and %d", n, bytes, len(b))
	}
	e.flush(f, time.Minute)
	if got := counterValue(f.m.sessionFileRepairs); got != 1 {
		t.Errorf("holdfast_forwarder_session_file_repairs_total = %v, want 1", got)
	}
	if aside, _ := filepath.Glob(path + "/*.damaged"); len(aside) != 1 {
		t.Errorf("evidence files %v, want one", aside)
	}
	q, err := quarantined(e.state)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != len(damaged) {
		t.Fatalf("%d records quarantined, want %d", len(q), len(damaged))
	}
	for i, r := range q {
		if r.Index != damaged[i] || !strings.Contains(r.Reason, "never defined") {
			t.Errorf("quarantined record %d: %s; want record %d naming an undefined series", r.Index, r.Reason, damaged[i])
		}
	}
	e.checkExactly(delivered)
}

// drainAgain appends the session's records of pages from..to-1, runs a
// forwarder until it drained them, and checks that nothing was quarantined
// and that ClickHouse holds every sample of all exactly once.
func (e *env) drainAgain(sess *session3, page func(int) []pa.Sample, from, to int, all *[]pa.Sample) {
	e.t.Helper()
	for i := from; i < to; i++ {
		e.appendRecord(sess.record(page(i)))
	}
	f, _ := e.start(e.options())
	e.flush(f, time.Minute)
	if q, err := quarantined(e.state); err != nil || len(q) != 0 {
		for _, r := range q {
			e.t.Errorf("record %d quarantined: %s", r.Index, r.Reason)
		}
		e.t.Fatalf("%d records quarantined (%v), want none", len(q), err)
	}
	e.checkExactly(*all)
}

// TestRecord3DefinitionsOnADiskFilledMeanwhile: the session files' disk
// (a real 8 MiB tmpfs) is filled by another process between the forwarder's
// free-space check and its reading of a record that defines 440 series.
// The room reserved in the session's file before the record was taken
// holds its definitions, so the forwarder goes on: every sample delivered
// once, the definitions stored. Without the reservation the definition
// write failed with ENOSPC and stopped the forwarder (found in CI by
// collector.TestFullDiskFreedFromOutside).
func TestRecord3DefinitionsOnADiskFilledMeanwhile(t *testing.T) {
	e := newEnv(t, "")
	mnt := tmpfstest.Mount(t, "8m")
	sess := newSession3("test", "inc-1", 0xf11)
	all := e.appendRecords3(sess, sampletest.NewFleet(20), 3, 440)
	opts := e.options()
	opts.SessionDir = filepath.Join(mnt, "sessions")
	f, err := New(e.wal, e.state, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	filled := false
	f.afterRoomCheck = func() {
		if !filled {
			filled = true
			tmpfstest.Fill(t, filepath.Join(mnt, "filler"))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	fctx, fcancel := context.WithTimeout(context.Background(), time.Minute)
	defer fcancel()
	if err := f.Flush(fctx); err != nil {
		cancel()
		t.Fatalf("Flush: %v; Run: %v", err, <-done)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !filled {
		t.Fatal("the disk was never filled")
	}
	e.checkExactly(all)
	skey := string(sessionKey(nil, []byte(sess.producer), []byte(sess.incarnation), sess.id))
	if n := sessionDefs(t, opts.SessionDir, skey); n != 440 {
		t.Fatalf("%d definitions stored, want 440", n)
	}
}

// drainPast runs a forwarder until it drained the WAL, stops it, and checks
// that the WAL was truncated past the record at index defining.
func (e *env) drainPast(defining uint64) {
	e.t.Helper()
	f, stop := e.start(e.options())
	e.flush(f, time.Minute)
	if err := stop(); err != nil {
		e.t.Fatal(err)
	}
	f.Close()
	if first := e.wal.Stats().FirstIndex; first <= defining {
		e.t.Fatalf("WAL starts at %d: not truncated past the defining record %d", first, defining)
	}
}
