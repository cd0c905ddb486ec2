package collector_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/holdfast/holdfast/collector"
	"github.com/holdfast/holdfast/forwarder"
)

// hostileID is a producer name meant to break out of HTML: static producer
// ids come from configuration files and are outside input to the page.
const hostileID = `<img src=x onerror="alert(1)">'&</td>`

// TestStatusPage: GET / on the admin API is an HTML page showing every
// producer with its state, last success, lag and errors, and the WAL,
// checkpoint and quarantine; a hostile producer name is escaped; the page
// loads nothing from elsewhere.
func TestStatusPage(t *testing.T) {
	_, hs := fleetProducer(t, 500)
	deadURL := refusingURL(t)
	reg := prometheus.NewRegistry()
	c, err := collector.Open(collector.Options{
		DataDir: t.TempDir(), CollectorID: "page-test", DefaultInterval: 50 * time.Millisecond, Registerer: reg,
		DrainTimeout: 100 * time.Millisecond, // ClickHouse is unreachable: the shutdown delivers nothing
		Producers:    []collector.ProducerConfig{{ID: hostileID, URL: hs.URL}, {ID: "gone", URL: deadURL}},
		Forwarder:    forwarder.Options{Addr: "127.0.0.1:1", BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx) // the deferred Close stops it and waits
	admin := httptest.NewServer(c.AdminHandler(collector.AdminOptions{Gatherer: reg}))
	defer admin.Close()
	waitFor(t, 10*time.Second, "one producer collected, the other failing", func() (bool, string) {
		st := c.Status()
		var ok, failing bool
		for _, p := range st.Producers {
			ok = ok || (p.ID == hostileID && p.Samples > 0)
			failing = failing || (p.ID == "gone" && p.ConsecutiveFailures > 0)
		}
		return ok && failing, stringify(st.Producers)
	})
	resp, err := http.Get(admin.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, want := range []string{
		"<title>holdfast collector page-test</title>",
		"<h2>WAL</h2>", "size / budget", "<h2>Checkpoint and ClickHouse</h2>", "backlog", "lag (oldest not in ClickHouse)",
		"<h2>Quarantine</h2>", "<h2>Producers</h2>",
		"<th>last success</th><th>lag</th><th>errors</th>",
		`&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&#39;&amp;&lt;/td&gt;`, // the hostile id, escaped
		hs.URL, `<td class="ok">ok</td>`,
		"<code>gone</code>", `<td class="bad">failing</td>`, "connection refused",
		"not reached yet", // ClickHouse
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page has no %q", want)
		}
	}
	for _, bad := range []string{hostileID, "<img", "<script", "<link", "<iframe", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", page)
	}
}

// refusingURL is an http URL on loopback whose port refuses connections
// for the whole test: a TCP socket bound to it that never listens. A
// closed server's port could be handed to the next server the test starts
// (it once went to the admin server below, whose 404 replaced "connection
// refused" on the page).
func refusingURL(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
