package collector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

// TestAdminAPIAndHonestHealth runs a collector in-process against a real
// producer server over loopback, with ClickHouse unreachable: collection goes
// on into the WAL, and health turns unhealthy once the forwarder has made no
// progress for StallAfter with a backlog.
func TestAdminAPIAndHonestHealth(t *testing.T) {
	srv, hs := fleetProducer(t, 5000)
	reg := prometheus.NewRegistry()
	c, err := collector.Open(collector.Options{
		DataDir: t.TempDir(), CollectorID: "admin-test", DefaultInterval: 50 * time.Millisecond, StallAfter: 300 * time.Millisecond,
		DrainTimeout: 100 * time.Millisecond, Producers: []collector.ProducerConfig{{URL: hs.URL}}, Registerer: reg,
		Forwarder: forwarder.Options{Addr: "127.0.0.1:1", BatchRows: 100, FlushAge: 10 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	h := c.AdminHandler(collector.AdminOptions{Gatherer: reg})
	call := func(method, path, remote string) (int, map[string]any) {
		req := httptest.NewRequest(method, path, nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var body map[string]any
		json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body
	}
	waitFor(t, 10*time.Second, "pages in the WAL, an unhealthy forwarder and its insert error", func() (bool, string) {
		code, body := call("GET", "/healthz", "127.0.0.1:5")
		if code != http.StatusServiceUnavailable || !strings.Contains(strings.Join(anyStrings(body["reasons"]), " "), "no progress") {
			return false, stringify(body)
		}
		// Health can turn before the first insert attempt has failed and
		// recorded its error.
		_, cp := call("GET", "/v1/checkpoint", "127.0.0.1:5")
		msg, _ := cp["last_insert_error"].(string)
		return msg != "", stringify(cp)
	})
	code, cp := call("GET", "/v1/checkpoint", "127.0.0.1:5")
	if code != 200 || jsonNumber(t, cp, "wal_last_index") < 1 || jsonNumber(t, cp, "checkpoint_index") != 0 ||
		jsonNumber(t, cp, "backlog_records") < 1 || jsonNumber(t, cp, "backlog_bytes") <= 0 || jsonNumber(t, cp, "oldest_unforwarded_age_seconds") <= 0 ||
		!strings.Contains(jsonString(t, cp, "last_insert_error"), "127.0.0.1:1") {
		t.Fatalf("checkpoint: %d %s", code, stringify(cp))
	}
	// The lag is on /metrics while the forwarder falls behind (issue 9: the
	// backlog gauge was set only once it had caught up, so it read 0 exactly
	// while nothing reached ClickHouse).
	backlog := counterValue(t, reg, "holdfast_forwarder_backlog_records", nil)
	age := counterValue(t, reg, "holdfast_forwarder_oldest_unforwarded_age_seconds", nil)
	if backlog < 1 || age <= 0 || counterValue(t, reg, "holdfast_forwarder_backlog_bytes", nil) <= 0 {
		t.Fatalf("lag metrics while ClickHouse is down: backlog_records %v, oldest age %v s (checkpoint says %s)", backlog, age, stringify(cp))
	}
	if st := srv.Stats(); st.Released != 5000 {
		t.Fatalf("collection must go on while ClickHouse is down: producer released %d of 5000", st.Released)
	}
	// State changes are for loopback clients only.
	if code, _ := call("POST", "/v1/flush?timeout=50ms", "192.0.2.7:4000"); code != http.StatusForbidden {
		t.Fatalf("flush from a remote address: %d", code)
	}
	if code, body := call("POST", "/v1/flush?timeout=50ms", "127.0.0.1:4000"); code != http.StatusGatewayTimeout {
		t.Fatalf("flush with ClickHouse down: %d %s", code, stringify(body))
	}
	if code, _ := call("POST", "/v1/flush?timeout=banana", "127.0.0.1:4000"); code != http.StatusBadRequest {
		t.Fatalf("flush with a bad timeout: %d", code)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{"holdfast_collector_samples_total", "holdfast_wal_fsync_duration_seconds", "holdfast_forwarder_transient_errors_total"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func anyStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			} else {
				out = append(out, fmt.Sprint(x))
			}
		}
	}
	return out
}

// jsonNumber and jsonString read a field of a decoded JSON object, failing
// the test (not panicking the package, which would kill every other test in
// it) when the field is missing or of another type.
func jsonNumber(t *testing.T, m map[string]any, key string) float64 {
	t.Helper()
	v, ok := m[key].(float64)
	if !ok {
		t.Fatalf("%q is %T (%v), not a number, in %s", key, m[key], m[key], stringify(m))
	}
	return v
}

func jsonString(t *testing.T, m map[string]any, key string) string {
	t.Helper()
	v, ok := m[key].(string)
	if !ok {
		t.Fatalf("%q is %T (%v), not a string, in %s", key, m[key], m[key], stringify(m))
	}
	return v
}

func stringify(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestTakesTheValidSamplesOfAPageWithAnInvalidOne: a page with an invalid
// sample is not refused whole (before issue 8 it was, and the producer
// served it forever): its valid samples are written, the invalid one is
// quarantined, and the page is acknowledged.
func TestTakesTheValidSamplesOfAPageWithAnInvalidOne(t *testing.T) {
	bad := sampletest.NewFleet(1).Append(nil, 3, 1)
	// A producer that bypasses its own validation, as a buggy or foreign
	// implementation of the protocol would.
	page := pa.Page{Version: 1, Producer: "p", Incarnation: "i", Token: "tok", Samples: bad}
	page.Samples[1].Metric.Name = "NotSnakeCase"
	mux := http.NewServeMux()
	var mu sync.Mutex
	acks := 0
	mux.HandleFunc("/v1/collectors/{id}/page", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Query().Get("token") == "tok" {
			acks++
		}
		w.Header().Set("Content-Type", pa.ContentTypeBinary)
		if acks > 0 {
			w.Write(pa.AppendPage(nil, &pa.Page{Version: 1, Producer: "p", Incarnation: "i"}))
			return
		}
		w.Write(pa.AppendPage(nil, &page))
	})
	mux.HandleFunc("/v1/collectors/{id}/ack", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Query().Get("token") == "tok" {
			acks++
		}
	})
	hs := httptest.NewServer(mux)
	defer hs.Close()
	c, err := collector.Open(collector.Options{DataDir: t.TempDir(), DefaultInterval: 20 * time.Millisecond, DrainTimeout: time.Millisecond,
		Producers: []collector.ProducerConfig{{URL: hs.URL}}, Forwarder: forwarder.Options{Addr: "127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, 5*time.Second, "the page acknowledged", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return acks > 0, stringify(c.Status().Producers)
	})
	cancel()
	<-done
	st := c.Status()
	p := st.Producers[0]
	if cp := c.Checkpoint(); cp.WALLastIndex != 1 || p.Samples != 2 || p.RejectedSamples != 1 || !strings.Contains(p.LastRejectReason, "NotSnakeCase") {
		t.Fatalf("WAL last index %d, producer %s", cp.WALLastIndex, stringify(p))
	}
	q, _, err := c.Quarantine().List(0, 10)
	if err != nil || len(q) != 1 || q[0].Producer != hs.URL || q[0].Incarnation != "i" || !strings.Contains(q[0].Reason, "NotSnakeCase") {
		t.Fatalf("quarantine: %+v %v", q, err)
	}
	if ss, err := q[0].Samples(); err != nil || len(ss) != 1 || ss[0].Metric.Name != "NotSnakeCase" {
		t.Fatalf("quarantined sample: %+v %v", ss, err)
	}
}
