package forwarder

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/wal"
)

// scanForwarder is a Forwarder with what add needs and no WAL, state or
// ClickHouse: for unit tests and benchmarks of the record paths.
func scanForwarder(t testing.TB) *Forwarder {
	m, err := newMetrics(prometheus.NewRegistry(), func() float64 { return 0 }, func() float64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	return &Forwarder{m: m, w: newWriter(nil, "db", 1<<18), decoder: pa.NewSampleDecoder(),
		series: newSeriesCache(1 << 18), scan: &scan2{}}
}

// TestRecord2RowsEqualDecodedRows: the rows the scanning paths build from
// version 2 records (verified or not) and from version 1 records are the
// rows the decoding path builds from the same samples, for every datum type:
// first (fields and schemas), again (steady state), and after the writer
// forgot the keys (series from the cache, fields written again).
func TestRecord2RowsEqualDecodedRows(t *testing.T) {
	in := sampletest.EveryDatumType(math.MinInt64 + 1000)
	ctx := context.Background()
	ref := scanForwarder(t) // the decoding path, called directly
	v1, v2, v2u := scanForwarder(t), scanForwarder(t), scanForwarder(t)
	fws := []*Forwarder{ref, v1, v2, v2u}
	batches := make([]*batch, len(fws))
	for i := range batches {
		batches[i] = &batch{}
		batches[i].reset()
	}
	var page pa.PageRecord
	for round := 0; round < 3; round++ {
		for i := 0; i < len(in); i += 7 {
			samples := in[i:min(i+7, len(in))]
			idx := uint64(i + 1)
			r1 := wal.Record{Type: wal.TypePage, Payload: pa.AppendPageRecord(nil, "p", "i", samples)}
			if err := ref.decode(r1, &page); err != nil {
				t.Fatal(err)
			}
			ref.w.addSamples(batches[0].rows, page.Samples, nil)
			for fi, rec := range []wal.Record{r1,
				{Type: wal.TypePage, Payload: pa.AppendPageRecord2(nil, "p", "i", true, pa.AppendBlock2(nil, samples))},
				{Type: wal.TypePage, Payload: pa.AppendPageRecord2(nil, "p", "i", false, pa.AppendBlock2(nil, samples))}} {
				f := fws[fi+1]
				handled, err := f.addRecord2(ctx, batches[fi+1], idx, rec)
				if !handled && err == nil {
					handled, err = f.addRecord1(ctx, batches[fi+1], idx, rec)
				}
				if err != nil || !handled {
					t.Fatalf("record %d, path %d: handled=%v err=%v: a scanning path must take it", idx, fi+1, handled, err)
				}
			}
		}
		for fi := 1; fi < len(fws); fi++ {
			compareRowSets(t, batches[0].rows, batches[fi].rows)
		}
		// As a successful insert does: the keys are written now, so the
		// second round takes the steady-state path. After the second
		// round the writer forgets them (its bound): the third round
		// writes fields again, the series coming from the cache, not
		// from this record's misses.
		for fi, f := range fws {
			if round == 1 {
				f.w.seenKeys.reset()
			} else {
				for k, fp := range batches[fi].rows.newKeys {
					f.w.seenKeys.put(k, fp)
				}
			}
			batches[fi].reset()
		}
	}
}

func compareRowSets(t *testing.T, a, b *rowSet) {
	t.Helper()
	if a.rows != b.rows {
		t.Fatalf("decoded path: %d rows, scan path: %d rows", a.rows, b.rows)
	}
	for dt := range a.meas {
		ma, mb := a.meas[dt], b.meas[dt]
		na, nb := 0, 0
		if ma != nil {
			na = len(ma.keys)
		}
		if mb != nil {
			nb = len(mb.keys)
		}
		if na != nb {
			t.Fatalf("%v: %d rows decoded, %d scanned", pa.DatumType(dt), na, nb)
		}
		if na == 0 {
			continue
		}
		ca, cb := ma.columns(), mb.columns()
		if !deepEqualColumns(ca, cb) {
			t.Errorf("%v: columns differ:\ndecoded %v\nscanned %v", pa.DatumType(dt), ca, cb)
		}
	}
	for ft := range a.fields {
		fa, fb := a.fields[ft], b.fields[ft]
		na, nb := 0, 0
		if fa != nil {
			na = fa.len()
		}
		if fb != nil {
			nb = fb.len()
		}
		if na != nb {
			t.Errorf("%v fields: %d rows decoded, %d scanned", pa.FieldType(ft), na, nb)
		} else if na > 0 && !slices.Equal(fieldRowTexts(fa), fieldRowTexts(fb)) {
			t.Errorf("%v fields differ:\ndecoded %v\nscanned %v", pa.FieldType(ft), fieldRowTexts(fa), fieldRowTexts(fb))
		}
	}
	if len(a.schemas) != len(b.schemas) {
		t.Errorf("%d schema rows decoded, %d scanned", len(a.schemas), len(b.schemas))
	}
}

// fieldRowTexts is f's rows as the INSERT sends them, one text per row:
// name, key, field name and value, each block's names written out of the
// pairs as sendFields does (blocks of 3 rows, so pairs cross blocks).
func fieldRowTexts(f *fieldRows) []string {
	b := &fieldBlocks{f: f, out: &fieldNameColumns{}, values: reflect.ValueOf(f.values())}
	var out []string
	for lo := 0; lo < b.Len(); lo += 3 {
		cols := b.Block(lo, min(lo+3, b.Len()))
		names, keys, fields, values := cols[0].([]string), cols[1].([]uint64), cols[2].([]string), reflect.ValueOf(cols[3])
		for i := range names {
			out = append(out, fmt.Sprintf("%s %d %s %v", names[i], keys[i], fields[i], values.Index(i).Interface()))
		}
	}
	return out
}

// deepEqualColumns compares column slices, following pointers and
// comparing floats by their bits.
func deepEqualColumns(a, b []any) bool {
	return fmtColumns(a) == fmtColumns(b)
}

func fmtColumns(cols []any) string {
	var out []byte
	for _, c := range cols {
		switch v := c.(type) {
		case []*float64:
			for _, p := range v {
				if p == nil {
					out = append(out, "nil "...)
				} else {
					out = append(out, []byte(fmtBits(math.Float64bits(*p)))...)
				}
			}
		case []*float32:
			for _, p := range v {
				if p == nil {
					out = append(out, "nil "...)
				} else {
					out = append(out, []byte(fmtBits(uint64(math.Float32bits(*p))))...)
				}
			}
		default:
			out = append(out, []byte(fmtAny(c))...)
		}
		out = append(out, '|')
	}
	return string(out)
}

func fmtBits(b uint64) string { return fmt.Sprintf("%#x ", b) }

func fmtAny(v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return fmt.Sprint(v)
	}
	var s string
	for i := 0; i < rv.Len(); i++ {
		e := rv.Index(i)
		if e.Kind() == reflect.Pointer {
			if e.IsNil() {
				s += "nil "
				continue
			}
			e = e.Elem()
		}
		s += fmt.Sprintf("%v ", e.Interface())
	}
	return s
}

// FuzzAddRecord2: any WAL payload goes through the scanning paths without
// a panic, and whenever the decoding path takes a record (it decodes and
// every sample validates), the scanning path takes it too and builds the
// same rows. Version 2 records flagged verified are exempt from the second
// half only where a sample does not validate (they are not validated).
func FuzzAddRecord2(f *testing.F) {
	every := sampletest.EveryDatumType(1)
	fleet := sampletest.NewFleet(2).Append(nil, 44, 1)
	f.Add(pa.AppendPageRecord2(nil, "p", "i", false, pa.AppendBlock2(nil, every)))
	f.Add(pa.AppendPageRecord2(nil, "p", "i", true, pa.AppendBlock2(nil, every[:5])))
	f.Add(pa.AppendPageRecord2(nil, "p", "i", false, pa.AppendBlock2(nil, fleet)))
	f.Add([]byte{2, 0, 1, 'p', 0, 2, 9, 9})
	f.Add(pa.AppendPageRecord(nil, "p", "i", every))
	f.Add(pa.AppendPageRecord(nil, "p", "i", fleet))
	f.Add([]byte{1, 1, 'p', 0, 1, 1, 0})
	f.Fuzz(func(t *testing.T, payload []byte) {
		fw := scanForwarder(t)
		b := &batch{}
		b.reset()
		rec := wal.Record{Type: wal.TypePage, Payload: payload}
		handled, err := fw.addRecord2(context.Background(), b, 1, rec)
		if !handled && err == nil {
			handled, err = fw.addRecord1(context.Background(), b, 1, rec)
		}
		if err != nil {
			t.Fatalf("scanning: %v", err)
		}
		var page pa.PageRecord
		decErr := pa.DecodePageRecord(payload, &page)
		valid := decErr == nil
		for i := 0; valid && i < len(page.Samples); i++ {
			valid = pa.Validate(&page.Samples[i], pa.Limits{}) == nil
		}
		switch {
		case valid && !handled:
			t.Fatalf("the decoding path takes this record (version %d, %d samples), the scanning paths do not", payload[0], len(page.Samples))
		case handled && decErr != nil:
			t.Fatalf("the scanning paths take a record the decoding path cannot decode: %v", decErr)
		case handled && !valid && !page.Verified:
			t.Fatalf("the scanning paths take an unverified record with a sample that does not validate")
		case !handled:
			return
		}
		ref := scanForwarder(t)
		rb := &batch{}
		rb.reset()
		ref.w.addSamples(rb.rows, page.Samples, nil)
		compareRowSets(t, rb.rows, b.rows)
	})
}

// TestScanAllocatesNothingPerSample: in steady state (series cached, keys
// written, the batch's arrays grown) adding a 1,000-sample record of either
// version allocates at most once per record, nothing per sample.
func TestScanAllocatesNothingPerSample(t *testing.T) {
	samples := sampletest.NewFleet(50).Append(nil, 1000, 1) // every datum type of the fleet
	for _, c := range []struct {
		name    string
		payload []byte
	}{
		{"v1", pa.AppendPageRecord(nil, "p", "i", samples)},
		{"v2", pa.AppendPageRecord2(nil, "p", "i", true, pa.AppendBlock2(nil, samples))},
		{"v2_unverified", pa.AppendPageRecord2(nil, "p", "i", false, pa.AppendBlock2(nil, samples))},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := scanForwarder(t)
			b := &batch{}
			b.reset()
			var page pa.PageRecord
			rec := wal.Record{Type: wal.TypePage, Payload: c.payload}
			add := func() {
				if err := f.add(context.Background(), b, 1, rec, &page); err != nil {
					t.Fatal(err)
				}
			}
			add()
			for k, fp := range b.rows.newKeys {
				f.w.seenKeys.put(k, fp)
			}
			for range 3 { // grow the arrays
				b.reset()
				add()
				add()
			}
			b.reset()
			// (Building the INSERT's columns boxes each column slice
			// into an interface: a few allocations per table and batch,
			// not per sample; not counted here.)
			allocs := testing.AllocsPerRun(20, func() {
				add()
				add()
				b.reset()
			})
			if allocs > 2 {
				t.Errorf("%.1f allocations per two %d-sample records, want at most one per record", allocs, len(samples))
			}
		})
	}
}
