package bench

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/sampletest"
)

// TestDirectBaselineWritesTheForwardersRows: the direct-insert ceiling
// must insert exactly the rows holdfast's writer inserts for the same fleet
// (measurements, fields once per timeseries, schemas), or the ratio to it
// compares different work. The fleet is larger than one batch and spans
// three periods, so both first-seen and known timeseries are in it.
func TestDirectBaselineWritesTheForwardersRows(t *testing.T) {
	_, conn := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const vms, batch = 40, 500
	n := vms * 22 * 3
	const ts = 1_700_000_000_000_000_000

	viaWriter, drop, err := freshDB(ctx, conn, "dirref")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	ins := forwarder.NewInserter(conn, viaWriter)
	fleet := sampletest.NewFleet(vms)
	for done := 0; done < n; done += batch {
		if err := ins.Insert(ctx, fleet.Append(nil, min(batch, n-done), ts+int64(done))); err != nil {
			t.Fatal(err)
		}
	}

	direct, drop2, err := freshDB(ctx, conn, "dirnew")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop2)
	st, err := directInsertFleet(ctx, conn, direct, sampletest.NewFleet(vms), n, batch, ts)
	if err != nil {
		t.Fatal(err)
	}
	if st.measRows != n || st.fieldRows != vms*22*5 {
		t.Errorf("direct baseline inserted %d measurement and %d fields rows, want %d and %d", st.measRows, st.fieldRows, n, vms*22*5)
	}

	tables := tableNames(ctx, t, conn, viaWriter)
	if got := tableNames(ctx, t, conn, direct); !slices.Equal(got, tables) {
		t.Fatalf("tables differ: %v vs %v", got, tables)
	}
	nonEmpty := 0
	for _, table := range tables {
		if table == "schema_version" { // EnsureSchema's, with its own time
			continue
		}
		want, got := dumpTable(ctx, t, conn, viaWriter, table), dumpTable(ctx, t, conn, direct, table)
		if len(want) > 0 {
			nonEmpty++
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: direct baseline has %d rows, the forwarder's writer %d; first difference: %s", table, len(got), len(want), firstDiff(got, want))
		}
	}
	if nonEmpty < 8 { // 4 measurements, 4 fields tables, the schema table
		t.Fatalf("only %d tables hold rows: the comparison compared nothing", nonEmpty)
	}
}

func tableNames(ctx context.Context, t *testing.T, conn driver.Conn, db string) []string {
	t.Helper()
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = '"+db+"' ORDER BY name")
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

// dumpTable returns a table's rows as sorted strings, every column but the
// insert time (created_ns).
func dumpTable(ctx context.Context, t *testing.T, conn driver.Conn, db, table string) []string {
	t.Helper()
	crows, err := conn.Query(ctx, fmt.Sprintf("SELECT name FROM system.columns WHERE database = '%s' AND table = '%s' AND name != 'created_ns' AND default_kind = ''", db, table))
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for crows.Next() {
		var c string
		if err := crows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	crows.Close()
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT %s FROM %s.%s", strings.Join(cols, ", "), db, table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out []string
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i := range dest {
			v := reflect.ValueOf(dest[i]).Elem()
			for v.Kind() == reflect.Pointer && !v.IsNil() {
				v = v.Elem()
			}
			fmt.Fprintf(&b, "%v|", v.Interface())
		}
		out = append(out, b.String())
	}
	slices.Sort(out)
	return out
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("%q vs %q", a[i], b[i])
		}
	}
	return "(one is a prefix of the other)"
}
