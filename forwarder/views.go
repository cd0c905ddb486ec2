package forwarder

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	pa "github.com/holdfast/holdfast/producerapi"
)

// The views readers use (docs/queries.md). The tables split a series over a
// measurements table and up to twelve typed fields tables, and hold replays
// until a merge or FINAL collapses them; the views put it back together:
//
//	timeseries            one row per series: timeseries_name, timeseries_key,
//	                      field_names Array(String) (sorted), field_values
//	                      Array(String) (the same order, as text)
//	samples_<datum type>  measurements_<datum type> read with FINAL, with
//	                      the timestamp alias and the series' field_names and
//	                      field_values (empty arrays for a series without
//	                      fields)
//
// Views hold no data and are not part of the stored layout, so they need no
// schema version: they are created (IF NOT EXISTS) whenever one is missing,
// after the tables, on every start. A later build that changes a view's
// definition must drop the old one (that would be a migration step).
//
// Views cost nothing to keep but are not free to read: ClickHouse 18.16
// pushes no WHERE into a view (enable_optimize_predicate_expression does not
// reach views there), so each read of a view reads its tables whole, FINAL
// included. Modern servers push the filter down. docs/queries.md gives the
// table form of each query for large data on old servers.

// TimeseriesView is the view with one row per series and its fields.
const TimeseriesView = "timeseries"

// SamplesView is the view of the samples of datum type t with their fields.
func SamplesView(t pa.DatumType) string { return "samples_" + t.String() }

// fieldText is the expression turning a fields table's field_value into
// the text the views carry: what producerapi prints for the value.
func fieldText(t pa.FieldType) string {
	switch t {
	case pa.FieldString, pa.FieldIPAddr:
		return "field_value" // IP addresses are stored as their text
	case pa.FieldBool:
		return "if(field_value = 0, 'false', 'true')"
	}
	return "toString(field_value)"
}

// onCluster is the ON CLUSTER clause of a DDL statement, "" on one server.
func onCluster(cluster string) string {
	if cluster == "" {
		return ""
	}
	return " ON CLUSTER " + cluster
}

func timeseriesViewDDL(db, cluster string) string {
	var parts []string
	for _, t := range pa.AllFieldTypes() {
		// Every branch names its column alike: 18.16's UNION ALL takes the
		// names of the first. FINAL: a replay rewrites the fields rows.
		parts = append(parts, fmt.Sprintf("    SELECT timeseries_name, timeseries_key, field_name, %s AS value FROM %s.%s FINAL",
			fieldText(t), db, FieldsTable(t)))
	}
	// groupArray of (name, value) pairs, sorted: the two arrays come out of
	// one array, so they stay aligned, and sorted by name they compare
	// equal across servers and replays.
	return fmt.Sprintf(`CREATE VIEW IF NOT EXISTS %s.%s%s AS
SELECT timeseries_name, timeseries_key,
  arrayMap(f -> f.1, fields) AS field_names,
  arrayMap(f -> f.2, fields) AS field_values
FROM (
  SELECT timeseries_name, timeseries_key, arraySort(groupArray((field_name, value))) AS fields
  FROM (
%s
  )
  GROUP BY timeseries_name, timeseries_key
)`, db, TimeseriesView, onCluster(cluster), strings.Join(parts, "\n    UNION ALL\n"))
}

func samplesViewDDL(db, cluster string, t pa.DatumType) string {
	// measurementColumns is the stored columns; the timestamp alias is not
	// among them and is not in SELECT *, so it is named.
	cols := append([]string{}, measurementColumns(t)[:3]...)
	cols = append(cols, "timestamp")
	cols = append(cols, measurementColumns(t)[3:]...)
	list := strings.Join(cols, ", ")
	// ALL LEFT JOIN: every sample once (the right side has one row per
	// series), and a series without fields keeps its samples with empty
	// arrays. ALL, not ANY: ANY means one row per key on both sides from
	// 20.x on. The subqueries have aliases: newer servers refuse a joined
	// subquery without one (joined_subquery_requires_alias).
	return fmt.Sprintf(`CREATE VIEW IF NOT EXISTS %s.%s%s AS
SELECT %s, field_names, field_values
FROM (SELECT %s FROM %s.%s FINAL) AS m
ALL LEFT JOIN (SELECT timeseries_name, timeseries_key, field_names, field_values FROM %s.%s) AS f
USING (timeseries_name, timeseries_key)`,
		db, SamplesView(t), onCluster(cluster), list, list, db, MeasurementsTable(t), db, TimeseriesView)
}

// viewNames lists the views in the order they are created (samples views
// read the timeseries view).
func viewNames() []string {
	out := []string{TimeseriesView}
	for _, t := range pa.AllDatumTypes() {
		out = append(out, SamplesView(t))
	}
	return out
}

// ViewsDDL returns the statements creating the views of db, ON CLUSTER
// cluster when cluster is set (there they read the Distributed tables, so
// they see every shard). They must run after the tables'.
func ViewsDDL(db, cluster string) []string {
	out := []string{timeseriesViewDDL(db, cluster)}
	for _, t := range pa.AllDatumTypes() {
		out = append(out, samplesViewDDL(db, cluster, t))
	}
	return out
}

// ensureViews creates the views of db that are missing. A view that fails
// is logged, not returned: views are a convenience for readers, and the
// forwarder must not stop delivering because a server refused one. A name
// taken by something that is not a view is left alone, with a warning.
//
// On a cluster the statements go ON CLUSTER, and only when a view is missing
// on this server (ON CLUSTER waits for every host). The first failure ends
// the attempt, so a cluster with a server down costs one statement timeout
// (the tables' DDL costs the same there); the distributed DDL queue still
// creates the view on that server when it returns.
func ensureViews(ctx context.Context, conn driver.Conn, db, cluster string, timeout time.Duration) {
	engines, err := tableEngines(ctx, conn, db, timeout)
	if err != nil {
		slog.Warn("forwarder: not creating the views: listing tables failed", "database", db, "err", err)
		return
	}
	stmts := ViewsDDL(db, cluster)
	for i, name := range viewNames() {
		engine, exists := engines[name]
		switch {
		case exists && engine == "View":
			continue
		case exists:
			slog.Warn("forwarder: not creating a view: the name is taken", "view", db+"."+name, "engine", engine)
			continue
		}
		if err := execTimeout(ctx, conn, stmts[i], timeout); err != nil {
			// The rest are left for the next schema check: on a cluster
			// with a server down each ON CLUSTER statement waits out the
			// timeout, and 21 of them would hold delivery for 21 of them.
			slog.Warn("forwarder: creating a view failed; the rest are tried at the next start, and readers can query the tables meanwhile (docs/queries.md)",
				"view", db+"."+name, "err", err)
			return
		}
	}
}

func tableEngines(ctx context.Context, conn driver.Conn, db string, timeout time.Duration) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rows, err := conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ?", db)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			return nil, err
		}
		out[name] = engine
	}
	return out, rows.Err()
}
