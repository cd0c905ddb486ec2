package collector_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
)

// switchProxy is a TCP listener that forwards each new connection to an
// HTTP server until switched, then to the real ClickHouse: the "operator
// fixed the port" moment without restarting the collector.
type switchProxy struct {
	ln       net.Listener
	httpAddr string
	chAddr   atomic.Value // string; "" = HTTP
}

func newSwitchProxy(t *testing.T, httpAddr string) *switchProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln, httpAddr: httpAddr}
	p.chAddr.Store("")
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			to := p.httpAddr
			if a := p.chAddr.Load().(string); a != "" {
				to = a
			}
			go pipe(c, to)
		}
	}()
	return p
}

func pipe(c net.Conn, to string) {
	defer c.Close()
	u, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer u.Close()
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
}

// TestWrongPortUnhealthyAtOnce: pointed at an HTTP port (ClickHouse's own
// when make test exports it, else any HTTP server), the collector's /healthz
// says 503 with the native-port hint from the start-up check, without
// waiting StallAfter (an hour here), while the producer's samples still go
// into the WAL and are released. With a ClickHouse available, the address
// then starts reaching it and /healthz turns healthy again.
//
// Idle (no producers, nothing to insert), the forwarder's re-checks clear it.
func TestWrongPortUnhealthyAtOnce(t *testing.T) {
	t.Run("collecting", func(t *testing.T) { wrongPort(t, 2000) })
	t.Run("idle", func(t *testing.T) { wrongPort(t, 0) })
}

func wrongPort(t *testing.T, samples int) {
	httpAddr := ""
	chAddr := os.Getenv("HOLDFAST_CLICKHOUSE")
	if b, err := os.ReadFile(os.Getenv("HOLDFAST_CLICKHOUSE_DIR") + "/http_port"); err == nil && chAddr != "" {
		host, _, _ := net.SplitHostPort(chAddr)
		httpAddr = net.JoinHostPort(host, strings.TrimSpace(string(b)))
	} else {
		hs := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(hs.Close)
		httpAddr = hs.Listener.Addr().String()
	}
	proxy := newSwitchProxy(t, httpAddr)

	srv, ps := fleetProducer(t, samples)
	var producers []collector.ProducerConfig
	if samples > 0 {
		producers = []collector.ProducerConfig{{URL: ps.URL}}
	}
	reg := prometheus.NewRegistry()
	db := fmt.Sprintf("e2e_wrongport_%d", time.Now().UnixNano()%1e9)
	c, err := collector.Open(collector.Options{
		DataDir: t.TempDir(), CollectorID: "wrongport", DefaultInterval: 50 * time.Millisecond, StallAfter: time.Hour,
		DrainTimeout: 100 * time.Millisecond, Producers: producers, Registerer: reg,
		Forwarder: forwarder.Options{Addr: proxy.ln.Addr().String(), Database: db,
			DialTimeout: 500 * time.Millisecond, BatchRows: 1000, FlushAge: 10 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	h := c.AdminHandler(collector.AdminOptions{Gatherer: reg})
	healthz := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		return rec.Code, rec.Body.String()
	}
	waitFor(t, 60*time.Second, "/healthz to name the native port", func() (bool, string) {
		code, body := healthz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "native protocol port") && strings.Contains(body, "start-up check"), body
	})
	waitFor(t, 60*time.Second, "the producer's samples acknowledged into the WAL", func() (bool, string) {
		st := srv.Stats()
		return st.Released == uint64(samples), stringify(map[string]any{"released": st.Released})
	})
	st := c.Status()
	if !strings.Contains(st.Forwarder.StartupError, "native protocol port") {
		t.Fatalf("status: %+v", st.Forwarder)
	}
	if chAddr == "" {
		t.Log("no ClickHouse (HOLDFAST_CLICKHOUSE): recovery part skipped")
	} else {
		proxy.chAddr.Store(chAddr)
		waitFor(t, 120*time.Second, "/healthz healthy once ClickHouse is reached", func() (bool, string) {
			code, body := healthz()
			return code == http.StatusOK, body
		})
		conn, err := forwarder.Dial(chAddr, "default", "", 5*time.Second)
		if err == nil {
			conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
			conn.Close()
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
