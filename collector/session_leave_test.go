package collector_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/chtest"
	"github.com/holdfast/holdfast/internal/promtest"
	"github.com/holdfast/holdfast/internal/sampletest"
	"github.com/holdfast/holdfast/internal/state"
	pa "github.com/holdfast/holdfast/producerapi"
)

// TestLeavingProducerSessionDeleted: a producer taken off a running
// collector (a new assignment without it) has its page v3 session's
// definitions deleted from the state store once everything it sent is
// forwarded, while the producer that stays keeps its own; before, they
// stayed until the next restart.
func TestLeavingProducerSessionDeleted(t *testing.T) {
	ch := newClickHouse(t, chtest.Addr(t))
	db := ch.database("leave")
	dir := t.TempDir()
	metrics := prometheus.NewRegistry()
	c, stop := runCollector(t, collector.Options{DataDir: dir, CollectorID: "c", Registerer: metrics,
		Forwarder: forwarder.Options{Addr: ch.addr, Database: db, FlushAge: 100 * time.Millisecond}})
	admin := httptest.NewServer(c.AdminHandler(collector.AdminOptions{Gatherer: metrics}))
	defer admin.Close()

	fleet := sampletest.NewFleet(3) // 66 series a producer
	var urls []string
	var servers []*pa.Server
	for _, id := range []string{"stays", "leaves"} {
		srv, err := pa.NewServer(pa.ServerOptions{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		srv.Add(fleet.Append(nil, 66, 1))
		ps := httptest.NewServer(srv.Handler())
		defer ps.Close()
		urls = append(urls, ps.URL)
		servers = append(servers, srv)
	}
	// The producer that stays goes on producing, so deliveries go on.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ts := int64(1_000_000); ctx.Err() == nil; ts += 1_000_000 {
			servers[0].Add(fleet.Append(nil, 66, ts))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	assign := func(ids ...int) {
		t.Helper()
		var cfgs []collector.ProducerConfig
		for _, i := range ids {
			cfgs = append(cfgs, collector.ProducerConfig{ID: []string{"stays", "leaves"}[i], URL: urls[i], Interval: 50 * time.Millisecond})
		}
		if err := c.SetAssigned(cfgs); err != nil {
			t.Fatal(err)
		}
	}
	ids := regexp.MustCompile(`\nholdfast_forwarder_session_ids (\d+)\n`)
	sessionIDs := func() string {
		m := ids.FindStringSubmatch(promtest.Scrape(t, admin.URL))
		if m == nil {
			return "none"
		}
		return m[1]
	}
	assign(0, 1)
	waitFor(t, time.Minute, "both producers' sessions forwarded", func() (bool, string) {
		return sessionIDs() == "132", "session ids " + sessionIDs()
	})
	assign(0)
	waitFor(t, time.Minute, "the leaving producer's session dropped", func() (bool, string) {
		return sessionIDs() == "66", "session ids " + sessionIDs()
	})
	cancel()
	stop()

	st, err := state.Open(dir+"/state", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sessions := 0
	for producer, wantAny := range map[string]bool{"stays": true, "leaves": false} {
		n := countPrefix(t, st, []byte("sessmeta/"+producer+"\x00"))
		if (n > 0) != wantAny {
			t.Errorf("%s: %d sessions in the state store, want any: %v", producer, n, wantAny)
		}
		sessions += n
	}
	// Every definitions file left is a session the state store still
	// has: the one that stays.
	files, err := filepath.Glob(filepath.Join(dir, "sessions", "*.defs"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != sessions {
		t.Errorf("%d session definition files left, want %d (the staying producer's sessions)", len(files), sessions)
	}
}

func countPrefix(t *testing.T, db *pebble.DB, prefix []byte) int {
	t.Helper()
	lower, upper := state.PrefixBounds(prefix)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if !bytes.HasPrefix(it.Key(), prefix) {
			t.Fatalf("key %q outside %q", it.Key(), prefix)
		}
		n++
	}
	return n
}
