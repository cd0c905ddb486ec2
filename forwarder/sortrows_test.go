package forwarder

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// sortCase is one row added to a measurementRows: a sample of one datum
// type under a name and key, and the row as one text (columns() of that
// row alone).
type sortCase struct {
	name  string
	key   uint64
	start int64
	ts    int64
	text  string
}

// TestMeasurementRowsSortByTheSortingKey: for every datum type (histograms
// and missing values included), rows added in random order come out of
// columns() in sorting-key order (name bytewise, key, start time, timestamp)
// with every column moved alike: each row's text is the text of the same
// sample's row built alone. A second columns() (a retried delivery) returns
// the same rows.
func TestMeasurementRowsSortByTheSortingKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"b:m", "a:z", "a:m", "ab:m", "b:"} // "b:" < "b:m", "a:z" > "a:m"
	keys := []uint64{0, 1, math.MaxUint64, 1 << 63, 42}
	byType := map[pa.DatumType][]pa.Sample{}
	for _, s := range sampletest.EveryDatumType(1) {
		byType[s.Datum.Type] = append(byType[s.Datum.Type], s)
	}
	for dt, samples := range byType {
		t.Run(dt.String(), func(t *testing.T) {
			var cases []sortCase
			m := &measurementRows{t: dt}
			for i := range 300 {
				s := samples[rng.IntN(len(samples))]
				s.TimestampNs = rng.Int64N(20) - 10 // ties in ts across keys, negatives
				if dt.HasStartTime() {
					s.Datum.StartTimeNs = rng.Int64N(3) - 1
				}
				distinctValue(&s.Datum, i)
				// Rows equal in (name, key, start, ts) are one sample sent
				// twice: they keep the order they came in (the sort is
				// stable), since ReplacingMergeTree keeps the last.
				c := sortCase{name: names[rng.IntN(len(names))], key: keys[rng.IntN(len(keys))], ts: s.TimestampNs, start: s.Datum.StartTimeNs}
				alone := &measurementRows{t: dt}
				alone.add(c.name, c.key, &s)
				c.text = rowTexts(alone.columns())[0]
				cases = append(cases, c)
				// Names as the forwarder holds them: one string per name
				// (interned), and now and then an equal copy.
				name := c.name
				if i%7 == 0 {
					name = strings.Clone(name)
				}
				m.add(name, c.key, &s)
			}
			slices.SortStableFunc(cases, func(a, b sortCase) int {
				return cmp.Or(strings.Compare(a.name, b.name), cmp.Compare(a.key, b.key),
					cmp.Compare(a.start*boolInt(dt.HasStartTime()), b.start*boolInt(dt.HasStartTime())), cmp.Compare(a.ts, b.ts))
			})
			want := make([]string, len(cases))
			for i, c := range cases {
				want[i] = c.text
			}
			if m.sorted() {
				t.Fatal("the rows were added in random order but sorted() says they are sorted")
			}
			got := rowTexts(m.columns())
			if !slices.Equal(got, want) {
				t.Fatalf("rows after sorting:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if !m.sorted() {
				t.Error("sorted() is false after columns()")
			}
			if again := rowTexts(m.columns()); !slices.Equal(again, want) {
				t.Errorf("a second columns() changed the rows:\n%s", strings.Join(again, "\n"))
			}
		})
	}
}

// distinctValue makes d's value row i's own (a datum not missing), so a
// column left behind by a sort shows: numbers from i, histograms with
// i-dependent bins, counts (of a different length than the bins for some
// rows) and statistics.
func distinctValue(d *pa.Datum, i int) {
	if d.Missing {
		return
	}
	switch d.Type {
	case pa.DatumBool:
		d.Bool = i%2 == 0
	case pa.DatumI8, pa.DatumI16, pa.DatumI32, pa.DatumI64, pa.DatumCumulativeI64:
		d.Int = int64(i%100 - 50)
	case pa.DatumU8, pa.DatumU16, pa.DatumU32, pa.DatumU64, pa.DatumCumulativeU64:
		d.Uint = uint64(i % 200)
	case pa.DatumF32, pa.DatumCumulativeF32:
		d.F32 = float32(i) / 3
	case pa.DatumF64, pa.DatumCumulativeF64:
		d.F64 = float64(i) / 3
	case pa.DatumString:
		d.Str = fmt.Sprint("s", i)
	case pa.DatumBytes:
		d.Bytes = []byte{byte(i), byte(i >> 8)}
	case pa.DatumHistogramI64:
		bins := make([]int64, 1+i%4)
		for b := range bins {
			bins[b] = int64(i + b)
		}
		d.HistI64 = &pa.Histogram[int64]{Bins: bins, Counts: histCounts(i), Min: int64(-i), Max: int64(i), Sum: int64(3 * i)}
	case pa.DatumHistogramU64:
		bins := make([]uint64, 1+i%4)
		for b := range bins {
			bins[b] = uint64(i + b)
		}
		d.HistU64 = &pa.Histogram[uint64]{Bins: bins, Counts: histCounts(i), Min: uint64(i), Max: uint64(2 * i), Sum: uint64(3 * i)}
	case pa.DatumHistogramF64:
		bins := make([]float64, 1+i%4)
		for b := range bins {
			bins[b] = float64(i+b) / 2
		}
		d.HistF64 = &pa.Histogram[float64]{Bins: bins, Counts: histCounts(i), Min: float64(-i), Max: float64(i), Sum: float64(i) / 7}
	}
}

// histCounts is row i's histogram counts: 1 to 3 of them, so that a row's
// counts and bins differ in number for most rows.
func histCounts(i int) []uint64 {
	c := make([]uint64, 1+i%3)
	for k := range c {
		c[k] = uint64(i*10 + k)
	}
	return c
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// rowTexts renders columns (as columns() returns them) one text per row:
// every column's value in that row, floats by their bits, pointers
// dereferenced ("nil" when NULL), arrays element by element.
func rowTexts(cols []any) []string {
	n := reflect.ValueOf(cols[0]).Len()
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for _, c := range cols {
			b.WriteString(valueText(reflect.ValueOf(c).Index(i)))
			b.WriteString("|")
		}
		out[i] = b.String()
	}
	return out
}

func valueText(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return "nil"
		}
		return valueText(v.Elem())
	case reflect.Float64:
		return fmt.Sprintf("%#x", math.Float64bits(v.Float()))
	case reflect.Float32:
		return fmt.Sprintf("%#x", math.Float32bits(float32(v.Float())))
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = valueText(v.Index(i))
		}
		return "[" + strings.Join(parts, " ") + "]"
	default:
		return fmt.Sprintf("%#v", v.Interface())
	}
}

// BenchmarkSortRows: sorting a 100,000-row block of one measurements table
// (8 names, random keys, one timestamp a row) as columns() does before a
// send; ns/op is per block.
func BenchmarkSortRows(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	const rows = 100_000
	names := []string{"vm:cpu_busy", "vm:cpu_idle", "vm:disk_read_bytes", "vm:disk_write_bytes", "vm:net_rx_bytes", "vm:net_tx_bytes", "vm:memory_used", "vm:latency"}
	src := &measurementRows{t: pa.DatumCumulativeU64}
	s := pa.Sample{Datum: pa.Datum{Type: pa.DatumCumulativeU64}}
	for i := range rows {
		s.TimestampNs, s.Datum.Uint = int64(i), uint64(i)
		src.add(names[i%len(names)], rng.Uint64(), &s)
	}
	m := &measurementRows{t: src.t}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		m.reset()
		m.names, m.keys = append(m.names, src.names...), append(m.keys, src.keys...)
		m.ts, m.start, m.missing = append(m.ts, src.ts...), append(m.start, src.start...), append(m.missing, src.missing...)
		m.uints = append(m.uints, src.uints...)
		b.StartTimer()
		m.sortRows()
	}
}

// TestServerFindsBlocksSorted: against the real server, the forwarder's
// measurement and fields INSERTs (UUID fields aside) arrive sorted by the
// tables' sorting keys, so the server
// skips its own sort (profile event MergeTreeDataWriterBlocksAlreadySorted,
// one per block; the server counts a block of one row as sorted, so every
// table here gets many rows, added in a shuffled order). The counter is the
// server's: tests running beside this one can only add to it, never hide a
// block of ours that was not sorted unless they insert sorted blocks in the
// same moment. Every sample is then read back once.
func TestServerFindsBlocksSorted(t *testing.T) {
	e := newEnv(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := EnsureSchema(ctx, e.conn, e.db); err != nil {
		t.Fatal(err)
	}
	samples := shuffledFleet(50, 1100)
	w := newWriter(e.conn, e.db, 1<<16)
	rs := newRowSet()
	if refused := w.addSamples(rs, samples, nil); len(refused) > 0 {
		t.Fatalf("%d samples refused", len(refused))
	}
	tables := 0
	for _, m := range rs.meas {
		if m != nil && len(m.keys) > 1 {
			tables++
			if m.sorted() {
				t.Fatalf("%v: rows sorted before the insert; the test needs them shuffled", m.t)
			}
		}
	}
	for _, f := range rs.fields {
		if f != nil && f.len() > 1 && f.t != pa.FieldUUID {
			tables++
		}
	}
	before := alreadySorted(ctx, t, e)
	if err := w.insert(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if got := alreadySorted(ctx, t, e) - before; got < uint64(tables) {
		t.Fatalf("the server found %d blocks sorted during the insert of %d tables' blocks", got, tables)
	}
	if n := e.count(true); n != uint64(len(samples)) {
		t.Fatalf("ClickHouse holds %d samples, want %d", n, len(samples))
	}
}

// shuffledFleet is n samples of a fleet of vms VMs in a fixed random order:
// rows that arrive unsorted, as a batch of several producers' records does.
func shuffledFleet(vms, n int) []pa.Sample {
	samples := sampletest.NewFleet(vms).Append(nil, n, 1_700_000_000_000_000_000)
	rand.New(rand.NewPCG(7, 8)).Shuffle(len(samples), func(i, j int) { samples[i], samples[j] = samples[j], samples[i] })
	return samples
}

func alreadySorted(ctx context.Context, t *testing.T, e *env) uint64 {
	return serverEvent(ctx, t, e, "MergeTreeDataWriterBlocksAlreadySorted")
}

// serverEvent is the server's count of a profile event since it started
// (system.events), 0 before the first.
func serverEvent(ctx context.Context, tb testing.TB, e *env, event string) uint64 {
	tb.Helper()
	var n uint64
	err := e.conn.QueryRow(ctx, "SELECT toUInt64(sum(value)) FROM system.events WHERE event = ?", event).Scan(&n)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestFieldRowsSortByTheSortingKey: fields rows of every field type but
// UUID (left to the server) come out of sortRows in their table's order
// (timeseries name, field name, value, key) with each row whole: its text
// is the text of the same row added alone. Values cover the extremes and
// the sign bit, and repeat, so rows tie on all but the key.
func TestFieldRowsSortByTheSortingKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	values := map[pa.FieldType][]pa.FieldValue{
		pa.FieldString: {pa.StringValue(""), pa.StringValue("a"), pa.StringValue("ab"), pa.StringValue("b"), pa.StringValue("\xff")},
		pa.FieldIPAddr: {pa.IPValue(netip.MustParseAddr("10.0.0.2")), pa.IPValue(netip.MustParseAddr("9.0.0.1")), pa.IPValue(netip.MustParseAddr("::1"))},
		pa.FieldBool:   {pa.BoolValue(false), pa.BoolValue(true)},
		pa.FieldI8:     {pa.I8Value(math.MinInt8), pa.I8Value(-1), pa.I8Value(0), pa.I8Value(math.MaxInt8)},
		pa.FieldI16:    {pa.I16Value(math.MinInt16), pa.I16Value(-1), pa.I16Value(1), pa.I16Value(math.MaxInt16)},
		pa.FieldI32:    {pa.I32Value(math.MinInt32), pa.I32Value(-1), pa.I32Value(1), pa.I32Value(math.MaxInt32)},
		pa.FieldI64:    {pa.I64Value(math.MinInt64), pa.I64Value(-1), pa.I64Value(1), pa.I64Value(math.MaxInt64)},
		pa.FieldU8:     {pa.U8Value(0), pa.U8Value(1), pa.U8Value(math.MaxUint8)},
		pa.FieldU16:    {pa.U16Value(0), pa.U16Value(256), pa.U16Value(math.MaxUint16)},
		pa.FieldU32:    {pa.U32Value(0), pa.U32Value(1 << 31), pa.U32Value(math.MaxUint32)},
		pa.FieldU64:    {pa.U64Value(0), pa.U64Value(1 << 63), pa.U64Value(math.MaxUint64)},
	}
	names := []string{"b:m", "a:z", "a:m", "ab:m"}
	fieldNames := []string{"sled", "project", "slot", "p"}
	keys := []uint64{0, 1, 1 << 63, math.MaxUint64}
	type fieldCase struct {
		name, field string
		value       pa.FieldValue
		key         uint64
		text        string
	}
	for ft, vals := range values {
		t.Run(ft.String(), func(t *testing.T) {
			f := &fieldRows{t: ft}
			var cases []fieldCase
			seen := map[string]bool{}
			for range 300 {
				c := fieldCase{name: names[rng.IntN(len(names))], field: fieldNames[rng.IntN(len(fieldNames))], value: vals[rng.IntN(len(vals))], key: keys[rng.IntN(len(keys))]}
				fld := pa.Field{Name: c.field, Value: c.value}
				alone := &fieldRows{t: ft}
				alone.add(c.name, c.key, &fld)
				c.text = fieldRowTexts(alone)[0]
				if seen[c.text] {
					continue
				}
				seen[c.text] = true
				cases = append(cases, c)
				f.add(c.name, c.key, &fld)
			}
			valueCmp := func(a, b pa.FieldValue) int {
				switch ft {
				case pa.FieldString:
					return strings.Compare(a.Str, b.Str)
				case pa.FieldIPAddr:
					return strings.Compare(a.IP.String(), b.IP.String()) // the column holds the text
				case pa.FieldBool:
					return cmp.Compare(boolInt(a.Bool), boolInt(b.Bool))
				case pa.FieldI8, pa.FieldI16, pa.FieldI32, pa.FieldI64:
					return cmp.Compare(a.Int, b.Int)
				default:
					return cmp.Compare(a.Uint, b.Uint)
				}
			}
			slices.SortFunc(cases, func(a, b fieldCase) int {
				return cmp.Or(strings.Compare(a.name, b.name), strings.Compare(a.field, b.field), valueCmp(a.value, b.value), cmp.Compare(a.key, b.key))
			})
			want := make([]string, len(cases))
			for i, c := range cases {
				want[i] = c.text
			}
			f.sortRows()
			if got := fieldRowTexts(f); !slices.Equal(got, want) {
				t.Fatalf("rows after sorting:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestKeepScratch: a sorter goes back to its pool unless it is over four
// times the rows it sorted and past 65,536 rows.
func TestKeepScratch(t *testing.T) {
	for _, c := range []struct {
		capacity, rows int
		keep           bool
	}{
		{1 << 16, 0, true},
		{1<<16 + 1, 0, false},
		{400_000, 100_000, true},
		{400_001, 100_000, false},
		{220_000, 5_000, false},
	} {
		if got := keepScratch(c.capacity, c.rows); got != c.keep {
			t.Errorf("keepScratch(%d, %d) = %v, want %v", c.capacity, c.rows, got, c.keep)
		}
	}
}
