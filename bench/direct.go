package bench

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/chbatch"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// The direct-insert ceiling: the rows holdfast writes for a fleet, inserted
// the way a careful user of the same client (clickhouse-go/v2, native
// protocol, LZ4) would, in the same batch size.
//
// It replaced forwarder.Inserter as the ceiling because that measured
// something else at large fleets (BENCHMARKS.md, `max`): the Inserter
// remembers at most 262,144 timeseries whose fields it wrote, so with a
// 100,000-VM fleet (2.2 M timeseries) it forgot them every few batches and
// wrote five fields rows for every sample (22 M fields rows for 4.4 M
// samples in system.query_log): the "ceiling" was mostly fields inserts.
// Here, as a user who knows the fleet would, fields and schemas are written
// once per timeseries, rows are built into reused typed column buffers
// and sorted by their table's sorting key (as the forwarder sends them)
// outside the timed section, and the timed section is only the INSERT of
// each table: one columnar Append per column and Send, measurements on the
// statement's batch kept from the last INSERT (internal/chbatch), as the
// forwarder does.

// directRows is one batch of rows in typed columns, reused batch after batch.
type directRows struct {
	meas    [pa.DatumHistogramF64 + 1]*directMeas
	fields  [pa.FieldUUID + 1]*directFields
	schemas []pa.TimeseriesSchema
	perm    permutation // the sorts' scratch
}

// each calls m for every measurements table and f for every fields table
// the rows have.
func (r *directRows) each(m func(*directMeas), f func(*directFields)) {
	for _, t := range r.meas {
		if t != nil {
			m(t)
		}
	}
	for _, t := range r.fields {
		if t != nil {
			f(t)
		}
	}
}

// directMeas is one measurements table's columns. Datums are never
// missing in the fleet, so the Nullable value columns take plain slices.
type directMeas struct {
	names  []string
	keys   []uint64
	ts     []int64
	start  []int64
	f64    []float64
	i64    []int64
	u64    []uint64
	bins   [][]float64
	counts [][]uint64
	min    []float64
	max    []float64
	sum    []float64
}

func (m *directMeas) reset() {
	*m = directMeas{names: m.names[:0], keys: m.keys[:0], ts: m.ts[:0], start: m.start[:0], f64: m.f64[:0], i64: m.i64[:0], u64: m.u64[:0],
		bins: m.bins[:0], counts: m.counts[:0], min: m.min[:0], max: m.max[:0], sum: m.sum[:0]}
}

// directFields is one fields table's columns.
type directFields struct {
	names  []string
	keys   []uint64
	fields []string
	str    []string
	u8     []uint8
	u32    []uint32
	u64    []uint64
	i64    []int64
}

func (f *directFields) reset() {
	*f = directFields{names: f.names[:0], keys: f.keys[:0], fields: f.fields[:0], str: f.str[:0], u8: f.u8[:0], u32: f.u32[:0], u64: f.u64[:0], i64: f.i64[:0]}
}

// directInserter builds and inserts directRows into one database.
type directInserter struct {
	conn        driver.Conn
	batches     *chbatch.Pool
	db          string
	seen        map[uint64]struct{} // timeseries whose fields are written: the whole fleet, no bound
	seenSchemas map[pa.SchemaKey]struct{}
	names       map[[2]string]string
	scratch     []byte
	rows        directRows
	// Rows inserted, for the notes: measurements and fields.
	measRows, fieldRows int
	// Time spent in schema and fields inserts, and in measurements inserts.
	tookFields, tookMeas time.Duration
}

func newDirectInserter(conn driver.Conn, db string) *directInserter {
	return &directInserter{conn: conn, batches: chbatch.NewPool(conn, nil), db: db, seen: map[uint64]struct{}{}, seenSchemas: map[pa.SchemaKey]struct{}{}, names: map[[2]string]string{}}
}

func (d *directInserter) name(s *pa.Sample) string {
	k := [2]string{s.Target.Name, s.Metric.Name}
	n, ok := d.names[k]
	if !ok {
		n = s.Target.Name + ":" + s.Metric.Name
		d.names[k] = n
	}
	return n
}

// build turns samples into column rows: untimed, the "rows ready in
// memory" part. It marks their timeseries as written, so the insert that
// follows must succeed (the benchmark stops otherwise).
func (d *directInserter) build(samples []pa.Sample) error {
	r := &d.rows
	r.each((*directMeas).reset, (*directFields).reset)
	r.schemas = r.schemas[:0]
	for i := range samples {
		s := &samples[i]
		if s.Datum.Missing {
			return fmt.Errorf("direct baseline: missing datums are not supported")
		}
		name := d.name(s)
		d.scratch = pa.AppendTimeseriesKeyBytes(d.scratch[:0], s)
		key := pa.HashTimeseriesKeyBytes(d.scratch)
		t := s.Datum.Type
		if r.meas[t] == nil {
			r.meas[t] = &directMeas{}
		}
		m := r.meas[t]
		m.names, m.keys, m.ts = append(m.names, name), append(m.keys, key), append(m.ts, s.TimestampNs)
		if t.HasStartTime() {
			m.start = append(m.start, s.Datum.StartTimeNs)
		}
		switch t {
		case pa.DatumF64, pa.DatumCumulativeF64:
			m.f64 = append(m.f64, s.Datum.F64)
		case pa.DatumI64, pa.DatumCumulativeI64:
			m.i64 = append(m.i64, s.Datum.Int)
		case pa.DatumU64, pa.DatumCumulativeU64:
			m.u64 = append(m.u64, s.Datum.Uint)
		case pa.DatumHistogramF64:
			h := s.Datum.HistF64
			m.bins, m.counts = append(m.bins, h.Bins), append(m.counts, h.Counts)
			m.min, m.max, m.sum = append(m.min, h.Min), append(m.max, h.Max), append(m.sum, h.Sum)
		default:
			return fmt.Errorf("direct baseline: datum type %s is not supported", t)
		}
		if _, ok := d.seen[key]; ok {
			continue
		}
		d.seen[key] = struct{}{}
		for _, group := range [2][]pa.Field{s.Target.Fields, s.Metric.Fields} {
			for fi := range group {
				fv := &group[fi]
				ft := fv.Value.Type
				if r.fields[ft] == nil {
					r.fields[ft] = &directFields{}
				}
				f := r.fields[ft]
				f.names, f.keys, f.fields = append(f.names, name), append(f.keys, key), append(f.fields, fv.Name)
				switch ft {
				case pa.FieldString:
					f.str = append(f.str, fv.Value.Str)
				case pa.FieldU8:
					f.u8 = append(f.u8, uint8(fv.Value.Uint))
				case pa.FieldU32:
					f.u32 = append(f.u32, uint32(fv.Value.Uint))
				case pa.FieldU64:
					f.u64 = append(f.u64, fv.Value.Uint)
				case pa.FieldI64:
					f.i64 = append(f.i64, fv.Value.Int)
				default:
					return fmt.Errorf("direct baseline: field type %s is not supported", ft)
				}
			}
		}
		sk := pa.SchemaKey{Name: name, Version: pa.SchemaVersionOf(s)}
		if _, ok := d.seenSchemas[sk]; !ok {
			d.seenSchemas[sk] = struct{}{}
			r.schemas = append(r.schemas, pa.SchemaOf(s))
		}
	}
	r.each(func(m *directMeas) { m.sortRows(&r.perm) }, func(f *directFields) { f.sortRows(&r.perm) })
	return nil
}

// sortRows puts f's rows in the fields table's sorting-key order (name,
// field name, value, key), as the forwarder sends them. Untimed.
func (f *directFields) sortRows(p *permutation) {
	value := func(a, b int) int { return 0 } // the column the table's values are in
	switch {
	case len(f.str) > 0:
		value = func(a, b int) int { return strings.Compare(f.str[a], f.str[b]) }
	case len(f.u8) > 0:
		value = func(a, b int) int { return cmp.Compare(f.u8[a], f.u8[b]) }
	case len(f.u32) > 0:
		value = func(a, b int) int { return cmp.Compare(f.u32[a], f.u32[b]) }
	case len(f.u64) > 0:
		value = func(a, b int) int { return cmp.Compare(f.u64[a], f.u64[b]) }
	case len(f.i64) > 0:
		value = func(a, b int) int { return cmp.Compare(f.i64[a], f.i64[b]) }
	}
	p.sort(len(f.names), func(a, b int) int {
		return cmp.Or(strings.Compare(f.names[a], f.names[b]), strings.Compare(f.fields[a], f.fields[b]), value(a, b), cmp.Compare(f.keys[a], f.keys[b]))
	})
	permute(f.names, p)
	permute(f.keys, p)
	permute(f.fields, p)
	permute(f.str, p)
	permute(f.u8, p)
	permute(f.u32, p)
	permute(f.u64, p)
	permute(f.i64, p)
}

// sortRows puts m's rows in the table's sorting-key order (name, key,
// start time, timestamp), as the forwarder sends them: the server then
// skips its own sort of the block, which a careful user would want too.
// Untimed, as building the rows is.
func (m *directMeas) sortRows(p *permutation) {
	p.sort(len(m.names), func(a, b int) int {
		c := cmp.Or(strings.Compare(m.names[a], m.names[b]), cmp.Compare(m.keys[a], m.keys[b]))
		if c == 0 && len(m.start) > 0 {
			c = cmp.Compare(m.start[a], m.start[b])
		}
		return cmp.Or(c, cmp.Compare(m.ts[a], m.ts[b]))
	})
	permute(m.names, p)
	permute(m.keys, p)
	permute(m.ts, p)
	permute(m.start, p)
	permute(m.f64, p)
	permute(m.i64, p)
	permute(m.u64, p)
	permute(m.bins, p)
	permute(m.counts, p)
	permute(m.min, p)
	permute(m.max, p)
	permute(m.sum, p)
}

// permutation is a sorted order of n rows (order[i]: the row that goes to
// i) and the scratch permute needs, both reused from sort to sort.
type permutation struct {
	order []int
	done  []bool
}

// sort sets p to the order of rows 0..n-1 by compare.
func (p *permutation) sort(n int, compare func(a, b int) int) {
	if cap(p.order) < n {
		p.order, p.done = make([]int, n), make([]bool, n)
	}
	p.order, p.done = p.order[:n], p.done[:n]
	for i := range p.order {
		p.order[i] = i
	}
	slices.SortFunc(p.order, compare)
}

// permute puts col's rows in p's order (col[i] becomes the old
// col[p.order[i]]) in place, cycle by cycle, so that the baseline's reused
// column arrays stay its own (no new arrays per batch, no garbage for the
// collector to chase during the timed inserts). A column of no rows (one
// the table does not use) is left alone.
func permute[T any](col []T, p *permutation) {
	if len(col) == 0 {
		return
	}
	clear(p.done)
	for first := range col {
		if p.done[first] {
			continue
		}
		held, i := col[first], first
		for {
			p.done[i] = true
			next := p.order[i]
			if next == first {
				col[i] = held
				break
			}
			col[i] = col[next]
			i = next
		}
	}
}

// insert sends the built rows: schemas, fields, then measurements, as the
// forwarder orders them. This is the timed part.
func (d *directInserter) insert(ctx context.Context) error {
	r := &d.rows
	start := time.Now()
	if len(r.schemas) > 0 {
		if err := d.send(ctx, "timeseries_schema", schemaData(r.schemas)...); err != nil {
			return err
		}
	}
	for ft, f := range r.fields {
		if f == nil || len(f.names) == 0 {
			continue
		}
		var v any
		switch pa.FieldType(ft) {
		case pa.FieldString:
			v = f.str
		case pa.FieldU8:
			v = f.u8
		case pa.FieldU32:
			v = f.u32
		case pa.FieldU64:
			v = f.u64
		case pa.FieldI64:
			v = f.i64
		}
		if err := d.send(ctx, forwarder.FieldsTable(pa.FieldType(ft)),
			col{"timeseries_name", f.names}, col{"timeseries_key", f.keys}, col{"field_name", f.fields}, col{"field_value", v}); err != nil {
			return err
		}
		d.fieldRows += len(f.names)
	}
	d.tookFields += time.Since(start)
	start = time.Now()
	defer func() { d.tookMeas += time.Since(start) }()
	for dt, m := range r.meas {
		if m == nil || len(m.names) == 0 {
			continue
		}
		t := pa.DatumType(dt)
		cols := []col{{"timeseries_name", m.names}, {"timeseries_key", m.keys}, {"timestamp_ns", m.ts}}
		if t.HasStartTime() {
			cols = append(cols, col{"start_time_ns", m.start})
		}
		switch t {
		case pa.DatumF64, pa.DatumCumulativeF64:
			cols = append(cols, col{"datum", m.f64})
		case pa.DatumI64, pa.DatumCumulativeI64:
			cols = append(cols, col{"datum", m.i64})
		case pa.DatumU64, pa.DatumCumulativeU64:
			cols = append(cols, col{"datum", m.u64})
		case pa.DatumHistogramF64:
			cols = append(cols, col{"bins", m.bins}, col{"counts", m.counts}, col{"min", m.min}, col{"max", m.max}, col{"sum_of_samples", m.sum})
		}
		if err := d.sendKept(ctx, forwarder.MeasurementsTable(t), cols...); err != nil {
			return err
		}
		d.measRows += len(m.names)
	}
	return nil
}

// col is one column of an INSERT: its name and a typed slice.
type col struct {
	name string
	data any
}

// send runs one INSERT with one columnar Append per column, on a batch of
// its own (schemas and fields, as the forwarder's).
func (d *directInserter) send(ctx context.Context, table string, cols ...col) error {
	q, data := d.statement(table, cols)
	if err := chbatch.SendOnce(ctx, d.conn, q, data); err != nil {
		return fmt.Errorf("direct baseline: %s: %w", table, err)
	}
	return nil
}

// sendKept is send on the statement's batch kept from the last INSERT
// (measurements, as the forwarder's: internal/chbatch).
func (d *directInserter) sendKept(ctx context.Context, table string, cols ...col) error {
	q, data := d.statement(table, cols)
	if err := d.batches.Send(ctx, q, data); err != nil {
		return fmt.Errorf("direct baseline: %s: %w", table, err)
	}
	return nil
}

// statement is the INSERT of cols into table, and their data.
func (d *directInserter) statement(table string, cols []col) (string, []any) {
	names := make([]string, len(cols))
	data := make([]any, len(cols))
	for i, c := range cols {
		names[i], data[i] = c.name, c.data
	}
	return fmt.Sprintf("INSERT INTO %s.%s (%s)", d.db, table, strings.Join(names, ", ")), data
}

// schemaData is timeseries_schema's columns for schemas, as the forwarder
// builds them.
func schemaData(schemas []pa.TimeseriesSchema) []col {
	names, data := forwarder.SchemaColumns(schemas, time.Now().UnixNano())
	cols := make([]col, len(names))
	for i := range names {
		cols[i] = col{names[i], data[i]}
	}
	return cols
}

// directStats is a direct-insert run.
type directStats struct {
	samples, measRows, fieldRows int
	took                         time.Duration // the timed inserts only
	tookFields, tookMeas         time.Duration // of took: schemas and fields, measurements
}

// rate is samples per second with every row the fleet needs.
func (s directStats) rate() float64 { return float64(s.samples) / s.took.Seconds() }

// measurementsRate is samples per second counting only the measurements
// inserts: the rate once every timeseries' fields are written (a fleet
// that has been running).
func (s directStats) measurementsRate() float64 { return float64(s.samples) / s.tookMeas.Seconds() }

// directInsertFleet inserts n samples of fleet, from timestamp ts on, in
// batches of batchRows samples into db, timing only the inserts.
func directInsertFleet(ctx context.Context, conn driver.Conn, db string, fleet *sampletest.Fleet, n, batchRows int, ts int64) (directStats, error) {
	return newDirectInserter(conn, db).insertFleet(ctx, fleet, n, batchRows, ts)
}

// insertFleet inserts n samples of fleet, from timestamp ts on, in batches
// of batchRows samples, timing only the inserts. The stats are this call's
// alone; the timeseries whose fields are written carry over from earlier
// calls, as for a user whose fleet keeps running.
func (d *directInserter) insertFleet(ctx context.Context, fleet *sampletest.Fleet, n, batchRows int, ts int64) (directStats, error) {
	meas0, fields0, tookFields0, tookMeas0 := d.measRows, d.fieldRows, d.tookFields, d.tookMeas
	batch := make([]pa.Sample, 0, batchRows)
	st := directStats{samples: n}
	for done := 0; done < n; done += batchRows {
		batch = fleet.Append(batch[:0], min(batchRows, n-done), ts+int64(done))
		if err := d.build(batch); err != nil {
			return st, err
		}
		start := time.Now()
		if err := d.insert(ctx); err != nil {
			return st, err
		}
		st.took += time.Since(start)
	}
	st.measRows, st.fieldRows = d.measRows-meas0, d.fieldRows-fields0
	st.tookFields, st.tookMeas = d.tookFields-tookFields0, d.tookMeas-tookMeas0
	return st, nil
}

// directSteadyCeiling is the ceiling of `max`'s steps: warmup periods of a
// fresh fleet of vms VMs (every timeseries new, so its fields and schema
// rows are written, as in a step's warm-up), then periods periods more of
// the same fleet (every timeseries known: measurements rows only, the
// steady state a step measures), one inserter and one database throughout.
// fresh is the warm-up's stats, steady the measured periods'.
func directSteadyCeiling(ctx context.Context, conn driver.Conn, vms, warmup, periods int) (fresh, steady directStats, err error) {
	db, drop, err := freshDB(ctx, conn, "ceiling")
	if err != nil {
		return fresh, steady, err
	}
	defer drop()
	d := newDirectInserter(conn, db)
	fleet := sampletest.NewFleet(vms)
	perPeriod := vms * fleet.Measurements
	if fresh, err = d.insertFleet(ctx, fleet, warmup*perPeriod, 100_000, 0); err != nil {
		return fresh, steady, err
	}
	steady, err = d.insertFleet(ctx, fleet, periods*perPeriod, 100_000, int64(warmup*perPeriod))
	return fresh, steady, err
}
