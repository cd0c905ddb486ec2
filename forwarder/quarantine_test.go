package forwarder

import (
	"context"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
)

// TestFullQuarantineDoesNotStallTheForwarder: with the shared quarantine at
// its bound, a record the forwarder cannot deliver is counted and logged but
// not kept, and every good record after it is still delivered.
func TestFullQuarantineDoesNotStallTheForwarder(t *testing.T) {
	e := newEnv(t, "")
	good := sampletest.NewFleet(5).Append(nil, 600, 1_700_000_000_000_000_000)
	e.appendPages(good[:300], 100)
	bad := good[0]
	bad.Metric.Name = "Bad-Name"
	for i := 0; i < 3; i++ {
		if _, err := e.wal.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: pa.AppendPageRecord(nil, "p", "i", []pa.Sample{bad})}); err != nil {
			t.Fatal(err)
		}
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
	e.flush(f, 60*time.Second)
	st := q.Stats()
	if !st.Full || st.Records+st.Overflow != 3 || st.Overflow == 0 || st.Records == 0 {
		t.Fatalf("quarantine %+v: want 3 records, some kept and some not", st)
	}
	if fs := f.Status(); fs.CheckpointIndex != e.wal.Stats().LastIndex || fs.QuarantinedRecords != st.Records {
		t.Fatalf("status %+v, WAL last %d, quarantine %+v", fs, e.wal.Stats().LastIndex, st)
	}
	if n := e.count(true); n != uint64(len(good)) {
		t.Fatalf("ClickHouse holds %d samples, want %d", n, len(good))
	}
}
