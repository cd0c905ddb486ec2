package collector

import (
	"html/template"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/holdfast/holdfast/internal/statushtml"
)

// statusPageData is what the HTML status page shows: the same snapshot as
// GET /v1/status, with readiness and the aggregate health.
type statusPageData struct {
	Now     time.Time
	Status  Status
	Ready   Readiness
	Healthy bool
	Why     []string
	CSS     template.CSS
}

// producerState names a producer's state on the page.
func producerState(p ProducerStatus) string {
	switch {
	case p.ConsecutiveFailures > 0:
		return "failing"
	case p.Backpressure:
		return "backpressure"
	case p.LastSuccess.IsZero():
		return "starting"
	}
	return "ok"
}

var statusPage = template.Must(template.New("collector").Funcs(statushtml.Funcs).Funcs(template.FuncMap{
	"pstate": producerState,
	"lag": func(now, t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return now.Sub(t).Round(time.Millisecond).String()
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="10">
<title>holdfast collector {{.Status.CollectorID}}</title>
<style>{{.CSS}}</style></head><body>
{{- $now := .Now}}{{with .Status}}
<h1>holdfast collector <code>{{.CollectorID}}</code></h1>
<div class="sub">state <span class="{{if or (eq .State "running") (eq .State "backpressure")}}ok{{else}}bad{{end}}">{{.State}}</span>
 · {{if $.Ready.Ready}}<span class="ok">ready</span>{{else}}<span class="bad">not ready</span>{{end}}
 · {{if $.Healthy}}<span class="ok">healthy</span>{{else}}<span class="bad">unhealthy</span>{{end}}
 · {{len .Producers}} producer(s) · {{stamp $now}} · refreshes every 10 s</div>
{{- if or $.Why $.Ready.Reasons}}<ul class="err">{{range $.Ready.Reasons}}<li>{{.}}</li>{{end}}{{range $.Why}}<li>{{.}}</li>{{end}}</ul>{{end}}

<div class="grid">
<div><h2>WAL</h2><table class="kv">
<tr><td>records</td><td class="num">{{.Checkpoint.WALFirstIndex}} … {{.Checkpoint.WALLastIndex}}</td></tr>
<tr><td>size / budget</td><td class="num">{{bytes .Checkpoint.WALSizeBytes}} / {{if .Checkpoint.WALBudgetBytes}}{{bytes .Checkpoint.WALBudgetBytes}} ({{pct .Checkpoint.WALSizeBytes .Checkpoint.WALBudgetBytes}}){{else}}unbounded{{end}}</td></tr>
<tr><td>backpressure</td><td>{{if .WALFull}}<span class="warn">yes: pages wait with their producers</span>{{else}}no{{end}}</td></tr>
{{- if .WALFailed}}<tr><td>failed</td><td class="err">{{.WALFailed}}</td></tr>{{end}}
</table></div>

<div><h2>Checkpoint and ClickHouse</h2><table class="kv">
<tr><td>checkpoint</td><td class="num">{{.Checkpoint.CheckpointIndex}}</td></tr>
<tr><td>backlog</td><td class="num">{{.Checkpoint.BacklogRecords}} records ({{bytes .Checkpoint.BacklogBytes}})</td></tr>
<tr><td>lag (oldest not in ClickHouse)</td><td class="num">{{secs .Checkpoint.OldestUnforwarded}}</td></tr>
<tr><td>last insert</td><td>{{ago $now .Checkpoint.LastInsertTime}}</td></tr>
<tr><td>ClickHouse</td><td>{{if .Forwarder.Reached}}reached{{if .Forwarder.ServerVersion}} (version {{.Forwarder.ServerVersion}}){{end}}{{else}}<span class="warn">not reached yet</span>{{end}}</td></tr>
{{- if .Checkpoint.LastInsertError}}<tr><td>last insert error</td><td class="err">{{.Checkpoint.LastInsertError}}</td></tr>{{end}}
{{- if .Forwarder.StartupError}}<tr><td>start-up check</td><td class="err">{{.Forwarder.StartupError}}</td></tr>{{end}}
</table></div>

<div><h2>Quarantine</h2><table class="kv">
<tr><td>entries</td><td class="num">{{.Quarantine.Entries}} ({{.Quarantine.Samples}} samples, {{.Quarantine.Records}} records)</td></tr>
<tr><td>size / budget</td><td class="num">{{bytes .Quarantine.Bytes}} / {{if .Quarantine.BudgetBytes}}{{bytes .Quarantine.BudgetBytes}}{{else}}unbounded{{end}}</td></tr>
<tr><td>full</td><td>{{if .Quarantine.Full}}<span class="bad">yes ({{.Quarantine.Overflow}} not kept)</span>{{else}}no{{end}}</td></tr>
{{- if .Quarantine.LastReason}}<tr><td>last reason</td><td>{{.Quarantine.LastReason}}</td></tr>{{end}}
</table></div>
{{- with .Registry}}
<div><h2>Registry</h2><table class="kv">
<tr><td>registry</td><td><code>{{.URL}}</code></td></tr>
<tr><td>assigned</td><td class="num">{{.Assigned}}</td></tr>
<tr><td>last refresh</td><td>{{ago $now .LastRefresh}}</td></tr>
{{- if .LastRefreshError}}<tr><td>refresh error</td><td class="err">{{.LastRefreshError}}</td></tr>{{end}}
</table></div>{{end}}
</div>

<h2>Producers</h2>
{{- if .Producers}}
<table><tr><th>producer</th><th>state</th><th>last success</th><th>lag</th><th>errors</th><th>samples</th><th>dropped</th><th>rejected</th><th>session</th><th>interval</th><th>last error</th></tr>
{{- range .Producers}}{{$st := pstate .}}
<tr><td><code>{{.ID}}</code><br><small>{{.URL}}</small></td>
<td class="{{if eq $st "ok"}}ok{{else if eq $st "failing"}}bad{{else}}warn{{end}}">{{$st}}</td>
<td>{{stamp .LastSuccess}}</td><td class="num">{{lag $now .LastSuccess}}</td>
<td class="num">{{.ConsecutiveFailures}}</td><td class="num">{{.Samples}}</td><td class="num">{{.ProducerDropped}}</td><td class="num">{{.RejectedSamples}}</td>
<td>{{if .Session}}<code>{{.Session}}</code><br><small>{{.SessionSeries}} series, {{.SessionResets}} resets</small>{{else}}-{{end}}</td>
<td>{{.Interval}}</td><td class="err">{{.LastError}}{{if .LastRejectReason}}{{if .LastError}}<br>{{end}}rejected: {{.LastRejectReason}}{{end}}</td></tr>
{{- end}}
</table>
{{- else}}<p>No producers (none configured, none assigned yet).</p>{{end}}
{{end}}
<footer>JSON: <code>/v1/status</code>, <code>/v1/checkpoint</code> · metrics: <code>/metrics</code> · health: <code>/healthz</code>, <code>/-/ready</code></footer>
</body></html>
`))

// serveStatusPage renders the HTML status page (GET /).
func (c *Collector) serveStatusPage(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	ok, why := c.Health()
	statushtml.Render(w, statusPage, statusPageData{Now: time.Now(), Status: c.Status(), Ready: c.Ready(), Healthy: ok, Why: why, CSS: template.CSS(statushtml.CSS)})
}
