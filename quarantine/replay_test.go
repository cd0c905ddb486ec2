package quarantine

import (
	"context"
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
