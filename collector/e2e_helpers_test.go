package collector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
	"github.com/holdfast/holdfast/internal/chtest"
	"github.com/holdfast/holdfast/internal/sampletest"
	pa "github.com/holdfast/holdfast/producerapi"
)

var holdfastBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "holdfast-e2e-")
	if err != nil {
		panic(err)
	}
	holdfastBin = filepath.Join(dir, "holdfast")
	if out, err := exec.Command("go", "build", "-o", holdfastBin, "../cmd/holdfast").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building holdfast: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(holdfastBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, tail(p.out.String(), 3000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("%s did not exit after SIGTERM", p.name)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Fatalf("%s exited with %d after SIGTERM:\n%s", p.name, code, tail(p.out.String(), 2000))
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

func producerStats(addr string) (pa.ServerStats, error) {
	var st pa.ServerStats
	err := getJSON("http://"+addr+"/v1/stats", &st)
	return st, err
}

func collectorStatus(addr string) (collector.Status, error) {
	var st collector.Status
	err := getJSON("http://"+addr+"/v1/status", &st)
	return st, err
}

// waitFor polls cond until it is true or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s; last state: %s", timeout, what, last)
}

// waitReleased waits until a producer has generated total samples and every
// collector acknowledged them all.
func waitReleased(t *testing.T, addr string, total uint64, timeout time.Duration) pa.ServerStats {
	t.Helper()
	var st pa.ServerStats
	waitFor(t, timeout, "producer "+addr+" to release everything", func() (bool, string) {
		var err error
		st, err = producerStats(addr)
		if err != nil {
			return false, err.Error()
		}
		return st.Produced == total && st.Released == total && st.Pending == 0, fmt.Sprintf("%+v", st.BufferStats)
	})
	return st
}

// waitUp waits until a collector's admin API answers.
func waitUp(t *testing.T, adminAddr string) {
	t.Helper()
	waitFor(t, 30*time.Second, "collector admin API at "+adminAddr, func() (bool, string) {
		_, err := collectorStatus(adminAddr)
		return err == nil, fmt.Sprint(err)
	})
}

func flush(t *testing.T, adminAddr string) {
	t.Helper()
	waitUp(t, adminAddr)
	resp, err := http.Post("http://"+adminAddr+"/v1/flush?timeout=2m", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		t.Fatalf("flush: %d %s", resp.StatusCode, body.String())
	}
}

type clickhouse struct {
	t    *testing.T
	addr string
	conn driver.Conn
}

func newClickHouse(t *testing.T, addr string) *clickhouse {
	t.Helper()
	if addr == "" {
		addr = chtest.Addr(t)
	}
	conn, err := forwarder.Dial(addr, "default", "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &clickhouse{t: t, addr: addr, conn: conn}
}

func (c *clickhouse) database(name string) string {
	db := fmt.Sprintf("e2e_%s_%d", strings.ToLower(name), time.Now().UnixNano()%1e9)
	c.t.Cleanup(func() { c.conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	return db
}

// counts returns the samples readers see (FINAL) and the distinct sample
// identities, over every measurements table.
func (c *clickhouse) counts(db string) (seen, distinct uint64) {
	c.t.Helper()
	for _, t := range pa.AllDatumTypes() {
		var n, d uint64
		q := fmt.Sprintf("SELECT count(), uniqExact(timeseries_key, timestamp_ns) FROM %s.%s FINAL", db, forwarder.MeasurementsTable(t))
		if err := c.conn.QueryRow(context.Background(), q).Scan(&n, &d); err != nil {
			if strings.Contains(err.Error(), "doesn't exist") {
				continue
			}
			c.t.Fatalf("%s: %v", q, err)
		}
		seen += n
		distinct += d
	}
	return seen, distinct
}

func (c *clickhouse) expect(db string, want uint64) {
	c.t.Helper()
	seen, distinct := c.counts(db)
	if seen != want || distinct != want {
		c.t.Fatalf("database %s: readers see %d samples (%d distinct), want exactly %d", db, seen, distinct, want)
	}
}

// fleetProducer serves n samples of a 10-VM fleet as producer "p" over
// loopback until the test ends.
func fleetProducer(t *testing.T, n int) (*pa.Server, *httptest.Server) {
	t.Helper()
	srv, err := pa.NewServer(pa.ServerOptions{ID: "p"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Add(sampletest.NewFleet(10).Append(nil, n, 1))
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return srv, hs
}
