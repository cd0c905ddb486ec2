// Package promtest reads a daemon's /metrics in tests: the text exposition
// as served over HTTP, and checks for whole sample lines in it.
package promtest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Scrape returns the body of GET base+"/metrics", failing the test unless it
// answers 200.
func Scrape(t testing.TB, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// WantLines reports (t.Errorf) each of lines that is not a whole line of
// text, a /metrics body; when says at which step of the test.
func WantLines(t testing.TB, when, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("%s: no line %q in /metrics:\n%s", when, l, text)
		}
	}
}
