package quarantine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

func TestReplayTakesWhatTheRulesNowAcceptAndKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, filepath.Join(dir, "state"))
	defer db.Close()
	s, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := wal.Open(filepath.Join(dir, "wal"), wal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	sample := func(note string, ts int64) pa.Sample {
		return pa.Sample{Target: pa.Named{Name: "t", Fields: []pa.Field{{Name: "note", Value: pa.StringValue(note)}}},
			Metric: pa.Named{Name: "m"}, TimestampNs: ts, Datum: pa.Datum{Type: pa.DatumF64, F64: 2}}
	}
	long, longer := sample(strings.Repeat("a", 2000), 1), sample(strings.Repeat("b", 9000), 2)
	entries := []Entry{
		{Kind: KindSample, Producer: "p", Incarnation: "i", Code: CodeInvalid, Reason: "too long", Payload: pa.AppendSamples(nil, []pa.Sample{long})},
		{Kind: KindSample, Producer: "p", Incarnation: "i", Code: CodeInvalid, Reason: "too long", Payload: pa.AppendSamples(nil, []pa.Sample{longer})},
		{Kind: KindRecord, WALIndex: 7, RecordType: uint8(wal.TypePage), Code: CodeRejected, Reason: "ClickHouse said no",
			Payload: pa.AppendPageRecord(nil, "q", "j", []pa.Sample{sample("ok", 3)})},
		{Kind: KindSample, Producer: "p", Code: CodeTooLarge, Reason: "never read"}, // no data
		{Kind: KindSample, Producer: "p", Code: CodeInvalid, Reason: "garbage", Payload: []byte{1, 2, 3}},
		{Kind: KindSample, Producer: "p", Incarnation: "i", Code: CodeSchema, Reason: "conflict", Payload: pa.AppendSamples(nil, []pa.Sample{sample("fine", 4)})},
	}
	if _, err := s.Put(entries); err != nil {
		t.Fatal(err)
	}
	rep, err := Replay(context.Background(), s, ReplayOptions{Limits: pa.Limits{MaxFieldStringLen: 4096}, Append: l.Append, IDs: []uint64{1, 2, 3, 4, 5, 6, 99}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replayed != 3 || rep.StillRefused != 2 || rep.NotReplayable != 1 || rep.Samples != 3 || len(rep.NotFound) != 1 || rep.NotFound[0] != 99 {
		t.Fatalf("report %+v", rep)
	}
	// In the WAL: the forwarder's record as it was, and the two samples of
	// producer p as one page record of p.
	r := l.NewReader(1)
	var got []pa.PageRecord
	for {
		_, rec, ok, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		var pr pa.PageRecord
		if err := pa.DecodePageRecord(rec.Payload, &pr); err != nil {
			t.Fatal(err)
		}
		got = append(got, pr)
	}
	if len(got) != 2 || got[0].Producer != "q" || got[1].Producer != "p" || got[1].Incarnation != "i" || len(got[1].Samples) != 2 ||
		got[1].Samples[0].TimestampNs != 1 || got[1].Samples[1].TimestampNs != 4 {
		t.Fatalf("WAL holds %+v", got)
	}
	left, _, _ := s.List(0, 10)
	if len(left) != 3 || left[0].ID != 2 || !strings.Contains(left[0].Reason, "replay refused it again") || left[2].Code != CodeMalformed {
		t.Fatalf("left %+v", left)
	}
	if st := s.Stats(); st.Entries != 3 || st.Records != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestReplayAppendErrors: a record the WAL refuses for good (over
// wal.MaxPayload) is kept as too_large and the replay goes on; an append
// that fails otherwise ends the replay, but the entries appended before it
// are removed (a second replay does not append them again) and the error is
// returned.
func TestReplayAppendErrors(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "state"))
	defer db.Close()
	s, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec := func(producer string, ts int64) Entry {
		smp := pa.Sample{Target: pa.Named{Name: "t"}, Metric: pa.Named{Name: "m"}, TimestampNs: ts, Datum: pa.Datum{Type: pa.DatumU64, Uint: 1}}
		return Entry{Kind: KindRecord, Producer: producer, RecordType: uint8(wal.TypePage), Code: CodeRejected, Reason: "no",
			Payload: pa.AppendPageRecord(nil, producer, "i", []pa.Sample{smp})}
	}
	smp := func(producer string, ts int64) Entry {
		x := pa.Sample{Target: pa.Named{Name: "t"}, Metric: pa.Named{Name: "m"}, TimestampNs: ts, Datum: pa.Datum{Type: pa.DatumU64, Uint: 1}}
		return Entry{Kind: KindSample, Producer: producer, Incarnation: "i", Code: CodeInvalid, Reason: "no", Payload: pa.AppendSamples(nil, []pa.Sample{x})}
	}
	if _, err := s.Put([]Entry{rec("a", 1), rec("huge", 2), rec("b", 3), smp("hugesample", 4), rec("fails", 5), rec("c", 6)}); err != nil {
		t.Fatal(err)
	}
	appended := map[string]int{}
	broken := true
	appendFn := func(_ context.Context, r wal.Record) (uint64, error) {
		var pr pa.PageRecord
		if err := pa.DecodePageRecord(r.Payload, &pr); err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(pr.Producer, "huge"):
			return 0, fmt.Errorf("%w: payload of %d bytes (must be 1..%d)", wal.ErrBadRecord, wal.MaxPayload+1, wal.MaxPayload)
		case pr.Producer == "fails" && broken:
			return 0, errors.New("disk on fire")
		}
		appended[pr.Producer]++
		return uint64(len(appended)), nil
	}
	rep, err := Replay(context.Background(), s, ReplayOptions{Append: appendFn})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("replay: %v, want the append error", err)
	}
	if rep.Replayed != 2 || rep.StillRefused != 1 || appended["a"] != 1 || appended["b"] != 1 {
		t.Fatalf("first replay: %+v, appended %v", rep, appended)
	}
	left, _, _ := s.List(0, 10)
	codes := map[string]string{}
	for _, e := range left {
		codes[e.Producer] = e.Code
	}
	if len(left) != 4 || codes["huge"] != CodeTooLarge || codes["hugesample"] != CodeInvalid || codes["fails"] != CodeRejected || codes["c"] != CodeRejected {
		t.Fatalf("left after the first replay: %v", codes)
	}
	broken = false
	rep, err = Replay(context.Background(), s, ReplayOptions{Append: appendFn})
	if err != nil || rep.Replayed != 2 || rep.StillRefused != 2 {
		t.Fatalf("second replay: %+v %v", rep, err)
	}
	left, _, _ = s.List(0, 10)
	for _, e := range left {
		if e.Code != CodeTooLarge {
			t.Fatalf("left after the second replay: %+v, want too_large", e)
		}
	}
	if appended["a"] != 1 || appended["b"] != 1 || appended["fails"] != 1 || appended["c"] != 1 {
		t.Fatalf("appended %v: each exactly once", appended)
	}
	if st := s.Stats(); st.Entries != 2 {
		t.Fatalf("stats %+v: the two too-large entries stay", st)
	}
}
