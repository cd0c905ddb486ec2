package collector

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
	dto "github.com/prometheus/client_model/go"
)

// fakeSessions is a producer's side of page version 3 for one cursor, as
// the spec describes it (the library producer's is producerapi's): ids by
// series entry, the acknowledged count, the outstanding page, and the
// new-session rules. Tests drive it without HTTP.
type fakeSessions struct {
	id, nextSession uint64
	ids             map[string]uint64
	defs            [][]byte // by id
	acked           uint64
	out             []pa.Sample // the outstanding page
	token           int
}

func newFakeSessions() *fakeSessions { return &fakeSessions{nextSession: 0x1000} }

// serve answers a page request (session, known; ack: it carries the
// outstanding page's token) with a version 3 page of the outstanding
// samples, or of next when none is outstanding.
func (f *fakeSessions) serve(session, known uint64, ack bool, next []pa.Sample) (*pa.Page, []byte) {
	if ack {
		f.acked = uint64(len(f.defs))
		f.out = nil
	}
	if f.id == 0 || f.id != session || f.acked != known {
		f.nextSession++
		f.id, f.ids, f.defs, f.acked = f.nextSession, map[string]uint64{}, nil, 0
	}
	if f.out == nil {
		f.out = next
		f.token++
	}
	var table []byte
	for i := range f.out {
		e := pa.AppendSeries(nil, &f.out[i])
		if _, ok := f.ids[string(e)]; !ok {
			f.ids[string(e)] = uint64(len(f.defs))
			f.defs = append(f.defs, e)
		}
	}
	for _, d := range f.defs[f.acked:] {
		table = append(table, d...)
	}
	p := &pa.Page{Version: pa.PageVersion3, Producer: "p", Incarnation: "inc", Token: fmt.Sprint("tok", f.token), Session: f.id}
	b := pa.AppendPage3Head(nil, p)
	b = pa.AppendBlock3Head(b, f.acked, len(f.defs)-int(f.acked), table, len(f.out))
	for i := range f.out {
		b = pa.AppendSample3(b, f.ids[string(pa.AppendSeries(nil, &f.out[i]))], &f.out[i])
	}
	return p, b
}

// take3 does with a version 3 page body what drain does after a fetch:
// verify, write, quarantine, commit the session. A *sessionError has reset
// the state.
func take3(t *testing.T, c *Collector, p *producer, body []byte) error {
	t.Helper()
	var page pa.Page
	block, _, err := pa.ScanPageHead(body, &page, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := pageWorkPool.Get().(*pageWork)
	defer w.release()
	p.sess.unstage()
	var buf []byte
	_, _, rejected, _, err := c.takePage3(context.Background(), p, &page, w, block, nil, &buf)
	if serr := (*sessionError)(nil); errors.As(err, &serr) {
		c.resetSession(p, serr.reason, serr.err)
		return err
	}
	if err != nil {
		return err
	}
	if err := c.keepRejected(p, page.Incarnation, rejected); err != nil {
		return err
	}
	c.commitSession(p)
	return nil
}

// collect3 serves pages of next until one is taken (retrying after a
// session reset, as drain does), and reports the resets.
func collect3(t *testing.T, c *Collector, p *producer, f *fakeSessions, ack *bool, next []pa.Sample) (resets int) {
	t.Helper()
	for try := 0; ; try++ {
		s, k := p.sess.request()
		_, body := f.serve(s, k, *ack, next)
		*ack = false
		err := take3(t, c, p, body)
		if err == nil {
			*ack = true
			return resets
		}
		if serr := (*sessionError)(nil); !errors.As(err, &serr) || try > 2 {
			t.Fatalf("page not taken: %v", err)
		}
		resets++
	}
}

func newTestCollector(t *testing.T) (*Collector, *producer) {
	t.Helper()
	c, err := Open(Options{DataDir: t.TempDir(), Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := newProducer(ProducerConfig{ID: "p", URL: "http://127.0.0.1:1", Interval: 1e9})
	c.m.initProducer("p")
	return c, p
}

// wal3 is the WAL's content read as a forwarder would: version 3 records
// through their session's definitions (an id defined once, by an earlier
// record or its own), checking that no sample names a refused id.
type wal3 struct {
	samples []pa.Sample
	records [][]byte
}

func readWAL3(t *testing.T, c *Collector) wal3 {
	t.Helper()
	type sess struct {
		defs    map[uint64][]byte
		types   []pa.DatumType
		refused map[uint64]bool
	}
	sessions := map[string]*sess{}
	var out wal3
	r := c.wal.NewReader(1)
	for {
		_, rec, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out.records = append(out.records, append([]byte(nil), rec.Payload...))
		var pr pa.PageRecord
		if rec.Payload[0] != 3 {
			if err := pa.DecodePageRecord(rec.Payload, &pr); err != nil {
				t.Fatal(err)
			}
			out.samples = append(out.samples, pr.Samples...)
			continue
		}
		var h pa.Record3Head
		if err := pa.ParsePageRecord3(rec.Payload, &h); err != nil {
			t.Fatal(err)
		}
		if !h.Verified {
			t.Fatal("record 3 not flagged verified")
		}
		key := fmt.Sprintf("%s/%s/%x", h.Producer, h.Incarnation, h.Session)
		s := sessions[key]
		if s == nil {
			s = &sess{defs: map[uint64][]byte{}, refused: map[uint64]bool{}}
			sessions[key] = s
		}
		if err := pa.DecodePageRecord3(rec.Payload, &pr, func(id uint64) ([]byte, bool) {
			d, ok := s.defs[id]
			return d, ok && !s.refused[id]
		}); err != nil {
			t.Fatalf("record %d: %v", len(out.records), err)
		}
		var sc pa.BlockScanner
		if err := sc.Reset3(h.Block, nil); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < sc.NumSeries(); i++ {
			id := sc.FirstID() + uint64(i)
			if old, ok := s.defs[id]; ok && !bytes.Equal(old, sc.Series(i).Raw) {
				t.Fatalf("id %d redefined differently", id)
			}
			s.defs[id] = append([]byte(nil), sc.Series(i).Raw...)
		}
		for _, id := range h.Refused {
			if id < sc.FirstID() || id >= sc.FirstID()+uint64(sc.NumSeries()) {
				t.Fatalf("refused id %d not among the record's defs", id)
			}
			s.refused[id] = true
		}
		s.types = sc.AppendSessionTypes(s.types)
		sc.SetSessionTypes(s.types)
		var v pa.SampleView
		for sc.Next(&v) {
			if s.refused[uint64(v.Series)] {
				t.Fatalf("a sample names refused id %d", v.Series)
			}
		}
		if sc.Err() != nil {
			t.Fatal(sc.Err())
		}
		out.samples = append(out.samples, pr.Samples...)
	}
}

func sameSamples(t *testing.T, what string, want, got []pa.Sample) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d samples, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !sameSample(&want[i], &got[i]) {
			t.Fatalf("%s: sample %d differs", what, i)
		}
	}
}

// TestV3PageVerifiedInPlaceLikeV2: the same samples as one version 3 page
// (a new session) give the same WAL samples and the same quarantine
// entries (codes, reasons, payloads) as a version 2 page; served as pages
// of 97 samples in one session, the same samples and entries (reasons name
// the sample's index in its page). The refused series are listed in their
// record's head and no sample names them.
func TestV3PageVerifiedInPlaceLikeV2(t *testing.T) {
	in := mixedSamples()
	ref := drainOnce(t, in, false, 0, 0)
	want, wantQ := readWAL(t, ref), quarantined(t, ref)

	c, p := newTestCollector(t)
	f := newFakeSessions()
	ack := false
	if collect3(t, c, p, f, &ack, in) != 0 {
		t.Fatal("a reset on a new session's page")
	}
	got := readWAL3(t, c)
	if len(got.records) != 1 || got.records[0][0] != 3 {
		t.Fatalf("%d records", len(got.records))
	}
	sameSamples(t, "one page", want.samples, got.samples)
	q := quarantined(t, c)
	if len(q) != len(wantQ) {
		t.Fatalf("%d quarantined, want %d", len(q), len(wantQ))
	}
	for i := range wantQ {
		a, b := wantQ[i], q[i]
		if a.Code != b.Code || a.Reason != b.Reason || !bytes.Equal(a.Payload, b.Payload) {
			t.Fatalf("quarantine entry %d differs:\n%s %q\n%s %q", i, a.Code, a.Reason, b.Code, b.Reason)
		}
	}
	var h pa.Record3Head
	if err := pa.ParsePageRecord3(got.records[0], &h); err != nil || len(h.Refused) == 0 {
		t.Fatalf("refused ids %v %v", h.Refused, err)
	}

	// Many pages of one session.
	c2, p2 := newTestCollector(t)
	f2 := newFakeSessions()
	ack = false
	for i := 0; i < len(in); i += 97 {
		if collect3(t, c2, p2, f2, &ack, in[i:min(i+97, len(in))]) != 0 {
			t.Fatalf("page %d: a reset", i/97)
		}
	}
	if p2.sess.id != f2.id || uint64(len(p2.sess.types)) != f2.acked+uint64(len(f2.defs))-f2.acked {
		t.Fatalf("session %x/%d, producer %x/%d", p2.sess.id, len(p2.sess.types), f2.id, len(f2.defs))
	}
	got2 := readWAL3(t, c2)
	sameSamples(t, "pages", want.samples, got2.samples)
	q2 := quarantined(t, c2)
	if len(q2) != len(wantQ) {
		t.Fatalf("%d quarantined, want %d", len(q2), len(wantQ))
	}
	for i := range wantQ {
		if wantQ[i].Code != q2[i].Code || !bytes.Equal(wantQ[i].Payload, q2[i].Payload) {
			t.Fatalf("quarantine entry %d differs: %s %s", i, wantQ[i].Code, q2[i].Code)
		}
	}
}

// TestV3RefusedSeriesQuarantinedOnLaterPages: a series refused on the page
// that defines it has its samples quarantined on that page and on later
// ones (its identity from the refused map, no reset), the others flow; a
// bad value of a good series defined on an earlier page makes the session
// start over (defs_needed) and is quarantined from the page served again,
// self-contained; every good sample is written exactly once.
func TestV3RefusedSeriesQuarantinedOnLaterPages(t *testing.T) {
	page := func(ts int64) []pa.Sample {
		ss := sampletest.EveryDatumType(ts)
		bad := ss[7]
		bad.Target.Name = "Bad Name"
		return append(ss, bad)
	}
	c, p := newTestCollector(t)
	f := newFakeSessions()
	ack := false
	var want []pa.Sample
	for round := int64(0); round < 3; round++ {
		in := page(1_000 + round*1_000_000)
		if collect3(t, c, p, f, &ack, in) != 0 {
			t.Fatalf("round %d: a reset", round)
		}
		want = append(want, in[:len(in)-1]...)
	}
	if q := quarantined(t, c); len(q) != 3 || q[2].Code != quarantine.CodeInvalid || p.sess.nrefused != 1 || len(p.sess.refusedDefs) != 1 {
		t.Fatalf("quarantine %+v, session refused %d", q, p.sess.nrefused)
	}
	firstSession := p.sess.id
	// A bad value of a good series defined on the first page: its identity
	// is not in the state.
	in := sampletest.EveryDatumType(5_000_000)
	target := -1
	for i := range in {
		if in[i].Datum.Type == pa.DatumI8 && !in[i].Datum.Missing && target < 0 {
			target = i
		}
	}
	in[target].Datum.Int = 1000
	if n := collect3(t, c, p, f, &ack, in); n != 1 {
		t.Fatalf("%d resets, want one", n)
	}
	if n := testResets(c, "p", sessionDefsNeeded); n != 1 || p.sess.id == firstSession {
		t.Fatalf("resets %v, session %x", n, p.sess.id)
	}
	want = append(want, in[:target]...)
	want = append(want, in[target+1:]...)
	sameSamples(t, "WAL", want, readWAL3(t, c).samples)
	q := quarantined(t, c)
	if len(q) != 4 || q[3].Code != quarantine.CodeInvalid {
		t.Fatalf("%d quarantined", len(q))
	}
	ss, err := q[3].Samples()
	if err != nil || len(ss) != 1 || !sameSample(&ss[0], &in[target]) {
		t.Fatalf("quarantined %v %v", ss, err)
	}
}

func testResets(c *Collector, producer, reason string) float64 {
	var m dto.Metric
	c.m.sessionResets.WithLabelValues(producer, reason).Write(&m)
	return m.GetCounter().GetValue()
}

// TestV3FailedWALAppendLeavesSessionUnchanged: a page whose WAL append
// fails (here the second record of a split page, after the first was
// written) is not taken and leaves the session as it was; the producer,
// asked with the same session and known count, serves it again with the
// same definitions, and it is taken. Every sample is in the WAL (the
// first attempt's record again: the tables deduplicate it).
func TestV3FailedWALAppendLeavesSessionUnchanged(t *testing.T) {
	fleet := sampletest.NewFleet(50)
	c, p := newTestCollector(t)
	c.maxRec = 4096
	f := newFakeSessions()
	ack := false
	first := fleet.Append(nil, 100, 1_000)
	collect3(t, c, p, f, &ack, first)
	id, n := p.sess.id, len(p.sess.types)

	appends, failAt := 0, 2
	c.wFault = func() error {
		appends++
		if appends == failAt {
			return errors.New("injected WAL failure")
		}
		return nil
	}
	second := fleet.Append(nil, 1000, 2_000_000) // new series and more than one record
	s, k := p.sess.request()
	_, body := f.serve(s, k, ack, second)
	ack = false
	if err := take3(t, c, p, body); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("take: %v", err)
	}
	if p.sess.id != id || len(p.sess.types) != n || p.sess.hasStaged {
		t.Fatalf("session %x/%d after a failed append, want %x/%d", p.sess.id, len(p.sess.types), id, n)
	}
	if got := readWAL3(t, c); len(got.records) < 2 {
		t.Fatalf("%d records: the failure was not after a written part", len(got.records))
	}
	failAt = -1
	if resets := collect3(t, c, p, f, &ack, second); resets != 0 {
		t.Fatalf("%d resets", resets)
	}
	if p.sess.id != id || len(p.sess.types) <= n {
		t.Fatalf("session %x/%d after the page was taken", p.sess.id, len(p.sess.types))
	}
	got := readWAL3(t, c).samples
	seen := map[string]int{}
	for i := range got {
		seen[string(pa.AppendSamples(nil, got[i:i+1]))]++
	}
	for i, s := range append(first, second...) {
		if seen[string(pa.AppendSamples(nil, []pa.Sample{s}))] == 0 {
			t.Fatalf("sample %d missing", i)
		}
	}
}

// TestV3MismatchResetsAndRecovers: a page that does not continue the
// collector's session (a producer that lost track: right session, wrong
// first id) drops the state (mismatch); the page asked again without a
// session comes self-contained in a new one and is taken; every sample
// once.
func TestV3MismatchResetsAndRecovers(t *testing.T) {
	fleet := sampletest.NewFleet(30)
	c, p := newTestCollector(t)
	f := newFakeSessions()
	ack := false
	var want []pa.Sample
	for i := 0; i < 3; i++ {
		in := fleet.Append(nil, 300, int64(1_000+i*1_000_000_000))
		collect3(t, c, p, f, &ack, in)
		want = append(want, in...)
	}
	// The producer loses track: the next page continues the session with
	// a first id past what the collector holds.
	in := fleet.Append(nil, 300, 9_000_000_000)
	s, k := p.sess.request()
	pg, body := f.serve(s, k, ack, in)
	ack = false
	var page pa.Page
	block, _, err := pa.ScanPageHead(body, &page, nil)
	first, n := binary.Uvarint(block[1:])
	if err != nil || first != k {
		t.Fatalf("page %v, first id %d, known %d", err, first, k)
	}
	body = binary.AppendUvarint(append(pa.AppendPage3Head(nil, pg), 3), k+1)
	body = append(body, block[1+n:]...)
	err = take3(t, c, p, body)
	if serr := (*sessionError)(nil); !errors.As(err, &serr) || serr.reason != sessionMismatch {
		t.Fatalf("take: %v", err)
	}
	if p.sess.id != 0 || testResets(c, "p", sessionMismatch) != 1 {
		t.Fatalf("state %x, resets %v", p.sess.id, testResets(c, "p", sessionMismatch))
	}
	collect3(t, c, p, f, &ack, in)
	want = append(want, in...)
	sameSamples(t, "WAL", want, readWAL3(t, c).samples)
	if p.sess.id != f.id || testResets(c, "p", sessionNew) != 0 {
		t.Fatalf("session %x, producer's %x", p.sess.id, f.id)
	}
}

// TestV3SplitPartsReplayIntoTheSameSamples: a version 3 page too large for
// one WAL record is written as several, in order (each part defines what
// its samples need, first ids contiguous), none over the limit; read back
// through the session they are the page's samples, and a sample too large
// for any record is quarantined as too_large. The next page of the
// session, naming the split page's ids, reads back too.
func TestV3SplitPartsReplayIntoTheSameSamples(t *testing.T) {
	in := sampletest.NewFleet(100).Append(nil, 2000, 1)
	huge := in[700]
	huge.Metric = pa.Named{Name: "blob"}
	huge.Datum = pa.Datum{Type: pa.DatumBytes, Bytes: make([]byte, 8000)}
	in = append(in[:1500], append([]pa.Sample{huge}, in[1500:]...)...)
	bad := in[10]
	bad.Target.Name = "Bad Name"
	in = append(in, bad)
	c, p := newTestCollector(t)
	c.maxRec = 4096
	f := newFakeSessions()
	ack := false
	collect3(t, c, p, f, &ack, in)
	next := sampletest.NewFleet(100).Append(nil, 500, 5_000_000_000)
	collect3(t, c, p, f, &ack, next)
	got := readWAL3(t, c)
	if len(got.records) < 10 {
		t.Fatalf("%d records", len(got.records))
	}
	wantIDs := uint64(0)
	for i, r := range got.records {
		if len(r) > 4096 {
			t.Fatalf("record %d of %d bytes", i, len(r))
		}
		var h pa.Record3Head
		if err := pa.ParsePageRecord3(r, &h); err != nil {
			t.Fatal(err)
		}
		var sc pa.BlockScanner
		if err := sc.Reset3(h.Block, nil); err != nil {
			t.Fatal(err)
		}
		if sc.FirstID() != wantIDs {
			t.Fatalf("record %d: first id %d, want %d", i, sc.FirstID(), wantIDs)
		}
		wantIDs += uint64(sc.NumSeries())
	}
	want := append(append([]pa.Sample(nil), in[:1500]...), in[1501:len(in)-1]...)
	sameSamples(t, "WAL", append(want, next...), got.samples)
	q := quarantined(t, c)
	if len(q) != 2 || q[0].Code != quarantine.CodeInvalid || q[1].Code != quarantine.CodeTooLarge {
		t.Fatalf("quarantine %+v", q)
	}
}

// TestV3SteadyPageAllocatesNothing: a page of a session that defines no
// series (a producer drained every interval, after the first page) is
// verified and made into its record without allocating.
func TestV3SteadyPageAllocatesNothing(t *testing.T) {
	fleet := sampletest.NewFleet(500)
	c, p := newTestCollector(t)
	f := newFakeSessions()
	ack := false
	collect3(t, c, p, f, &ack, fleet.Append(nil, 11_000, 1))
	s, k := p.sess.request()
	_, body := f.serve(s, k, ack, fleet.Append(nil, 11_000, 10_000_000_000))
	var page pa.Page
	block, _, err := pa.ScanPageHead(body, &page, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	w := new(pageWork) // as the pool gives it (its release is per page, not per sample)
	run := func() {
		rejected, err := c.verifyPage3(w, &p.sess, page.Session, page.Incarnation, block, nil)
		if err != nil || len(rejected) != 0 || w.sc.NumSeries() != 0 {
			t.Fatal(err, len(rejected), w.sc.NumSeries())
		}
		var ok bool
		if buf, ok = c.record3("p", page.Incarnation, w, block, buf[:0]); !ok {
			t.Fatal("record too large")
		}
	}
	run()
	if a := testing.AllocsPerRun(20, run); a != 0 {
		t.Fatalf("%v allocations per page", a)
	}
}

// FuzzVerifyPage3 feeds hostile version 3 blocks to verifyPage3, in a
// session holding some ids and in none: never a panic, and an error or a
// verdict for every sample.
func FuzzVerifyPage3(f *testing.F) {
	fs := newFakeSessions()
	in := sampletest.EveryDatumType(1)
	_, body := fs.serve(0, 0, false, in)
	var page pa.Page
	block, _, _ := pa.ScanPageHead(body, &page, nil)
	f.Add(block, true)
	_, body = fs.serve(fs.id, uint64(len(fs.defs)), true, sampletest.EveryDatumType(2))
	block, _, _ = pa.ScanPageHead(body, &page, nil)
	f.Add(block, true)
	f.Add(block, false)
	c := &Collector{schemas: pa.NewSchemaRegistry(), maxRec: wal.MaxPayload}
	c.opts.Limits = pa.Limits{}
	lim := &pa.PageLimits{MaxSamples: 1000}
	f.Fuzz(func(t *testing.T, b []byte, inSession bool) {
		var s session
		if inSession {
			s.id, s.incarnation = fs.id, "inc"
			for _, d := range fs.defs {
				s.types = append(s.types, pa.DatumType(d[len(d)-1]))
			}
		}
		w := new(pageWork)
		rejected, err := c.verifyPage3(w, &s, fs.id, "inc", b, lim)
		if err != nil {
			return
		}
		if len(rejected)+len(w.kept) != len(w.spans) {
			t.Fatalf("%d refused + %d kept of %d", len(rejected), len(w.kept), len(w.spans))
		}
		// The record made of what was kept reads back: its definitions,
		// and only kept samples, none of a refused id.
		rec, ok := c.record3("p", "inc", w, b, nil)
		if !ok {
			t.Fatal("record over the WAL's limit")
		}
		var h pa.Record3Head
		if err := pa.ParsePageRecord3(rec, &h); err != nil {
			t.Fatal(err)
		}
		var sc pa.BlockScanner
		if err := sc.Reset3(h.Block, nil); err != nil {
			t.Fatal(err)
		}
		refused := map[uint64]bool{}
		for _, id := range h.Refused {
			refused[id] = true
		}
		sc.SetSessionTypes(w.pend.types)
		var v pa.SampleView
		n := 0
		for sc.Next(&v) {
			if refused[uint64(v.Series)] || (uint64(v.Series) < uint64(len(s.types)) && s.isRefused(uint64(v.Series))) {
				t.Fatalf("kept sample of refused id %d", v.Series)
			}
			n++
		}
		if sc.Err() != nil || n != len(w.kept) {
			t.Fatalf("record: %d samples of %d kept, %v", n, len(w.kept), sc.Err())
		}
	})
}

// TestV3BadValueSeriesDoesNotClaimTheSchema: a new series whose only sample
// on its page has a bad value, defined before a good series of the same
// timeseries name and another datum type, does not register its schema
// first: as in version 2, the good series is taken and only the bad sample
// quarantined (invalid). Checking the page's definitions in plain id order
// would refuse the good series as a schema conflict.
func TestV3BadValueSeriesDoesNotClaimTheSchema(t *testing.T) {
	tgt := pa.Named{Name: "t", Fields: []pa.Field{{Name: "k", Value: pa.StringValue("v")}}}
	in := []pa.Sample{
		{Target: tgt, Metric: pa.Named{Name: "m"}, TimestampNs: 1, Datum: pa.Datum{Type: pa.DatumI8, Int: 1000}},
		{Target: tgt, Metric: pa.Named{Name: "m"}, TimestampNs: 2, Datum: pa.Datum{Type: pa.DatumF64, F64: 1.5}},
		{Target: tgt, Metric: pa.Named{Name: "other"}, TimestampNs: 3, Datum: pa.Datum{Type: pa.DatumF64, F64: 2.5}},
	}
	ref := drainOnce(t, in, false, 0, 0)
	want, wantQ := readWAL(t, ref), quarantined(t, ref)
	if len(want.samples) != 2 || len(wantQ) != 1 {
		t.Fatalf("v2: %d written, %d quarantined", len(want.samples), len(wantQ))
	}
	c, p := newTestCollector(t)
	ack := false
	collect3(t, c, p, newFakeSessions(), &ack, in)
	sameSamples(t, "v3", want.samples, readWAL3(t, c).samples)
	q := quarantined(t, c)
	if len(q) != 1 || q[0].Code != wantQ[0].Code || q[0].Reason != wantQ[0].Reason {
		t.Fatalf("quarantine %+v, want %+v", q, wantQ)
	}
}

// TestV3ForgottenRefusedDefinitionStartsOver: the refused definitions a
// session keeps are bounded (maxRefusedDefBytes); a sample of a refused
// series whose definition was not kept makes the session start over
// (defs_needed), and the page served again self-contained quarantines it
// with its identity.
func TestV3ForgottenRefusedDefinitionStartsOver(t *testing.T) {
	var s session
	s.stage(&pending{fresh: true, id: 9, incarnation: "i", types: make([]pa.DatumType, 3),
		refused: []uint64{0, 2}, refusedRaw: [][]byte{make([]byte, maxRefusedDefBytes+1), {1}}, refusedErr: []error{nil, nil}})
	s.commit()
	if !s.isRefused(0) || s.isRefused(1) || !s.isRefused(2) || len(s.refusedDefs) != 1 || s.refusedDefs[2].raw == nil {
		t.Fatalf("%d refused defs kept, %d bytes", len(s.refusedDefs), s.defBytes)
	}

	good := sampletest.EveryDatumType(1)[:5]
	bad := good[0]
	bad.Target.Name = "Bad Name"
	c, p := newTestCollector(t)
	f := newFakeSessions()
	ack := false
	collect3(t, c, p, f, &ack, append(append([]pa.Sample(nil), good...), bad))
	if len(p.sess.refusedDefs) != 1 {
		t.Fatalf("%d refused defs kept", len(p.sess.refusedDefs))
	}
	clear(p.sess.refusedDefs) // as if past the bound
	good2 := sampletest.EveryDatumType(1_000_000)[:5]
	bad2 := good2[0]
	bad2.Target.Name = "Bad Name"
	if n := collect3(t, c, p, f, &ack, append(append([]pa.Sample(nil), good2...), bad2)); n != 1 || testResets(c, "p", sessionDefsNeeded) != 1 {
		t.Fatalf("%d resets", n)
	}
	sameSamples(t, "WAL", append(good, good2...), readWAL3(t, c).samples)
	q := quarantined(t, c)
	if len(q) != 2 {
		t.Fatalf("%d quarantined", len(q))
	}
	for i, want := range []pa.Sample{bad, bad2} {
		ss, err := q[i].Samples()
		if err != nil || len(ss) != 1 || !sameSample(&ss[0], &want) {
			t.Fatalf("entry %d: %v %v", i, ss, err)
		}
	}
}

// TestV3PageOfRefusedSamplesStillDefinesItsSeries: a page whose every
// sample is refused for its value still writes its definitions (a record
// with no samples): the next page names the same ids, and its samples read
// back through the session.
func TestV3PageOfRefusedSamplesStillDefinesItsSeries(t *testing.T) {
	tgt := pa.Named{Name: "t", Fields: []pa.Field{{Name: "k", Value: pa.StringValue("v")}}}
	s := func(ts, v int64) pa.Sample {
		return pa.Sample{Target: tgt, Metric: pa.Named{Name: "m"}, TimestampNs: ts, Datum: pa.Datum{Type: pa.DatumI8, Int: v}}
	}
	c, p := newTestCollector(t)
	f := newFakeSessions()
	ack := false
	collect3(t, c, p, f, &ack, []pa.Sample{s(1, 1000)})
	if got := readWAL3(t, c); len(got.records) != 1 || len(got.samples) != 0 {
		t.Fatalf("%d records, %d samples after the refused page", len(got.records), len(got.samples))
	}
	next := []pa.Sample{s(2, 5)}
	if collect3(t, c, p, f, &ack, next) != 0 {
		t.Fatal("a reset")
	}
	sameSamples(t, "WAL", next, readWAL3(t, c).samples)
	if q := quarantined(t, c); len(q) != 1 || q[0].Code != quarantine.CodeInvalid {
		t.Fatalf("quarantine %+v", q)
	}
}
