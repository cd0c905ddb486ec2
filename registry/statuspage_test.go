package registry

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestStatusPage: GET / is an HTML page listing collectors (live or
// expired, load, lease) and producers (address, interval, kind,
// collectors, lease); outside input (a producer's kind and address) is
// escaped; nothing is loaded from elsewhere; past statusPageProducers the
// page says how many it left out.
func TestStatusPage(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	r, db := openTest(t, t.TempDir(), Options{Now: clk.Now, ProducerLease: 30 * time.Second, CollectorLease: 10 * time.Second})
	defer db.Close()
	hs := httptest.NewServer(r.Handler(nil))
	defer hs.Close()
	get := func() string {
		t.Helper()
		resp, err := http.Get(hs.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Fatalf("GET /: %d %v", resp.StatusCode, resp.Header)
		}
		return string(b)
	}
	if page := get(); !strings.Contains(page, "No collector has registered.") || !strings.Contains(page, "No producer has registered.") {
		t.Fatalf("empty registry:\n%s", page)
	}
	// A producer registered before any collector is unassigned.
	hostile := ProducerRegistration{ID: "prod-x", Address: `http://h:1/"><script>alert(1)</script>`, Interval: "10s", Kind: `<img src=x onerror=alert(1)>`}
	mustRegisterProducer(t, r, hostile)
	if page := get(); !strings.Contains(page, `<span class="bad">1 unassigned</span>`) || !strings.Contains(page, `<span class="bad">none</span>`) {
		t.Fatalf("unassigned producer not shown:\n%s", page)
	}
	if _, err := r.RegisterCollector(CollectorRegistration{ID: "col-a", Address: "http://127.0.0.1:9464"}); err != nil {
		t.Fatal(err)
	}
	clk.advance(8 * time.Second)
	if _, err := r.RegisterCollector(CollectorRegistration{ID: "col-b", Address: "http://127.0.0.1:9465"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		mustRegisterProducer(t, r, prod(i))
	}
	clk.advance(3 * time.Second) // col-a's lease ran out (not yet expired by the tick)
	page := get()
	for _, want := range []string{
		"<title>holdfast registry</title>", "2 collector(s), 1 live", "4 producer(s)",
		`<code>col-a</code></td><td><a href="http://127.0.0.1:9464">http://127.0.0.1:9464</a></td>`,
		`<td class="bad">expired</td>`, `<td class="ok">live</td>`,
		"<th>lease expires</th>", "1s ago", "in 7s", "in 27s",
		"<code>prod-x</code>", `&lt;img src=x onerror=alert(1)&gt;`,
		`http://h:1/&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;`,
		"<code>p00000</code>", "10s",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page has no %q", want)
		}
	}
	for _, bad := range []string{"<script", "<img", "<link", "<iframe", "@import", "unassigned"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", page)
	}
	for i := 3; i < statusPageProducers+4; i++ { // 4 registered before: N+5 in all
		mustRegisterProducer(t, r, prod(i))
	}
	if page := get(); !strings.Contains(page, fmt.Sprintf("The first %d of %d by id", statusPageProducers, statusPageProducers+5)) {
		t.Errorf("a long list is not cut with a note")
	}
}
