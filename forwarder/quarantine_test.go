package forwarder

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
)

// TestFullQuarantineHoldsTheForwarder: with the shared quarantine at its
// bound, a record the forwarder cannot deliver is not dropped. The forwarder
// holds at it (the checkpoint stays before it, so the WAL keeps it and
// everything after it), says why in its status, and once an operator frees
// room it quarantines the record and delivers every good record: nothing is
// lost.
func TestFullQuarantineHoldsTheForwarder(t *testing.T) {
	e := newEnv(t, "")
	good := sampletest.NewFleet(5).Append(nil, 600, 1_700_000_000_000_000_000)
	e.appendPages(good[:300], 100)
	bad := good[0]
	bad.Metric.Name = "Bad-Name"
	var badIdx []uint64
	for i := 0; i < 3; i++ {
		idx, err := e.wal.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: pa.AppendPageRecord(nil, "p", "i", []pa.Sample{bad})})
		if err != nil {
			t.Fatal(err)
		}
		badIdx = append(badIdx, idx)
	}
	e.appendPages(good[300:], 100)
	q, err := quarantine.Open(e.state, quarantine.Options{BudgetBytes: 400})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	opts := e.options()
	opts.Quarantine = q
	f, _ := e.start(opts)

	// The first bad record fits, the second does not: the forwarder
	// holds there, whatever time it is given.
	ctx, cancel := context.WithCancel(context.Background())
	flushed := make(chan error, 1)
	go func() { flushed <- f.Flush(ctx) }()
	for f.Status().ConsecutiveFailures < 3 {
		select {
		case err := <-flushed:
			t.Fatalf("Flush returned (%v) with a record kept nowhere: status %+v, quarantine %+v", err, f.Status(), q.Stats())
		case <-time.After(10 * time.Millisecond):
		}
	}
	st, fs := q.Stats(), f.Status()
	if !st.Full || st.Records != 1 || st.Overflow != 0 {
		t.Fatalf("quarantine %+v: want 1 record kept, none counted as overflow", st)
	}
	if fs.CheckpointIndex >= badIdx[1] || fs.QuarantinedRecords != 1 {
		t.Fatalf("status %+v: the checkpoint passed record %d, which is kept nowhere", fs, badIdx[1])
	}
	if first := e.wal.Stats().FirstIndex; first > badIdx[1] {
		t.Fatalf("WAL truncated through %d, past the held record %d", first-1, badIdx[1])
	}
	select {
	case err := <-flushed:
		t.Fatalf("Flush returned %v while a record waits for room", err)
	default:
	}

	// The operator frees room, one entry at a time: the forwarder resumes
	// and the waiting Flush returns.
	for done := false; !done; {
		if q.Stats().Full {
			page, _, err := q.List(0, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 0 {
				if err := q.Delete([]uint64{page[0].ID}); err != nil {
					t.Fatal(err)
				}
			}
		}
		select {
		case err := <-flushed:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	e.flush(f, 60*time.Second)
	if fs := f.Status(); fs.CheckpointIndex != e.wal.Stats().LastIndex || fs.QuarantinedRecords != 3 || fs.ConsecutiveFailures != 0 {
		t.Fatalf("status %+v, WAL last %d: want all 3 bad records quarantined and everything checkpointed", fs, e.wal.Stats().LastIndex)
	}
	if st := q.Stats(); st.Overflow != 0 {
		t.Fatalf("quarantine %+v: nothing should count as overflow", st)
	}
	if n := e.count(true); n != uint64(len(good)) {
		t.Fatalf("ClickHouse holds %d samples, want %d", n, len(good))
	}
}

// TestPutAllIsAllOrNothing: the forwarder's put never stores part of what
// it was given, never counts overflow, and reports the store full.
func TestPutAllIsAllOrNothing(t *testing.T) {
	e := newEnv(t, "")
	q, err := quarantine.Open(e.state, quarantine.Options{BudgetBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	es := []quarantine.Entry{{Kind: quarantine.KindRecord, Payload: make([]byte, 100)}, {Kind: quarantine.KindRecord, Payload: make([]byte, 100)}}
	if err := q.PutAll(es); !errors.Is(err, quarantine.ErrFull) {
		t.Fatalf("PutAll: %v, want ErrFull", err)
	}
	if st := q.Stats(); st.Entries != 0 || st.Overflow != 0 || !st.Full {
		t.Fatalf("stats %+v", st)
	}
}

// TestProducerLabelFromACorruptPayload: the producer id read from a record
// that may be corrupt is kept only when it looks like an id (a registry id
// or a static producer's URL), else "unknown": it becomes a log value and,
// through the store, a metric label.
func TestProducerLabelFromACorruptPayload(t *testing.T) {
	for id, ok := range map[string]bool{"sled-7.oxide": true, "http://127.0.0.1:9100": true, "": false,
		"a b": false, "\x00\xff": false, "ünïcode": false, string(make([]byte, 600)): false} {
		if producerLabel.MatchString(id) != ok {
			t.Errorf("%q: match %v, want %v", id, !ok, ok)
		}
	}
}
