package forwarder

import (
	"context"
	"math"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/holdfast/holdfast/internal/offheap"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

// TestSessionEntryIsSmall: an id costs 20 bytes of entry and one of type,
// so the 2.2 M series of RFD 125 at N=100 take about 46 MB, with no
// pointer for the garbage collector to follow; the key's halves make the
// same key.
func TestSessionEntryIsSmall(t *testing.T) {
	if n := unsafe.Sizeof(sessEntry{}); n != 20 {
		t.Fatalf("sessEntry is %d bytes, want 20", n)
	}
	for _, k := range []uint64{0, 1, 1 << 32, math.MaxUint64, 0x2b6b70bc87ef1c29} {
		if e := resolvedEntry(k, 7, 3, pa.DatumF64); e.key() != k || e.fp != 7 || e.name != 3 || e.state != stOK {
			t.Fatalf("resolvedEntry(%#x) = %+v, key %#x", k, e, e.key())
		}
	}
}

// TestIdleSessionUnloadedAndLoadedAgain: a session unused for sessionIdle
// leaves memory; its next record loads its definitions from the state
// store (resolved when a sample names them) and builds the same rows as
// before.
func TestIdleSessionUnloadedAndLoadedAgain(t *testing.T) {
	f := scanForwarder3(t, nil)
	now := time.Unix(1_700_000_000, 0)
	f.sess.now = func() time.Time { return now }
	ctx := context.Background()
	samples := sampletest.NewFleet(3).Append(nil, 66, 1)
	sess := newSession3("p", "i", 5)
	var page pa.PageRecord
	b := &batch{}
	b.reset()
	if err := f.add(ctx, b, 1, wal.Record{Type: wal.TypePage, Payload: sess.record(samples)}, &page); err != nil {
		t.Fatal(err)
	}
	steady := sess.record(samples)
	if err := f.add(ctx, b, 2, wal.Record{Type: wal.TypePage, Payload: steady}, &page); err != nil {
		t.Fatal(err)
	}
	if g, n := gaugeValue(f.m.sessionIDs), gaugeValue(f.m.sessionsLoaded); g != 66 || n != 1 {
		t.Errorf("gauges: %v session ids in %v sessions, want 66 in 1", g, n)
	}
	now = now.Add(sessionIdle + time.Minute)
	if err := f.sess.sweep(2); err != nil {
		t.Fatal(err)
	}
	if f.sess.ids != 0 || f.sess.loaded != 0 {
		t.Errorf("after unloading: %d ids in %d sessions counted, want none", f.sess.ids, f.sess.loaded)
	}
	s := f.sess.m[string(sessionKey(nil, []byte("p"), []byte("i"), 5))]
	if s == nil || s.loaded || s.chunks != nil {
		t.Fatalf("idle session still loaded: %+v", s)
	}
	ref := scanForwarder(t) // the decoding path of the same samples
	rb := &batch{}
	rb.reset()
	ref.w.addSamples(rb.rows, samples, nil)
	b2 := &batch{}
	b2.reset()
	if err := f.add(ctx, b2, 3, wal.Record{Type: wal.TypePage, Payload: steady}, &page); err != nil {
		t.Fatal(err)
	}
	if !s.loaded || len(b2.indexes) != 1 {
		t.Fatalf("session loaded %v, records taken %v", s.loaded, b2.indexes)
	}
	compareRowSets(t, rb.rows, b2.rows)
	if g, n := gaugeValue(f.m.sessionIDs), gaugeValue(f.m.sessionsLoaded); g != 66 || n != 1 {
		t.Errorf("gauges after loading again: %v session ids in %v sessions, want 66 in 1", g, n)
	}
}

// TestSupersededSessionsSweptAtStartUp: sessions a previous run left in
// the state store are found at start-up; those whose successor's first
// record the checkpoint passed are deleted, the rest kept until the
// checkpoint passes the WAL's last index at the start (45 here).
func TestSupersededSessionsSweptAtStartUp(t *testing.T) {
	f := scanForwarder3(t, nil)
	ctx := context.Background()
	fleet := sampletest.NewFleet(1).Append(nil, 22, 1)
	s1, s2, s3 := newSession3("p", "i", 1), newSession3("p", "i2", 2), newSession3("p", "i2", 3)
	q := newSession3("q", "i", 1)
	var page pa.PageRecord
	b := &batch{}
	b.reset()
	for i, s := range []*session3{s1, q, s2, s3} {
		if err := f.add(ctx, b, uint64(10*(i+1)), wal.Record{Type: wal.TypePage, Payload: s.record(fleet)}, &page); err != nil {
			t.Fatal(err)
		}
	}
	// s1 (first record 10) is superseded by s2 (30), s2 by s3 (40).
	key := func(s *session3) string {
		return string(sessionKey(nil, []byte(s.producer), []byte(s.incarnation), s.id))
	}
	for _, c := range []struct {
		checkpoint uint64
		gone       []*session3
		kept       []*session3
	}{
		{29, nil, []*session3{s1, s2, s3, q}},
		{30, []*session3{s1}, []*session3{s2, s3, q}},
		{40, []*session3{s1, s2}, []*session3{s3, q}},
		{44, []*session3{s1, s2}, []*session3{s3, q}},
		{45, []*session3{s1, s2, s3, q}, nil},
	} {
		ss := newSessions(f.state, reopenDefs(t, f.defs.Dir())) // a restart
		if err := ss.load(45); err != nil {
			t.Fatal(err)
		}
		if err := ss.sweep(c.checkpoint); err != nil {
			t.Fatal(err)
		}
		for _, s := range c.gone {
			if n := sessionDefs(t, f.defs.Dir(), key(s)) + sessionKeys(t, f.state, sessMetaPrefix, key(s)); n != 0 {
				t.Errorf("checkpoint %d: session %d has %d keys left, want none", c.checkpoint, s.id, n)
			}
		}
		for _, s := range c.kept {
			if n := sessionDefs(t, f.defs.Dir(), key(s)); n != len(s.ids) {
				t.Errorf("checkpoint %d: session %s/%d has %d definitions, want %d", c.checkpoint, s.producer, s.id, n, len(s.ids))
			}
		}
	}
}

// TestReadingOrderDecidesSupersession: after the WAL directory was replaced
// (its indexes start over) a producer's new session has a smaller first
// index than the old one the state store holds; the session read last is
// the current one, and the old one goes once the checkpoint passes the
// record where the new one was read.
func TestReadingOrderDecidesSupersession(t *testing.T) {
	f := scanForwarder3(t, nil)
	ctx := context.Background()
	fleet := sampletest.NewFleet(1).Append(nil, 22, 1)
	old, cur := newSession3("p", "i", 1), newSession3("p", "i2", 2)
	var page pa.PageRecord
	b := &batch{}
	b.reset()
	if err := f.add(ctx, b, 1000, wal.Record{Type: wal.TypePage, Payload: old.record(fleet)}, &page); err != nil {
		t.Fatal(err)
	}
	f2 := scanForwarder3Q(t, f.state, f.q, f.defs.Dir()) // a restart over another WAL, ending at 4
	if err := f2.sess.load(4); err != nil {
		t.Fatal(err)
	}
	if err := f2.add(ctx, b, 5, wal.Record{Type: wal.TypePage, Payload: cur.record(fleet)}, &page); err != nil {
		t.Fatal(err)
	}
	key := func(s *session3) string {
		return string(sessionKey(nil, []byte(s.producer), []byte(s.incarnation), s.id))
	}
	if err := f2.sess.sweep(1000); err != nil {
		t.Fatal(err)
	}
	if n := sessionDefs(t, f.defs.Dir(), key(cur)); n != len(cur.ids) {
		t.Errorf("the current session has %d definitions left, want %d", n, len(cur.ids))
	}
	if n := sessionDefs(t, f.defs.Dir(), key(old)); n != 0 {
		t.Errorf("the old session has %d definitions left, want none", n)
	}
}

// TestSessionMemoryFor2_2MSeries: the arrays of a session holding RFD
// 125's 2.2 M series (N=100) take at most 50 MB of heap (21 bytes an id,
// and the last chunk's slack).
func TestSessionMemoryFor2_2MSeries(t *testing.T) {
	const n = 2_200_000
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	mappedBefore := offheap.Bytes()
	s := &session{loaded: true}
	for id := uint64(0); id < n; id++ {
		e := s.slot(id)
		*e = resolvedEntry(id, uint32(id), s.nameIndex("virtual_machine:cpu_busy"), pa.DatumF64)
		s.types[id] = pa.DatumF64
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	mapped := offheap.Bytes() - mappedBefore
	used := heap + mapped
	t.Logf("%d series: %.1f MB (%.1f bytes a series), %.1f MB of it on the heap", n, float64(used)/1e6, float64(used)/n, float64(heap)/1e6)
	if used > 50e6 {
		t.Errorf("%d series take %.1f MB, want at most 50 MB", n, float64(used)/1e6)
	}
	if runtime.GOOS == "linux" && heap > 5e6 {
		t.Errorf("%.1f MB of the entries on the heap, want the full chunks outside it", float64(heap)/1e6)
	}
	runtime.KeepAlive(s)
	(&sessions{}).release(s)
	if got := offheap.Bytes(); got != mappedBefore {
		t.Errorf("released: %d bytes mapped, want %d", got, mappedBefore)
	}
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}

// TestPreviousRunSessionsDeletedOnceForwarded: a producer's last session
// of a previous run has no successor when the producer never came back
// (moved to another collector, retired); it is deleted once the checkpoint
// passes the WAL's last index at the start, even when its records are read
// again (a replay after the restart). A session that a record after that
// index continues (not what a collector writes: its sessions do not
// survive a restart) is current again and kept.
func TestPreviousRunSessionsDeletedOnceForwarded(t *testing.T) {
	f := scanForwarder3(t, nil)
	ctx := context.Background()
	fleet := sampletest.NewFleet(1).Append(nil, 22, 1)
	gone, continued := newSession3("gone", "i", 1), newSession3("continued", "i", 1)
	var page pa.PageRecord
	b := &batch{}
	b.reset()
	goneFirst := gone.record(fleet)
	for i, rec := range [][]byte{goneFirst, continued.record(fleet)} {
		if err := f.add(ctx, b, uint64(10+i), wal.Record{Type: wal.TypePage, Payload: rec}, &page); err != nil {
			t.Fatal(err)
		}
	}
	key := func(s *session3) string {
		return string(sessionKey(nil, []byte(s.producer), []byte(s.incarnation), s.id))
	}
	f2 := scanForwarder3Q(t, f.state, f.q, f.defs.Dir()) // a restart; the WAL ends at 11
	if err := f2.sess.load(11); err != nil {
		t.Fatal(err)
	}
	b2 := &batch{}
	b2.reset()
	// The replay from a checkpoint of 9 reads both records again; a new
	// record continues one session after the start.
	for _, r := range []struct {
		idx uint64
		rec []byte
	}{{10, goneFirst}, {12, continued.record(fleet)}} {
		if err := f2.add(ctx, b2, r.idx, wal.Record{Type: wal.TypePage, Payload: r.rec}, &page); err != nil {
			t.Fatal(err)
		}
	}
	if err := f2.sess.sweep(10); err != nil {
		t.Fatal(err)
	}
	if n := sessionDefs(t, f.defs.Dir(), key(gone)); n != len(gone.ids) {
		t.Errorf("checkpoint 10 (the WAL ended at 11 at the start): the previous run's session has %d definitions, want %d", n, len(gone.ids))
	}
	if err := f2.sess.sweep(11); err != nil {
		t.Fatal(err)
	}
	if n := sessionDefs(t, f.defs.Dir(), key(gone)) + sessionKeys(t, f.state, sessMetaPrefix, key(gone)); n != 0 {
		t.Errorf("checkpoint 11: the previous run's session has %d keys left, want none", n)
	}
	if n := sessionDefs(t, f.defs.Dir(), key(continued)); n != len(continued.ids) {
		t.Errorf("the continued session has %d definitions, want %d", n, len(continued.ids))
	}
}

// TestSeenEpochRenewed: when the writer's seenEpoch has run out, the
// forwarder clears every loaded entry's note and starts it over, and the
// next admission of a written series notes it again; before that, nothing
// is cleared.
func TestSeenEpochRenewed(t *testing.T) {
	f := scanForwarder3(t, nil)
	ctx := context.Background()
	samples := sampletest.NewFleet(2).Append(nil, 44, 1)
	sess := newSession3("p", "i", 9)
	b := &batch{}
	b.reset()
	var page pa.PageRecord
	add := func(idx uint64) {
		t.Helper()
		if err := f.add(ctx, b, idx, wal.Record{Type: wal.TypePage, Payload: sess.record(samples)}, &page); err != nil {
			t.Fatal(err)
		}
	}
	add(1)
	for k, fp := range b.rows.newKeys { // written
		f.w.seenKeys.put(k, fp)
	}
	b.reset()
	add(2) // admitted into a new row set: the written keys are noted
	notes := func() (noted, other int) {
		for _, s := range f.sess.m {
			for _, ch := range s.chunks {
				for i := range ch {
					switch {
					case ch[i].state != stOK:
					case ch[i].seen == f.w.seenEpoch:
						noted++
					default:
						other++
					}
				}
			}
		}
		return noted, other
	}
	if noted, other := notes(); noted != len(samples) || other != 0 {
		t.Fatalf("%d entries noted at epoch %d and %d not, want all %d", noted, f.w.seenEpoch, other, len(samples))
	}
	f.w.seenEpoch = math.MaxUint8 - 1
	f.renewSeenEpoch()
	if _, other := notes(); f.w.seenEpoch != math.MaxUint8-1 || other != len(samples) {
		t.Fatalf("epoch %d, %d notes of an older epoch: renewed before the epoch ran out", f.w.seenEpoch, other)
	}
	f.w.seenEpoch = math.MaxUint8
	f.renewSeenEpoch()
	for _, s := range f.sess.m {
		for _, ch := range s.chunks {
			for i := range ch {
				if ch[i].seen != 0 {
					t.Fatalf("entry %d still noted at epoch %d after the renewal", i, ch[i].seen)
				}
			}
		}
	}
	if f.w.seenEpoch != 1 {
		t.Fatalf("epoch %d after the renewal, want 1", f.w.seenEpoch)
	}
	b.reset()
	add(3)
	if noted, _ := notes(); noted != len(samples) {
		t.Fatalf("%d entries noted at the renewed epoch, want %d", noted, len(samples))
	}
}

// TestPerSeriesArraysLeaveTheHeapAndGoBack: a session's full chunks of
// entries and the written-key table live outside the Go heap
// (internal/offheap); unloading an idle session and closing the forwarder
// give every mapped byte back.
func TestPerSeriesArraysLeaveTheHeapAndGoBack(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("mappings are tested on linux")
	}
	base := offheap.Bytes()
	f := scanForwarder3(t, nil)
	f.w.seenKeys.offHeap = true
	now := time.Unix(1_700_000_000, 0)
	f.sess.now = func() time.Time { return now }
	samples := sampletest.NewFleet(500).Append(nil, 2*sessionChunk+100, 1) // 3 chunks, 2 of them full
	sess := newSession3("p", "i", 5)
	var page pa.PageRecord
	b := &batch{}
	b.reset()
	if err := f.add(context.Background(), b, 1, wal.Record{Type: wal.TypePage, Payload: sess.record(samples)}, &page); err != nil {
		t.Fatal(err)
	}
	chunkBytes := int64(sessionChunk) * int64(unsafe.Sizeof(sessEntry{}))
	if got := offheap.Bytes() - base; got != 2*chunkBytes {
		t.Fatalf("%d ids: %d bytes mapped, want 2 full chunks (%d)", len(samples), got, 2*chunkBytes)
	}
	f.w.markSeen(b.rows)
	keys := int64(len(f.w.seenKeys.keys)) * 8
	if got := offheap.Bytes() - base; got != 2*chunkBytes+keys {
		t.Fatalf("with %d written keys: %d bytes mapped, want %d", f.w.seenKeys.len(), got, 2*chunkBytes+keys)
	}
	for i := range f.w.seenKeys.keys { // the mapped table reads back what it holds
		if k := f.w.seenKeys.keys[i]; k != 0 {
			if fp, ok := f.w.seenKeys.get(k); !ok || fp != f.w.seenKeys.fps[i] {
				t.Fatalf("key %#x: %v %v", k, fp, ok)
			}
		}
	}
	now = now.Add(sessionIdle + time.Minute)
	if err := f.sess.sweep(1); err != nil {
		t.Fatal(err)
	}
	if got := offheap.Bytes() - base; got != keys {
		t.Fatalf("idle session unloaded: %d bytes mapped, want the key table's %d", got, keys)
	}
	b2 := &batch{}
	b2.reset()
	if err := f.add(context.Background(), b2, 2, wal.Record{Type: wal.TypePage, Payload: sess.record(samples)}, &page); err != nil {
		t.Fatal(err)
	}
	if len(b2.indexes) != 1 || b2.rows.rows != len(samples) {
		t.Fatalf("after loading again: records %v, %d rows, want %d", b2.indexes, b2.rows.rows, len(samples))
	}
	if got := offheap.Bytes() - base; got != 2*chunkBytes+keys {
		t.Fatalf("loaded again: %d bytes mapped, want %d", got, 2*chunkBytes+keys)
	}
	f.m = nil // scanForwarder's metrics were never registered
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := offheap.Bytes(); got != base {
		t.Fatalf("after Close %d bytes mapped, want %d", got, base)
	}
}

// TestCloseDuringRunFreesWhenRunReturns: Close called while Run still
// runs (as a deferred Close may be, before Run saw its context end) leaves
// the per-series arrays mapped until Run returns, then Run frees them; a
// Run after Close is refused.
func TestCloseDuringRunFreesWhenRunReturns(t *testing.T) {
	e := newEnv(t, "")
	base := offheap.Bytes()
	f, err := New(e.wal, e.state, e.options())
	if err != nil {
		t.Fatal(err)
	}
	for k := uint64(1); k <= 20_000; k++ { // before Run: the table is the test's
		f.w.seenKeys.put(k, uint32(k))
	}
	mapped := offheap.Bytes() - base
	if runtime.GOOS == "linux" && mapped == 0 {
		t.Fatal("20,000 written keys mapped nothing")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		running := f.mu.running
		f.mu.Unlock()
		if running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := offheap.Bytes() - base; got != mapped {
		t.Fatalf("Close during Run: %d bytes mapped, want the table's %d left to Run", got, mapped)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := offheap.Bytes(); got != base {
		t.Fatalf("after Run returned: %d bytes mapped, want %d", got, base)
	}
	if err := f.Run(context.Background()); err == nil {
		t.Fatal("Run after Close was not refused")
	}
}
