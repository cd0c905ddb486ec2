package forwarder

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

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
			t.Errorf("%s holds %d rows, want %d; first stored %q, first wanted %q", table, len(stored), len(rows), first(stored), first(rows))
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

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// TestRowSetDropsLargeFieldArrays: the fields arrays a start's batch grew
// (every timeseries new) are kept while batches fill them, and dropped
// after a batch that uses a small part of them; small ones are reused.
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
	rs.reset()
	for _, t0 := range grown {
		if rs.fields[t0] == nil {
			t.Errorf("fields of type %v dropped after a batch that filled them: the next start's batch grows them again", t0)
		}
	}
	w.addSamples(rs, sampletest.NewFleet(2).Append(nil, 44, 1_000_000), nil) // a steady batch: a few new timeseries
	rs.reset()
	for _, t0 := range grown {
		if rs.fields[t0] != nil {
			t.Errorf("fields of type %v kept %d rows of capacity after a batch that used a few", t0, cap(rs.fields[t0].keys))
		}
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
}
