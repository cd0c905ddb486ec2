package forwarder

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cockroachdb/pebble"

	"github.com/holdfast/holdfast/internal/chtest"
	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/quarantine"
	"github.com/holdfast/holdfast/wal"
)

// env is one forwarder's world: a WAL, a state store, a ClickHouse database.
type env struct {
	t     testing.TB
	addr  string
	db    string
	dir   string
	wal   *wal.Log
	state *pebble.DB
	conn  driver.Conn
	// cluster, when set, makes options() forward to that cluster.
	cluster string
	// record2, when set, makes appendPages write version 2 page records
	// (block v2), flagged verified when verified is set.
	record2, verified bool
}

func newEnv(t testing.TB, addr string) *env {
	t.Helper()
	if addr == "" {
		addr = chtest.Addr(t)
	}
	e := &env{t: t, addr: addr, db: fmt.Sprintf("test_%s_%d", strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name())), rand.Uint32()), dir: t.TempDir()}
	if len(e.db) > 60 {
		e.db = fmt.Sprintf("test_%d", rand.Uint64())
	}
	conn, err := Dial(addr, "default", "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e.conn = conn
	e.open()
	t.Cleanup(func() {
		e.close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+e.db)
		conn.Close()
	})
	return e
}

func (e *env) open() {
	var err error
	if e.wal, err = wal.Open(e.dir+"/wal", wal.Options{SegmentSize: 256 << 10}); err != nil {
		e.t.Fatal(err)
	}
	if e.state, err = state.Open(e.dir+"/state", nil); err != nil {
		e.t.Fatal(err)
	}
}

// reopenWAL closes the env's WAL and opens it again with opts (its
// segment and cache sizes, for tests that depend on them).
func (e *env) reopenWAL(opts wal.Options) {
	e.t.Helper()
	e.wal.Close()
	var err error
	if e.wal, err = wal.Open(e.dir+"/wal", opts); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) close() {
	if e.wal != nil {
		e.wal.Close()
		e.wal = nil
	}
	if e.state != nil {
		e.state.Close()
		e.state = nil
	}
}

func (e *env) options() Options {
	return Options{Addr: e.addr, Database: e.db, Cluster: e.cluster, FlushAge: 50 * time.Millisecond, BackoffMin: 20 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		SessionDir: e.dir + "/sessions"}
}

// appendPages writes samples as pages of pageSize samples.
func (e *env) appendPages(samples []pa.Sample, pageSize int) {
	e.t.Helper()
	for i := 0; i < len(samples); i += pageSize {
		page := samples[i:min(i+pageSize, len(samples))]
		payload := pa.AppendPageRecord(nil, "test", "inc-1", page)
		if e.record2 {
			payload = pa.AppendPageRecord2(nil, "test", "inc-1", e.verified, pa.AppendBlock2(nil, page))
		}
		if _, err := e.wal.Append(context.Background(), wal.Record{Type: wal.TypePage, Payload: payload}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// start runs a forwarder until the test ends; it returns the forwarder and a
// function that stops it and reports Run's error.
func (e *env) start(opts Options) (*Forwarder, func() error) {
	e.t.Helper()
	f, err := New(e.wal, e.state, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	stopped := false
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
			f.Close()
		}
		return runErr
	}
	e.t.Cleanup(func() { stop() })
	return f, stop
}

func (e *env) flush(f *Forwarder, timeout time.Duration) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := f.Flush(ctx); err != nil {
		e.t.Fatalf("Flush: %v (status %+v)", err, f.Status())
	}
}

// count returns the exact number of samples readers see (FINAL), summed over
// every measurements table.
func (e *env) count(final bool) uint64 {
	e.t.Helper()
	var total uint64
	for _, t := range pa.AllDatumTypes() {
		q := fmt.Sprintf("SELECT count() FROM %s.%s", e.db, MeasurementsTable(t))
		if final {
			q += " FINAL"
		}
		var n uint64
		if err := e.conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
			e.t.Fatalf("%s: %v", q, err)
		}
		total += n
	}
	return total
}

// readBack returns every datum stored in the database by timestamp, read
// with FINAL, rebuilt as producerapi values.
func (e *env) readBack() map[int64]pa.Datum {
	e.t.Helper()
	out := map[int64]pa.Datum{}
	for _, t := range pa.AllDatumTypes() {
		cols := measurementColumns(t)[2:] // timestamp_ns and the values
		q := fmt.Sprintf("SELECT %s FROM %s.%s FINAL", strings.Join(cols, ", "), e.db, MeasurementsTable(t))
		rows, err := e.conn.Query(context.Background(), q)
		if err != nil {
			e.t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			ts, d := scanDatum(e.t, rows, t)
			out[ts] = d
		}
		if err := rows.Err(); err != nil {
			e.t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

func scanDatum(t testing.TB, rows driver.Rows, dt pa.DatumType) (int64, pa.Datum) {
	var ts, start int64
	dests := []any{&ts}
	if dt.HasStartTime() {
		dests = append(dests, &start)
	}
	d := pa.Datum{Type: dt}
	var (
		u8p  *uint8
		i8p  *int8
		i16p *int16
		i32p *int32
		i64p *int64
		u16p *uint16
		u32p *uint32
		u64p *uint64
		f32p *float32
		f64p *float64
		strp *string
	)
	var binsI []int64
	var binsU []uint64
	var binsF []float64
	var counts []uint64
	var minI, maxI, sumI *int64
	var minU, maxU, sumU *uint64
	var minF, maxF, sumF *float64
	switch dt {
	case pa.DatumBool, pa.DatumU8:
		dests = append(dests, &u8p)
	case pa.DatumI8:
		dests = append(dests, &i8p)
	case pa.DatumI16:
		dests = append(dests, &i16p)
	case pa.DatumI32:
		dests = append(dests, &i32p)
	case pa.DatumI64, pa.DatumCumulativeI64:
		dests = append(dests, &i64p)
	case pa.DatumU16:
		dests = append(dests, &u16p)
	case pa.DatumU32:
		dests = append(dests, &u32p)
	case pa.DatumU64, pa.DatumCumulativeU64:
		dests = append(dests, &u64p)
	case pa.DatumF32, pa.DatumCumulativeF32:
		dests = append(dests, &f32p)
	case pa.DatumF64, pa.DatumCumulativeF64:
		dests = append(dests, &f64p)
	case pa.DatumString, pa.DatumBytes:
		dests = append(dests, &strp)
	case pa.DatumHistogramI64:
		dests = append(dests, &binsI, &counts, &minI, &maxI, &sumI)
	case pa.DatumHistogramU64:
		dests = append(dests, &binsU, &counts, &minU, &maxU, &sumU)
	case pa.DatumHistogramF64:
		dests = append(dests, &binsF, &counts, &minF, &maxF, &sumF)
	}
	if err := rows.Scan(dests...); err != nil {
		t.Fatalf("scan %v: %v", dt, err)
	}
	d.StartTimeNs = start
	present := func(p any) bool { return !reflect.ValueOf(p).IsNil() }
	switch dt {
	case pa.DatumBool:
		if d.Missing = !present(u8p); !d.Missing {
			d.Bool = *u8p == 1
		}
	case pa.DatumU8:
		if d.Missing = !present(u8p); !d.Missing {
			d.Uint = uint64(*u8p)
		}
	case pa.DatumI8:
		if d.Missing = !present(i8p); !d.Missing {
			d.Int = int64(*i8p)
		}
	case pa.DatumI16:
		if d.Missing = !present(i16p); !d.Missing {
			d.Int = int64(*i16p)
		}
	case pa.DatumI32:
		if d.Missing = !present(i32p); !d.Missing {
			d.Int = int64(*i32p)
		}
	case pa.DatumI64, pa.DatumCumulativeI64:
		if d.Missing = !present(i64p); !d.Missing {
			d.Int = *i64p
		}
	case pa.DatumU16:
		if d.Missing = !present(u16p); !d.Missing {
			d.Uint = uint64(*u16p)
		}
	case pa.DatumU32:
		if d.Missing = !present(u32p); !d.Missing {
			d.Uint = uint64(*u32p)
		}
	case pa.DatumU64, pa.DatumCumulativeU64:
		if d.Missing = !present(u64p); !d.Missing {
			d.Uint = *u64p
		}
	case pa.DatumF32, pa.DatumCumulativeF32:
		if d.Missing = !present(f32p); !d.Missing {
			d.F32 = *f32p
		}
	case pa.DatumF64, pa.DatumCumulativeF64:
		if d.Missing = !present(f64p); !d.Missing {
			d.F64 = *f64p
		}
	case pa.DatumString:
		if d.Missing = !present(strp); !d.Missing {
			d.Str = *strp
		}
	case pa.DatumBytes:
		if d.Missing = !present(strp); !d.Missing {
			d.Bytes = []byte(*strp)
		}
	case pa.DatumHistogramI64:
		if d.Missing = !present(minI); !d.Missing {
			d.HistI64 = &pa.Histogram[int64]{Bins: binsI, Counts: counts, Min: *minI, Max: *maxI, Sum: *sumI}
		}
	case pa.DatumHistogramU64:
		if d.Missing = !present(minU); !d.Missing {
			d.HistU64 = &pa.Histogram[uint64]{Bins: binsU, Counts: counts, Min: *minU, Max: *maxU, Sum: *sumU}
		}
	case pa.DatumHistogramF64:
		if d.Missing = !present(minF); !d.Missing {
			d.HistF64 = &pa.Histogram[float64]{Bins: binsF, Counts: counts, Min: *minF, Max: *maxF, Sum: *sumF}
		}
	}
	return ts, d
}

// sameDatum compares datums exactly: floats by their bits.
func sameDatum(a, b pa.Datum) bool {
	if math.Float64bits(a.F64) != math.Float64bits(b.F64) || math.Float32bits(a.F32) != math.Float32bits(b.F32) {
		return false
	}
	if a.HistF64 != nil && b.HistF64 != nil {
		x, y := a.HistF64, b.HistF64
		if len(x.Bins) != len(y.Bins) || !reflect.DeepEqual(x.Counts, y.Counts) {
			return false
		}
		for i := range x.Bins {
			if math.Float64bits(x.Bins[i]) != math.Float64bits(y.Bins[i]) {
				return false
			}
		}
		for _, p := range [][2]float64{{x.Min, y.Min}, {x.Max, y.Max}, {x.Sum, y.Sum}} {
			if math.Float64bits(p[0]) != math.Float64bits(p[1]) {
				return false
			}
		}
		a.HistF64, b.HistF64 = nil, nil
	}
	a.F64, b.F64, a.F32, b.F32 = 0, 0, 0, 0
	if a.Type == pa.DatumBytes && !a.Missing {
		if string(a.Bytes) != string(b.Bytes) {
			return false
		}
		a.Bytes, b.Bytes = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

var _ = netip.Addr{}

// quarantined lists the records the forwarder quarantined, oldest first,
// read from the state store.
func quarantined(db *pebble.DB) ([]QuarantinedRecord, error) {
	q, err := quarantine.Open(db, quarantine.Options{BudgetBytes: -1})
	if err != nil {
		return nil, err
	}
	defer q.Close()
	var out []QuarantinedRecord
	var after uint64
	for {
		page, more, err := q.List(after, 1000)
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			after = e.ID
			if e.Kind == quarantine.KindRecord {
				out = append(out, QuarantinedRecord{Index: e.WALIndex, TimeNs: e.TimeNs, Reason: e.Reason, Type: e.RecordType, Payload: e.Payload})
			}
		}
		if !more {
			return out, nil
		}
	}
}
