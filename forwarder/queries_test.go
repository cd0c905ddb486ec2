package forwarder

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// queriesDoc is the cookbook whose every query TestQueriesDocAnswers runs.
const queriesDoc = "../docs/queries.md"

// docQuery is one ```sql block of docs/queries.md and the Markdown table
// right after it: the column names and rows the query must return.
type docQuery struct {
	line    int    // of the ```sql fence
	modern  bool   // ```sql modern: needs a newer server than 18.16
	sql     string // as written (database holdfast)
	columns []string
	rows    [][]string
}

var tableSep = regexp.MustCompile(`^\|(\s*:?-+:?\s*\|)+$`)

// parseQueriesDoc extracts every ```sql block and its result table. A block
// without a table right after it (blank lines allowed) is an error: the
// document must not show a query the test does not check.
func parseQueriesDoc(text string) ([]docQuery, error) {
	lines := strings.Split(text, "\n")
	var out []docQuery
	for i := 0; i < len(lines); i++ {
		fence := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(fence, "```sql") {
			continue
		}
		q := docQuery{line: i + 1, modern: strings.TrimSpace(strings.TrimPrefix(fence, "```sql")) == "modern"}
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		if i == len(lines) {
			return nil, fmt.Errorf("line %d: unterminated ```sql block", q.line)
		}
		q.sql = strings.TrimSpace(strings.Join(body, "\n"))
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) == ""; i++ {
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i], "|") || !tableSep.MatchString(strings.TrimSpace(lines[i+1])) {
			return nil, fmt.Errorf("line %d: the ```sql block is not followed by its result table", q.line)
		}
		q.columns = tableCells(lines[i])
		for i += 2; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
			q.rows = append(q.rows, tableCells(lines[i]))
		}
		i-- // the loop's i++ looks at the line after the table
		out = append(out, q)
	}
	return out, nil
}

// tableCells splits a Markdown table row. Cells are written in backquotes
// when they hold something Markdown would mangle; "\|" is a literal "|".
func tableCells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	row = strings.ReplaceAll(row, `\|`, "\x00")
	var out []string
	for _, c := range strings.Split(row, "|") {
		c = strings.TrimSpace(strings.ReplaceAll(c, "\x00", "|"))
		if len(c) >= 2 && c[0] == '`' && c[len(c)-1] == '`' {
			c = c[1 : len(c)-1]
		}
		out = append(out, c)
	}
	return out
}

// The example data of docs/queries.md ("The example data"), relative to
// the moment t0 it is written: four VMs' CPU, a byte counter that resets,
// a latency histogram.
var (
	vmA = uuid.MustParse("11111111-1111-4111-8111-111111111111")
	vmB = uuid.MustParse("22222222-2222-4222-8222-222222222222")
	vmC = uuid.MustParse("33333333-3333-4333-8333-333333333333")
	vmD = uuid.MustParse("44444444-4444-4444-8444-444444444444")
)

func exampleData(t0 int64) []pa.Sample {
	const s = int64(time.Second)
	target := func(project string, id uuid.UUID) pa.Named {
		return pa.Named{Name: "virtual_machine", Fields: []pa.Field{
			{Name: "project", Value: pa.StringValue(project)},
			{Name: "instance_id", Value: pa.UUIDValue(id)},
		}}
	}
	var out []pa.Sample
	// Every sample inside a query's window is at least 180 s inside it,
	// so the answers hold while the test takes less than 3 minutes from
	// t0 to its last query.
	//
	// cpu_busy (f64, percent) per VM and vCPU, 600, 120, 90, 60 and 30 s
	// before t0: the first of each falls outside "the last 5 minutes".
	for _, c := range []struct {
		project string
		id      uuid.UUID
		cpu     uint32
		first   float64
		step    float64
	}{
		{"alpha", vmA, 0, 10, 10},
		{"alpha", vmA, 1, 5, 10},
		{"alpha", vmB, 0, 60, 1},
		{"beta", vmC, 0, 90, 1},
		{"alpha", vmD, 0, 70, 1},
	} {
		for i, ago := range []int64{600, 120, 90, 60, 30} {
			out = append(out, pa.Sample{
				Target:      target(c.project, c.id),
				Metric:      pa.Named{Name: "cpu_busy", Fields: []pa.Field{{Name: "cpu", Value: pa.U32Value(c.cpu)}}},
				TimestampNs: t0 - ago*s,
				Datum:       pa.Datum{Type: pa.DatumF64, F64: c.first + float64(i)*c.step},
			})
		}
	}
	// bytes_sent (cumulative_u64) of VM A: counting since an hour ago, then
	// restarted 280 s ago (a new start time, the count from 0 again).
	for _, c := range []struct {
		ago, start int64
		v          uint64
	}{
		{660, 3600, 400}, {420, 3600, 1000}, {360, 3600, 1600}, {300, 3600, 2200},
		{240, 280, 300}, {180, 280, 900},
	} {
		out = append(out, pa.Sample{
			Target: target("alpha", vmA), Metric: pa.Named{Name: "bytes_sent"},
			TimestampNs: t0 - c.ago*s,
			Datum:       pa.Datum{Type: pa.DatumCumulativeU64, Uint: c.v, StartTimeNs: t0 - c.start*s},
		})
	}
	// io_latency (histogram_u64, microseconds): VM A's cumulative since an
	// hour ago, read 420 and 60 s before t0; VM B's too, read 660 and 420 s
	// before t0, then restarted 300 s before t0 and read at 60 s.
	for _, c := range []struct {
		id              uuid.UUID
		ago, start      int64
		counts          []uint64
		min, max, total uint64
	}{
		{vmA, 420, 3600, []uint64{0, 20, 20, 5, 5}, 1200, 12000, 175_000},
		{vmA, 60, 3600, []uint64{0, 40, 40, 10, 10}, 1200, 12000, 350_000},
		{vmB, 660, 3600, []uint64{0, 5, 5, 0, 0}, 1500, 3000, 20_000},
		{vmB, 420, 3600, []uint64{0, 10, 10, 0, 0}, 1500, 3000, 40_000},
		{vmB, 60, 300, []uint64{0, 10, 30, 5, 5}, 1500, 10000, 150_000},
	} {
		out = append(out, pa.Sample{
			Target: target("alpha", c.id), Metric: pa.Named{Name: "io_latency"},
			TimestampNs: t0 - c.ago*s,
			Datum: pa.Datum{Type: pa.DatumHistogramU64, StartTimeNs: t0 - c.start*s, HistU64: &pa.Histogram[uint64]{
				Bins: []uint64{0, 1000, 2000, 4000, 8000}, Counts: c.counts, Min: c.min, Max: c.max, Sum: c.total}},
		})
	}
	return out
}

// clickhouseClient runs q with clickhouse-client, as a user would, and
// returns its TSVWithNames output split into rows of cells.
func clickhouseClient(t *testing.T, addr, q string) ([][]string, error) {
	t.Helper()
	host, port, ok := strings.Cut(addr, ":")
	if !ok {
		t.Fatalf("address %q has no port", addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "clickhouse-client", "--host", host, "--port", port, "--format", "TSVWithNames", "--query", q)
	out, err := cmd.Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return nil, fmt.Errorf("%s", msg)
	}
	var rows [][]string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		rows = append(rows, strings.Split(sc.Text(), "\t"))
	}
	return rows, sc.Err()
}

// relTime matches <T-240> in a result table: the timestamp 240 s before
// the example data's t0, as the server prints a DateTime.
var relTime = regexp.MustCompile(`<T-(\d+)>`)

// TestQueriesDocAnswers runs every query of docs/queries.md with
// clickhouse-client against the real server, on the example data written
// through the forwarder (twice, as a replay would: the answers must not
// count anything twice), and compares each answer with the table the
// document shows under it. ```sql modern blocks need a newer server; they
// are run on ClickHouse 26.5 by scripts/modern_check.py.
func TestQueriesDocAnswers(t *testing.T) {
	text, err := os.ReadFile(queriesDoc)
	if err != nil {
		t.Fatal(err)
	}
	queries, err := parseQueriesDoc(string(text))
	if err != nil {
		t.Fatalf("%s: %v", queriesDoc, err)
	}
	if len(queries) < 10 {
		t.Fatalf("%s has %d queries; the cookbook has more: is the parser broken?", queriesDoc, len(queries))
	}
	e := newEnv(t, "")
	if _, err := exec.LookPath("clickhouse-client"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("clickhouse-client is not on PATH but CI=true (scripts/clickhouse.sh install installs it)")
		}
		t.Skip("clickhouse-client is not on PATH")
	}
	t0 := time.Now().Truncate(time.Second)
	data := exampleData(t0.UnixNano())
	e.appendPages(data, 7)
	f, _ := e.start(e.options())
	e.flush(f, 60*time.Second)
	e.appendPages(data, 5) // a replay, in other parts
	e.flush(f, 60*time.Second)

	checkExampleGolden(t, e, t0.UnixNano())

	// Every <T-n> the tables use, as this server prints it.
	times := map[string]string{}
	for _, m := range relTime.FindAllStringSubmatch(string(text), -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		rows, err := clickhouseClient(t, e.addr, fmt.Sprintf("SELECT toString(toDateTime(%d)) AS t", t0.Unix()-n))
		if err != nil || len(rows) != 2 {
			t.Fatalf("formatting %s: %v %v", m[0], rows, err)
		}
		times[m[0]] = rows[1][0]
	}
	ran := 0
	for _, q := range queries {
		if q.modern {
			continue
		}
		ran++
		sql := strings.ReplaceAll(q.sql, "holdfast.", e.db+".")
		got, err := clickhouseClient(t, e.addr, sql)
		if err != nil {
			t.Errorf("%s:%d: %v\n%s", queriesDoc, q.line, err, q.sql)
			continue
		}
		want := [][]string{q.columns}
		for _, r := range q.rows {
			row := make([]string, len(r))
			for i, c := range r {
				row[i] = relTime.ReplaceAllStringFunc(c, func(s string) string { return times[s] })
			}
			want = append(want, row)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s:%d: the answer differs from the document's table\n%s\ngot:\n%s\nwant:\n%s",
				queriesDoc, q.line, q.sql, tabulate(got), tabulate(want))
		}
	}
	t.Logf("%d queries of %s answered as documented (%d modern ones are checked on 26.5)", ran, queriesDoc, len(queries)-ran)

	// README.md's example of the views, on the same data: project alpha's
	// four cpu_busy series, five samples each.
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```sql\n([^`]*FROM holdfast\\.samples_f64[^`]*)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no sql block reading holdfast.samples_f64")
	}
	rows, err := clickhouseClient(t, e.addr, strings.ReplaceAll(string(m[1]), "holdfast.", e.db+"."))
	if err != nil {
		t.Fatalf("README.md's view example: %v\n%s", err, m[1])
	}
	if len(rows) != 1+20 {
		t.Errorf("README.md's view example returned %d rows, want 20:\n%s", len(rows)-1, tabulate(rows))
	}
}

func tabulate(rows [][]string) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// TestParseQueriesDoc: the parser finds blocks and tables, and refuses a
// query shown without its answer.
func TestParseQueriesDoc(t *testing.T) {
	good := "text\n\n```sql\nSELECT 1 AS x, 'a|b' AS y\n```\n\n| x | y |\n|---|---|\n| 1 | `a\\|b` |\n\nmore\n\n```sql modern\nSELECT 2 AS z\n```\n| z |\n| --: |\n| 2 |\n"
	qs, err := parseQueriesDoc(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 || qs[0].sql != "SELECT 1 AS x, 'a|b' AS y" || fmt.Sprint(qs[0].columns) != "[x y]" ||
		fmt.Sprint(qs[0].rows) != "[[1 a|b]]" || qs[0].modern || !qs[1].modern || fmt.Sprint(qs[1].rows) != "[[2]]" {
		t.Fatalf("parsed %+v", qs)
	}
	for _, bad := range []string{
		"```sql\nSELECT 1\n```\n\nno table\n",
		"```sql\nSELECT 1\n```\n| x |\n| 1 |\n", // no separator row
		"```sql\nSELECT 1\n",
	} {
		if _, err := parseQueriesDoc(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestEnsureSchemaCreatesTheViews: EnsureSchema creates every view after
// the tables, again runs change nothing, a dropped view comes back, a
// name an operator took for a table is left alone and a view the server
// refuses is skipped, both without failing the schema (views are for
// readers; delivery must not depend on them).
func TestEnsureSchemaCreatesTheViews(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	views := func() []string {
		t.Helper()
		rows, err := e.conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine = 'View' ORDER BY name", e.db)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}
	want := viewNames()
	slices.Sort(want)
	for range 2 {
		if _, err := EnsureSchema(ctx, e.conn, e.db); err != nil {
			t.Fatal(err)
		}
		if got := views(); !slices.Equal(got, want) {
			t.Fatalf("views %v, want %v", got, want)
		}
	}
	if len(want) != 1+len(pa.AllDatumTypes()) {
		t.Fatalf("%d views, want the timeseries view and one per datum type", len(want))
	}
	for _, q := range []string{
		fmt.Sprintf("DROP TABLE %s.%s", e.db, SamplesView(pa.DatumF64)),
		fmt.Sprintf("DROP TABLE %s.%s", e.db, TimeseriesView),
		fmt.Sprintf("DROP TABLE %s.%s", e.db, SamplesView(pa.DatumString)),
		fmt.Sprintf("CREATE TABLE %s.%s (x UInt8) ENGINE = Memory", e.db, SamplesView(pa.DatumString)),
	} {
		if err := e.conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := EnsureSchema(ctx, e.conn, e.db); err != nil {
		t.Fatalf("EnsureSchema with samples_string's name taken by a table: %v", err)
	}
	got := views()
	if !slices.Contains(got, SamplesView(pa.DatumF64)) || !slices.Contains(got, TimeseriesView) || slices.Contains(got, SamplesView(pa.DatumString)) {
		t.Fatalf("views %v: want samples_f64 and timeseries back and samples_string still the operator's table", got)
	}
	// A view the server refuses: with timeseries an operator's table, the
	// samples views that read it cannot be created. The schema check still
	// succeeds: delivery does not wait for views.
	for _, q := range []string{
		fmt.Sprintf("DROP TABLE %s.%s", e.db, SamplesView(pa.DatumF64)),
		fmt.Sprintf("DROP TABLE %s.%s", e.db, TimeseriesView),
		fmt.Sprintf("CREATE TABLE %s.%s (x UInt8) ENGINE = Memory", e.db, TimeseriesView),
	} {
		if err := e.conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := EnsureSchema(ctx, e.conn, e.db); err != nil {
		t.Fatalf("EnsureSchema with a view the server refuses: %v", err)
	}
	if got := views(); slices.Contains(got, SamplesView(pa.DatumF64)) {
		t.Fatalf("views %v: samples_f64 was created over a timeseries table without fields", got)
	}
}

// exampleGolden holds the rows the forwarder wrote for the example data, as
// INSERT statements: scripts/modern_check.py loads it into ClickHouse 26.5
// (chDB, which has no native protocol for the forwarder to write to) and
// runs docs/queries.md there. Timestamps are written {T-n}, n nanoseconds
// before the moment the data was written; created_ns is 0.
const exampleGolden = "testdata/queries_example.sql"

// checkExampleGolden dumps every table of e.db that has rows, read with
// FINAL, and compares the dump with exampleGolden (HOLDFAST_UPDATE_GOLDEN=1
// rewrites it).
func checkExampleGolden(t *testing.T, e *env, t0 int64) {
	t.Helper()
	ctx := context.Background()
	tables, err := e.conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine LIKE '%MergeTree' AND name != 'schema_version' ORDER BY name", e.db)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for tables.Next() {
		var n string
		if err := tables.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	tables.Close()
	var b strings.Builder
	b.WriteString("-- The rows forwarder.TestQueriesDocAnswers wrote through the forwarder for docs/queries.md\n")
	b.WriteString("-- (read back with FINAL). {T-n}: n ns before the data was written. Regenerate with\n")
	b.WriteString("-- HOLDFAST_UPDATE_GOLDEN=1 go test ./forwarder -run TestQueriesDocAnswers\n")
	for _, name := range names {
		cols, exprs := literalColumns(t, e, name, t0)
		q := fmt.Sprintf("SELECT concat('(', %s, ')') AS row FROM %s.%s FINAL ORDER BY row", strings.Join(exprs, ", ', ', "), e.db, name)
		rows, err := e.conn.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var vals []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			vals = append(vals, v)
		}
		rows.Close()
		if len(vals) == 0 {
			continue
		}
		fmt.Fprintf(&b, "INSERT INTO holdfast.%s (%s) VALUES\n%s;\n", name, strings.Join(cols, ", "), strings.Join(vals, ",\n"))
	}
	got := b.String()
	if os.Getenv("HOLDFAST_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(exampleGolden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(exampleGolden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs from what the forwarder wrote (rerun with HOLDFAST_UPDATE_GOLDEN=1 and check it with scripts/modern-check.sh):\n%s", exampleGolden, got)
	}
}

// literalColumns returns the stored columns of table and, per column, a
// ClickHouse expression printing its value as a literal of the VALUES
// clause.
func literalColumns(t *testing.T, e *env, table string, t0 int64) (cols, exprs []string) {
	t.Helper()
	rows, err := e.conn.Query(context.Background(), "SELECT name, type FROM system.columns WHERE database = ? AND table = ? AND default_kind != 'ALIAS'", e.db, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, name)
		exprs = append(exprs, literalOf(name, typ, name, t0))
	}
	return cols, exprs
}

func literalOf(name, typ, x string, t0 int64) string {
	quote := func(s string) string {
		return fmt.Sprintf(`concat('\'', replaceAll(replaceAll(%s, '\\', '\\\\'), '\'', '\\\''), '\'')`, s)
	}
	switch {
	case name == "created_ns":
		return "'0'"
	case name == "timestamp_ns" || name == "start_time_ns":
		return fmt.Sprintf("concat('{T-', toString(%d - %s), '}')", t0, x)
	case strings.HasPrefix(typ, "Nullable("):
		inner := strings.TrimSuffix(strings.TrimPrefix(typ, "Nullable("), ")")
		return fmt.Sprintf("if(isNull(%s), 'NULL', %s)", x, literalOf(name, inner, "assumeNotNull("+x+")", t0))
	case typ == "String":
		return quote(x)
	case typ == "UUID":
		return quote("toString(" + x + ")")
	}
	return "toString(" + x + ")" // numbers, and arrays (printed as literals)
}

// TestTimeseriesViewFieldText: the timeseries view and a samples view carry
// a field of every type as the text producerapi prints for it (strings
// unquoted), names sorted and values in the same order, and each sample
// once although its page was forwarded twice.
func TestTimeseriesViewFieldText(t *testing.T) {
	e := newEnv(t, "")
	in := sampletest.EveryDatumType(1_700_000_000_000_000_000)
	e.appendPages(in, 9)
	f, _ := e.start(e.options())
	e.flush(f, 60*time.Second)
	e.appendPages(in, 4) // a replay
	e.flush(f, 60*time.Second)
	var s pa.Sample
	for _, x := range in {
		if x.Datum.Type == pa.DatumU16 && !x.Datum.Missing {
			s = x
		}
	}
	type nv struct{ name, value string }
	var want []nv
	for _, fl := range append(append([]pa.Field{}, s.Target.Fields...), s.Metric.Fields...) {
		v := fl.Value.String()
		if fl.Value.Type == pa.FieldString {
			v = fl.Value.Str
		}
		want = append(want, nv{fl.Name, v})
	}
	slices.SortFunc(want, func(a, b nv) int { return strings.Compare(a.name, b.name) })
	types := map[pa.FieldType]bool{}
	for _, fl := range s.Target.Fields {
		types[fl.Value.Type] = true
	}
	if len(types) != len(pa.AllFieldTypes()) {
		t.Fatalf("the edge-case target has fields of %d types, want all %d", len(types), len(pa.AllFieldTypes()))
	}
	ctx := context.Background()
	for _, q := range []string{
		fmt.Sprintf("SELECT field_names, field_values FROM %s.%s WHERE timeseries_name = ?", e.db, TimeseriesView),
		fmt.Sprintf("SELECT field_names, field_values FROM %s.%s WHERE timeseries_name = ?", e.db, SamplesView(pa.DatumU16)),
	} {
		rows, err := e.conn.Query(ctx, q, s.TimeseriesName())
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		n := 0
		for rows.Next() {
			n++
			var names, values []string
			if err := rows.Scan(&names, &values); err != nil {
				t.Fatal(err)
			}
			var got []nv
			for i := range names {
				got = append(got, nv{names[i], values[i]})
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s:\ngot  %v\nwant %v", q, got, want)
			}
		}
		rows.Close()
		if n != 1 {
			t.Errorf("%s: %d rows, want 1 (one series, one sample, forwarded twice)", q, n)
		}
	}
}
