// Package statushtml holds what the collector's and the registry's HTML
// status pages share: the inline style sheet, template functions and a
// renderer. The pages are server-rendered with html/template (everything
// from outside, producer names, URLs and error texts included, is escaped)
// and load nothing from elsewhere: no scripts, fonts or images, which the
// Content-Security-Policy they are served with also forbids.
package statushtml

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

// CSS is the pages' whole style sheet, inlined in <style>.
const CSS = `
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em; color: #1d232a; background: #fafbfc; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
.sub { color: #5b6470; margin-bottom: 1em; }
table { border-collapse: collapse; background: #fff; box-shadow: 0 0 0 1px #dde2e8; margin-bottom: .5em; }
th, td { padding: .3em .7em; text-align: left; border-bottom: 1px solid #eef1f4; vertical-align: top; }
th { background: #f1f4f7; font-weight: 600; font-size: .9em; color: #3b4450; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.kv td:first-child { color: #5b6470; }
.grid { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.ok { color: #137333; font-weight: 600; } .bad { color: #b3261e; font-weight: 600; } .warn { color: #9a6700; font-weight: 600; }
.err { color: #b3261e; max-width: 40em; word-break: break-word; }
code { font-family: ui-monospace, monospace; font-size: .92em; }
footer { margin-top: 2em; color: #5b6470; font-size: .85em; }
`

// Funcs are the pages' template functions.
var Funcs = template.FuncMap{
	"ago":   Ago,
	"stamp": Stamp,
	"bytes": Bytes,
	"secs":  Seconds,
	"pct": func(a, b int64) string {
		if b <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f%%", 100*float64(a)/float64(b))
	},
}

// Ago is how long before now t was ("never" for the zero time).
func Ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + (-d).Round(100*time.Millisecond).String()
	}
	return d.Round(100*time.Millisecond).String() + " ago"
}

// Stamp is t in UTC ("never" for the zero time).
func Stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// Seconds formats a duration given in seconds.
func Seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

// Bytes formats a size in powers of two.
func Bytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

// Render executes t into a buffer first, so a template error is a clean
// 500 rather than half a page, and serves it with headers that keep the
// browser from loading anything else or guessing the type.
func Render(w http.ResponseWriter, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		http.Error(w, "rendering the status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
}
