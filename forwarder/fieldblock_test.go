package forwarder

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// TestFieldsInsertedInBlocks: the fields rows of a batch of new timeseries
// go in INSERTs sent in blocks of fieldBlock rows (here 7, far below one
// batch's fields), and every one of them arrives.
func TestFieldsInsertedInBlocks(t *testing.T) {
	e := newEnv(t, "")
	e.record2, e.verified = true, true
	samples := sampletest.NewFleet(40).Append(nil, 880, 1_700_000_000_000_000_000)
	e.appendPages(samples, 100)
	want := map[string][]string{} // table -> rows as text
	seen := map[uint64]bool{}
	for i := range samples {
		s := &samples[i]
		if k := pa.TimeseriesKey(s); !seen[k] {
			seen[k] = true
			for _, g := range [][]pa.Field{s.Target.Fields, s.Metric.Fields} {
				for _, f := range g {
					table := FieldsTable(f.Value.Type)
					want[table] = append(want[table], fmt.Sprintf("%s:%s %d %s %s", s.Target.Name, s.Metric.Name, k, f.Name, fieldValueText(t, f.Value)))
				}
			}
		}
	}
	f, err := New(e.wal, e.state, e.options())
	if err != nil {
		t.Fatal(err)
	}
	f.w.fieldBlock = 7
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done; f.Close() }()
	e.flush(f, 60*time.Second)
	for table, rows := range want {
		// Every row, with the names its block wrote out of the pairs
		// (blocks of 7 rows, pairs crossing them).
		q := fmt.Sprintf("SELECT timeseries_name, timeseries_key, field_name, toString(field_value) FROM %s.%s FINAL", e.db, table)
		got, err := e.conn.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		var stored []string
		for got.Next() {
			var name, field, value string
			var key uint64
			if err := got.Scan(&name, &key, &field, &value); err != nil {
				t.Fatal(err)
			}
			stored = append(stored, fmt.Sprintf("%s %d %s %s", name, key, field, value))
		}
		if err := got.Err(); err != nil {
			t.Fatal(err)
		}
		got.Close()
		slices.Sort(rows)
		slices.Sort(stored)
		if !slices.Equal(rows, stored) {
			t.Errorf("%s holds %d rows, want %d; first difference: stored %q, wanted %q", table, len(stored), len(rows), firstDifference(stored, rows), firstDifference(rows, stored))
		}
	}
	if len(want) == 0 || e.count(true) != uint64(len(samples)) {
		t.Errorf("fields tables %v, %d samples stored, want %d", want, e.count(true), len(samples))
	}
}

// fieldValueText is v as ClickHouse's toString writes it, for the field
// types the test fleet uses.
func fieldValueText(t *testing.T, v pa.FieldValue) string {
	switch v.Type {
	case pa.FieldString:
		return v.Str
	case pa.FieldI8, pa.FieldI16, pa.FieldI32, pa.FieldI64:
		return fmt.Sprint(v.Int)
	case pa.FieldU8, pa.FieldU16, pa.FieldU32, pa.FieldU64:
		return fmt.Sprint(v.Uint)
	case pa.FieldUUID:
		return uuid.UUID(v.UUID).String()
	}
	t.Fatalf("field type %v: not in the test fleet", v.Type)
	return ""
}

// firstDifference is a's first element that differs from b's at the same
// place ("" if none).
func firstDifference(a, b []string) string {
	for i := range a {
		if i >= len(b) || a[i] != b[i] {
			return a[i]
		}
	}
	return ""
}

// TestRowSetDropsLargeFieldArrays: the fields arrays and the new-keys map
// a start's batch grew (every timeseries new) are kept while batches fill
// them, and dropped after a batch that uses a small part of them; small
// ones are reused.
func TestRowSetDropsLargeFieldArrays(t *testing.T) {
	w := newWriter(nil, "db", 1<<20)
	rs := newRowSet()
	fleet := sampletest.NewFleet(2000) // 44,000 series, several u64/string fields each
	w.addSamples(rs, fleet.Append(nil, 44_000, 1), nil)
	var grown []pa.FieldType
	for t, f := range rs.fields {
		if f != nil && cap(f.keys) > keepFieldRows {
			grown = append(grown, pa.FieldType(t))
		}
	}
	if len(grown) == 0 {
		t.Fatal("no fields table grew past keepFieldRows: the test does not test")
	}
	if len(rs.newKeys) <= keepNewKeys {
		t.Fatalf("%d new keys, not over keepNewKeys: the test does not test", len(rs.newKeys))
	}
	mapOf := func(rs *rowSet) unsafe.Pointer { return reflect.ValueOf(rs.newKeys).UnsafePointer() }
	startMap := mapOf(rs)
	rs.reset()
	if mapOf(rs) != startMap {
		t.Error("the new-keys map was dropped after a batch that filled it")
	}
	for _, t0 := range grown {
		if rs.fields[t0] == nil {
			t.Errorf("fields of type %v dropped after a batch that filled them: the next start's batch grows them again", t0)
		}
	}
	w.addSamples(rs, sampletest.NewFleet(2).Append(nil, 44, 1_000_000), nil) // a steady batch: a few new timeseries
	steadyKeys := len(rs.newKeys)
	rs.reset()
	for _, t0 := range grown {
		if rs.fields[t0] != nil {
			t.Errorf("fields of type %v kept %d rows of capacity after a batch that used a few", t0, cap(rs.fields[t0].keys))
		}
	}
	if steadyKeys == 0 || mapOf(rs) == startMap || len(rs.newKeys) != 0 {
		t.Errorf("after a batch of %d new keys the start's new-keys map was kept (or the new one is not empty: %d keys)", steadyKeys, len(rs.newKeys))
	}
	small := newRowSet()
	w2 := newWriter(nil, "db", 1<<20)
	w2.addSamples(small, sampletest.NewFleet(2).Append(nil, 44, 1), nil)
	kept := 0
	for _, f := range small.fields {
		if f != nil {
			kept++
		}
	}
	small.reset()
	for _, f := range small.fields {
		if f != nil {
			kept--
		}
	}
	if kept != 0 {
		t.Errorf("%d small fields tables dropped, want all kept for reuse", kept)
	}
	smallMap := mapOf(small)
	w2.addSamples(small, sampletest.NewFleet(2).Append(nil, 2, 2), nil)
	small.reset() // 2 keys, under an eighth of 44 but the map is small
	if mapOf(small) != smallMap {
		t.Error("a small new-keys map was dropped")
	}
}

// TestFieldBlocksWriteEachRowsNames: the name columns each block writes
// out of the pair indices are the rows' own, for blocks of every size,
// and again after a reset that brings other pairs in another order (the
// indices of one batch mean nothing in the next).
func TestFieldBlocksWriteEachRowsNames(t *testing.T) {
	f := &fieldRows{t: pa.FieldU64}
	out := &fieldNameColumns{}
	type row struct {
		name, field string
		key, value  uint64
	}
	fill := func(names, fields []string, n int) []row {
		var want []row
		for i := range n {
			r := row{names[i%len(names)], fields[(i/len(names))%len(fields)], uint64(1000 + i), uint64(i * 7)}
			f.add(r.name, r.key, &pa.Field{Name: r.field, Value: pa.FieldValue{Type: pa.FieldU64, Uint: r.value}})
			want = append(want, r)
		}
		return want
	}
	check := func(round string, want []row) {
		for _, size := range []int{1, 2, 3, 7, len(want), len(want) + 5} {
			b := &fieldBlocks{f: f, out: out, values: reflect.ValueOf(f.values())}
			var got []row
			for lo := 0; lo < b.Len(); lo += size {
				cols := b.Block(lo, min(lo+size, b.Len()))
				names, keys, fields, values := cols[0].([]string), cols[1].([]uint64), cols[2].([]string), cols[3].([]uint64)
				if len(names) != len(keys) || len(fields) != len(keys) || len(values) != len(keys) {
					t.Fatalf("%s, blocks of %d: columns of %d, %d, %d and %d rows", round, size, len(names), len(keys), len(fields), len(values))
				}
				for i := range keys {
					got = append(got, row{names[i], fields[i], keys[i], values[i]})
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s, blocks of %d:\n got %v\nwant %v", round, size, got, want)
			}
			out.release()
			if slices.ContainsFunc(out.names[:cap(out.names)], func(s string) bool { return s != "" }) {
				t.Errorf("%s: names kept after release", round)
			}
		}
	}
	check("first batch", fill([]string{"a:x", "b:y", "c:z"}, []string{"sled", "vm"}, 23))
	f.reset()
	check("after a reset", fill([]string{"d:w", "a:x"}, []string{"vm", "slot", "sled"}, 17))
}
