package collector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/chtest"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
)

// TestV3BadValueOfForwardedSeriesKeepsTheSession: a bad value of a series
// defined on an earlier page, once the forwarder (running, against a real
// ClickHouse) has read that page's record, is quarantined with the
// identity the forwarder stored: the session goes on (no defs_needed
// reset, so the producer does not resend every definition), the good
// samples beside it are written and delivered.
func TestV3BadValueOfForwardedSeriesKeepsTheSession(t *testing.T) {
	addr := chtest.Addr(t)
	conn, err := forwarder.Dial(addr, "default", "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() }) // after the drop below: cleanups run last first
	db := fmt.Sprintf("storeddef_%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() { conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	c, err := Open(Options{DataDir: t.TempDir(), Forwarder: forwarder.Options{Addr: addr, Database: db, FlushAge: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.fwd.Run(ctx) }()
	defer func() { cancel(); <-done }()
	flush := func() {
		t.Helper()
		fctx, fcancel := context.WithTimeout(ctx, time.Minute)
		defer fcancel()
		if err := c.fwd.Flush(fctx); err != nil {
			t.Fatalf("flush: %v", err)
		}
	}
	p := newProducer(ProducerConfig{ID: "p", URL: "http://127.0.0.1:1", Interval: 1e9})
	c.m.initProducer("p")
	f := newFakeSessions()
	ack := false

	first := sampletest.EveryDatumType(1_000)
	if n := collect3(t, c, p, f, &ack, first); n != 0 {
		t.Fatalf("first page: %d resets", n)
	}
	flush() // the forwarder has read the first page's record: its definitions are stored
	session := p.sess.id

	in := sampletest.EveryDatumType(5_000_000)
	target := -1
	for i := range in {
		if in[i].Datum.Type == pa.DatumI8 && !in[i].Datum.Missing && target < 0 {
			target = i
		}
	}
	in[target].Datum.Int = 1000 // out of an i8's range
	if n := collect3(t, c, p, f, &ack, in); n != 0 {
		t.Fatalf("%d resets, want none: the definition is in the forwarder's store", n)
	}
	if n := testResets(c, "p", sessionDefsNeeded); n != 0 || p.sess.id != session {
		t.Fatalf("defs_needed resets %v, session %x (was %x)", n, p.sess.id, session)
	}
	q := quarantined(t, c)
	if len(q) != 1 || q[0].Code != quarantine.CodeInvalid {
		t.Fatalf("quarantine %+v, want the bad sample", q)
	}
	ss, err := q[0].Samples()
	if err != nil || len(ss) != 1 || !sameSample(&ss[0], &in[target]) {
		t.Fatalf("quarantined %+v (%v), want %+v", ss, err, in[target])
	}
	flush()
	var want []pa.Sample
	want = append(want, first...)
	want = append(want, in[:target]...)
	want = append(want, in[target+1:]...)
	sameSamples(t, "WAL", want, readWAL3(t, c).samples)
	var stored uint64
	for _, dt := range pa.AllDatumTypes() {
		var n uint64
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.%s", db, forwarder.MeasurementsTable(dt))).Scan(&n); err != nil {
			t.Fatal(err)
		}
		stored += n
	}
	if stored != uint64(len(want)) {
		t.Errorf("%d samples in ClickHouse, want %d", stored, len(want))
	}
}
