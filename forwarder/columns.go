package forwarder

import (
	"math"
	"reflect"
	"slices"
	"sync/atomic"

	"github.com/google/uuid"

	pa "github.com/holdfast/holdfast/producerapi"
)

// rowSet is everything one delivery inserts, in column form: measurement
// rows per datum type, and the fields and schemas of timeseries not written
// before. Values are copied out of the decoded samples, which can then be
// dropped: a batch of 100,000 rows costs a few MiB, not the decoded pages.
// The forwarder keeps one rowSet for its batches and resets it after each
// delivery, so its column arrays are allocated once, not per batch.
type rowSet struct {
	meas    [pa.DatumHistogramF64 + 1]*measurementRows
	fields  [pa.FieldUUID + 1]*fieldRows
	schemas []pa.TimeseriesSchema
	newKeys map[uint64]uint32 // key -> fingerprint of its timeseries
	// newKeysPeak is the most keys newKeys held since it was made: a Go
	// map keeps its buckets when cleared (see reset).
	newKeysPeak int
	newSchemas  map[pa.SchemaKey]struct{}
	rows        int
	// fieldRows counts the fields rows of the timeseries new in this row
	// set: the first batches after a start define every timeseries, with
	// about five fields rows each, and a batch is cut on measurement and
	// fields rows together (weight) so those rows stay bounded too.
	fieldRows int
	// gen identifies this batch's contents to the series cache
	// (series.go): a cache entry whose gen equals it was admitted into this
	// row set already. It changes on every reset.
	gen uint64
}

// rowSetGen numbers row sets and their resets; 0 is never used, so a zero
// cache entry matches no row set. Touched by one goroutine per writer, but
// row sets of different writers (tests, Inserters) may be made concurrently.
var rowSetGen atomic.Uint64

func newRowSet() *rowSet {
	return &rowSet{newKeys: map[uint64]uint32{}, newSchemas: map[pa.SchemaKey]struct{}{}, gen: nextRowSetGen()}
}

// nextRowSetGen returns a new row set generation whose low 8 bits are not
// 0: session entries keep only those bits (sessEntry.gen), and a zero entry
// must match no row set.
func nextRowSetGen() uint64 {
	for {
		if g := rowSetGen.Add(1); uint8(g) != 0 {
			return g
		}
	}
}

// reset empties rs for the next batch, keeping its arrays.
func (rs *rowSet) reset() {
	for _, m := range rs.meas {
		if m != nil {
			m.reset()
		}
	}
	for t, f := range rs.fields {
		switch {
		case f == nil:
		case cap(f.keys) > keepFieldRows && f.len() < cap(f.keys)/8:
			// A start's batches define every timeseries; later ones a
			// few. Arrays grown for the first would stay for good: they
			// go once a batch uses an eighth of them (while the start's
			// batches go on, they are reused, not grown again each time).
			rs.fields[t] = nil
		default:
			f.reset()
		}
	}
	clear(rs.schemas)
	rs.schemas = rs.schemas[:0]
	// As the fields arrays: a start's batches hold ~100,000 new keys each
	// (3.6 MB of map at RFD 125's N=100), later ones a few; the map goes
	// once a batch holds less than an eighth of its peak.
	n := len(rs.newKeys)
	rs.newKeysPeak = max(rs.newKeysPeak, n)
	if rs.newKeysPeak > keepNewKeys && n < rs.newKeysPeak/8 {
		rs.newKeys, rs.newKeysPeak = map[uint64]uint32{}, 0
	} else {
		clear(rs.newKeys)
	}
	clear(rs.newSchemas)
	rs.rows, rs.fieldRows = 0, 0
	rs.gen = nextRowSetGen()
}

// keepFieldRows is the capacity of a fields table's arrays a row set keeps
// from one batch to the next once batches stop needing more: arrays grown
// past it (a start's batches, ~220,000 fields rows) are dropped after a
// batch that used less than an eighth of them; measured 26 MB held for
// good at RFD 125's N=100 otherwise.
const keepFieldRows = 16 << 10

// keepNewKeys is the size of a row set's new-keys map kept from one batch
// to the next however few keys the next batches hold (reset).
const keepNewKeys = 16 << 10

// weight is what a batch is cut on (Options.BatchRows): its measurement
// rows and a quarter of its fields rows. Counted whole, fields rows made a
// start's batches five times as many (every sample of the first period is
// a new timeseries with ~5 fields rows), and the extra deliveries' INSERTs
// and checkpoints made the drain of a fresh fleet take 1.18 times as long
// (BENCHMARKS.md, "Memory per series"); not counted, a batch of the first
// period held ~500,000 fields rows beside its samples.
func (rs *rowSet) weight() int { return rs.rows + rs.fieldRows/fieldRowWeight }

// fieldRowWeight is how many fields rows count as one row of a batch.
const fieldRowWeight = 4

// add appends one validated sample whose timeseries has key and fingerprint
// fp (an independent hash of what the key hashes), unless the key belongs to
// a different timeseries (fingerprint differs) in this row set or in what the
// writer remembers: then it adds nothing and returns false, so two
// timeseries are never merged under one key.
func (rs *rowSet) add(name string, key uint64, fp uint32, s *pa.Sample, w *writer) bool {
	if known, ok := w.inflight[key]; ok && known != fp {
		return false // the batch being delivered has another timeseries under key
	}
	known, seen := w.seenKeys.get(key)
	if !seen {
		known, seen = rs.newKeys[key]
	}
	if seen && known != fp {
		return false
	}
	t := s.Datum.Type
	if rs.meas[t] == nil {
		rs.meas[t] = &measurementRows{t: t}
	}
	rs.meas[t].add(name, key, s)
	rs.rows++
	if seen {
		return true
	}
	rs.newKeys[key] = fp
	rs.fieldRows += len(s.Target.Fields) + len(s.Metric.Fields)
	for _, group := range [2][]pa.Field{s.Target.Fields, s.Metric.Fields} {
		for fi := range group {
			ft := group[fi].Value.Type
			if rs.fields[ft] == nil {
				rs.fields[ft] = &fieldRows{t: ft}
			}
			rs.fields[ft].add(name, key, &group[fi])
		}
	}
	// A new field set is a new timeseries key, so every schema version
	// passes here at least once.
	sk := pa.SchemaKey{Name: name, Version: pa.SchemaVersionOf(s)}
	if _, seen := w.seenSchemas[sk]; !seen {
		if _, dup := rs.newSchemas[sk]; !dup {
			rs.newSchemas[sk] = struct{}{}
			rs.schemas = append(rs.schemas, pa.SchemaOf(s))
		}
	}
	return true
}

// measurementRows holds the rows of one measurements table in column form.
// Only the value slices that fit the datum type are used.
type measurementRows struct {
	t       pa.DatumType
	names   []string
	keys    []uint64
	ts      []int64
	start   []int64
	missing []bool
	ints    []int64   // i8..i64, cumulative_i64
	uints   []uint64  // bool, u8..u64, cumulative_u64
	f32     []float32 // f32, cumulative_f32
	f64     []float64 // f64, cumulative_f64
	strs    []string  // string, bytes
	// Histograms, flat: every row's bins and counts one after the other
	// (binEnd[i] and histEnd[i] are where row i's end: a histogram that
	// did not validate may have more bins than counts, and the Inserter
	// validates nothing), min/max/sum as 64-bit patterns
	// (int64 and float64 bits, uint64 as is). No allocation per row.
	binsI   []int64
	binsU   []uint64
	binsF   []float64
	counts  []uint64
	histEnd []int
	binEnd  []int
	// histStart and binStart are where row i's counts and bins begin: with
	// the ends, a row's arrays are found whatever order the rows were
	// sorted into (sortrows.go), without moving the flat arrays.
	histStart []int
	binStart  []int
	// binsLen and countsLen are the flat arrays' lengths after the last
	// row added (the next row's starts).
	binsLen, countsLen int
	histStats          [3][]uint64

	cols  []any  // what columns returns, reused
	slots [5]any // reusable arrays of the value columns (nullBufs, histogram arrays)
}

func (m *measurementRows) add(name string, key uint64, s *pa.Sample) {
	d := &s.Datum
	m.names = append(m.names, name)
	m.keys = append(m.keys, key)
	m.ts = append(m.ts, s.TimestampNs)
	if m.t.HasStartTime() {
		m.start = append(m.start, d.StartTimeNs)
	}
	m.missing = append(m.missing, d.Missing)
	switch m.t {
	case pa.DatumBool:
		var v uint64
		if d.Bool {
			v = 1
		}
		m.uints = append(m.uints, v)
	case pa.DatumI8, pa.DatumI16, pa.DatumI32, pa.DatumI64, pa.DatumCumulativeI64:
		m.ints = append(m.ints, d.Int)
	case pa.DatumU8, pa.DatumU16, pa.DatumU32, pa.DatumU64, pa.DatumCumulativeU64:
		m.uints = append(m.uints, d.Uint)
	case pa.DatumF32, pa.DatumCumulativeF32:
		m.f32 = append(m.f32, d.F32)
	case pa.DatumF64, pa.DatumCumulativeF64:
		m.f64 = append(m.f64, d.F64)
	case pa.DatumString:
		m.strs = append(m.strs, d.Str)
	case pa.DatumBytes:
		m.strs = append(m.strs, string(d.Bytes))
	case pa.DatumHistogramI64:
		if h := d.HistI64; h != nil && !d.Missing {
			m.binsI = append(m.binsI, h.Bins...)
			m.addHist(h.Counts, uint64(h.Min), uint64(h.Max), uint64(h.Sum))
		} else {
			m.addHist(nil, 0, 0, 0)
		}
	case pa.DatumHistogramU64:
		if h := d.HistU64; h != nil && !d.Missing {
			m.binsU = append(m.binsU, h.Bins...)
			m.addHist(h.Counts, h.Min, h.Max, h.Sum)
		} else {
			m.addHist(nil, 0, 0, 0)
		}
	case pa.DatumHistogramF64:
		if h := d.HistF64; h != nil && !d.Missing {
			m.binsF = append(m.binsF, h.Bins...)
			m.addHist(h.Counts, math.Float64bits(h.Min), math.Float64bits(h.Max), math.Float64bits(h.Sum))
		} else {
			m.addHist(nil, 0, 0, 0)
		}
	}
}

// addHist ends a histogram row whose bins were appended: its counts and
// statistics.
func (m *measurementRows) addHist(counts []uint64, lo, hi, sum uint64) {
	m.binStart = append(m.binStart, m.binsLen)
	m.binsLen = max(len(m.binsI), len(m.binsU), len(m.binsF))
	m.binEnd = append(m.binEnd, m.binsLen)
	m.histStart = append(m.histStart, m.countsLen)
	m.counts = append(m.counts, counts...)
	m.countsLen = len(m.counts)
	m.histEnd = append(m.histEnd, m.countsLen)
	m.histStats[0] = append(m.histStats[0], lo)
	m.histStats[1] = append(m.histStats[1], hi)
	m.histStats[2] = append(m.histStats[2], sum)
}

// nullable builds a Nullable column from values into bufs' reusable value
// and pointer arrays: no allocation per row, and none per batch once the
// arrays have grown to the batch size. The pointers aim into bufs.out, so
// the result is valid until the next call with the same bufs. A column with
// no missing value needs no pointers: clickhouse-go takes the plain values
// for a Nullable column (none NULL), and when S is T (conv is then the
// identity) the values themselves, uncopied.
func nullable[S, T any](missing []bool, vals []S, conv func(S) T, bufs *nullBufs[T]) any {
	n := len(missing)
	if !slices.Contains(missing, true) {
		if same, ok := any(vals).([]T); ok {
			return same
		}
		out := grown(&bufs.out, n)
		for i, v := range vals {
			out[i] = conv(v)
		}
		return out
	}
	out, ptrs := grown(&bufs.out, n), grown(&bufs.ptrs, n)
	for i, miss := range missing {
		if miss {
			ptrs[i] = nil
			continue
		}
		out[i] = conv(vals[i])
		ptrs[i] = &out[i]
	}
	return ptrs
}

// nullBufs are the arrays nullable reuses for one column.
type nullBufs[T any] struct {
	out  []T
	ptrs []*T
}

// slotBufs returns the buffers of type T kept in slot, making them on first
// use (a measurements table's value type never changes).
func slotBufs[T any](slot *any) *nullBufs[T] {
	if b, ok := (*slot).(*nullBufs[T]); ok {
		return b
	}
	b := &nullBufs[T]{}
	*slot = b
	return b
}

func same[T any](v T) T { return v }

// histColumns builds the histogram columns from m's flat arrays; bins
// holds the rows' bins (binsI, binsU or binsF) and conv turns a statistic's
// bit pattern into T. slots keep the reusable arrays (bins, counts, min,
// max, sum).
func histColumns[T int64 | uint64 | float64](m *measurementRows, bins []T, conv func(uint64) T) []any {
	n := len(m.histEnd)
	binCol := reuse[[][]T](&m.slots[0], n)
	countCol := reuse[[][]uint64](&m.slots[1], n)
	empty, emptyCounts := []T{}, []uint64{}
	for i, cend := range m.histEnd {
		if m.missing[i] {
			binCol[i], countCol[i] = empty, emptyCounts
		} else {
			bstart, bend, cstart := m.binStart[i], m.binEnd[i], m.histStart[i]
			binCol[i], countCol[i] = bins[bstart:bend:bend], m.counts[cstart:cend:cend]
		}
	}
	return []any{binCol, countCol,
		nullable(m.missing, m.histStats[0], conv, slotBufs[T](&m.slots[2])),
		nullable(m.missing, m.histStats[1], conv, slotBufs[T](&m.slots[3])),
		nullable(m.missing, m.histStats[2], conv, slotBufs[T](&m.slots[4])),
	}
}

// reuse returns a slice of length n kept in slot, grown when too small.
func reuse[S ~[]E, E any](slot *any, n int) S {
	s, _ := (*slot).(S)
	if cap(s) < n {
		s = make(S, n)
		*slot = s
	}
	return s[:n]
}

// columns returns the column slices in measurementColumns order, the rows
// sorted by the table's sorting key (sortrows.go). The slices alias m's
// reusable buffers: valid until the next columns or reset.
func (m *measurementRows) columns() []any {
	m.sortRows()
	cols := append(m.cols[:0], m.names, m.keys, m.ts)
	if m.t.HasStartTime() {
		cols = append(cols, m.start)
	}
	var v any
	slot := &m.slots[0]
	switch m.t {
	case pa.DatumBool, pa.DatumU8:
		v = nullable(m.missing, m.uints, func(x uint64) uint8 { return uint8(x) }, slotBufs[uint8](slot))
	case pa.DatumI8:
		v = nullable(m.missing, m.ints, func(x int64) int8 { return int8(x) }, slotBufs[int8](slot))
	case pa.DatumI16:
		v = nullable(m.missing, m.ints, func(x int64) int16 { return int16(x) }, slotBufs[int16](slot))
	case pa.DatumI32:
		v = nullable(m.missing, m.ints, func(x int64) int32 { return int32(x) }, slotBufs[int32](slot))
	case pa.DatumI64, pa.DatumCumulativeI64:
		v = nullable(m.missing, m.ints, same[int64], slotBufs[int64](slot))
	case pa.DatumU16:
		v = nullable(m.missing, m.uints, func(x uint64) uint16 { return uint16(x) }, slotBufs[uint16](slot))
	case pa.DatumU32:
		v = nullable(m.missing, m.uints, func(x uint64) uint32 { return uint32(x) }, slotBufs[uint32](slot))
	case pa.DatumU64, pa.DatumCumulativeU64:
		v = nullable(m.missing, m.uints, same[uint64], slotBufs[uint64](slot))
	case pa.DatumF32, pa.DatumCumulativeF32:
		v = nullable(m.missing, m.f32, same[float32], slotBufs[float32](slot))
	case pa.DatumF64, pa.DatumCumulativeF64:
		v = nullable(m.missing, m.f64, same[float64], slotBufs[float64](slot))
	case pa.DatumString, pa.DatumBytes:
		v = nullable(m.missing, m.strs, same[string], slotBufs[string](slot))
	case pa.DatumHistogramI64:
		m.cols = append(cols, histColumns(m, m.binsI, func(b uint64) int64 { return int64(b) })...)
		return m.cols
	case pa.DatumHistogramU64:
		m.cols = append(cols, histColumns(m, m.binsU, same[uint64])...)
		return m.cols
	case pa.DatumHistogramF64:
		m.cols = append(cols, histColumns(m, m.binsF, math.Float64frombits)...)
		return m.cols
	}
	m.cols = append(cols, v)
	return m.cols
}

// reset empties m for the next batch, keeping its arrays. Pointers (names,
// strings, histograms) are cleared so the previous batch's values can be
// collected.
func (m *measurementRows) reset() {
	clear(m.names)
	clear(m.strs)
	m.names, m.keys, m.ts, m.start, m.missing = m.names[:0], m.keys[:0], m.ts[:0], m.start[:0], m.missing[:0]
	m.ints, m.uints, m.f32, m.f64, m.strs = m.ints[:0], m.uints[:0], m.f32[:0], m.f64[:0], m.strs[:0]
	m.binsI, m.binsU, m.binsF, m.counts, m.histEnd = m.binsI[:0], m.binsU[:0], m.binsF[:0], m.counts[:0], m.histEnd[:0]
	m.binEnd, m.binStart, m.histStart = m.binEnd[:0], m.binStart[:0], m.histStart[:0]
	m.binsLen, m.countsLen = 0, 0
	for i := range m.histStats {
		m.histStats[i] = m.histStats[i][:0]
	}
}

// fieldRows holds the rows of one fields table: each row's key, its
// (timeseries name, field name) pair as an index into the pairs this
// batch has seen, and its value in the column type of the table (one of
// the typed slices, by t). A start's batches hold about five fields rows
// per timeseries, two batches at a time while one is delivered: with the
// two names held as strings a row took 56 bytes, the largest item of a
// drain's live heap (24.7 MB of 76 at the peak, BENCHMARKS.md); a pair
// index takes 4. The names are written out a block at a time when the
// rows are sent (fieldBlocks).
type fieldRows struct {
	t     pa.FieldType
	keys  []uint64
	pairs []uint32 // index into pairList
	strs  []string // string, ip_addr (canonical text)
	u8    []uint8  // bool, u8
	i8    []int8
	i16   []int16
	i32   []int32
	i64   []int64
	u16   []uint16
	u32   []uint32
	u64   []uint64
	uuids []uuid.UUID

	// The pairs of this batch: a few per schema, so small, and emptied
	// with the rows.
	pairList  []fieldPair
	pairIndex map[fieldPair]uint32
	// sorted: the rows are in sorting-key order (sortRows), until a row is
	// added; a retried INSERT does not sort them again.
	sorted bool
}

// fieldPair is a fields row's timeseries and field names.
type fieldPair struct{ name, field string }

func (f *fieldRows) add(name string, key uint64, field *pa.Field) {
	p := fieldPair{name, field.Name}
	pi, ok := f.pairIndex[p]
	if !ok {
		if f.pairIndex == nil {
			f.pairIndex = map[fieldPair]uint32{}
		}
		pi = uint32(len(f.pairList))
		f.pairIndex[p] = pi
		f.pairList = append(f.pairList, p)
	}
	f.keys = append(f.keys, key)
	f.pairs = append(f.pairs, pi)
	f.sorted = false
	v := &field.Value
	switch f.t {
	case pa.FieldString:
		f.strs = append(f.strs, v.Str)
	case pa.FieldIPAddr:
		f.strs = append(f.strs, v.IP.String())
	case pa.FieldBool:
		var b uint8
		if v.Bool {
			b = 1
		}
		f.u8 = append(f.u8, b)
	case pa.FieldI8:
		f.i8 = append(f.i8, int8(v.Int))
	case pa.FieldI16:
		f.i16 = append(f.i16, int16(v.Int))
	case pa.FieldI32:
		f.i32 = append(f.i32, int32(v.Int))
	case pa.FieldI64:
		f.i64 = append(f.i64, v.Int)
	case pa.FieldU8:
		f.u8 = append(f.u8, uint8(v.Uint))
	case pa.FieldU16:
		f.u16 = append(f.u16, uint16(v.Uint))
	case pa.FieldU32:
		f.u32 = append(f.u32, uint32(v.Uint))
	case pa.FieldU64:
		f.u64 = append(f.u64, v.Uint)
	case pa.FieldUUID:
		f.uuids = append(f.uuids, uuid.UUID(v.UUID))
	}
}

// values is the field_value column of every row.
func (f *fieldRows) values() any {
	switch f.t {
	case pa.FieldString, pa.FieldIPAddr:
		return f.strs
	case pa.FieldBool, pa.FieldU8:
		return f.u8
	case pa.FieldI8:
		return f.i8
	case pa.FieldI16:
		return f.i16
	case pa.FieldI32:
		return f.i32
	case pa.FieldI64:
		return f.i64
	case pa.FieldU16:
		return f.u16
	case pa.FieldU32:
		return f.u32
	case pa.FieldU64:
		return f.u64
	case pa.FieldUUID:
		return f.uuids
	}
	return nil
}

func (f *fieldRows) len() int { return len(f.keys) }

// reset empties f for the next batch, keeping its arrays.
func (f *fieldRows) reset() {
	clear(f.strs)
	clear(f.pairList)
	clear(f.pairIndex)
	f.keys, f.pairs, f.strs = f.keys[:0], f.pairs[:0], f.strs[:0]
	f.u8, f.i8, f.i16, f.i32, f.i64 = f.u8[:0], f.i8[:0], f.i16[:0], f.i32[:0], f.i64[:0]
	f.u16, f.u32, f.u64, f.uuids = f.u16[:0], f.u32[:0], f.u64[:0], f.uuids[:0]
	f.pairList = f.pairList[:0]
	f.sorted = false
}

// fieldBlocks hands f's rows to chbatch.SendBlocks a block at a time,
// writing the names of each block's rows out of their pair indices into
// out, which is reused from INSERT to INSERT, so it grows to one block
// (writer.fieldBlock rows) and no further.
type fieldBlocks struct {
	f      *fieldRows
	out    *fieldNameColumns
	values reflect.Value // f.values()
	block  [4]any
}

// fieldNameColumns is one block's timeseries_name and field_name columns.
type fieldNameColumns struct{ names, fields []string }

// release lets go of the strings the columns point to (the batch's).
func (c *fieldNameColumns) release() {
	clear(c.names[:cap(c.names)])
	clear(c.fields[:cap(c.fields)])
}

func (b *fieldBlocks) Len() int { return b.f.len() }

func (b *fieldBlocks) Block(lo, hi int) []any {
	f, out := b.f, b.out
	out.names, out.fields = out.names[:0], out.fields[:0]
	for _, pi := range f.pairs[lo:hi] {
		p := &f.pairList[pi]
		out.names, out.fields = append(out.names, p.name), append(out.fields, p.field)
	}
	b.block = [4]any{out.names, f.keys[lo:hi], out.fields, b.values.Slice(lo, hi).Interface()}
	return b.block[:]
}

// schemaColumnData builds the timeseries_schema columns.
func schemaColumnData(schemas []pa.TimeseriesSchema, created int64) []any {
	n := len(schemas)
	names := make([]string, n)
	fnames, ftypes, fsources := make([][]string, n), make([][]string, n), make([][]string, n)
	dtypes := make([]string, n)
	versions := make([]uint32, n)
	createdNs := make([]int64, n)
	for i, sc := range schemas {
		names[i], dtypes[i], versions[i], createdNs[i] = sc.Name, sc.DatumType.String(), sc.Version, created
		fnames[i], ftypes[i], fsources[i] = []string{}, []string{}, []string{}
		for _, f := range sc.Fields {
			fnames[i] = append(fnames[i], f.Name)
			ftypes[i] = append(ftypes[i], f.Type.String())
			fsources[i] = append(fsources[i], f.Source.String())
		}
	}
	return []any{names, fnames, ftypes, fsources, dtypes, versions, createdNs}
}

var schemaColumns = []string{"timeseries_name", "fields_name", "fields_type", "fields_source", "datum_type", "version", "created_ns"}

// SchemaColumns returns timeseries_schema's column names and the column
// data of schemas, created at created (Unix ns), as the forwarder inserts
// them (for a baseline that inserts the same rows).
func SchemaColumns(schemas []pa.TimeseriesSchema, created int64) ([]string, []any) {
	return schemaColumns, schemaColumnData(schemas, created)
}

var fieldColumns = []string{"timeseries_name", "timeseries_key", "field_name", "field_value"}

// columns builds every measurement table's columns (benchmarks: the work
// an insert does before handing them to the client).
func (rs *rowSet) columns() {
	for _, m := range rs.meas {
		if m != nil && len(m.keys) > 0 {
			m.columns()
		}
	}
}
