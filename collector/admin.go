package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/holdfast/holdfast/internal/httpserve"
)

// AdminOptions configure the admin HTTP API.
type AdminOptions struct {
	// Gatherer serves /metrics; nil: prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// AllowRemoteChanges lets non-loopback clients call endpoints that
	// change state (POST /v1/flush). Off by default.
	AllowRemoteChanges bool
}

// AdminHandler serves the admin API:
//
//	GET  /                the status page (HTML, for people)
//	GET  /v1/checkpoint   WAL range, checkpoint, backlog, last insert (JSON)
//	GET  /v1/status       collector state and per-producer status (JSON)
//	POST /v1/flush        forward everything now; answers when it is in ClickHouse (?timeout=60s)
//	GET  /v1/quarantine   quarantined samples and records (see addQuarantineRoutes)
//	GET  /metrics         Prometheus text format
//	GET  /healthz         200 "ok", or 503 with the reasons (the aggregate)
//	GET  /-/healthy       liveness: 200 while the process serves
//	GET  /-/ready         readiness (Ready): 200 or 503, JSON with reasons and backpressure
func (c *Collector) AdminHandler(opts AdminOptions) http.Handler {
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.DefaultGatherer
	}
	r := httprouter.New()
	r.GET("/", c.serveStatusPage) // the HTML status page (statuspage.go)
	r.GET("/v1/checkpoint", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		writeJSON(w, http.StatusOK, c.Checkpoint())
	})
	r.GET("/v1/status", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		writeJSON(w, http.StatusOK, c.Status())
	})
	r.POST("/v1/flush", c.local(opts, func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		timeout := 60 * time.Second
		if v := req.URL.Query().Get("timeout"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 || d > time.Hour {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("timeout %q must be a duration between 0 and 1h", v)})
				return
			}
			timeout = d
		}
		ctx, cancel := context.WithTimeout(req.Context(), timeout)
		defer cancel()
		if err := c.Flush(ctx); err != nil {
			writeJSON(w, http.StatusGatewayTimeout, map[string]any{"error": err.Error(), "checkpoint": c.Checkpoint()})
			return
		}
		writeJSON(w, http.StatusOK, c.Checkpoint())
	}))
	// RFD 162's collector interface: the assigned producers. With a registry
	// configured, its next refresh replaces what is set here.
	r.GET("/v1/producers", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		writeJSON(w, http.StatusOK, c.Status().Producers)
	})
	r.PUT("/v1/producers", c.local(opts, func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		var in []apiProducer
		if !readJSON(w, req, &in) {
			return
		}
		ps := make([]ProducerConfig, 0, len(in))
		for _, a := range in {
			pc, err := a.config(ProducerConfig{})
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			ps = append(ps, pc)
		}
		c.setAndReply(w, ps)
	}))
	r.GET("/v1/producers/:id", func(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
		for _, p := range c.Status().Producers {
			if p.ID == ps.ByName("id") {
				writeJSON(w, http.StatusOK, p)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no producer " + ps.ByName("id")})
	})
	r.PATCH("/v1/producers/:id", c.local(opts, func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		var in apiProducer
		if !readJSON(w, req, &in) {
			return
		}
		list, i, ok := c.findAssigned(w, ps.ByName("id"))
		if !ok {
			return
		}
		in.ID = list[i].ID
		pc, err := in.config(list[i])
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		list[i] = pc
		c.setAndReply(w, list)
	}))
	r.DELETE("/v1/producers/:id", c.local(opts, func(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
		list, i, ok := c.findAssigned(w, ps.ByName("id"))
		if !ok {
			return
		}
		c.setAndReply(w, slices.Delete(list, i, i+1))
	}))
	c.addQuarantineRoutes(r, opts)
	r.Handler(http.MethodGet, "/metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{}))
	r.GET("/healthz", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		if ok, why := c.Health(); !ok {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"healthy": false, "reasons": why})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"healthy": true})
	})
	r.GET("/-/healthy", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		writeJSON(w, http.StatusOK, map[string]any{"healthy": true})
	})
	r.GET("/-/ready", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		rd := c.Ready()
		code := http.StatusOK
		if !rd.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, rd)
	})
	// Go profiles for operators (`go tool pprof http://ADMIN/debug/pprof/profile`),
	// from loopback only: they expose internals and cost CPU.
	profile := func(h http.HandlerFunc) httprouter.Handle {
		return c.local(AdminOptions{AllowRemoteChanges: opts.AllowRemoteChanges}, func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { h(w, r) })
	}
	r.GET("/debug/pprof/", profile(pprof.Index))
	r.GET("/debug/pprof/profile", profile(pprof.Profile))
	r.GET("/debug/pprof/heap", profile(pprof.Handler("heap").ServeHTTP))
	r.GET("/debug/pprof/goroutine", profile(pprof.Handler("goroutine").ServeHTTP))
	r.GET("/debug/pprof/allocs", profile(pprof.Handler("allocs").ServeHTTP))
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such endpoint; see / (status page), /v1/checkpoint, /v1/status, /v1/flush, /v1/quarantine, /metrics, /healthz, /-/healthy, /-/ready, /debug/pprof/"})
	})
	return r
}

// local refuses non-loopback clients unless remote changes are allowed.
func (c *Collector) local(opts AdminOptions, h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if !opts.AllowRemoteChanges && !isLoopback(r.RemoteAddr) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "state-changing endpoints accept loopback clients only (see --admin-allow-remote)"})
			return
		}
		h(w, r, ps)
	}
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// ServeAdmin serves the admin API on ln until ctx ends.
func (c *Collector) ServeAdmin(ctx context.Context, ln net.Listener, opts AdminOptions) error {
	return httpserve.Serve(ctx, ln, c.AdminHandler(opts), 2*time.Minute)
}

// apiProducer is a producer as the admin API takes it.
type apiProducer struct {
	ID       string `json:"id,omitempty"`
	URL      string `json:"url,omitempty"`
	Interval string `json:"interval,omitempty"` // a Go duration
}

// config applies the fields that are set over base.
func (a apiProducer) config(base ProducerConfig) (ProducerConfig, error) {
	if a.ID != "" {
		base.ID = a.ID
	}
	if a.URL != "" {
		base.URL = a.URL
	}
	if a.Interval != "" {
		d, err := time.ParseDuration(a.Interval)
		if err != nil {
			return base, fmt.Errorf("interval %q is not a duration", a.Interval)
		}
		base.Interval = d
	}
	return base, nil
}

func (c *Collector) findAssigned(w http.ResponseWriter, id string) ([]ProducerConfig, int, bool) {
	list := c.Assigned()
	i := slices.IndexFunc(list, func(p ProducerConfig) bool { return p.ID == id })
	if i < 0 {
		for _, p := range c.Status().Producers {
			if p.ID == id && p.Static {
				writeJSON(w, http.StatusConflict, map[string]string{"error": "producer " + id + " is static (--producer); change the configuration instead"})
				return nil, 0, false
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no assigned producer " + id})
		return nil, 0, false
	}
	return list, i, true
}

func (c *Collector) setAndReply(w http.ResponseWriter, ps []ProducerConfig) {
	if err := c.SetAssigned(ps); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, ErrTooManyProducers) {
			code = http.StatusUnprocessableEntity
		}
		writeJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, c.Status().Producers)
}

func readJSON(w http.ResponseWriter, req *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large or unreadable: " + err.Error()})
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed JSON: " + err.Error()})
		return false
	}
	return true
}
