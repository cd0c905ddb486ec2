package collector_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/holdfast/holdfast/forwarder"
	pa "github.com/holdfast/holdfast/producerapi"
	"github.com/holdfast/holdfast/registry"
)

// registryLoads is each live collector's producer count, from the registry.
func registryLoads(regURL string) (map[string]int, error) {
	var cs []registry.CollectorInfo
	if err := getJSON(regURL+"/v1/collectors", &cs); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, c := range cs {
		if c.Live {
			out[c.ID] = c.Producers
		}
	}
	return out, nil
}

var movesLine = regexp.MustCompile(`(?m)^holdfast_registry_rebalance_moves_total (\S+)$`)

func rebalanceMoves(t *testing.T, regURL string) int {
	t.Helper()
	resp, err := http.Get(regURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := movesLine.FindSubmatch(b)
	if m == nil {
		t.Fatalf("registry /metrics has no holdfast_registry_rebalance_moves_total")
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return int(v)
}

// TestRebalanceOnJoinAndReturn runs a registry, two collectors and nine
// producers as processes, with ClickHouse. The registry assigns the
// producers 5/4. A third collector joins: the rebalancer moves producers to
// it, one a second (--rebalance-moves-per-minute 60), until 3/3/3, with the
// 3 moves that takes and no more. The third collector then stops; its lease
// runs out and its producers go to the other two; it comes back on the same
// data directory and gets its share again (3 more moves). Every producer
// releases everything, and ClickHouse holds every sample exactly once, per
// series and in total.
func TestRebalanceOnJoinAndReturn(t *testing.T) {
	ch := newClickHouse(t, "")
	db := ch.database("rebalance")
	regAddr := freeAddr(t)
	regURL := "http://" + regAddr
	const lease = 2 * time.Second
	startProc(t, "registry", "registry", "--listen", regAddr, "--data-dir", t.TempDir(), "--producer-lease", lease.String(),
		"--collector-lease", lease.String(), "--rebalance-moves-per-minute", "60")
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	admins := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	startCollector := func(i int) *proc {
		return startProc(t, fmt.Sprintf("collector-%d", i), collectorArgs(dirs[i], admins[i], ch.addr, db, nil,
			"--id", fmt.Sprintf("col-%d", i), "--registry", regURL, "--refresh", "300ms")...)
	}
	startCollector(0)
	startCollector(1)
	waitFor(t, 30*time.Second, "two live collectors", func() (bool, string) {
		l, err := registryLoads(regURL)
		return err == nil && len(l) == 2, fmt.Sprint(l, err)
	})
	const producers, total, vms = 9, 12_000, 2
	var paddrs []string
	for i := 0; i < producers; i++ {
		p := freeAddr(t)
		startProc(t, fmt.Sprintf("producer-%d", i), producerArgs(p, vms, "100ms", total, "--registry", regURL,
			"--id", fmt.Sprintf("prod-%d", i), "--vm-offset", fmt.Sprint(i*vms))...)
		paddrs = append(paddrs, p)
	}
	waitFor(t, 30*time.Second, "nine producers assigned 5/4", func() (bool, string) {
		l, err := registryLoads(regURL)
		return err == nil && l["col-0"]+l["col-1"] == producers && max(l["col-0"], l["col-1"]) == 5, fmt.Sprint(l, err)
	})
	if n := rebalanceMoves(t, regURL); n != 0 {
		t.Fatalf("%d moves before any collector joined", n)
	}

	// A third collector joins.
	joined := time.Now()
	c2 := startCollector(2)
	even := func(what string) {
		t.Helper()
		waitFor(t, 60*time.Second, what, func() (bool, string) {
			l, err := registryLoads(regURL)
			return err == nil && len(l) == 3 && l["col-0"] == 3 && l["col-1"] == 3 && l["col-2"] == 3, fmt.Sprint(l, err)
		})
		// And the third collects from its share.
		waitFor(t, 30*time.Second, "col-2 collecting from 3 producers", func() (bool, string) {
			st, err := collectorStatus(admins[2])
			n := 0
			for _, p := range st.Producers {
				if !p.LastSuccess.IsZero() {
					n++
				}
			}
			return err == nil && n == 3, fmt.Sprint(n, err)
		})
	}
	even("3/3/3 after col-2 joined")
	t.Logf("load even %v after the third collector joined", time.Since(joined).Round(100*time.Millisecond))
	if n := rebalanceMoves(t, regURL); n != 3 {
		t.Fatalf("%d moves to even 5/4/0, want the 3 it takes", n)
	}

	// It stops; its lease runs out and its producers go to the others.
	c2.stop()
	waitFor(t, 30*time.Second, "col-2's producers on col-0 and col-1", func() (bool, string) {
		l, err := registryLoads(regURL)
		return err == nil && len(l) == 2 && l["col-0"]+l["col-1"] == producers, fmt.Sprint(l, err)
	})
	// It comes back on the same data directory.
	back := time.Now()
	startCollector(2)
	even("3/3/3 after col-2 came back")
	t.Logf("load even %v after the third collector came back", time.Since(back).Round(100*time.Millisecond))
	if n := rebalanceMoves(t, regURL); n != 6 {
		t.Fatalf("%d moves in all, want 3 + 3", n)
	}

	for _, p := range paddrs {
		st := waitReleased(t, p, total, 3*time.Minute)
		if st.Dropped != 0 {
			t.Fatalf("producer %s dropped %d samples", p, st.Dropped)
		}
	}
	for _, a := range admins {
		flush(t, a)
	}
	ch.expect(db, producers*total)
	// Per series: as many rows as distinct timestamps, for every series.
	series, raw := 0, uint64(0)
	for _, dt := range pa.AllDatumTypes() {
		var rows uint64
		if err := ch.conn.QueryRow(context.Background(), fmt.Sprintf("SELECT count() FROM %s.%s", db, forwarder.MeasurementsTable(dt))).Scan(&rows); err == nil {
			raw += rows // without FINAL: rows a page written by two collectors left twice
		}
		q := fmt.Sprintf("SELECT count(), countIf(c != u) FROM (SELECT timeseries_key, count() AS c, uniqExact(timestamp_ns) AS u FROM %s.%s FINAL GROUP BY timeseries_key)", db, forwarder.MeasurementsTable(dt))
		var n, bad uint64
		if err := ch.conn.QueryRow(context.Background(), q).Scan(&n, &bad); err != nil {
			if strings.Contains(err.Error(), "doesn't exist") {
				continue // a datum type never produced
			}
			t.Fatalf("%s: %v", q, err)
		}
		if bad != 0 {
			t.Fatalf("%s: %d series with a sample more than once", forwarder.MeasurementsTable(dt), bad)
		}
		series += int(n)
	}
	if series == 0 {
		t.Fatal("no series found")
	}
	t.Logf("%d producers, %d samples each, %d series: every sample once (%d rows stored before merging duplicates)", producers, total, series, raw)
}
