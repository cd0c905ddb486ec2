package forwarder

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"unsafe"

	pa "github.com/holdfast/holdfast/producerapi"
)

// Measurement rows are sent sorted by their table's sorting key
// (measurementsSortingKey): timeseries_name, timeseries_key, start_time_ns
// for datums with a start time, timestamp_ns. ClickHouse sorts every
// inserted block by the sorting key before it writes the block's part, unless
// a check it makes first finds the block sorted already (MergeTreeDataWriter,
// isAlreadySorted; counted as the profile event
// MergeTreeDataWriterBlocksAlreadySorted, in 18.16 and every later server).
// At RFD 125's N=100 that sort (stableGetPermutation over a String column
// first) was an eighth of all the server's CPU, merges included; skipping
// it halves the server's CPU for the same INSERTs (BENCHMARKS.md, "blocks
// sent sorted").
// The forwarder sorts cheaper: a name is compared once per distinct name (a
// rank), not per comparison, and a row is a 16-byte item. Fields rows are
// sorted the same way (fieldRows.sortRows): for new timeseries the server's
// INSERT CPU fell to a fifth.
//
// Correctness never depends on the order: a block that is not sorted
// (a table of an older layout whose sorting key lacks start_time_ns, rows
// whose names compare differently on the server) is sorted by the server as
// before.

// sortItem is one row being sorted: its name's rank among the block's
// distinct names, its key, and its index before sorting.
type sortItem struct {
	key  uint64
	rank uint32
	row  uint32
}

// rowSorter holds a sort's scratch arrays, about 55 bytes a row of the
// largest table recently sorted (the items twice, the order, the gather
// buffers of the columns' types). Pooled rather than kept per row set: one
// delivery sorts at a time, so the pool holds one sorter between
// deliveries, not one per row set (keepScratch drops an oversized one).
type rowSorter struct {
	items, spare []sortItem
	rows         []uint32 // the sorted order: each position's row before
	// The block's distinct names: ids in the order first seen (names,
	// byAddr), then ranks in byte order (ranks by id, sortedNames by rank).
	ids         map[string]uint32
	names       []string
	byAddr      [64]nameSlot
	order       []uint32
	ranks       []uint32
	sortedNames []string
	byRank      []int
	// Gather buffers, one per column type.
	i64  []int64
	u64  []uint64
	f64  []float64
	f32  []float32
	bits []bool
	strs []string
	ints []int
}

// nameSlot caches a name's id by the address and length of its bytes.
type nameSlot struct {
	p   *byte
	n   int
	id  uint32
	set bool
}

// keepScratch says whether a sorter whose arrays hold capacity rows goes
// back to its pool after sorting rows: not when it is over four times that
// and past 65,536 (a start's batches grew it; kept, the pool would hold it
// for good, as every delivery takes the sorter out again). A Go map keeps
// its buckets when cleared, so a fields sorter whose string map held more
// than 65,536 strings is dropped too (keepScratch(len, 0)).
func keepScratch(capacity, rows int) bool {
	return capacity <= 1<<16 || capacity <= 4*rows
}

var rowSorters = sync.Pool{New: func() any { return &rowSorter{ids: map[string]uint32{}} }}

// sortBlocks is false only in tests and benchmarks that measure what the
// sort saves the server.
var sortBlocks = true

// sortRows puts m's rows in sorting-key order, every column alike.
func (m *measurementRows) sortRows() {
	n := len(m.keys)
	if n < 2 || !sortBlocks || m.sorted() {
		return
	}
	s := rowSorters.Get().(*rowSorter)
	defer func() {
		if keepScratch(cap(s.items), n) {
			rowSorters.Put(s)
		}
	}()
	items := grown(&s.items, n)
	for i, name := range m.names {
		items[i] = sortItem{key: m.keys[i], rank: s.nameID(name), row: uint32(i)}
	}
	ranks := s.rankNames()
	for i := range items {
		items[i].rank = ranks[items[i].rank]
	}
	items = radixSort(items, grown(&s.spare, n), grown(&s.byRank, len(s.names)+1))
	// Rows of one timeseries (equal rank and key) keep the order they were
	// added in; put them in time order.
	for lo := 0; lo < n; {
		hi := lo + 1
		for hi < n && items[hi].key == items[lo].key && items[hi].rank == items[lo].rank {
			hi++
		}
		if hi-lo > 1 {
			slices.SortStableFunc(items[lo:hi], func(a, b sortItem) int { return m.compareTimes(int(a.row), int(b.row)) })
		}
		lo = hi
	}
	// Names and keys come from the items; the other columns are gathered.
	rows := grown(&s.rows, n)
	for i := range items {
		m.names[i], m.keys[i] = s.sortedNames[items[i].rank], items[i].key
		rows[i] = items[i].row
	}
	gather(m.ts, rows, &s.i64)
	gather(m.missing, rows, &s.bits)
	gather(m.start, rows, &s.i64)
	if m.t.IsHistogram() {
		gather(m.binStart, rows, &s.ints)
		gather(m.binEnd, rows, &s.ints)
		gather(m.histStart, rows, &s.ints)
		gather(m.histEnd, rows, &s.ints)
		for i := range m.histStats {
			gather(m.histStats[i], rows, &s.u64)
		}
	} else {
		// One value per row in whichever array the datum type uses.
		gather(m.ints, rows, &s.i64)
		gather(m.uints, rows, &s.u64)
		gather(m.f32, rows, &s.f32)
		gather(m.f64, rows, &s.f64)
		gather(m.strs, rows, &s.strs)
	}
	clear(s.strs)
	clear(s.names)
	clear(s.sortedNames)
	s.names = s.names[:0]
	clear(s.ids)
	s.byAddr = [len(s.byAddr)]nameSlot{}
}

// grown returns (*buf)[:n], reallocated when its capacity is short.
func grown[T any](buf *[]T, n int) []T {
	if cap(*buf) < n {
		*buf = make([]T, n)
	}
	*buf = (*buf)[:n]
	return *buf
}

// gather sets col[i] to the old col[rows[i]], through tmp. A column of no
// rows (an array the datum type does not use) is left alone.
func gather[T any](col []T, rows []uint32, tmp *[]T) {
	if len(col) == 0 {
		return
	}
	t := grown(tmp, len(col))
	for i, r := range rows {
		t[i] = col[r]
	}
	copy(col, t)
}

// radixSort sorts items by (rank, key), stably, with spare as scratch of
// the same length, and returns the sorted slice (items or spare): a least
// significant digit radix sort, a byte of the key per pass (passes where
// every key has the same byte are skipped) and then the rank (byRank is
// scratch of one more than the ranks).
func radixSort(items, spare []sortItem, byRank []int) []sortItem {
	if len(items) < 2 {
		return items
	}
	var counts [256]int
	for shift := uint(0); shift < 64; shift += 8 {
		clear(counts[:])
		for i := range items {
			counts[byte(items[i].key>>shift)]++
		}
		if counts[byte(items[0].key>>shift)] == len(items) {
			continue
		}
		sum := 0
		for d, c := range counts {
			counts[d] = sum
			sum += c
		}
		for i := range items {
			d := byte(items[i].key >> shift)
			spare[counts[d]] = items[i]
			counts[d]++
		}
		items, spare = spare, items
	}
	if ranks := len(byRank) - 1; ranks > 1 {
		clear(byRank)
		for i := range items {
			byRank[items[i].rank+1]++
		}
		for r := 1; r <= ranks; r++ {
			byRank[r] += byRank[r-1]
		}
		for i := range items {
			r := items[i].rank
			spare[byRank[r]] = items[i]
			byRank[r]++
		}
		items = spare
	}
	return items
}

// nameID returns name's index in s.names (the block's distinct names in the
// order first seen), adding it when new. Names are interned (one string per
// name and session), so a small cache by the string's address answers most
// rows without hashing the name.
func (s *rowSorter) nameID(name string) uint32 {
	p := unsafe.StringData(name)
	c := &s.byAddr[(uintptr(unsafe.Pointer(p))>>3)%uintptr(len(s.byAddr))]
	if c.p == p && c.n == len(name) && c.set {
		return c.id
	}
	id, ok := s.ids[name]
	if !ok {
		id = uint32(len(s.names))
		s.ids[name] = id
		s.names = append(s.names, name)
	}
	*c = nameSlot{p: p, n: len(name), id: id, set: true}
	return id
}

// rankNames sorts s.names bytewise and returns each old index's rank.
func (s *rowSorter) rankNames() []uint32 {
	order, ranks := rankBy(&s.order, &s.ranks, len(s.names), func(a, b uint32) int { return strings.Compare(s.names[a], s.names[b]) })
	sortedNames := grown(&s.sortedNames, len(s.names))
	for r, id := range order {
		sortedNames[r] = s.names[id]
	}
	return ranks
}

// rankBy orders the ids 0..n-1 by compare into *order and returns it with
// each id's rank (its position in that order) in *ranks, both reusing the
// buffers: how a block's distinct names, pairs and string values become
// small integers that sort as they do.
func rankBy(order, ranks *[]uint32, n int, compare func(a, b uint32) int) ([]uint32, []uint32) {
	o := grown(order, n)
	for i := range o {
		o[i] = uint32(i)
	}
	slices.SortFunc(o, compare)
	r := grown(ranks, n)
	for rank, id := range o {
		r[id] = uint32(rank)
	}
	return o, r
}

// sameString is a == b, cheap for the common case of one interned string.
func sameString(a, b string) bool {
	return len(a) == len(b) && (unsafe.StringData(a) == unsafe.StringData(b) || a == b)
}

// compareTimes orders two rows of one timeseries: start time, then
// timestamp.
func (m *measurementRows) compareTimes(a, b int) int {
	if m.t.HasStartTime() {
		if c := cmp.Compare(m.start[a], m.start[b]); c != 0 {
			return c
		}
	}
	return cmp.Compare(m.ts[a], m.ts[b])
}

// sorted reports whether m's rows are in sorting-key order already (a
// retried delivery's, or a batch of one timeseries).
func (m *measurementRows) sorted() bool {
	for i := 1; i < len(m.keys); i++ {
		a, b := m.names[i-1], m.names[i]
		if !sameString(a, b) {
			if a > b {
				return false
			}
			continue
		}
		if c := cmp.Compare(m.keys[i-1], m.keys[i]); c > 0 || c == 0 && m.compareTimes(i-1, i) > 0 {
			return false
		}
	}
	return true
}

// fieldItem is one fields row being sorted: its (timeseries name, field
// name) pair's rank, its value as an order-preserving 64-bit key (a string
// value's rank among the block's distinct values), its key and index.
type fieldItem struct {
	key   uint64
	value uint64
	pair  uint32
	row   uint32
}

// fieldSorter is the scratch of a fields sort, pooled as rowSorter's.
type fieldSorter struct {
	items, spare []fieldItem
	rows         []uint32 // the sorted order: each position's row before
	order, ranks []uint32 // the pairs' (rankBy)
	strIDs       map[string]uint32
	strs         []string
	strOrder     []uint32
	strRank      []uint32
	counts       []int
	u64          []uint64
	gathered     fieldRows
}

var fieldSorters = sync.Pool{New: func() any { return &fieldSorter{strIDs: map[string]uint32{}} }}

// sortRows puts f's rows in their table's sorting-key order
// (timeseries_name, field_name, field_value, timeseries_key), as
// measurementRows.sortRows does measurements: a start's batches carry
// several fields rows per new timeseries, each sorted by the server
// otherwise. UUID tables are left to the server: its order of UUIDs is
// not their bytes'.
func (f *fieldRows) sortRows() {
	n := f.len()
	if n < 2 || !sortBlocks || f.t == pa.FieldUUID || f.sorted {
		return
	}
	f.sorted = true
	s := fieldSorters.Get().(*fieldSorter)
	defer func() {
		if keepScratch(cap(s.items), n) && keepScratch(len(s.strs), 0) {
			fieldSorters.Put(s)
		}
		clear(s.strs)
		s.strs = s.strs[:0]
		clear(s.strIDs)
	}()
	// The pairs' ranks: by timeseries name, then field name.
	_, ranks := rankBy(&s.order, &s.ranks, len(f.pairList), func(a, b uint32) int {
		x, y := &f.pairList[a], &f.pairList[b]
		return cmp.Or(strings.Compare(x.name, y.name), strings.Compare(x.field, y.field))
	})
	values := f.orderKeys(s)
	items := grown(&s.items, n)
	for i := range items {
		items[i] = fieldItem{key: f.keys[i], value: values[i], pair: ranks[f.pairs[i]], row: uint32(i)}
	}
	items = radixSortFields(items, grown(&s.spare, n), grown(&s.counts, max(256, len(f.pairList))))
	rows := grown(&s.rows, n)
	for i := range items {
		f.keys[i], rows[i] = items[i].key, items[i].row
	}
	g := &s.gathered
	gather(f.pairs, rows, &g.pairs)
	gather(f.strs, rows, &g.strs)
	gather(f.u8, rows, &g.u8)
	gather(f.i8, rows, &g.i8)
	gather(f.i16, rows, &g.i16)
	gather(f.i32, rows, &g.i32)
	gather(f.i64, rows, &g.i64)
	gather(f.u16, rows, &g.u16)
	gather(f.u32, rows, &g.u32)
	gather(f.u64, rows, &g.u64)
	clear(g.strs)
}

// orderKeys returns each row's value as a uint64 in the column's order:
// unsigned values as they are, signed ones with the sign bit flipped, a
// string's rank among the block's distinct strings (bytewise).
func (f *fieldRows) orderKeys(s *fieldSorter) []uint64 {
	out := grown(&s.u64, f.len())
	signed := func(v int64) uint64 { return uint64(v) ^ 1<<63 }
	switch f.t {
	case pa.FieldString, pa.FieldIPAddr:
		ids := out
		for i, v := range f.strs {
			id, ok := s.strIDs[v]
			if !ok {
				id = uint32(len(s.strs))
				s.strIDs[v] = id
				s.strs = append(s.strs, v)
			}
			ids[i] = uint64(id)
		}
		_, rank := rankBy(&s.strOrder, &s.strRank, len(s.strs), func(a, b uint32) int { return strings.Compare(s.strs[a], s.strs[b]) })
		for i, id := range ids {
			out[i] = uint64(rank[id])
		}
	case pa.FieldBool, pa.FieldU8:
		for i, v := range f.u8 {
			out[i] = uint64(v)
		}
	case pa.FieldU16:
		for i, v := range f.u16 {
			out[i] = uint64(v)
		}
	case pa.FieldU32:
		for i, v := range f.u32 {
			out[i] = uint64(v)
		}
	case pa.FieldU64:
		copy(out, f.u64)
	case pa.FieldI8:
		for i, v := range f.i8 {
			out[i] = signed(int64(v))
		}
	case pa.FieldI16:
		for i, v := range f.i16 {
			out[i] = signed(int64(v))
		}
	case pa.FieldI32:
		for i, v := range f.i32 {
			out[i] = signed(int64(v))
		}
	case pa.FieldI64:
		for i, v := range f.i64 {
			out[i] = signed(v)
		}
	}
	return out
}

// radixSortFields sorts items by (pair, value, key), stably: radixSort's
// passes over the key's bytes, then the value's, then the pair's rank
// (counts is scratch of at least 256 and the number of pairs). It is not
// radixSort over a wider item: measurements are sorted on every delivery,
// and with fields' 24-byte items their sort took 1.25 times as long
// (BenchmarkSortRows, 4.3–4.5 against 3.3–3.5 ms per 100,000 rows).
func radixSortFields(items, spare []fieldItem, counts []int) []fieldItem {
	for shift := uint(0); shift < 64; shift += 8 {
		items, spare = fieldPass(items, spare, counts[:256], digitKey, shift)
	}
	for shift := uint(0); shift < 64; shift += 8 {
		items, spare = fieldPass(items, spare, counts[:256], digitValue, shift)
	}
	items, _ = fieldPass(items, spare, counts, digitPair, 0)
	return items
}

// Which part of a fieldItem a radix pass orders by.
const (
	digitKey = iota
	digitValue
	digitPair
)

// fieldDigit is item's digit for a pass: a byte of its key or value at
// shift, or its pair's rank.
func fieldDigit(it *fieldItem, which int, shift uint) int {
	switch which {
	case digitKey:
		return int(byte(it.key >> shift))
	case digitValue:
		return int(byte(it.value >> shift))
	}
	return int(it.pair)
}

// fieldPass is one stable counting pass over items into spare, returning
// them swapped (not swapped when every item has the same digit, which
// needs no move).
func fieldPass(items, spare []fieldItem, counts []int, which int, shift uint) ([]fieldItem, []fieldItem) {
	if len(items) < 2 {
		return items, spare
	}
	clear(counts)
	for i := range items {
		counts[fieldDigit(&items[i], which, shift)]++
	}
	if counts[fieldDigit(&items[0], which, shift)] == len(items) {
		return items, spare
	}
	sum := 0
	for d, k := range counts {
		counts[d] = sum
		sum += k
	}
	for i := range items {
		d := fieldDigit(&items[i], which, shift)
		spare[counts[d]] = items[i]
		counts[d]++
	}
	return spare, items
}
