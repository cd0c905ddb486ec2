package statushtml

import (
	"html/template"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestFormatters(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct{ got, want string }{
		{Ago(now, time.Time{}), "never"},
		{Ago(now, now.Add(-1500*time.Millisecond)), "1.5s ago"},
		{Ago(now, now.Add(7*time.Second)), "in 7s"},
		{Stamp(time.Time{}), "never"},
		{Stamp(now), "2023-11-14 22:13:20Z"},
		{Seconds(1.2344), "1.234s"},
		{Bytes(512), "512 B"},
		{Bytes(3 << 20), "3.0 MiB"},
		{Bytes(5 << 30), "5.0 GiB"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestRenderErrorIsNotHalfAPage: a template failing midway answers 500
// with nothing of the page, and a good one gets the headers that forbid
// loading anything else.
func TestRenderErrorIsNotHalfAPage(t *testing.T) {
	bad := template.Must(template.New("x").Parse(`<p>start</p>{{.Missing.Field}}`))
	rec := httptest.NewRecorder()
	Render(rec, bad, struct{ Missing *struct{ Field int } }{})
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "<p>start</p>") {
		t.Fatalf("%d %q", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	Render(rec, template.Must(template.New("y").Parse(`<p>{{.}}</p>`)), "<b>")
	if rec.Code != 200 || rec.Body.String() != "<p>&lt;b&gt;</p>" || rec.Header().Get("Content-Security-Policy") != "default-src 'none'; style-src 'unsafe-inline'" {
		t.Fatalf("%d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
}
