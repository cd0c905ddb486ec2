package registry

import (
	"html/template"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/holdfast/holdfast/internal/statushtml"
)

// statusPageProducers bounds the producers the HTML page lists: a registry
// can hold hundreds of thousands, and a page is for a person (the rest are
// in the paginated GET /v1/producers).
const statusPageProducers = 500

type statusPageData struct {
	Now        time.Time
	Ready      Readiness
	Replicas   int
	PLease     time.Duration
	CLease     time.Duration
	Collectors []CollectorInfo
	Live       int
	Producers  []Producer
	Total      int
	Unassigned int
	CSS        template.CSS
}

var statusPage = template.Must(template.New("registry").Funcs(statushtml.Funcs).Funcs(template.FuncMap{
	"interval": func(ns int64) string { return time.Duration(ns).String() },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="10">
<title>holdfast registry</title>
<style>{{.CSS}}</style></head><body>
{{- $now := .Now}}
<h1>holdfast registry</h1>
<div class="sub">{{if .Ready.Ready}}<span class="ok">ready</span>{{else}}<span class="bad">not ready</span>{{end}}
 · {{len .Collectors}} collector(s), {{.Live}} live · {{.Total}} producer(s){{if .Unassigned}}, <span class="bad">{{.Unassigned}} unassigned</span>{{end}}
 · {{.Replicas}} collector(s) per producer · leases: producers {{.PLease}}, collectors {{.CLease}}
 · {{stamp $now}} · refreshes every 10 s</div>
{{- with .Ready.Reasons}}<ul class="err">{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}

<h2>Collectors</h2>
{{- if .Collectors}}
<table><tr><th>collector</th><th>admin address</th><th>lease</th><th>lease expires</th><th>producers</th><th>registered</th></tr>
{{- range .Collectors}}
<tr><td><code>{{.ID}}</code></td><td>{{if .Address}}<a href="{{.Address}}">{{.Address}}</a>{{else}}-{{end}}</td>
<td class="{{if .Live}}ok{{else}}bad{{end}}">{{if .Live}}live{{else}}expired{{end}}</td>
<td>{{ago $now .LeaseExpires}}</td><td class="num">{{.Producers}}</td><td>{{stamp .Registered}}</td></tr>
{{- end}}
</table>
{{- else}}<p>No collector has registered.</p>{{end}}

<h2>Producers</h2>
{{- if .Producers}}
<table><tr><th>producer</th><th>address</th><th>interval</th><th>kind</th><th>collectors</th><th>lease expires</th><th>registered</th></tr>
{{- range .Producers}}
<tr><td><code>{{.ID}}</code></td><td>{{.Address}}</td><td>{{interval .IntervalNs}}</td><td>{{.Kind}}</td>
<td>{{if .Collectors}}{{range $i, $c := .Collectors}}{{if $i}}, {{end}}<code>{{$c}}</code>{{end}}{{else}}<span class="bad">none</span>{{end}}</td>
<td>{{ago $now .LeaseExpires}}</td><td>{{stamp .Registered}}</td></tr>
{{- end}}
</table>
{{- if gt .Total (len .Producers)}}<p>The first {{len .Producers}} of {{.Total}} by id; all of them: <code>GET /v1/producers</code>.</p>{{end}}
{{- else}}<p>No producer has registered.</p>{{end}}
<footer>JSON: <code>/v1/collectors</code>, <code>/v1/producers</code> · metrics: <code>/metrics</code> · health: <code>/-/ready</code></footer>
</body></html>
`))

// serveStatusPage renders the HTML status page (GET /).
func (r *Registry) serveStatusPage(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	d := statusPageData{Now: r.opts.Now(), Ready: r.Ready(), Replicas: r.opts.Replicas, PLease: r.opts.ProducerLease,
		CLease: r.opts.CollectorLease, Collectors: r.Collectors(), CSS: template.CSS(statushtml.CSS)}
	for _, c := range d.Collectors {
		if c.Live {
			d.Live++
		}
	}
	page, err := r.ListProducers("", statusPageProducers)
	if err != nil {
		http.Error(w, "listing producers: "+err.Error(), http.StatusInternalServerError)
		return
	}
	d.Producers = page.Items
	r.mu.Lock()
	d.Total = len(r.producers)
	for _, p := range r.producers {
		if len(p.Collectors) == 0 {
			d.Unassigned++
		}
	}
	r.mu.Unlock()
	statushtml.Render(w, statusPage, d)
}
