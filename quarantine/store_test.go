package quarantine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/state"
)

func openDB(t *testing.T, dir string) *pebble.DB {
	t.Helper()
	db, err := state.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func sampleEntry(producer, reason string, payload int) Entry {
	return Entry{Kind: KindSample, Producer: producer, Incarnation: "inc", Code: CodeInvalid, Reason: reason, Payload: bytes.Repeat([]byte{7}, payload)}
}

func TestPutGetListDeleteSurviveReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	db := openDB(t, dir)
	s, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := []Entry{sampleEntry("p1", "bad a", 10), sampleEntry("p2", "bad b", 20),
		{Kind: KindRecord, WALIndex: 42, RecordType: 1, Code: CodeRejected, Reason: "refused", Payload: []byte("rec")}}
	if over, err := s.Put(in); err != nil || len(over) != 0 {
		t.Fatalf("put: %v %v", over, err)
	}
	for i, e := range in {
		got, err := s.Get(e.ID)
		if err != nil || !reflect.DeepEqual(got, e) {
			t.Fatalf("entry %d: got %+v %v, want %+v", i, got, err, e)
		}
	}
	page, more, err := s.List(0, 2)
	if err != nil || !more || len(page) != 2 || page[0].ID != in[0].ID {
		t.Fatalf("list page 1: %v %v %v", page, more, err)
	}
	page, more, err = s.List(page[1].ID, 2)
	if err != nil || more || len(page) != 1 || page[0].ID != in[2].ID {
		t.Fatalf("list page 2: %v %v %v", page, more, err)
	}
	st := s.Stats()
	if err := s.Delete([]uint64{in[1].ID}); err != nil {
		t.Fatal(err)
	}
	in[0].Reason = "still bad"
	if err := s.Update(in[:1]); err != nil {
		t.Fatal(err)
	}
	st2 := s.Stats()
	if st2.Entries != 2 || st2.Samples != 1 || st2.Records != 1 || st2.Bytes >= st.Bytes {
		t.Fatalf("after delete: %+v (before %+v)", st2, st)
	}
	s.Close()
	db.Close()

	db = openDB(t, dir)
	defer db.Close()
	s, err = Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st3 := s.Stats(); st3.Entries != st2.Entries || st3.Bytes != st2.Bytes {
		t.Fatalf("reopened stats %+v, want %+v", st3, st2)
	}
	if got, err := s.Get(in[0].ID); err != nil || got.Reason != "still bad" {
		t.Fatalf("updated entry: %+v %v", got, err)
	}
	if _, err := s.Get(in[1].ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted entry: %v", err)
	}
	// Ids are not reused.
	e := []Entry{sampleEntry("p", "x", 1)}
	s.Put(e)
	if e[0].ID <= in[2].ID {
		t.Fatalf("new id %d reuses an old one (last %d)", e[0].ID, in[2].ID)
	}
}

func TestBudgetOverflowIsCountedAndLoud(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "state"))
	defer db.Close()
	reg := prometheus.NewRegistry()
	s, err := Open(db, Options{BudgetBytes: 1000, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var over []Entry
	for i := 0; i < 10; i++ {
		o, err := s.Put([]Entry{sampleEntry("p1", "bad", 200)})
		if err != nil {
			t.Fatal(err)
		}
		over = append(over, o...)
	}
	st := s.Stats()
	if !st.Full || st.Bytes > 1000 || st.Entries+uint64(len(over)) != 10 || st.Overflow != uint64(len(over)) || len(over) == 0 {
		t.Fatalf("stats %+v, %d overflowed", st, len(over))
	}
	if got := metricValue(t, reg, "holdfast_quarantine_overflow_total"); got != float64(len(over)) {
		t.Fatalf("overflow metric %v, want %d", got, len(over))
	}
	if metricValue(t, reg, "holdfast_quarantine_full") != 1 || metricValue(t, reg, "holdfast_quarantine_bytes") != float64(st.Bytes) {
		t.Fatal("full/bytes gauges not set")
	}
	all, _, _ := s.List(0, 100)
	if err := s.Delete(IDs(all)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Full || st.Bytes != 0 || st.Entries != 0 || metricValue(t, reg, "holdfast_quarantine_full") != 0 {
		t.Fatalf("after emptying: %+v", st)
	}
}

func TestMigratesForwarderEntries(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "state"))
	defer db.Close()
	// The layout of forwarder/quarantine.go before this package.
	v := binary.BigEndian.AppendUint64(nil, 123)
	v = append(v, 1)
	v = binary.BigEndian.AppendUint32(v, 7)
	v = append(v, "refused"...)
	v = append(v, "payload"...)
	if err := db.Set(binary.BigEndian.AppendUint64([]byte(legacyPrefix), 9), v, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	s, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	all, _, err := s.List(0, 10)
	if err != nil || len(all) != 1 {
		t.Fatalf("%v %v", all, err)
	}
	want := Entry{ID: 1, Kind: KindRecord, TimeNs: 123, Code: CodeRejected, Reason: "refused", WALIndex: 9, RecordType: 1, Payload: []byte("payload")}
	if !reflect.DeepEqual(all[0], want) {
		t.Fatalf("got %+v, want %+v", all[0], want)
	}
	if s.Stats().Records != 1 {
		t.Fatalf("stats %+v", s.Stats())
	}
}

func FuzzDecodeValue(f *testing.F) {
	f.Add(encodeValue(&Entry{Kind: KindSample, Producer: "p", Reason: "r", Payload: []byte{1, 2}}))
	f.Add(encodeValue(&Entry{Kind: KindRecord, WALIndex: 5, RecordType: 1}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeValue(1, b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// What decodes survives a round trip.
		again, err := decodeValue(1, encodeValue(&e))
		if err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("round trip: %+v %v, want %+v", again, err, e)
		}
	})
}

// metricValue reads the first series of a counter or gauge.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// TestIDsAreNeverReused: ids keep increasing after the store emptied and
// was reopened (a restarted collector), so an id never names two entries.
func TestIDsAreNeverReused(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	s, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	es := []Entry{{Kind: KindSample, Code: CodeInvalid}, {Kind: KindSample, Code: CodeInvalid}}
	if _, err := s.Put(es); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(IDs(es)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	if s, err = Open(db, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := []Entry{{Kind: KindSample, Code: CodeInvalid}}
	if _, err := s.Put(e); err != nil {
		t.Fatal(err)
	}
	if e[0].ID != 3 {
		t.Fatalf("id after emptying and reopening: %d, want 3", e[0].ID)
	}
}

// TestListHeadersAndListUpTo: a header listing reads no payload (only its
// length); a bounded listing stops at its byte bound, always with one entry.
func TestListHeadersAndListUpTo(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s, err := Open(db, Options{BudgetBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var es []Entry
	for i := 0; i < 5; i++ {
		es = append(es, Entry{Kind: KindRecord, Code: CodeRejected, Payload: make([]byte, 1000)})
	}
	if _, err := s.Put(es); err != nil {
		t.Fatal(err)
	}
	hs, more, err := s.ListHeaders(0, 10)
	if err != nil || more || len(hs) != 5 {
		t.Fatalf("headers: %d %v %v", len(hs), more, err)
	}
	for _, h := range hs {
		if h.Payload != nil || h.PayloadBytes != 1000 || ViewOf(&h, false).PayloadBytes != 1000 {
			t.Fatalf("header entry %+v", h)
		}
	}
	page, more, err := s.ListUpTo(0, 10, 2500)
	if err != nil || !more || len(page) != 2 {
		t.Fatalf("bounded: %d %v %v", len(page), more, err)
	}
	if page, _, _ = s.ListUpTo(0, 10, 1); len(page) != 1 || len(page[0].Payload) != 1000 {
		t.Fatalf("a bound below one entry still returns it: %d", len(page))
	}
}

// TestUpdatePastTheBudgetSetsFull: an Update with longer reasons can take
// the store to its bound; it then says it is full.
func TestUpdatePastTheBudgetSetsFull(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	s, err := Open(db, Options{BudgetBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	es := []Entry{{Kind: KindSample, Code: CodeInvalid, Reason: "short"}}
	if _, err := s.Put(es); err != nil || s.Stats().Full {
		t.Fatalf("%v %+v", err, s.Stats())
	}
	es[0].Reason = strings.Repeat("longer ", 40)
	if err := s.Update(es); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); !st.Full || st.Bytes < 200 {
		t.Fatalf("after an update past the budget: %+v", st)
	}
}
