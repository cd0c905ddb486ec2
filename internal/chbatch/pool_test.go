package chbatch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/holdfast/holdfast/internal/chtest"
)

var dbSeq atomic.Int64

// newTable opens a connection and creates a table t (n UInt64, s String) in
// a database of the test's own.
func newTable(t testing.TB) (driver.Conn, string) {
	t.Helper()
	addr := chtest.Addr(t)
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr},
		DialTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	db := fmt.Sprintf("chbatch_%d_%d", time.Now().UnixNano(), dbSeq.Add(1))
	ctx := context.Background()
	for _, q := range []string{
		"CREATE DATABASE " + db,
		"CREATE TABLE " + db + ".t (n UInt64, s String) ENGINE = Memory",
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	return conn, db
}

// rowsOf is n rows numbered from first, each with its number as a string.
func rowsOf(first, n int) []any {
	ns := make([]uint64, n)
	ss := make([]string, n)
	for i := range ns {
		ns[i] = uint64(first + i)
		ss[i] = fmt.Sprint(first + i)
	}
	return []any{ns, ss}
}

// tableSummary is count(), sum(n), uniqExact(n) and whether every s is n.
func tableSummary(t *testing.T, conn driver.Conn, db string) (count, sum, uniq uint64, matching bool) {
	t.Helper()
	var bad uint64
	row := conn.QueryRow(context.Background(),
		"SELECT count(), sum(n), uniqExact(n), countIf(s != toString(n)) FROM "+db+".t")
	if err := row.Scan(&count, &sum, &uniq, &bad); err != nil {
		t.Fatal(err)
	}
	return count, sum, uniq, bad == 0
}

// TestReusedBatchInsertsEachRowOnce sends one statement several times with
// rows of different sizes: every row lands once, nothing of an earlier
// INSERT is sent again, and one batch is kept.
func TestReusedBatchInsertsEachRowOnce(t *testing.T) {
	conn, db := newTable(t)
	p := NewPool(conn, nil)
	ctx := context.Background()
	q := "INSERT INTO " + db + ".t (n, s)"
	sizes := []int{50_000, 3, 20_000, 70_000, 1}
	first, wantSum := 0, uint64(0)
	for _, n := range sizes {
		if err := p.Send(ctx, q, rowsOf(first, n)); err != nil {
			t.Fatalf("send of %d rows: %v", n, err)
		}
		for i := first; i < first+n; i++ {
			wantSum += uint64(i)
		}
		first += n
		if p.Kept() != 1 {
			t.Fatalf("kept %d batches, want 1", p.Kept())
		}
	}
	if r := p.Reuses(); r != uint64(len(sizes)-1) {
		t.Fatalf("%d sends ran on a kept batch, want %d", r, len(sizes)-1)
	}
	count, sum, uniq, matching := tableSummary(t, conn, db)
	if count != uint64(first) || uniq != uint64(first) || sum != wantSum || !matching {
		t.Fatalf("table has %d rows (%d distinct, sum %d, columns matching %v), want %d rows, sum %d",
			count, uniq, sum, matching, first, wantSum)
	}
}

// allocatedBy is the bytes the process allocated while send ran.
func allocatedBy(t *testing.T, send func() error) uint64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := send(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestReuseAllocatesNoColumns: once its columns are grown, a kept batch's
// INSERT allocates a small part of what a batch prepared afresh does.
func TestReuseAllocatesNoColumns(t *testing.T) {
	conn, db := newTable(t)
	p := NewPool(conn, nil)
	ctx := context.Background()
	q := "INSERT INTO " + db + ".t (n, s)"
	data := rowsOf(0, 100_000)
	if err := p.Send(ctx, q, data); err != nil { // grows the kept columns
		t.Fatal(err)
	}
	once := allocatedBy(t, func() error { return SendOnce(ctx, conn, q, data) })
	reused := allocatedBy(t, func() error { return p.Send(ctx, q, data) })
	t.Logf("100,000 rows: %d bytes allocated prepared afresh, %d reused", once, reused)
	// The columns of 100,000 rows are 1.3 MB of data, grown through every
	// power of two below: prepared afresh allocates about twice that; a
	// reused batch only the 100 KB of nulls clickhouse-go makes per column.
	if reused*4 > once {
		t.Fatalf("a reused batch allocated %d bytes, more than a quarter of the %d a fresh one did", reused, once)
	}
}

// TestBatchOfAnEndedContextIsNotReused: a batch is prepared again for a new
// context, so an ended one (whose watchdog would close the connection) does
// not fail the next INSERT.
func TestBatchOfAnEndedContextIsNotReused(t *testing.T) {
	conn, db := newTable(t)
	p := NewPool(conn, nil)
	q := "INSERT INTO " + db + ".t (n, s)"
	ctx1, cancel := context.WithCancel(context.Background())
	if err := p.Send(ctx1, q, rowsOf(0, 10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := p.Send(context.Background(), q, rowsOf(10, 10)); err != nil {
		t.Fatalf("send with a new context after the first ended: %v", err)
	}
	if count, _, uniq, _ := tableSummary(t, conn, db); count != 20 || uniq != 20 {
		t.Fatalf("table has %d rows (%d distinct), want 20", count, uniq)
	}
}

// TestFailuresDropTheBatch: a column that does not take its data, or a
// table gone, fails the INSERT with its stage and drops the batch; the next
// Send prepares afresh (and so sees a table made again).
func TestFailuresDropTheBatch(t *testing.T) {
	conn, db := newTable(t)
	p := NewPool(conn, nil)
	ctx := context.Background()
	q := "INSERT INTO " + db + ".t (n, s)"
	if err := p.Send(ctx, q, rowsOf(0, 10)); err != nil {
		t.Fatal(err)
	}

	// Column 0 takes its rows, column 1 refuses: the batch holds a
	// half-appended row set, which must never be sent.
	err := p.Send(ctx, q, []any{[]uint64{1000, 1001}, []float64{1, 2}})
	var e *Error
	if !errors.As(err, &e) || e.Stage != StageAppend || e.Column != 1 || !e.Reused {
		t.Fatalf("send of floats into String: %v, want an append error at column 1 of a kept batch", err)
	}
	if p.Kept() != 0 {
		t.Fatalf("kept %d batches after a failed append, want 0", p.Kept())
	}
	if err := p.Send(ctx, q, rowsOf(10, 10)); err != nil {
		t.Fatalf("send after a failed append: %v", err)
	}
	if count, sum, _, matching := tableSummary(t, conn, db); count != 20 || sum != 190 || !matching {
		t.Fatalf("after a failed append the table has %d rows, sum %d (matching %v), want 20 rows, sum 190", count, sum, matching)
	}

	if err := conn.Exec(ctx, "DROP TABLE "+db+".t"); err != nil {
		t.Fatal(err)
	}
	err = p.Send(ctx, q, rowsOf(20, 10))
	var ex *clickhouse.Exception
	if !errors.As(err, &e) || e.Stage != StageSend || !e.Reused || !errors.As(err, &ex) || ex.Code != 60 {
		t.Fatalf("send into a dropped table: %v, want UNKNOWN_TABLE (60) at the send of a kept batch", err)
	}
	if p.Kept() != 0 {
		t.Fatalf("kept %d batches after a failed send, want 0", p.Kept())
	}
	if err := conn.Exec(ctx, "CREATE TABLE "+db+".t (n UInt64, s String) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	if err := p.Send(ctx, q, rowsOf(30, 10)); err != nil {
		t.Fatalf("send into the table made again: %v", err)
	}
	err = SendOnce(ctx, conn, "INSERT INTO "+db+".gone (n, s)", rowsOf(0, 1))
	if !errors.As(err, &e) || e.Stage != StagePrepare || e.Reused {
		t.Fatalf("a fresh batch into a missing table: %v, want a prepare error, not reused", err)
	}
	if count, sum, _, _ := tableSummary(t, conn, db); count != 10 || sum != 345 {
		t.Fatalf("table made again has %d rows, sum %d, want 10 rows, sum 345", count, sum)
	}
}

// TestIdleBatchesAreDropped: a statement not sent in MaxIdle Sends is
// dropped, so tables written once do not keep their columns.
func TestIdleBatchesAreDropped(t *testing.T) {
	conn, db := newTable(t)
	if err := conn.Exec(context.Background(), "CREATE TABLE "+db+".u (n UInt64, s String) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	p := NewPool(conn, nil)
	ctx := context.Background()
	qt, qu := "INSERT INTO "+db+".t (n, s)", "INSERT INTO "+db+".u (n, s)"
	if err := p.Send(ctx, qu, rowsOf(0, 1)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < MaxIdle-1; i++ {
		if err := p.Send(ctx, qt, rowsOf(i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if p.Kept() != 2 {
		t.Fatalf("kept %d batches after %d sends of another statement, want 2", p.Kept(), MaxIdle-1)
	}
	if err := p.Send(ctx, qt, rowsOf(MaxIdle, 1)); err != nil {
		t.Fatal(err)
	}
	if p.Kept() != 1 {
		t.Fatalf("kept %d batches after %d sends of another statement, want 1", p.Kept(), MaxIdle)
	}
}

// TestConcurrentSendsOfOneStatement: Sends of one statement at once each
// insert their own rows (run with -race).
func TestConcurrentSendsOfOneStatement(t *testing.T) {
	conn, db := newTable(t)
	p := NewPool(conn, nil)
	ctx := context.Background()
	q := "INSERT INTO " + db + ".t (n, s)"
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				if err := p.Send(ctx, q, rowsOf((g*5+i)*1000, 1000)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if count, _, uniq, matching := tableSummary(t, conn, db); count != 20_000 || uniq != 20_000 || !matching {
		t.Fatalf("table has %d rows (%d distinct, matching %v), want 20,000", count, uniq, matching)
	}
	if p.Kept() != 1 {
		t.Fatalf("kept %d batches of one statement, want 1", p.Kept())
	}
}

// TestAlteredTableIsNoticedAfterMaxAge: a kept block sends the column types
// it was prepared with, and ClickHouse converts them into a table altered
// since (here String into UInt64) without an error. Once the batch is
// MaxAge old the next Send reads the table's columns again, and the client
// refuses the conversion.
func TestAlteredTableIsNoticedAfterMaxAge(t *testing.T) {
	conn, db := newTable(t)
	p := NewPool(conn, nil)
	now := time.Unix(1_700_000_000, 0)
	p.now = func() time.Time { return now }
	ctx := context.Background()
	q := "INSERT INTO " + db + ".t (n, s)"
	if err := p.Send(ctx, q, rowsOf(0, 10)); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{"DROP TABLE " + db + ".t", "CREATE TABLE " + db + ".t (n UInt64, s UInt64) ENGINE = Memory"} {
		if err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(MaxAge - time.Millisecond)
	if err := p.Send(ctx, q, rowsOf(10, 10)); err != nil {
		// Not what this test is about, but what it relies on: if the
		// server ever refuses the kept block, the age bound is moot.
		t.Fatalf("the kept batch before MaxAge: %v (the server converted it before)", err)
	}
	now = now.Add(time.Millisecond)
	err := p.Send(ctx, q, rowsOf(20, 10))
	var e *Error
	if !errors.As(err, &e) || e.Stage != StageAppend || e.Column != 1 {
		t.Fatalf("send MaxAge after the prepare, into an altered column: %v, want an append error at column 1", err)
	}
}

// TestSendInBlocksInsertsEachRowOnceInOnePart: an INSERT sent in blocks
// lands every row once, and the server squashes its blocks into one part
// as it would one block (merges are stopped, so parts are as inserted).
func TestSendInBlocksInsertsEachRowOnceInOnePart(t *testing.T) {
	conn, db := newTable(t)
	ctx := context.Background()
	for _, q := range []string{
		"CREATE TABLE " + db + ".m (n UInt64, s String) ENGINE = MergeTree ORDER BY n",
		"SYSTEM STOP MERGES " + db + ".m",
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		rows, block int
	}{{10_000, 1_000}, {10_001, 1_000}, {999, 1_000}, {5, 0}, {1, 1}} {
		if err := SendInBlocks(ctx, conn, "INSERT INTO "+db+".t (n, s)", rowsOf(0, tc.rows), tc.block); err != nil {
			t.Fatalf("%d rows in blocks of %d: %v", tc.rows, tc.block, err)
		}
		count, sum, uniq, matching := tableSummary(t, conn, db)
		if want := uint64(tc.rows); count != want || uniq != want || sum != want*(want-1)/2 || !matching {
			t.Fatalf("%d rows in blocks of %d: table has %d rows (%d distinct, sum %d, matching %v)",
				tc.rows, tc.block, count, uniq, sum, matching)
		}
		if err := conn.Exec(ctx, "TRUNCATE TABLE "+db+".t"); err != nil {
			t.Fatal(err)
		}
	}
	if err := SendInBlocks(ctx, conn, "INSERT INTO "+db+".m (n, s)", rowsOf(0, 50_000), 4_096); err != nil {
		t.Fatal(err)
	}
	var parts, rows uint64
	q := "SELECT count(), sum(rows) FROM system.parts WHERE database = '" + db + "' AND table = 'm' AND active"
	if err := conn.QueryRow(ctx, q).Scan(&parts, &rows); err != nil {
		t.Fatal(err)
	}
	if parts != 1 || rows != 50_000 {
		t.Fatalf("13 blocks of one INSERT made %d parts of %d rows, want 1 of 50,000", parts, rows)
	}
}

// TestSendInBlocksGrowsColumnsToOneBlock: in blocks, an INSERT allocates a
// small part of what one block of all its rows does.
func TestSendInBlocksGrowsColumnsToOneBlock(t *testing.T) {
	conn, db := newTable(t)
	ctx := context.Background()
	q := "INSERT INTO " + db + ".t (n, s)"
	data := rowsOf(0, 200_000)
	whole := allocatedBy(t, func() error { return SendOnce(ctx, conn, q, data) })
	blocks := allocatedBy(t, func() error { return SendInBlocks(ctx, conn, q, data, 8_192) })
	t.Logf("200,000 rows: %d bytes allocated in one block, %d in blocks of 8,192", whole, blocks)
	if blocks*4 > whole {
		t.Fatalf("in blocks an INSERT allocated %d bytes, more than a quarter of one block's %d", blocks, whole)
	}
}

// TestSendInBlocksRefusesMismatchedColumns: columns of different lengths,
// or one that is not a slice, are the caller's error (not an *Error, which
// the forwarder reads as the server's or the schema's answer); a column
// count the server's header does not have is an append-stage *Error.
// Nothing is inserted either way.
func TestSendInBlocksRefusesMismatchedColumns(t *testing.T) {
	conn, db := newTable(t)
	ctx := context.Background()
	q := "INSERT INTO " + db + ".t (n, s)"
	for name, data := range map[string][]any{
		"lengths":   {[]uint64{1, 2, 3}, []string{"1", "2"}},
		"not slice": {uint64(1), []string{"1"}},
	} {
		var e *Error
		if err := SendInBlocks(ctx, conn, q, data, 2); err == nil || errors.As(err, &e) {
			t.Errorf("%s: got %v, want an error that is not an *Error", name, err)
		}
	}
	var e *Error
	if err := SendInBlocks(ctx, conn, q, []any{[]uint64{1, 2, 3}}, 2); !errors.As(err, &e) || e.Stage != StageAppend {
		t.Errorf("one column of two: got %v, want an append-stage *Error", err)
	}
	if count, _, _, _ := tableSummary(t, conn, db); count != 0 {
		t.Fatalf("%d rows inserted from refused data", count)
	}
}

// shortBlocks is Blocks whose block starting at row 4 is one row short:
// the caller's bug.
type shortBlocks struct{ n int }

func (b shortBlocks) Len() int { return b.n }

func (b shortBlocks) Block(lo, hi int) []any {
	if lo == 4 {
		hi--
	}
	n, s := make([]uint64, 0, hi-lo), make([]string, 0, hi-lo)
	for i := lo; i < hi; i++ {
		n, s = append(n, uint64(i)), append(s, fmt.Sprint(i))
	}
	return []any{n, s}
}

// TestSendBlocksRefusesAShortBlock: a block whose columns do not have the
// rows asked for stops the INSERT with an error that is not an *Error
// (the forwarder would read an *Error as the server's or the schema's
// answer), and neither it nor anything after it is sent.
func TestSendBlocksRefusesAShortBlock(t *testing.T) {
	conn, db := newTable(t)
	ctx := context.Background()
	var e *Error
	if err := SendBlocks(ctx, conn, "INSERT INTO "+db+".t (n, s)", shortBlocks{n: 7}, 2); err == nil || errors.As(err, &e) {
		t.Fatalf("got %v, want an error that is not an *Error", err)
	}
	if err := SendBlocks(ctx, conn, "INSERT INTO "+db+".t (n, s)", shortBlocks{n: 3}, 2); err != nil {
		t.Fatalf("whole blocks: %v", err)
	}
	// ClickHouse 18.16 may keep blocks flushed before an abort (see
	// TestSendInBlocksStopsAtAnEndedContext); what must hold is that the
	// short block and anything after it never arrived.
	rows, err := conn.Query(ctx, "SELECT n FROM "+db+".t WHERE n >= 4")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if rows.Next() {
		t.Fatal("rows of the short block or after it were inserted")
	}
}

// TestSendInBlocksStopsAtAnEndedContext: a context ended after the
// INSERT's first block stops it before the second is sent. The blocks
// already sent may stay (ClickHouse 18.16 keeps them when the connection
// closes mid-INSERT), never more.
func TestSendInBlocksStopsAtAnEndedContext(t *testing.T) {
	conn, db := newTable(t)
	if err := conn.Exec(context.Background(), "CREATE TABLE "+db+".m (n UInt64, s String) ENGINE = MergeTree ORDER BY n"); err != nil {
		t.Fatal(err)
	}
	q := "INSERT INTO " + db + ".m (n, s)"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := SendInBlocks(ctx, cancelOnFlush{conn, cancel}, q, rowsOf(0, 10_000), 1_000)
	var e *Error
	if !errors.As(err, &e) || e.Stage != StageSend || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want a send-stage *Error wrapping context.Canceled", err)
	}
	time.Sleep(200 * time.Millisecond) // the server notices the closed connection
	var count uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+db+".m").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count > 1_000 {
		t.Fatalf("%d rows inserted by an INSERT aborted before its second block of 1,000", count)
	}
	t.Logf("%d rows of the first block kept after the abort", count)
}

// arrayTable creates table a (n UInt64, f Array(Float64), u Array(UInt64),
// i Array(Int64)) in db.
func arrayTable(t testing.TB, conn driver.Conn, db string) string {
	t.Helper()
	if err := conn.Exec(context.Background(), "CREATE TABLE "+db+".a (n UInt64, f Array(Float64), u Array(UInt64), i Array(Int64)) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	return "INSERT INTO " + db + ".a (n, f, u, i)"
}

// arrayRows is n rows whose arrays have n%5 elements (none for n%5 == 0,
// some rows nil), with float bit patterns a cast would change: NaN with a
// payload, -0, ±Inf, subnormals.
func arrayRows(n int) []any {
	specials := []float64{math.Float64frombits(0x7ff8_0000_dead_beef), math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64}
	ns, fs, us, is := make([]uint64, n), make([][]float64, n), make([][]uint64, n), make([][]int64, n)
	for r := range n {
		ns[r] = uint64(r)
		if r%7 == 3 {
			continue // nil rows: empty arrays
		}
		for e := range r % 5 {
			fs[r] = append(fs[r], specials[(r+e)%len(specials)])
			us[r] = append(us[r], math.MaxUint64-uint64(r+e))
			is[r] = append(is[r], math.MinInt64+int64(r+e))
		}
	}
	return []any{ns, fs, us, is}
}

// TestArrayColumnsRoundTrip: rows of Array columns given as [][]T (the
// path that skips clickhouse-go's reflection) land exactly: lengths, empty
// and nil rows, every bit of every float, the integers' extremes.
func TestArrayColumnsRoundTrip(t *testing.T) {
	conn, db := newTable(t)
	q := arrayTable(t, conn, db)
	ctx := context.Background()
	data := arrayRows(2_000)
	if err := SendInBlocks(ctx, conn, q, data, 300); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "SELECT n, f, u, i FROM "+db+".a ORDER BY n")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	ns, fs, us, is := data[0].([]uint64), data[1].([][]float64), data[2].([][]uint64), data[3].([][]int64)
	got := 0
	for ; rows.Next(); got++ {
		var n uint64
		var f []float64
		var u []uint64
		var i []int64
		if err := rows.Scan(&n, &f, &u, &i); err != nil {
			t.Fatal(err)
		}
		if n != ns[got] || len(f) != len(fs[got]) || !slices.Equal(u, us[got]) && len(u)+len(us[got]) > 0 || !slices.Equal(i, is[got]) && len(i)+len(is[got]) > 0 {
			t.Fatalf("row %d: %d %v %v %v, want %d %v %v %v", got, n, f, u, i, ns[got], fs[got], us[got], is[got])
		}
		for e := range f {
			if math.Float64bits(f[e]) != math.Float64bits(fs[got][e]) {
				t.Fatalf("row %d element %d: bits %#x, want %#x", got, e, math.Float64bits(f[e]), math.Float64bits(fs[got][e]))
			}
		}
	}
	if err := rows.Err(); err != nil || got != len(ns) {
		t.Fatalf("read %d rows (%v), want %d", got, err, len(ns))
	}
}

// BenchmarkAppendArrayColumns compares appending Array columns' rows
// through clickhouse-go's Append (reflection per element) with the typed
// rows appendColumn hands AppendRow.
func BenchmarkAppendArrayColumns(b *testing.B) {
	conn, db := newTable(b)
	q := arrayTable(b, conn, db)
	data := arrayRows(10_000)
	for _, bc := range []struct {
		name   string
		append func(column.Interface, any) error
	}{
		{"clickhouse-go", func(c column.Interface, d any) error { _, err := c.Append(d); return err }},
		{"typed rows", appendColumn},
	} {
		b.Run(bc.name, func(b *testing.B) {
			batch, err := conn.PrepareBatch(context.Background(), q)
			if err != nil {
				b.Fatal(err)
			}
			defer batch.Abort()
			cols := batch.Columns()
			b.ReportAllocs()
			for b.Loop() {
				for i, d := range data {
					if err := bc.append(cols[i], d); err != nil {
						b.Fatal(err)
					}
				}
				for _, c := range cols {
					c.Reset()
				}
			}
		})
	}
}

// cancelOnFlush is a connection whose batches end a context once their
// first block is sent.
type cancelOnFlush struct {
	driver.Conn
	cancel context.CancelFunc
}

func (c cancelOnFlush) PrepareBatch(ctx context.Context, q string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	b, err := c.Conn.PrepareBatch(ctx, q, opts...)
	return flushCancels{b, c.cancel}, err
}

type flushCancels struct {
	driver.Batch
	cancel context.CancelFunc
}

func (b flushCancels) Flush() error {
	err := b.Batch.Flush()
	b.cancel()
	return err
}
